"""Roost bridged to a real Mosquitto: both directions, prefixes, QoS, queueing while the
remote is down, a Roost restart, loop prevention, failover, TLS and the state topic.

Clients on both sides are paho-mqtt; the remote broker is Debian's mosquitto.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.broker.bridge import Bridge
from roost.broker.bridge_config import BridgeTls, BridgeTopic
from roost.codec import MQTT_3_1_1, MQTT_5
from tests.bridge.conftest import StartRoost, bridge
from tests.support.broker_thread import BrokerThread
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.paho import PahoClient
from tests.support.waiting import wait_until
from tests.transports.pki import Pki

SENSORS = BridgeTopic("sensors/#", "out", 2, "", "site1/")
COMMANDS = BridgeTopic("cmd/#", "in", 2, "", "site1/")


def the_bridge(roost: BrokerThread) -> Bridge:
    return next(iter(roost.broker.bridges))


def wait_bridged(roost: BrokerThread, subscribed: bool = True) -> None:
    bridge_ = the_bridge(roost)
    wait_until(
        lambda: roost.call(lambda: bridge_.connected and (bridge_.subscribed or not subscribed))
    )


@pytest.mark.parametrize("protocol", ["mqttv31", "mqttv311", "mqttv5"])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_out_and_in_with_prefixes(
    remote: Mosquitto, start_roost: StartRoost, protocol: str, qos: int
) -> None:
    roost = start_roost(bridges=[bridge(remote.port, SENSORS, COMMANDS, protocol=protocol)])
    wait_bridged(roost)
    far = PahoClient(remote.port, "far", MQTT_3_1_1)
    far.subscribe("site1/#", 2)
    near = PahoClient(roost.port, "near", MQTT_5)
    near.subscribe("#", 2)

    near.publish("sensors/kitchen", b"21.5", qos)
    got = far.next_message()
    assert (got.topic, got.payload, got.qos) == ("site1/sensors/kitchen", b"21.5", qos)
    assert near.next_message().topic == "sensors/kitchen"  # its own local delivery

    far.publish("site1/cmd/light", b"on", qos)
    got = near.next_message()
    assert (got.topic, got.payload, got.qos) == ("cmd/light", b"on", qos)
    # Not an out pattern: the command stays here; it is not sent back with the prefix.
    near.publish("sensors/end", b"end", 1)
    assert far.next_message().topic == "site1/cmd/light"  # far's own publish
    assert far.next_message().topic == "site1/sensors/end"


def test_qos_is_the_lower_of_pattern_and_message(
    remote: Mosquitto, start_roost: StartRoost
) -> None:
    roost = start_roost(bridges=[bridge(remote.port, BridgeTopic("low/#", "out", 1))])
    wait_bridged(roost, subscribed=False)
    far = PahoClient(remote.port, "far", MQTT_3_1_1)
    far.subscribe("low/#", 2)
    near = PahoClient(roost.port, "near", MQTT_5)
    near.publish("low/a", b"x", 2)
    assert far.next_message().qos == 1


def test_both_directions_do_not_loop(remote: Mosquitto, start_roost: StartRoost) -> None:
    for protocol in ("mqttv311", "mqttv5"):
        roost = start_roost(
            bridges=[bridge(remote.port, BridgeTopic("both/#", "both", 1), protocol=protocol)]
        )
        wait_bridged(roost)
        far = PahoClient(remote.port, f"far-{protocol}", MQTT_3_1_1)
        far.subscribe("both/#", 1)
        near = PahoClient(roost.port, f"near-{protocol}", MQTT_5)
        near.subscribe("both/#", 1)
        near.publish("both/x", b"from roost", 1)
        near.publish("both/end", b"end", 1)
        assert [m.topic for m in far.take(2)] == ["both/x", "both/end"]
        far.publish("both/y", b"from far", 1)
        far.publish("both/end2", b"end2", 1)
        # An echo of what either side sent would come before the last marker.
        assert [m.topic for m in near.take(4)] == ["both/x", "both/end", "both/y", "both/end2"]
        assert [m.topic for m in far.take(2)] == ["both/y", "both/end2"]
        near.disconnect()
        far.disconnect()
        roost.stop()


def test_mosquitto_bridge_into_roost_and_back_does_not_loop(
    tmp_path: Path, start_roost: StartRoost
) -> None:
    """A Mosquitto bridge into Roost (try_private: a CONNECT with level 0x84) and Roost's
    bridge to that Mosquitto, both forwarding loop/# both ways: each message once."""
    roost = start_roost()
    mosquitto = Mosquitto(
        tmp_path,
        extra_config=(
            "connection into-roost\n"
            f"address 127.0.0.1:{roost.port}\n"
            "topic loop/# both 1\n"
            "try_private true\n"
            "notifications false\n"
            "restart_timeout 1\n"
        ),
    ).start()
    try:
        wait_until(lambda: roost.call(lambda: "into-roost" in str(list(roost.broker.sessions))))
        session = next(k for k in roost.call(lambda: list(roost.broker.sessions)) if "into" in k)
        wait_until(lambda: roost.call(lambda: bool(roost.broker.sessions[session].subscriptions)))
        records = roost.call(lambda: list(roost.broker.sessions[session].subscriptions.values()))
        assert all(r.no_local and r.retain_as_published for r in records)
        near = PahoClient(roost.port, "near", MQTT_5)
        near.subscribe("loop/#", 1)
        far = PahoClient(mosquitto.port, "far", MQTT_3_1_1)
        far.subscribe("loop/#", 1)
        near.publish("loop/a", b"a", 1)
        near.publish("loop/end", b"end", 1)
        assert [m.topic for m in far.take(2)] == ["loop/a", "loop/end"]
        far.publish("loop/b", b"b", 1)
        far.publish("loop/end2", b"end2", 1)
        assert [m.topic for m in near.take(4)] == ["loop/a", "loop/end", "loop/b", "loop/end2"]
        assert [m.topic for m in far.take(2)] == ["loop/b", "loop/end2"]
    finally:
        mosquitto.stop()


