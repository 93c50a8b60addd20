"""Publish/subscribe routing over real sockets: wildcards, $-topics, overlapping
subscriptions, delivery QoS, ordering, UNSUBSCRIBE, SUBACK and the subscription options.

Expected packets are written from the MQTT 3.1.1 and 5.0 specifications; statement ids
are MQTT 5.0's unless marked "3.1.1".
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from roost.codec import (
    MQTT_3_1_1,
    MQTT_5,
    Connack,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
)
from tests.support.broker_thread import BrokerThread
from tests.support.raw import (
    connect,
    drain,
    open_client,
    persistent,
    publish,
    receive_all,
    recv_publish,
    settle,
    subscribe,
    sync,
)
from tests.support.waiting import wait_offline
from tests.support.wire import frame, props, string

VERSIONS = pytest.mark.parametrize("version", [MQTT_3_1_1, MQTT_5], ids=["v311", "v5"])


# (topic filter, topics it matches, topics it does not match), from MQTT 5.0 section
# 4.7.1 and its non-normative examples; the same rules hold in 3.1.1.
WILDCARD_CASES = [
    (
        "sport/tennis/player1/#",
        ["sport/tennis/player1", "sport/tennis/player1/ranking", "sport/tennis/player1/a/b"],
        ["sport/tennis/player2", "sport/tennis"],
    ),
    # "sport/#" also matches the singular "sport": # includes the parent level.
    ("sport/#", ["sport", "sport/", "sport/a/b"], ["sports", "sportx/a"]),
    ("#", ["a", "a/b", "/a", "/"], []),
    (
        "sport/tennis/+",
        ["sport/tennis/player1", "sport/tennis/"],
        ["sport/tennis/player1/ranking", "sport/tennis"],
    ),
    ("sport/+", ["sport/"], ["sport", "sport/a/b"]),
    ("+", ["a", "sport"], ["/finance", "a/b"]),
    ("+/+", ["/finance", "a/b"], ["a", "a/b/c"]),
    ("/+", ["/finance"], ["finance", "a/finance"]),
    ("+/tennis/#", ["sport/tennis", "sport/tennis/x/y"], ["sport/tenis", "tennis"]),
    ("a/+/c", ["a/b/c", "a//c"], ["a/b/c/d", "a/c"]),
    # Matching is exact, with no normalization [MQTT-4.7.3-4].
    ("a/b", ["a/b"], ["A/b", "a/b/", "a/b/c", "a"]),
]


@VERSIONS
@pytest.mark.parametrize(
    ("topic_filter", "matching", "other"), WILDCARD_CASES, ids=[c[0] for c in WILDCARD_CASES]
)
def test_wildcard_routing(
    broker: BrokerThread, version: int, topic_filter: str, matching: list[str], other: list[str]
) -> None:
    """'+' matches exactly one level, '#' any number including the parent [MQTT-4.7.1-2],
    [MQTT-4.7.1-3]; a forwarded topic matches the filter [MQTT-3.3.2-3]."""
    sub = connect(broker.port, version, "sub")
    subscribe(sub, Subscription(topic_filter))
    pub = connect(broker.port, version, "pub")
    for topic in [*other, *matching]:
        pub.send(Publish(topic, topic.encode()))
    (got,) = settle(pub, sub)
    assert got == [Publish(topic, topic.encode()) for topic in matching]


@VERSIONS
def test_dollar_topics_are_not_matched_by_leading_wildcards(
    make_broker: Callable[..., BrokerThread], version: int
) -> None:
    """[MQTT-4.7.2-1]: filters starting with '#' or '+' do not match topics starting with
    '$'; a filter starting with '$SYS' does. The broker's own $SYS messages are used."""
    broker = make_broker(sys_interval=0.5)
    wild = connect(broker.port, version, "wild")
    subscribe(wild, Subscription("#"), Subscription("+/broker/#"), Subscription("+/+/+"))
    system = connect(broker.port, version, "system")
    subscribe(system, Subscription("$SYS/#"))
    # Wait for a live (not retained-on-subscribe) $SYS message: routed after both
    # subscriptions existed, so the wildcard subscriber was considered for it too.
    while True:
        message = recv_publish(system)
        assert message.topic.startswith("$SYS/")
        if not message.retain:
            break
    assert sync(wild) == []
    # The wildcards themselves work: an ordinary topic reaches all three.
    pub = connect(broker.port, version, "pub")
    pub.send(Publish("a/broker/c", b"x"))
    (got,) = settle(pub, wild)
    assert got == [Publish("a/broker/c", b"x")]


