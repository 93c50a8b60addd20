"""Will messages: when they are published, when not, and what they carry.

"(3.1.1)" and "(5.0)" name the OASIS specification a statement id comes from. MQTT
3.1.1 section 3.1.2.5 lists when a will is published (an I/O error or network
failure, a missed keep-alive, a close without DISCONNECT, a close by the server for a
protocol error); MQTT 5.0 [MQTT-3.1.2-8] says the same through "closed without
DISCONNECT 0x00", and adds the Will Delay Interval (3.1.3.2.2).
"""

from __future__ import annotations

import pytest

from roost.codec import (
    MQTT_3_1,
    MQTT_3_1_1,
    MQTT_5,
    Connect,
    Disconnect,
    Publish,
    Subscription,
    Will,
)
from tests.support.broker_thread import BrokerThread
from tests.support.paho import PahoClient
from tests.support.raw import (
    RawClient,
    acknowledge,
    connect,
    drop,
    expect_disconnect,
    persistent,
    publish,
    recv_publish,
    subscribe_and_sync,
    sync,
)
from tests.support.waiting import (
    SWEEP_MARGIN,
    session_of,
    wait_for_clock,
    wait_offline,
    wait_session_gone,
)

ALL_VERSIONS = [MQTT_3_1, MQTT_3_1_1, MQTT_5]
WILL = Will("will/topic", b"gone")


def watcher(broker: BrokerThread, qos: int = 0, version: int = MQTT_5) -> RawClient:
    client = connect(broker.port, version, "watcher")
    subscribe_and_sync(client, Subscription("will/#", qos))
    return client


def marker(broker: BrokerThread) -> Publish:
    """Publish a marker to the watcher's topics: whatever the watcher receives before
    it was sent before it (both go through the same broker loop, in order)."""
    message = Publish("will/marker", b"marker")
    client = connect(broker.port, MQTT_5, "marker")
    publish(client, message)
    client.close()
    return message


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_will_is_published_when_the_socket_closes_without_disconnect(
    broker: BrokerThread, version: int
) -> None:
    """(3.1.1) [MQTT-3.1.2-8]: published when the connection closes without a
    DISCONNECT; (5.0) [MQTT-3.1.2-8] the same (no DISCONNECT 0x00, no Will Delay)."""
    watch = watcher(broker)
    client = connect(broker.port, version, "dying", will=WILL)
    drop(client)
    assert recv_publish(watch) == Publish("will/topic", b"gone")
    # (3.1.1) and (5.0) [MQTT-3.1.2-10]: removed once published: published only once.
    wait_session_gone(broker, "dying")
    sent = marker(broker)
    assert recv_publish(watch) == sent
    watch.close()


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_no_will_flag_no_will(broker: BrokerThread, version: int) -> None:
    """(3.1.1) [MQTT-3.1.2-12]: a client that connected with Will Flag 0 has no will:
    nothing is published when its connection closes without DISCONNECT."""
    watch = watcher(broker)
    client = connect(broker.port, version, "willless")
    drop(client)
    wait_session_gone(broker, "willless")
    sent = marker(broker)
    assert recv_publish(watch) == sent
    watch.close()


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_no_will_after_a_normal_disconnect(broker: BrokerThread, version: int) -> None:
    """(3.1.1) [MQTT-3.1.2-10], [MQTT-3.14.4-3]; (5.0) [MQTT-3.1.2-10] and
    [MQTT-3.14.4-3]: DISCONNECT (0x00) discards the will."""
    watch = watcher(broker)
    client = connect(broker.port, version, "polite", will=WILL)
    client.send(Disconnect())
    assert client.expect_closed() == []
    wait_session_gone(broker, "polite")
    sent = marker(broker)
    assert recv_publish(watch) == sent
    watch.close()


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
def test_will_is_published_on_keep_alive_expiry(broker: BrokerThread, version: int) -> None:
    """(3.1.1) [MQTT-3.1.2-24] / (5.0) [MQTT-3.1.2-22]: silent for 1.5 x keep-alive, the
    client is disconnected as if the network had failed, so its will goes out
    ((3.1.1) section 3.1.2.5; (5.0) [MQTT-3.1.2-8]). MQTT 5 is told 0x8D first."""
    watch = watcher(broker)
    client = connect(broker.port, version, "sleepy", keep_alive=1, will=WILL)
    assert recv_publish(watch) == Publish("will/topic", b"gone")
    packets = client.expect_closed()
    if version == MQTT_5:
        assert [type(p) for p in packets] == [Disconnect]
        assert isinstance(packets[0], Disconnect)
        assert packets[0].reason_code == 0x8D  # Keep Alive timeout
    else:
        assert packets == []
    watch.close()


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
def test_will_is_published_after_a_protocol_violation(broker: BrokerThread, version: int) -> None:
    """A second CONNECT is a protocol violation ((3.1.1) [MQTT-3.1.0-2]; (5.0)
    [MQTT-3.1.0-2]); the server closes the connection and the will is published
    ((3.1.1) section 3.1.2.5; (5.0) [MQTT-3.1.2-8]: no DISCONNECT 0x00 was received)."""
    watch = watcher(broker)
    client = connect(broker.port, version, "rude", will=WILL)
    client.send(Connect("rude", version))
    expect_disconnect(client, 0x82, version)
    assert recv_publish(watch) == Publish("will/topic", b"gone")
    watch.close()