def _persistent_remote(tmp_path: Path) -> Mosquitto:
    directory = tmp_path / "remote"
    directory.mkdir()
    return Mosquitto(
        directory, extra_config=f"persistence true\npersistence_location {directory}/\n"
    ).start()


def test_queued_while_remote_down_then_in_order_across_a_roost_restart(
    tmp_path: Path, start_roost: StartRoost
) -> None:
    remote = _persistent_remote(tmp_path)
    try:
        config = {
            "bridges": [bridge(remote.port, BridgeTopic("q/#", "out", 1))],
            "data_dir": str(tmp_path / "roost"),
            "persistence": "sqlite",
        }
        roost = start_roost(**config)
        wait_bridged(roost, subscribed=False)
        far = PahoClient(remote.port, "far", MQTT_3_1_1, clean=False)
        far.subscribe("q/#", 1)
        far.disconnect()  # its session on the remote queues what comes
        remote.stop()
        wait_until(lambda: roost.call(lambda: not the_bridge(roost).connected))
        near = PahoClient(roost.port, "near", MQTT_5)
        near.publish_all("q/n", [str(i).encode() for i in range(30)], 1)
        session = roost.call(lambda: the_bridge(roost).session)
        assert session is not None
        assert roost.call(session.pending_messages) == 30
        near.disconnect()
        roost.stop()
        # Roost restarts with the queue in SQLite, then the remote comes back.
        roost = start_roost(**config)
        remote.restart()
        far = PahoClient(remote.port, "far", MQTT_3_1_1, clean=False)
        assert [m.payload for m in far.take(30)] == [str(i).encode() for i in range(30)]
        # Acknowledged by the remote, the messages leave the bridge's session.
        restored = roost.call(lambda: the_bridge(roost).session)
        assert restored is not None
        wait_until(lambda: roost.call(restored.pending_messages) == 0)
    finally:
        remote.stop()