@VERSIONS
def test_overlapping_subscriptions_deliver_once_at_the_highest_qos(
    broker: BrokerThread, version: int
) -> None:
    """[MQTT-3.3.4-2] (3.1.1: [MQTT-3.3.5-1]): one message per client, at the maximum QoS
    of the matching subscriptions, and min(publish QoS, that QoS) [MQTT-3.8.4-8]."""
    sub = connect(broker.port, version, "sub")
    subscribe(
        sub, Subscription("o/#", 0), Subscription("o/+", 2), Subscription("o/x", 1), packet_id=9
    )
    pub = connect(broker.port, version, "pub")
    publish(pub, Publish("o/x", b"two", 2, packet_id=1))
    first = recv_publish(sub)
    assert first == Publish("o/x", b"two", 2, packet_id=first.packet_id)
    assert first.packet_id != 0
    sub.send(Pubrec(first.packet_id))
    assert sub.recv() == Pubrel(first.packet_id)
    sub.send(Pubcomp(first.packet_id))
    publish(pub, Publish("o/x", b"one", 1, packet_id=2))
    second = recv_publish(sub)
    assert second == Publish("o/x", b"one", 1, packet_id=second.packet_id)
    sub.send(Puback(second.packet_id))
    # Only "o/#" (QoS 0) matches a deeper topic: delivered once, at QoS 0.
    publish(pub, Publish("o/x/y", b"deep", 2, packet_id=3))
    (got,) = settle(pub, sub)
    assert got == [Publish("o/x/y", b"deep")]


def test_overlapping_subscriptions_carry_every_subscription_identifier(
    broker: BrokerThread,
) -> None:
    """[MQTT-3.3.4-3], [MQTT-3.3.4-4]: a single copy carries the identifiers of all the
    matching subscriptions that have one (in any order), and no others."""
    sub = connect(broker.port, MQTT_5, "sub")
    subscribe(sub, Subscription("s/#", 0), packet_id=1, identifier=1)
    subscribe(sub, Subscription("s/+", 1), packet_id=2, identifier=268_435_455)
    subscribe(sub, Subscription("s/x", 0), packet_id=3)  # no identifier
    subscribe(sub, Subscription("other/#", 2), packet_id=4, identifier=7)
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("s/x", b"m", 1, packet_id=1))
    (got,) = settle(pub, sub)
    assert len(got) == 1
    message = got[0]
    assert isinstance(message, Publish)
    assert message.qos == 1
    assert sorted(message.subscription_identifiers) == [1, 268_435_455]
    sub.send(Puback(message.packet_id))
    publish(pub, Publish("s/x/y", b"m", 0))
    (got,) = settle(pub, sub)
    assert got == [Publish("s/x/y", b"m", subscription_identifiers=(1,))]


@VERSIONS
def test_delivery_qos_is_the_minimum_of_publish_and_granted_qos(
    broker: BrokerThread, version: int
) -> None:
    """[MQTT-3.8.4-8] (3.1.1: [MQTT-3.8.4-6]): every (publish QoS, granted QoS) pair."""
    subs = []
    for granted in (0, 1, 2):
        sub = connect(broker.port, version, f"sub{granted}")
        subscribe(sub, Subscription("q/t", granted))
        subs.append(sub)
    pub = connect(broker.port, version, "pub")
    for qos in (0, 1, 2):
        publish(pub, Publish("q/t", f"p{qos}".encode(), qos, packet_id=qos))
    for granted, sub in enumerate(subs):
        got = receive_all(sub, 3)
        assert [(m.payload, m.qos) for m in got] == [
            (f"p{qos}".encode(), min(qos, granted)) for qos in (0, 1, 2)
        ]
        assert all((m.packet_id != 0) == (m.qos > 0) for m in got)
        assert all(not m.dup and not m.retain for m in got)
        assert drain(sub) == []


