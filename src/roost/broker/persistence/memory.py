"""The in-memory store: keeps nothing, so state lives and dies with the process.

Used with ``persistence = "memory"`` (``roost broker --no-persistence``) and by the test
fixtures. The broker gives sessions no store when ``durable`` is False, so most of
these methods are never called; they exist so that the type is a complete Store.

The spool (``spool_added``) is kept by whoever spools (a cluster node keeps its entries
in its own memory anyway): here it only numbers the entries. Nothing of it survives a
restart, like everything else without persistence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from roost.broker.persistence.store import Holder, StoredState

if TYPE_CHECKING:
    import asyncio

    from roost.broker.message import Message
    from roost.broker.records import Outgoing, SubscriptionRecord
    from roost.broker.sessions import Session


class MemoryStore:
    """The store of a broker without persistence: records nothing, holds nothing back."""

    durable = False
    op_count = 0
    description = "off (state is kept in memory only)"
    _spool_rows = 0

    def open(self, loop: asyncio.AbstractEventLoop) -> StoredState:
        return StoredState()

    async def flush(self) -> None:
        return

    async def close(self) -> None:
        return

    def hold(self, conn: Holder) -> None:
        return

    def session_saved(self, session: Session) -> None:
        return

    def session_ended(self, session: Session) -> None:
        return

    def subscription_added(self, session: Session, record: SubscriptionRecord) -> None:
        return

    def subscription_removed(self, session: Session, topic_filter: str) -> None:
        return

    def delivery_queued(self, session: Session, item: Outgoing) -> None:
        return

    def delivery_sent(self, session: Session, item: Outgoing, packet_id: int) -> None:
        return

    def delivery_released(self, session: Session, item: Outgoing, packet_id: int) -> None:
        return

    def delivery_removed(self, session: Session, item: Outgoing) -> None:
        return

    def receive_id_added(self, session: Session, packet_id: int) -> None:
        return

    def receive_id_removed(self, session: Session, packet_id: int) -> None:
        return

    def retained_set(self, topic: str, message: Message) -> None:
        return

    def retained_deleted(self, topic: str) -> None:
        return

    def meta_set(self, key: str, value: str) -> None:
        return

    def spool_added(self, subject: str, data: bytes, msg_id: str) -> int:
        self._spool_rows += 1
        return self._spool_rows

    def spool_removed(self, row: int) -> None:
        return
