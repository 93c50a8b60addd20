"""The broker's parts, wired: what every client connection talks to.

``BrokerCore`` implements ``ports.ConnectionHost`` over the session registry, the
router, the authorization backends and the store, and owns the set of open
connections. It holds no protocol logic of its own: each call is handed to the part
that owns the state it changes (see docs/architecture.md, "Who owns what").
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol

from roost.broker.auth.manager import AuthManager
from roost.broker.connect import Refusal
from roost.broker.hook_dispatch import Hooks
from roost.broker.hooks import load_hooks
from roost.broker.limits import TopicLimits
from roost.broker.persistence import make_store
from roost.broker.registry import SessionRegistry
from roost.broker.router import Router
from roost.broker.stats import Stats
from roost.codec import ConnectReasonCode, DisconnectReasonCode

if TYPE_CHECKING:
    from roost.broker.config import BrokerConfig
    from roost.broker.message import Message
    from roost.broker.persistence.store import Spooled, StoredState
    from roost.broker.ports import Connection, SessionDirectory
    from roost.broker.records import SubscriptionRecord
    from roost.broker.sessions import Identity, Session, Sink
    from roost.broker.transport import Holder
    from roost.codec import Will

log = logging.getLogger("roost.broker")

# Connections over a connection limit that are answered (CONNACK 0x97 or 0x9F) rather
# than closed at once, at the same time: each costs a socket for up to its short
# deadline, so in a flood beyond this many the rest are closed unread, as before.
REFUSING_AT_MOST = 100


class AckGate(Protocol):
    """Something besides the store that acknowledgements wait for: ``issued`` counts
    what it was given (so a handler can tell whether its packet gave it anything), and
    ``hold(conn)`` keeps ``conn``'s packets from now on until it has passed all that."""

    issued: int

    def hold(self, conn: Holder) -> None: ...


