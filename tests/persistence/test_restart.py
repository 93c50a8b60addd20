"""A broker with an SQLite store, stopped and started again on the same data directory
(in this process): what a persistent session, a retained message or a delayed will
had before the restart, it has after; what should not be kept is not.

Process-level restarts, and kill -9, are in test_crash.py.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from roost.broker import registry, server
from roost.broker.auth.base import Access
from roost.broker.auth.password_file import PasswordFile
from roost.broker.persistence import sqlite
from roost.broker.persistence.batch import Batch, apply
from roost.broker.persistence.sqlite import DATABASE_NAME
from roost.codec import (
    MQTT_3_1_1,
    MQTT_5,
    Disconnect,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Subscription,
    Will,
)
from tests.auth import plugins
from tests.persistence.store_helpers import row_counts, write_version_1_database
from tests.support.broker_thread import BrokerThread
from tests.support.raw import (
    RawClient,
    connect,
    drain,
    persistent,
    publish,
    receive_all,
    recv_publish,
    subscribe,
    sync,
)
from tests.support.waiting import wait_for_broker, wait_offline

MakeBroker = Callable[..., BrokerThread]


@pytest.fixture
def start(make_broker: MakeBroker, tmp_path: Path) -> Callable[..., BrokerThread]:
    """Start a broker on the test's data directory (again, after ``stop()``)."""

    def start_broker(**overrides: object) -> BrokerThread:
        overrides.setdefault("commit_policy", "sync")
        overrides.setdefault("sys_interval", 0.0)
        return make_broker(persistence="sqlite", data_dir=str(tmp_path), **overrides)

    return start_broker


def state_dir(broker: BrokerThread) -> Path:
    """The directory the broker keeps its database in (these brokers all keep one)."""
    directory = broker.config.state_dir()
    assert directory is not None
    return Path(directory)


def leave(client: RawClient) -> None:
    """DISCONNECT normally: the session stays (it is persistent), the will is dropped."""
    client.send(Disconnect())
    client.expect_closed()


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
def test_a_persistent_session_keeps_its_subscriptions_across_a_restart(
    start: Callable[..., BrokerThread], version: int
) -> None:
    broker = start()
    sub = connect(broker.port, version, "sub", **persistent(version))
    identifier = 7 if version == MQTT_5 else None
    subscribe(sub, Subscription("news/+", 1), identifier=identifier)
    leave(sub)
    broker.stop()

    broker = start()
    sub = connect(broker.port, version, "sub", present=True, **persistent(version))
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("news/today", b"kept", qos=1, packet_id=1))
    received = recv_publish(sub)
    assert (received.topic, received.payload, received.qos) == ("news/today", b"kept", 1)
    if version == MQTT_5:
        assert received.subscription_identifiers == (7,)


def test_queued_messages_arrive_after_a_restart_in_order_with_their_properties(
    start: Callable[..., BrokerThread],
) -> None:
    broker = start()
    sub = connect(broker.port, MQTT_5, "sub", **persistent(MQTT_5))
    subscribe(sub, Subscription("q/#", 2))
    leave(sub)
    pub = connect(broker.port, MQTT_5, "pub")
    sent = [
        Publish(
            f"q/{n}",
            f"message {n}".encode(),
            qos=1 + n % 2,
            packet_id=n + 1,
            content_type="text/plain",
            user_properties=(("n", str(n)),),
            message_expiry_interval=3600,
        )
        for n in range(6)
    ]
    for message in sent:
        publish(pub, message)
    broker.stop()

    broker = start()
    sub = connect(broker.port, MQTT_5, "sub", present=True, **persistent(MQTT_5))
    received = receive_all(sub, len(sent))
    assert [(m.topic, m.payload, m.qos) for m in received] == [
        (m.topic, m.payload, m.qos) for m in sent
    ]
    assert all(m.content_type == "text/plain" for m in received)
    assert [m.user_properties for m in received] == [m.user_properties for m in sent]
    expiries = [m.message_expiry_interval for m in received]
    assert all(e is not None and 3590 < e <= 3600 for e in expiries), expiries
    assert drain(sub) == []


