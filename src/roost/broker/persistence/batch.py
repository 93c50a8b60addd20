"""One transaction's worth of changes, and how it is written to SQLite.

A batch holds, per table, the latest state of each row it touches, keyed by the row's
key; None means "delete the row". ``apply`` writes it in one transaction.

Rows go in with multi-row statements (``INSERT ... VALUES (...), (...)`` and ``DELETE
... WHERE id IN (...)``) in a few fixed sizes, not one statement per row: the sqlite3
module releases the GIL around every statement it steps, and the writer thread would
otherwise wait for the GIL once per row while the event loop is busy. A handful of
fixed sizes keeps the statement cache small.
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
from collections.abc import Sequence

_CHUNKS = (256, 64, 16, 4, 1)  # rows per statement, largest first

Row = tuple[object, ...]


class Batch:
    """The changes of one transaction; None as a value means "delete the row"."""

    __slots__ = (
        "deliveries",
        "first_delivery",
        "first_message",
        "first_spool",
        "messages",
        "meta",
        "number",
        "receive_ids",
        "retained",
        "sessions",
        "spool",
        "subscriptions",
    )

    def __init__(
        self, number: int, first_message: int, first_delivery: int, first_spool: int = 1
    ) -> None:
        self.number = number
        # Ids from these on were created in this batch: deleting one drops its row.
        self.first_message = first_message
        self.first_delivery = first_delivery
        self.first_spool = first_spool
        self.messages: dict[int, Row | None] = {}
        self.deliveries: dict[int, Row | None] = {}
        self.sessions: dict[str, Row | None] = {}
        self.subscriptions: dict[tuple[str, str], Row | None] = {}
        self.receive_ids: dict[tuple[str, int], bool] = {}
        self.retained: dict[str, int | None] = {}
        self.meta: dict[str, str] = {}
        self.spool: dict[int, Row | None] = {}

    def size(self) -> int:
        """How many rows this batch writes or deletes."""
        return (
            len(self.messages)
            + len(self.deliveries)
            + len(self.sessions)
            + len(self.subscriptions)
            + len(self.receive_ids)
            + len(self.retained)
            + len(self.meta)
            + len(self.spool)
        )

    def is_empty(self) -> bool:
        return not (
            self.messages
            or self.deliveries
            or self.sessions
            or self.subscriptions
            or self.receive_ids
            or self.retained
            or self.meta
            or self.spool
        )


def apply(conn: sqlite3.Connection, batch: Batch) -> None:
    """Write ``batch`` in one transaction and commit it."""
    conn.execute("BEGIN")
    _write(conn, "messages", "id", batch.messages)
    _write(conn, "deliveries", "id", batch.deliveries)
    _write(conn, "sessions", "client_id", batch.sessions)
    _write(conn, "spool", "id", batch.spool)
    retained = batch.retained
    if retained:
        _insert(conn, "retained", 2, [(t, m) for t, m in retained.items() if m is not None])
        _delete(conn, "retained", "topic", [t for t, m in retained.items() if m is None])
    if batch.meta:
        _insert(conn, "meta", 2, list(batch.meta.items()))
    # Keyed by two columns, and rare: one statement per row is fine.
    subscriptions = batch.subscriptions
    if subscriptions:
        _insert(conn, "subscriptions", 7, [r for r in subscriptions.values() if r is not None])
        conn.executemany(
            "DELETE FROM subscriptions WHERE client_id = ? AND topic_filter = ?",
            [key for key, row in subscriptions.items() if row is None],
        )
    receive_ids = batch.receive_ids
    if receive_ids:
        _insert(conn, "receive_ids", 2, [key for key, present in receive_ids.items() if present])
        conn.executemany(
            "DELETE FROM receive_ids WHERE client_id = ? AND packet_id = ?",
            [key for key, present in receive_ids.items() if not present],
        )
    conn.execute("COMMIT")


def _write(
    conn: sqlite3.Connection,
    table: str,
    key: str,
    rows: dict[int, Row | None] | dict[str, Row | None],
) -> None:
    if not rows:
        return
    upserts: list[Row] = []
    deletes: list[object] = []
    for name, row in rows.items():
        if row is None:
            deletes.append(name)
        else:
            upserts.append(row)
    if upserts:
        _insert(conn, table, len(upserts[0]), upserts)
    if deletes:
        _delete(conn, table, key, deletes)


def _insert(conn: sqlite3.Connection, table: str, width: int, rows: Sequence[Row]) -> None:
    for sql, start, size in _chunks(len(rows), functools.partial(_insert_sql, table, width)):
        conn.execute(sql, list(itertools.chain.from_iterable(rows[start : start + size])))


def _delete(conn: sqlite3.Connection, table: str, key: str, keys: Sequence[object]) -> None:
    for sql, start, size in _chunks(len(keys), functools.partial(_delete_sql, table, key)):
        conn.execute(sql, keys[start : start + size])


def _chunks(count: int, statement: functools.partial[str]) -> list[tuple[str, int, int]]:
    """(statement, first row, rows) covering ``count`` rows with the fixed sizes."""
    chunks = []
    start = 0
    for size in _CHUNKS:
        while count - start >= size:
            chunks.append((statement(size), start, size))
            start += size
    return chunks


@functools.cache
def _insert_sql(table: str, width: int, rows: int) -> str:
    values = "(" + ", ".join("?" * width) + ")"
    return f"INSERT OR REPLACE INTO {table} VALUES " + ", ".join([values] * rows)  # noqa: S608


@functools.cache
def _delete_sql(table: str, key: str, rows: int) -> str:
    return f"DELETE FROM {table} WHERE {key} IN (" + ", ".join("?" * rows) + ")"  # noqa: S608
