"""Eclipse paho-mqtt as a client we did not write: a blocking wrapper, and a bystander.

``PahoClient`` runs paho on its own network thread; its callbacks feed events and a
queue the test waits on. ``Bystander`` is a well-behaved client that stays connected
while another connection misbehaves, to show the broker is unharmed.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from roost.codec import MQTT_3_1, MQTT_3_1_1, MQTT_5
from tests.support.cleanup import close_at_end
from tests.support.raw import TIMEOUT

# The paho constant for each protocol level.
PAHO_VERSIONS = {MQTT_3_1: paho.MQTTv31, MQTT_3_1_1: paho.MQTTv311, MQTT_5: paho.MQTTv5}


class PahoClient:
    """A paho-mqtt client, connected on construction and stopped at the end of the test.

    ``clean`` is Clean Session (3.1.x) or Clean Start (5.0); ``session_expiry`` is MQTT 5
    only; ``will`` is (topic, payload, QoS), or (topic, payload, QoS, retain, MQTT 5
    will properties); ``max_inflight`` is paho's window of
    unacknowledged QoS 1/2 PUBLISHes (paho: 20; it can only be set before connecting).
    ``topic_alias_maximum`` (MQTT 5) is the CONNECT's Topic Alias Maximum; paho 2.2 does
    not resolve aliases it receives: a message may come with an empty topic.
    paho does not reconnect by itself.
    """

    def __init__(
        self,
        port: int,
        client_id: str,
        version: int = MQTT_5,
        *,
        clean: bool = True,
        keepalive: int = 60,
        session_expiry: int | None = None,
        will: tuple[str, bytes, int] | tuple[str, bytes, int, bool, Properties] | None = None,
        max_inflight: int | None = None,
        topic_alias_maximum: int | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.version = version
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.session_present: bool | None = None
        self.connect_reason: Any = None
        self.connack_properties: Any = None
        self.disconnect_reason: Any = None
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self._subacks: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self._stopped = False
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=PAHO_VERSIONS[version],
            # MQTT 5 takes Clean Start at connect(); paho refuses clean_session then.
            clean_session=None if version == MQTT_5 else clean,
            reconnect_on_failure=False,
        )
        if will is not None:
            self.client.will_set(*will)
        if username is not None:
            self.client.username_pw_set(username, password)
        if max_inflight is not None:
            self.client.max_inflight_messages_set(max_inflight)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        properties = None
        clean_start: Any = paho.MQTT_CLEAN_START_FIRST_ONLY
        if version == MQTT_5:
            clean_start = clean
            connect_properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            if session_expiry is not None:
                connect_properties.SessionExpiryInterval = session_expiry
            if topic_alias_maximum is not None:
                connect_properties.TopicAliasMaximum = topic_alias_maximum
            if session_expiry is not None or topic_alias_maximum is not None:
                properties = connect_properties
        self.client.connect(
            "127.0.0.1",
            port,
            keepalive=keepalive,
            clean_start=clean_start,
            properties=properties,
        )
        close_at_end(self.stop)
        self.client.loop_start()
        assert self.connected.wait(TIMEOUT), "paho got no CONNACK"

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

    def _on_subscribe(self, client: paho.Client, userdata: object, mid: int, *args: Any) -> None:
        self._suback(mid).set()

    def _on_message(self, client: paho.Client, userdata: object, message: Any) -> None:
        self.messages.put(message)

    def _suback(self, mid: int) -> threading.Event:
        with self._lock:
            return self._subacks.setdefault(mid, threading.Event())

    def subscribe(self, topic: str, qos: int, **options: Any) -> None:
        """Subscribe (MQTT 5: with these subscription options) and wait for the SUBACK."""
        if self.version == MQTT_5:
            result, mid = self.client.subscribe(topic, options=SubscribeOptions(qos, **options))
        else:
            result, mid = self.client.subscribe(topic, qos)
        assert result == paho.MQTT_ERR_SUCCESS
        assert mid is not None
        assert self._suback(mid).wait(TIMEOUT), "paho got no SUBACK"

    def publish(
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False, **props: Any
    ) -> None:
        """Publish (MQTT 5: with these properties, by paho's names) and wait until paho has
        sent it and, at QoS > 0, had it acknowledged."""
        properties = None
        if props:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            for name, value in props.items():
                setattr(properties, name, value)
        info = self.client.publish(topic, payload, qos, retain, properties)
        info.wait_for_publish(TIMEOUT)
        assert info.is_published(), "paho's PUBLISH was not acknowledged"

    def publish_all(self, topic: str, payloads: list[bytes], qos: int) -> None:
        """Publish every payload, then wait until each has been acknowledged."""
        infos = [self.client.publish(topic, payload, qos) for payload in payloads]
        for info in infos:
            info.wait_for_publish(TIMEOUT)
            assert info.is_published()

    def next_message(self, timeout: float = TIMEOUT) -> paho.MQTTMessage:
        return self.messages.get(timeout=timeout)

    def take(self, count: int, timeout: float = TIMEOUT) -> list[paho.MQTTMessage]:
        return [self.next_message(timeout) for _ in range(count)]

    def disconnect(self) -> None:
        """DISCONNECT, see paho report the disconnection, and end paho's thread."""
        self.client.disconnect()
        assert self.disconnected.wait(TIMEOUT), "paho did not report its disconnection"
        self.stop()

    def stop(self) -> None:
        """End paho's thread whatever state the connection is in; safe to repeat."""
        if self._stopped:
            return
        self._stopped = True
        if not self.disconnected.is_set():
            self.client.disconnect()
        release(self.client)


def release(client: paho.Client) -> None:
    """Stop paho's network thread and close every socket the client holds.

    Besides its connection, ``loop_start`` opens a TCP socket pair to wake the thread,
    which paho closes only in ``Client.__del__``. Wrappers keep the client in a
    reference cycle (bound-method callbacks), so that runs in some later garbage
    collection, where the sockets' own finalizers may come first and warn: the suite
    (``filterwarnings = error``) then fails an unrelated test.
    """
    client.loop_stop()
    # paho has no public call that closes the wake pair; this one also closes the
    # connection (if paho has not already) and is what its own __del__ runs.
    client._reset_sockets()


def prop(message: paho.MQTTMessage, name: str) -> Any:
    """A property of a received MQTT 5 message by paho's name for it, or None."""
    return getattr(message.properties, name, None)


def user_properties(message: paho.MQTTMessage) -> Sequence[tuple[str, str]]:
    props = message.properties
    if props is None or not hasattr(props, "UserProperty"):
        return []
    return list(props.UserProperty)


ECHO_TOPIC = "bystander/echo"


class Bystander:
    """An MQTT 5 paho client subscribed to the echo topic and to ``topics`` (wills by default).

    ``round_trip()`` publishes a fresh QoS 1 message to itself and waits for it to come
    back; ``expect(topic, payload)`` waits for a message a test expects (a will).

    Subscriptions are QoS 0 so that, once a round trip is over, the bystander has nothing
    left to send (no PUBACK of its own): tests that count the bytes the broker reads can
    then attribute every byte to the client under test.
    """

    def __init__(
        self, port: int, topics: tuple[str, ...] = ("will/#",), client_id: str = "bystander"
    ) -> None:
        self._counter = itertools.count()
        self._unclaimed: list[tuple[str, bytes]] = []
        self.paho = PahoClient(port, client_id, MQTT_5)
        for topic in (ECHO_TOPIC, *topics):
            self.paho.subscribe(topic, 0)

    def expect(self, topic: str, payload: bytes, timeout: float = TIMEOUT) -> None:
        """Wait for (and consume) one message with this topic and payload."""
        deadline = time.monotonic() + timeout
        while (topic, payload) not in self._unclaimed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"bystander never received {topic!r} {payload!r}; got {self._unclaimed!r}"
                )
            try:
                message = self.paho.next_message(remaining)
            except queue.Empty:
                continue
            self._unclaimed.append((message.topic, bytes(message.payload)))
        self._unclaimed.remove((topic, payload))

    def round_trip(self) -> None:
        """Publish a fresh QoS 1 message and see it delivered back: the broker still works."""
        payload = f"ping {next(self._counter)}".encode()
        self.paho.publish(ECHO_TOPIC, payload, qos=1)
        self.expect(ECHO_TOPIC, payload)

    def close(self) -> None:
        self.paho.stop()
