"""A broker for tests: started in a background thread with its own event loop.

Its own thread, not the test's event loop, so that one fixture serves every kind of
test: a plain ``def`` test (the application under test may be synchronous, or start its
own loop), and ``async def`` tests under pytest-asyncio, anyio or any other runner,
whatever loop and loop scope they use. Clients in the test talk to it over loopback
sockets, as real clients would. A test that wants the broker in its own loop instead
uses ``async with Broker(config_for_tests())`` (docs/testing.md).
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
from typing import TYPE_CHECKING, Any, TypeVar

from roost.broker import Broker, BrokerConfig, ListenerConfig
from roost.broker.message import Message as RoutedMessage
from roost.client import Client, Message, MessageStream
from roost.codec.topics import validate_topic_name

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from roost.broker.server import ListenerPorts

T = TypeVar("T")

START_TIMEOUT = 10.0  # seconds: a broker on loopback port 0 starts in milliseconds
_watcher_ids = itertools.count(1)


def config_for_tests(**overrides: Any) -> BrokerConfig:
    """A BrokerConfig for tests: one TCP listener on 127.0.0.1, port 0 (a free port),
    state in memory; ``overrides`` are BrokerConfig fields (``listeners=[...]`` too)."""
    overrides.setdefault("listeners", [ListenerConfig(host="127.0.0.1", port=0)])
    overrides.setdefault("persistence", "memory")
    return BrokerConfig(**overrides)


class RunningBroker:
    """A Roost ``Broker`` running in a background thread until ``stop()``.

    Where it listens: ``host``, ``port`` (the first listener) and ``ports`` (every
    listener, by index, name and type). ``publish`` sends a message from the broker's
    side; ``watch`` subscribes and collects what arrives. The ``Broker`` itself is
    ``broker``: read its state with ``call`` (its own thread changes it).
    """

    __test__ = False  # not a test class, should a test module import it

    def __init__(self, config: BrokerConfig | None = None) -> None:
        self.config = config if config is not None else config_for_tests()
        self.broker = Broker(self.config)
        self._loop: asyncio.AbstractEventLoop | None = None  # made by start()
        self._thread = threading.Thread(target=self._run, name="roost-test-broker", daemon=True)
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._ports: ListenerPorts | None = None
        self._watchers: list[Watcher] = []

    # Lifecycle.

    def start(self) -> RunningBroker:
        """Start the broker; returns once every listener is bound (or raises why not)."""
        self._loop = asyncio.new_event_loop()
        self._thread.start()
        if not self._started.wait(START_TIMEOUT):
            raise RuntimeError(f"the broker did not start within {START_TIMEOUT} s")
        if self._error is not None:
            self._thread.join(START_TIMEOUT)
            raise self._error
        return self

    def stop(self) -> None:
        """Close the watchers, stop the broker (clients are disconnected) and its thread."""
        for watcher in list(self._watchers):
            watcher.close()
        if self._stop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(START_TIMEOUT)
        if self._error is not None and self._ports is not None:
            raise RuntimeError("the broker failed while running") from self._error

    def __enter__(self) -> RunningBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the broker runs in, in its own thread."""
        if self._loop is None:
            raise RuntimeError("the broker is not running: start() it first")
        return self._loop

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:  # noqa: BLE001  (handed to the test's thread by start/stop)
            self._error = exc
            self._started.set()
        finally:
            self.loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with self.broker:
            self._ports = self.broker.ports
            self._started.set()
            await self._stop.wait()

    # Where it listens.

    @property
    def ports(self) -> ListenerPorts:
        """Every listener's port: ``ports[0]``, ``ports.by_type("ws")``,
        ``ports.by_name("devices")``."""
        if self._ports is None:
            raise RuntimeError("the broker is not running: start() it first")
        return self._ports

    @property
    def port(self) -> int:
        """The first listener's port."""
        return self.ports[0]

    @property
    def host(self) -> str:
        """An address clients reach the first listener at."""
        host = self.config.listeners[0].host
        return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104

    # Acting on it.

    def call(self, func: Callable[..., T], *args: Any) -> T:
        """Run ``func(*args)`` in the broker's thread and return what it returns: how a
        test reads the broker's state (``broker.call(len, broker.broker.sessions)``)."""

        async def run() -> T:
            return func(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(START_TIMEOUT)

    def publish(
        self,
        topic: str,
        payload: str | bytes = b"",
        *,
        qos: int = 0,
        retain: bool = False,
        content_type: str | None = None,
        response_topic: str | None = None,
        correlation_data: bytes | None = None,
        user_properties: tuple[tuple[str, str], ...] = (),
    ) -> int:
        """Publish from the broker's side, as if a client had; returns once every
        subscriber has it (sent or queued), with how many did.

        A retained message is kept, and an empty retained payload deletes it, as from
        a client. No client id is the sender, so ``no_local`` subscriptions get it too.
        """
        validate_topic_name(topic)
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, not {qos!r}")
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        message = RoutedMessage(
            topic,
            data,
            qos,
            retain,
            content_type=content_type,
            response_topic=response_topic,
            correlation_data=correlation_data,
            user_properties=user_properties,
        )
        broker = self.broker
        return self.call(lambda: broker.core.publish(message, broker.now()))

    def watch(
        self,
        *topic_filters: str,
        qos: int = 2,
        username: str | None = None,
        password: str | None = None,
    ) -> Watcher:
        """Subscribe to ``topic_filters`` (default ``#``) from a client of this broker
        and collect what arrives; returns once subscribed. ``username`` and
        ``password``: for a broker that refuses anonymous clients."""
        watcher = Watcher(self, topic_filters or ("#",), qos, username, password)
        self._watchers.append(watcher)
        return watcher

    def _forget(self, watcher: Watcher) -> None:
        if watcher in self._watchers:
            self._watchers.remove(watcher)


class Watcher:
    """Messages on some topics, as a client of the broker receives them.

    ``get(timeout)`` for a plain test, ``await next(timeout)`` for an async one (either
    raises ``TimeoutError`` when nothing came in time); ``received`` holds everything
    taken so far. Close it (or use ``with``) to unsubscribe; the broker's ``stop``
    closes those still open.
    """

    __slots__ = ("_broker", "_client", "_queue", "_task", "received", "topic_filters")

    def __init__(
        self,
        broker: RunningBroker,
        topic_filters: tuple[str, ...],
        qos: int,
        username: str | None,
        password: str | None,
    ) -> None:
        self._broker = broker
        self.topic_filters = topic_filters
        self.received: list[Message] = []
        self._queue: queue.Queue[Message] = queue.Queue()
        self._client = Client(
            broker.host,
            broker.ports.by_type("tcp"),
            client_id=f"roost-watcher-{next(_watcher_ids)}",
            username=username,
            password=password,
        )
        self._task: asyncio.Task[None] | None = None

        async def subscribe() -> None:
            await self._client.connect()
            stream = self._client.messages()
            for topic_filter in topic_filters:
                await self._client.subscribe(topic_filter, qos=qos)
            self._task = asyncio.get_running_loop().create_task(self._collect(stream))

        asyncio.run_coroutine_threadsafe(subscribe(), broker.loop).result(START_TIMEOUT)

    async def _collect(self, stream: MessageStream) -> None:
        async for message in stream:
            self._queue.put(message)

    def get(self, timeout: float = 5.0) -> Message:
        """The next message, waiting up to ``timeout`` seconds for it."""
        try:
            message = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(
                f"no message on {', '.join(self.topic_filters)} within {timeout} s"
            ) from None
        self.received.append(message)
        return message

    async def next(self, timeout: float = 5.0) -> Message:
        """``get`` for async tests: waits in a worker thread, not blocking the loop."""
        return await asyncio.to_thread(self.get, timeout)

    def close(self) -> None:
        """Disconnect its client; messages already received stay in ``received``."""
        self._broker._forget(self)
        if not self._broker.loop.is_running():
            return

        async def disconnect() -> None:
            await self._client.disconnect()
            if self._task is not None:
                await self._task

        asyncio.run_coroutine_threadsafe(disconnect(), self._broker.loop).result(START_TIMEOUT)

    def __enter__(self) -> Watcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