@VERSIONS
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_messages_from_one_client_arrive_in_order(
    broker: BrokerThread, version: int, qos: int
) -> None:
    """[MQTT-4.6.0-5], [MQTT-4.6.0-6]: a non-shared subscriber gets one publisher's messages
    to a topic in the order they were sent, also when they queue behind its Receive
    Maximum (v5: 3 here; v3.1.1: the broker's default in-flight window)."""
    fields: dict[str, object] = {"receive_maximum": 3} if version == MQTT_5 else {}
    sub = connect(broker.port, version, "sub", **fields)
    subscribe(sub, Subscription("order/t", 2))
    pub = connect(broker.port, version, "pub")
    count = 50
    # Pipelined: every PUBLISH is sent before any acknowledgement is read.
    pub.send(
        b"".join(
            Publish("order/t", b"%d" % i, qos, packet_id=i + 1 if qos else 0).encode(version)
            for i in range(count)
        )
    )
    if qos == 2:
        for i in range(count):
            assert pub.recv() == Pubrec(i + 1)
        for i in range(count):
            pub.send(Pubrel(i + 1))
        for i in range(count):
            assert pub.recv() == Pubcomp(i + 1)
    elif qos == 1:
        # The broker acknowledges in the order it received them.
        assert [pub.recv() for _ in range(count)] == [Puback(i + 1) for i in range(count)]
    got = receive_all(sub, count)
    assert [m.payload for m in got] == [b"%d" % i for i in range(count)]
    assert {m.qos for m in got} == {qos}


@VERSIONS
def test_unsubscribe_stops_delivery(broker: BrokerThread, version: int) -> None:
    """[MQTT-3.10.4-1] filters are compared character by character; [MQTT-3.10.4-2]
    delivery stops; [MQTT-3.10.4-4], [MQTT-3.10.4-5] an UNSUBACK with the packet id, even
    when nothing was deleted; v5: one reason code per filter, in order [MQTT-3.11.3-1]:
    0x00 Success, 0x11 No subscription existed."""
    sub = connect(broker.port, version, "sub")
    subscribe(sub, Subscription("u/+"), Subscription("u/x"))
    pub = connect(broker.port, version, "pub")
    pub.send(Publish("u/x", b"1"))
    assert settle(pub, sub) == [[Publish("u/x", b"1")]]

    # "u/#" and "U/+" are not "u/+": nothing of those exists.
    sub.send(Unsubscribe(7, ("u/+", "u/#", "U/+")))
    expected = Unsuback(7, (0x00, 0x11, 0x11)) if version == MQTT_5 else Unsuback(7)
    assert sub.recv() == expected
    pub.send(Publish("u/x", b"2"))
    pub.send(Publish("u/y", b"3"))  # matched only "u/+", which is gone
    assert settle(pub, sub) == [[Publish("u/x", b"2")]]

    sub.send(Unsubscribe(8, ("u/x",)))
    assert sub.recv() == (Unsuback(8, (0x00,)) if version == MQTT_5 else Unsuback(8))
    pub.send(Publish("u/x", b"4"))
    assert settle(pub, sub) == [[]]
    # Unsubscribing again: still acknowledged [MQTT-3.10.4-5].
    sub.send(Unsubscribe(9, ("u/x",)))
    assert sub.recv() == (Unsuback(9, (0x11,)) if version == MQTT_5 else Unsuback(9))


