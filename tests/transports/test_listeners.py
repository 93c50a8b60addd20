"""Several listeners on one broker: every transport at once, anonymous access per
listener, and connection limits per listener and for the whole broker."""

from __future__ import annotations

import ssl

import pytest

from roost.broker import core
from roost.broker.config import ListenerConfig
from roost.codec import MQTT_5, Connack, ConnectReasonCode
from tests.support.raw import open_client
from tests.support.waiting import wait_for_broker
from tests.transports.conftest import StartBroker
from tests.transports.helpers import (
    BrokerLog,
    ListenersBroker,
    Paho,
    WsClient,
    client_context,
    tls_client,
    tls_listener,
)
from tests.transports.pki import Pki


def connack(port: int, client_id: str, **fields: object) -> Connack:
    packet = open_client(port, MQTT_5).connect(client_id, **fields)
    assert isinstance(packet, Connack)
    return packet


def test_one_broker_on_four_transports(
    pki: Pki, start_broker: StartBroker, broker_log: BrokerLog
) -> None:
    certfile, keyfile = str(pki.certfile), str(pki.keyfile)
    broker = start_broker(
        ListenerConfig(port=0),
        ListenerConfig(port=0, type="tls", certfile=certfile, keyfile=keyfile),
        ListenerConfig(port=0, type="ws"),
        ListenerConfig(port=0, type="wss", path="/secure", certfile=certfile, keyfile=keyfile),
    )
    tls = client_context(pki)
    clients = [
        Paho(broker.port_of(0), "on-tcp"),
        Paho(broker.port_of(1), "on-tls", tls=tls),
        Paho(broker.port_of(2), "on-ws", transport="websockets"),
        Paho(broker.port_of(3), "on-wss", transport="websockets", tls=tls, path="/secure"),
    ]
    for client in clients:
        client.subscribe("all/#")
    for sender in clients:
        sender.publish(f"all/{sender.client._client_id.decode()}", b"hello")
    for receiver in clients:
        topics = sorted(receiver.next_message().topic for _ in clients)
        assert topics == ["all/on-tcp", "all/on-tls", "all/on-ws", "all/on-wss"]
    for pattern in (
        r"Listening on 127\.0\.0\.1:\d+ \(MQTT over TCP, anonymous clients allowed\)",
        r"Listening on 127\.0\.0\.1:\d+ \(MQTT over TLS, anonymous clients allowed\)",
        r"Listening on 127\.0\.0\.1:\d+ \(MQTT over WebSocket at /mqtt, anonymous",
        r"Listening on 127\.0\.0\.1:\d+ \(MQTT over WebSocket with TLS at /secure, anonymous",
    ):
        broker_log.wait_for(pattern)


# --- anonymous access --------------------------------------------------------------------


def test_anonymous_clients_are_refused_by_default_off_loopback(
    start_broker: StartBroker, broker_log: BrokerLog
) -> None:
    # Bound to every interface, reached (as tests must be) over loopback.
    broker = start_broker(ListenerConfig(port=0), ListenerConfig(host="0.0.0.0", port=0))
    assert connack(broker.port_of(0), "local").reason_code == 0
    refused = connack(broker.port_of(1), "from-afar")
    assert refused.reason_code == ConnectReasonCode.NOT_AUTHORIZED
    assert connack(broker.port_of(1), "named", username="someone").reason_code == 0
    broker_log.wait_for(
        r"^Anonymous clients: allowed on tcp 127\.0\.0\.1:\d+; refused on tcp 0\.0\.0\.0:\d+\.$"
    )
    broker_log.wait_for(r"Refused connection from .* as 'from-afar' .*anonymous access")


def test_a_listener_may_allow_anonymous_clients_off_loopback(start_broker: StartBroker) -> None:
    broker = start_broker(ListenerConfig(host="0.0.0.0", port=0, allow_anonymous=True))
    assert connack(broker.port, "welcome").reason_code == 0


@pytest.mark.parametrize(
    ("global_setting", "listener_setting", "allowed"),
    [
        (None, None, True),  # loopback
        (False, None, False),
        (False, True, True),
        (True, False, False),
        (None, False, False),
    ],
)
def test_the_listener_setting_overrides_the_broker_setting(
    start_broker: StartBroker,
    global_setting: bool | None,
    listener_setting: bool | None,
    allowed: bool,
) -> None:
    listener = ListenerConfig(port=0, allow_anonymous=listener_setting)
    broker = start_broker(listener, allow_anonymous=global_setting)
    reason = connack(broker.port, "anon").reason_code
    assert reason == (0 if allowed else ConnectReasonCode.NOT_AUTHORIZED)


# --- connection limits ---------------------------------------------------------------------


