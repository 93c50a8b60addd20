"""The store's spool (schema version 4): entries a component keeps, in order, for
somewhere else until it has them (a cluster node's QoS 1/2 messages for JetStream while
it does not answer; docs/clustering.md, "The spool")."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from roost.broker.persistence import MemoryStore, SqliteStore
from roost.broker.persistence.schema import MIGRATIONS, SCHEMA_VERSION, prepare
from roost.broker.persistence.sqlite import DATABASE_NAME
from roost.broker.persistence.store import Spooled
from tests.persistence.store_helpers import message, record_and_reload


def spooled(entries: list[Spooled]) -> list[tuple[str, bytes, str]]:
    return [(entry.subject, entry.data, entry.msg_id) for entry in entries]


def spool_rows(data_dir: Path) -> int:
    conn = sqlite3.connect(data_dir / DATABASE_NAME)
    try:
        return int(conn.execute("SELECT count(*) FROM spool").fetchone()[0])
    finally:
        conn.close()


def test_spooled_entries_come_back_in_order_until_removed(tmp_path: Path) -> None:
    rows: list[int] = []

    def first(store: SqliteStore) -> None:
        rows.extend(
            store.spool_added(f"roost.q.t.{i}", b"data-%d" % i, f"a/1/{i}") for i in range(5)
        )
        store.spool_removed(rows[1])  # added and removed in one batch: never written

    state = record_and_reload(tmp_path, first)
    assert spooled(state.spool) == [
        ("roost.q.t.0", b"data-0", "a/1/0"),
        ("roost.q.t.2", b"data-2", "a/1/2"),
        ("roost.q.t.3", b"data-3", "a/1/3"),
        ("roost.q.t.4", b"data-4", "a/1/4"),
    ]
    assert [entry.row for entry in state.spool] == [rows[0], *rows[2:]]

    def second(store: SqliteStore) -> None:
        store.spool_removed(rows[0])  # written by an earlier batch: deleted
        rows.append(store.spool_added("roost.q.t.5", b"data-5", "a/1/5"))

    state = record_and_reload(tmp_path, second)
    assert [entry.msg_id for entry in state.spool] == ["a/1/2", "a/1/3", "a/1/4", "a/1/5"]
    assert rows[-1] > rows[-2]  # row numbers go on after a reload: the order holds
    assert spool_rows(tmp_path) == 4


def test_a_spooled_entry_is_a_change_that_a_hold_waits_for(tmp_path: Path) -> None:
    """What lets a PUBACK wait for its spool row: the row counts as a change
    (``op_count``), and ``hold`` keeps a connection until the batch holding it is
    committed."""

    class Held:
        def __init__(self) -> None:
            self.batch = 0
            self.released = 0

        def hold(self, batch: int, gate: int = 0) -> None:
            self.batch = batch

        def release(self, committed: int, gate: int = 0) -> bool:
            self.released = committed
            return committed < self.batch

    async def run() -> None:
        store = SqliteStore(str(tmp_path))
        store.open(asyncio.get_running_loop())
        before = store.op_count
        store.spool_added("roost.q.x", b"x", "a/1/1")
        assert store.op_count == before + 1
        conn = Held()
        store.hold(conn)
        assert conn.batch
        assert not conn.released
        await store.flush()
        assert conn.released >= conn.batch
        await store.close()

    asyncio.run(run())


def test_a_version_3_database_is_migrated_and_gets_an_empty_spool(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / DATABASE_NAME, isolation_level=None)
    assert prepare(conn, str(tmp_path), MIGRATIONS[:3]) == 0
    conn.execute("INSERT INTO meta VALUES ('cluster.qos_applied', '12 2026')")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    conn.close()

    def record(store: SqliteStore) -> None:
        store.retained_set("a", message("a", b"kept"))
        store.spool_added("roost.q.a", b"first", "n/1/1")
        store.spool_added("roost.q.b", b"second", "n/1/2")

    state = record_and_reload(tmp_path, record)
    conn = sqlite3.connect(tmp_path / DATABASE_NAME)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    conn.close()
    assert state.meta == {"cluster.qos_applied": "12 2026"}  # kept through the migration
    assert spooled(state.spool) == [
        ("roost.q.a", b"first", "n/1/1"),
        ("roost.q.b", b"second", "n/1/2"),
    ]


def test_the_memory_store_numbers_entries_and_keeps_nothing() -> None:
    store = MemoryStore()
    first = store.spool_added("roost.q.a", b"x", "n/1/1")
    second = store.spool_added("roost.q.a", b"y", "n/1/2")
    assert 0 < first < second
    store.spool_removed(first)
    assert store.op_count == 0  # nothing to commit, so nothing held
