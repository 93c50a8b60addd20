"""The SQLite schema, its version, and the migrations that bring old files up to date.

The version is ``PRAGMA user_version``; ``PRAGMA application_id`` marks the file as
Roost's, so that pointing the broker at some other SQLite database is refused rather
than written into. ``MIGRATIONS[n]`` takes a database from version n to n + 1 (version
0 is an empty file), each in its own transaction, so an interrupted migration leaves
the file at the last version it completed. A file from a newer Roost is refused:
downgrading would lose what the newer version keeps.

Messages are stored once, in ``messages``; queued and in-flight deliveries and retained
topics refer to them by id (the broker keeps the reference count). Times are wall
clock (seconds since the epoch).
"""

from __future__ import annotations

import sqlite3

from roost.broker.persistence.store import StoreError

APPLICATION_ID = 0x526F6F73  # "Roos"

_VERSION_1 = (
    """CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        qos INTEGER NOT NULL,
        retain INTEGER NOT NULL,
        sender TEXT,
        expires_at REAL,
        payload_format_indicator INTEGER,
        content_type TEXT,
        response_topic TEXT,
        correlation_data BLOB,
        user_properties TEXT
    )""",
    """CREATE TABLE sessions (
        client_id TEXT PRIMARY KEY,
        expiry_interval INTEGER NOT NULL,
        expires_at REAL,
        will TEXT,
        will_at REAL
    ) WITHOUT ROWID""",
    """CREATE TABLE subscriptions (
        client_id TEXT NOT NULL,
        topic_filter TEXT NOT NULL,
        qos INTEGER NOT NULL,
        no_local INTEGER NOT NULL,
        retain_as_published INTEGER NOT NULL,
        retain_handling INTEGER NOT NULL,
        identifier INTEGER,
        PRIMARY KEY (client_id, topic_filter)
    ) WITHOUT ROWID""",
    """CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        client_id TEXT NOT NULL,
        message_id INTEGER NOT NULL,
        qos INTEGER NOT NULL,
        retain INTEGER NOT NULL,
        subscription_ids TEXT,
        share_group TEXT,
        packet_id INTEGER,
        released INTEGER NOT NULL
    )""",
    """CREATE TABLE receive_ids (
        client_id TEXT NOT NULL,
        packet_id INTEGER NOT NULL,
        PRIMARY KEY (client_id, packet_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE retained (
        topic TEXT PRIMARY KEY,
        message_id INTEGER NOT NULL
    ) WITHOUT ROWID""",
)

# Version 2: who each session belongs to, so that access decisions survive a restart
# (issue 17). ``username`` is the identity the client was accepted as (a certificate's
# identity on such a listener); ``client`` is JSON with the rest of what authorization
# saw: peer, protocol level, listener, a plugin's attributes, and whether the password
# file vouched for the username. Both NULL: a session stored before version 2, whose
# identity is unknown until its client connects again.
_VERSION_2 = (
    "ALTER TABLE sessions ADD COLUMN username TEXT",
    "ALTER TABLE sessions ADD COLUMN client TEXT",
)

# Version 3: small named values a component keeps with the state it belongs to, in the
# same transactions (a cluster node's position in the QoS stream: written with the
# deliveries it queued, so that after a crash the two agree).
_VERSION_3 = (
    """CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID""",
)

# Version 4: the spool, messages a component keeps in order for somewhere else until that
# place has them (a cluster node's QoS 1/2 messages for JetStream while it does not
# answer): ``data`` is the bytes to send to ``subject``, ``msg_id`` the id that lets the
# receiver drop a resend; rows are sent in ``id`` order.
_VERSION_4 = (
    """CREATE TABLE spool (
        id INTEGER PRIMARY KEY,
        subject TEXT NOT NULL,
        data BLOB NOT NULL,
        msg_id TEXT NOT NULL
    )""",
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (_VERSION_1, _VERSION_2, _VERSION_3, _VERSION_4)
SCHEMA_VERSION = len(MIGRATIONS)

_MOVE_ASIDE = (
    "move it (and any -wal file beside it) elsewhere to start with empty state; "
    "Roost never deletes it"
)


def prepare(
    conn: sqlite3.Connection,
    path: str,
    migrations: tuple[tuple[str, ...], ...] = MIGRATIONS,
) -> int:
    """Check that ``conn`` is a Roost database this version can use and migrate it.

    Returns the version the file had. ``conn`` must be in autocommit mode.
    """
    application_id = _pragma(conn, "application_id")
    version = _pragma(conn, "user_version")
    latest = len(migrations)
    if application_id != APPLICATION_ID:
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if application_id != 0 or version != 0 or tables:
            raise StoreError(
                f"{path}: not a Roost database (an SQLite file with other contents); "
                "point data_dir at a directory of its own"
            )
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    if version > latest:
        raise StoreError(
            f"{path}: the database has schema version {version}, and this Roost "
            f"knows versions up to {latest}: it was written by a newer Roost. Run that "
            f"version, or {_MOVE_ASIDE}"
        )
    for target in range(version + 1, latest + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in migrations[target - 1]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return version


def _pragma(conn: sqlite3.Connection, name: str) -> int:
    row = conn.execute(f"PRAGMA {name}").fetchone()
    return int(row[0])


def damaged(path: str, detail: str) -> StoreError:
    return StoreError(
        f"{path}: the database is damaged ({detail}). Roost will not start on it. "
        f"Restore it from a backup, or try `sqlite3 {path} .recover` to rescue what it "
        f"holds, or {_MOVE_ASIDE}"
    )
