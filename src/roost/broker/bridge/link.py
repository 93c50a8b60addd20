"""One bridge: its client connection to the remote broker, both directions, its state.

``Bridge`` owns the bridge's ``roost.client.Client`` (failover through the configured
addresses, reconnecting with jittered backoff), the local session of its ``out``
patterns (``outbound.RemoteSink``), the ``in`` direction and the notification topic.

In: the client subscribes on the remote to each ``in`` pattern (MQTT 5: No Local, so
the remote never returns what the bridge sent it; 3.1.x: ``try_private``). It
acknowledges nothing itself (``manual_ack``): each message is renamed by its pattern's
prefixes, published into the local broker under the bridge's key as sender (the
bridge's own local subscriptions have No Local, so it is not sent back), and
acknowledged to the remote only when the local store has committed what the publish
recorded (``core.hold``), as a client's PUBACK waits in ``publishing.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from roost.broker.auth.base import ClientInfo
from roost.broker.bridge.outbound import CLIENT_PACKET_IDS, SESSION_PACKET_IDS, RemoteSink
from roost.broker.bridge_config import parse_address
from roost.broker.connect import BRIDGE_KEY_PREFIX
from roost.broker.message import Message
from roost.broker.records import SubscriptionRecord
from roost.broker.sessions import Identity, Session
from roost.client import MQTT_5, Client, MQTTError, ReconnectPolicy, Subscription, Will, tls_context
from roost.client import Message as RemoteMessage
from roost.protocol.topics import topic_matches

if TYPE_CHECKING:
    from roost.broker.bridge_config import BridgeConfig
    from roost.broker.config import BrokerConfig
    from roost.broker.core import BrokerCore
    from roost.client import PublishResult
    from roost.codec import Connack

log = logging.getLogger("roost.broker.bridge")

NEVER_EXPIRES = 0xFFFFFFFF  # the bridge session lives as long as the bridge is configured


class BridgeSetupError(OSError):
    """A bridge's password or TLS file that cannot be loaded; says which bridge and key.
    An OSError, so that ``roost broker`` reports it like a listener that cannot start."""


def bridge_key(name: str) -> str:
    return BRIDGE_KEY_PREFIX + name


class _HeldAcks:
    """Remote messages whose acknowledgement waits for a local store commit (a
    ``transport.Holder`` for ``core.hold``)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.waiting: deque[tuple[int, RemoteMessage]] = deque()
        self.batch: int | None = None  # set by hold(): the commit the next ack waits for

    def hold(self, batch: int, gate: int = 0) -> None:
        # Only the store's commits: a bridged-in message's ack does not wait for a
        # cluster's JetStream (docs/clustering.md).
        if not gate:
            self.batch = batch

    def release(self, committed: int, gate: int = 0) -> bool:
        waiting = self.waiting
        if gate:
            return bool(waiting)
        while waiting and waiting[0][0] <= committed:
            self.client.ack(waiting.popleft()[1])
        return bool(waiting)


