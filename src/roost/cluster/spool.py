"""QoS 1/2 messages for ``ROOST_QOS`` that wait for it, kept in the node's store
(docs/clustering.md, "The spool").

When NATS is lost, or JetStream does not answer a message in time, a node keeps what
it owes the stream here, in order, and sends it first when the stream answers again
(``durable.QosStream``). Every entry is also a row of the store's spool table
(``Store.spool_added``, SQLite when persistence is on), so an acknowledgement released
on the strength of the spool means "committed to this node's disk": a node killed, or
stopped, before NATS returns sends the rows when it starts again.

Two ways in, two ways to wait for the commit:

- a new message published while the stream is unready is added during its PUBLISH's
  handling: the row goes into the store's current batch, that counts as a change of
  the PUBLISH (``BrokerCore.changes``), and the broker holds its PUBACK/PUBREC on the
  store's gate (gate 0) until the commit, as for any other durable change;
- messages that were waiting for JetStream (their publishers' acknowledgements held on
  gate 1) are put back in front (``put_back``). Their acknowledgements were queued on
  gate 1 long before, and a transport releases its held packets in order, so a later
  gate-0 hold could not keep them. Instead the stream keeps gate 1 shut for them
  until the store says the rows are committed: ``CommitWatch`` is a ``Holder`` given
  to ``Store.hold``, and the store calls its ``release`` when the batch with the rows
  is committed (at once with a store that does not hold: persistence off, or commit
  policies ``batched`` and ``off``, which promise less for everything).

Entries stay in memory as well (the bytes to send), so the spool is bounded by the
disk and by this process's memory; nothing is dropped. Rows are deleted once
JetStream acknowledged their message; the deletes ride along with the store's next
batches.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from roost.broker.persistence.store import Spooled, Store

log = logging.getLogger("roost.cluster")

WARN_FROM = 10_000  # a WARNING when the spool reaches this many messages, then each doubling


class Entry:
    """A message for the stream: published (waiting for its answer) or spooled."""

    __slots__ = ("data", "msg_id", "row", "sent_at", "subject", "tries")

    def __init__(self, subject: str, data: bytes, msg_id: str, row: int = 0) -> None:
        self.subject = subject
        self.data = data
        self.msg_id = msg_id
        self.row = row  # its row in the store's spool; 0: none
        self.sent_at = 0.0  # 0: not sent yet
        self.tries = 0


class CommitWatch:
    """A ``Holder`` for the store: calls ``done`` once the batch it was last given in
    ``hold`` is committed."""

    __slots__ = ("_done", "target")

    def __init__(self, done: Callable[[], None]) -> None:
        self._done = done
        self.target = 0  # the batch to wait for; 0: none

    def hold(self, batch: int, gate: int = 0) -> None:
        self.target = max(self.target, batch)

    def release(self, committed: int, gate: int = 0) -> bool:
        if committed < self.target:
            return True
        self.target = 0
        self._done()
        return False

    def watch(self, store: Store) -> None:
        """Call ``done`` when what ``store`` recorded so far is committed (now, if it
        does not hold acknowledgements)."""
        store.hold(self)
        if not self.target:
            self._done()


class Spool:
    """The entries waiting for the stream, in order, each with its row in the store."""

    def __init__(self, store: Store, stream: str, committed: Callable[[], None]) -> None:
        self._store = store
        self._stream = stream
        self.entries: list[Entry] = []
        self.bytes = 0
        self._watch = CommitWatch(committed)
        self._warn_at = WARN_FROM

    def __len__(self) -> int:
        return len(self.entries)

    def restore(self, rows: list[Spooled]) -> None:
        """What the store kept from before a restart: in front of anything newer."""
        if not rows:
            return
        restored = [Entry(row.subject, row.data, row.msg_id, row.row) for row in rows]
        self.entries[:0] = restored
        self.bytes += sum(len(entry.data) for entry in restored)
        log.warning(
            "Cluster: %d QoS 1/2 message(s) kept in the store for %s before this start;"
            " sent first when it answers.",
            len(restored),
            self._stream,
        )

    def add(self, entry: Entry) -> None:
        """A new message, after every other; its row joins the store's current batch."""
        entry.row = self._store.spool_added(entry.subject, entry.data, entry.msg_id)
        self.entries.append(entry)
        self.bytes += len(entry.data)
        self._grown()

    def put_back(self, entries: list[Entry]) -> int:
        """Messages that were waiting for the stream, in front of every other (they are
        older); ``committed`` is called once their rows are committed. Returns how many
        had no row yet."""
        store = self._store
        fresh = 0
        for entry in entries:
            entry.sent_at = 0.0
            entry.tries = 0
            if not entry.row:
                entry.row = store.spool_added(entry.subject, entry.data, entry.msg_id)
                fresh += 1
            self.bytes += len(entry.data)
        self.entries[:0] = entries
        self._watch.watch(store)
        self._grown()
        return fresh

    def take(self) -> list[Entry]:
        """Everything, in order, to be sent; their rows stay until ``sent``."""
        entries, self.entries, self.bytes = self.entries, [], 0
        self._warn_at = WARN_FROM
        return entries

    def sent(self, entry: Entry) -> None:
        """JetStream has ``entry``: its row can go."""
        self._store.spool_removed(entry.row)

    def _grown(self) -> None:
        if len(self.entries) < self._warn_at:
            return
        self._warn_at *= 2
        log.warning(
            "Cluster: %d QoS 1/2 message(s) (%d MiB) wait for %s in this node's store;"
            " none is dropped: the spool grows with the disk and this process's memory"
            " until the stream answers.",
            len(self.entries),
            self.bytes >> 20,
            self._stream,
        )
