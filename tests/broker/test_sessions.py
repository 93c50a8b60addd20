"""Sessions over real sockets: Session Present, persistence across reconnects, Clean
Start, MQTT 5 Session Expiry Interval, session takeover and the offline queue limit.

Expected behaviour comes from MQTT 3.1.1 sections 3.1.2.4, 3.1.4 and 3.2.2 and MQTT 5.0
sections 3.1.2.4, 3.1.2.11.2, 3.1.4, 3.2.2, 3.14.2.2.2 and 4.1.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from roost.codec import (
    MQTT_3_1,
    MQTT_3_1_1,
    MQTT_5,
    Connack,
    Connect,
    Disconnect,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Subscription,
    Will,
)
from tests.support.broker_thread import BrokerThread
from tests.support.mosquitto_tools import (
    MOSQUITTO_VERSIONS,
    mosquitto_pub,
    mosquitto_sub,
    start_mosquitto_sub,
)
from tests.support.paho import PahoClient
from tests.support.raw import RawClient, open_client, subscribe, sync, without_reason_string
from tests.support.waiting import (
    SWEEP_MARGIN,
    broker_now,
    has_session,
    wait_for_clock,
    wait_offline,
    wait_session_gone,
    wait_subscribed,
)

LEVELS = [MQTT_3_1_1, MQTT_5]
ALL_LEVELS = [MQTT_3_1, MQTT_3_1_1, MQTT_5]


def connect(
    port: int,
    client_id: str,
    version: int,
    *,
    clean: bool,
    expiry: int | None = None,
    will: Will | None = None,
) -> tuple[RawClient, bool]:
    """Connect and return (client, Session Present). ``expiry`` is MQTT 5 only."""
    client = open_client(port, version)
    client.send(
        Connect(client_id, version, clean_start=clean, session_expiry_interval=expiry, will=will)
    )
    if version == MQTT_3_1:
        # 3.1's CONNACK has no Session Present flag: the whole first byte is reserved.
        assert client.recv_bytes(4) == b"\x20\x02\x00\x00"
        return client, False
    connack = client.recv()
    assert isinstance(connack, Connack)
    assert connack.reason_code == 0
    return client, connack.session_present


def keep(version: int) -> int | None:
    """With Clean Start 0, a Session Expiry Interval that keeps the session (5.0 only)."""
    return 3600 if version == MQTT_5 else None


def disconnect(client: RawClient, packet: Disconnect | None = None) -> None:
    """Send DISCONNECT and wait until the broker has closed the connection."""
    client.send(packet or Disconnect())
    assert client.expect_closed() == []


def publish_qos(publisher: RawClient, topic: str, payload: bytes, qos: int, packet_id: int) -> None:
    """Publish at ``qos`` and complete the handshake, so the broker owns the message."""
    publisher.send(Publish(topic, payload, qos, packet_id=packet_id if qos else 0))
    if qos == 1:
        assert publisher.recv() == Puback(packet_id)
    elif qos == 2:
        assert publisher.recv() == Pubrec(packet_id)
        publisher.send(Pubrel(packet_id))
        assert publisher.recv() == Pubcomp(packet_id)


def remaining_expiry(broker: BrokerThread, client_id: str) -> float:
    """White-box: seconds until the broker discards this disconnected session."""

    def probe() -> float:
        expires_at = broker.broker.sessions[client_id].expires_at
        assert expires_at is not None
        return expires_at - broker.broker.now()

    return broker.call(probe)


def receive(client: RawClient, topic: str, payload: bytes, qos: int) -> Publish:
    """The next packet is this message, fresh (DUP 0); acknowledge it fully."""
    packet = client.recv()
    assert isinstance(packet, Publish)
    assert packet == Publish(topic, payload, qos, packet_id=packet.packet_id)
    if qos:
        assert packet.packet_id != 0
    if qos == 1:
        client.send(Puback(packet.packet_id))
    elif qos == 2:
        client.send(Pubrec(packet.packet_id))
        assert client.recv() == Pubrel(packet.packet_id)
        client.send(Pubcomp(packet.packet_id))
    return packet


# Session Present.


def test_session_present_follows_clean_session_3_1_1(broker: BrokerThread) -> None:
    """3.1.1: Clean Session 1 gives Session Present 0 [MQTT-3.2.2-1] and its session is not
    reused afterwards [MQTT-3.1.2-6]; Clean Session 0 gives 1 when the server has the
    session [MQTT-3.2.2-2] and 0 when it has not [MQTT-3.2.2-3]; it is stored after the
    disconnection [MQTT-3.1.2-4]."""
    port = broker.port
    steps = [(True, False), (False, False), (False, True), (True, False), (False, False)]
    for clean, expected in steps:
        client, present = connect(port, "sp311", MQTT_3_1_1, clean=clean)
        assert present is expected, (clean, expected)
        disconnect(client)


def test_session_present_follows_clean_start_and_expiry_5(broker: BrokerThread) -> None:
    """5.0: Clean Start 1 discards any session and gives Session Present 0 [MQTT-3.1.2-4],
    [MQTT-3.2.2-2]; Clean Start 0 resumes a stored session with Session Present 1
    [MQTT-3.1.2-5], [MQTT-3.2.2-3], or creates one with 0 [MQTT-3.1.2-6]. A session with a
    Session Expiry Interval above 0 is stored after the connection closes [MQTT-3.1.2-23]."""
    port = broker.port
    steps = [
        # (Clean Start, Session Expiry Interval, Session Present expected)
        (False, 3600, False),  # no session yet: a new one
        (False, 3600, True),  # stored: resumed
        (True, 3600, False),  # discarded, a new one that is stored again
        (False, None, True),  # resumed; absent expiry means 0 from now on
        (False, 3600, False),  # ... so it ended with the last connection
    ]
    for clean, expiry, expected in steps:
        client, present = connect(port, "sp5", MQTT_5, clean=clean, expiry=expiry)
        assert present is expected, (clean, expiry, expected)
        disconnect(client)


def test_mqtt_3_1_connack_never_sets_session_present(broker: BrokerThread) -> None:
    """MQTT 3.1 has no Session Present flag, so a resumed 3.1 session still gets 0x00 in
    the first CONNACK byte (checked inside ``connect``), and the session is resumed."""
    port = broker.port
    client, _ = connect(port, "sp31", MQTT_3_1, clean=False)
    subscribe(client, Subscription("v31/t", 1))
    disconnect(client)
    assert has_session(broker, "sp31")
    client, _ = connect(port, "sp31", MQTT_3_1, clean=False)
    publisher, _ = connect(port, "pub31", MQTT_3_1_1, clean=True)
    publish_qos(publisher, "v31/t", b"still subscribed", 1, 1)
    receive(client, "v31/t", b"still subscribed", 1)


# What a persistent session keeps.


@pytest.mark.parametrize("version", ALL_LEVELS)
def test_offline_messages_are_delivered_after_reconnect(broker: BrokerThread, version: int) -> None:
    """3.1.1 [MQTT-3.1.2-5] (5.0 section 4.1 session state): while a persistent session is
    disconnected, QoS 1 and 2 messages matching its subscriptions are stored and sent on
    reconnect; QoS 0 ones are not (storing them is optional and off by default). The
    subscriptions themselves survive the reconnect ([MQTT-3.1.2-4] 3.1.1, [MQTT-3.1.2-5])."""
    port = broker.port
    sub, _ = connect(port, "offline", version, clean=False, expiry=keep(version))
    subscribe(sub, Subscription("off/#", 2))
    disconnect(sub)
    pub, _ = connect(port, "offline-pub", MQTT_3_1_1, clean=True)
    publish_qos(pub, "off/0", b"zero", 0, 0)
    publish_qos(pub, "off/1", b"one", 1, 1)
    publish_qos(pub, "off/2", b"two", 2, 2)
    sub, present = connect(port, "offline", version, clean=False, expiry=keep(version))
    assert present is (version != MQTT_3_1)
    receive(sub, "off/1", b"one", 1)
    receive(sub, "off/2", b"two", 2)
    sub.expect_silence(0.3)
    # Still subscribed, without subscribing again.
    publish_qos(pub, "off/live", b"live", 1, 3)
    receive(sub, "off/live", b"live", 1)


@pytest.mark.parametrize("version", LEVELS)
def test_session_survives_a_network_failure(broker: BrokerThread, version: int) -> None:
    """A persistent session is kept when the connection simply drops, without DISCONNECT
    (3.1.1 [MQTT-3.1.2-4], 5.0 [MQTT-3.1.2-23])."""
    client, _ = connect(broker.port, "dropped", version, clean=False, expiry=keep(version))
    subscribe(client, Subscription("dropped/t", 1))
    client.close()
    wait_offline(broker, "dropped")
    client, present = connect(broker.port, "dropped", version, clean=False, expiry=keep(version))
    assert present is True


@pytest.mark.parametrize("version", LEVELS)
def test_the_client_id_names_the_session(broker: BrokerThread, version: int) -> None:
    """[MQTT-3.1.3-2]: the broker keys the session state it holds by ClientID: a client
    connecting under another ClientID gets none of it (Session Present 0, not its
    messages), and the same ClientID gets it all back on a new connection."""
    port = broker.port
    owner, _ = connect(port, "id-owner", version, clean=False, expiry=keep(version))
    subscribe(owner, Subscription("ids/#", 1))
    disconnect(owner)
    pub, _ = connect(port, "id-pub", MQTT_3_1_1, clean=True)
    publish_qos(pub, "ids/x", b"for the owner", 1, 1)
    stranger, present = connect(port, "id-stranger", version, clean=False, expiry=keep(version))
    assert present is False
    assert sync(stranger) == []
    owner, present = connect(port, "id-owner", version, clean=False, expiry=keep(version))
    assert present is True
    receive(owner, "ids/x", b"for the owner", 1)
    assert sync(owner) == []


@pytest.mark.parametrize("version", LEVELS)
def test_session_state_is_kept_while_connected(
    make_broker: Callable[..., BrokerThread], version: int
) -> None:
    """A session's state is not discarded while its connection is open, 5.0
    [MQTT-4.1.0-1]: here a Session Expiry Interval of 1 s passes while connected, and
    the subscription, the message in flight and the one queued behind it are all still
    there. 3.1.1 [MQTT-4.1.0-1], [MQTT-4.1.0-2]: the session lasts at least as long as
    its connection, Clean Session 1 included."""
    broker = make_broker(max_inflight_messages=1)
    expiry = 1 if version == MQTT_5 else None
    sub, _ = connect(broker.port, "kept", version, clean=True, expiry=expiry)
    subscribe(sub, Subscription("kept/t", 1))
    pub, _ = connect(broker.port, "kept-pub", MQTT_3_1_1, clean=True)
    publish_qos(pub, "kept/t", b"m1", 1, 1)
    publish_qos(pub, "kept/t", b"m2", 1, 2)
    first = sub.recv()
    assert isinstance(first, Publish)
    assert first.payload == b"m1"
    assert sync(sub) == []  # m2 waits for the only in-flight slot
    wait_for_clock(broker, broker_now(broker) + 1 + SWEEP_MARGIN)
    sub.send(Puback(first.packet_id))
    receive(sub, "kept/t", b"m2", 1)
    publish_qos(pub, "kept/t", b"m3", 1, 3)
    receive(sub, "kept/t", b"m3", 1)
    assert has_session(broker, "kept")


def test_qos0_is_queued_when_configured(make_broker: Callable[..., BrokerThread]) -> None:
    """3.1.1 section 3.1.2.4: the server MAY also store QoS 0 messages for an offline
    session; ``queue_qos0_messages`` turns that on."""
    broker = make_broker(queue_qos0_messages=True)
    sub, _ = connect(broker.port, "q0", MQTT_3_1_1, clean=False)
    subscribe(sub, Subscription("q0/t", 1))
    disconnect(sub)
    pub, _ = connect(broker.port, "q0-pub", MQTT_3_1_1, clean=True)
    publish_qos(pub, "q0/t", b"kept", 0, 0)
    publish_qos(pub, "q0/t", b"acked", 1, 1)
    sub, present = connect(broker.port, "q0", MQTT_3_1_1, clean=False)
    assert present
    receive(sub, "q0/t", b"kept", 0)
    receive(sub, "q0/t", b"acked", 1)


@pytest.mark.parametrize("version", ALL_LEVELS)
def test_mosquitto_sub_persistent_session_gets_offline_messages(
    broker: BrokerThread, version: int
) -> None:
    """mosquitto_sub -c (Clean Session 0; for 5.0 a Session Expiry Interval that never
    expires) comes back to the QoS 1 and 2 messages published while it was away."""
    option = MOSQUITTO_VERSIONS[version]
    persistent = ["-V", option, "-c", "-i", f"ms-{option}", "-q", "2", "-t", "mos/#"]
    mosquitto_sub(broker.port, *persistent, "-E")
    assert has_session(broker, f"ms-{option}")
    pub, _ = connect(broker.port, "mos-pub", MQTT_3_1_1, clean=True)
    publish_qos(pub, "mos/a", b"one", 1, 1)
    publish_qos(pub, "mos/b", b"two", 2, 2)
    result = mosquitto_sub(broker.port, *persistent, "-C", "2", "-W", "10", "-v")
    assert result.stdout == "mos/a one\nmos/b two\n"


@pytest.mark.parametrize("version", LEVELS)
def test_paho_persistent_session_resumes(broker: BrokerThread, version: int) -> None:
    expiry = 3600 if version == MQTT_5 else None
    first = PahoClient(broker.port, "paho-keep", version, clean=False, session_expiry=expiry)
    try:
        assert first.session_present is False
        first.subscribe("paho/keep", qos=1)
    finally:
        first.disconnect()
    pub, _ = connect(broker.port, "paho-keep-pub", MQTT_3_1_1, clean=True)
    publish_qos(pub, "paho/keep", b"while away", 1, 1)
    second = PahoClient(broker.port, "paho-keep", version, clean=False, session_expiry=expiry)
    try:
        assert second.session_present is True
        message = second.next_message()
        assert (message.topic, message.payload, message.qos) == ("paho/keep", b"while away", 1)
    finally:
        second.disconnect()


@pytest.mark.parametrize("version", LEVELS)
def test_clean_start_discards_the_session(broker: BrokerThread, version: int) -> None:
    """Clean Session / Clean Start 1 discards the stored session: its queued messages and
    its subscriptions (3.1.1 [MQTT-3.1.2-6], 5.0 [MQTT-3.1.2-4])."""
    port = broker.port
    sub, _ = connect(port, "discard", version, clean=False, expiry=keep(version))
    subscribe(sub, Subscription("discard/t", 1))
    disconnect(sub)
    pub, _ = connect(port, "discard-pub", MQTT_3_1_1, clean=True)
    publish_qos(pub, "discard/t", b"queued", 1, 1)
    sub, present = connect(port, "discard", version, clean=True)
    assert present is False
    publish_qos(pub, "discard/t", b"after", 1, 2)
    sub.expect_silence(0.3)
    assert broker.call(lambda: dict(broker.broker.sessions["discard"].subscriptions)) == {}


# MQTT 5 Session Expiry Interval.


def test_session_expiry_zero_ends_the_session_at_disconnect(broker: BrokerThread) -> None:
    """5.0 section 3.1.2.11.2: an absent or 0 Session Expiry Interval ends the session when
    the network connection closes, even with Clean Start 0."""
    port = broker.port
    for expiry in (None, 0):
        client, present = connect(port, "exp0", MQTT_5, clean=False, expiry=expiry)
        assert present is False
        subscribe(client, Subscription("exp0/t", 1))
        disconnect(client)
        assert not has_session(broker, "exp0")


def test_session_expires_after_the_interval(broker: BrokerThread) -> None:
    """5.0 [MQTT-4.1.0-2]: the server discards the session once the connection is closed and
    the Session Expiry Interval has passed; a later Clean Start 0 finds none."""
    client, _ = connect(broker.port, "exp1", MQTT_5, clean=False, expiry=1)
    subscribe(client, Subscription("exp1/t", 1))
    disconnect(client)
    wait_session_gone(broker, "exp1")
    client, present = connect(broker.port, "exp1", MQTT_5, clean=False, expiry=1)
    assert present is False


def test_disconnect_can_shorten_the_session_expiry(broker: BrokerThread) -> None:
    """5.0 section 3.14.2.2.2: a Session Expiry Interval on DISCONNECT replaces the CONNECT
    one; 0 ends the session with the connection."""
    client, _ = connect(broker.port, "shorten", MQTT_5, clean=False, expiry=3600)
    subscribe(client, Subscription("shorten/t", 1))
    disconnect(client, Disconnect(session_expiry_interval=0))
    client, present = connect(broker.port, "shorten", MQTT_5, clean=False, expiry=3600)
    assert present is False


def test_disconnect_can_lengthen_a_nonzero_session_expiry(broker: BrokerThread) -> None:
    client, _ = connect(broker.port, "lengthen", MQTT_5, clean=False, expiry=1)
    disconnect(client, Disconnect(session_expiry_interval=600))
    # White-box: the deadline now lies about 600 s ahead, not 1 s.
    remaining = remaining_expiry(broker, "lengthen")
    assert 500 < remaining <= 600


def test_disconnect_setting_expiry_after_zero_is_a_protocol_error(broker: BrokerThread) -> None:
    """5.0 section 3.14.2.2.2: if CONNECT's Session Expiry Interval was 0, a non-zero one on
    DISCONNECT is a Protocol Error; the server does not treat it as a valid DISCONNECT and
    answers DISCONNECT 0x82 (4.13), which carries no Session Expiry Interval
    [MQTT-3.14.2-2]. Not a valid DISCONNECT, so the will is published [MQTT-3.1.2-8], and
    the session ended with the connection."""
    port = broker.port
    watcher, _ = connect(port, "exp-watch", MQTT_3_1_1, clean=True)
    subscribe(watcher, Subscription("exp/will", 0))
    client, _ = connect(port, "zero-then", MQTT_5, clean=False, will=Will("exp/will", b"not clean"))
    client.send(Disconnect(session_expiry_interval=30))
    packets = client.expect_closed()
    assert [without_reason_string(p) for p in packets] == [Disconnect(0x82)]
    assert watcher.recv() == Publish("exp/will", b"not clean")
    client, present = connect(port, "zero-then", MQTT_5, clean=False, expiry=60)
    assert present is False


def test_max_session_expiry_interval_caps_and_is_reported(
    make_broker: Callable[..., BrokerThread],
) -> None:
    """5.0 section 3.2.2.3.2: the server tells the client in CONNACK's Session Expiry
    Interval when it uses another value than the client asked for; when the property is
    absent the client's value stands."""
    broker = make_broker(max_session_expiry_interval=10)
    cases = [(3600, 10), (0xFFFFFFFF, 10), (5, None), (10, None), (None, None)]
    for requested, reported in cases:
        client = open_client(broker.port, MQTT_5)
        connack = client.connect("capped", session_expiry_interval=requested)
        assert isinstance(connack, Connack)
        assert connack.reason_code == 0
        assert connack.session_expiry_interval == reported, requested
        disconnect(client)
    client = open_client(broker.port, MQTT_5)
    client.connect("capped", session_expiry_interval=3600)
    disconnect(client, Disconnect(session_expiry_interval=3600))
    remaining = remaining_expiry(broker, "capped")
    assert remaining <= 10


