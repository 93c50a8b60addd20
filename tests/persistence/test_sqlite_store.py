"""The SQLite store on its own: each kind of state survives a close and reopen, rows go
when their state goes, and files it cannot use are refused, by name, and left alone."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

from roost.broker.auth.base import ClientInfo
from roost.broker.message import Message
from roost.broker.persistence import SqliteStore, StoreError
from roost.broker.persistence.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, prepare
from roost.broker.persistence.sqlite import DATABASE_NAME
from roost.broker.records import SubscriptionRecord
from roost.broker.sessions import Identity
from roost.broker.topic_aliases import OutgoingAliases
from roost.codec import MQTT_5, Will
from tests.persistence.store_helpers import (
    message,
    open_and_close,
    record_and_reload,
    row_counts,
    stored_session,
    write_version_1_database,
)


class FakeConnection:
    """Just enough of a client connection for a session to send through."""

    version = MQTT_5
    send_quota = 10
    maximum_packet_size = 1 << 20
    writable = True
    topic_aliases: OutgoingAliases | None = None

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.held_batches: list[int] = []

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def hold(self, batch: int, gate: int = 0) -> None:
        self.held_batches.append(batch)

    def release(self, committed: int, gate: int = 0) -> bool:
        return False

    def take_over(self) -> None:
        raise AssertionError("no second connection in these tests")


# --- each kind of state round-trips ---------------------------------------------------


def test_a_session_with_its_deadlines_and_will_round_trips(tmp_path: Path) -> None:
    will = Will(
        "wills/c1",
        b"gone",
        qos=1,
        retain=True,
        will_delay_interval=30,
        payload_format_indicator=1,
        message_expiry_interval=100,
        content_type="text/plain",
        response_topic="replies/c1",
        correlation_data=b"\x00\x01",
        user_properties=(("k", "v"), ("k", "w")),
    )
    deadlines: list[float] = []

    def record(store: SqliteStore) -> None:
        now = asyncio.get_running_loop().time()
        session = stored_session(store, "c1", expiry=300)
        session.expires_at = now + 300
        session.will = will
        session.will_at = now + 30
        store.session_saved(session)
        deadlines.extend((now + 300, now + 30))
        stored_session(store, "connected", expiry=60)  # no deadline while connected

    state = record_and_reload(tmp_path, record)
    sessions = {s.client_id: s for s in state.sessions}
    assert set(sessions) == {"c1", "connected"}
    c1 = sessions["c1"]
    assert c1.expiry_interval == 300
    assert c1.will == will
    # Kept as wall-clock time, handed back on the loop's clock.
    assert c1.expires_at == pytest.approx(deadlines[0], abs=0.05)
    assert c1.will_at == pytest.approx(deadlines[1], abs=0.05)
    connected = sessions["connected"]
    assert (connected.expires_at, connected.will, connected.will_at) == (None, None, None)


def test_subscriptions_round_trip_with_their_options_and_identifiers(tmp_path: Path) -> None:
    records = [
        SubscriptionRecord("c1", "a/+/c", 2, True, True, 2, 7, None),
        SubscriptionRecord("c1", "$share/group/jobs/#", 1, False, False, 0, None, "group"),
        SubscriptionRecord("c1", "gone/soon", 0),
    ]

    def record(store: SqliteStore) -> None:
        session = stored_session(store, "c1")
        for sub in records:
            store.subscription_added(session, sub)
        store.subscription_removed(session, "gone/soon")

    (stored,) = record_and_reload(tmp_path, record).sessions
    assert sorted(stored.subscriptions, key=lambda r: r.topic_filter) == sorted(
        records[:2], key=lambda r: r.topic_filter
    )


def test_queued_messages_round_trip_in_order_with_every_property(tmp_path: Path) -> None:
    rich = Message(
        "sensors/1",
        b"\x00\xff payload",
        2,
        True,
        "sender-1",
        None,
        1,
        "application/json",
        "replies/1",
        b"corr",
        (("unit", "C"), ("unit", "K")),
    )

    def record(store: SqliteStore) -> None:
        session = stored_session(store, "c1")
        # Message expiry is a deadline on the loop's clock, like the others.
        rich.expires_at = asyncio.get_running_loop().time() + 3600
        session.deliver(message("q/1", b"first"), 1, False)
        session.deliver(rich, 2, True, (3, 9))
        session.deliver(message("q/3", b"third", qos=2), 1, False, (), 0.0, "$share/g/q/#")

    (stored,) = record_and_reload(tmp_path, record).sessions
    assert [d.message.payload for d in stored.deliveries] == [b"first", rich.payload, b"third"]
    assert all(d.packet_id is None for d in stored.deliveries)
    second = stored.deliveries[1]
    assert (second.qos, second.retain, second.subscription_ids) == (2, True, (3, 9))
    loaded = second.message
    for name in (
        "topic",
        "payload",
        "qos",
        "retain",
        "sender",
        "payload_format_indicator",
        "content_type",
        "response_topic",
        "correlation_data",
        "user_properties",
    ):
        assert getattr(loaded, name) == getattr(rich, name), name
    assert loaded.expires_at == pytest.approx(rich.expires_at, abs=0.05)
    assert stored.deliveries[2].share_group == "$share/g/q/#"


def test_in_flight_and_released_deliveries_round_trip_with_their_packet_ids(
    tmp_path: Path,
) -> None:
    def record(store: SqliteStore) -> None:
        session = stored_session(store, "c1")
        session.connection = FakeConnection()
        session.deliver(message("q/1", b"one"), 1, False)
        session.deliver(message("q/2", b"two", qos=2), 2, False)
        session.deliver(message("q/3", b"three", qos=2), 2, False)
        assert session.pubrec(3, False, 0.0)  # the third: PUBREC in, PUBREL out

    (stored,) = record_and_reload(tmp_path, record).sessions
    assert [(d.message.payload, d.packet_id, d.released) for d in stored.deliveries] == [
        (b"one", 1, False),
        (b"two", 2, False),
        (b"three", 3, True),
    ]


def test_completed_deliveries_leave_no_rows_behind(tmp_path: Path) -> None:
    def record(store: SqliteStore) -> None:
        session = stored_session(store, "c1")
        session.connection = FakeConnection()
        session.deliver(message("q/1"), 1, False)
        session.deliver(message("q/2", qos=2), 2, False)
        assert session.puback(1, 0.0)
        assert session.pubrec(2, False, 0.0)
        assert session.pubcomp(2, 0.0)

    (stored,) = record_and_reload(tmp_path, record).sessions
    assert stored.deliveries == []
    assert row_counts(tmp_path)["messages"] == 0
    assert row_counts(tmp_path)["deliveries"] == 0


def test_a_message_is_stored_once_however_many_rows_refer_to_it(tmp_path: Path) -> None:
    shared = message("news", b"one copy")

    def record(store: SqliteStore) -> None:
        for client_id in ("c1", "c2", "c3"):
            stored_session(store, client_id).deliver(shared, 1, False)
        store.retained_set("news", shared)

    state = record_and_reload(tmp_path, record)
    counts = row_counts(tmp_path)
    assert (counts["messages"], counts["deliveries"], counts["retained"]) == (1, 3, 1)
    loaded = {id(d.message) for s in state.sessions for d in s.deliveries}
    loaded.add(id(state.retained[0][1]))
    assert len(loaded) == 1  # and loaded once: one object for every reference


def test_the_message_row_goes_with_its_last_reference(tmp_path: Path) -> None:
    shared = message("news")

    async def run() -> None:
        store = SqliteStore(str(tmp_path))
        store.open(asyncio.get_running_loop())
        sessions = [stored_session(store, client_id) for client_id in ("c1", "c2")]
        for session in sessions:
            session.connection = FakeConnection()
            session.deliver(shared, 1, False)
        store.retained_set("news", shared)
        await store.flush()  # written: what follows deletes rows of an earlier commit
        for session in sessions:
            assert session.puback(1, 0.0)
        assert_locked(store)
        store.retained_deleted("news")
        await store.close()

    asyncio.run(run())
    counts = row_counts(tmp_path)
    assert (counts["messages"], counts["deliveries"], counts["retained"]) == (0, 0, 0)
    assert counts["sessions"] == 2


def assert_locked(store: SqliteStore) -> None:
    """The store holds the file exclusively: nobody else may read it meanwhile."""
    conn = sqlite3.connect(store.path, timeout=0)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            conn.execute("SELECT count(*) FROM messages")
    finally:
        conn.close()


def test_qos2_packet_ids_received_round_trip(tmp_path: Path) -> None:
    def record(store: SqliteStore) -> None:
        session = stored_session(store, "c1")
        for packet_id in (5, 6, 7):
            store.receive_id_added(session, packet_id)
        store.receive_id_removed(session, 6)

    (stored,) = record_and_reload(tmp_path, record).sessions
    assert sorted(stored.receive_ids) == [5, 7]


def test_retained_messages_are_set_replaced_and_deleted(tmp_path: Path) -> None:
    def record(store: SqliteStore) -> None:
        store.retained_set("a", message("a", b"old"))
        store.retained_set("a", message("a", b"new"))
        store.retained_set("b", message("b", b"kept"))
        store.retained_set("c", message("c", b"deleted"))
        store.retained_deleted("c")

    state = record_and_reload(tmp_path, record)
    assert sorted((topic, m.payload) for topic, m in state.retained) == [
        ("a", b"new"),
        ("b", b"kept"),
    ]
    assert row_counts(tmp_path)["messages"] == 2


def test_meta_values_are_kept_with_the_changes_recorded_with_them(tmp_path: Path) -> None:
    def record(store: SqliteStore) -> None:
        store.meta_set("cluster.qos_applied", "7")
        store.retained_set("a", message("a", b"with it"))
        store.meta_set("cluster.qos_applied", "9")
        store.meta_set("other", "x")

    state = record_and_reload(tmp_path, record)
    assert state.meta == {"cluster.qos_applied": "9", "other": "x"}
    assert [(topic, m.payload) for topic, m in state.retained] == [("a", b"with it")]
    # Set again later: the row is replaced, not added.
    state = record_and_reload(tmp_path, lambda store: store.meta_set("other", "y"))
    assert state.meta == {"cluster.qos_applied": "9", "other": "y"}


def test_an_ended_session_leaves_no_rows(tmp_path: Path) -> None:
    def record(store: SqliteStore) -> None:
        session = stored_session(store, "c1")
        store.subscription_added(session, SubscriptionRecord("c1", "a/#", 1))
        session.subscriptions["a/#"] = SubscriptionRecord("c1", "a/#", 1)
        session.awaiting_release.add(9)
        store.receive_id_added(session, 9)
        session.deliver(message(), 1, False)
        session.connection = FakeConnection()
        session.deliver(message(), 1, False)
        store.session_ended(session)

    assert record_and_reload(tmp_path, record).sessions == []
    assert row_counts(tmp_path) == dict.fromkeys(row_counts(tmp_path), 0)


def test_rows_that_nothing_refers_to_are_dropped_at_load(tmp_path: Path) -> None:
    open_and_close(tmp_path)
    conn = sqlite3.connect(tmp_path / DATABASE_NAME)
    with conn:
        for statement in (
            "INSERT INTO messages (id, topic, payload, qos, retain) VALUES (1, 't', x'', 0, 0)",
            "INSERT INTO messages (id, topic, payload, qos, retain) VALUES (2, 'u', x'', 0, 0)",
            "INSERT INTO subscriptions VALUES ('nobody', 'a', 0, 0, 0, 0, NULL)",
            "INSERT INTO deliveries VALUES (1, 'nobody', 1, 1, 0, NULL, NULL, NULL, 0)",
            "INSERT INTO receive_ids VALUES ('nobody', 3)",
            "INSERT INTO retained VALUES ('t', 99)",
        ):
            conn.execute(statement)
    conn.close()
    assert open_and_close(tmp_path).sessions == []
    assert row_counts(tmp_path) == dict.fromkeys(row_counts(tmp_path), 0)


def test_ids_continue_after_a_reload(tmp_path: Path) -> None:
    def first(store: SqliteStore) -> None:
        stored_session(store, "c1").deliver(message("q/1", b"one"), 1, False)

    def second(store: SqliteStore) -> None:
        session = stored_session(store, "c1")
        session.deliver(message("q/2", b"two"), 1, False)

    record_and_reload(tmp_path, first)
    (stored,) = record_and_reload(tmp_path, second).sessions
    assert [d.message.payload for d in stored.deliveries] == [b"one", b"two"]
    assert stored.deliveries[0].store_id < stored.deliveries[1].store_id


# --- the file: schema versions, damage, sharing ----------------------------------------


def pragma(path: Path, name: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"PRAGMA {name}").fetchone()[0])
    finally:
        conn.close()


def open_error(data_dir: Path) -> StoreError:
    with pytest.raises(StoreError) as excinfo:
        open_and_close(data_dir)
    return excinfo.value


def test_a_new_database_is_marked_as_roost_with_the_current_schema_version(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "nested" / "state"  # created as needed
    open_and_close(data_dir)
    path = data_dir / DATABASE_NAME
    assert pragma(path, "user_version") == SCHEMA_VERSION
    assert pragma(path, "application_id") == APPLICATION_ID


def test_a_database_from_a_newer_roost_is_refused_and_left_alone(tmp_path: Path) -> None:
    open_and_close(tmp_path)
    path = tmp_path / DATABASE_NAME
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = path.read_bytes()
    err = open_error(tmp_path)
    assert str(err).startswith(f"{path}: the database has schema version {SCHEMA_VERSION + 1}")
    assert "newer Roost" in str(err)
    assert path.read_bytes() == before


def test_an_older_schema_is_migrated_one_version_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "db"
    conn = sqlite3.connect(path, isolation_level=None)
    assert prepare(conn, str(path), MIGRATIONS) == 0
    newer = (*MIGRATIONS, ("ALTER TABLE sessions ADD COLUMN note TEXT",))
    assert prepare(conn, str(path), newer) == SCHEMA_VERSION
    assert pragma(path, "user_version") == SCHEMA_VERSION + 1
    columns = [row[1] for row in conn.execute("PRAGMA table_info(sessions)")]
    assert columns[-1] == "note"
    conn.close()


def test_a_failed_migration_leaves_the_last_completed_version(tmp_path: Path) -> None:
    path = tmp_path / "db"
    conn = sqlite3.connect(path, isolation_level=None)
    prepare(conn, str(path), MIGRATIONS)
    broken = (
        *MIGRATIONS,
        ("CREATE TABLE half (x)", "THIS IS NOT SQL"),
    )
    with pytest.raises(sqlite3.OperationalError):
        prepare(conn, str(path), broken)
    assert pragma(path, "user_version") == SCHEMA_VERSION
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half'").fetchone()[0] == 0
    conn.close()


def test_another_programs_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / DATABASE_NAME
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE accounts (name TEXT)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    err = open_error(tmp_path)
    assert str(err).startswith(f"{path}: not a Roost database")
    assert path.read_bytes() == before


def overwrite_header(path: Path) -> None:
    with path.open("r+b") as f:
        f.write(b"this is not SQLite")


def truncate_half(path: Path) -> None:
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)


def truncate_inside_first_page(path: Path) -> None:
    with path.open("r+b") as f:
        f.truncate(100)


def scramble_second_page(path: Path) -> None:
    with path.open("r+b") as f:
        f.seek(4096)
        f.write(os.urandom(4096))


@pytest.mark.parametrize(
    "damage", [overwrite_header, truncate_half, truncate_inside_first_page, scramble_second_page]
)
def test_a_damaged_database_is_refused_by_name_and_never_wiped(
    tmp_path: Path, damage: object
) -> None:
    def record(store: SqliteStore) -> None:
        for n in range(20):
            stored_session(store, f"client-{n}").deliver(message(payload=bytes(300)), 1, False)

    record_and_reload(tmp_path, record)
    path = tmp_path / DATABASE_NAME
    assert callable(damage)
    damage(path)
    before = path.read_bytes()
    err = open_error(tmp_path)
    assert str(err).startswith(f"{path}: the database is damaged (")
    assert "Roost will not start on it" in str(err)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [DATABASE_NAME]


def test_a_second_store_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    async def run() -> str:
        loop = asyncio.get_running_loop()
        first = SqliteStore(str(tmp_path))
        first.open(loop)
        try:
            with pytest.raises(StoreError) as excinfo:
                SqliteStore(str(tmp_path)).open(loop)
        finally:
            await first.close()
        return str(excinfo.value)

    message_text = asyncio.run(run())
    assert message_text.startswith(f"{tmp_path / DATABASE_NAME}: the database is in use")
    open_and_close(tmp_path)  # and free again once the first is closed


def test_a_data_dir_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    err = open_error(blocker / "data")
    assert str(err).startswith(f"{blocker / 'data'}: cannot create the data directory")


# --- who a session belongs to (schema version 2, issue 17) ------------------------------


def test_a_sessions_identity_round_trips_with_its_json_attributes(tmp_path: Path) -> None:
    client = ClientInfo(
        "c1",
        "alice",
        "10.0.0.7:51000",
        MQTT_5,
        "tls 0.0.0.0:8883",
        {"role": "admin", "groups": ["ops", "dev"], "level": 3, "token": b"not json"},
    )

    def record(store: SqliteStore) -> None:
        session = stored_session(store, "c1")
        session.identity = Identity(client, password_file=True)
        store.session_saved(session)
        anonymous = stored_session(store, "anon")
        anonymous.identity = Identity(ClientInfo("anon", None))
        store.session_saved(anonymous)
        stored_session(store, "unknown")  # no identity: none is stored

    state = record_and_reload(tmp_path, record)
    identities = {stored.client_id: stored.identity for stored in state.sessions}
    restored = identities["c1"]
    assert restored is not None
    assert restored.password_file is True
    # What JSON cannot hold (bytes) is not kept; the rest comes back as it was given.
    assert restored.client == ClientInfo(
        "c1",
        "alice",
        "10.0.0.7:51000",
        MQTT_5,
        "tls 0.0.0.0:8883",
        {"role": "admin", "groups": ["ops", "dev"], "level": 3},
    )
    assert identities["anon"] == Identity(ClientInfo("anon", None, "?", 4, ""))
    assert identities["unknown"] is None


def test_a_version_1_database_is_migrated_and_its_sessions_have_no_identity(
    tmp_path: Path,
) -> None:
    write_version_1_database(tmp_path)
    state = open_and_close(tmp_path)
    path = tmp_path / DATABASE_NAME
    assert pragma(path, "user_version") == SCHEMA_VERSION == 4
    assert state.meta == {}  # version 3's table, empty
    assert state.spool == []  # version 4's table, empty
    [stored] = state.sessions
    assert (stored.client_id, stored.identity) == ("alice1", None)
    assert [record.topic_filter for record in stored.subscriptions] == ["a/#"]
    assert [delivery.message.topic for delivery in stored.deliveries] == ["a/before"]
    columns = [row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(sessions)")]
    assert columns[-2:] == ["username", "client"]
