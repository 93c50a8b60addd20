"""Refusing with a reason code: a connection over ``max_connections`` (broker-wide or
per listener) or a listener's ``max_connection_rate`` is read until its CONNECT and
answered (MQTT 5: CONNACK 0x97 "Quota exceeded" or 0x9F "Connection rate exceeded";
3.1.x: return code 3, server unavailable), bounded in time and bytes, and never counted
in. A client over ``max_publish_rate`` gets DISCONNECT 0x96 (3.1.x: closed)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from roost.broker import connection as broker_connection
from roost.broker.config import ListenerConfig
from roost.codec import (
    MQTT_3_1,
    MQTT_3_1_1,
    MQTT_5,
    Connack,
    Connect,
    Disconnect,
    Pingreq,
    Publish,
)
from tests.support.broker_thread import BrokerThread
from tests.support.cleanup import close_all, close_at_end
from tests.support.paho import PahoClient, release
from tests.support.raw import TIMEOUT, RawClient, connect, open_client
from tests.support.waiting import wait_until
from tests.transports.helpers import ListenersBroker

GENEROUS = 20.0  # seconds: a bound is asserted only as "closed eventually"
PAHO_VERSIONS = {MQTT_5: paho.MQTTv5, MQTT_3_1_1: paho.MQTTv311}

StartBroker = Callable[..., ListenersBroker]


@pytest.fixture
def start_broker() -> Iterator[StartBroker]:
    started: list[ListenersBroker] = []

    def start(*listeners: ListenerConfig, **overrides: Any) -> ListenersBroker:
        thread = ListenersBroker(listeners or [ListenerConfig(port=0)], **overrides)
        thread.start()
        started.append(thread)
        return thread

    yield start
    try:
        close_all()
    finally:
        for thread in started:
            thread.stop()


def counts(broker: BrokerThread) -> tuple[int, int, int]:
    """(connections counted in, connections being refused, refusals so far)."""

    def probe() -> tuple[int, int, int]:
        core = broker.broker.core
        return len(core.connections), len(core.refused), core.stats.refused_connections

    return broker.call(probe)


def refused_connack(port: int, version: int) -> Connack:
    """CONNECT on a new connection; the CONNACK, then an orderly end of the stream."""
    client = open_client(port, version)
    close_at_end(client.close)
    client.send(Connect("over", version))
    packets = client.expect_closed()
    client.close()  # as a client does at the end of the stream: the broker stops lingering
    assert len(packets) == 1, packets
    (connack,) = packets
    assert isinstance(connack, Connack)
    return connack


def paho_refusal(port: int, version: int) -> int:
    """paho's view of a refused connect: the reason (return) code it was given."""
    got = threading.Event()
    reasons: list[Any] = []
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="paho-over",
        protocol=PAHO_VERSIONS[version],
        reconnect_on_failure=False,
    )

    def on_connect(*args: Any) -> None:
        reasons.append(args[3])
        got.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert got.wait(TIMEOUT), "paho got no CONNACK"
    finally:
        client.disconnect()
        release(client)
    reason = reasons[0]
    return int(reason.value if hasattr(reason, "value") else reason)


# --- max_connections ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "code"), [(MQTT_5, 0x97), (MQTT_3_1_1, 0x03), (MQTT_3_1, 0x03)]
)
def test_over_the_brokers_max_connections_the_client_is_told(
    start_broker: StartBroker, version: int, code: int
) -> None:
    broker = start_broker(max_connections=1)
    connect(broker.port, MQTT_5, "inside")
    connack = refused_connack(broker.port, version)
    assert connack.reason_code == code
    assert not connack.session_present
    wait_until(lambda: counts(broker) == (1, 0, 1))  # never counted in; gone after


def test_over_a_listeners_max_connections_the_client_is_told(start_broker: StartBroker) -> None:
    broker = start_broker(ListenerConfig(port=0, max_connections=1))
    connect(broker.port, MQTT_3_1_1, "inside")
    assert refused_connack(broker.port, MQTT_5).reason_code == 0x97
    assert refused_connack(broker.port, MQTT_3_1_1).reason_code == 0x03
    wait_until(lambda: counts(broker) == (1, 0, 2))
    # The place inside is still the first client's: the refused ones took none.
    wait_until(lambda: broker.call(lambda: broker.broker.listeners[0].connections) == 1)


# paho reports 3.1.1's return code 3 (server unavailable) as MQTT 5's 0x88, its equal.
@pytest.mark.parametrize(("version", "code"), [(MQTT_5, 0x97), (MQTT_3_1_1, 0x88)])
def test_paho_over_max_connections_gets_the_reason_code(
    start_broker: StartBroker, version: int, code: int
) -> None:
    broker = start_broker(max_connections=1)
    PahoClient(broker.port, "paho-inside", version)
    assert paho_refusal(broker.port, version) == code