@VERSIONS
def test_suback_grants_the_requested_qos_in_order(broker: BrokerThread, version: int) -> None:
    """[MQTT-3.8.4-2] same packet id; [MQTT-3.8.4-6], [MQTT-3.8.4-7], [MQTT-3.9.3-1] one
    code per filter, in order, showing the granted QoS (3.1.1: [MQTT-3.8.4-5])."""
    sub = connect(broker.port, version, "sub")
    subscribe(
        sub,
        Subscription("g/2", 2),
        Subscription("g/0", 0),
        Subscription("g/1", 1),
        packet_id=0xFFFF,
        granted=(2, 0, 1),
    )


@VERSIONS
@pytest.mark.parametrize("maximum_qos", [0, 1])
def test_maximum_qos_caps_what_subscriptions_are_granted(
    make_broker: Callable[..., BrokerThread], version: int, maximum_qos: int
) -> None:
    """The broker's maximum_qos: v5 CONNACK states it [MQTT-3.2.2-9], SUBSCRIBE at any QoS
    is still accepted [MQTT-3.2.2-10] and granted at most that QoS [MQTT-3.8.4-7], and
    delivery follows the granted QoS [MQTT-3.8.4-8]."""
    broker = make_broker(maximum_qos=maximum_qos)
    sub = open_client(broker.port, version)
    connack = sub.connect("sub")
    assert isinstance(connack, Connack)
    assert connack.reason_code == 0
    if version == MQTT_5:
        assert connack.maximum_qos == maximum_qos
    subscribe(
        sub,
        Subscription("m/0", 0),
        Subscription("m/1", 1),
        Subscription("m/2", 2),
        granted=(0, min(1, maximum_qos), maximum_qos),
    )
    pub = connect(broker.port, version, "pub")
    publish(pub, Publish("m/2", b"x", maximum_qos, packet_id=1))
    message = recv_publish(sub)
    assert message.qos == maximum_qos


def test_no_local(broker: BrokerThread) -> None:
    """[MQTT-3.8.3-3] (5.0): with No Local, a client's own messages are not forwarded to it by
    that subscription; other clients' are, and so are its own through an overlapping
    subscription without No Local."""
    me = connect(broker.port, MQTT_5, "me")
    subscribe(me, Subscription("nl/t", 1, no_local=True))
    other = connect(broker.port, MQTT_5, "other")
    subscribe(other, Subscription("nl/t", 1))

    me.send(Publish("nl/t", b"mine"))
    assert sync(me) == []
    assert sync(other) == [Publish("nl/t", b"mine")]

    other.send(Publish("nl/t", b"theirs"))
    assert sync(other) == [Publish("nl/t", b"theirs")]
    assert sync(me) == [Publish("nl/t", b"theirs")]

    subscribe(me, Subscription("nl/#", 0), packet_id=2)
    me.send(Publish("nl/t", b"again"))
    assert sync(me) == [Publish("nl/t", b"again")]


def test_retain_as_published_on_normal_delivery(broker: BrokerThread) -> None:
    """A retained message forwarded to existing subscriptions: RETAIN as published when
    Retain As Published is 1 [MQTT-3.3.1-13] (5.0), else 0 [MQTT-3.3.1-12] (5.0); a
    3.1.1 subscriber always gets RETAIN 0 (3.1.1 [MQTT-3.3.1-9]). A new subscription then
    gets the stored message with RETAIN 1 (3.1.1 [MQTT-3.3.1-8])."""
    as_published = connect(broker.port, MQTT_5, "rap1")
    subscribe(as_published, Subscription("r/t", 0, retain_as_published=True))
    cleared = connect(broker.port, MQTT_5, "rap0")
    subscribe(cleared, Subscription("r/t", 0, retain_as_published=False))
    old = connect(broker.port, MQTT_3_1_1, "v311")
    subscribe(old, Subscription("r/t", 0))
    pub = connect(broker.port, MQTT_3_1_1, "pub")
    pub.send(Publish("r/t", b"kept", retain=True))
    pub.send(Publish("r/t", b"plain"))
    assert settle(pub, as_published, cleared, old) == [
        [Publish("r/t", b"kept", retain=True), Publish("r/t", b"plain")],
        [Publish("r/t", b"kept"), Publish("r/t", b"plain")],
        [Publish("r/t", b"kept"), Publish("r/t", b"plain")],
    ]
    late = connect(broker.port, MQTT_3_1_1, "late")
    subscribe(late, Subscription("r/#", 0))
    assert sync(late) == [Publish("r/t", b"kept", retain=True)]


