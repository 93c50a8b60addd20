"""Helpers for the publish/subscribe, QoS and flow-control tests.

No test sleeps to wait for the broker; two ordering facts stand in for waiting:

* ``sync``: the broker handles a connection's packets in order, so the PINGRESP to a
  PINGREQ comes after everything the broker sent in response to earlier packets.
* ``settle``: a publisher's ``sync`` returns once the broker has routed its messages
  (routing is synchronous), so the subscriber's copies are already on their way; the
  subscriber's own ``sync`` then shows exactly what it got, and an absence is proven
  without a timed wait.
"""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

from roost.codec import (
    MQTT_3_1,
    MQTT_3_1_1,
    MQTT_5,
    Connack,
    Packet,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Subscription,
    read_packet,
)
from tests.support.broker_thread import BrokerThread
from tests.support.raw import RawClient

TIMEOUT = 5.0
MOSQUITTO_VERSIONS = {MQTT_3_1: "mqttv31", MQTT_3_1_1: "mqttv311", MQTT_5: "mqttv5"}
PAHO_VERSIONS = {MQTT_3_1: paho.MQTTv31, MQTT_3_1_1: paho.MQTTv311, MQTT_5: paho.MQTTv5}


# Raw clients. Every one is registered so that a test's clients can be closed at its end
# (``close_all``, from an autouse fixture) whether it passed or not.

_opened: list[RawClient] = []


def open_client(port: int, version: int) -> RawClient:
    client = RawClient(port, version)
    _opened.append(client)
    return client


def close_all() -> None:
    while _opened:
        _opened.pop().close()


def connect(port: int, version: int, client_id: str, **fields: object) -> RawClient:
    """A RawClient whose CONNECT (with ``fields``) was accepted.

    ``present=True`` among the fields expects Session Present in the CONNACK (default: not).
    """
    present = fields.pop("present", False)
    client = open_client(port, version)
    connack = client.connect(client_id, **fields)
    assert isinstance(connack, Connack), connack
    assert connack.reason_code == 0, connack
    assert connack.session_present is present, connack
    return client


def sync(client: RawClient) -> list[Packet]:
    """Round-trip a PINGREQ; return the packets the broker sent before the PINGRESP."""
    client.send(Pingreq())
    packets: list[Packet] = []
    while True:
        packet = client.recv()
        if isinstance(packet, Pingresp):
            return packets
        packets.append(packet)


def drain(client: RawClient) -> list[Packet]:
    """Like ``sync``, answering PUBRELs of finished QoS 2 deliveries on the way."""
    packets = []
    for packet in sync(client):
        if isinstance(packet, Pubrel):
            client.send(Pubcomp(packet.packet_id))
        else:
            packets.append(packet)
    return packets


def settle(publisher: RawClient, *subscribers: RawClient) -> list[list[Packet]]:
    """After the publisher's messages are routed: what each subscriber got meanwhile."""
    assert sync(publisher) == []
    return [sync(subscriber) for subscriber in subscribers]


def subscribe(
    client: RawClient,
    *subscriptions: Subscription,
    packet_id: int = 1,
    identifier: int | None = None,
    granted: Iterable[int] | None = None,
) -> None:
    """SUBSCRIBE and check the SUBACK (by default: each requested QoS granted)."""
    client.send(Subscribe(packet_id, subscriptions, subscription_identifier=identifier))
    codes = tuple(sub.qos for sub in subscriptions) if granted is None else tuple(granted)
    assert client.recv() == Suback(packet_id, codes)


def publish(client: RawClient, message: Publish) -> None:
    """Publish and complete the exchange; on return the broker has routed the message."""
    client.send(message)
    if message.qos == 0:
        assert sync(client) == []
    elif message.qos == 1:
        ack = client.recv()
        assert isinstance(ack, Puback), ack
        assert ack.packet_id == message.packet_id, ack
    else:
        rec = client.recv()
        assert isinstance(rec, Pubrec), rec
        assert rec.packet_id == message.packet_id, rec
        client.send(Pubrel(message.packet_id))
        assert client.recv() == Pubcomp(message.packet_id)


def recv_publish(client: RawClient, timeout: float = TIMEOUT) -> Publish:
    packet = client.recv(timeout)
    assert isinstance(packet, Publish), packet
    return packet