def test_disconnect_with_will_message_publishes_it(broker: BrokerThread) -> None:
    """(5.0) 3.14.2.1, reason 0x04 (Disconnect with Will Message): the will is published;
    [MQTT-3.14.4-3] discards it only for 0x00."""
    watch = watcher(broker)
    client = connect(broker.port, MQTT_5, "leaving", will=WILL)
    client.send(Disconnect(0x04))
    assert client.expect_closed() == []
    assert recv_publish(watch) == Publish("will/topic", b"gone")
    watch.close()


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
@pytest.mark.parametrize("retain", [False, True])
def test_will_retain_flag(broker: BrokerThread, version: int, retain: bool) -> None:
    """(3.1.1) [MQTT-3.1.2-16] / [MQTT-3.1.2-17]; (5.0) [MQTT-3.1.2-14] /
    [MQTT-3.1.2-15]: Will Retain 0 publishes a non-retained message, 1 a retained one."""
    watch = watcher(broker, version=version)
    client = connect(broker.port, version, "dying", will=Will("will/r", b"bye", retain=retain))
    drop(client)
    # An existing subscription gets RETAIN 0 either way ((3.1.1) [MQTT-3.3.1-9]).
    assert recv_publish(watch) == Publish("will/r", b"bye")
    late = connect(broker.port, version, "late")
    retained = [Publish("will/r", b"bye", retain=True)] if retain else []
    assert subscribe_and_sync(late, Subscription("will/r")) == retained
    watch.close()
    late.close()


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
@pytest.mark.parametrize(("will_qos", "granted_qos"), [(2, 2), (2, 1), (1, 2), (1, 0)])
def test_will_qos(broker: BrokerThread, version: int, will_qos: int, granted_qos: int) -> None:
    """(3.1.1) [MQTT-3.1.2-14] / (5.0) [MQTT-3.1.2-12]: a will may have QoS 0-2; it is
    delivered at min(will QoS, granted QoS) ((5.0) [MQTT-3.8.4-8])."""
    watch = watcher(broker, granted_qos, version)
    client = connect(broker.port, version, "dying", will=Will("will/q", b"bye", will_qos))
    drop(client)
    got = recv_publish(watch)
    qos = min(will_qos, granted_qos)
    assert got == Publish("will/q", b"bye", qos, packet_id=got.packet_id)
    assert (got.packet_id != 0) == (qos > 0)
    acknowledge(watch, got)
    watch.close()


def test_will_properties_are_passed_through(broker: BrokerThread) -> None:
    """(5.0) the will's properties go out with it: [MQTT-3.1.3-10] user properties in
    order (duplicates kept), and as for any PUBLISH [MQTT-3.3.2-4] payload format,
    [MQTT-3.3.2-15] response topic, [MQTT-3.3.2-16] correlation data, [MQTT-3.3.2-20]
    content type; the Message Expiry Interval is the Will's (3.1.3.2.4)."""
    watch = watcher(broker)
    users = (("k", "1"), ("a", "x"), ("k", "2"), ("k", "1"))
    will = Will(
        "will/props",
        "bye ✓".encode(),
        payload_format_indicator=1,
        message_expiry_interval=300,
        content_type="text/plain; charset=utf-8",
        response_topic="will/reply",
        correlation_data=b"\x00\x01corr\xff",
        user_properties=users,
    )
    client = connect(broker.port, MQTT_5, "dying", will=will)
    drop(client)
    assert recv_publish(watch) == Publish(
        "will/props",
        "bye ✓".encode(),
        payload_format_indicator=1,
        message_expiry_interval=300,
        content_type="text/plain; charset=utf-8",
        response_topic="will/reply",
        correlation_data=b"\x00\x01corr\xff",
        user_properties=users,
    )
    watch.close()


