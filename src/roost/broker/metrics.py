"""$SYS topics in Mosquitto's naming, published as retained messages every sys_interval.

Only values that changed since the last round are published, so an idle broker
sends (almost) nothing. Load figures are per-minute rates smoothed over 1, 5 and 15
minutes, the way Mosquitto's ``$SYS/broker/load/...`` topics are.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from roost import __version__
from roost.broker.message import Message

if TYPE_CHECKING:
    from roost.broker.server import Broker

_WINDOWS = ((1, "1min"), (5, "5min"), (15, "15min"))
_LOADS = (
    ("messages/received", "messages_received"),
    ("messages/sent", "messages_sent"),
    ("bytes/received", "bytes_received"),
    ("bytes/sent", "bytes_sent"),
    ("connections", "clients_total"),
)


class SysTopics:
    __slots__ = ("_broker", "_last_counts", "_last_time", "_loads", "_published", "next_at")

    def __init__(self, broker: Broker, now: float) -> None:
        self._broker = broker
        self._published: dict[str, str] = {}
        self._loads: dict[str, float] = {}
        self._last_counts: dict[str, int] = {}
        self._last_time = now
        self.next_at = now

    def values(self, now: float) -> dict[str, str]:
        broker = self._broker
        stats = broker.stats
        connected = len([conn for conn in broker.connections if conn.session is not None])
        sessions = len(broker.sessions)
        values = {
            "$SYS/broker/version": f"roost version {__version__}",
            "$SYS/broker/uptime": f"{int(now - broker.started_at)} seconds",
            "$SYS/broker/clients/connected": str(connected),
            "$SYS/broker/clients/active": str(connected),
            "$SYS/broker/clients/disconnected": str(sessions - connected),
            "$SYS/broker/clients/inactive": str(sessions - connected),
            "$SYS/broker/clients/total": str(sessions),
            "$SYS/broker/messages/received": str(stats.messages_received),
            "$SYS/broker/messages/sent": str(stats.messages_sent),
            "$SYS/broker/publish/messages/received": str(stats.messages_received),
            "$SYS/broker/publish/messages/sent": str(stats.messages_sent),
            "$SYS/broker/bytes/received": str(stats.bytes_received),
            "$SYS/broker/bytes/sent": str(broker.coalescer.bytes_sent),
            "$SYS/broker/subscriptions/count": str(len(broker.router.tree)),
            "$SYS/broker/retained messages/count": str(len(broker.router.retained)),
        }
        elapsed = now - self._last_time
        if elapsed > 0:
            counts = {
                "messages_received": stats.messages_received,
                "messages_sent": stats.messages_sent,
                "bytes_received": stats.bytes_received,
                "bytes_sent": broker.coalescer.bytes_sent,
                "clients_total": stats.clients_total,
            }
            for name, counter in _LOADS:
                per_minute = (counts[counter] - self._last_counts.get(counter, 0)) * 60 / elapsed
                for minutes, label in _WINDOWS:
                    key = f"$SYS/broker/load/{name}/{label}"
                    decay = math.exp(-elapsed / (60 * minutes))
                    load = self._loads.get(key, 0.0) * decay + per_minute * (1 - decay)
                    self._loads[key] = load
                    values[key] = f"{load:.2f}"
            self._last_counts = counts
            self._last_time = now
        return values

    def publish(self, now: float) -> None:
        router = self._broker.router
        published = self._published
        for topic, value in self.values(now).items():
            if published.get(topic) == value:
                continue
            published[topic] = value
            message = Message(topic, value.encode(), 0, True)
            router.store_retained(message)
            router.publish(message, now)
