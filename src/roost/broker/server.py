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

from roost.broker.config import BrokerConfig
from roost.broker.connection import ClientConnection
from roost.broker.message import Message
from roost.broker.metrics import SysTopics
from roost.broker.router import Router
from roost.broker.sessions import Session, SubscriptionRecord
from roost.broker.stats import Stats
from roost.broker.timers import Sweeper
from roost.broker.transport import WriteCoalescer
from roost.codec import DisconnectReasonCode, Will

log = logging.getLogger("roost.broker")


class Broker:
    def __init__(self, config: BrokerConfig | None = None) -> None:
        self.config = config or BrokerConfig()
        self.sessions: dict[str, Session] = {}
        self.connections: set[ClientConnection] = set()
        # Disconnected sessions that will expire, or have a delayed will to publish.
        self.offline: set[Session] = set()
        self.router = Router(self.sessions, self.config.max_retained_messages)
        self.stats = Stats()
        self._servers: list[asyncio.Server] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._coalescer: WriteCoalescer | None = None
        self._sweeper: Sweeper | None = None
        self.started_at = 0.0
        self.sys_topics: SysTopics | None = None

    # Lifecycle.

    async def start(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._coalescer = WriteCoalescer(loop)
        self.started_at = loop.time()
        for listener in self.config.listeners:
            server = await loop.create_server(
                lambda: ClientConnection(self), listener.host, listener.port
            )
            self._servers.append(server)
            for sock in server.sockets:
                log.info("Listening on %s:%d (MQTT over TCP).", *sock.getsockname()[:2])
        self.sys_topics = SysTopics(self, self.started_at)
        self._sweeper = Sweeper(self)
        self._sweeper.start()

    async def stop(self) -> None:
        """Stop listening, tell clients we are going, then close every connection."""
        for server in self._servers:
            server.close()
        if self._sweeper is not None:
            await self._sweeper.stop()
        now = self.now()
        for conn in list(self.connections):
            conn.disconnect(DisconnectReasonCode.SERVER_SHUTTING_DOWN)
        # A shutdown ends in-memory sessions: pending wills go out now [MQTT-3.1.2-8].
        for session in list(self.sessions.values()):
            self._publish_pending_will(session, now)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)
        self._servers.clear()
        log.info("Broker stopped.")

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
        return int(self._servers[0].sockets[0].getsockname()[1])

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

    def end_session(self, session: Session, now: float) -> None:
        self._publish_pending_will(session, now)
        self.offline.discard(session)
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
        tree = self.router.tree
        for topic_filter in session.subscriptions:
            tree.remove(session.client_id, topic_filter)
        # Unfinished shared-subscription messages go to another member (MQTT 5.0 4.8.2).
        for item in session.take_shared_messages():
            self.router.publish_to_share(item, now)
        session.subscriptions.clear()
        session.inflight.clear()
        session.queue.clear()

    def _publish_pending_will(self, session: Session, now: float) -> None:
        will = session.will
        if will is not None and session.will_at is not None:
            session.will = None
            session.will_at = None
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
        for topic, message in self.router.retained.match(record.topic_filter):
            if message.expired(now):
                expired.append(topic)
                continue
            session.deliver(message, min(message.qos, record.qos), True, ids, now)
        for topic in expired:
            self.router.retained.delete(topic)

    # The sweep.

    def sweep(self, now: float) -> None:
        """Keep-alive, connect timeouts, session expiry and delayed wills, from timestamps."""
        config = self.config
        for conn in list(self.connections):
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
        sys_topics = self.sys_topics
        if config.sys_interval and sys_topics is not None and now >= sys_topics.next_at:
            sys_topics.next_at = now + config.sys_interval
            sys_topics.publish(now)


async def serve(config: BrokerConfig) -> None:
    """Run a broker until SIGINT or SIGTERM, then shut it down cleanly."""
    import signal  # noqa: PLC0415

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with Broker(config):
        log.info("Roost broker running.")
        await stop.wait()
        log.info("Shutting down.")
