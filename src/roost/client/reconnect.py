"""Reconnecting after a lost connection: when to try again, and the loop that does.

``ReconnectPolicy`` is the user's choice (how long to wait between attempts, how many);
``Reconnector`` runs one loop at a time for a client: it waits, asks the client to
open a new connection, and either stops when one is up or gives up with the last
error. Which losses and refusals are worth another attempt is decided here too.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from roost.client.errors import (
    AuthenticationError,
    ConnectionLost,
    ConnectRefused,
    MQTTError,
    ServerDisconnected,
)
from roost.codec import ConnackReturnCode, ConnectReasonCode, DisconnectReasonCode

log = logging.getLogger("roost.client")

# Refusals that another attempt cannot fix: stop reconnecting. MQTT 3.1.x return codes
# and MQTT 5 reason codes do not overlap, so one set serves both.
_PERMANENT_REFUSALS = frozenset(
    (
        ConnackReturnCode.UNACCEPTABLE_PROTOCOL_VERSION,
        ConnackReturnCode.IDENTIFIER_REJECTED,
        ConnackReturnCode.BAD_USERNAME_OR_PASSWORD,
        ConnackReturnCode.NOT_AUTHORIZED,
        ConnectReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
        ConnectReasonCode.CLIENT_IDENTIFIER_NOT_VALID,
        ConnectReasonCode.BAD_USERNAME_OR_PASSWORD,
        ConnectReasonCode.NOT_AUTHORIZED,
        ConnectReasonCode.BANNED,
        ConnectReasonCode.BAD_AUTHENTICATION_METHOD,
    )
)


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
        """How long to wait before each attempt, one value per attempt."""
        # Jitter spreads reconnect storms; it is not a security measure.
        uniform = (rng or random.Random()).uniform  # noqa: S311
        attempt = 0
        while self.max_attempts is None or attempt < self.max_attempts:
            ceiling = min(self.max_delay, self.initial_delay * self.multiplier**attempt)
            yield uniform(0, ceiling)
            attempt += 1


def worth_reconnecting(error: BaseException) -> bool:
    """Whether a lost connection is worth another attempt at all.

    Not when our side refused the server's authentication (asking again gets the same
    answer), nor when another client took over our session (coming back would take it
    back, and the two would evict each other forever).
    """
    if isinstance(error, AuthenticationError):
        return False
    return not (
        isinstance(error, ServerDisconnected)
        and error.reason_code == DisconnectReasonCode.SESSION_TAKEN_OVER
    )


class Reconnector:
    """Runs a client's reconnect loop: at most one task, started on a loss, ended by
    success, by giving up (``give_up`` gets the last error) or by ``cancel()``."""

    __slots__ = ("_give_up", "_reopen", "_task")

    def __init__(
        self,
        reopen: Callable[[], Awaitable[object]],
        give_up: Callable[[BaseException], None],
    ) -> None:
        self._reopen = reopen
        self._give_up = give_up
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """A reconnect is under way: requests may wait for it in the session."""
        return self._task is not None

    def start(self, policy: ReconnectPolicy) -> None:
        """Begin reconnecting by ``policy``; a loop already running is superseded."""
        self._task = asyncio.get_running_loop().create_task(self._run(policy))

    def forget(self) -> None:
        """The client is down for good: no loop counts as running any more."""
        self._task = None

    async def cancel(self) -> None:
        """Stop the loop and wait until it has stopped (unless called from inside it)."""
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self, policy: ReconnectPolicy) -> None:
        last: BaseException = ConnectionLost("the connection was lost")
        for attempt, delay in enumerate(policy.delays(), 1):
            await asyncio.sleep(delay)
            try:
                await self._reopen()
            except ConnectRefused as exc:
                last = exc
                if exc.reason_code in _PERMANENT_REFUSALS:
                    break
            except AuthenticationError as exc:
                last = exc  # the server failed to prove itself: do not keep asking
                break
            except (MQTTError, OSError) as exc:
                last = exc
            else:
                # A loss right after this success may have started a newer loop already.
                if self._task is asyncio.current_task():
                    self._task = None
                log.info("Reconnected after %d attempt(s).", attempt)
                return
            log.info("Reconnect attempt %d failed: %s", attempt, last)
        self._give_up(last)