@VERSIONS
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_clients_cannot_publish_to_sys_topics(
    make_broker: Callable[..., BrokerThread], version: int, qos: int
) -> None:
    """A client's PUBLISH to $SYS/... is refused and reaches nobody. v5: PUBACK/PUBREC with
    0x87 Not authorized [MQTT-3.4.2-1], [MQTT-3.5.2-1]; 3.1.1 cannot say no, so the broker
    acknowledges normally (3.1.1 [MQTT-3.3.5-2])."""
    broker = make_broker(sys_interval=0)  # no $SYS traffic of the broker's own
    watcher = connect(broker.port, version, "watcher")
    subscribe(watcher, Subscription("$SYS/#", 2), Subscription("$SYS/broker/forged", 2))
    pub = connect(broker.port, version, "pub")
    pub.send(Publish("$SYS/broker/forged", b"x", qos, packet_id=5 if qos else 0))
    if qos == 1:
        assert pub.recv() == (Puback(5, 0x87) if version == MQTT_5 else Puback(5))
    elif qos == 2:
        assert pub.recv() == (Pubrec(5, 0x87) if version == MQTT_5 else Pubrec(5))
        if version != MQTT_5:
            pub.send(Pubrel(5))
            assert pub.recv() == Pubcomp(5)
    assert settle(pub, watcher) == [[]]
    # The publisher is still connected and can publish elsewhere.
    subscribe(watcher, Subscription("ok/t", 0), packet_id=2)
    pub.send(Publish("ok/t", b"fine"))
    assert settle(pub, watcher) == [[Publish("ok/t", b"fine")]]


# SUBSCRIBE and UNSUBSCRIBE: their answers, several filters, replacement.


@VERSIONS
def test_suback_and_unsuback_carry_the_request_identifier(
    broker: BrokerThread, version: int
) -> None:
    """[MQTT-3.8.4-1]: a SUBSCRIBE is answered with a SUBACK. A SUBACK and an UNSUBACK
    carry the Packet Identifier of their SUBSCRIBE and UNSUBSCRIBE: 5.0 [MQTT-2.2.1-6],
    3.1.1 [MQTT-2.3.1-7] and [MQTT-3.8.4-2]. The bytes are exact: with no properties, a
    5.0 SUBACK and UNSUBACK have a Property Length of zero [MQTT-2.2.2-1] (5.0)."""
    client = connect(broker.port, version, "client")
    client.send(Subscribe(0x1234, (Subscription("ids/a", 1),)))
    expected = b"\x90\x04\x12\x34\x00\x01" if version == MQTT_5 else b"\x90\x03\x12\x34\x01"
    assert client.recv_bytes(len(expected)) == expected
    client.send(Unsubscribe(0xBEEF, ("ids/a",)))
    expected = b"\xb0\x04\xbe\xef\x00\x00" if version == MQTT_5 else b"\xb0\x02\xbe\xef"
    assert client.recv_bytes(len(expected)) == expected
    assert sync(client) == []


