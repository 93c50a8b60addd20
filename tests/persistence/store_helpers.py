"""Driving a SqliteStore directly: record through real sessions, reopen, look at the file."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from roost.broker.config import BrokerConfig
from roost.broker.message import Message
from roost.broker.persistence import SqliteStore, StoredState
from roost.broker.persistence.batch import Batch, apply
from roost.broker.persistence.rows import message_row, subscription_row
from roost.broker.persistence.schema import MIGRATIONS, prepare
from roost.broker.persistence.sqlite import DATABASE_NAME
from roost.broker.records import SubscriptionRecord
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


def write_version_1_database(data_dir: Path) -> None:
    """A database as the Roost before schema version 2 wrote it: its schema, and rows of
    its width written through the store's batch code: a session of alice1 with a
    subscription and a queued message."""
    data_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(data_dir / DATABASE_NAME, isolation_level=None)
    assert prepare(conn, str(data_dir), MIGRATIONS[:1]) == 0
    batch = Batch(1, 1, 1)
    batch.messages[1] = message_row(1, Message("a/before", b"x", 1, False, "pubber"), 0.0)
    batch.deliveries[1] = (1, "alice1", 1, 1, 0, None, None, None, 0)
    batch.sessions["alice1"] = ("alice1", 604800, time.time() + 600, None, None)
    batch.subscriptions["alice1", "a/#"] = subscription_row(
        "alice1", SubscriptionRecord("alice1", "a/#", 1)
    )
    apply(conn, batch)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    conn.close()
