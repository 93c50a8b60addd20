"""Helpers for the CONNECT, session and keep-alive tests: raw CONNECT bytes, bounded
polling of broker state, a paho-mqtt client that reports through events, and the
mosquitto command-line clients."""

from __future__ import annotations

import dataclasses
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from roost.codec import MQTT_3_1, MQTT_3_1_1, MQTT_5, Packet, Suback, Subscribe, Subscription
from tests.support.broker_thread import BrokerThread
from tests.support.raw import RawClient

P = TypeVar("P", bound=Packet)

TIMEOUT = 5.0
# The protocol level each mosquitto client option and paho constant stands for.
MOSQUITTO_VERSIONS = {MQTT_3_1: "mqttv31", MQTT_3_1_1: "mqttv311", MQTT_5: "mqttv5"}
PAHO_VERSIONS = {MQTT_3_1: paho.MQTTv31, MQTT_3_1_1: paho.MQTTv311, MQTT_5: paho.MQTTv5}


RawFactory = Callable[..., RawClient]


def raw_clients() -> Iterator[RawFactory]:
    """Body of a fixture: open RawClients with ``factory(port, version)``; all are closed
    afterwards, whatever the test did with them."""
    opened: list[RawClient] = []

    def factory(port: int, version: int = MQTT_3_1_1) -> RawClient:
        client = RawClient(port, version)
        opened.append(client)
        return client

    yield factory
    for client in opened:
        client.close()


def raw_connect(
    client_id: bytes = b"raw",
    *,
    name: bytes = b"MQTT",
    level: int = MQTT_3_1_1,
    flags: int = 0x02,
    keep_alive: int = 60,
    properties: bytes = b"\x00",
) -> bytes:
    """A CONNECT built by hand, so that tests can send what our encoder would refuse."""
    body = b"".join(
        (
            len(name).to_bytes(2, "big"),
            name,
            bytes((level, flags)),
            keep_alive.to_bytes(2, "big"),
            properties if level == MQTT_5 else b"",
            len(client_id).to_bytes(2, "big"),
            client_id,
        )
    )
    assert len(body) < 128  # one-byte remaining length keeps this helper simple
    return bytes((0x10, len(body))) + body


def without_reason_string(packet: P) -> P:
    """The packet with its Reason String removed: its text is the server's choice."""
    return dataclasses.replace(packet, reason_string=None)  # type: ignore[type-var]


def subscribe(client: RawClient, topic_filter: str, qos: int = 1, packet_id: int = 1) -> None:
    client.send(Subscribe(packet_id, (Subscription(topic_filter, qos),)))
    assert client.recv() == Suback(packet_id, (qos,))


def wait_for(
    broker: BrokerThread,
    probe: Callable[[], object],
    timeout: float = TIMEOUT,
) -> None:
    """Poll ``probe`` on the broker's loop until it is truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not broker.call(probe):
        if time.monotonic() > deadline:
            raise AssertionError(f"broker state not reached within {timeout} s")
        time.sleep(0.05)


def has_session(broker: BrokerThread, client_id: str) -> bool:
    return broker.call(lambda: client_id in broker.broker.sessions)


def run_client(args: list[str], timeout: float = 15) -> subprocess.CompletedProcess[str]:
    """Run mosquitto_pub or mosquitto_sub; a non-zero exit fails the test with its output."""
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, (args, result.returncode, result.stdout, result.stderr)
    return result


class PahoClient:
    """paho-mqtt on its network thread; callbacks feed events and queues the test waits on."""

    def __init__(
        self,
        port: int,
        client_id: str,
        version: int = MQTT_3_1_1,
        *,
        clean: bool = True,
        keepalive: int = 60,
        session_expiry: int | None = None,
        will: tuple[str, bytes] | None = None,
    ) -> None:
        self.port = port
        self.version = version
        self.clean = clean
        self.keepalive = keepalive
        self.session_expiry = session_expiry
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.subscribed = threading.Event()
        self.session_present: bool | None = None
        self.connect_reason: Any = None
        self.connack_properties: Any = None
        self.disconnect_reason: Any = None
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=PAHO_VERSIONS[version],
            # MQTT 5 takes Clean Start at connect(); paho refuses clean_session then.
            clean_session=None if version == MQTT_5 else clean,
            reconnect_on_failure=False,
        )
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(
        self, client: paho.Client, userdata: object, flags: Any, reason: Any, props: Any
    ) -> None:
        self.session_present = bool(flags.session_present)
        self.connect_reason = reason
        self.connack_properties = props
        self.connected.set()

    def _on_disconnect(
        self, client: paho.Client, userdata: object, flags: Any, reason: Any, props: Any
    ) -> None:
        self.disconnect_reason = reason
        self.disconnected.set()

    def _on_subscribe(
        self, client: paho.Client, userdata: object, mid: int, reasons: Any, props: Any
    ) -> None:
        self.subscribed.set()

    def _on_message(self, client: paho.Client, userdata: object, message: Any) -> None:
        self.messages.put(message)

    def connect(self) -> PahoClient:
        properties = None
        clean_start: Any = paho.MQTT_CLEAN_START_FIRST_ONLY
        if self.version == MQTT_5:
            clean_start = self.clean
            if self.session_expiry is not None:
                properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                properties.SessionExpiryInterval = self.session_expiry
        self.client.connect(
            "127.0.0.1",
            self.port,
            keepalive=self.keepalive,
            clean_start=clean_start,
            properties=properties,
        )
        self.client.loop_start()
        assert self.connected.wait(TIMEOUT), "paho got no CONNACK"
        return self

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        self.subscribed.clear()
        self.client.subscribe(topic_filter, qos)
        assert self.subscribed.wait(TIMEOUT), "paho got no SUBACK"

    def next_message(self, timeout: float = TIMEOUT) -> paho.MQTTMessage:
        return self.messages.get(timeout=timeout)

    def disconnect(self) -> None:
        self.client.disconnect()
        assert self.disconnected.wait(TIMEOUT)
        self.client.loop_stop()

    def stop(self) -> None:
        """Stop the network thread whatever state the connection is in."""
        self.client.loop_stop()
