"""Asking JetStream again until it answers (docs/clustering.md, failure table).

After each (re)connection a node sets up its JetStream parts: the interest and retained
replays, the session directory, the QoS stream and consumer, the will buckets.
JetStream may not answer at once: a NATS cluster that lost a server elects new stream
leaders for seconds, one without a majority cannot answer until a server returns, and
a server without JetStream never does. So a failed attempt is made again, the pause
doubling from ``RETRY`` to ``RETRY_MAX``, for as long as the connection lasts (the
next connection starts afresh); meanwhile the node serves and forwards everything.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("roost.cluster")

RETRY = 1.0  # seconds before JetStream is asked again, doubling up to the next
RETRY_MAX = 10.0


async def until_jetstream_answers(
    node: str,
    attempt: Callable[[], Awaitable[None]],
    connected: Callable[[], bool],
    attempted: asyncio.Event,
) -> None:
    """Run ``attempt`` until it succeeds or the connection is gone; ``attempted`` is
    set once the first attempt has ended, either way (a starting broker waits for it)."""
    pause = RETRY
    failed = False
    while True:
        try:
            await attempt()
        except Exception as exc:  # noqa: BLE001  (JetStream off or failing: say so, serve)
            attempted.set()
            if not failed:
                log.warning(
                    "Cluster node %s: JetStream unavailable (%r); retained messages are"
                    " not shared, and every message is sent to NATS, until it answers"
                    " (trying again, first in %.0f s).",
                    node,
                    exc,
                    pause,
                )
            failed = True
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_MAX)
            if not connected():
                return  # the reconnection starts a new round
            continue
        attempted.set()
        if failed:
            log.warning("Cluster node %s: JetStream answers again.", node)
        return