def test_a_listener_refuses_connections_over_its_limit(
    start_broker: StartBroker, broker_log: BrokerLog
) -> None:
    broker = start_broker(ListenerConfig(port=0, max_connections=2), ListenerConfig(port=0))
    first = open_client(broker.port_of(0), MQTT_5)
    assert isinstance(first.connect("first"), Connack)
    second = open_client(broker.port_of(0), MQTT_5)
    assert isinstance(second.connect("second"), Connack)
    third = open_client(broker.port_of(0), MQTT_5)
    third.send(b"\x10\x10\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x03abc")
    # Not counted in, but its CONNECT is read and answered: 0x97 Quota exceeded.
    (refusal,) = third.expect_closed()
    assert isinstance(refusal, Connack)
    assert refusal.reason_code == ConnectReasonCode.QUOTA_EXCEEDED
    third.close()
    broker_log.wait_for(
        r"Refused connection from 127\.0\.0\.1:\d+ on listener tcp 127\.0\.0\.1:\d+: "
        r"the listener's max_connections \(2\) is reached\."
    )
    # The other listener has no limit of its own.
    assert connack(broker.port_of(1), "elsewhere").reason_code == 0
    # A place frees up when a connection ends.
    first.close()
    wait_for_broker(broker, lambda: broker.broker.listeners[0].connections == 1)
    assert connack(broker.port_of(0), "next").reason_code == 0
    assert broker.call(lambda: broker.broker.stats.refused_connections) == 1


def test_the_broker_limit_counts_every_listener(
    start_broker: StartBroker, broker_log: BrokerLog
) -> None:
    broker = start_broker(ListenerConfig(port=0), ListenerConfig(port=0), max_connections=2)
    assert connack(broker.port_of(0), "a").reason_code == 0
    assert connack(broker.port_of(1), "b").reason_code == 0
    for index in (0, 1):
        client = open_client(broker.port_of(index), MQTT_5)
        client.send(b"\x10\x10\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x03abc")
        (refusal,) = client.expect_closed()
        assert isinstance(refusal, Connack)
        assert refusal.reason_code == ConnectReasonCode.QUOTA_EXCEEDED
    broker_log.wait_for(r"Refused connection .*: the broker's max_connections \(2\) is reached\.")


def test_a_tls_listener_answers_a_refused_client_over_tls(
    pki: Pki, start_broker: StartBroker, broker_log: BrokerLog
) -> None:
    """While few are being refused, one over the limit gets its handshake, and then
    CONNACK 0x97 and close_notify."""
    broker = start_broker(tls_listener(pki, max_connections=1))
    assert tls_client(broker.port, client_context(pki)).connect("in").reason_code == 0  # type: ignore[attr-defined]
    refused = tls_client(broker.port, client_context(pki), MQTT_5)
    refused.send(b"\x10\x10\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x03abc")
    (refusal,) = refused.expect_closed()
    assert isinstance(refusal, Connack)
    assert refusal.reason_code == ConnectReasonCode.QUOTA_EXCEEDED
    broker_log.wait_for(r"Refused connection .* on listener tls .*max_connections \(1\)")


def test_a_tls_listener_refuses_before_the_handshake_in_a_flood(
    pki: Pki, start_broker: StartBroker, broker_log: BrokerLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With REFUSING_AT_MOST connections being answered already (here: none may be),
    one over the limit is closed before its TLS handshake."""
    monkeypatch.setattr(core, "REFUSING_AT_MOST", 0)
    broker = start_broker(tls_listener(pki, max_connections=1))
    assert tls_client(broker.port, client_context(pki)).connect("in").reason_code == 0  # type: ignore[attr-defined]
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_client(broker.port, client_context(pki))
    broker_log.wait_for(r"Refused connection .* on listener tls .*max_connections \(1\)")
    assert not any("TLS handshake" in line for line in broker_log.messages())


def test_a_websocket_listener_answers_a_refused_client_over_websocket(
    start_broker: StartBroker,
) -> None:
    broker = start_broker(ListenerConfig(port=0, type="ws", max_connections=1))
    WsClient(broker.port).upgrade()
    refused = WsClient(broker.port)
    refused.version = MQTT_5
    assert refused.upgrade()[0] == 101
    refused.send_mqtt(b"\x10\x10\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x03abc")
    refusal = refused.recv_mqtt()
    assert isinstance(refusal, Connack)
    assert refusal.reason_code == ConnectReasonCode.QUOTA_EXCEEDED
    assert refused.expect_close() == 1000


def test_a_websocket_listener_refuses_before_the_upgrade_in_a_flood(
    start_broker: StartBroker, broker_log: BrokerLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(core, "REFUSING_AT_MOST", 0)
    broker = start_broker(ListenerConfig(port=0, type="ws", max_connections=1))
    WsClient(broker.port).upgrade()
    refused = WsClient(broker.port)
    with pytest.raises(ConnectionError):
        refused.upgrade()
    broker_log.wait_for(r"Refused connection .* on listener ws .*max_connections \(1\)")


def test_listener_ports_and_labels(start_broker: StartBroker) -> None:
    broker: ListenersBroker = start_broker(ListenerConfig(port=0), ListenerConfig(port=0))
    listeners = broker.broker.listeners
    assert broker.port == listeners[0].port != listeners[1].port
    assert listeners[1].label == f"tcp 127.0.0.1:{listeners[1].port}"