class Bridge:
    """One configured bridge, started with the broker and stopped with it."""

    def __init__(self, config: BridgeConfig, core: BrokerCore) -> None:
        self.config = config
        self.core = core
        self.key = bridge_key(config.name)
        self.addresses = [a for a in map(parse_address, config.addresses) if a is not None]
        self.password = self._password()
        self.client = self._make_client()
        self.sink = RemoteSink(config, self.client)
        self.session: Session | None = None
        self.acks = _HeldAcks(self.client)
        self.connected = False
        self.subscribed = False  # the remote answered the in patterns' SUBSCRIBE
        self.received = 0  # messages taken from the remote
        self._task: asyncio.Task[None] | None = None
        self._probe: asyncio.Task[None] | None = None  # for the main address, see below
        self._stopping = False

    def _password(self) -> str | None:
        config = self.config
        if config.password_file is not None:
            try:
                text = Path(config.password_file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise BridgeSetupError(
                    f"bridge {config.name}: cannot read password_file "
                    f"{config.password_file!r}: {getattr(exc, 'strerror', None) or exc}"
                ) from exc
            return text.splitlines()[0] if text else ""
        return config.password

    def _policy(self) -> ReconnectPolicy | None:
        if self.config.start_type == "once":
            return None
        base, cap = self.config.delays()
        return ReconnectPolicy(initial_delay=base, max_delay=cap, multiplier=2.0)

    def _make_client(self) -> Client:
        config = self.config
        level = config.level
        v5 = level == MQTT_5
        tls = None
        if config.tls is not None:
            try:
                tls = tls_context(
                    config.tls.cafile,
                    config.tls.certfile,
                    config.tls.keyfile,
                    insecure=config.tls.insecure,
                )
            except (OSError, ssl.SSLError) as exc:
                raise BridgeSetupError(
                    f"bridge {config.name}: cannot load its tls files: {exc}"
                ) from exc
        will = None
        if config.notifications:
            will = Will(config.state_topic(), b"0", qos=1, retain=True)
        (host, port), *fallbacks = self.addresses
        return Client(
            host,
            port,
            version=level,
            client_id=config.client_id or f"{config.name}.{socket.gethostname()}",
            clean_start=config.clean_start,
            keep_alive=config.keep_alive,
            username=config.username,
            password=self.password,
            will=will,
            tls=tls,
            session_expiry_interval=(0 if config.clean_start else NEVER_EXPIRES) if v5 else None,
            receive_maximum=self.core.config.receive_maximum if v5 else None,
            reconnect=self._policy() or False,
            fallback_addresses=fallbacks,
            manual_ack=True,
            # QoS 2 stops at PUBREC until the session has recorded it; the session's
            # packet ids are used for what it sends, the client's own are above them.
            manual_release=True,
            packet_ids=CLIENT_PACKET_IDS,
            bridge=config.try_private and not v5,
            on_connect=self._on_connect,
            on_disconnect=self._on_disconnect,
        )

    def sys_values(self) -> dict[str, str]:
        """What ``$SYS/broker/bridges/<name>/...`` says of this bridge."""
        session = self.session
        client = self.client
        return {
            "state": "1" if self.connected else "0",
            "address": f"{client.host}:{client.port}" if self.connected else "",
            "queued": str(len(session.queue) if session is not None else 0),
            "inflight": str(len(session.inflight) if session is not None else 0),
            "forwarded": str(self.sink.forwarded),
            "received": str(self.received),
            "dropped": str(session.dropped if session is not None else 0),
        }

    # Lifecycle.

    def start(self) -> None:
        """Attach the local session (restored or new) and start connecting."""
        core = self.core
        now = core.now()
        client = ClientInfo(self.key, self.config.local_username, "bridge", 5, "bridge")
        session, _present = core.registry.attach(
            self.sink, Identity(client), False, NEVER_EXPIRES, None, now
        )
        # With an ACL file or plugin, the bridge reads what its local user may read;
        # the router finds the answer under the session's key (fail closed without).
        core.auth.access_for(client)
        session.config = _queue_config(core.config, self.config)
        session.packet_id_limit = SESSION_PACKET_IDS
        self.session = self.sink.session = session
        wanted = {t.local_filter(): t for t in self.config.topics if t.outgoing}
        for topic_filter in list(session.subscriptions):
            if topic_filter not in wanted:
                core.unsubscribe(session, topic_filter)
        for topic_filter, topic in wanted.items():
            record = SubscriptionRecord(
                self.key, topic_filter, topic.qos, no_local=True, retain_as_published=True
            )
            existing = session.subscriptions.get(topic_filter)
            if existing is None or existing.qos != topic.qos:
                core.subscribe(session, record)
        if self.config.start_type == "lazy":
            log.warning("Bridge %s: start_type lazy is started as automatic.", self.config.name)
        self._notify_local(b"0")
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Say we are going (remote and local state 0), disconnect, keep the session."""
        self._stopping = True
        for task in (self._task, self._probe):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        client = self.client
        if self.connected and self.config.notifications:
            with contextlib.suppress(MQTTError, TimeoutError):
                async with asyncio.timeout(2):
                    await client.publish(self.config.state_topic(), b"0", qos=1, retain=True)
        self.connected = False
        self.sink.writable = False
        with contextlib.suppress(MQTTError, OSError):
            await client.disconnect()
        self._notify_local(b"0")
        if self.session is not None:
            # The broker is stopping: the session stays (durable), offline.
            self.session.connection = None

    async def _run(self) -> None:
        """Connect (and, when the client gives up for good, connect again later)."""
        delays = iter(ReconnectPolicy(*self.config.delays(), 2.0).delays())
        while not self._stopping:
            try:
                await self.client.connect()
            except (MQTTError, OSError) as exc:
                log.warning("Bridge %s: cannot connect: %s", self.config.name, exc)
                if self.config.start_type == "once":
                    return
                await asyncio.sleep(next(delays))
                continue
            delays = iter(ReconnectPolicy(*self.config.delays(), 2.0).delays())
            await self._receive()
            if self._stopping or self.config.start_type == "once":
                return
            # The client gave up (a refusal another attempt would not fix): a new
            # client, and the session's messages in flight go again through it.
            with contextlib.suppress(MQTTError, OSError):
                await self.client.disconnect()
            self.client = self._make_client()
            self.sink.use_client(self.client)
            self.acks = _HeldAcks(self.client)
            await asyncio.sleep(next(delays))

    async def _receive(self) -> None:
        """Take the remote's messages until the client is down for good."""
        try:
            async for message in self.client.messages():
                self._take(message)
        except Exception as exc:  # noqa: BLE001  (whatever ended it, the bridge goes on)
            log.warning("Bridge %s: connection given up: %s", self.config.name, exc)

    # The remote connection's events (client callbacks, on the loop).

    async def _on_connect(self, connack: Connack, reconnect: bool) -> None:
        config = self.config
        client = self.client
        log.info(
            "Bridge %s connected to %s:%d (session present %d).",
            config.name,
            client.host,
            client.port,
            connack.session_present,
        )
        self.connected = True
        if config.notifications:
            self._notify_local(b"1")
            with contextlib.suppress(MQTTError, ValueError):
                sent = client.publish_nowait(config.state_topic(), b"1", 1, True)
                # Nobody awaits it: a failure (the connection lost again) is not news.
                sent.add_done_callback(_retrieve)
        subscriptions = [
            Subscription(t.remote_filter(), t.qos, no_local=True, retain_as_published=True)
            if client.version == MQTT_5
            else Subscription(t.remote_filter(), t.qos)
            for t in config.topics
            if t.incoming
        ]
        if config.start_type != "once" and (client.host, client.port) != self.addresses[0]:
            self._probe = asyncio.get_running_loop().create_task(self._probe_main())
        session = self.session
        self.sink.writable = True
        if session is not None:
            session.resume(self.core.now())
        # The client subscribes again by itself when a reconnect finds no session.
        if subscriptions and not reconnect:
            try:
                await client.subscribe(subscriptions)
                self.subscribed = True
            except MQTTError as exc:
                log.warning("Bridge %s: subscribing failed: %s", config.name, exc)

    def _on_disconnect(self, error: BaseException | None) -> None:
        if not self.connected:
            return
        log.warning("Bridge %s lost its connection: %s", self.config.name, error)
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
        self.connected = False
        self.sink.writable = False
        if self.config.notifications:
            self._notify_local(b"0")

    async def _probe_main(self) -> None:
        """Connected to a secondary address: as Mosquitto does (round_robin false), look
        for the main address every ``cap`` seconds of ``restart_timeout``; once it
        accepts a TCP connection, drop this connection so that the reconnect tries it
        first (if it then fails at MQTT level, the next probe is ``cap`` seconds on)."""
        host, port = self.addresses[0]
        _base, cap = self.config.delays()
        while True:
            await asyncio.sleep(cap)
            try:
                async with asyncio.timeout(self.client.connect_timeout):
                    _reader, writer = await asyncio.open_connection(host, port)
            except (OSError, TimeoutError):
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            log.info("Bridge %s: %s:%d is back; moving to it.", self.config.name, host, port)
            self._probe = None
            self.client.drop_connection("moving back to the main address")
            return

    # In.

    def _take(self, remote: RemoteMessage) -> None:
        local = self._local_topic(remote.topic)
        if local is None:
            self.client.ack(remote)  # not ours (a subscription made before): let it go
            return
        core = self.core
        now = core.now()
        expiry = remote.message_expiry_interval
        message = Message(
            local,
            remote.payload,
            remote.qos,
            remote.retain,
            self.key,
            None if expiry is None else now + expiry,
            remote.payload_format_indicator,
            remote.content_type,
            remote.response_topic,
            remote.correlation_data,
            remote.user_properties,
        )
        changes = core.changes()
        core.stats.received_by_qos[remote.qos] += 1
        core.stats.received_bytes_by_qos[remote.qos] += len(remote.payload)
        core.publish(message, now)
        self.received += 1
        if not remote.qos:
            return
        acks = self.acks
        acks.batch = None
        if core.changes() != changes:
            core.hold(acks)  # calls acks.hold(batch) when the store commits in batches
        if acks.batch is None:
            self.client.ack(remote)
        else:
            acks.waiting.append((acks.batch, remote))

    def _local_topic(self, topic: str) -> str | None:
        for t in self.config.topics:
            if t.incoming and topic_matches(t.remote_filter(), topic):
                return t.local_prefix + topic[len(t.remote_prefix) :]
        return None

    def _notify_local(self, state: bytes) -> None:
        if not self.config.notifications:
            return
        core = self.core
        message = Message(self.config.state_topic(), state, 0, True, self.key)
        core.router.retain(message)
        core.router.publish(message, core.now())


def _retrieve(future: asyncio.Future[PublishResult]) -> None:
    if not future.cancelled():
        future.exception()


def _queue_config(broker: BrokerConfig, bridge: BridgeConfig) -> BrokerConfig:
    """The broker's configuration with the bridge's own queue limit and policy: what
    its session reads them from."""
    limit = bridge.max_queued_messages or broker.max_queued_messages
    return replace(broker, max_queued_messages=limit, queue_full_policy=bridge.queue_full_policy)
