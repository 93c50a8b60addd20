"""The Broker: starts and stops the listeners, the timer sweep and persistence.

Usable from a program or a test::

    from roost.broker import Broker, BrokerConfig, ListenerConfig

    async with Broker(BrokerConfig(listeners=[ListenerConfig(port=0)])) as broker:
        port = broker.port  # the first listener's; broker.ports has every listener's

A broker made this way keeps its state in memory unless the config sets ``data_dir``
(or ``persistence = "sqlite"``): nothing is written to the working directory unasked.

Everything a connection does goes through ``core.BrokerCore``; sessions are the
registry's (``registry.py``), subscriptions and retained messages the router's
(``router.py``). This module only wires them to sockets and to time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, overload

from roost.broker.bridge import Bridges
from roost.broker.config import BrokerConfig, ConfigError
from roost.broker.core import BrokerCore
from roost.broker.listeners import Listener, anonymous_summary
from roost.broker.metrics import SysSnapshot, SysTopics
from roost.broker.timers import Sweeper
from roost.broker.transport import WriteCoalescer

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from roost.broker.auth.manager import AuthManager
    from roost.broker.config import ListenerType
    from roost.broker.message import Message
    from roost.broker.persistence.store import Store
    from roost.broker.ports import Connection
    from roost.broker.router import Router
    from roost.broker.sessions import Session
    from roost.broker.stats import Stats
    from roost.cluster import ClusterNode
    from roost.http import RunningHttp

log = logging.getLogger("roost.broker")

STORE_FLUSH_TIMEOUT = 10.0  # seconds a shutdown waits for held acknowledgements


class ListenerPorts(Sequence[int]):
    """The port each listener is bound to, in configuration order (``ports[0]``), by
    listener name (``ports.by_name("web")``) and by type (``ports.by_type("ws")``).

    With port 0 the system picks a free port when the broker starts; this is how a
    program or a test learns which. A snapshot: taken when ``Broker.ports`` is read.
    """

    __slots__ = ("_listeners",)

    def __init__(self, listeners: Sequence[Listener]) -> None:
        self._listeners = [(listener.config, listener.port) for listener in listeners]

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> list[int]: ...
    def __getitem__(self, index: int | slice) -> int | list[int]:
        if isinstance(index, slice):
            return [port for _config, port in self._listeners[index]]
        return self._listeners[index][1]

    def __len__(self) -> int:
        return len(self._listeners)

    def by_name(self, name: str) -> int:
        """The port of the listener called ``name``; KeyError if there is none."""
        for config, port in self._listeners:
            if config.name == name:
                return port
        raise KeyError(f"no listener is named {name!r}")

    def by_type(self, kind: ListenerType) -> int:
        """The port of the first listener of type ``kind`` (tcp, tls, ws, wss); KeyError
        if there is none."""
        for config, port in self._listeners:
            if config.type == kind:
                return port
        raise KeyError(f"no listener has type {kind!r}")

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{config.name or index}={config.type}:{port}"
            for index, (config, port) in enumerate(self._listeners)
        )
        return f"ListenerPorts({shown})"


class Broker:
    """An MQTT broker: ``async with Broker(config)`` (or ``start``/``stop``) runs its
    listeners until stopped; ``reload`` re-reads TLS and auth files (SIGHUP).

    Its parts are readable for programs and tests (``sessions``, ``router``, ``store``,
    ``stats``, ``auth``, ``connections``) but are changed only by the broker itself.
    Where it listens: ``port`` (the first listener) and ``ports`` (every listener).
    """

    def __init__(self, config: BrokerConfig | None = None, *, reuse_port: bool = False) -> None:
        self.config = config or BrokerConfig()
        self._reuse_port = reuse_port  # a worker of `roost broker --workers N`
        # Reads the password, ACL and SCRAM files and loads the plugin: fails early.
        self.core = BrokerCore(self.config)
        # Reads the bridges' password and TLS files: fails early too.
        self.bridges = Bridges(self.core)
        self.listeners: list[Listener] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._coalescer: WriteCoalescer | None = None
        self._sweeper: Sweeper | None = None
        self.started_at = 0.0
        self.sys_topics: SysTopics | None = None
        self.http: RunningHttp | None = None  # the [http] API, while it runs
        self.cluster: ClusterNode | None = None  # with [cluster]: this node's link to the rest

    # What operators and tests may read (the parts own and change it).

    @property
    def sessions(self) -> dict[str, Session]:
        """Every session, connected or not, by client id (the registry's)."""
        return self.core.registry.sessions

    @property
    def connections(self) -> set[Connection]:
        """The open client connections."""
        return self.core.connections

    @property
    def router(self) -> Router:
        """Subscriptions and retained messages (``subscription_count``,
        ``retained_count``, ``subscribers(topic)``, ``retained_topics(filter)``)."""
        return self.core.router

    @property
    def auth(self) -> AuthManager:
        """Who may connect and do what: the password, ACL and SCRAM files and plugin."""
        return self.core.auth

    @property
    def store(self) -> Store:
        """Where durable state is kept: SQLite, or memory (``store.description``)."""
        return self.core.store

    @property
    def stats(self) -> Stats:
        """The counters ``$SYS`` publishes."""
        return self.core.stats

    @property
    def bytes_sent(self) -> int:
        """Bytes written to every client connection so far."""
        return self._coalescer.bytes_sent if self._coalescer is not None else 0

    @property
    def cluster_connected(self) -> bool | None:
        """Whether this cluster node reaches NATS; None without ``[cluster]``."""
        return None if self.cluster is None else self.cluster.connected

    @property
    def port(self) -> int:
        """The port of the first listener (useful with port 0); ``ports`` has them all."""
        return self.listeners[0].port

    @property
    def ports(self) -> ListenerPorts:
        """Every listener's port: by index, by name and by type (see ListenerPorts)."""
        return ListenerPorts(self.listeners)

    def now(self) -> float:
        """The broker's clock (its event loop's time), which deadlines are kept in."""
        assert self._loop is not None  # noqa: S101  (set by start)
        return self._loop.time()

    # Lifecycle.

    async def start(self) -> None:
        """Open the store and restore its state, then bind every listener; a listener
        that cannot start stops the start with nothing left open."""
        loop = self._loop = asyncio.get_running_loop()
        coalescer = self._coalescer = WriteCoalescer(loop)
        self.started_at = loop.time()
        core = self.core
        if self.config.cluster is not None:
            # The cluster seam (docs/clustering.md): the one place the broker loads the
            # cluster package, so a broker without [cluster] pays nothing for it. Made
            # before the state opens, so it hears of the restored subscriptions.
            try:
                from roost.cluster import ClusterNode  # noqa: PLC0415
            except ImportError as exc:
                raise ConfigError(
                    f"needs nats-py, which is not installed ({exc}): install roost[cluster]",
                    source="[cluster]",
                ) from exc
            self.cluster = ClusterNode(core, self.config.cluster, self.config.sys_interval)
        # Hooks first: the first client's CONNECT may already call them.
        await core.hooks.start()
        # State first, then listeners: no client may see the broker before its sessions.
        core.open_state(loop)
        if self.cluster is not None:
            await self.cluster.start()  # reads the cluster's retained messages
        # Every listener's TLS files load before any socket is bound: a bad file stops
        # the start with nothing half open.
        try:
            listeners = [
                Listener(core, coalescer, conf, i, reuse_port=self._reuse_port)
                for i, conf in enumerate(self.config.listeners)
            ]
            for listener in listeners:
                await listener.start()
                self.listeners.append(listener)
            if self.config.http is not None:
                # The broker's one import of roost.http (tests/test_architecture.py, SEAMS).
                from roost.http import start_http  # noqa: PLC0415

                self.http = await start_http(self, self.config.http)
        except BaseException:
            for listener in self.listeners:
                listener.close()
            self.listeners.clear()
            if self.cluster is not None:
                await self.cluster.stop()
            await core.store.close()
            await core.hooks.stop()
            raise
        log.info("%s", anonymous_summary(self.listeners))
        log.info("Authentication and authorization: %s.", core.auth.describe())
        self.sys_topics = SysTopics(self._sys_snapshot, self._publish_sys, self.started_at)
        self._sweeper = Sweeper(loop.time, self.sweep)
        self._sweeper.start()
        self.bridges.start()

    async def stop(self) -> None:
        """Stop listening, tell clients we are going, then close every connection."""
        core = self.core
        if self.http is not None:
            await self.http.stop()
            self.http = None
        for listener in self.listeners:
            listener.close()
        if self._sweeper is not None:
            await self._sweeper.stop()
        await self.bridges.stop()
        # Acknowledgements waiting for a commit go out before clients hear we are going
        # (unless the disk fails them: then they are never sent, and clients resend).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(core.store.flush(), STORE_FLUSH_TIMEOUT)
        await core.close_connections()
        core.registry.shut_down(self.now())
        if self.cluster is not None:
            await self.cluster.stop()  # after the wills of the last clients went out
        for listener in self.listeners:
            if listener.server is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(listener.server.wait_closed(), 5)
        self.listeners.clear()
        await core.store.close()
        await core.hooks.stop()
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

    def reload(self) -> None:
        """SIGHUP: re-read the files that can change under a running broker."""
        self.reload_tls()
        self.core.reload_auth()

    def reload_tls(self) -> None:
        """Every TLS listener reads its certificate, key, CA and CRL files again."""
        for listener in self.listeners:
            listener.reload_tls()

    # The sweep.

    def sweep(self, now: float) -> None:
        """Keep-alive, connect timeouts, session expiry and delayed wills, from
        timestamps; ``$SYS`` every ``sys_interval``."""
        core = self.core
        core.sweep_connections(now)
        core.registry.sweep(now)
        sys_topics = self.sys_topics
        interval = self.config.sys_interval
        if interval and sys_topics is not None and now >= sys_topics.next_at:
            sys_topics.next_at = now + interval
            sys_topics.publish(now)

    def _sys_snapshot(self) -> SysSnapshot:
        core = self.core
        stats = core.stats
        sessions = core.registry.sessions
        return SysSnapshot(
            connected=sum(1 for session in sessions.values() if session.connection is not None),
            sessions=len(sessions),
            subscriptions=core.router.subscription_count,
            retained=core.router.retained_count,
            messages_received=stats.messages_received,
            messages_sent=stats.messages_sent,
            bytes_received=stats.bytes_received,
            bytes_sent=self.bytes_sent,
            clients_total=stats.clients_total,
            dropped={str(reason): count for reason, count in stats.dropped.items()},
            held_back=stats.held_back,
            closed_by_broker=dict(stats.closed_by_broker),
            hook_errors=stats.hook_errors if core.hooks.loaded else None,
            bridges={bridge.config.name: bridge.sys_values() for bridge in self.bridges},
        )

    def _publish_sys(self, message: Message, now: float) -> None:
        # The broker's own messages are retained and routed, not counted as client traffic.
        router = self.core.router
        router.retain(message)
        router.publish(message, now, forward=False)  # each node's own


async def serve(
    config: BrokerConfig,
    *,
    reuse_port: bool = False,
    ready: Callable[[], None] | None = None,
) -> None:
    """Run a broker until SIGINT or SIGTERM, then shut it down cleanly; SIGHUP reloads
    the TLS certificates. A worker of ``--workers N`` binds with ``reuse_port`` and is
    told by ``ready`` when it runs."""
    import signal  # noqa: PLC0415

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # SIGHUP's default action ends the process: until there is something to reload, a
    # SIGHUP (a config-management tool reloading early) is logged and ignored.
    loop.add_signal_handler(
        signal.SIGHUP, lambda: log.warning("SIGHUP while starting: nothing to reload yet.")
    )
    async with Broker(config, reuse_port=reuse_port) as broker:
        loop.add_signal_handler(signal.SIGHUP, broker.reload)
        log.info("Roost broker running.")
        if ready is not None:
            ready()
        await stop.wait()
        log.info("Shutting down.")