@VERSIONS
def test_several_filters_in_one_subscribe_and_one_unsubscribe(
    broker: BrokerThread, version: int
) -> None:
    """[MQTT-3.8.4-5] (5.0) (3.1.1 [MQTT-3.8.4-4]): a SUBSCRIBE with several filters is
    handled as that many SUBSCRIBEs, with one SUBACK holding a code per filter, in their
    order (3.1.1 [MQTT-3.9.3-1]).

    An UNSUBSCRIBE with several filters likewise, with one UNSUBACK [MQTT-3.10.4-6];
    in 5.0 it holds one of the Unsubscribe Reason Codes per filter [MQTT-3.11.3-2] (5.0)."""
    sub = connect(broker.port, version, "sub")
    subscribe(
        sub,
        Subscription("many/a", 0),
        Subscription("many/b", 1),
        Subscription("many/c", 2),
        packet_id=3,
    )
    pub = connect(broker.port, version, "pub")
    for topic in ("many/a", "many/b", "many/c"):
        publish(pub, Publish(topic, b"x", 2, packet_id=1))
    got = receive_all(sub, 3)
    assert [(m.topic, m.qos) for m in got] == [("many/a", 0), ("many/b", 1), ("many/c", 2)]
    assert drain(sub) == []

    sub.send(Unsubscribe(4, ("many/a", "many/x", "many/c")))
    assert sub.recv() == (Unsuback(4, (0x00, 0x11, 0x00)) if version == MQTT_5 else Unsuback(4))
    for topic in ("many/a", "many/b", "many/c"):
        publish(pub, Publish(topic, b"y"))
    assert settle(pub, sub) == [[Publish("many/b", b"y")]]


@VERSIONS
def test_an_identical_filter_replaces_the_subscription(broker: BrokerThread, version: int) -> None:
    """[MQTT-3.8.4-3] (3.1.1 too): a SUBSCRIBE with the filter of an existing non-shared
    subscription replaces it: one subscription with the new options (its QoS, and in 5.0
    its Subscription Identifier), not a second one."""
    v5 = version == MQTT_5
    sub = connect(broker.port, version, "sub")
    subscribe(sub, Subscription("rep/t", 0), packet_id=1, identifier=1 if v5 else None)
    subscribe(sub, Subscription("rep/t", 2), packet_id=2, identifier=2 if v5 else None)
    pub = connect(broker.port, version, "pub")
    publish(pub, Publish("rep/t", b"a", 2, packet_id=1))
    (got,) = receive_all(sub, 1)
    ids = (2,) if v5 else ()
    assert got == Publish("rep/t", b"a", 2, packet_id=got.packet_id, subscription_identifiers=ids)
    assert drain(sub) == []
    subscribe(sub, Subscription("rep/t", 1), packet_id=3)
    publish(pub, Publish("rep/t", b"b", 2, packet_id=2))
    (got,) = receive_all(sub, 1)
    assert got == Publish("rep/t", b"b", 1, packet_id=got.packet_id)
    assert drain(sub) == []


@VERSIONS
def test_unsubscribe_completes_deliveries_already_started(
    broker: BrokerThread, version: int
) -> None:
    """[MQTT-3.10.4-3]: QoS 1 and QoS 2 messages whose delivery had started when the
    subscription was deleted are still delivered to the end: resent on resuming the
    session, PUBREL after PUBREC, with nothing new delivered."""
    sub = connect(broker.port, version, "sub", **persistent(version))
    subscribe(sub, Subscription("started/t", 2))
    pub = connect(broker.port, version, "pub")
    publish(pub, Publish("started/t", b"one", 1, packet_id=1))
    publish(pub, Publish("started/t", b"two", 2, packet_id=2))
    one, two = recv_publish(sub), recv_publish(sub)
    sub.send(Unsubscribe(9, ("started/t",)))
    assert sub.recv() == (Unsuback(9, (0x00,)) if version == MQTT_5 else Unsuback(9))
    publish(pub, Publish("started/t", b"after", 1, packet_id=3))
    sub.close()
    wait_offline(broker, "sub")
    sub = connect(broker.port, version, "sub", present=True, **persistent(version))
    assert sync(sub) == [
        Publish("started/t", b"one", 1, dup=True, packet_id=one.packet_id),
        Publish("started/t", b"two", 2, dup=True, packet_id=two.packet_id),
    ]
    sub.send(Puback(one.packet_id))
    sub.send(Pubrec(two.packet_id))
    assert sub.recv() == Pubrel(two.packet_id)
    sub.send(Pubcomp(two.packet_id))
    assert sync(sub) == []


# What a delivery carries and who gets it.


