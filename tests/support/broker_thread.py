"""A real Roost broker on port 0, run in a thread with its own event loop.

Tests then talk to it over real sockets with blocking clients (raw sockets, paho-mqtt,
mosquitto_pub/sub subprocesses) without needing an async test framework.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from roost.broker.config import BrokerConfig, ListenerConfig
from roost.broker.server import Broker

T = TypeVar("T")


class BrokerThread:
    def __init__(self, config: BrokerConfig | None = None) -> None:
        # In-memory state unless a test asks for a store: no test shares a database.
        self.config = config or BrokerConfig(persistence="memory")
        self.config.listeners = [ListenerConfig(host="127.0.0.1", port=0)]
        self.broker = Broker(self.config)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="roost-broker", daemon=True)
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:  # noqa: BLE001  (reported to the test thread in start()/stop())
            self._error = exc
            self._started.set()
        finally:
            self.loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        async with self.broker:
            self._started.set()
            await self._stop.wait()

    def start(self) -> BrokerThread:
        self._thread.start()
        if not self._started.wait(10) or self._error is not None:
            raise RuntimeError(f"broker did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        if self._error is not None:
            raise RuntimeError("broker thread failed") from self._error

    @property
    def port(self) -> int:
        return self.broker.port

    def call(self, func: Callable[..., T], *args: Any) -> T:
        """Run ``func(*args)`` on the broker's loop and return its result (for inspection)."""

        async def run() -> T:
            return func(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)


def quiet_logging() -> None:
    logging.getLogger("roost").setLevel(logging.DEBUG)
