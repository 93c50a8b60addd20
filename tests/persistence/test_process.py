"""`roost broker` processes and their data directory: a graceful restart keeps state,
a crash with clients connected publishes their wills afterwards, and a database the
broker cannot use stops it with an error naming the file, leaving the file alone."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from roost.broker.persistence.schema import SCHEMA_VERSION
from roost.broker.persistence.sqlite import DATABASE_NAME
from roost.codec import MQTT_3_1_1, MQTT_5, Disconnect, Publish, Subscription, Will
from tests.persistence.conftest import StartProcess
from tests.persistence.process import STARTUP_TIMEOUT, BrokerProcess
from tests.support.raw import (
    RawClient,
    connect,
    drain,
    persistent,
    publish,
    receive_all,
    recv_publish,
    subscribe,
)


def leave(client: RawClient) -> None:
    client.send(Disconnect())
    client.expect_closed()


def test_sigterm_and_restart_keep_sessions_subscriptions_queues_retained_and_delayed_wills(
    start_process: StartProcess,
) -> None:
    broker = start_process()
    watcher = connect(broker.port, MQTT_5, "watcher", **persistent(MQTT_5))
    subscribe(watcher, Subscription("wills/#", 1), Subscription("news", 2))
    leave(watcher)
    old = connect(broker.port, MQTT_3_1_1, "old-style", clean_start=False)
    subscribe(old, Subscription("news", 1))
    leave(old)
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("news", b"queued while away", qos=2, packet_id=1))
    publish(pub, Publish("status/door", b"closed", qos=1, retain=True, packet_id=2))
    mortal = connect(
        broker.port,
        MQTT_5,
        "mortal",
        will=Will("wills/mortal", b"gone", qos=1, will_delay_interval=2),
        **persistent(MQTT_5),
    )
    assert broker.stop() == 0
    assert mortal.expect_closed() == [Disconnect(0x8B)]

    broker = start_process()
    # watcher, old-style and mortal; "pub" had a clean session, which is not kept.
    broker.wait_for(r"Restored 3 sessions, 2 queued or in-flight messages and 1 retained")
    watcher = connect(broker.port, MQTT_5, "watcher", present=True, **persistent(MQTT_5))
    queued = recv_publish(watcher)
    assert (queued.topic, queued.payload, queued.qos) == ("news", b"queued while away", 2)
    receive_all(watcher, 0)
    old = connect(broker.port, MQTT_3_1_1, "old-style", present=True, clean_start=False)
    assert [m.payload for m in receive_all(old, 1)] == [b"queued while away"]
    reader = connect(broker.port, MQTT_5, "reader")
    subscribe(reader, Subscription("status/#", 1))
    assert [(m.topic, m.payload, m.retain) for m in receive_all(reader, 1)] == [
        ("status/door", b"closed", True)
    ]
    # The delayed will outlived the broker and is published once its delay is over.
    will = recv_publish(watcher, timeout=10)
    assert (will.topic, will.payload) == ("wills/mortal", b"gone")
    assert broker.stop() == 0


def test_a_client_connected_at_a_crash_has_its_will_published_after_the_restart(
    start_process: StartProcess,
) -> None:
    broker = start_process()
    watcher = connect(broker.port, MQTT_5, "watcher", **persistent(MQTT_5))
    subscribe(watcher, Subscription("wills/#", 1))
    leave(watcher)
    victim = connect(
        broker.port, MQTT_5, "victim", will=Will("wills/victim", b"lost"), **persistent(MQTT_5)
    )
    # A SUBACK to a stored session waits for its commit, which holds the session too.
    subscribe(victim, Subscription("anything", 0))
    broker.kill()

    broker = start_process()
    watcher = connect(broker.port, MQTT_5, "watcher", present=True, **persistent(MQTT_5))
    # Its connection ended with the broker, without DISCONNECT [MQTT-3.1.2-8].
    will = recv_publish(watcher, timeout=10)
    assert (will.topic, will.payload) == ("wills/victim", b"lost")
    assert drain(watcher) == []


def run_broker(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """A broker that is expected not to start: its exit status and output."""
    return subprocess.run(
        [sys.executable, "-m", "roost", "broker", "-p", "0", *args],
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT,
        check=False,
        cwd=cwd,
    )


def make_database(start_process: StartProcess) -> None:
    broker = start_process()
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("keep/me", b"x" * 5000, qos=1, retain=True, packet_id=1))
    assert broker.stop() == 0


def test_a_damaged_database_stops_the_broker_with_an_error_naming_it(
    start_process: StartProcess, tmp_path: Path
) -> None:
    make_database(start_process)
    path = tmp_path / "data" / DATABASE_NAME
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2)
    before = path.read_bytes()
    result = run_broker("--data-dir", str(tmp_path / "data"))
    assert result.returncode == 1
    assert f"roost broker: {path}: the database is damaged" in result.stderr
    assert "Listening" not in result.stderr
    assert path.read_bytes() == before


def test_a_database_from_a_newer_version_stops_the_broker(
    start_process: StartProcess, tmp_path: Path
) -> None:
    make_database(start_process)
    path = tmp_path / "data" / DATABASE_NAME
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    result = run_broker("--data-dir", str(tmp_path / "data"))
    assert result.returncode == 1
    assert f"roost broker: {path}: the database has schema version" in result.stderr
    assert "newer Roost" in result.stderr


def test_a_second_broker_on_the_same_data_dir_is_refused(
    start_process: StartProcess, tmp_path: Path
) -> None:
    broker = start_process()
    result = run_broker("--data-dir", str(tmp_path / "data"))
    assert result.returncode == 1
    assert "the database is in use by another process" in result.stderr
    assert broker.stop() == 0


def test_the_default_data_dir_is_roost_data_in_the_working_directory(tmp_path: Path) -> None:
    broker = BrokerProcess(Path("roost-data"), cwd=tmp_path)
    broker.wait_for(r"Persistence: SQLite database .*roost-data/roost\.db \(commit policy sync\)")
    assert broker.stop() == 0
    assert (tmp_path / "roost-data" / DATABASE_NAME).is_file()


def test_no_persistence_writes_nothing(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "data", "--no-persistence")
    broker.wait_for(r"Persistence: off \(state is kept in memory only\)")
    sub = connect(broker.port, MQTT_5, "sub", **persistent(MQTT_5))
    subscribe(sub, Subscription("t", 1))
    assert broker.stop() == 0
    assert not (tmp_path / "data").exists()