def test_unacknowledged_messages_are_resent_with_dup_after_a_restart(
    start: Callable[..., BrokerThread],
) -> None:
    broker = start()
    sub = connect(broker.port, MQTT_5, "sub", **persistent(MQTT_5))
    subscribe(sub, Subscription("t", 2))
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("t", b"one", qos=1, packet_id=1))
    publish(pub, Publish("t", b"two", qos=2, packet_id=2))
    first, second = recv_publish(sub), recv_publish(sub)
    sub.close()  # no acknowledgement for either
    wait_offline(broker, "sub")
    broker.stop()

    broker = start()
    sub = connect(broker.port, MQTT_5, "sub", present=True, **persistent(MQTT_5))
    again = [recv_publish(sub), recv_publish(sub)]
    assert [(m.payload, m.packet_id, m.dup) for m in again] == [
        (b"one", first.packet_id, True),
        (b"two", second.packet_id, True),
    ]


def test_a_released_qos2_delivery_resumes_with_pubrel_after_a_restart(
    start: Callable[..., BrokerThread],
) -> None:
    broker = start()
    sub = connect(broker.port, MQTT_5, "sub", **persistent(MQTT_5))
    subscribe(sub, Subscription("t", 2))
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("t", b"once", qos=2, packet_id=1))
    message = recv_publish(sub)
    sub.send(Pubrec(message.packet_id))
    assert sub.recv() == Pubrel(message.packet_id)
    sub.close()  # no PUBCOMP
    wait_offline(broker, "sub")
    broker.stop()

    broker = start()
    sub = connect(broker.port, MQTT_5, "sub", present=True, **persistent(MQTT_5))
    # After PUBREL the message itself must never be sent again [MQTT-4.3.3-5].
    assert sub.recv() == Pubrel(message.packet_id)
    sub.send(Pubcomp(message.packet_id))
    assert sync(sub) == []


def test_a_qos2_message_received_before_a_restart_is_not_delivered_twice(
    start: Callable[..., BrokerThread],
) -> None:
    broker = start()
    sub = connect(broker.port, MQTT_5, "sub", **persistent(MQTT_5))
    subscribe(sub, Subscription("t", 2))
    leave(sub)
    pub = connect(broker.port, MQTT_5, "pub", **persistent(MQTT_5))
    pub.send(Publish("t", b"exactly once", qos=2, packet_id=7))
    assert pub.recv() == Pubrec(7)
    pub.close()  # no PUBREL yet
    wait_offline(broker, "pub")
    broker.stop()

    broker = start()
    pub = connect(broker.port, MQTT_5, "pub", present=True, **persistent(MQTT_5))
    # The publisher did not see the exchange end, so it sends the PUBLISH again.
    pub.send(Publish("t", b"exactly once", qos=2, packet_id=7, dup=True))
    assert pub.recv() == Pubrec(7)
    pub.send(Pubrel(7))
    assert pub.recv() == Pubcomp(7)
    sub = connect(broker.port, MQTT_5, "sub", present=True, **persistent(MQTT_5))
    received = receive_all(sub, 1)
    assert [m.payload for m in received] == [b"exactly once"]
    assert drain(sub) == []


def test_retained_messages_and_their_deletion_survive_a_restart(
    start: Callable[..., BrokerThread],
) -> None:
    broker = start()
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("r/kept", b"kept", qos=1, retain=True, packet_id=1))
    publish(pub, Publish("r/replaced", b"old", qos=0, retain=True))
    publish(pub, Publish("r/replaced", b"new", qos=1, retain=True, packet_id=2))
    publish(pub, Publish("r/deleted", b"soon gone", qos=1, retain=True, packet_id=3))
    publish(pub, Publish("r/deleted", b"", qos=1, retain=True, packet_id=4))
    broker.stop()

    broker = start()
    sub = connect(broker.port, MQTT_5, "sub")
    subscribe(sub, Subscription("r/#", 1))
    retained = drain(sub)
    assert sorted((p.topic, p.payload, p.retain) for p in retained) == [  # type: ignore[attr-defined]
        ("r/kept", b"kept", True),
        ("r/replaced", b"new", True),
    ]
    broker.stop()
    counts = row_counts(state_dir(broker))
    assert (counts["retained"], counts["messages"]) == (2, 2)


