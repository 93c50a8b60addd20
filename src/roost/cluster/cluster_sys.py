"""Cluster-wide ``$SYS``: every node's counters, summed (docs/clustering.md).

Every ``sys_interval`` each node publishes its own counts on core NATS
``roost.sys.<node>`` and publishes, as retained ``$SYS/cluster/...`` messages next to
its own ``$SYS/broker/...``, the sums over the latest counts of every node it knows to
be alive (``Liveness``), itself included. A node that died, stopped or was not heard
from for three intervals plus the detection time is left out. Retained messages are
one set for the whole cluster, so their count is the largest any node reports, not a
sum.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

from roost.broker.message import Message

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription

    from roost.broker.core import BrokerCore
    from roost.cluster.liveness import Liveness

log = logging.getLogger("roost.cluster")

SYS_SUBJECT = "roost.sys"
# Summed across nodes; "retained messages/count" is the largest (one shared set).
SUMMED = (
    "clients/connected",
    "clients/total",
    "messages/received",
    "messages/sent",
    "subscriptions/count",
)
RETAINED = "retained messages/count"


class ClusterSys:
    """This node's counts out to NATS, every node's counts in, the sums to ``$SYS``."""

    def __init__(self, core: BrokerCore, node: str, liveness: Liveness, interval: float) -> None:
        self._core = core
        self._node = node
        self._liveness = liveness
        self._interval = interval
        self._latest: dict[str, tuple[float, dict[str, int]]] = {}  # node -> (heard at, counts)
        self._sub: Subscription | None = None
        self._published: dict[str, str] = {}

    async def start(self, nc: NatsClient) -> None:
        if self._sub is None:  # nats-py subscribes again by itself after a reconnect
            self._sub = await nc.subscribe(f"{SYS_SUBJECT}.*", cb=self._received)

    def counts(self) -> dict[str, int]:
        core = self._core
        sessions = core.registry.sessions
        stats = core.stats
        return {
            "clients/connected": sum(1 for s in sessions.values() if s.connection is not None),
            "clients/total": len(sessions),
            "messages/received": stats.messages_received,
            "messages/sent": stats.messages_sent,
            "subscriptions/count": core.router.subscription_count,
            RETAINED: core.router.retained_count,
        }

    async def _received(self, msg: Msg) -> None:
        node = msg.subject[len(SYS_SUBJECT) + 1 :]
        if node == self._node:
            return
        try:
            counts = {str(k): int(v) for k, v in json.loads(msg.data).items()}
        except (ValueError, TypeError, AttributeError):
            log.debug("Cluster: bad counts from node %r.", node)
            return
        self._latest[node] = (asyncio.get_running_loop().time(), counts)

    def tick(self, nc: NatsClient | None, connected: bool) -> None:
        """Send this node's counts and publish the cluster's sums (every interval)."""
        own = self.counts()
        if nc is not None and connected:
            task = asyncio.create_task(
                nc.publish(f"{SYS_SUBJECT}.{self._node}", json.dumps(own).encode())
            )
            task.add_done_callback(_log_failure)
        self.publish(self.sums(own))

    def sums(self, own: dict[str, int]) -> dict[str, str]:
        now = asyncio.get_running_loop().time()
        alive = set(self._liveness.alive_nodes())
        stale = 3 * self._interval + self._liveness.timeout
        latest = self._latest
        for node in [n for n, (at, _) in latest.items() if n not in alive or now - at > stale]:
            del latest[node]  # dead, stopped or silent: no longer counted
        every = [own, *(counts for _at, counts in self._latest.values())]
        values = {
            f"$SYS/cluster/{name}": str(sum(c.get(name, 0) for c in every)) for name in SUMMED
        }
        values[f"$SYS/cluster/{RETAINED}"] = str(max(c.get(RETAINED, 0) for c in every))
        values["$SYS/cluster/nodes"] = str(len(every))
        return values

    def publish(self, values: dict[str, str]) -> None:
        router = self._core.router
        now = asyncio.get_running_loop().time()
        published = self._published
        for topic, value in values.items():
            if published.get(topic) == value:
                continue
            published[topic] = value
            message = Message(topic, value.encode(), 0, True)
            router.retain(message)
            router.publish(message, now, forward=False)  # each node's own view


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("Cluster: sending counts failed: %r", task.exception())