def test_a_refused_connection_that_sends_no_connect_is_closed(
    start_broker: StartBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not counted in, it has REFUSAL_TIMEOUT (here 0.5 s) to send its CONNECT."""
    monkeypatch.setattr(broker_connection, "REFUSAL_TIMEOUT", 0.5)
    broker = start_broker(max_connections=1)
    connect(broker.port, MQTT_5, "inside")
    silent = open_client(broker.port, MQTT_5)
    close_at_end(silent.close)
    wait_until(lambda: counts(broker) == (1, 1, 1))
    assert silent.expect_closed(GENEROUS) == []
    silent.close()
    wait_until(lambda: counts(broker) == (1, 0, 1), GENEROUS)


def test_a_refused_connection_that_floods_is_cut_off(
    start_broker: StartBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bytes that never make a CONNECT: cut off after LINGER_BYTES, time out of play."""
    monkeypatch.setattr(broker_connection, "REFUSAL_TIMEOUT", 600.0)
    broker = start_broker(max_connections=1)
    connect(broker.port, MQTT_5, "inside")
    flooder = open_client(broker.port, MQTT_5)
    close_at_end(flooder.close)
    # A CONNECT that claims 200 KB: it never completes within the bound.
    header = bytes([0x10, 0xC0, 0x9A, 0x0C])
    failed: list[OSError] = []

    def flood() -> None:
        try:
            flooder.sock.sendall(header)
            while True:
                flooder.sock.sendall(b"\0" * 16384)
        except OSError as exc:
            failed.append(exc)

    threading.Thread(target=flood, daemon=True).start()
    wait_until(lambda: failed, GENEROUS)
    wait_until(lambda: counts(broker) == (1, 0, 1), GENEROUS)


# --- max_connection_rate --------------------------------------------------------------

# One connection, then the next only after 1000 s: no test waits that long.
SLOW_RATE = 0.001


@pytest.mark.parametrize(("version", "code"), [(MQTT_5, 0x9F), (MQTT_3_1_1, 0x03)])
def test_over_max_connection_rate_the_client_is_told(
    start_broker: StartBroker, version: int, code: int
) -> None:
    broker = start_broker(ListenerConfig(port=0, max_connection_rate=SLOW_RATE))
    connect(broker.port, MQTT_5, "first")
    assert refused_connack(broker.port, version).reason_code == code
    wait_until(lambda: counts(broker) == (1, 0, 1))


def test_paho_over_max_connection_rate_gets_0x9f(start_broker: StartBroker) -> None:
    broker = start_broker(ListenerConfig(port=0, max_connection_rate=SLOW_RATE))
    PahoClient(broker.port, "paho-first", MQTT_5)
    assert paho_refusal(broker.port, MQTT_5) == 0x9F


def test_the_connection_rate_is_per_listener(start_broker: StartBroker) -> None:
    broker = start_broker(
        ListenerConfig(port=0, max_connection_rate=SLOW_RATE), ListenerConfig(port=0)
    )
    connect(broker.port_of(0), MQTT_5, "first")
    for index in range(5):
        connect(broker.port_of(1), MQTT_5, f"unlimited-{index}")
    assert refused_connack(broker.port_of(0), MQTT_5).reason_code == 0x9F


# --- max_publish_rate -----------------------------------------------------------------


def test_over_max_publish_rate_an_mqtt5_client_gets_disconnect_0x96(
    start_broker: StartBroker,
) -> None:
    broker = start_broker(max_publish_rate=SLOW_RATE)
    client = connect(broker.port, MQTT_5, "chatty")
    client.send(Publish("t", b"one"))
    client.send(Pingreq())
    client.recv()  # PINGRESP: the first PUBLISH was taken
    client.send(Publish("t", b"two"))
    packets = client.expect_closed()
    assert len(packets) == 1, packets
    assert isinstance(packets[0], Disconnect)
    assert packets[0].reason_code == 0x96
    closed = broker.call(lambda: dict(broker.broker.stats.closed_by_broker))
    assert closed == {"message_rate_too_high": 1}


def test_over_max_publish_rate_a_3_1_1_client_is_closed(start_broker: StartBroker) -> None:
    broker = start_broker(max_publish_rate=SLOW_RATE)
    client = connect(broker.port, MQTT_3_1_1, "chatty")
    client.send(Publish("t", b"one"))
    client.send(Publish("t", b"two"))
    assert client.expect_closed() == []


def test_paho_over_max_publish_rate_is_told_0x96(start_broker: StartBroker) -> None:
    broker = start_broker(max_publish_rate=SLOW_RATE)
    client = PahoClient(broker.port, "paho-chatty", MQTT_5)
    client.client.publish("t", b"one")
    client.client.publish("t", b"two")
    assert client.disconnected.wait(TIMEOUT)
    assert client.disconnect_reason.value == 0x96


def test_without_rate_limits_nothing_is_refused(start_broker: StartBroker) -> None:
    """Both limits are off by default: a burst of connections and messages passes."""
    broker = start_broker()
    clients: list[RawClient] = [connect(broker.port, MQTT_5, f"c{i}") for i in range(20)]
    for client in clients:
        for _ in range(50):
            client.send(Publish("t", b"x"))
        client.send(Pingreq())
        client.recv()
    assert counts(broker) == (20, 0, 0)
