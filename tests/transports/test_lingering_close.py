"""The lingering close through the broker's own layers: over TLS the write side ends
with close_notify, over WebSocket with the close frame; what the client still sends
after is read (and thrown away), and the client's own close_notify or close frame ends
the connection without waiting for the linger's bounds."""

from __future__ import annotations

import ssl

import pytest

from roost.broker import connection as broker_connection
from roost.broker.config import ListenerConfig
from roost.codec import MQTT_5, Connack, Connect, Disconnect, Pingreq, Publish, Pubrec
from tests.support.broker_thread import BrokerThread
from tests.support.raw import TIMEOUT
from tests.support.waiting import wait_until
from tests.transports.conftest import StartBroker
from tests.transports.helpers import WsClient, client_context, tls_client, tls_listener
from tests.transports.pki import Pki

# No time bound in these tests: only the client's close can end the connection.
FOREVER = 600.0


@pytest.fixture(autouse=True)
def _no_time_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker_connection, "LINGER_TIME", FOREVER)
    monkeypatch.setattr(broker_connection, "CLOSE_TIMEOUT", FOREVER)


def open_connections(broker: BrokerThread) -> int:
    return broker.call(lambda: len(broker.broker.connections))


def over_receive_maximum() -> bytes:
    """Three QoS 2 PUBLISHes (the broker allows 2 unreleased), then PINGREQs."""
    publishes = (Publish("t", b"x", 2, packet_id=pid).encode(MQTT_5) for pid in (1, 2, 3))
    return b"".join(publishes) + Pingreq().encode(MQTT_5) * 1000


@pytest.mark.parametrize("tls_version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_over_tls_the_disconnect_is_followed_by_close_notify(
    start_broker: StartBroker, pki: Pki, tls_version: ssl.TLSVersion
) -> None:
    broker = start_broker(tls_listener(pki), receive_maximum=2)
    client = tls_client(broker.port, client_context(pki, maximum_version=tls_version), MQTT_5)
    assert isinstance(client.connect("tls-eager"), Connack)
    client.send(over_receive_maximum())
    assert client.recv() == Pubrec(1, 0x10)
    assert client.recv() == Pubrec(2, 0x10)
    disconnect = client.recv()
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == 0x93
    # Still writing after the broker's close_notify: read and thrown away.
    client.send(Pingreq().encode(MQTT_5) * 1000)
    client.sock.settimeout(TIMEOUT)
    assert client.sock.recv(1) == b""  # the close_notify: an orderly end of the stream
    assert open_connections(broker) == 1  # lingering: waiting for the client to close
    assert isinstance(client.sock, ssl.SSLSocket)
    client.sock.unwrap()  # our close_notify ends it, with no time bound to wait for
    wait_until(lambda: open_connections(broker) == 0)


def test_over_websocket_the_disconnect_is_followed_by_the_close_frame(
    start_broker: StartBroker,
) -> None:
    broker = start_broker(ListenerConfig(port=0, type="ws"), receive_maximum=2)
    client = WsClient(broker.port)
    client.version = MQTT_5
    assert client.upgrade()[0] == 101
    client.send_mqtt(Connect("ws-eager", MQTT_5))
    assert isinstance(client.recv_mqtt(), Connack)
    client.send_mqtt(over_receive_maximum())
    assert client.recv_mqtt() == Pubrec(1, 0x10)
    assert client.recv_mqtt() == Pubrec(2, 0x10)
    disconnect = client.recv_mqtt()
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == 0x93
    _fin, opcode, payload = client.recv_frame()
    assert (opcode, payload) == (0x8, (1000).to_bytes(2, "big"))
    # Frames after the broker's close frame are read and thrown away...
    for _ in range(10):
        client.send_mqtt(Pingreq())
    assert open_connections(broker) == 1
    # ... until the client answers with its own close frame, which ends the connection.
    client.send_frame(0x8, (1000).to_bytes(2, "big"))
    wait_until(lambda: open_connections(broker) == 0)
    assert client.sock.recv(1) == b""
