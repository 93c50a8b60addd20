"""Following a JetStream stream that holds the last message of each subject: the
shape shared by the retained messages and the interest table.

``start`` creates the stream if it is missing, then reads it with an ordered consumer
that begins at the last message of every subject and goes on with new ones, so the
replay and the live changes are one sequence applied in the stream's order. It waits
(a bounded time) until the replay has reached what the stream held when it began.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from nats.js.api import DeliverPolicy, StorageType
from nats.js.errors import BadRequestError

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription
    from nats.js.client import JetStreamContext

log = logging.getLogger("roost.cluster")

API_TIMEOUT = 5.0


async def ensure_stream(js: JetStreamContext, name: str, **config: Any) -> None:
    """Create the stream ``name`` with ``config`` (``StreamConfig`` fields: subjects,
    replicas...), file storage unless said otherwise; one that exists with other
    settings (an operator's replicas, say) is used as it is."""
    config.setdefault("storage", StorageType.FILE)
    try:
        await js.add_stream(name=name, **config)
    except BadRequestError as exc:
        log.info("Cluster: using the existing %s stream (%s).", name, exc.description)


class StreamFollower:
    """A stream of last-per-subject records, replayed and followed; subclasses say what
    a record does (``apply``) and what a new replay forgets (``restart``)."""

    stream = ""
    subjects = ""

    def __init__(self) -> None:
        self._sub: Subscription | None = None
        self._target = 0  # the stream's last sequence number when the replay began
        self._caught_up = asyncio.Event()
        self.applied = 0

    @property
    def caught_up(self) -> bool:
        return self._caught_up.is_set()

    async def start(self, nc: NatsClient, wait: float, replicas: int = 1) -> None:
        """(Re)read the stream from the start and follow it; wait up to ``wait`` seconds
        for the replay to reach what the stream held when it began. A missing stream is
        created with ``replicas`` copies (JetStream allows more than one only on a NATS
        cluster)."""
        js = nc.jetstream(timeout=API_TIMEOUT)
        await ensure_stream(
            js,
            self.stream,
            subjects=[self.subjects],
            max_msgs_per_subject=1,
            num_replicas=replicas,
        )
        if self._sub is not None:
            old, self._sub = self._sub, None
            try:
                await old.unsubscribe()
            except Exception as exc:  # noqa: BLE001  (its consumer may be gone with the server)
                log.debug("Cluster: dropping the old %s consumer: %r", self.stream, exc)
        self._caught_up.clear()
        self.restart()
        info = await js.stream_info(self.stream)
        self._target = info.state.last_seq
        if not info.state.messages:
            self._arrived()
        self._sub = await js.subscribe(
            self.subjects,
            cb=self._received,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        )
        try:
            await asyncio.wait_for(self._caught_up.wait(), wait)
        except TimeoutError:
            log.warning(
                "Cluster: %s still arriving from NATS after %.0f s; serving meanwhile.",
                self.stream,
                wait,
            )

    def restart(self) -> None:
        """The replay starts again from the beginning: forget what depends on it."""

    def apply(self, msg: Msg) -> None:
        raise NotImplementedError

    def _arrived(self) -> None:
        self._caught_up.set()

    async def _received(self, msg: Msg) -> None:
        if not self._caught_up.is_set() and msg.metadata.sequence.stream >= self._target:
            self.apply(msg)
            self._arrived()
            return
        self.apply(msg)
