"""Driving a SqliteStore directly: record through real sessions, reopen, look at the file."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

from roost.broker.config import BrokerConfig
from roost.broker.message import Message
from roost.broker.persistence import SqliteStore, StoredState
from roost.broker.persistence.sqlite import DATABASE_NAME
from roost.broker.sessions import Session

TABLES = ("messages", "sessions", "subscriptions", "deliveries", "receive_ids", "retained")


def stored_session(store: SqliteStore, client_id: str, expiry: int = 60) -> Session:
    """A session recorded in ``store``, as the broker makes one at CONNECT."""
    session = Session(client_id, BrokerConfig(persistence="memory"))
    session.expiry_interval = expiry
    session.store = store
    store.session_saved(session)
    return session


def record_and_reload(data_dir: Path, record: Callable[[SqliteStore], None]) -> StoredState:
    """Open a store on ``data_dir``, ``record(store)``, close it; reopen and load."""

    async def run() -> StoredState:
        loop = asyncio.get_running_loop()
        store = SqliteStore(str(data_dir))
        store.open(loop)
        record(store)
        await store.close()
        again = SqliteStore(str(data_dir))
        state = again.open(loop)
        await again.close()
        return state

    return asyncio.run(run())


def open_and_close(data_dir: Path) -> StoredState:
    return record_and_reload(data_dir, lambda store: None)


def row_counts(data_dir: Path) -> dict[str, int]:
    """Rows per table, read with a connection of our own (the store must be closed)."""
    conn = sqlite3.connect(data_dir / DATABASE_NAME)
    try:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
            for table in TABLES
        }
    finally:
        conn.close()


def message(topic: str = "a/b", payload: bytes = b"hello", qos: int = 1) -> Message:
    return Message(topic, payload, qos, False, "publisher")
