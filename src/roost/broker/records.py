"""The small records that sessions, the router and the store pass between them.

``SubscriptionRecord`` is one subscription as granted; ``Outgoing`` is one message on its
way to one session's client. Both are plain data: who may change them is said in
docs/architecture.md (a session changes its own ``Outgoing`` items; records are replaced,
never edited, once the router holds them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from roost.broker.message import Message


@dataclass(slots=True)
class SubscriptionRecord:
    """One subscription as the broker granted it, with its MQTT 5 options."""

    client_id: str
    topic_filter: str  # as subscribed, $share/{group}/ included
    qos: int
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0
    identifier: int | None = None
    share_group: str | None = None


class Outgoing:
    """One message on its way to one session's client: queued, or in flight."""

    __slots__ = (
        "message",
        "qos",
        "released",
        "retain",
        "share_group",
        "store_id",
        "subscription_ids",
    )

    def __init__(
        self,
        message: Message,
        qos: int,
        retain: bool,
        subscription_ids: tuple[int, ...],
        share_group: str | None = None,
    ) -> None:
        self.message = message
        self.qos = qos
        self.retain = retain
        self.subscription_ids = subscription_ids
        self.share_group = share_group
        self.released = False  # QoS 2: PUBREC received, PUBREL sent, awaiting PUBCOMP
        self.store_id = 0  # its row in the session's store; 0: none
