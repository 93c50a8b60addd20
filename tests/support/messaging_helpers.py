"""Helpers for the message-flow tests: retained messages, wills, topic aliases, shared
subscriptions and request/response.

Ordering tricks used throughout, so that no test sleeps to wait for the broker:

* ``sync``: a PINGREQ is answered only after every packet sent before it on the same
  connection has been handled, so "send X, then sync" means X has taken effect, and
  the packets returned are exactly those the broker sent in response to X.
* ``wait_until``: poll broker state (through ``BrokerThread.call``) until a condition
  holds, e.g. that a dropped connection's session has ended.
* ``wait_for_clock``: expiry and delays are measured on the broker's clock; wait for
  that clock to pass a point instead of sleeping a guessed amount.
"""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from roost.broker.sessions import Session
from roost.codec import (
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
)
from tests.support.broker_thread import BrokerThread
from tests.support.raw import RawClient

TIMEOUT = 5.0
# The broker's sweep runs every 0.5 s; two of them are sure to have run after a deadline.
SWEEP_MARGIN = 1.0


# Everything a test opens is closed after it, passed or failed: an unclosed socket is a
# ResourceWarning, which the test configuration turns into an error.
_opened: list[RawClient | PahoClient | subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def close_clients() -> Iterator[None]:
    """Autouse in the modules that import it: closes what the helpers opened."""
    yield
    while _opened:
        item = _opened.pop()
        if isinstance(item, RawClient):
            item.close()
        elif isinstance(item, PahoClient):
            item.stop()
        elif item.poll() is None:
            item.kill()
            item.communicate()


# Raw clients.


def connect(port: int, version: int, client_id: str, **fields: object) -> RawClient:
    """A RawClient whose CONNECT was accepted."""
    client = RawClient(port, version)
    _opened.append(client)
    connack = client.connect(client_id, **fields)
    assert isinstance(connack, Connack), connack
    assert connack.reason_code == 0, connack
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


def subscribe(
    client: RawClient,
    *subscriptions: Subscription,
    packet_id: int = 1,
    identifier: int | None = None,
) -> list[Publish]:
    """SUBSCRIBE and return the PUBLISHes that followed the SUBACK (retained messages).

    The SUBACK must grant each subscription its requested QoS.
    """
    client.send(Subscribe(packet_id, subscriptions, subscription_identifier=identifier))
    packets = sync(client)
    assert packets, "no SUBACK"
    assert packets[0] == Suback(packet_id, tuple(sub.qos for sub in subscriptions)), packets[0]
    retained = [p for p in packets[1:] if isinstance(p, Publish)]
    assert len(retained) == len(packets) - 1, packets
    return retained


def publish(client: RawClient, message: Publish) -> None:
    """Publish and complete the QoS exchange, so the message has been routed on return."""
    client.send(message)
    if message.qos == 0:
        assert sync(client) == []
    elif message.qos == 1:
        ack = client.recv()
        assert isinstance(ack, Puback), ack
        assert ack.packet_id == message.packet_id
        assert ack.reason_code < 0x80, ack
    else:
        rec = client.recv()
        assert isinstance(rec, Pubrec), rec
        assert rec.packet_id == message.packet_id
        assert rec.reason_code < 0x80, rec
        client.send(Pubrel(message.packet_id))
        assert client.recv() == Pubcomp(message.packet_id)


def recv_publish(client: RawClient, timeout: float = TIMEOUT) -> Publish:
    packet = client.recv(timeout)
    assert isinstance(packet, Publish), packet
    return packet


def acknowledge(client: RawClient, message: Publish) -> None:
    """Complete the subscriber's side of a QoS 1 or 2 delivery."""
    if message.qos == 1:
        client.send(Puback(message.packet_id))
    elif message.qos == 2:
        client.send(Pubrec(message.packet_id))
        assert client.recv() == Pubrel(message.packet_id)
        client.send(Pubcomp(message.packet_id))


def drop(client: RawClient) -> None:
    """Close the socket without DISCONNECT: an abnormal close for the broker."""
    client.close()


# Broker state and its clock.


def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached in time")
        time.sleep(0.02)


def session_of(broker: BrokerThread, client_id: str) -> Session | None:
    return broker.call(lambda: broker.broker.sessions.get(client_id))


def wait_offline(broker: BrokerThread, client_id: str) -> None:
    """Until the broker has handled the loss of ``client_id``'s connection."""

    def offline() -> bool:
        session = broker.broker.sessions.get(client_id)
        return session is None or session.connection is None

    wait_until(lambda: broker.call(offline))


def wait_session_gone(broker: BrokerThread, client_id: str) -> None:
    wait_until(lambda: broker.call(lambda: client_id not in broker.broker.sessions))


def broker_now(broker: BrokerThread) -> float:
    return broker.call(broker.broker.now)


def wait_for_clock(broker: BrokerThread, when: float, timeout: float = 10.0) -> None:
    """Until the broker's clock reads at least ``when``."""
    wait_until(lambda: broker_now(broker) >= when, timeout)


# mosquitto_pub and mosquitto_sub.


def mosquitto_pub(port: int, *args: str, input_text: str | None = None) -> None:
    """Run mosquitto_pub to completion (``input_text`` feeds -l or -s)."""
    subprocess.run(
        ["mosquitto_pub", "-p", str(port), "-h", "127.0.0.1", *args],
        check=True,
        capture_output=True,
        text=True,
        input=input_text,
        timeout=10,
    )


def start_mosquitto_sub(port: int, *args: str, wait: int = 10) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        ["mosquitto_sub", "-p", str(port), "-h", "127.0.0.1", "-W", str(wait), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _opened.append(process)
    return process


def finish(process: subprocess.Popen[str]) -> list[str]:
    """The output lines of a mosquitto_sub run to its end (-C count or -W timeout)."""
    stdout, stderr = process.communicate(timeout=20)
    # 27 is mosquitto_sub's exit status when -W ran out: fine when we expect nothing.
    assert process.returncode in (0, 27), stderr
    return stdout.splitlines()


# paho-mqtt.


class PahoClient:
    """A paho-mqtt client on its own network thread, with blocking helpers."""

    def __init__(
        self,
        port: int,
        client_id: str,
        protocol: MQTTProtocolVersion = paho.MQTTv5,
        *,
        will: tuple[str, bytes, int, bool, Properties | None] | None = None,
        clean_start: bool = True,
    ) -> None:
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
        )
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self._stopped = False
        self._connected = threading.Event()
        self._acks: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        if will is not None:
            topic, payload, qos, retain, properties = will
            self.client.will_set(topic, payload, qos, retain, properties)
        if protocol == paho.MQTTv5:
            self.client.connect("127.0.0.1", port, clean_start=clean_start)
        else:
            self.client.connect("127.0.0.1", port)
        _opened.append(self)
        self.client.loop_start()
        assert self._connected.wait(TIMEOUT), "paho did not connect"

    def _on_connect(self, *args: Any) -> None:
        self._connected.set()

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        self.messages.put(message)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, *args: Any) -> None:
        self._event(mid).set()

    def _event(self, mid: int) -> threading.Event:
        with self._lock:
            return self._acks.setdefault(mid, threading.Event())

    def subscribe(self, topic: str, qos: int = 0, **options: Any) -> None:
        """Subscribe and wait for the SUBACK."""
        if self.client.protocol == paho.MQTTv5:
            result, mid = self.client.subscribe(topic, options=SubscribeOptions(qos, **options))
        else:
            result, mid = self.client.subscribe(topic, qos)
        assert result == paho.MQTT_ERR_SUCCESS
        assert mid is not None
        assert self._event(mid).wait(TIMEOUT), "no SUBACK"

    def publish(
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False, **props: Any
    ) -> None:
        """Publish and wait until paho has sent it (and, at QoS > 0, had it acknowledged)."""
        properties = None
        if props:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            for name, value in props.items():
                setattr(properties, name, value)
        info = self.client.publish(topic, payload, qos, retain, properties)
        info.wait_for_publish(TIMEOUT)

    def next_message(self, timeout: float = TIMEOUT) -> paho.MQTTMessage:
        return self.messages.get(timeout=timeout)

    def take(self, count: int, timeout: float = TIMEOUT) -> list[paho.MQTTMessage]:
        return [self.next_message(timeout) for _ in range(count)]

    def stop(self) -> None:
        """DISCONNECT (if still connected) and end paho's thread; safe to repeat."""
        if self._stopped:
            return
        self._stopped = True
        self.client.disconnect()
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()


def prop(message: paho.MQTTMessage, name: str) -> Any:
    """A property of a received MQTT 5 message by paho's name for it, or None."""
    return getattr(message.properties, name, None)


def user_properties(message: paho.MQTTMessage) -> Sequence[tuple[str, str]]:
    props = message.properties
    if props is None or not hasattr(props, "UserProperty"):
        return []
    return list(props.UserProperty)


def protocol_of(version: int) -> MQTTProtocolVersion:
    return paho.MQTTv5 if version == MQTT_5 else paho.MQTTv311