class BrokerCore:
    """Sessions, routing, authorization, storage and counters behind one narrow seam."""

    __slots__ = (
        "_loop",
        "ack_gate",
        "auth",
        "config",
        "connections",
        "hooks",
        "meta",
        "refused",
        "registry",
        "router",
        "spooled",
        "stats",
        "store",
        "subscribe_gate",
        "topic_limits",
    )

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.stats = Stats()
        self.topic_limits = TopicLimits(config.max_topic_length, config.max_topic_levels)
        # Reads the password, ACL and SCRAM files and loads the plugin: fails early.
        self.auth = AuthManager(config, self.stats)
        # Imports and creates the configured hooks: fails early too (HookError).
        self.hooks = Hooks(load_hooks(config.hooks), self.stats, self.topic_limits)
        self.store = make_store(config)
        sessions: dict[str, Session] = {}
        # The router reads the registry's sessions as its local destinations.
        self.router = Router(sessions, config.max_retained_messages, self.stats)
        self.router.deliver_hook = self.hooks.deliver  # None without an on_deliver hook
        if self.auth.authorizes:
            self.router.readers = self.auth.accesses
        self.registry = SessionRegistry(
            sessions, self.router, self.store, config, self.stats, self.auth.forget, self.hooks
        )
        self.connections: set[Connection] = set()
        self.refused: set[Connection] = set()  # being refused with a CONNACK (refusing)
        # A second thing acknowledgements wait for besides the store (a cluster node's
        # JetStream, roost.cluster.durable); None on a broker alone.
        self.ack_gate: AckGate | None = None
        # With [cluster]: what a SUBACK for a filter new to this node waits for (the other
        # nodes knowing it); None on a broker alone.
        self.subscribe_gate: AckGate | None = None
        # The store's named values as they were at start (Store.meta_set).
        self.meta: dict[str, str] = {}
        # The store's spool as it was at start (Store.spool_added), for whoever spools
        # (a cluster node) to take.
        self.spooled: list[Spooled] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def open_state(self, loop: asyncio.AbstractEventLoop) -> None:
        """Open the store and put back what it kept, before any client can connect."""
        self._loop = loop
        store = self.store
        state: StoredState = store.open(loop)
        self.meta = state.meta
        self.spooled = state.spool
        log.info("Persistence: %s.", store.description)
        if not store.durable:
            return
        self.router.log = store
        now = loop.time()
        messages = self.registry.restore(state.sessions, now)
        self._judge_offline_sessions(now)
        router = self.router
        for topic, message in state.retained:
            if not router.restore_retained(topic, message):
                # max_retained_messages was lowered since: the store must not keep it either.
                store.retained_deleted(topic)
        log.info(
            "Restored %d sessions, %d queued or in-flight messages and %d retained messages.",
            len(state.sessions),
            messages,
            router.retained_count,
        )

    def _judge_offline_sessions(self, now: float) -> None:
        """Give every offline session what it may do under the auth files as they are
        now, exactly as if it had never left memory (restored sessions have none yet),
        and end those whose user is gone from the password file (docs/auth.md)."""
        auth = self.auth
        registry = self.registry
        for session in list(registry.sessions.values()):
            identity = session.identity
            if session.connection is not None or identity is None:
                # Connected: judged at its CONNECT. No identity (stored before schema
                # version 2): nothing to judge it by, so it gets nothing until it is back.
                continue
            if auth.removed(identity):
                log.info(
                    "Session of client %s ended: user %r is no longer in the password file.",
                    session.client_id,
                    identity.client.username,
                )
                registry.end(session, now, publish_will=False)
            elif session.client_id not in auth.accesses:
                auth.access_for(identity.client)

    def reload_auth(self) -> None:
        """SIGHUP: read the auth files again; offline sessions meet the new rules."""
        self.auth.reload()
        if self._loop is not None:
            self._judge_offline_sessions(self._loop.time())

    @property
    def directory(self) -> SessionDirectory | None:
        return self.registry.directory

    def now(self) -> float:
        assert self._loop is not None  # noqa: S101  (set by open_state)
        return self._loop.time()

    # Connections.

    def opened(self, conn: Connection) -> Refusal | None:
        limit = self.config.max_connections
        if limit and len(self.connections) >= limit:
            return Refusal(
                ConnectReasonCode.QUOTA_EXCEEDED,
                f"the broker's max_connections ({limit}) is reached",
            )
        self.connections.add(conn)
        return None

    def refusing(self, conn: Connection) -> bool:
        if len(self.refused) >= REFUSING_AT_MOST:
            return False
        self.refused.add(conn)
        return True

    def closed(self, conn: Connection) -> None:
        self.connections.discard(conn)
        self.refused.discard(conn)

    def connection_of(self, client_id: str) -> Connection | None:
        """The open connection of ``client_id``'s session, if it is connected."""
        session = self.registry.sessions.get(client_id)
        conn = None if session is None else session.connection
        for candidate in self.connections:
            if candidate is conn:
                return candidate
        return None

    def kick(self, client_id: str) -> bool:
        """An operator ends a client's connection (MQTT 5: DISCONNECT 0x98 first; 3.1.x
        clients are closed); False if it is not connected. Its session stays, as after
        any lost connection."""
        conn = self.connection_of(client_id)
        if conn is None:
            return False
        conn.disconnect(
            DisconnectReasonCode.ADMINISTRATIVE_ACTION,
            "disconnected by an operator",
            why="kicked by an operator",
        )
        return True

    def sweep_connections(self, now: float) -> None:
        """Keep-alive, connect timeouts and connections that will not finish closing."""
        for conn in list(self.connections):
            conn.check_timers(now)
        for conn in list(self.refused):
            conn.check_timers(now)

    async def close_connections(self, grace: float = 1.0) -> None:
        """Tell every client the server is going, and wait (``grace`` at most) for the
        connections to end as if their clients had gone: wills are published or, if
        delayed, scheduled, and durable sessions record their expiry deadlines."""
        for conn in list(self.refused):
            conn.abort()  # never let in: nothing to tell them
        for conn in list(self.connections):
            conn.disconnect(DisconnectReasonCode.SERVER_SHUTTING_DOWN)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.connections:
            if loop.time() >= deadline:
                # Clients that do not read keep a transport's buffer full, and so open.
                for conn in list(self.connections):
                    conn.abort()
                await asyncio.sleep(0)
                return
            await asyncio.sleep(0.005)

    # Sessions.

    def attach(
        self,
        conn: Sink,
        identity: Identity,
        clean_start: bool,
        expiry_interval: int,
        will: Will | None,
        now: float,
    ) -> tuple[Session, bool]:
        return self.registry.attach(conn, identity, clean_start, expiry_interval, will, now)

    def detach(self, session: Session, publish_will: bool, now: float) -> None:
        self.registry.detach(session, publish_will, now)

    # Routing.

    def publish(self, message: Message, now: float) -> int:
        router = self.router
        if message.retain:
            router.retain(message)
        return router.publish(message, now)

    def subscribe(self, session: Session, record: SubscriptionRecord) -> bool:
        is_new = self.router.subscribe(session.client_id, record)
        session.add_subscription(record)
        directory = self.registry.directory
        if directory is not None:
            directory.changed(session)
        if session.identity is not None:
            self.hooks.subscribed(session.identity.client, record.topic_filter, record.qos)
        return is_new

    def send_retained(self, session: Session, record: SubscriptionRecord, now: float) -> None:
        self.router.send_retained(session.client_id, session, record, now)

    def unsubscribe(self, session: Session, topic_filter: str) -> bool:
        if not session.remove_subscription(topic_filter):
            return False
        self.router.unsubscribe(session.client_id, topic_filter)
        directory = self.registry.directory
        if directory is not None:
            directory.changed(session)
        if session.identity is not None:
            self.hooks.unsubscribed(session.identity.client, topic_filter)
        return True

    # Durability.

    def changes(self) -> int:
        gate = self.ack_gate
        if gate is None:
            return self.store.op_count
        return self.store.op_count + gate.issued

    def hold_subscribed(self, conn: Holder) -> None:
        gate = self.subscribe_gate
        if gate is not None:
            gate.hold(conn)

    def hold(self, conn: Holder) -> None:
        self.store.hold(conn)
        gate = self.ack_gate
        if gate is not None:
            gate.hold(conn)
