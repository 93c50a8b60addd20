"""Durable broker state: the Store protocol and its memory and SQLite implementations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from roost.broker.persistence.memory import MemoryStore
from roost.broker.persistence.sqlite import SqliteStore
from roost.broker.persistence.store import Store, StoredState, StoreError

if TYPE_CHECKING:
    from roost.broker.config import BrokerConfig

__all__ = ["MemoryStore", "SqliteStore", "Store", "StoreError", "StoredState", "make_store"]


def make_store(config: BrokerConfig) -> Store:
    """The store ``config`` asks for, not yet opened."""
    data_dir = config.state_dir()
    if data_dir is None:
        return MemoryStore()
    return SqliteStore(data_dir, config.commit_policy, config.commit_window_ms / 1000)
