"""The one periodic sweep: keep-alive, session expiry, will delay, $SYS.

The sweeper calls one function with the clock's time every ``SWEEP_INTERVAL``; what
the function does (``Broker.sweep``) is the broker's business, not the timer's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("roost.broker")

SWEEP_INTERVAL = 0.5  # seconds; keep-alive is checked to this resolution


class Sweeper:
    """Calls ``tick(clock())`` every ``SWEEP_INTERVAL`` seconds until stopped."""

    __slots__ = ("_clock", "_task", "_tick")

    def __init__(self, clock: Callable[[], float], tick: Callable[[float], None]) -> None:
        self._clock = clock
        self._tick = tick
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        clock = self._clock
        tick = self._tick
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                tick(clock())
            except Exception:  # the sweep must survive a bug in one of its parts
                log.exception("Timer sweep failed")