def test_a_delayed_will_survives_a_restart(start: Callable[..., BrokerThread]) -> None:
    broker = start()
    watcher = connect(broker.port, MQTT_5, "watcher", **persistent(MQTT_5))
    subscribe(watcher, Subscription("wills/#", 1))
    leave(watcher)
    connect(
        broker.port,
        MQTT_5,
        "mortal",
        will=Will("wills/mortal", b"gone", qos=1, will_delay_interval=2),
        **persistent(MQTT_5),
    )
    # The shutdown closes the connection without a DISCONNECT from the client: the will
    # is due two seconds later, and must outlive the broker.
    broker.stop()

    broker = start()

    def will_pending() -> bool:
        session = broker.broker.sessions.get("mortal")
        return session is not None and session.will is not None and session.will_at is not None

    assert broker.call(will_pending)
    watcher = connect(broker.port, MQTT_5, "watcher", present=True, **persistent(MQTT_5))
    will = recv_publish(watcher, timeout=10)
    assert (will.topic, will.payload) == ("wills/mortal", b"gone")


def test_reconnecting_cancels_a_restored_delayed_will(start: Callable[..., BrokerThread]) -> None:
    broker = start()
    connect(
        broker.port,
        MQTT_5,
        "mortal",
        will=Will("wills/mortal", b"gone", will_delay_interval=60),
        **persistent(MQTT_5),
    )
    broker.stop()
    broker = start()
    assert broker.call(lambda: broker.broker.sessions["mortal"].will is not None)
    connect(broker.port, MQTT_5, "mortal", present=True, **persistent(MQTT_5))
    assert broker.call(lambda: broker.broker.sessions["mortal"].will_at is None)
    broker.stop()
    broker = start()
    # Cancelled for good: the restored session has no will (its new connection's none).
    assert broker.call(lambda: broker.broker.sessions["mortal"].will) is None


def test_the_session_expiry_deadline_is_kept_across_a_restart(
    start: Callable[..., BrokerThread],
) -> None:
    broker = start()
    leave(connect(broker.port, MQTT_5, "short", clean_start=False, session_expiry_interval=1))
    leave(connect(broker.port, MQTT_5, "long", clean_start=False, session_expiry_interval=600))
    broker.stop()

    broker = start()
    remaining = broker.call(
        lambda: broker.broker.sessions["long"].expires_at - broker.broker.now()  # type: ignore[operator]
    )
    assert 590 < remaining <= 600
    # The short one expires (on the sweep after its deadline) and is purged from disk.
    wait_for_broker(broker, lambda: "short" not in broker.broker.sessions, timeout=5)
    broker.stop()
    conn = sqlite3.connect(state_dir(broker) / DATABASE_NAME)
    stored = [row[0] for row in conn.execute("SELECT client_id FROM sessions")]
    conn.close()
    assert stored == ["long"]


def test_clean_sessions_write_nothing(start: Callable[..., BrokerThread]) -> None:
    broker = start()
    client = connect(broker.port, MQTT_5, "clean")
    subscribe(client, Subscription("t", 1))
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("t", b"for a clean session", qos=1, packet_id=1))
    publish(pub, Publish("r", b"not retained", qos=1, packet_id=2))
    receive_all(client, 1)
    old = connect(broker.port, MQTT_3_1_1, "clean-311")
    subscribe(old, Subscription("t", 1))
    broker.stop()
    assert set(row_counts(state_dir(broker)).values()) == {0}


def test_a_session_resumed_with_expiry_zero_is_no_longer_stored(
    start: Callable[..., BrokerThread],
) -> None:
    broker = start()
    sub = connect(broker.port, MQTT_5, "sub", **persistent(MQTT_5))
    subscribe(sub, Subscription("t", 1))
    leave(sub)
    sub = connect(broker.port, MQTT_5, "sub", present=True, clean_start=False)
    assert broker.call(lambda: broker.broker.sessions["sub"].store) is None
    broker.stop()
    assert set(row_counts(state_dir(broker)).values()) == {0}


def test_sys_topics_are_not_stored(start: Callable[..., BrokerThread]) -> None:
    broker = start(sys_interval=0.1)
    wait_for_broker(broker, lambda: broker.broker.router.retained_count > 0)
    broker.stop()
    assert row_counts(state_dir(broker))["retained"] == 0


def test_in_memory_mode_writes_no_file(make_broker: MakeBroker, tmp_path: Path) -> None:
    data_dir = tmp_path / "unused"
    broker = make_broker(persistence="memory", data_dir=str(data_dir))
    sub = connect(broker.port, MQTT_5, "sub", **persistent(MQTT_5))
    subscribe(sub, Subscription("t", 1))
    broker.stop()
    assert not data_dir.exists()