def test_failover_to_the_second_address(remote: Mosquitto, start_roost: StartRoost) -> None:
    dead = f"127.0.0.1:{free_port()}"
    roost = start_roost(
        bridges=[
            bridge(
                remote.port,
                BridgeTopic("f/#", "out", 1),
                addresses=[dead, f"127.0.0.1:{remote.port}"],
            )
        ]
    )
    wait_bridged(roost, subscribed=False)
    assert roost.call(lambda: the_bridge(roost).client.port) == remote.port
    far = PahoClient(remote.port, "far", MQTT_3_1_1)
    far.subscribe("f/#", 1)
    PahoClient(roost.port, "near", MQTT_5).publish("f/x", b"x", 1)
    assert far.next_message().topic == "f/x"


def test_tls_to_the_remote(tmp_path: Path, start_roost: StartRoost) -> None:
    pki = Pki(tmp_path)
    tls_port = free_port()
    remote = Mosquitto(
        tmp_path,
        extra_config=(
            f"listener {tls_port} 127.0.0.1\n"
            f"cafile {pki.cafile}\ncertfile {pki.certfile}\nkeyfile {pki.keyfile}\n"
        ),
    ).start()
    try:
        roost = start_roost(
            bridges=[
                bridge(
                    tls_port,
                    SENSORS,
                    COMMANDS,
                    tls=BridgeTls(cafile=str(pki.cafile)),
                    addresses=[f"localhost:{tls_port}"],
                )
            ]
        )
        wait_bridged(roost)
        far = PahoClient(remote.port, "far", MQTT_3_1_1)
        far.subscribe("site1/sensors/#", 1)
        near = PahoClient(roost.port, "near", MQTT_5)
        near.subscribe("cmd/#", 1)
        near.publish("sensors/t", b"tls", 1)
        assert far.next_message().payload == b"tls"
        far.publish("site1/cmd/t", b"in", 1)
        assert near.next_message().topic == "cmd/t"
    finally:
        remote.stop()


def test_notification_topic(remote: Mosquitto, start_roost: StartRoost) -> None:
    roost = start_roost(bridges=[bridge(remote.port, BridgeTopic("n/#", "out", 1))])
    wait_bridged(roost, subscribed=False)
    topic = "$SYS/broker/connection/up/state"
    far = PahoClient(remote.port, "far", MQTT_3_1_1)
    far.subscribe(topic, 1)
    assert far.next_message().payload == b"1"
    near = PahoClient(roost.port, "near", MQTT_5)
    near.subscribe(topic, 1)
    assert near.next_message().payload == b"1"
    far.disconnect()
    remote.stop()
    assert near.next_message().payload == b"0"
    remote.restart()
    assert near.next_message().payload == b"1"


def test_a_full_bridge_queue_drops_by_its_policy(tmp_path: Path, start_roost: StartRoost) -> None:
    remote = _persistent_remote(tmp_path)
    try:
        roost = start_roost(
            bridges=[
                bridge(
                    remote.port,
                    BridgeTopic("q/#", "out", 1),
                    max_queued_messages=5,
                    queue_full_policy="drop_oldest",
                )
            ]
        )
        wait_bridged(roost, subscribed=False)
        far = PahoClient(remote.port, "far", MQTT_3_1_1, clean=False)
        far.subscribe("q/#", 1)
        far.disconnect()
        remote.stop()
        wait_until(lambda: roost.call(lambda: not the_bridge(roost).connected))
        near = PahoClient(roost.port, "near", MQTT_5)
        near.publish_all("q/n", [str(i).encode() for i in range(10)], 1)
        values = roost.call(lambda: the_bridge(roost).sys_values())
        assert (values["state"], values["queued"], values["dropped"]) == ("0", "5", "5")
        remote.restart()
        far = PahoClient(remote.port, "far", MQTT_3_1_1, clean=False)
        assert [m.payload for m in far.take(5)] == [str(i).encode() for i in range(5, 10)]
    finally:
        remote.stop()


