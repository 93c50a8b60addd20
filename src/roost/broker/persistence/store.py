"""The Store protocol: what the broker tells its storage, and what it gets back at start.

The broker calls a store from its synchronous packet handlers to record each change to
durable state: a session saved (created, its expiry or will changed) or ended, a
subscription added or removed, a message queued, sent (in flight), released (QoS 2
PUBREL sent) or removed (acknowledged, dropped, expired), a QoS 2 packet id received
or released, a retained message set or deleted. Recording never blocks: a store
collects changes and writes them elsewhere (``sqlite.py``), or drops them
(``memory.py``).

Only sessions that outlive their connection (expiry interval > 0) are recorded; the
broker gives ``Session.store`` only to those, so clean sessions cost nothing.

Deadlines passed in and handed back are loop times (``loop.time()``); a store keeps
wall-clock times, since the loop's clock starts again with each process.

The protocol builds on ``sessions.SessionStore`` (the part a session records its own
changes through); this module depends on sessions, never the reverse.

``hold(conn)`` is how "acknowledged means durable" is kept: with a store that holds
(the SQLite store with commit policy "sync"), every packet sent on ``conn`` from that
call on waits until the changes recorded so far are committed. ``op_count`` counts the
changes recorded, so a handler can tell whether its packet caused any.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from roost.broker.sessions import SessionStore
from roost.broker.transport import Holder

if TYPE_CHECKING:
    import asyncio

    from roost.broker.message import Message
    from roost.broker.records import SubscriptionRecord
    from roost.broker.sessions import Identity
    from roost.codec import Will

__all__ = [
    "Holder",
    "Spooled",
    "Store",
    "StoreError",
    "StoredDelivery",
    "StoredSession",
    "StoredState",
]


class StoreError(Exception):
    """Storage Roost cannot use; ``str()`` names the file and says what to do."""


@dataclass(slots=True)
class StoredDelivery:
    """One message on its way to a stored session: queued, or in flight."""

    store_id: int
    message: Message
    qos: int
    retain: bool
    subscription_ids: tuple[int, ...]
    share_group: str | None
    packet_id: int | None  # None: queued, not yet sent
    released: bool  # QoS 2: PUBREL sent, awaiting PUBCOMP


@dataclass(slots=True)
class StoredSession:
    """A session as the store kept it, handed back at start."""

    client_id: str
    expiry_interval: int
    expires_at: float | None  # None: the client was connected when the broker stopped
    will: Will | None
    will_at: float | None  # deadline of a delayed will; None with a will: connected
    identity: Identity | None = None  # None: stored before schema version 2
    subscriptions: list[SubscriptionRecord] = field(default_factory=list)
    deliveries: list[StoredDelivery] = field(default_factory=list)  # in recorded order
    receive_ids: list[int] = field(default_factory=list)  # QoS 2 ids awaiting PUBREL


@dataclass(slots=True)
class Spooled:
    """One entry of the spool (``Store.spool_added``), handed back at start."""

    row: int  # its place: entries are handed back in this order
    subject: str
    data: bytes
    msg_id: str


@dataclass(slots=True)
class StoredState:
    """Everything a store holds: sessions and retained messages."""

    sessions: list[StoredSession] = field(default_factory=list)
    retained: list[tuple[str, Message]] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)  # see Store.meta_set
    spool: list[Spooled] = field(default_factory=list)  # see Store.spool_added, in order


class Store(SessionStore, Protocol):
    """A broker's storage: what it records of sessions and retained messages as they
    change, and what it hands back at start."""

    durable: bool  # False: nothing is kept; the broker records nothing
    op_count: int  # changes recorded so far
    description: str  # for the startup log line

    def open(self, loop: asyncio.AbstractEventLoop) -> StoredState:
        """Open the storage and return what it holds; raises StoreError."""

    async def flush(self) -> None:
        """Return once every change recorded so far is committed."""

    async def close(self) -> None:
        """Commit what is recorded and close; nothing may be recorded after."""

    # Retained messages.
    def retained_set(self, topic: str, message: Message) -> None: ...
    def retained_deleted(self, topic: str) -> None: ...

    def meta_set(self, key: str, value: str) -> None:
        """Keep ``value`` under ``key``, committed with the changes recorded with it;
        handed back in ``StoredState.meta`` at the next start."""

    # The spool: messages a component keeps, in order, for somewhere else until that
    # place has them (a cluster node's QoS 1/2 messages while JetStream does not answer).
    def spool_added(self, subject: str, data: bytes, msg_id: str) -> int:
        """Keep an entry after every other, committed with the changes recorded with it
        (``hold`` waits for it like for them); returns its row, for ``spool_removed``.
        Handed back in ``StoredState.spool`` at the next start until removed."""

    def spool_removed(self, row: int) -> None:
        """The entry is delivered: forget it (with the next commit)."""
