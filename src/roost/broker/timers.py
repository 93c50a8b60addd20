"""The one periodic sweep: keep-alive, session expiry, will delay, $SYS."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from roost.broker.server import Broker

log = logging.getLogger("roost.broker")

SWEEP_INTERVAL = 0.5  # seconds; keep-alive is checked to this resolution


class Sweeper:
    __slots__ = ("_broker", "_task")

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        broker = self._broker
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                broker.sweep(broker.now())
            except Exception:  # the sweep must survive a bug in one of its parts
                log.exception("Timer sweep failed")
