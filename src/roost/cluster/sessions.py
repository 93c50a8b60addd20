"""The cluster's session directory: which node holds each client's session, in the
JetStream KV bucket ``ROOST_SESSIONS`` (docs/clustering.md, "Persistent sessions").

It is the broker's ``ports.SessionDirectory``. A CONNECT is accepted only once
``claim`` has made this node the session's owner with a compare-and-set on its record
(epoch + 1): of two CONNECTs racing on two nodes, the one whose write lands second sees
the first's record and takes the session over from it, so one connection survives.
When the record named another node, that node is asked on ``roost.ctl.<node>`` to close
its connection (MQTT 5: DISCONNECT 0x8E) and hand the session's state over
(``control.py``); if it does not answer within ``ANSWER_TIMEOUT`` it is taken for dead
and the session resumes from the record (its subscriptions).

Every node also follows the bucket: a record that moved to another node closes the
local connection of that client (a lost control message changes nothing), and a local
session left behind is dropped after ``STALE_AFTER`` unless handed over by then. A
writer task keeps this node's records in step with its sessions (subscriptions changed,
session ended: record deleted), always with compare-and-set, so a node never writes
over a record another node has claimed since.

While NATS is unreachable, CONNECTs are accepted on this node's own knowledge, but once
that has lasted ``offline_session_grace`` seconds a persistent session this node does
not hold is refused (CONNACK 0x88), rather than forked from the one the cluster knows.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nats.js.api import DeliverPolicy, StorageType
from nats.js.errors import APIError, BadRequestError, KeyNotFoundError, KeyWrongLastSequenceError

from roost.broker.connect import Refusal
from roost.broker.persistence.store import StoredSession
from roost.cluster import control
from roost.cluster.control import SessionRecord
from roost.codec import ConnectReasonCode

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription
    from nats.js.client import JetStreamContext
    from nats.js.kv import KeyValue

    from roost.broker.registry import SessionRegistry
    from roost.broker.sessions import Session

log = logging.getLogger("roost.cluster")

BUCKET = "ROOST_SESSIONS"
CONTROL = "roost.ctl."
LEFTOVERS = ".leftovers"  # CONTROL + node + this: a stale copy's messages for its owner
ANSWER_TIMEOUT = 2.0  # seconds the old owner has to hand a session over
CLAIM_ATTEMPTS = 10  # compare-and-set attempts before a CONNECT is refused (0x89)
PENDING_WAIT = 2.0  # seconds a takeover waits for this node's own claim to attach
MISSING_ROUNDS = 3  # takeover requests at most: the last hands over what there is
DRAIN_TIMEOUT = 1.0  # seconds a handover waits for this node's QoS consumer to catch up
NEVER_EXPIRES = 0xFFFFFFFF  # MQTT 5's Session Expiry Interval for "does not expire"
STALE_AFTER = 5.0  # seconds a session whose record moved elsewhere waits for its handover
API_TIMEOUT = 5.0
_WRONG_LAST = (10071, 10164)  # JetStream: wrong last sequence (a lost compare-and-set)
_DELETED = ("DEL", "PURGE")
_BRIDGES = "$bridge/"  # the broker's own bridge sessions stay on their node


@dataclass(slots=True)
class Owned:
    """A record this process wrote last: its epoch and revision (for the next CAS)."""

    epoch: int
    revision: int
    # The session went on from an earlier owner's (not a new one: Clean Start, expired,
    # or no record): what that owner still held may be given to it (leftovers).
    resumed: bool = True


async def _nothing_to_wait_for() -> None:
    return None


async def _no_drain(_timeout: float) -> None:
    return None


class SessionDirectory:
    """This node's view of ``ROOST_SESSIONS`` and its part in claims and takeovers."""

    def __init__(
        self, registry: SessionRegistry, name: str, origin: bytes, offline_grace: float
    ) -> None:
        self._registry = registry
        self.name = name
        self.process = origin.decode()
        self.offline_grace = offline_grace
        # Unreachable since when (monotonic); None while NATS and the bucket are there.
        self.offline_since: float | None = time.monotonic()
        self._nc: NatsClient | None = None
        self._kv: KeyValue | None = None
        self._owned: dict[str, Owned] = {}
        self._pending: dict[str, float] = {}  # claims not attached yet: client id -> until
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._watch: Subscription | None = None
        self._control: Subscription | None = None
        self._stale: dict[str, asyncio.TimerHandle] = {}
        self._stale_owner: dict[str, str] = {}  # client id -> the node that holds it now
        self._leftovers: set[asyncio.Task[None]] = set()  # messages on their way there
        self.counts = dict.fromkeys(
            (
                "sessions/claimed",
                "sessions/taken_over",
                "sessions/handed_over",
                "sessions/owner_silent",
                "sessions/refused_offline",
                "sessions/leftovers_sent",
                "sessions/leftovers_taken",
                "sessions/leftovers_lost",
                "sessions/leftovers_ended",
                "sessions/expired_with_owner",
                "sessions/filters_sent_ahead",
            ),
            0,
        )
        # When a node process was found dead (liveness), by its origin; None if not
        # known to be (set by the node).
        self.gone_since: Callable[[str], float | None] = lambda _origin: None
        # Until the filters this node has started using are known to the live nodes.
        self.settled: Callable[[], Awaitable[None]] = _nothing_to_wait_for
        # Until this node has routed what the QoS stream holds now (at most so long).
        self.drained: Callable[[float], Awaitable[object]] = _no_drain
        registry.directory = self

    # The broker's seam (ports.SessionDirectory).

    async def claim(
        self, client_id: str, clean_start: bool, expiry_interval: int
    ) -> Refusal | None:
        self._pending[client_id] = time.monotonic() + PENDING_WAIT
        try:
            refusal = await self._claim(client_id, clean_start, expiry_interval)
        except BaseException:
            self._pending.pop(client_id, None)
            raise
        if refusal is not None:
            self._pending.pop(client_id, None)
        return refusal

    def attached(self, session: Session) -> None:
        self._pending.pop(session.client_id, None)
        self.changed(session)

    def changed(self, session: Session) -> None:
        if not session.client_id.startswith(_BRIDGES):
            self._dirty.add(session.client_id)
            self._wake.set()

    # Lifecycle (ClusterNode).

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name="roost-cluster-sessions")

    async def online(self, nc: NatsClient, replicas: int = 1) -> None:
        """NATS is (back): open the bucket (made with ``replicas`` copies if missing),
        answer takeovers, follow the records, and write every local session's record
        again."""
        self.offline_since = None
        js = nc.jetstream(timeout=API_TIMEOUT)
        try:
            kv = await js.create_key_value(
                bucket=BUCKET, history=1, storage=StorageType.FILE, replicas=replicas
            )
        except BadRequestError:
            kv = await js.key_value(BUCKET)  # an operator's own settings: use them
        if self._nc is not nc:
            # nats-py subscribes again by itself after a reconnect of the same client.
            self._nc = nc
            self._control = await nc.subscribe(CONTROL + self.name, cb=self._answer)
            await nc.subscribe(CONTROL + self.name + LEFTOVERS, cb=self._take_leftovers)
        await self._follow(js)
        self._kv = kv
        self._dirty.update(cid for cid in self._registry.sessions if not cid.startswith(_BRIDGES))
        self._wake.set()

    def offline(self) -> None:
        if self.offline_since is None:
            self.offline_since = time.monotonic()

    async def stop(self) -> None:
        for handle in self._stale.values():
            handle.cancel()
        self._stale.clear()
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.wait({self._writer}, timeout=API_TIMEOUT)
            self._writer = None
        for sub in (self._watch, self._control):
            if sub is not None:
                try:
                    await sub.unsubscribe()
                except Exception as exc:  # noqa: BLE001  (the connection may be gone)
                    log.debug("Cluster: unsubscribing at stop: %r", exc)
        self._watch = self._control = None

    def sys_values(self) -> dict[str, str]:
        return {f"$SYS/broker/cluster/{name}": str(n) for name, n in self.counts.items()}

    # Claiming a session for a CONNECT.

    async def _claim(
        self, client_id: str, clean_start: bool, expiry_interval: int
    ) -> Refusal | None:
        kv = self._kv
        if kv is None or self.offline_since is not None:
            return self._claim_offline(client_id, clean_start, expiry_interval)
        key = control.record_key(client_id)
        for attempt in range(CLAIM_ATTEMPTS):
            try:
                old, last = await self._read(kv, client_id, key)
                epoch = (old.epoch if old is not None else 0) + 1
                kept = old is not None and not clean_start and not self._expired(client_id, old)
                record = SessionRecord(
                    self.name,
                    self.process,
                    epoch,
                    expiry_interval,
                    True,
                    old.subscriptions if old is not None and kept else [],
                )
                data = control.encode_record(record)
                if last:
                    revision = await kv.update(key, data, last=last)
                else:
                    revision = await kv.create(key, data)
            except KeyWrongLastSequenceError:
                # Another node claimed it meanwhile: read its record and take it over.
                await asyncio.sleep(random.uniform(0, 0.01 * (attempt + 1)))  # noqa: S311
                continue
            except Exception as exc:  # noqa: BLE001  (NATS lost mid-claim)
                log.warning("Cluster: claiming the session of %s failed: %r", client_id, exc)
                return self._claim_offline(client_id, clean_start, expiry_interval)
            break
        else:
            return Refusal(
                ConnectReasonCode.SERVER_BUSY, "the session is being claimed on other nodes"
            )
        self._owned[client_id] = Owned(epoch, revision, kept)
        self.counts["sessions/claimed"] += 1
        if old is not None and old.node != self.name:
            await self._take_over(client_id, old, epoch, clean_start, kept)
        return None

    def _expired(self, client_id: str, old: SessionRecord) -> bool:
        """Whether the session of ``old`` has ended: no expiry interval, or its owner
        died longer ago than the interval (counted from the death's detection, since
        its client can have been connected until then; a session of an owner not known
        to be dead is left to that owner to expire)."""
        if old.expiry_interval <= 0:
            return True
        if old.node == self.name or old.expiry_interval >= NEVER_EXPIRES:
            return False
        since = self.gone_since(old.process)
        if since is None or asyncio.get_running_loop().time() - since <= old.expiry_interval:
            return False
        self.counts["sessions/expired_with_owner"] += 1
        log.info(
            "Cluster: the session of %s expired with its node %s (%d s after it died).",
            client_id,
            old.node,
            old.expiry_interval,
        )
        return True

    def _claim_offline(
        self, client_id: str, clean_start: bool, expiry_interval: int
    ) -> Refusal | None:
        self._dirty.add(client_id)  # its record is written when NATS is back
        if (clean_start and expiry_interval == 0) or client_id in self._registry.sessions:
            return None
        since = self.offline_since
        if since is not None and time.monotonic() - since >= self.offline_grace:
            self.counts["sessions/refused_offline"] += 1
            return Refusal(
                ConnectReasonCode.SERVER_UNAVAILABLE,
                f"the cluster has been unreachable for over offline_session_grace"
                f" ({self.offline_grace:g} s): no persistent session can be claimed",
            )
        return None

    async def _read(
        self, kv: KeyValue, client_id: str, key: str
    ) -> tuple[SessionRecord | None, int]:
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            return None, 0
        try:
            return control.decode_record(client_id, entry.value or b""), entry.revision or 0
        except ValueError as exc:
            log.warning(
                "Cluster: session record of %s unreadable (%s); replacing it.", client_id, exc
            )
            return None, entry.revision or 0

    async def _take_over(
        self, client_id: str, old: SessionRecord, epoch: int, clean_start: bool, kept: bool
    ) -> None:
        """Ask the old owner to let go (and hand over what it held); if it is silent,
        resume from its record.

        A kept session is first put in place here from the record and receives (offline)
        until every live node knows its filters are here too; only then is the old owner
        asked. So no message published meanwhile falls between the two nodes: it
        reaches the old owner (and comes with its state), this node, or both (the
        copy here is dropped: ``SessionRegistry.merge``)."""
        assert self._nc is not None  # noqa: S101  (online)
        registry = self._registry
        loop = asyncio.get_running_loop()
        if kept:
            registry.adopt(
                StoredSession(
                    client_id, old.expiry_interval, None, None, None, None, old.subscriptions
                ),
                loop.time(),
            )
            await self.settled()
        state: StoredSession | None = None
        answered = False
        # The record can lag a SUBSCRIBE on the old owner by a few milliseconds: it
        # names what this node lacks, which is put in force here before it hands over.
        filters = [sub.topic_filter for sub in old.subscriptions] if kept else None
        try:
            for round_ in range(MISSING_ROUNDS):
                answer = await self._nc.request(
                    CONTROL + old.node,
                    control.encode_request(
                        client_id,
                        epoch,
                        clean_start,
                        filters if round_ < MISSING_ROUNDS - 1 else None,
                    ),
                    timeout=ANSWER_TIMEOUT,
                )
                missing = control.decode_missing(client_id, answer.data)
                if missing is None or filters is None:
                    break
                registry.add_subscriptions(client_id, missing)
                filters += [sub.topic_filter for sub in missing]
                await self.settled()
            state = control.decode_answer(client_id, answer.data, loop.time())
            answered = True
            self.counts["sessions/taken_over"] += 1
        except Exception as exc:  # noqa: BLE001  (timeout, no responders: it is gone)
            self.counts["sessions/owner_silent"] += 1
            log.warning(
                "Cluster: node %s did not hand over the session of %s (%r); resuming it"
                " from its record (subscriptions only).",
                old.node,
                client_id,
                exc,
            )
        now = loop.time()
        if state is not None and not clean_start:
            registry.merge(state, now)
        elif (answered or not kept) and client_id in registry.sessions:
            # The old owner held none (it ended there), or a copy left here from before
            # the session moved away is stale: the client starts anew.
            registry.hand_over(client_id, now, keep=False)
        # Silent and kept: the session put in place from the record stands.

    # Answering another node's takeover.

    async def _answer(self, msg: Msg) -> None:
        try:
            client_id, epoch, clean_start, filters = control.decode_request(msg.data)
        except ValueError as exc:
            log.warning("Cluster: bad takeover request: %s", exc)
            return
        # A claim of ours that has not attached yet: let it, then take it over.
        while self._pending.get(client_id, 0.0) > time.monotonic():
            await asyncio.sleep(0.01)
        owned = self._owned.get(client_id)
        if owned is not None and owned.epoch > epoch:
            await msg.respond(b'{"session":null,"stale":true}')
            return
        session = self._registry.sessions.get(client_id)
        if filters is not None and session is not None and not clean_start:
            known = set(filters)
            missing = [sub for f, sub in session.subscriptions.items() if f not in known]
            if missing:
                self.counts["sessions/filters_sent_ahead"] += 1
                log.info(
                    "Cluster: the record of %s lacks %d of its subscription(s) here; sent"
                    " ahead of the handover.",
                    client_id,
                    len(missing),
                )
                await msg.respond(control.encode_missing(missing))
                return
        self._owned.pop(client_id, None)
        if not clean_start:
            # What the stream holds for the session now must be in what goes: the new
            # owner's consumer may have passed it before the session was there.
            await self.drained(DRAIN_TIMEOUT)
        loop = asyncio.get_running_loop()
        now = loop.time()
        state = self._registry.hand_over(client_id, now, keep=not clean_start)
        if state is not None:
            self.counts["sessions/handed_over"] += 1
        await msg.respond(control.encode_answer(state, now))

    # Following the bucket.

    async def _follow(self, js: JetStreamContext) -> None:
        if self._watch is not None:
            old, self._watch = self._watch, None
            try:
                await old.unsubscribe()
            except Exception as exc:  # noqa: BLE001
                log.debug("Cluster: dropping the old session watch: %r", exc)
        self._watch = await js.subscribe(
            f"$KV.{BUCKET}.>",
            cb=self._watched,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        )

    async def _watched(self, msg: Msg) -> None:
        prefix = f"$KV.{BUCKET}."
        try:
            client_id = control.key_client(msg.subject[len(prefix) :])
        except ValueError:
            return
        headers = msg.headers or {}
        if headers.get("KV-Operation") in _DELETED:
            return
        try:
            record = control.decode_record(client_id, msg.data)
        except ValueError:
            return
        registry = self._registry
        if record.node == self.name:
            if record.process != self.process and client_id in registry.sessions:
                # Written by this node's earlier process, whose session was restored.
                self._owned.setdefault(client_id, Owned(record.epoch, msg.metadata.sequence.stream))
            return
        owned = self._owned.get(client_id)
        if owned is not None and owned.epoch > record.epoch:
            return  # an older claim arriving late
        if self._pending.get(client_id, 0.0) > time.monotonic():
            return  # our claim under way settles it
        self._owned.pop(client_id, None)
        if client_id not in registry.sessions:
            return
        now = asyncio.get_running_loop().time()
        registry.taken_elsewhere(client_id, now)
        handle = self._stale.pop(client_id, None)
        if handle is not None:
            handle.cancel()
        self._stale_owner[client_id] = record.node
        self._stale[client_id] = asyncio.get_running_loop().call_later(
            STALE_AFTER, self._drop_stale, client_id
        )

    def _drop_stale(self, client_id: str) -> None:
        self._stale.pop(client_id, None)
        owner = self._stale_owner.pop(client_id, None)
        session = self._registry.sessions.get(client_id)
        if (
            session is None
            or session.connection is not None
            or client_id in self._owned
            or self._pending.get(client_id, 0.0) > time.monotonic()
        ):
            return
        log.info("Cluster: session of %s is held by another node now; dropped here.", client_id)
        now = asyncio.get_running_loop().time()
        state = self._registry.hand_over(client_id, now, keep=True)
        # What this copy still owed its client (queued here before this node died, or
        # taken from ROOST_QOS for it since) goes to the node that holds the session.
        if state is not None and owner is not None:
            state.deliveries = [item for item in state.deliveries if not item.released]
            if state.deliveries:
                task = asyncio.get_running_loop().create_task(self._send_leftovers(owner, state))
                self._leftovers.add(task)
                task.add_done_callback(self._leftovers.discard)

    async def _send_leftovers(self, owner: str, state: StoredSession) -> None:
        count = len(state.deliveries)
        for _attempt in range(3):
            nc = self._nc
            if nc is None:
                break
            now = asyncio.get_running_loop().time()
            body = state.client_id.encode() + b"\n" + control.encode_answer(state, now)
            try:
                answer = await nc.request(CONTROL + owner + LEFTOVERS, body, timeout=ANSWER_TIMEOUT)
            except Exception as exc:  # noqa: BLE001  (timeout, no responders: try again)
                log.debug("Cluster: sending leftovers of %s to %s: %r", state.client_id, owner, exc)
                continue
            if answer.data == b"ended":
                self.counts["sessions/leftovers_ended"] += count
                log.info(
                    "Cluster: %d message(s) queued here for %s dropped: the session ended"
                    " (node %s holds a new one).",
                    count,
                    state.client_id,
                    owner,
                )
                return
            if answer.data == b"ok":
                self.counts["sessions/leftovers_sent"] += count
                log.info(
                    "Cluster: %d message(s) for %s sent on to node %s, which holds its session.",
                    count,
                    state.client_id,
                    owner,
                )
                return
            break  # it does not hold the session (any more): nobody to give them to
        self.counts["sessions/leftovers_lost"] += count
        log.warning(
            "Cluster: %d message(s) queued here for %s could not be given to node %s,"
            " which holds its session now; they are dropped.",
            count,
            state.client_id,
            owner,
        )

    async def _take_leftovers(self, msg: Msg) -> None:
        """Another node's stale copy of a session held here sends what it still owed."""
        client_id_bytes, _, data = msg.data.partition(b"\n")
        now = asyncio.get_running_loop().time()
        try:
            client_id = client_id_bytes.decode()
            state = control.decode_answer(client_id, data, now)
        except ValueError as exc:
            log.warning("Cluster: bad leftovers message: %s", exc)
            return
        session = self._registry.sessions.get(client_id)
        owned = self._owned.get(client_id)
        if state is None or session is None or owned is None:
            await msg.respond(b"not held")
            return
        if not owned.resumed:
            # Not the session they were queued for: that one ended (Clean Start, expiry).
            await msg.respond(b"ended")
            return
        for item in state.deliveries:
            session.deliver(
                item.message, item.qos, item.retain, item.subscription_ids, now, item.share_group
            )
        self.counts["sessions/leftovers_taken"] += len(state.deliveries)
        await msg.respond(b"ok")

    # Writing this node's records.

    async def _write_loop(self) -> None:
        wake = self._wake
        while True:
            await wake.wait()
            wake.clear()
            kv = self._kv
            if kv is None or self.offline_since is not None:
                continue
            while self._dirty:
                client_id = self._dirty.pop()
                if self._pending.get(client_id, 0.0) > time.monotonic():
                    continue  # attached() marks it again
                try:
                    await self._sync(kv, client_id)
                except Exception as exc:  # noqa: BLE001  (NATS lost: online() redoes all)
                    self._dirty.add(client_id)
                    log.debug("Cluster: writing the session record of %s: %r", client_id, exc)
                    break

    async def _sync(self, kv: KeyValue, client_id: str) -> None:
        """Make the record say what this node holds, unless another node owns it."""
        key = control.record_key(client_id)
        for _ in range(3):
            session = self._registry.sessions.get(client_id)
            owned = self._owned.get(client_id)
            try:
                if session is None:
                    if owned is not None:
                        await kv.delete(key, last=owned.revision)
                        self._owned.pop(client_id, None)
                    return
                record = SessionRecord(
                    self.name,
                    self.process,
                    owned.epoch if owned is not None else 1,
                    session.expiry_interval,
                    session.connection is not None,
                    list(session.subscriptions.values()),
                )
                data = control.encode_record(record)
                if owned is not None:
                    owned.revision = await kv.update(key, data, last=owned.revision)
                else:
                    self._owned[client_id] = Owned(1, await kv.create(key, data))
            except (KeyWrongLastSequenceError, APIError) as exc:
                if isinstance(exc, APIError) and exc.err_code not in _WRONG_LAST:
                    raise
            else:
                return
            current, revision = await self._read(kv, client_id, key)
            if current is None:
                self._owned.pop(client_id, None)
                if session is None:
                    return
            elif current.node == self.name:
                self._owned[client_id] = Owned(current.epoch, revision)
            else:
                self._owned.pop(client_id, None)
                return  # another node holds it: the watch closes ours