def test_in_messages_for_an_offline_session_survive_a_roost_restart(
    tmp_path: Path, remote: Mosquitto, start_roost: StartRoost
) -> None:
    config = {
        "bridges": [bridge(remote.port, COMMANDS)],
        "data_dir": str(tmp_path / "roost"),
        "persistence": "sqlite",
    }
    roost = start_roost(**config)
    wait_bridged(roost)
    near = PahoClient(roost.port, "near", MQTT_5, clean=False, session_expiry=3600)
    near.subscribe("cmd/#", 1)
    near.disconnect()
    far = PahoClient(remote.port, "far", MQTT_3_1_1)
    far.publish_all("site1/cmd/go", [b"1", b"2", b"3"], 1)
    wait_until(lambda: roost.call(lambda: the_bridge(roost).received) == 3)
    roost.stop()
    roost = start_roost(**config)
    near = PahoClient(roost.port, "near", MQTT_5, clean=False, session_expiry=3600)
    assert near.session_present
    assert [(m.topic, m.payload) for m in near.take(3)] == [
        ("cmd/go", b"1"),
        ("cmd/go", b"2"),
        ("cmd/go", b"3"),
    ]


def test_bridge_state_in_sys(remote: Mosquitto, start_roost: StartRoost) -> None:
    roost = start_roost(
        bridges=[bridge(remote.port, BridgeTopic("s/#", "out", 1))], sys_interval=0.5
    )
    wait_bridged(roost, subscribed=False)
    near = PahoClient(roost.port, "near", MQTT_5)
    near.subscribe("$SYS/broker/bridges/up/+", 0)
    # Values published before the bridge connected may come first: read until they
    # say connected (next_message fails the test if they never do).
    expected = {"state": b"1", "address": f"127.0.0.1:{remote.port}".encode()}
    seen: dict[str, bytes] = {}
    while any(seen.get(key) != value for key, value in expected.items()):
        message = near.next_message()
        seen[message.topic.rsplit("/", 1)[1]] = bytes(message.payload)


def test_a_client_may_not_take_a_bridge_session_key(
    remote: Mosquitto, start_roost: StartRoost
) -> None:
    roost = start_roost(bridges=[bridge(remote.port, BridgeTopic("s/#", "out", 1))])
    wait_bridged(roost, subscribed=False)
    intruder = PahoClient(roost.port, "$bridge/up", MQTT_5)
    assert intruder.connect_reason.value == 0x85  # Client Identifier not valid
    assert roost.call(lambda: the_bridge(roost).connected)


def test_the_acl_decides_what_goes_out_by_local_username(
    tmp_path: Path, remote: Mosquitto, start_roost: StartRoost
) -> None:
    acl = tmp_path / "acl"
    # Anonymous clients (the test's) may write anything; the bridge's user reads sensors/#.
    acl.write_text("topic write #\n\nuser edge\ntopic read sensors/#\n")
    roost = start_roost(
        acl_file=str(acl),
        bridges=[
            bridge(
                remote.port,
                BridgeTopic("secret/#", "out", 1),
                BridgeTopic("sensors/#", "out", 1),
                local_username="edge",
            )
        ],
    )
    wait_bridged(roost, subscribed=False)
    far = PahoClient(remote.port, "far", MQTT_3_1_1)
    far.subscribe("#", 1)
    near = PahoClient(roost.port, "near", MQTT_5)
    near.publish("secret/plan", b"no", 1)
    near.publish("sensors/t", b"yes", 1)
    # "#" does not match $SYS: the first message forwarded is the allowed one.
    assert far.next_message().topic == "sensors/t"  # secret/plan was never forwarded


