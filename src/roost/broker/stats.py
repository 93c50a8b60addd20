"""Counters the broker keeps for $SYS and for operators."""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from roost.codec import DisconnectReasonCode

log = logging.getLogger("roost.broker")


class DropReason(StrEnum):
    """Why a message meant for a subscriber was not delivered; each is a $SYS topic,
    ``$SYS/broker/messages/dropped/<reason>``."""

    ACL_DENIED = "acl_denied"  # the subscriber may not read the topic (ACL or plugin)
    QUEUE_FULL = "queue_full"  # max_queued_messages or max_queued_bytes reached
    EXPIRED = "expired"  # its Message Expiry Interval passed before it could be sent
    TOO_LARGE = "too_large"  # larger than the client's Maximum Packet Size
    SLOW_CLIENT = "slow_client"  # QoS 0 to a connected client that is not reading
    HOOK = "hook"  # dropped by a broker hook (on_publish, on_deliver; docs/hooks.md)


@dataclass(slots=True)
class Stats:
    """Counters for $SYS and operators; each is incremented where its event happens."""

    bytes_received: int = 0
    bytes_sent: int = 0
    clients_total: int = 0
    refused_connections: int = 0
    protocol_violations: int = 0
    retained_refused: int = 0
    dropped: dict[DropReason, int] = field(default_factory=lambda: dict.fromkeys(DropReason, 0))
    # PUBLISHes from clients (and bridges' remotes), and their payload bytes, by QoS
    # (index 0, 1, 2).
    received_by_qos: list[int] = field(default_factory=lambda: [0, 0, 0])
    received_bytes_by_qos: list[int] = field(default_factory=lambda: [0, 0, 0])
    # Deliveries to subscribers, and their payload bytes, by the QoS they were sent at (a
    # delivery waiting for a plugin's read-access answer counts when it is handed on).
    sent_by_qos: list[int] = field(default_factory=lambda: [0, 0, 0])
    sent_bytes_by_qos: list[int] = field(default_factory=lambda: [0, 0, 0])
    # Connections refused (refused_connections), by the CONNACK reason code's name.
    refused_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def messages_received(self) -> int:
        return sum(self.received_by_qos)

    @property
    def messages_sent(self) -> int:
        return sum(self.sent_by_qos)

    def refused(self, reason: str) -> None:
        """Count a connection refused for ``reason`` (a ConnectReasonCode's lower-case name)."""
        self.refused_connections += 1
        self.refused_by_reason[reason] = self.refused_by_reason.get(reason, 0) + 1

    # Told of every drop: the on_message_dropped hooks (hook_dispatch.Hooks), if any.
    on_dropped: Callable[[DropReason, str, str], None] | None = None
    # Times a broker hook raised, timed out or answered nonsense (docs/hooks.md).
    hook_errors: int = 0

    def message_dropped(self, reason: DropReason, client_id: str, topic: str) -> None:
        """Count a message not delivered to ``client_id``, and say so at debug level."""
        self.dropped[reason] += 1
        log.debug("Dropped a message on %r for client %s: %s.", topic, client_id, reason)
        if self.on_dropped is not None:
            self.on_dropped(reason, client_id, topic)

    # Times a connection was not read because held_limit packets waited for commits.
    held_back: int = 0
    # Connections the broker ended, by reason (``closed_by_broker``'s names).
    closed_by_broker: dict[str, int] = field(default_factory=dict)

    def closed(self, reason: str) -> None:
        """Count a connection the broker ended for ``reason``."""
        self.closed_by_broker[reason] = self.closed_by_broker.get(reason, 0) + 1


# Reasons for ending a connection that are the broker's own doing or ordinary; the
# others say a client misbehaved (or we did) and are logged as warnings.
ROUTINE_CLOSES = frozenset(
    {"server_shutting_down", "session_taken_over", "keep_alive_timeout", "administrative_action"}
)


def close_reason(reason_code: int) -> str:
    """The name a close is logged and counted under: the MQTT 5 reason code's, in
    lower case (``receive_maximum_exceeded``), also for 3.1.x clients, who are not told."""
    try:
        return DisconnectReasonCode(reason_code).name.lower()
    except ValueError:
        return f"reason_0x{reason_code:02x}"


class Histogram:
    """Counts of observations per bucket (cumulative upper bounds, as Prometheus has
    them), their sum and count: plain numbers, cheap enough to observe per commit."""

    __slots__ = ("bounds", "buckets", "count", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.buckets[bisect.bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound, observations at or below it) pairs, "+Inf" last."""
        total = 0
        out = []
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.buckets, strict=True):
            total += count
            out.append((bound, total))
        return out