def acknowledge(client: RawClient, message: Publish) -> None:
    """Complete the receiving side of a QoS 1 or QoS 2 delivery."""
    if message.qos == 1:
        client.send(Puback(message.packet_id))
    elif message.qos == 2:
        client.send(Pubrec(message.packet_id))
        assert client.recv() == Pubrel(message.packet_id)
        client.send(Pubcomp(message.packet_id))


def receive_all(client: RawClient, count: int) -> list[Publish]:
    """Receive ``count`` PUBLISHes, acknowledging each as a well-behaved client would.

    PUBRELs for earlier QoS 2 deliveries may arrive between the PUBLISHes; each is
    answered with its PUBCOMP.
    """
    received: list[Publish] = []
    while len(received) < count:
        packet = client.recv()
        if isinstance(packet, Pubrel):
            client.send(Pubcomp(packet.packet_id))
            continue
        assert isinstance(packet, Publish), packet
        received.append(packet)
        if packet.qos == 1:
            client.send(Puback(packet.packet_id))
        elif packet.qos == 2:
            client.send(Pubrec(packet.packet_id))
    return received


def packets_until_closed(client: RawClient) -> list[tuple[Packet, int]]:
    """Every packet the broker sends before closing the connection, with its size."""
    data = client.buffer
    client.sock.settimeout(TIMEOUT)
    while True:
        try:
            chunk = client.sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    packets: list[tuple[Packet, int]] = []
    while data:
        result = read_packet(data, client.version)
        assert result is not None, f"a truncated packet before the close: {data!r}"
        packet, used = result
        packets.append((packet, used))
        data = data[used:]
    return packets


# Broker state.


def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Poll ``predicate`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout} s")
        time.sleep(0.02)


def wait_offline(broker: BrokerThread, client_id: str) -> None:
    """Until the broker has handled the loss of ``client_id``'s connection."""

    def offline() -> bool:
        session = broker.broker.sessions.get(client_id)
        return session is None or session.connection is None

    wait_until(lambda: broker.call(offline))


def wait_subscribed(broker: BrokerThread, client_id: str, topic_filter: str) -> None:
    """Until ``client_id``'s session holds the subscription (for external clients)."""

    def subscribed() -> bool:
        session = broker.broker.sessions.get(client_id)
        return session is not None and topic_filter in session.subscriptions

    wait_until(lambda: broker.call(subscribed))


# mosquitto_pub and mosquitto_sub.


def mosquitto_pub(port: int, *args: str, stdin: str | None = None) -> None:
    subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), *args],
        input=stdin,
        check=True,
        capture_output=True,
        text=True,
        timeout=20,
    )


def start_mosquitto_sub(port: int, *args: str, wait: int = 10) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-W", str(wait), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> list[str]:
    """The output lines of a mosquitto_sub that ends by itself (-C count reached)."""
    try:
        stdout, stderr = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    assert process.returncode == 0, stderr
    return stdout.splitlines()


# paho-mqtt.


class PahoClient:
    """A paho-mqtt client on its own network thread, reporting through a queue and events."""

    def __init__(self, port: int, client_id: str, version: int = MQTT_5) -> None:
        protocol = PAHO_VERSIONS[version]
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
        )
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self._connected = threading.Event()
        self._subacks: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._connected.wait(TIMEOUT), "paho did not connect"

    def _on_connect(self, *args: Any) -> None:
        self._connected.set()

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        self.messages.put(message)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, *args: Any) -> None:
        self._suback(mid).set()

    def _suback(self, mid: int) -> threading.Event:
        with self._lock:
            return self._subacks.setdefault(mid, threading.Event())

    def subscribe(self, topic: str, qos: int) -> None:
        """Subscribe and wait for the SUBACK."""
        if self.client.protocol == paho.MQTTv5:
            result, mid = self.client.subscribe(topic, options=SubscribeOptions(qos))
        else:
            result, mid = self.client.subscribe(topic, qos)
        assert result == paho.MQTT_ERR_SUCCESS
        assert mid is not None
        assert self._suback(mid).wait(TIMEOUT), "no SUBACK"

    def publish_all(self, topic: str, payloads: list[bytes], qos: int) -> None:
        """Publish every payload, then wait until each has been acknowledged."""
        infos = [self.client.publish(topic, payload, qos) for payload in payloads]
        for info in infos:
            info.wait_for_publish(TIMEOUT)
            assert info.is_published()

    def take(self, count: int, timeout: float = TIMEOUT) -> list[paho.MQTTMessage]:
        return [self.messages.get(timeout=timeout) for _ in range(count)]

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
