"""When to try again after a lost connection: exponential backoff with full jitter."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(slots=True, frozen=True)
class ReconnectPolicy:
    """Reconnect automatically after an unexpected loss of the connection.

    The n-th attempt waits a random time between 0 and ``min(max_delay, initial_delay *
    multiplier ** n)`` ("full jitter"), so that many clients dropped at once by the
    same broker restart do not all come back in the same instant. ``max_attempts``
    None means: keep trying until the client is closed.
    """

    initial_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0
    max_attempts: int | None = None

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        # Jitter spreads reconnect storms; it is not a security measure.
        uniform = (rng or random.Random()).uniform  # noqa: S311
        attempt = 0
        while self.max_attempts is None or attempt < self.max_attempts:
            ceiling = min(self.max_delay, self.initial_delay * self.multiplier**attempt)
            yield uniform(0, ceiling)
            attempt += 1
