"""The wills of a node that died, sent once by a surviving node (docs/clustering.md,
"Wills of a dead node").

Each node records the will of every client connected to it in the JetStream KV bucket
``ROOST_WILLS`` under ``<client>.<node>.<process>`` (the client id in base64url), and
deletes the record when the will must not be sent by anyone else: sent by the node
itself, cancelled, or cleared by a normal DISCONNECT (the broker's ``WillLog`` seam in
``registry.py``). The records are written by one task, in order, off the hot path.

When ``Liveness`` reports a process dead, the nodes race to create the claim
``reaper.<node>.<process>`` in ``ROOST_NODES``; the one that creates it reads the dead
process's records and, for each, deletes it with compare-and-set on the revision it
read and publishes the will only if the delete succeeded. So each will goes out once,
also if another node cancels or takes it meanwhile. The Will Delay Interval (capped by
the Session Expiry Interval, as on one node) counts from the detection.

A CONNECT here looks for the client's records on other nodes. One of a process known
to be dead whose will is delayed is cancelled (a new connection before the delay ends
[MQTT-3.1.3-9]), or, with Clean Start, sent now (the session ended). One of a process
not known to be dead is marked ``reconnected``, so that if its process turns out to
have died, a delayed will is cancelled then (a will without delay is sent, as a
taken-over connection's is).

A node cut off from NATS (or paused) for longer than ``node_timeout`` may have been
taken for dead while its clients stayed connected to it. When its own heartbeat comes
back after such a gap (``Liveness.on_back``) and a reaper has claimed it, the clients
whose records the reaper took (their wills went out) are disconnected (``will_taken``:
MQTT 5 DISCONNECT 0x80 with a reason string, no will again), so that they reconnect
and announce themselves anew; every other record is written again, so that a reaper
still waiting on a delayed will cannot take it (compare-and-set on the old revision),
and the claim is deleted, so that a later death of this process is reaped again. A
reaper stops taking wills of a process heard from again.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import TYPE_CHECKING, Any

from nats.js.api import Header
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KV_DEL, KV_OP

from roost.cluster.liveness import (
    API_TIMEOUT,
    NODES_BUCKET,
    REAPER_PREFIX,
    Liveness,
    open_bucket,
)
from roost.codec import DisconnectReasonCode, Will

if TYPE_CHECKING:
    from collections.abc import Callable

    from nats.aio.client import Client as NatsClient
    from nats.js.client import JetStreamContext
    from nats.js.kv import KeyValue

    from roost.broker.core import BrokerCore
    from roost.broker.registry import SessionRegistry

log = logging.getLogger("roost.cluster")

WILLS_BUCKET = "ROOST_WILLS"
STOP_WAIT = 2.0  # seconds a stopping node waits for its records to be written
BACK_WAIT = 1.0  # seconds, after being heard again, before looking for a reaper's claim


def client_token(client_id: str) -> str:
    """A client id as one KV key token."""
    return base64.urlsafe_b64encode(client_id.encode()).decode().rstrip("=") or "_"


def encode_record(
    client_id: str, node: str, process: str, will: Will, expiry_interval: int
) -> bytes:
    def b64(data: bytes | None) -> str | None:
        return None if data is None else base64.b64encode(data).decode()

    return json.dumps(
        {
            "client": client_id,
            "node": node,
            "process": process,
            "topic": will.topic,
            "payload": b64(will.payload),
            "qos": will.qos,
            "retain": will.retain,
            "delay": will.will_delay_interval or 0,
            "expiry": expiry_interval,
            "format": will.payload_format_indicator,
            "message_expiry": will.message_expiry_interval,
            "content_type": will.content_type,
            "response_topic": will.response_topic,
            "correlation": b64(will.correlation_data),
            "user_properties": will.user_properties,
        }
    ).encode()


def decode_will(record: dict[str, Any]) -> Will:
    correlation = record.get("correlation")
    return Will(
        topic=record["topic"],
        payload=base64.b64decode(record["payload"]),
        qos=int(record["qos"]),
        retain=bool(record["retain"]),
        will_delay_interval=int(record["delay"]) or None,
        payload_format_indicator=record.get("format"),
        message_expiry_interval=record.get("message_expiry"),
        content_type=record.get("content_type"),
        response_topic=record.get("response_topic"),
        correlation_data=None if correlation is None else base64.b64decode(correlation),
        user_properties=tuple((str(k), str(v)) for k, v in record.get("user_properties", ())),
    )


def effective_delay(record: dict[str, Any]) -> int:
    """Seconds from detection to sending: the will delay, unless the session ends first
    (as on one node: no delay when the session ended with its connection)."""
    delay, expiry = int(record["delay"]), int(record["expiry"])
    return 0 if delay == 0 or expiry == 0 else min(delay, expiry)


def end_without_will(core: BrokerCore, client_id: str) -> None:
    """``client_id``'s will went out from another node while it is connected here:
    end its connection (MQTT 5: DISCONNECT 0x80, saying why), not sending it again."""
    session = core.registry.sessions.get(client_id)
    if session is not None:
        session.will = None
        session.will_at = None
    conn = core.connection_of(client_id)
    if conn is not None:
        conn.disconnect(
            DisconnectReasonCode.UNSPECIFIED_ERROR,
            "this node was cut off from the cluster and your will was published",
            why="its will went out from another node while this node was cut off",
        )


class WillKeeper:
    """This node's will records (the registry's ``WillLog``) and the reaping of dead
    processes' wills."""

    def __init__(
        self, registry: SessionRegistry, node: str, process: str, node_timeout: float
    ) -> None:
        self._registry = registry
        self.node = node
        self.process = process
        self.liveness = Liveness(node, process, node_timeout, self._dead)
        self.liveness.on_back = self._back
        # A client's will went out from another node while it is connected here: end
        # its connection without the will (set by the node).
        self.will_taken: Callable[[str], None] | None = None
        self._suffix = f".{node}.{process}"
        self._kv: KeyValue | None = None
        self._js: JetStreamContext | None = None
        self._nodes_kv: KeyValue | None = None
        self._local: dict[str, bytes] = {}  # client -> our record of its will
        self._stored: set[str] = set()  # clients whose record the bucket has had
        self._suspect = False  # we may have been taken for dead: see _sort_out first
        self._sorting: asyncio.Task[None] | None = None
        self._dirty: dict[str, bool] = {}  # client -> to be written (True: put, False: delete)
        self._connects: dict[str, bool] = {}  # client -> Clean Start, to look for others
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writer: asyncio.Task[None] | None = None
        self.counts = {"wills/published": 0, "wills/cancelled": 0, "wills/pending": 0}

    # The registry's WillLog (synchronous).

    def connected(
        self, client_id: str, will: Will | None, expiry_interval: int, clean_start: bool
    ) -> None:
        if will is None:
            if self._local.pop(client_id, None) is not None:
                self._dirty[client_id] = False
        else:
            record = encode_record(client_id, self.node, self.process, will, expiry_interval)
            self._local[client_id] = record
            self._dirty[client_id] = True
        self._connects[client_id] = clean_start
        self._wake.set()

    def will_gone(self, client_id: str) -> None:
        if self._local.pop(client_id, None) is not None:
            self._dirty[client_id] = False
            self._wake.set()

    # Lifecycle.

    async def start(self, nc: NatsClient, replicas: int = 1) -> None:
        """After each (re)connection: the buckets (``replicas`` copies), the heartbeat,
        our records afresh."""
        self._js = nc.jetstream(timeout=API_TIMEOUT)
        self._kv = kv = await open_bucket(nc, WILLS_BUCKET, replicas=replicas)
        # Away long enough to have been reaped: our records are written again only once
        # we know which wills went out (``_sort_out``).
        if self.liveness.silent_too_long():
            self._suspect = True
        await self.liveness.start(nc, replicas)
        self._nodes_kv = self.liveness.kv
        # What we wrote before (this process, or an earlier one of this node) that is
        # no longer true is deleted or, for an earlier process, reaped.
        earlier: set[str] = set()
        for key in await self._keys(f"*.{self.node}.*"):
            process = key.rsplit(".", 1)[1]
            if process != self.process:
                earlier.add(process)
            elif self._client_of(key) not in self._local and await self._read(kv, key):
                await self._erase(key)
        if self._suspect:
            self._back()
        else:
            self._rewrite()
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_loop(), name="roost-cluster-wills")
        for process in earlier:
            self._dead(self.node, process)

    def lost(self) -> None:
        self.liveness.lost()
        self._kv = None

    async def stop(self) -> None:
        """Write what waits (bounded), stop the heartbeat (the other nodes then take the
        wills still pending here) and the reaping under way."""
        if self._writer is not None and self._kv is not None:
            self._wake.set()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + STOP_WAIT
            while (self._dirty or self._connects) and loop.time() < deadline:
                await asyncio.sleep(0.01)
        for task in [*self._tasks, *([self._writer] if self._writer else [])]:
            task.cancel()
        self._writer = None
        await self.liveness.stop()

    # Writing our records (one task, in order).

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            kv = self._kv
            if kv is None:
                continue
            dirty, self._dirty = self._dirty, {}
            connects, self._connects = self._connects, {}
            try:
                for client, put in dirty.items():
                    key = client_token(client) + self._suffix
                    record = self._local.get(client)
                    if put and record is not None:
                        await kv.put(key, record)
                        self._stored.add(client)
                    elif not put:
                        await self._erase(key)
                        self._stored.discard(client)
                for client, clean_start in connects.items():
                    await self._others(kv, client, clean_start)
            except Exception as exc:  # noqa: BLE001  (NATS lost: start() writes them again)
                log.debug("Cluster: writing will records failed: %r", exc)

    async def _others(self, kv: KeyValue, client: str, clean_start: bool) -> None:
        """Records of ``client`` made on other nodes (or by earlier processes)."""
        for key in await self._keys(f"{client_token(client)}.*.*"):
            if key.endswith(self._suffix):
                continue
            found = await self._read(kv, key)
            if found is None:
                continue
            revision, record = found
            node, process = record["node"], record["process"]
            if self.liveness.is_gone(node, process):
                if effective_delay(record) == 0:
                    continue  # the reaper sends it (a connection elsewhere does not stop it)
                if clean_start:
                    await self._take(kv, key, revision, record, "its session ended")
                elif await self._delete(key, revision):
                    log.info("Will of client %s cancelled: it reconnected here.", client)
                    self.counts["wills/cancelled"] += 1
            elif not record.get("reconnected"):
                record["reconnected"] = True
                try:
                    await kv.update(key, json.dumps(record).encode(), last=revision)
                except Exception as exc:  # noqa: BLE001  (changed meanwhile: its owner's)
                    log.debug("Cluster: marking %s reconnected failed: %r", key, exc)

    # Back after being taken for dead.

    def _back(self) -> None:
        self._suspect = True
        if self._kv is None or self._sorting is not None:
            return  # start() calls again once the buckets are open; or under way
        task = self._sorting = asyncio.create_task(self._sort_out(), name="roost-cluster-back")
        self._tasks.add(task)
        task.add_done_callback(self._sorted)

    def _sorted(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._sorting = None

    async def _sort_out(self) -> None:
        """Our heartbeat came back after a gap: see whether a reaper took our wills
        (module doc)."""
        await asyncio.sleep(BACK_WAIT)  # for a claim made just before we were heard
        kv, nodes_kv = self._kv, self._nodes_kv
        if kv is None or nodes_kv is None:
            return  # NATS lost again: start() comes again
        self._suspect = False
        claim = f"{REAPER_PREFIX}{self.node}.{self.process}"
        try:
            await nodes_kv.get(claim)
            taken = [
                client
                for client in list(self._stored)
                if client in self._local
                and await self._read(kv, client_token(client) + self._suffix) is None
            ]
        except KeyNotFoundError:
            self._rewrite()  # nobody took us for dead
            return
        except Exception as exc:  # noqa: BLE001  (NATS slow or lost again)
            log.warning("Cluster: could not tell whether a reaper took our wills: %r", exc)
            self._rewrite()
            return
        log.warning(
            "Cluster: this node was taken for dead; the wills of %d connected client(s)"
            " went out from another node.",
            len(taken),
        )
        for client in taken:
            self._local.pop(client, None)
            self._stored.discard(client)
            self._dirty.pop(client, None)
            if self.will_taken is not None:
                self.will_taken(client)
        self._rewrite()
        try:
            await nodes_kv.delete(claim)
        except Exception as exc:  # noqa: BLE001  (NATS lost: the claim expires with the bucket's age)
            log.debug("Cluster: deleting %s failed: %r", claim, exc)

    def _rewrite(self) -> None:
        """Write every record of ours again (new revisions: a reaper that read the old
        ones cannot take them)."""
        self._dirty.update(dict.fromkeys(self._local, True))
        self._wake.set()

    # Reaping a dead process's wills.

    def _dead(self, node: str, process: str) -> None:
        task = asyncio.create_task(self._reap(node, process), name="roost-cluster-reap")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reap(self, node: str, process: str) -> None:
        kv, nodes_kv = self._kv, self._nodes_kv
        if kv is None or nodes_kv is None:
            return
        loop = asyncio.get_running_loop()
        detected = loop.time()
        claim = f"{REAPER_PREFIX}{node}.{process}"
        try:
            await nodes_kv.create(claim, f"{self.node}.{self.process}".encode())
        except Exception as exc:  # noqa: BLE001  (another node claimed it first)
            log.info(
                "Cluster: the wills of node %s (process %s) are another node's.", node, process
            )
            log.debug("Cluster: claiming %s failed: %r", claim, exc)
            return
        await self._adopt_claims(nodes_kv, f"{node}.{process}")
        records = []
        for key in await self._keys(f"*.{node}.{process}"):
            found = await self._read(kv, key)  # None: deleted
            if found is not None:
                records.append((key, *found))
        log.info(
            "Cluster: sending the wills of node %s (process %s): %d record(s).",
            node,
            process,
            len(records),
        )
        delayed: list[tuple[float, str, int, dict[str, Any]]] = []
        for key, revision, record in records:
            delay = effective_delay(record)
            if record.get("reconnected") and delay:
                if await self._delete(key, revision):
                    log.info(
                        "Will of client %s cancelled: it reconnected on another node.",
                        record.get("client"),
                    )
                    self.counts["wills/cancelled"] += 1
            elif delay == 0:
                if not self._still_dead(node, process):
                    return
                await self._take(kv, key, revision, record, f"node {node} died")
            else:
                delayed.append((detected + delay, key, revision, record))
        delayed.sort(key=lambda item: item[0])
        self.counts["wills/pending"] += len(delayed)
        for index, (due, key, revision, record) in enumerate(delayed):
            await asyncio.sleep(max(0.0, due - loop.time()))
            while self._kv is None:  # NATS lost meanwhile: the record waits in the bucket
                await asyncio.sleep(1.0)
            if not self._still_dead(node, process):
                self.counts["wills/pending"] -= len(delayed) - index
                return
            self.counts["wills/pending"] -= 1
            # A changed record was cancelled or taken by a CONNECT elsewhere.
            await self._take(self._kv, key, revision, record, f"node {node} died")

    def _still_dead(self, node: str, process: str) -> bool:
        """False once a process taken for dead is heard from again: the wills still
        recorded are its own business again (module doc)."""
        if self.liveness.is_gone(node, process):
            return True
        log.warning(
            "Cluster: node %s (process %s) is back: its remaining wills are its own.",
            node,
            process,
        )
        return False

    async def _adopt_claims(self, nodes_kv: KeyValue, reaper: str) -> None:
        """The dead process may have been reaping others, delayed wills still waiting:
        its claims are deleted (compare-and-set: one node wins) and reaped again here,
        delays counted from now."""
        for key in await self._keys(f"{REAPER_PREFIX}>", NODES_BUCKET):
            try:
                entry = await nodes_kv.get(key)
            except KeyNotFoundError:
                continue
            if entry.value != reaper.encode():
                continue
            try:
                await nodes_kv.delete(key, last=entry.revision)
            except Exception as exc:  # noqa: BLE001  (another node adopted it first)
                log.debug("Cluster: adopting %s failed: %r", key, exc)
                continue
            node, process = key[len(REAPER_PREFIX) :].rsplit(".", 1)
            log.warning(
                "Cluster: node %s died while sending the wills of node %s (process %s):"
                " taking them over.",
                reaper.rsplit(".", 1)[0],
                node,
                process,
            )
            self._dead(node, process)

    async def _take(
        self, kv: KeyValue, key: str, revision: int, record: dict[str, Any], why: str
    ) -> None:
        """Delete the record if it is still at ``revision``; if so, publish its will."""
        if not await self._delete(key, revision):
            return
        try:
            will = decode_will(record)
        except (KeyError, ValueError, TypeError) as exc:
            log.warning("Cluster: a bad will record %s: %r", key, exc)
            return
        client = str(record.get("client", ""))
        log.info("Cluster: sending the will of client %s (%s).", client, why)
        self.counts["wills/published"] += 1
        self._registry.publish_will(client, will, asyncio.get_running_loop().time())

    # KV helpers.

    async def _keys(self, pattern: str, bucket: str = WILLS_BUCKET) -> list[str]:
        """The keys matching ``pattern`` (deleted ones included: ``_read`` skips them),
        from the stream's subject counts: one request, no consumer."""
        js = self._js
        if js is None:
            return []
        prefix = f"$KV.{bucket}."
        info = await js.stream_info(f"KV_{bucket}", subjects_filter=prefix + pattern)
        return [subject[len(prefix) :] for subject in info.state.subjects or {}]

    @staticmethod
    async def _read(kv: KeyValue, key: str) -> tuple[int, dict[str, Any]] | None:
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        try:
            record = json.loads(entry.value)
        except ValueError:
            return None
        return (entry.revision or 0), record

    async def _delete(self, key: str, revision: int) -> bool:
        """Delete ``key`` only if it is still at ``revision``: one of several nodes wins."""
        try:
            await self._erase(key, revision)
        except Exception as exc:  # noqa: BLE001  (wrong last sequence: someone else's now)
            log.debug("Cluster: %s changed meanwhile: %r", key, exc)
            return False
        return True

    async def _erase(self, key: str, revision: int = 0) -> None:
        """Delete ``key`` (only if still at ``revision``, when given; raises if not), then
        remove the delete marker too: a purge of the key's subject up to the marker, so
        that a record written after it stays. Without it, every client and process would
        leave a marker in the bucket's stream for good."""
        js = self._js
        if js is None:
            raise ConnectionError("NATS is not connected")
        subject = f"$KV.{WILLS_BUCKET}.{key}"
        headers = {KV_OP: KV_DEL}
        if revision:
            headers[Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value] = str(revision)
        ack = await js.publish(subject, headers=headers)
        try:
            await js.purge_stream(f"KV_{WILLS_BUCKET}", subject=subject, seq=ack.seq + 1)
        except Exception as exc:  # noqa: BLE001  (the marker stays: harmless)
            log.debug("Cluster: purging the marker of %s failed: %r", key, exc)

    def _client_of(self, key: str) -> str:
        token = key.split(".", 1)[0]
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