def test_will_delay_interval_delays_the_will(broker: BrokerThread) -> None:
    """(5.0) 3.1.3.2.2 and [MQTT-3.1.2-8]: with a Will Delay Interval the will goes
    out once that interval has passed after the close, not at the close. Until then it is
    stored with the session, which outlives the connection (5.0) [MQTT-3.1.2-7]."""
    watch = watcher(broker)
    will = Will("will/delayed", b"late", will_delay_interval=1)
    client = connect(broker.port, MQTT_5, "delayed", will=will, session_expiry_interval=60)
    drop(client)
    wait_offline(broker, "delayed")
    sent = marker(broker)
    assert recv_publish(watch) == sent  # not yet published
    assert recv_publish(watch) == Publish("will/delayed", b"late")
    watch.close()


def test_reconnecting_within_the_will_delay_cancels_the_will(broker: BrokerThread) -> None:
    """(5.0) [MQTT-3.1.3-9]: a new connection to the session before the Will Delay
    Interval has passed means the will is never sent ([MQTT-3.1.2-8]'s "unless")."""
    watch = watcher(broker)
    will = Will("will/cancelled", b"never", will_delay_interval=1)
    client = connect(broker.port, MQTT_5, "flaky", will=will, session_expiry_interval=60)
    drop(client)
    wait_offline(broker, "flaky")
    session = session_of(broker, "flaky")
    assert session is not None
    deadline = broker.call(lambda: session.will_at)
    assert deadline is not None
    back = connect(broker.port, MQTT_5, "flaky", present=True, **persistent(MQTT_5))
    wait_for_clock(broker, deadline + SWEEP_MARGIN)
    sent = marker(broker)
    assert recv_publish(watch) == sent
    back.send(Disconnect())
    back.close()
    watch.close()


def test_will_is_published_when_the_session_ends_before_the_delay(broker: BrokerThread) -> None:
    """(5.0) 3.1.3.2.2: the will is published when the Will Delay Interval passes "or
    the Session ends, whichever happens first" ([MQTT-3.1.2-8]): here the session
    expires after 1 s, long before a 300 s delay. The will belongs to the session
    (5.0) [MQTT-3.1.2-7], so the session's end publishes it."""
    watch = watcher(broker)
    will = Will("will/session-end", b"ended", will_delay_interval=300)
    client = connect(broker.port, MQTT_5, "brief", will=will, session_expiry_interval=1)
    drop(client)
    assert recv_publish(watch) == Publish("will/session-end", b"ended")
    wait_session_gone(broker, "brief")
    watch.close()


def test_will_delay_with_session_expiry_0_publishes_at_once(broker: BrokerThread) -> None:
    """(5.0) 3.1.3.2.2: a session that ends with its connection ends the delay too."""
    watch = watcher(broker)
    will = Will("will/now", b"now", will_delay_interval=300)
    client = connect(broker.port, MQTT_5, "short", will=will)
    drop(client)
    assert recv_publish(watch) == Publish("will/now", b"now")
    watch.close()


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
def test_will_is_published_on_session_takeover(broker: BrokerThread, version: int) -> None:
    """(3.1.1) [MQTT-3.1.4-2]: the server disconnects the existing client, which
    did not send DISCONNECT, so its will goes out (section 3.1.2.5). (5.0)
    [MQTT-3.1.4-3]: the existing client gets DISCONNECT 0x8E and "If the existing
    Client has a Will Message, that Will Message is published" (3.1.4)."""
    watch = watcher(broker)
    first = connect(broker.port, version, "twin", will=Will("will/twin", b"first"))
    second = connect(broker.port, version, "twin", will=Will("will/twin", b"second"))
    expect_disconnect(first, 0x8E, version)
    assert recv_publish(watch) == Publish("will/twin", b"first")
    # The new connection's will is its own, and still pending.
    assert sync(second) == []
    drop(second)
    assert recv_publish(watch) == Publish("will/twin", b"second")
    watch.close()


@pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5])
def test_paho_will_is_published_when_its_socket_drops(broker: BrokerThread, version: int) -> None:
    """paho-mqtt's will_set, published when paho's socket is closed under it."""
    listener = PahoClient(broker.port, "paho-watch", version)
    listener.subscribe("paho/will", qos=1)
    dying = PahoClient(broker.port, "paho-dying", version, will=("paho/will", b"paho gone", 1))
    # Stop paho's loop and close its socket without DISCONNECT.
    dying.client.loop_stop()
    sock = dying.client.socket()
    assert sock is not None
    sock.close()
    got = listener.next_message()
    assert (got.topic, got.payload, got.qos) == ("paho/will", b"paho gone", 1)
    listener.stop()
    wait_session_gone(broker, "paho-dying")
