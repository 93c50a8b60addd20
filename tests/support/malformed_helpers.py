"""Helpers for the malformed-input tests: raw packet building and a well-behaved bystander.

The packets of tests/broker/test_malformed.py are written out byte by byte on purpose
(Roost's own encoders refuse to build most of them), so the small builders here only
frame bytes; they know nothing of what makes a packet valid.

``Bystander`` is an independent, well-behaved client (Eclipse paho-mqtt) that stays
connected while another connection misbehaves, to show the broker is unharmed.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from roost.codec.primitives import encode_varint

TIMEOUT = 5.0
ECHO_TOPIC = "bystander/echo"


# Wire building ---------------------------------------------------------------------------


def frame(first: int, *parts: bytes) -> bytes:
    """A fixed header (first byte, shortest remaining length) followed by ``parts``."""
    body = b"".join(parts)
    return bytes((first,)) + encode_varint(len(body)) + body


def u16(value: int) -> bytes:
    return value.to_bytes(2, "big")


def u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def string(raw: bytes) -> bytes:
    """A length-prefixed string made of exactly these bytes (valid UTF-8 or not)."""
    return u16(len(raw)) + raw


def props(version: int, *items: bytes) -> bytes:
    """An MQTT 5 property block; nothing at all for earlier versions."""
    if version != 5:
        return b""
    block = b"".join(items)
    return encode_varint(len(block)) + block


def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Poll ``predicate`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        # A short yield between polls, not a wait for an event to happen.
        time.sleep(0.001)


# The bystander ---------------------------------------------------------------------------


class Bystander:
    """A paho-mqtt client subscribed to the echo topic and to ``topics`` (wills by default).

    ``round_trip()`` publishes a fresh QoS 1 message to itself and waits for it to come
    back; ``expect(topic, payload)`` waits for a message a test expects (a will).

    Subscriptions are QoS 0 so that, once a round trip is over, the bystander has nothing
    left to send (no PUBACK of its own): tests that count the bytes the broker reads can
    then attribute every byte to the client under test.
    """

    def __init__(
        self,
        port: int,
        topics: tuple[str, ...] = ("will/#",),
        protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
        client_id: str = "bystander",
    ) -> None:
        self._counter = itertools.count()
        self._received: list[tuple[str, bytes, bool]] = []
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=60)
        self.client.loop_start()
        if not self._connected.wait(TIMEOUT):
            self.close()
            raise AssertionError("bystander did not connect")
        self.client.subscribe([(topic, 0) for topic in (ECHO_TOPIC, *topics)])
        if not self._subscribed.wait(TIMEOUT):
            self.close()
            raise AssertionError("bystander did not get its SUBACK")

    def _on_connect(self, client: object, userdata: object, *args: object) -> None:
        self._connected.set()

    def _on_subscribe(self, client: object, userdata: object, *args: object) -> None:
        self._subscribed.set()

    def _on_message(self, client: object, userdata: object, message: paho.MQTTMessage) -> None:
        with self._cond:
            self._received.append((message.topic, bytes(message.payload), bool(message.retain)))
            self._cond.notify_all()

    def expect(self, topic: str, payload: bytes, timeout: float = TIMEOUT) -> None:
        """Wait for (and consume) one message with this topic and payload."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index, (got_topic, got_payload, _) in enumerate(self._received):
                    if got_topic == topic and got_payload == payload:
                        del self._received[index]
                        return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"bystander never received {topic!r} {payload!r}; got {self._received!r}"
                    )
                self._cond.wait(remaining)

    def round_trip(self) -> None:
        """Publish a fresh QoS 1 message and see it delivered back: the broker still works."""
        payload = f"ping {next(self._counter)}".encode()
        info = self.client.publish(ECHO_TOPIC, payload, qos=1)
        info.wait_for_publish(TIMEOUT)
        assert info.is_published(), "bystander's PUBLISH was not acknowledged"
        self.expect(ECHO_TOPIC, payload)

    def received(self) -> list[tuple[str, bytes, bool]]:
        with self._cond:
            return list(self._received)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