@VERSIONS
def test_the_topic_name_comes_first_as_a_utf8_string(broker: BrokerThread, version: int) -> None:
    """[MQTT-3.3.2-1]: a PUBLISH the broker sends starts its variable header with the Topic
    Name, a length-prefixed UTF-8 string (here with 2- and 3-byte characters). The bytes
    are exact."""
    topic = "naïve/日本/€"
    sub = connect(broker.port, version, "sub")
    subscribe(sub, Subscription("naïve/#", 0))
    pub = connect(broker.port, version, "pub")
    publish(pub, Publish(topic, b"payload"))
    expected = frame(0x30, string(topic.encode()), props(version), b"payload")
    assert sub.recv_bytes(len(expected)) == expected
    assert sync(sub) == []


@VERSIONS
def test_a_byte_order_mark_is_part_of_the_topic(broker: BrokerThread, version: int) -> None:
    """EF BB BF is U+FEFF wherever it appears and is never skipped or stripped,
    [MQTT-1.5.4-3] (5.0), (3.1.1 [MQTT-1.5.3-3]): "\\ufeffbom/t" is a topic of its own,
    matched only by a filter with the mark, and forwarded with it."""
    marked = connect(broker.port, version, "marked")
    subscribe(marked, Subscription("\ufeffbom/t", 0))
    plain = connect(broker.port, version, "plain")
    subscribe(plain, Subscription("bom/t", 0))
    pub = connect(broker.port, version, "pub")
    publish(pub, Publish("\ufeffbom/t", b"with"))
    publish(pub, Publish("bom/t", b"without"))
    expected = frame(0x30, string(b"\xef\xbb\xbfbom/t"), props(version), b"with")
    assert marked.recv_bytes(len(expected)) == expected
    assert sync(marked) == []
    assert sync(plain) == [Publish("bom/t", b"without")]


@VERSIONS
def test_every_matching_subscriber_gets_the_message(broker: BrokerThread, version: int) -> None:
    """[MQTT-4.5.0-1]: a message the broker has accepted goes to the session of every
    client with a matching subscription, whichever filter matched, connected or not;
    not to clients whose subscriptions do not match."""
    exact = connect(broker.port, version, "exact")
    subscribe(exact, Subscription("every/a/x", 1))
    plus = connect(broker.port, version, "plus")
    subscribe(plus, Subscription("every/+/x", 1))
    offline = connect(broker.port, version, "offline", **persistent(version))
    subscribe(offline, Subscription("every/#", 1))
    offline.close()
    wait_offline(broker, "offline")
    other = connect(broker.port, version, "other")
    subscribe(other, Subscription("every/b/x", 1))
    pub = connect(broker.port, version, "pub")
    publish(pub, Publish("every/a/x", b"m", 1, packet_id=1))
    for client in (exact, plus):
        assert [(m.topic, m.payload) for m in receive_all(client, 1)] == [("every/a/x", b"m")]
    assert sync(other) == []
    offline = connect(broker.port, version, "offline", present=True, **persistent(version))
    assert [(m.topic, m.payload) for m in receive_all(offline, 1)] == [("every/a/x", b"m")]


@VERSIONS
def test_topic_names_and_filters_of_65535_bytes(broker: BrokerThread, version: int) -> None:
    """[MQTT-4.7.3-3]: Topic Names and Topic Filters are at most 65,535 bytes, the most
    a UTF-8 string's length can say; the broker takes and delivers one that long."""
    topic = "long/" + "x" * (65_535 - len("long/"))
    sub = connect(broker.port, version, "sub")
    subscribe(sub, Subscription(topic, 1))
    pub = connect(broker.port, version, "pub")
    publish(pub, Publish(topic, b"far", 1, packet_id=1))
    (got,) = receive_all(sub, 1)
    assert got == Publish(topic, b"far", 1, packet_id=got.packet_id)
    sub.send(Unsubscribe(2, (topic,)))
    assert sub.recv() == (Unsuback(2, (0x00,)) if version == MQTT_5 else Unsuback(2))