def test_a_clean_stop_says_0_on_the_remote(remote: Mosquitto, start_roost: StartRoost) -> None:
    roost = start_roost(bridges=[bridge(remote.port, BridgeTopic("s/#", "out", 1))])
    wait_bridged(roost, subscribed=False)
    far = PahoClient(remote.port, "far", MQTT_3_1_1)
    far.subscribe("$SYS/broker/connection/up/state", 1)
    assert far.next_message().payload == b"1"
    roost.stop()
    assert far.next_message().payload == b"0"


def test_an_unreadable_password_file_stops_the_start(tmp_path: Path) -> None:
    from roost.broker import Broker, BrokerConfig

    missing = tmp_path / "nope"
    config = BrokerConfig(
        bridges=[bridge(1883, BridgeTopic("s/#"), username="u", password_file=str(missing))]
    )
    with pytest.raises(OSError, match=r"bridge up: cannot read password_file .*nope"):
        Broker(config)


def test_failover_when_the_connected_remote_goes_away(
    tmp_path: Path, start_roost: StartRoost
) -> None:
    first = _persistent_remote(tmp_path)
    second_dir = tmp_path / "second"
    second_dir.mkdir()
    second = Mosquitto(second_dir).start()
    try:
        roost = start_roost(
            bridges=[
                bridge(
                    first.port,
                    BridgeTopic("f/#", "out", 1),
                    addresses=[f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"],
                )
            ]
        )
        wait_bridged(roost, subscribed=False)
        assert roost.call(lambda: the_bridge(roost).client.port) == first.port
        far = PahoClient(second.port, "far", MQTT_3_1_1)
        far.subscribe("f/#", 1)
        first.stop()
        wait_until(lambda: roost.call(lambda: the_bridge(roost).client.port) == second.port)
        wait_bridged(roost, subscribed=False)
        PahoClient(roost.port, "near", MQTT_5).publish("f/x", b"x", 1)
        assert far.next_message().topic == "f/x"
    finally:
        first.stop()
        second.stop()


def _bridge_pending(roost: BrokerThread) -> int:
    return roost.broker.sessions["$bridge/up"].pending_messages()


def test_a_removed_bridge_loses_its_session_at_the_next_start(
    tmp_path: Path, start_roost: StartRoost
) -> None:
    dead = free_port()
    config = {"data_dir": str(tmp_path / "roost"), "persistence": "sqlite"}
    roost = start_roost(bridges=[bridge(dead, BridgeTopic("q/#", "out", 1))], **config)
    PahoClient(roost.port, "near", MQTT_5).publish("q/x", b"x", 1)
    assert roost.call(_bridge_pending, roost) == 1
    roost.stop()
    roost = start_roost(bridges=[bridge(dead, BridgeTopic("q/#", "out", 1))], **config)
    assert roost.call(_bridge_pending, roost) == 1
    roost.stop()
    roost = start_roost(**config)
    assert roost.call(lambda: "$bridge/up" in roost.broker.sessions) is False


def test_back_to_the_main_address_when_it_returns(tmp_path: Path, start_roost: StartRoost) -> None:
    (tmp_path / "main").mkdir()
    (tmp_path / "second").mkdir()
    main = Mosquitto(tmp_path / "main").start()
    main.stop()  # its port is known now; it comes back later
    second = Mosquitto(tmp_path / "second").start()
    try:
        roost = start_roost(
            bridges=[
                bridge(
                    main.port,
                    BridgeTopic("m/#", "out", 1),
                    addresses=[f"127.0.0.1:{main.port}", f"127.0.0.1:{second.port}"],
                )
            ]
        )
        wait_bridged(roost, subscribed=False)
        assert roost.call(lambda: the_bridge(roost).client.port) == second.port
        main.restart()
        up = the_bridge(roost)
        wait_until(lambda: roost.call(lambda: up.connected and up.client.port == main.port))
        far = PahoClient(main.port, "far", MQTT_3_1_1)
        far.subscribe("m/#", 1)
        PahoClient(roost.port, "near", MQTT_5).publish("m/x", b"x", 1)
        assert far.next_message().topic == "m/x"
    finally:
        main.stop()
        second.stop()