def test_paho_sees_the_capped_session_expiry(make_broker: Callable[..., BrokerThread]) -> None:
    broker = make_broker(max_session_expiry_interval=10)
    client = PahoClient(broker.port, "paho-cap", MQTT_5, clean=True, session_expiry=3600)
    try:
        assert client.connack_properties.SessionExpiryInterval == 10
    finally:
        client.disconnect()


@pytest.mark.parametrize("version", [MQTT_3_1, MQTT_3_1_1])
def test_persistent_session_expiry_applies_to_3_1_x(
    make_broker: Callable[..., BrokerThread], version: int
) -> None:
    """3.1.x has no Session Expiry Interval; ``persistent_session_expiry`` bounds how long a
    Clean Session 0 session is kept (MQTT 5.0 section 4.1 lets a server discard state)."""
    broker = make_broker(persistent_session_expiry=1)
    client, _ = connect(broker.port, f"pse{version}", version, clean=False)
    subscribe(client, Subscription("pse/t", 1))
    disconnect(client)
    assert has_session(broker, f"pse{version}")
    wait_session_gone(broker, f"pse{version}")
    if version == MQTT_3_1_1:
        client, present = connect(broker.port, f"pse{version}", version, clean=False)
        assert present is False


# Takeover.


@pytest.mark.parametrize("clean", [False, True])
@pytest.mark.parametrize("version", LEVELS)
def test_session_takeover(broker: BrokerThread, version: int, clean: bool) -> None:
    """A CONNECT with the ClientID of a connected client disconnects the existing one: 5.0
    [MQTT-3.1.4-3] with DISCONNECT 0x8E (Session taken over) first, 3.1.1 [MQTT-3.1.4-2].
    Clean Start is then processed as usual ([MQTT-3.1.4-4] 5.0, [MQTT-3.1.4-3] 3.1.1): with
    0 the new connection gets the session, with 1 a new one."""
    port = broker.port
    first, _ = connect(port, "taken", version, clean=False, expiry=keep(version))
    subscribe(first, Subscription("taken/t", 1))
    second, present = connect(port, "taken", version, clean=clean, expiry=keep(version))
    assert present is not clean
    packets = first.expect_closed()
    if version == MQTT_5:
        assert [without_reason_string(p) for p in packets] == [Disconnect(0x8E)]
    else:
        assert packets == []
    pub, _ = connect(port, "taken-pub", MQTT_3_1_1, clean=True)
    publish_qos(pub, "taken/t", b"for the new one", 1, 1)
    if clean:
        second.expect_silence(0.3)
    else:
        receive(second, "taken/t", b"for the new one", 1)


