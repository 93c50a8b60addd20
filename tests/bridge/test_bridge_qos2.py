"""Exactly once across a Roost restart and across a new bridge client, with a real
Mosquitto as the remote: the bridge forwards each QoS 1/2 message under its session's
packet id, so the remote's persistent session recognises what comes again.

A relay between the bridge and Mosquitto (``tests.support.relay``) withholds one PUBREL
or PUBCOMP: the moment a process dies at, with both brokers real. Mosquitto passes a
QoS 2 message on to its subscribers only at PUBREL, and keeps the id until then.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from roost.broker.bridge.outbound import CLIENT_PACKET_IDS, SESSION_PACKET_IDS
from roost.broker.bridge_config import BridgeTopic
from roost.broker.config import BrokerConfig
from roost.broker.connect import NO_LIMIT
from roost.broker.message import Message
from roost.broker.sessions import Session
from roost.broker.topic_aliases import OutgoingAliases
from roost.codec import MQTT_3_1_1, MQTT_5, Publish, read_packet
from tests.bridge.conftest import StartRoost, bridge
from tests.bridge.test_bridge_mosquitto import the_bridge, wait_bridged
from tests.support.broker_thread import BrokerThread
from tests.support.mosquitto import Mosquitto, make_password_file
from tests.support.paho import PahoClient
from tests.support.relay import PUBCOMP, PUBREL, MqttRelay
from tests.support.waiting import wait_until

EXACT = BridgeTopic("x/#", "out", 2, "", "site1/")


@pytest.fixture
def relay(remote: Mosquitto) -> Iterator[MqttRelay]:
    relay = MqttRelay(remote.port)
    yield relay
    relay.close()


def _durable(tmp_path: Path, relay: MqttRelay, protocol: str) -> dict[str, Any]:
    return {
        "bridges": [bridge(relay.port, EXACT, protocol=protocol)],
        "data_dir": str(tmp_path / "roost"),
        "persistence": "sqlite",
    }


def _in_flight(roost: BrokerThread) -> int:
    def count() -> int:
        session = the_bridge(roost).session
        assert session is not None
        return len(session.inflight)

    return roost.call(count)


def _far(remote: Mosquitto) -> PahoClient:
    far = PahoClient(remote.port, "far", MQTT_3_1_1)
    far.subscribe("site1/#", 2)
    return far


@pytest.mark.parametrize("protocol", ["mqttv311", "mqttv5"])
def test_released_before_a_restart_is_not_delivered_again(
    tmp_path: Path, remote: Mosquitto, relay: MqttRelay, start_roost: StartRoost, protocol: str
) -> None:
    """The remote delivered the message at our PUBREL; its PUBCOMP never came back.
    After the restart the bridge resumes at PUBREL: no second copy."""
    config = _durable(tmp_path, relay, protocol)
    roost = start_roost(**config)
    wait_bridged(roost, subscribed=False)
    far = _far(remote)
    relay.withhold["down"].add(PUBCOMP)
    PahoClient(roost.port, "near", MQTT_5).publish("x/once", b"once", 2)
    assert far.next_message().payload == b"once"
    relay.wait_withheld("down", PUBCOMP)
    assert _in_flight(roost) == 1
    roost.stop()
    relay.withhold["down"].clear()

    roost = start_roost(**config)
    wait_bridged(roost, subscribed=False)
    PahoClient(roost.port, "near", MQTT_5).publish("x/end", b"end", 2)
    # A copy of "once" sent again would come first.
    assert far.next_message().payload == b"end"
    wait_until(lambda: _in_flight(roost) == 0)


@pytest.mark.parametrize("protocol", ["mqttv311", "mqttv5"])
def test_received_before_a_restart_is_delivered_once_after_it(
    tmp_path: Path, remote: Mosquitto, relay: MqttRelay, start_roost: StartRoost, protocol: str
) -> None:
    """The remote answered PUBREC; our PUBREL never reached it. Mosquitto holds the
    message until PUBREL, which the restarted bridge sends: delivered, once."""
    config = _durable(tmp_path, relay, protocol)
    roost = start_roost(**config)
    wait_bridged(roost, subscribed=False)
    far = _far(remote)
    relay.withhold["up"].add(PUBREL)
    PahoClient(roost.port, "near", MQTT_5).publish("x/held", b"held", 2)
    relay.wait_withheld("up", PUBREL)
    # Mosquitto had the message before its PUBREC; it has not passed it on: a message
    # published after that PUBREC reaches far first.
    PahoClient(remote.port, "probe", MQTT_3_1_1).publish("site1/probe", b"probe", 2)
    assert far.next_message().payload == b"probe"
    roost.stop()
    relay.withhold["up"].clear()

    roost = start_roost(**config)
    wait_bridged(roost, subscribed=False)
    PahoClient(roost.port, "near", MQTT_5).publish("x/end", b"end", 2)
    assert [m.payload for m in far.take(2)] == [b"held", b"end"]
    wait_until(lambda: _in_flight(roost) == 0)


def test_a_new_client_does_not_deliver_again(tmp_path: Path, start_roost: StartRoost) -> None:
    """The remote delivered the message and its PUBCOMP is lost; then the bridge's
    client gives up (the remote refuses its password, a refusal another attempt does
    not fix) and the bridge makes a new one, which the remote accepts again. The new
    client resumes the exchange under the same packet id: no second copy."""
    passwords = make_password_file(tmp_path, {"edge": "right"})
    remote = Mosquitto(tmp_path, extra_config=f"password_file {passwords}\n").start()
    relay = MqttRelay(remote.port)
    try:
        credentials = {"username": "edge", "password": "right"}
        roost = start_roost(bridges=[bridge(relay.port, EXACT, **credentials)])
        wait_bridged(roost, subscribed=False)
        far = _far(remote)
        relay.withhold["down"].add(PUBCOMP)
        near = PahoClient(roost.port, "near", MQTT_5)
        near.publish("x/once", b"once", 2)
        assert far.next_message().payload == b"once"
        relay.wait_withheld("down", PUBCOMP)
        relay.withhold["down"].clear()
        first = roost.call(lambda: the_bridge(roost).client)

        _reload(remote, passwords, "changed")
        relay.cut()
        wait_until(lambda: roost.call(lambda: the_bridge(roost).client) is not first)
        _reload(remote, passwords, "right")
        wait_bridged(roost, subscribed=False)
        near.publish("x/end", b"end", 2)
        assert far.next_message().payload == b"end"
        wait_until(lambda: _in_flight(roost) == 0)
    finally:
        relay.close()
        remote.stop()


def _reload(remote: Mosquitto, passwords: Path, password: str) -> None:
    """Set the bridge user's password on the remote; wait until Mosquitto has reloaded
    (it logs this before it reloads, in the thread that then handles connections)."""
    make_password_file(passwords.parent, {"edge": password})
    reloads = remote.log().count("Reloading config")
    assert remote.process is not None
    remote.process.send_signal(signal.SIGHUP)
    wait_until(lambda: remote.log().count("Reloading config") > reloads)


class _Sink:
    """A connection that records what the session sends."""

    def __init__(self) -> None:
        self.version = MQTT_5
        self.writable = True
        self.send_quota = 10
        self.maximum_packet_size = NO_LIMIT
        self.topic_aliases: OutgoingAliases | None = None
        self.sent: list[int] = []

    def send(self, data: bytes) -> None:
        found = read_packet(memoryview(data), MQTT_5)
        assert found is not None
        assert isinstance(found[0], Publish)
        self.sent.append(found[0].packet_id)

    def take_over(self) -> None:
        return

    def hold(self, batch: int, gate: int = 0) -> None:
        return

    def release(self, committed: int, gate: int = 0) -> bool:
        return False


def test_the_session_keeps_below_its_packet_id_limit() -> None:
    """The bridge session's ids stay below the client's own (CLIENT_PACKET_IDS)."""
    assert CLIENT_PACKET_IDS[0] == SESSION_PACKET_IDS + 1
    session = Session("$bridge/up", BrokerConfig())
    session.packet_id_limit = 2
    sink = _Sink()
    session.connection = sink
    for _ in range(2):
        session.deliver(Message("t", b"x", 1, False, "p"), 1, False)
    session.puback(1, 0.0)
    session.deliver(Message("t", b"x", 1, False, "p"), 1, False)
    assert sink.sent == [1, 2, 1]
