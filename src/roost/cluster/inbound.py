"""Messages from the other nodes on core NATS: each once, into the local router
(docs/clustering.md, "Delivery across nodes").

Every node process stamps what it sends with its origin and a sequence number
(``envelope``); a window per origin drops what was seen already (NATS may deliver a
message twice to a subscription overlapping another) or is too old to tell.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from roost.cluster import envelope
from roost.cluster.envelope import SeenWindow

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from roost.broker.router import Router


class Inbound:
    """The node's core-NATS subscriptions' callback, and the windows it keeps."""

    def __init__(self, router: Router, origin: bytes, counts: dict[str, int]) -> None:
        self._router = router
        self.origin = origin  # ours: our own messages are not taken back
        self.counts = counts  # the node's, shared
        self._seen: dict[bytes, SeenWindow] = {}

    async def received(self, msg: Msg) -> None:
        data = msg.data
        if data[:1] >= b"\x80":
            return  # envelope.SHARES_ONLY: the stream brings it (QosConsumer)
        counts = self.counts
        try:
            origin, seq, offset = envelope.header(data)
        except ValueError:
            counts["messages/invalid"] += 1
            return
        if origin == self.origin:
            return
        window = self._seen.get(origin)
        if window is None:
            window = self._new_origin(origin)
        late = window.too_old
        if not window.first_time(seq):
            counts["messages/late" if window.too_old > late else "messages/duplicates"] += 1
            return
        now = asyncio.get_running_loop().time()
        try:
            message = envelope.message(data, offset, now)
        except ValueError:
            counts["messages/invalid"] += 1
            return
        message.cluster_id = (origin, seq)
        counts["messages/received"] += 1
        self._router.publish(message, now, forward=False)  # counted by the router

    def _new_origin(self, origin: bytes) -> SeenWindow:
        """A node process heard from for the first time: a restarted node is a new
        origin, and the window of its earlier process (same node name) can go."""
        name = origin.rpartition(b"/")[0] + b"/"
        for old in [known for known in self._seen if known.startswith(name)]:
            del self._seen[old]
        window = self._seen[origin] = SeenWindow()
        return window
