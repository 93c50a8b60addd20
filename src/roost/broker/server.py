"""The Broker: listeners, sessions, the timer sweep, start and stop.

Usable from a program or a test::

    async with Broker(BrokerConfig(listeners=[ListenerConfig(port=0)])) as broker:
        port = broker.port
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

from roost.broker.auth.manager import AuthManager
from roost.broker.config import BrokerConfig
from roost.broker.connection import ClientConnection
from roost.broker.limits import TopicLimits
from roost.broker.listeners import Listener, anonymous_summary
from roost.broker.message import Message
from roost.broker.metrics import SysTopics
from roost.broker.persistence import make_store
from roost.broker.persistence.restore import restore
from roost.broker.router import Router, deliver_later
from roost.broker.sessions import Session, SubscriptionRecord
from roost.broker.stats import Stats
from roost.broker.timers import Sweeper
from roost.broker.transport import WriteCoalescer
from roost.codec import DisconnectReasonCode, Will

log = logging.getLogger("roost.broker")

# Seconds between sweeps of offline sessions' queues for expired messages (each sweep
# walks every queued message, so not on every timer tick).
PURGE_INTERVAL = 60.0
STORE_FLUSH_TIMEOUT = 10.0  # seconds a shutdown waits for held acknowledgements
# Seconds a connection we closed has to take what we still had to send it; then it is
# aborted (close() waits for the write buffer to drain, which a client that reads
# nothing never lets happen).
CLOSE_TIMEOUT = 5.0


class Broker:
    def __init__(self, config: BrokerConfig | None = None) -> None:
        self.config = config or BrokerConfig()
        self.sessions: dict[str, Session] = {}
        self.connections: set[ClientConnection] = set()
        # Disconnected sessions that will expire, or have a delayed will to publish.
        self.offline: set[Session] = set()
        self.router = Router(self.sessions, self.config.max_retained_messages)
        self.topic_limits = TopicLimits(self.config.max_topic_length, self.config.max_topic_levels)
        # Reads the password, ACL and SCRAM files and loads the plugin: fails early.
        self.auth = AuthManager(self.config)
        if self.auth.authorizes:
            self.router.readers = self.auth.accesses
        self.store = make_store(self.config)
        self.stats = Stats()
        self.listeners: list[Listener] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._coalescer: WriteCoalescer | None = None
        self._sweeper: Sweeper | None = None
        self.started_at = 0.0
        self.sys_topics: SysTopics | None = None
        self._purge_at = 0.0  # the first sweep purges what expired while we were down

    # Lifecycle.

    async def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._coalescer = WriteCoalescer(loop)
        self.started_at = loop.time()
        store = self.store
        # State first, then listeners: no client may see the broker before its sessions.
        state = store.open(loop)
        log.info("Persistence: %s.", store.description)
        if store.durable:
            self.router.store = store
            restore(self, state, self.started_at)
        # Every listener's TLS files load before any socket is bound: a bad file stops
        # the start with nothing half open.
        try:
            listeners = [Listener(self, conf, i) for i, conf in enumerate(self.config.listeners)]
            for listener in listeners:
                await listener.start()
                self.listeners.append(listener)
        except BaseException:
            for listener in self.listeners:
                listener.close()
            self.listeners.clear()
            await store.close()
            raise
        log.info("%s", anonymous_summary(self.listeners))
        log.info("Authentication and authorization: %s.", self.auth.describe())
        self.sys_topics = SysTopics(self, self.started_at)
        self._sweeper = Sweeper(self)
        self._sweeper.start()

    async def stop(self) -> None:
        """Stop listening, tell clients we are going, then close every connection."""
        for listener in self.listeners:
            listener.close()
        if self._sweeper is not None:
            await self._sweeper.stop()
        # Acknowledgements waiting for a commit go out before clients hear we are going
        # (unless the disk fails them: then they are never sent, and clients resend).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.store.flush(), STORE_FLUSH_TIMEOUT)
        for conn in list(self.connections):
            conn.disconnect(DisconnectReasonCode.SERVER_SHUTTING_DOWN)
        # Let each connection end as if its client had gone: wills are published or,
        # if delayed, scheduled, and durable sessions record their expiry deadlines.
        await self._connections_closed()
        if not self.store.durable:
            # A shutdown ends in-memory sessions: pending wills go out now [MQTT-3.1.2-8].
            now = self.now()
            for session in list(self.sessions.values()):
                self._publish_pending_will(session, now)
        for listener in self.listeners:
            if listener.server is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(listener.server.wait_closed(), 5)
        self.listeners.clear()
        await self.store.close()
        log.info("Broker stopped.")

    async def _connections_closed(self, grace: float = 1.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.connections:
            if loop.time() >= deadline:
                # Clients that do not read keep a transport's buffer full, and so open.
                for conn in list(self.connections):
                    if conn.transport is not None:
                        conn.transport.abort()
                await asyncio.sleep(0)
                return
            await asyncio.sleep(0.005)

    async def __aenter__(self) -> Broker:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The port of the first listener (useful with port 0)."""
        return self.listeners[0].port

    def reload(self) -> None:
        """SIGHUP: re-read the files that can change under a running broker."""
        self.reload_tls()
        self.auth.reload()

    def reload_tls(self) -> None:
        """Every TLS listener reads its certificate, key, CA and CRL files again."""
        for listener in self.listeners:
            listener.reload_tls()

    @property
    def coalescer(self) -> WriteCoalescer:
        assert self._coalescer is not None  # noqa: S101  (set by start)
        return self._coalescer

    def now(self) -> float:
        assert self._loop is not None  # noqa: S101
        return self._loop.time()

    # Sessions.

    def attach(
        self, conn: ClientConnection, client_id: str, clean_start: bool, now: float
    ) -> tuple[Session, bool]:
        """Give ``conn`` its session: resumed, or new. Returns (session, session present)."""
        session = self.sessions.get(client_id)
        if session is not None and session.connection is not None:
            old = session.connection
            assert isinstance(old, ClientConnection)  # noqa: S101
            log.info("Client %s already connected, closing old connection.", client_id)
            # disconnect() tells only a connection with a session why: detach it after,
            # or MQTT 5 clients never get the DISCONNECT 0x8E [MQTT-3.1.4-3].
            old.disconnect(DisconnectReasonCode.SESSION_TAKEN_OVER)
            old.session = None
            session.connection = None
            self.detach(session, publish_will=True, now=now, ending=clean_start)
            session = self.sessions.get(client_id)
        if session is not None and clean_start:
            self.end_session(session, now)
            session = None
        present = session is not None
        if session is None:
            session = Session(client_id, self.config)
            self.sessions[client_id] = session
        else:
            # Reconnected in time: a delayed will is cancelled [MQTT-3.1.3-9].
            session.will = None
            session.will_at = None
            session.expires_at = None
            self.offline.discard(session)
        session.connection = conn
        self.stats.clients_total += 1
        return session, present

    def session_connected(self, session: Session) -> None:
        """The session's expiry and will are known now: keep it durable if it outlives
        its connection, stop keeping it if it no longer does."""
        store = self.store
        if not store.durable:
            return
        if session.expiry_interval == 0:
            if session.store is not None:
                session.store.session_ended(session)
                session.store = None
            return
        if session.store is None:
            session.store = store
            for record in session.subscriptions.values():
                store.subscription_added(session, record)
            for packet_id in session.awaiting_release:
                store.receive_id_added(session, packet_id)
            for item in session.queue:
                store.delivery_queued(session, item)
        store.session_saved(session)

    def detach(
        self, session: Session, publish_will: bool, now: float, ending: bool = False
    ) -> None:
        """The session's connection is gone; keep the session or end it."""
        session.connection = None
        will = session.will
        if not publish_will:
            session.will = None
        elif will is not None:
            delay = will.will_delay_interval or 0
            if delay == 0 or session.expiry_interval == 0 or ending:
                session.will = None
                self.publish_will(session.client_id, will, now)
            else:
                session.will_at = now + delay
        if session.expiry_interval == 0 or ending:
            self.end_session(session, now)
        else:
            session.expires_at = now + session.expiry_interval
            self.offline.add(session)
            if session.store is not None:
                session.store.session_saved(session)

    def end_session(self, session: Session, now: float) -> None:
        self._publish_pending_will(session, now)
        self.offline.discard(session)
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
            self.auth.forget(session.client_id)
        tree = self.router.tree
        for topic_filter in session.subscriptions:
            tree.remove(session.client_id, topic_filter)
        # Unfinished shared-subscription messages go to another member (MQTT 5.0 4.8.2).
        for item in session.take_shared_messages():
            self.router.publish_to_share(item, now)
        if session.store is not None:
            session.store.session_ended(session)
            session.store = None
        session.subscriptions.clear()
        session.inflight.clear()
        session.queue.clear()

    def _publish_pending_will(self, session: Session, now: float) -> None:
        will = session.will
        if will is not None and session.will_at is not None:
            session.will = None
            session.will_at = None
            if session.store is not None:
                session.store.session_saved(session)
            self.publish_will(session.client_id, will, now)

    def publish_will(self, client_id: str, will: Will, now: float) -> None:
        log.info("Publishing will of client %s to %r.", client_id, will.topic)
        message = Message(
            will.topic,
            will.payload,
            will.qos,
            will.retain,
            client_id,
            None if will.message_expiry_interval is None else now + will.message_expiry_interval,
            will.payload_format_indicator,
            will.content_type,
            will.response_topic,
            will.correlation_data,
            will.user_properties,
        )
        if will.retain:
            self.router.store_retained(message)
        self.router.publish(message, now)

    def send_retained(self, session: Session, record: SubscriptionRecord, now: float) -> None:
        """Deliver the retained messages matching a new subscription, retain flag set."""
        ids = () if record.identifier is None else (record.identifier,)
        expired = []
        readers = self.router.readers
        access = None if readers is None else readers.get(session.client_id)
        for topic, message in self.router.retained.match(record.topic_filter):
            if message.expired(now):
                expired.append(topic)
                continue
            qos = min(message.qos, record.qos)
            if readers is not None:
                # Read access, as for any delivery (no access known: nothing).
                readable = False if access is None else access.may_read(topic)
                if readable is None and access is not None:
                    access.defer_delivery(topic, deliver_later(session, message, qos, True, ids))
                if not readable:
                    continue
            session.deliver(message, qos, True, ids, now)
        for topic in expired:
            self.router.delete_retained(topic)

    # The sweep.

    def sweep(self, now: float) -> None:
        """Keep-alive, connect timeouts, session expiry and delayed wills, from timestamps."""
        config = self.config
        for conn in list(self.connections):
            if conn.closing_since is not None:
                if now - conn.closing_since > CLOSE_TIMEOUT and conn.transport is not None:
                    log.info("Connection from %s left its last packets unread; aborted.", conn.peer)
                    conn.transport.abort()
                continue
            if conn.session is None:
                if now - conn.connected_at > config.connect_timeout:
                    log.warning("Client at %s sent no CONNECT in time; closing.", conn.peer)
                    conn.disconnect(DisconnectReasonCode.MAXIMUM_CONNECT_TIME)
            elif conn.keep_alive and now - conn.last_activity > 1.5 * conn.keep_alive:
                log.info("Client %s has exceeded timeout, disconnecting.", conn.client_id)
                conn.disconnect(DisconnectReasonCode.KEEP_ALIVE_TIMEOUT)
        for session in list(self.offline):
            if session.will_at is not None and now >= session.will_at:
                self._publish_pending_will(session, now)
            if session.expires_at is not None and now >= session.expires_at:
                log.info("Session of client %s expired.", session.client_id)
                self.end_session(session, now)
        if now >= self._purge_at:
            self._purge_at = now + PURGE_INTERVAL
            for session in self.offline:
                session.purge_expired(now)
        sys_topics = self.sys_topics
        if config.sys_interval and sys_topics is not None and now >= sys_topics.next_at:
            sys_topics.next_at = now + config.sys_interval
            sys_topics.publish(now)


async def serve(config: BrokerConfig) -> None:
    """Run a broker until SIGINT or SIGTERM, then shut it down cleanly; SIGHUP reloads
    the TLS certificates."""
    import signal  # noqa: PLC0415

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with Broker(config) as broker:
        loop.add_signal_handler(signal.SIGHUP, broker.reload)
        log.info("Roost broker running.")
        await stop.wait()
        log.info("Shutting down.")