# --- acknowledged means durable ----------------------------------------------------------


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], threading.Event]]:
    """Hold the store's writer before each commit until the returned event is set."""
    events: list[threading.Event] = []

    def install() -> threading.Event:
        opened = threading.Event()
        real = apply

        def gated(conn: sqlite3.Connection, batch: Batch) -> None:
            opened.wait(10)
            real(conn, batch)

        monkeypatch.setattr(sqlite, "apply", gated)
        events.append(opened)
        return opened

    yield install
    for event in events:
        event.set()


def offline_subscriber(broker: BrokerThread) -> None:
    sub = connect(broker.port, MQTT_5, "sub", **persistent(MQTT_5))
    subscribe(sub, Subscription("t", 2))
    leave(sub)


@pytest.mark.parametrize("qos", [1, 2])
def test_with_sync_the_ack_waits_until_the_message_is_committed(
    start: Callable[..., BrokerThread], gate: Callable[[], threading.Event], qos: int
) -> None:
    broker = start(commit_policy="sync")
    offline_subscriber(broker)
    pub = connect(broker.port, MQTT_5, "pub")
    opened = gate()
    pub.send(Publish("t", b"durable", qos=qos, packet_id=1))
    pub.expect_silence(0.3)
    opened.set()
    assert pub.recv() == (Puback(1) if qos == 1 else Pubrec(1))


@pytest.mark.parametrize("policy", ["batched", "off"])
def test_with_batched_or_off_the_ack_does_not_wait(
    start: Callable[..., BrokerThread], gate: Callable[[], threading.Event], policy: str
) -> None:
    broker = start(commit_policy=policy)
    offline_subscriber(broker)
    pub = connect(broker.port, MQTT_5, "pub")
    opened = gate()
    pub.send(Publish("t", b"soon durable", qos=1, packet_id=1))
    assert pub.recv() == Puback(1)
    opened.set()


def test_an_ack_that_changes_nothing_durable_does_not_wait(
    start: Callable[..., BrokerThread], gate: Callable[[], threading.Event]
) -> None:
    broker = start(commit_policy="sync")
    sub = connect(broker.port, MQTT_5, "clean-sub")
    subscribe(sub, Subscription("t", 1))
    pub = connect(broker.port, MQTT_5, "pub")
    opened = gate()
    pub.send(Publish("t", b"for a clean session", qos=1, packet_id=1))
    assert pub.recv() == Puback(1)
    assert recv_publish(sub).payload == b"for a clean session"
    opened.set()


def test_packets_after_a_held_ack_keep_their_order(
    start: Callable[..., BrokerThread], gate: Callable[[], threading.Event]
) -> None:
    broker = start(commit_policy="sync")
    offline_subscriber(broker)
    pub = connect(broker.port, MQTT_5, "pub")
    opened = gate()
    pub.send(Publish("t", b"durable", qos=1, packet_id=1))
    pub.send(Publish("elsewhere", b"nobody stores this", qos=1, packet_id=2))
    pub.expect_silence(0.3)
    opened.set()
    assert [pub.recv(), pub.recv()] == [Puback(1), Puback(2, 0x10)]


