"""$SYS topics in Mosquitto's naming, published as retained messages every sys_interval.

Only values that changed since the last round are published, so an idle broker
sends (almost) nothing. Load figures are per-minute rates smoothed over 1, 5 and 15
minutes, the way Mosquitto's ``$SYS/broker/load/...`` topics are.

``SysTopics`` knows nothing of the broker's parts: it takes a function that returns a
``SysSnapshot`` of the counts, and one that publishes (and retains) a message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from roost import __version__
from roost.broker.message import Message

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping


@dataclass(slots=True, frozen=True)
class SysSnapshot:
    """The counts ``$SYS`` reports, read from the broker's parts at one moment."""

    connected: int
    sessions: int
    subscriptions: int
    retained: int
    messages_received: int
    messages_sent: int
    bytes_received: int
    bytes_sent: int
    clients_total: int
    # Messages not delivered to a subscriber, by reason (stats.DropReason values).
    dropped: Mapping[str, int] = field(default_factory=dict)
    held_back: int = 0
    closed_by_broker: Mapping[str, int] = field(default_factory=dict)
    hook_errors: int | None = None  # None: no hooks configured (no topic published)
    # Per bridge name: its values by topic suffix (``$SYS/broker/bridges/<name>/...``).
    bridges: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


_WINDOWS = ((1, "1min"), (5, "5min"), (15, "15min"))
_LOADS = (
    ("messages/received", "messages_received"),
    ("messages/sent", "messages_sent"),
    ("bytes/received", "bytes_received"),
    ("bytes/sent", "bytes_sent"),
    ("connections", "clients_total"),
)


class SysTopics:
    """Publishes the ``$SYS/broker/...`` values that changed, every ``sys_interval``."""

    __slots__ = (
        "_last_counts",
        "_last_time",
        "_loads",
        "_publish",
        "_published",
        "_snapshot",
        "_started_at",
        "next_at",
    )

    def __init__(
        self,
        snapshot: Callable[[], SysSnapshot],
        publish: Callable[[Message, float], object],
        now: float,
    ) -> None:
        self._snapshot = snapshot
        self._publish = publish
        self._started_at = now
        self._published: dict[str, str] = {}
        self._loads: dict[str, float] = {}
        self._last_counts: dict[str, int] = {}
        self._last_time = now
        self.next_at = now

    def values(self, now: float) -> dict[str, str]:
        snap = self._snapshot()
        connected = snap.connected
        sessions = snap.sessions
        values = {
            "$SYS/broker/version": f"roost version {__version__}",
            "$SYS/broker/uptime": f"{int(now - self._started_at)} seconds",
            "$SYS/broker/clients/connected": str(connected),
            "$SYS/broker/clients/active": str(connected),
            "$SYS/broker/clients/disconnected": str(sessions - connected),
            "$SYS/broker/clients/inactive": str(sessions - connected),
            "$SYS/broker/clients/total": str(sessions),
            "$SYS/broker/messages/received": str(snap.messages_received),
            "$SYS/broker/messages/sent": str(snap.messages_sent),
            "$SYS/broker/publish/messages/received": str(snap.messages_received),
            "$SYS/broker/publish/messages/sent": str(snap.messages_sent),
            "$SYS/broker/bytes/received": str(snap.bytes_received),
            "$SYS/broker/bytes/sent": str(snap.bytes_sent),
            "$SYS/broker/subscriptions/count": str(snap.subscriptions),
            "$SYS/broker/retained messages/count": str(snap.retained),
            # Mosquitto's name for the total; Roost's own topics say why, per reason.
            "$SYS/broker/publish/messages/dropped": str(sum(snap.dropped.values())),
            # Roost's own: reads paused while a connection's answers wait for commits.
            "$SYS/broker/connections/paused/store": str(snap.held_back),
        }
        if snap.hook_errors is not None:
            # Roost's own: broker hooks that raised, timed out or answered nonsense.
            values["$SYS/broker/hooks/errors"] = str(snap.hook_errors)
        for reason, count in snap.dropped.items():
            values[f"$SYS/broker/messages/dropped/{reason}"] = str(count)
        for reason, count in snap.closed_by_broker.items():
            values[f"$SYS/broker/connections/closed_by_broker/{reason}"] = str(count)
        for name, bridge in snap.bridges.items():
            for key, value in bridge.items():
                values[f"$SYS/broker/bridges/{name}/{key}"] = value
        elapsed = now - self._last_time
        if elapsed > 0:
            counts = {
                "messages_received": snap.messages_received,
                "messages_sent": snap.messages_sent,
                "bytes_received": snap.bytes_received,
                "bytes_sent": snap.bytes_sent,
                "clients_total": snap.clients_total,
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
        published = self._published
        for topic, value in self.values(now).items():
            if published.get(topic) == value:
                continue
            published[topic] = value
            self._publish(Message(topic, value.encode(), 0, True), now)
