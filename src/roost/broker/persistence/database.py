"""The database file: opening it (checks, locking, pragmas, migrations) and loading it.

Opening refuses, with a StoreError naming the file, a file that is damaged (``PRAGMA
quick_check``), from a newer Roost, some other program's, or in use by another broker
(the file is held in exclusive locking mode for as long as the broker runs). It never
deletes or rewrites such a file. Loading reads every table once and ties rows together
by id; rows nothing refers to (possible only after hand edits) are dropped.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from roost.broker.config import CommitPolicy
from roost.broker.message import Message
from roost.broker.persistence.rows import (
    identity_from_columns,
    message_from_row,
    subscription_from_row,
    subscription_ids,
    will_from_text,
)
from roost.broker.persistence.schema import damaged, prepare
from roost.broker.persistence.store import (
    Spooled,
    StoredDelivery,
    StoredSession,
    StoredState,
    StoreError,
)

log = logging.getLogger("roost.broker")


@dataclass(slots=True)
class Loaded:
    """What reading the database at start gave: the state, and the next free row ids."""

    state: StoredState
    retained: dict[str, Message]  # topic -> message, as the store tracks them
    next_message_id: int
    next_delivery_id: int
    next_spool_id: int


def load(conn: sqlite3.Connection, path: str, offset: float) -> Loaded:
    """Everything the database holds; ``offset`` turns wall-clock times into loop times."""
    messages = {
        row[0]: message_from_row(row, offset) for row in conn.execute("SELECT * FROM messages")
    }
    sessions: dict[str, StoredSession] = {}
    for client_id, expiry, expires_at, will, will_at, username, client in conn.execute(
        "SELECT client_id, expiry_interval, expires_at, will, will_at, username, client"
        " FROM sessions"
    ):
        sessions[client_id] = StoredSession(
            client_id,
            expiry,
            None if expires_at is None else expires_at - offset,
            will_from_text(will),
            None if will_at is None else will_at - offset,
            identity_from_columns(client_id, username, client),
        )
    orphans = 0
    for row in conn.execute("SELECT * FROM subscriptions"):
        stored = sessions.get(row[0])
        if stored is None:
            orphans += 1
        else:
            stored.subscriptions.append(subscription_from_row(row))
    max_delivery = 0
    for row in conn.execute("SELECT * FROM deliveries ORDER BY id"):
        store_id, client_id, message_id = row[0], row[1], row[2]
        max_delivery = store_id
        stored = sessions.get(client_id)
        message = messages.get(message_id)
        if stored is None or message is None:
            orphans += 1
            continue
        message.store_refs += 1
        stored.deliveries.append(
            StoredDelivery(
                store_id,
                message,
                row[3],
                bool(row[4]),
                subscription_ids(row[5]),
                row[6],
                row[7],
                bool(row[8]),
            )
        )
    for client_id, packet_id in conn.execute("SELECT client_id, packet_id FROM receive_ids"):
        stored = sessions.get(client_id)
        if stored is None:
            orphans += 1
        else:
            stored.receive_ids.append(packet_id)
    retained = []
    retained_by_topic: dict[str, Message] = {}
    for topic, message_id in conn.execute("SELECT topic, message_id FROM retained"):
        message = messages.get(message_id)
        if message is None:
            orphans += 1
            continue
        message.store_refs += 1
        retained.append((topic, message))
        retained_by_topic[topic] = message
    unused = sum(1 for message in messages.values() if not message.store_refs)
    if orphans or unused:
        # Rows no session or message refers to: possible only if the file was edited
        # or an older version had a bug. They could never be delivered; drop them.
        log.warning("Dropping %d unreferenced rows from %s.", orphans + unused, path)
        _drop_unreferenced(conn)
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    spool = [
        Spooled(row, subject, bytes(data), msg_id)
        for row, subject, data, msg_id in conn.execute(
            "SELECT id, subject, data, msg_id FROM spool ORDER BY id"
        )
    ]
    return Loaded(
        StoredState(list(sessions.values()), retained, meta, spool),
        retained_by_topic,
        max(messages, default=0) + 1,
        max_delivery + 1,
        spool[-1].row + 1 if spool else 1,
    )


def _drop_unreferenced(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN")
    for statement in (
        "DELETE FROM subscriptions WHERE client_id NOT IN (SELECT client_id FROM sessions)",
        "DELETE FROM receive_ids WHERE client_id NOT IN (SELECT client_id FROM sessions)",
        (
            "DELETE FROM deliveries WHERE client_id NOT IN (SELECT client_id FROM sessions)"
            " OR message_id NOT IN (SELECT id FROM messages)"
        ),
        "DELETE FROM retained WHERE message_id NOT IN (SELECT id FROM messages)",
        (
            "DELETE FROM messages WHERE id NOT IN (SELECT message_id FROM deliveries)"
            " AND id NOT IN (SELECT message_id FROM retained)"
        ),
    ):
        conn.execute(statement)
    conn.execute("COMMIT")


def connect(path: str, commit_policy: CommitPolicy) -> sqlite3.Connection:
    """Open (creating it and its directory if needed), check, lock and migrate."""
    directory = os.path.dirname(path)
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"{directory}: cannot create the data directory: {exc.strerror or exc}"
        ) from exc
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=0.5)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open the database: {exc}") from exc
    try:
        _configure(conn, path, commit_policy)
    except StoreError:
        conn.close()
        raise
    except sqlite3.OperationalError as exc:
        conn.close()
        if "locked" in str(exc) or "busy" in str(exc):
            raise StoreError(
                f"{path}: the database is in use by another process "
                "(is another Roost broker running with the same data_dir?)"
            ) from exc
        raise StoreError(f"{path}: cannot use the database: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise damaged(path, str(exc)) from exc
    return conn


def _configure(conn: sqlite3.Connection, path: str, commit_policy: CommitPolicy) -> None:
    # Before the first access, so that the lock is taken at once and held, and WAL
    # needs no shared-memory file.
    conn.execute("PRAGMA locking_mode = EXCLUSIVE")
    problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        raise damaged(path, "; ".join(problems[:3]))
    # Before WAL mode, which writes to the file: a file that is not ours stays untouched.
    prepare(conn, path)
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode != "wal":
        raise StoreError(f"{path}: cannot use write-ahead logging (journal mode {mode})")
    synchronous = "OFF" if commit_policy == "off" else "FULL"
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("PRAGMA journal_size_limit = 67108864")