def test_a_failed_commit_is_retried_and_the_ack_waits_for_it(
    start: Callable[..., BrokerThread],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = start(commit_policy="sync")
    offline_subscriber(broker)
    pub = connect(broker.port, MQTT_5, "pub")
    real = apply
    failures = [sqlite3.OperationalError("disk I/O error")]

    def flaky(conn: sqlite3.Connection, batch: Batch) -> None:
        if failures:
            conn.execute("BEGIN")
            raise failures.pop()
        real(conn, batch)

    monkeypatch.setattr(sqlite, "apply", flaky)
    with caplog.at_level(logging.ERROR, logger="roost.broker"):
        publish(pub, Publish("t", b"written on the second try", qos=1, packet_id=1))
    assert any("Cannot write to" in r.getMessage() for r in caplog.records)
    broker.stop()
    broker = start()
    sub = connect(broker.port, MQTT_5, "sub", present=True, **persistent(MQTT_5))
    assert recv_publish(sub).payload == b"written on the second try"


def test_expired_messages_are_purged_from_offline_queues_and_from_disk(
    start: Callable[..., BrokerThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "PURGE_INTERVAL", 0.1)
    broker = start()
    offline_subscriber(broker)
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("t", b"short-lived", qos=1, packet_id=1, message_expiry_interval=1))
    publish(pub, Publish("t", b"long-lived", qos=1, packet_id=2, message_expiry_interval=600))
    wait_for_broker(broker, lambda: len(broker.broker.sessions["sub"].queue) == 1, timeout=5)
    broker.stop()
    counts = row_counts(state_dir(broker))
    assert (counts["messages"], counts["deliveries"]) == (1, 1)


def test_a_shutdown_ends_even_if_the_disk_keeps_failing(
    start: Callable[..., BrokerThread],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(server, "STORE_FLUSH_TIMEOUT", 0.2)
    broker = start()
    offline_subscriber(broker)
    pub = connect(broker.port, MQTT_5, "pub")

    def broken(conn: sqlite3.Connection, batch: Batch) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(sqlite, "apply", broken)
    pub.send(Publish("t", b"never written", qos=1, packet_id=1))
    pub.expect_silence(0.3)  # not written, so never acknowledged
    with caplog.at_level(logging.ERROR, logger="roost.broker"):
        broker.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("Giving up writing to") for m in messages), messages


def test_an_auth_plugin_authorizes_a_restored_session_with_the_identity_it_had(
    start: Callable[..., BrokerThread],
) -> None:
    plugin_config: dict[str, object] = {
        "auth_plugin": "tests.auth.plugins:Roles",
        "auth_plugin_options": {"roles": {"alice": "reader", "pubber": "writer"}},
    }
    broker = start(**plugin_config)
    alice = connect(
        broker.port, MQTT_5, "alice1", username="alice", password=b"x", **persistent(MQTT_5)
    )
    subscribe(alice, Subscription("a/#", 1))
    leave(alice)
    pub = connect(broker.port, MQTT_5, "pubber", username="pubber", password=b"x")
    publish(pub, Publish("a/before", b"1", qos=1, packet_id=1))
    before = [info for info, access, _topic in plugin_of(broker).seen if access is Access.READ]
    broker.stop()

    broker = start(**plugin_config)
    pub = connect(broker.port, MQTT_5, "pubber", username="pubber", password=b"x")
    publish(pub, Publish("a/after", b"2", qos=1, packet_id=1))
    after = [info for info, access, _topic in plugin_of(broker).seen if access is Access.READ]
    # The restored session is asked about with the identity its CONNECT gave it.
    assert before == after
    assert [info.attributes for info in after] == [{"role": "reader", "teams": ["blue", "green"]}]
    alice = connect(
        broker.port,
        MQTT_5,
        "alice1",
        present=True,
        username="alice",
        password=b"x",
        **persistent(MQTT_5),
    )
    assert [m.topic for m in receive_all(alice, 2)] == ["a/before", "a/after"]


def plugin_of(broker: BrokerThread) -> plugins.Roles:
    plugin = broker.broker.auth.plugin
    assert isinstance(plugin, plugins.Roles)
    return plugin


def test_a_session_from_a_version_1_database_fails_closed_until_its_client_returns(
    start: Callable[..., BrokerThread], tmp_path: Path
) -> None:
    write_version_1_database(tmp_path)  # alice1: subscribed to a/#, a/before queued
    passwords = PasswordFile()
    passwords.set("alice", "alice-pw")
    passwords.set("pubber", "pubber-pw")
    passwords.save(tmp_path / "passwords")
    (tmp_path / "acl").write_text("user alice\ntopic read a/#\n\nuser pubber\ntopic write a/#\n")
    auth: dict[str, object] = {
        "password_file": str(tmp_path / "passwords"),
        "acl_file": str(tmp_path / "acl"),
    }
    alice_login: dict[str, object] = {
        "username": "alice",
        "password": b"alice-pw",
        "clean_start": False,
    }
    broker = start(**auth)
    pub = connect(broker.port, MQTT_3_1_1, "pubber", username="pubber", password=b"pubber-pw")
    # Nobody knows whose session it is: nothing new is queued for it.
    publish(pub, Publish("a/unknown", b"", qos=1, packet_id=1))
    alice = connect(broker.port, MQTT_3_1_1, "alice1", present=True, **alice_login)
    assert [m.topic for m in receive_all(alice, 1)] == ["a/before"]
    assert drain(alice) == []
    leave(alice)
    broker.stop()

    # Her CONNECT stored who she is: from now on a restart keeps her entitled.
    broker = start(**auth)
    pub = connect(broker.port, MQTT_3_1_1, "pubber", username="pubber", password=b"pubber-pw")
    publish(pub, Publish("a/after", b"", qos=1, packet_id=1))
    alice = connect(broker.port, MQTT_3_1_1, "alice1", present=True, **alice_login)
    assert [m.topic for m in receive_all(alice, 1)] == ["a/after"]
    assert drain(alice) == []