def test_paho_is_told_its_session_was_taken_over(broker: BrokerThread) -> None:
    first = PahoClient(broker.port, "paho-taken", MQTT_5)
    second = PahoClient(broker.port, "paho-taken", MQTT_5)
    try:
        assert first.disconnected.wait(5)
        assert first.disconnect_reason == 0x8E
        assert not second.disconnected.is_set()
    finally:
        first.stop()
        second.disconnect()


def test_mosquitto_sub_is_told_its_session_was_taken_over(broker: BrokerThread) -> None:
    """mosquitto_sub -V mqttv5 -d reports the server's DISCONNECT 0x8E (142) and exits."""
    same_id = ["-V", "mqttv5", "-i", "mos-taken"]
    receiver = start_mosquitto_sub(broker.port, *same_id, "-d", "-t", "mos/taken")
    wait_subscribed(broker, "mos-taken", "mos/taken")
    mosquitto_pub(broker.port, *same_id, "-t", "mos/other", "-m", "x")
    out, err = receiver.communicate(timeout=10)
    assert receiver.returncode == 0, err
    assert "Received DISCONNECT (142)" in out


# The offline queue limit.


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("drop_newest", [b"m0", b"m1", b"m2"]), ("drop_oldest", [b"m2", b"m3", b"m4"])],
)
def test_offline_queue_limit(
    make_broker: Callable[..., BrokerThread],
    policy: str,
    expected: list[bytes],
) -> None:
    """Configuration, not specification: at most ``max_queued_messages`` wait for an
    offline session; ``queue_full_policy`` says which to drop when a new one arrives."""
    broker = make_broker(max_queued_messages=3, queue_full_policy=policy)
    sub, _ = connect(broker.port, "limited", MQTT_3_1_1, clean=False)
    subscribe(sub, Subscription("lim/t", 1))
    disconnect(sub)
    pub, _ = connect(broker.port, "limited-pub", MQTT_3_1_1, clean=True)
    for n in range(5):
        publish_qos(pub, "lim/t", b"m%d" % n, 1, n + 1)
    sub, present = connect(broker.port, "limited", MQTT_3_1_1, clean=False)
    assert present
    for payload in expected:
        receive(sub, "lim/t", payload, 1)
    sub.expect_silence(0.3)
