"""MQTT over WebSocket and secure WebSocket: MQTT.js (the browsers' client library, run
under Node) and paho's websocket transport, then the RFC 6455 details by hand."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import MQTTProtocolVersion

from roost.broker.config import ListenerConfig
from roost.codec import (
    MQTT_5,
    Connack,
    Connect,
    Disconnect,
    DisconnectReasonCode,
    Pingreq,
    Pingresp,
    Publish,
    Suback,
    Subscribe,
    Subscription,
)
from tests.transports.conftest import StartBroker
from tests.transports.helpers import BrokerLog, Paho, WsClient, client_context, frame
from tests.transports.pki import Pki

JS_DIR = Path(__file__).resolve().parents[1] / "interop" / "js"


def run_mqtt_js(url: str, *args: str) -> dict[str, object]:
    """Run the MQTT.js round trip (tests/interop/js/roundtrip.mjs); its JSON report."""
    if not (JS_DIR / "node_modules" / "mqtt").is_dir():
        pytest.fail("MQTT.js is not installed: run `make deps-node`")
    result = subprocess.run(
        ["node", str(JS_DIR / "roundtrip.mjs"), url, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=JS_DIR,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


def ws_listener(**settings: Any) -> ListenerConfig:
    return ListenerConfig(port=0, type="ws", **settings)


def wss_listener(pki: Pki, **settings: Any) -> ListenerConfig:
    files = {"certfile": str(pki.certfile), "keyfile": str(pki.keyfile)}
    return ListenerConfig(port=0, type="wss", **{**files, **settings})


def connected(client: WsClient, client_id: str = "ws", version: int = MQTT_5) -> None:
    client.version = version
    assert client.upgrade()[0] == 101
    client.send_mqtt(Connect(client_id, version))
    connack = client.recv_mqtt()
    assert isinstance(connack, Connack)
    assert connack.reason_code == 0


# --- real clients -----------------------------------------------------------------------


@pytest.mark.parametrize("version", ["5", "4", "3"])
def test_mqtt_js_over_websocket(
    start_broker: StartBroker, broker_log: BrokerLog, version: str
) -> None:
    broker = start_broker(ListenerConfig(port=0), ws_listener())
    watcher = Paho(broker.port_of(0), "tcp-watcher")
    watcher.subscribe("js/#")
    url = f"ws://127.0.0.1:{broker.port_of(1)}/mqtt"
    report = run_mqtt_js(url, "--version", version, "--topic", "js/ws", "--count", "4")
    assert report["granted"] == [1]
    received = report["received"]
    assert isinstance(received, list)
    assert [m["head"] for m in received] == [
        "message 0",
        "message 1 xx",
        "message 2",
        "message 3 xx",
    ]
    assert [m["size"] for m in received] == [9, 70010, 9, 70010]
    # MQTT 3.1 clients offer "mqttv3.1", the others "mqtt"; each gets what it offered.
    subprotocol = "mqttv3.1" if version == "3" else "mqtt"
    broker_log.wait_for(rf"WebSocket connection from .* \(sub-protocol {subprotocol}\)")
    # The same messages reached a plain TCP client: one broker behind both transports.
    assert [watcher.next_message().payload[:9] for _ in range(4)] == [
        f"message {i}".encode() for i in range(4)
    ]


def test_mqtt_js_over_secure_websocket(pki: Pki, start_broker: StartBroker) -> None:
    broker = start_broker(wss_listener(pki))
    url = f"wss://localhost:{broker.port}/mqtt"
    report = run_mqtt_js(url, "--ca", str(pki.cafile), "--topic", "js/wss", "--count", "2")
    assert report["received"] == [
        {"topic": "js/wss", "size": 9, "head": "message 0"},
        {"topic": "js/wss", "size": 70010, "head": "message 1 xx"},
    ]


def test_mqtt_js_on_a_custom_path(start_broker: StartBroker) -> None:
    broker = start_broker(ws_listener(path="/custom/ws"))
    report = run_mqtt_js(f"ws://127.0.0.1:{broker.port}/custom/ws", "--count", "1")
    assert report["granted"] == [1]


@pytest.mark.parametrize("version", [paho.MQTTv311, paho.MQTTv5])
def test_paho_websocket_transport(start_broker: StartBroker, version: MQTTProtocolVersion) -> None:
    broker = start_broker(ws_listener())
    client = Paho(broker.port, "paho-ws", transport="websockets", version=version)
    client.subscribe("paho/ws")
    client.publish("paho/ws", b"x" * 200_000)  # several frames' worth
    assert client.next_message().payload == b"x" * 200_000


def test_paho_secure_websocket_transport(pki: Pki, start_broker: StartBroker) -> None:
    broker = start_broker(wss_listener(pki), ListenerConfig(port=0))
    client = Paho(broker.port_of(0), "paho-wss", transport="websockets", tls=client_context(pki))
    client.subscribe("paho/wss")
    plain = Paho(broker.port_of(1), "plain")
    plain.publish("paho/wss", b"to the browser side")
    assert client.next_message().payload == b"to the browser side"


def test_a_client_certificate_names_a_secure_websocket_client(
    pki: Pki, start_broker: StartBroker, broker_log: BrokerLog
) -> None:
    carol = pki.client("carol")
    listener = wss_listener(
        pki, cafile=str(pki.cafile), require_certificate=True, use_identity_as_username="cn"
    )
    broker = start_broker(listener, allow_anonymous=False)
    context = client_context(pki, cert=carol)
    client = Paho(broker.port, "carol-ws", transport="websockets", tls=context)
    assert client.reason == 0
    broker_log.wait_for(r"New client connected from .* as carol-ws .*u'carol'")


# --- the opening handshake ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [(["mqtt"], "mqtt"), (["chat", "mqtt"], "mqtt"), (["mqttv3.1"], "mqttv3.1"), ([], None)],
)
def test_the_sub_protocol_chosen(
    start_broker: StartBroker, offered: list[str], chosen: str | None
) -> None:
    """The server returns "mqtt" when offered [MQTT-6.0.0-4]; "mqttv3.1" only to MQTT 3.1
    clients that offer nothing else."""
    broker = start_broker(ws_listener())
    status, headers = WsClient(broker.port).upgrade(protocols=offered)
    assert status == 101
    assert headers.get("sec-websocket-protocol") == chosen


@pytest.mark.parametrize(
    ("kwargs", "status", "why"),
    [
        ({"path": "/elsewhere"}, 404, "path '/elsewhere' \\(this listener serves '/mqtt'\\)"),
        ({"protocols": ["chat"]}, 400, r"sub-protocols \['chat'\]"),
        ({"headers": {"Upgrade": ""}}, 426, "not a WebSocket upgrade request"),
        ({"headers": {"Connection": "keep-alive"}}, 426, "not a WebSocket upgrade request"),
        ({"headers": {"Sec-WebSocket-Version": "8"}}, 426, "WebSocket version '8'"),
        (
            {"headers": {"Sec-WebSocket-Key": "c2hvcnQ="}},
            400,
            "missing or invalid Sec-WebSocket-Key",
        ),
        ({"request_line": "POST /mqtt HTTP/1.1"}, 405, "method POST"),
        ({"request_line": "GET /mqtt HTTP/1.0"}, 400, "HTTP/1.0"),
    ],
)
def test_upgrade_requests_that_are_refused(
    start_broker: StartBroker,
    broker_log: BrokerLog,
    kwargs: dict[str, object],
    status: int,
    why: str,
) -> None:
    broker = start_broker(ws_listener())
    client = WsClient(broker.port)
    got, headers = client.upgrade(**kwargs)  # type: ignore[arg-type]
    assert got == status
    assert headers["connection"] == "close"
    body = client.expect_http_close()
    assert len(body) == int(headers["content-length"])
    broker_log.wait_for(
        rf"WebSocket handshake from 127\.0\.0\.1:\d+ on listener ws 127\.0\.0\.1:\d+ "
        rf"refused: {why}.* \(HTTP {status}\)"
    )


def test_a_wrong_version_is_answered_with_the_version_we_speak(start_broker: StartBroker) -> None:
    broker = start_broker(ws_listener())
    _status, headers = WsClient(broker.port).upgrade(headers={"Sec-WebSocket-Version": "7"})
    assert headers["sec-websocket-version"] == "13"


def test_an_upgrade_that_never_comes_is_closed_at_the_connect_timeout(
    start_broker: StartBroker, broker_log: BrokerLog
) -> None:
    broker = start_broker(ws_listener(), connect_timeout=0.2)
    client = WsClient(broker.port)
    client.sock.sendall(b"GET /mqtt HTTP/1.1\r\n")  # and nothing more
    assert client.sock.recv(100) == b""
    broker_log.wait_for(r"Client at 127\.0\.0\.1:\d+ sent no CONNECT in time")


# --- framing -------------------------------------------------------------------------------


def test_packets_split_across_fragments_with_a_ping_between(start_broker: StartBroker) -> None:
    """A packet may span frames [MQTT-6.0.0-2]; control frames may come between them."""
    broker = start_broker(ws_listener())
    client = WsClient(broker.port)
    client.version = MQTT_5
    assert client.upgrade()[0] == 101
    data = Connect("fragmented", MQTT_5).encode(MQTT_5)
    client.send_frame(0x2, data[:3], fin=False)
    client.send_frame(0x9, b"are you there")
    assert client.recv_frame() == (True, 0xA, b"are you there")
    client.send_frame(0x0, data[3:7], fin=False)
    client.send_frame(0x0, data[7:], fin=True)
    assert isinstance(client.recv_mqtt(), Connack)


def test_several_packets_in_one_frame(start_broker: StartBroker) -> None:
    """A frame may hold several packets [MQTT-6.0.0-2]."""
    broker = start_broker(ws_listener())
    client = WsClient(broker.port)
    client.version = MQTT_5
    assert client.upgrade()[0] == 101
    packets = [
        Connect("bundled", MQTT_5),
        Subscribe(1, (Subscription("bundle", 0),)),
        Publish("bundle", b"to myself"),
        Pingreq(),
    ]
    client.send_frame(0x2, b"".join(p.encode(MQTT_5) for p in packets))
    answers = [client.recv_mqtt() for _ in range(4)]
    assert [type(p) for p in answers] == [Connack, Suback, Publish, Pingresp]


def test_the_handshake_and_a_packet_in_one_segment(start_broker: StartBroker) -> None:
    broker = start_broker(ws_listener())
    client = WsClient(broker.port)
    client.version = MQTT_5
    # A client may send its first frame right behind the request, before the 101.
    eager = frame(0x2, Connect("eager", MQTT_5).encode(MQTT_5))
    assert client.upgrade(trailing=eager)[0] == 101
    assert isinstance(client.recv_mqtt(), Connack)


@pytest.mark.parametrize(
    ("frame", "code", "why"),
    [
        ({"opcode": 0x2, "masked": False}, 1002, "unmasked frame from a client"),
        ({"opcode": 0x1}, 1003, r"text frame \(MQTT travels in binary frames\)"),
        ({"opcode": 0x2, "rsv": 4}, 1002, "reserved bits set"),
        ({"opcode": 0x0}, 1002, "continuation frame outside a message"),
        ({"opcode": 0x3}, 1002, "unknown opcode 0x3"),
        ({"opcode": 0x9, "fin": False}, 1002, "fragmented control frame"),
    ],
)
def test_frames_that_break_the_rules_close_the_connection(
    start_broker: StartBroker,
    broker_log: BrokerLog,
    frame: dict[str, object],
    code: int,
    why: str,
) -> None:
    """A text frame closes the connection [MQTT-6.0.0-1], as do RFC 6455 violations."""
    broker = start_broker(ws_listener())
    client = WsClient(broker.port)
    assert client.upgrade()[0] == 101
    opcode = frame.pop("opcode")
    client.send_frame(opcode, b"\x10", **frame)  # type: ignore[arg-type]
    assert client.expect_close() == code
    broker_log.wait_for(rf"WebSocket client 127\.0\.0\.1:\d+ on listener ws .*: {why}.*; closing")


def test_a_frame_over_the_packet_size_limit_is_refused(
    start_broker: StartBroker, broker_log: BrokerLog
) -> None:
    broker = start_broker(ws_listener(), max_packet_size=1024)
    client = WsClient(broker.port)
    assert client.upgrade()[0] == 101
    client.send_frame(0x2, b"\x30" * 1025)
    assert client.expect_close() == 1009
    broker_log.wait_for(r"frame of 1025 bytes, over the limit of 1024")


def test_a_close_from_the_client_is_answered(
    start_broker: StartBroker, broker_log: BrokerLog
) -> None:
    broker = start_broker(ws_listener())
    client = WsClient(broker.port)
    connected(client, "leaving")
    client.send_frame(0x8, (1001).to_bytes(2, "big") + b"bye")
    assert client.expect_close() == 1001
    broker_log.wait_for(r"Client leaving closed its connection")


def test_the_broker_closes_with_a_disconnect_then_a_close_frame(
    start_broker: StartBroker,
) -> None:
    broker = start_broker(ws_listener())
    first = WsClient(broker.port)
    connected(first, "twin")
    second = WsClient(broker.port)
    connected(second, "twin")
    disconnect = first.recv_mqtt()
    assert isinstance(disconnect, Disconnect)
    assert disconnect.reason_code == DisconnectReasonCode.SESSION_TAKEN_OVER
    assert first.expect_close() == 1000
