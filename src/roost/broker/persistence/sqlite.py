"""The SQLite store: durable state in one WAL-mode database file, written in batches.

The event loop never waits for the disk. Recording a change (on the loop, from the
packet handlers) puts a row, snapshotted as a tuple, into the pending batch: a dict
per table keyed by the row's key, where None means "delete". A later change to the
same row replaces the earlier one, and a row created and deleted within one batch is
never written at all (a message acknowledged before its batch was handed over costs
no I/O). One writer thread applies each batch in one transaction and commits; while
it does, new changes gather in the next batch (group commit), so a commit costs one
fsync however many messages it carries.

Commit policies:

- ``sync``: ``PRAGMA synchronous = FULL``; batches are handed over as soon as the
  writer is free, and ``hold`` keeps a connection's acknowledgements until the batch
  with their effects is committed, then sends them (on the loop, in order).
- ``batched``: FULL as well, but a batch is handed over ``commit_window`` after its
  first change and nothing is held: a crash loses at most the last window.
- ``off``: ``PRAGMA synchronous = OFF``, nothing held; for when the OS may lose what
  it buffered but a process crash should still keep state.

Opening and loading the file are ``database.py``'s; writing a batch is ``batch.py``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from roost.broker.config import CommitPolicy
from roost.broker.persistence.batch import Batch, apply
from roost.broker.persistence.database import connect, load
from roost.broker.persistence.rows import (
    identity_columns,
    message_row,
    subscription_ids_text,
    subscription_row,
    will_text,
)
from roost.broker.persistence.schema import damaged
from roost.broker.persistence.store import Holder, StoredState
from roost.broker.stats import Histogram

if TYPE_CHECKING:
    from roost.broker.message import Message
    from roost.broker.records import Outgoing, SubscriptionRecord
    from roost.broker.sessions import Session

log = logging.getLogger("roost.broker")

DATABASE_NAME = "roost.db"
COMMIT_SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
BATCH_CHANGES_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000)
_RETRY_DELAYS = (0.1, 0.5, 1.0, 5.0)  # after a failed commit; the last one repeats
_ATTEMPTS_WHEN_CLOSING = 3  # a shutdown must end, even with a disk that fails


class SqliteStore:
    """Durable state in one SQLite file, written in batches by a thread of its own."""

    durable = True

    def __init__(
        self, data_dir: str, commit_policy: CommitPolicy = "sync", commit_window: float = 0.01
    ) -> None:
        self.path = str(Path(data_dir).absolute() / DATABASE_NAME)
        self.commit_policy = commit_policy
        self.description = f"SQLite database {self.path} (commit policy {commit_policy})"
        self.op_count = 0
        self._holding = commit_policy == "sync"
        self._window = commit_window if commit_policy == "batched" else 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._offset = 0.0  # wall clock minus loop clock
        self._next_message_id = 1
        self._next_delivery_id = 1
        self._next_spool_id = 1
        self._batch = Batch(1, 1, 1)
        self._scheduled = False  # the current batch has changes and a hand-over is due
        self._writing = False  # the writer owns a batch
        self._want = False  # hand the current batch over as soon as the writer is free
        self._holders: dict[Holder, None] = {}
        self._flushes: list[tuple[int, asyncio.Future[None]]] = []
        self._retained: dict[str, Message] = {}
        self._inbox: queue.SimpleQueue[Batch | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self.committed = 0  # the number of the last batch committed
        # How long each commit took (seconds) and how many rows it changed, for
        # operators (/metrics); observed by the writer thread, read on the loop.
        self.commit_seconds = Histogram(COMMIT_SECONDS_BUCKETS)
        self.batch_changes = Histogram(BATCH_CHANGES_BUCKETS)
        self._closing = False  # read by the writer: stop retrying failed commits soon

    # Opening, flushing, closing.

    def open(self, loop: asyncio.AbstractEventLoop) -> StoredState:
        self._loop = loop
        self._offset = time.time() - loop.time()
        conn = self._conn = connect(self.path, self.commit_policy)
        try:
            loaded = load(conn, self.path, self._offset)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise damaged(self.path, str(exc)) from exc
        self._retained = loaded.retained
        self._next_message_id = loaded.next_message_id
        self._next_delivery_id = loaded.next_delivery_id
        self._next_spool_id = loaded.next_spool_id
        self._batch = self._new_batch(1)
        self._thread = threading.Thread(target=self._write, name="roost-store", daemon=True)
        self._thread.start()
        return loaded.state

    @property
    def is_open(self) -> bool:
        """Whether the writer thread runs (between open and close)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    async def flush(self) -> None:
        if self._scheduled:
            target = self._batch.number
        elif self._writing:
            target = self._batch.number - 1
        else:
            return
        assert self._loop is not None  # noqa: S101  (set by open)
        future = self._loop.create_future()
        self._flushes.append((target, future))
        await future

    async def close(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._closing = True
        await self.flush()
        self._thread = None
        self._inbox.put(None)
        await asyncio.to_thread(thread.join)

    # Holding acknowledgements until their effects are durable.

    def hold(self, conn: Holder) -> None:
        if self._holding:
            conn.hold(self._batch.number)
            self._holders[conn] = None
            if not self._scheduled:
                self._schedule()

    # Recording (on the loop).

    def _changed(self) -> None:
        self.op_count += 1
        if not self._scheduled:
            self._schedule()

    def session_saved(self, session: Session) -> None:
        offset = self._offset
        expires_at = session.expires_at
        will_at = session.will_at
        self._batch.sessions[session.client_id] = (
            session.client_id,
            session.expiry_interval,
            None if expires_at is None else expires_at + offset,
            will_text(session.will),
            None if will_at is None else will_at + offset,
            *identity_columns(session.identity),
        )
        self._changed()

    def session_ended(self, session: Session) -> None:
        client_id = session.client_id
        batch = self._batch
        for item in session.inflight.values():
            self.delivery_removed(session, item)
        for item in session.queue:
            self.delivery_removed(session, item)
        for topic_filter in session.subscriptions:
            batch.subscriptions[client_id, topic_filter] = None
        for packet_id in session.awaiting_release:
            batch.receive_ids[client_id, packet_id] = False
        batch.sessions[client_id] = None
        self._changed()

    def subscription_added(self, session: Session, record: SubscriptionRecord) -> None:
        client_id = session.client_id
        self._batch.subscriptions[client_id, record.topic_filter] = subscription_row(
            client_id, record
        )
        self._changed()

    def subscription_removed(self, session: Session, topic_filter: str) -> None:
        self._batch.subscriptions[session.client_id, topic_filter] = None
        self._changed()

    def delivery_queued(self, session: Session, item: Outgoing) -> None:
        self._delivery_row(session, item, None, 0)

    def delivery_sent(self, session: Session, item: Outgoing, packet_id: int) -> None:
        self._delivery_row(session, item, packet_id, 0)
        # QoS 2 is sent once: its packet id must be durable before the client sees it,
        # or a restart would send it again under another id.
        if item.qos == 2 and self._holding and session.connection is not None:
            self.hold(session.connection)

    def delivery_released(self, session: Session, item: Outgoing, packet_id: int) -> None:
        self._delivery_row(session, item, packet_id, 1)
        # After PUBREL the PUBLISH must never be resent [MQTT-4.3.3-5].
        if self._holding and session.connection is not None:
            self.hold(session.connection)

    def _delivery_row(
        self, session: Session, item: Outgoing, packet_id: int | None, released: int
    ) -> None:
        message = item.message
        if item.store_id == 0:
            self._ref(message)
            item.store_id = self._next_delivery_id
            self._next_delivery_id += 1
        store_id = item.store_id
        self._batch.deliveries[store_id] = (
            store_id,
            session.client_id,
            message.store_id,
            item.qos,
            int(item.retain),
            subscription_ids_text(item.subscription_ids),
            item.share_group,
            packet_id,
            released,
        )
        self._changed()

    def delivery_removed(self, session: Session, item: Outgoing) -> None:
        store_id = item.store_id
        if store_id == 0:
            return
        item.store_id = 0
        batch = self._batch
        if store_id >= batch.first_delivery:
            del batch.deliveries[store_id]
        else:
            batch.deliveries[store_id] = None
        self._unref(item.message)
        self._changed()

    def receive_id_added(self, session: Session, packet_id: int) -> None:
        self._batch.receive_ids[session.client_id, packet_id] = True
        self._changed()

    def receive_id_removed(self, session: Session, packet_id: int) -> None:
        self._batch.receive_ids[session.client_id, packet_id] = False
        self._changed()

    def retained_set(self, topic: str, message: Message) -> None:
        old = self._retained.get(topic)
        if old is message:
            return
        self._ref(message)
        self._retained[topic] = message
        self._batch.retained[topic] = message.store_id
        if old is not None:
            self._unref(old)
        self._changed()

    def meta_set(self, key: str, value: str) -> None:
        self._batch.meta[key] = value
        self._changed()

    def spool_added(self, subject: str, data: bytes, msg_id: str) -> int:
        row = self._next_spool_id
        self._next_spool_id += 1
        self._batch.spool[row] = (row, subject, data, msg_id)
        self._changed()
        return row

    def spool_removed(self, row: int) -> None:
        batch = self._batch
        if row >= batch.first_spool:
            batch.spool.pop(row, None)  # added in this batch: never written
        else:
            batch.spool[row] = None
        self._changed()

    def retained_deleted(self, topic: str) -> None:
        old = self._retained.pop(topic, None)
        if old is None:
            return
        self._batch.retained[topic] = None
        self._unref(old)
        self._changed()

    def _ref(self, message: Message) -> None:
        if message.store_id == 0:
            store_id = message.store_id = self._next_message_id
            self._next_message_id += 1
            self._batch.messages[store_id] = message_row(store_id, message, self._offset)
        message.store_refs += 1

    def _unref(self, message: Message) -> None:
        message.store_refs -= 1
        if message.store_refs:
            return
        store_id = message.store_id
        message.store_id = 0
        batch = self._batch
        if store_id >= batch.first_message:
            del batch.messages[store_id]
        else:
            batch.messages[store_id] = None

    # Handing batches to the writer (on the loop).

    def _new_batch(self, number: int) -> Batch:
        return Batch(number, self._next_message_id, self._next_delivery_id, self._next_spool_id)

    def _schedule(self) -> None:
        self._scheduled = True
        loop = self._loop
        assert loop is not None  # noqa: S101  (nothing is recorded before open)
        if self._window:
            loop.call_later(self._window, self._hand_over)
        else:
            # After the callbacks already due: what arrived in this loop turn joins in.
            loop.call_soon(self._hand_over)

    def _hand_over(self) -> None:
        if self._writing:
            self._want = True
            return
        batch = self._batch
        self._batch = self._new_batch(batch.number + 1)
        self._scheduled = False
        self._writing = True
        if batch.is_empty():
            # Everything cancelled out (say, a message delivered and acknowledged within
            # the batch): nothing to write, and every earlier batch is committed.
            assert self._loop is not None  # noqa: S101
            self._loop.call_soon(self._committed, batch.number)
        else:
            self._inbox.put(batch)

    def _committed(self, number: int) -> None:
        self._writing = False
        self.committed = number
        if self._holders:
            self._holders = {conn: None for conn in self._holders if conn.release(number)}
        if self._flushes:
            waiting = []
            for target, future in self._flushes:
                if target > number:
                    waiting.append((target, future))
                elif not future.done():
                    future.set_result(None)
            self._flushes = waiting
        if self._want:
            self._want = False
            self._hand_over()

    # The writer thread.

    def _write(self) -> None:
        conn = self._conn
        loop = self._loop
        assert conn is not None  # noqa: S101
        assert loop is not None  # noqa: S101
        try:
            while (batch := self._inbox.get()) is not None:
                attempt = 0
                while not self._commit(conn, batch, attempt):
                    attempt += 1
                    if self._closing and attempt >= _ATTEMPTS_WHEN_CLOSING:
                        log.error("Giving up writing to %s: the last changes are lost.", self.path)
                        break
                    time.sleep(_RETRY_DELAYS[min(attempt - 1, len(_RETRY_DELAYS) - 1)])
                try:
                    loop.call_soon_threadsafe(self._committed, batch.number)
                except RuntimeError:  # the loop is closed: nobody waits any more
                    return
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: Batch, attempt: int) -> bool:
        started = time.perf_counter()
        try:
            apply(conn, batch)
        except sqlite3.Error as exc:
            # The batch stays unacknowledged (its holders wait) and is retried: a full
            # disk may get space again, and giving up would lose what clients were
            # promised. Log each failure, since clients now stall.
            log.error(  # noqa: TRY400  (the message says all; no traceback per retry)
                "Cannot write to %s (attempt %d): %s.", self.path, attempt + 1, exc
            )
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            return False
        self.commit_seconds.observe(time.perf_counter() - started)
        self.batch_changes.observe(batch.size())
        return True
