"""Request/response properties and Message Expiry Interval (MQTT 5.0 section 3.3.2.3).

The server forwards Payload Format Indicator, Response Topic, Correlation Data,
Content Type and User Properties unaltered ([MQTT-3.3.2-4], [MQTT-3.3.2-15],
[MQTT-3.3.2-16], [MQTT-3.3.2-20], [MQTT-3.3.2-17] with their order, [MQTT-3.3.2-18]),
and counts the Message Expiry Interval down while a message waits in it
([MQTT-3.3.2-5], [MQTT-3.3.2-6]).
"""

from __future__ import annotations

import dataclasses

import pytest

from roost.codec import MQTT_3_1_1, MQTT_5, Connack, Publish, Subscription
from tests.support.broker_thread import BrokerThread
from tests.support.mosquitto_tools import finish, mosquitto_pub, start_mosquitto_sub
from tests.support.paho import PahoClient, prop, user_properties
from tests.support.raw import (
    acknowledge,
    connect,
    open_client,
    persistent,
    publish,
    recv_publish,
    subscribe_and_sync,
    sync,
)
from tests.support.waiting import broker_now, wait_for_clock, wait_matched, wait_offline

# Duplicates and order are part of what must survive [MQTT-3.3.2-17], [MQTT-3.3.2-18].
USER_PROPERTIES = (("z", "last?"), ("a", "1"), ("dup", "x"), ("a", "0"), ("dup", "x"), ("é", "ü"))


def request(message: Publish) -> Publish:
    """``message`` with the request/response properties set."""
    return dataclasses.replace(
        message,
        payload_format_indicator=1,
        response_topic="rr/reply/client-7",
        correlation_data=b"\x00\xffcorrelation\x00",
        content_type="application/json; charset=utf-8",
        user_properties=USER_PROPERTIES,
    )


@pytest.mark.parametrize("requested", [None, 0, 1])
def test_no_response_information_unless_requested(
    broker: BrokerThread, requested: int | None
) -> None:
    """[MQTT-3.1.2-28] (5.0): with Request Response Information 0, or absent (which means
    0), the CONNACK carries no Response Information. With 1 the server MAY return some;
    Roost never does."""
    client = open_client(broker.port, MQTT_5)
    connack = client.connect("asker", request_response_information=requested)
    assert isinstance(connack, Connack)
    assert connack.reason_code == 0
    assert connack.response_information is None


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_request_properties_are_forwarded_unaltered(broker: BrokerThread, qos: int) -> None:
    """[MQTT-3.3.2-4], [MQTT-3.3.2-15], [MQTT-3.3.2-16], [MQTT-3.3.2-17],
    [MQTT-3.3.2-18], [MQTT-3.3.2-20]: what the publisher sent, byte for byte, in order."""
    sub = connect(broker.port, MQTT_5, "responder")
    subscribe_and_sync(sub, Subscription("rr/request", 2))
    pub = connect(broker.port, MQTT_5, "requester")
    publish(pub, request(Publish("rr/request", b'{"q": 1}', qos, packet_id=qos and 9)))
    got = recv_publish(sub)
    assert got == request(Publish("rr/request", b'{"q": 1}', qos, packet_id=got.packet_id))
    acknowledge(sub, got)


def test_properties_reach_every_subscriber_and_retained_copies(broker: BrokerThread) -> None:
    """The same properties for each subscriber ("to all subscribers receiving the
    Application Message") and for the retained copy sent on a later subscription."""
    first = connect(broker.port, MQTT_5, "first")
    subscribe_and_sync(first, Subscription("rr/+"))
    second = connect(broker.port, MQTT_5, "second")
    subscribe_and_sync(second, Subscription("rr/#"), identifier=5)
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, request(Publish("rr/x", b"m", retain=True)))
    assert recv_publish(first) == request(Publish("rr/x", b"m"))
    assert recv_publish(second) == request(Publish("rr/x", b"m", subscription_identifiers=(5,)))
    late = connect(broker.port, MQTT_5, "late")
    assert subscribe_and_sync(late, Subscription("rr/x")) == [
        request(Publish("rr/x", b"m", retain=True))
    ]


def test_v3_subscriber_gets_the_payload_without_properties(broker: BrokerThread) -> None:
    """MQTT 3.1.1 has no properties: its subscribers get topic and payload only."""
    sub = connect(broker.port, MQTT_3_1_1, "old")
    subscribe_and_sync(sub, Subscription("rr/old", 1))
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, request(Publish("rr/old", b"m", 1, packet_id=1, message_expiry_interval=60)))
    got = recv_publish(sub)
    assert got == Publish("rr/old", b"m", 1, packet_id=got.packet_id)
    acknowledge(sub, got)


def test_message_expiry_interval_of_a_prompt_delivery(broker: BrokerThread) -> None:
    """[MQTT-3.3.2-6]: the interval sent is the received one minus the time waited;
    delivered at once, that rounds back up to the received value."""
    sub = connect(broker.port, MQTT_5, "sub")
    subscribe_and_sync(sub, Subscription("exp/now"))
    pub = connect(broker.port, MQTT_5, "pub")
    publish(pub, Publish("exp/now", b"m", message_expiry_interval=30))
    assert recv_publish(sub) == Publish("exp/now", b"m", message_expiry_interval=30)


def test_expired_messages_are_not_delivered_to_a_returning_subscriber(
    broker: BrokerThread,
) -> None:
    """[MQTT-3.3.2-5]: a message queued for an offline session whose Message Expiry
    Interval passes before delivery starts is deleted; [MQTT-3.3.2-6]: one still alive
    goes out with the interval reduced by the time it waited."""
    sub = connect(broker.port, MQTT_5, "offline", session_expiry_interval=60)
    subscribe_and_sync(sub, Subscription("exp/q", 1))
    sub.close()
    wait_offline(broker, "offline")
    pub = connect(broker.port, MQTT_5, "pub")
    queued_at = broker_now(broker)
    publish(pub, Publish("exp/q", b"short", 1, packet_id=1, message_expiry_interval=1))
    publish(pub, Publish("exp/q", b"long", 1, packet_id=2, message_expiry_interval=100))
    publish(pub, Publish("exp/q", b"forever", 1, packet_id=3))
    wait_for_clock(broker, queued_at + 1.2)
    back = connect(broker.port, MQTT_5, "offline", present=True, **persistent(MQTT_5))
    long = recv_publish(back)
    assert long == Publish(
        "exp/q",
        b"long",
        1,
        packet_id=long.packet_id,
        message_expiry_interval=long.message_expiry_interval,
    )
    # It waited more than a second: at most 99 of its 100 seconds remain.
    assert long.message_expiry_interval is not None
    assert 90 <= long.message_expiry_interval <= 99
    forever = recv_publish(back)
    assert forever == Publish("exp/q", b"forever", 1, packet_id=forever.packet_id)
    acknowledge(back, long)
    acknowledge(back, forever)
    assert sync(back) == []


def test_expired_message_waiting_behind_receive_maximum_is_dropped(
    broker: BrokerThread,
) -> None:
    """[MQTT-3.3.2-5] for an online subscriber too: a message queued behind the
    client's Receive Maximum that expires before it can be sent is never sent."""
    sub = connect(broker.port, MQTT_5, "slow", receive_maximum=1)
    subscribe_and_sync(sub, Subscription("exp/slow", 1))
    pub = connect(broker.port, MQTT_5, "pub")
    queued_at = broker_now(broker)
    publish(pub, Publish("exp/slow", b"first", 1, packet_id=1))
    publish(pub, Publish("exp/slow", b"expires", 1, packet_id=2, message_expiry_interval=1))
    publish(pub, Publish("exp/slow", b"third", 1, packet_id=3))
    first = recv_publish(sub)
    assert first.payload == b"first"
    wait_for_clock(broker, queued_at + 1.2)
    acknowledge(sub, first)  # frees the one slot
    third = recv_publish(sub)
    assert third == Publish("exp/slow", b"third", 1, packet_id=third.packet_id)
    acknowledge(sub, third)


def test_paho_request_response_round_trip(broker: BrokerThread) -> None:
    """A paho requester and a paho responder: the responder answers on the request's
    Response Topic with its Correlation Data, as 4.10 describes."""
    responder = PahoClient(broker.port, "paho-responder")
    requester = PahoClient(broker.port, "paho-requester")
    responder.subscribe("svc/request", qos=1)
    requester.subscribe("svc/reply/paho-requester", qos=1)
    requester.publish(
        "svc/request",
        b"ping",
        qos=1,
        ResponseTopic="svc/reply/paho-requester",
        CorrelationData=b"\x01\x02id-42",
        ContentType="text/plain",
        PayloadFormatIndicator=1,
        UserProperty=[("trace", "a"), ("trace", "b")],
    )
    request = responder.next_message()
    assert prop(request, "ResponseTopic") == "svc/reply/paho-requester"
    assert prop(request, "CorrelationData") == b"\x01\x02id-42"
    assert prop(request, "ContentType") == "text/plain"
    assert prop(request, "PayloadFormatIndicator") == 1
    assert user_properties(request) == [("trace", "a"), ("trace", "b")]
    responder.publish(
        prop(request, "ResponseTopic"),
        b"pong",
        qos=1,
        CorrelationData=prop(request, "CorrelationData"),
    )
    reply = requester.next_message()
    assert (reply.topic, reply.payload) == ("svc/reply/paho-requester", b"pong")
    assert prop(reply, "CorrelationData") == b"\x01\x02id-42"


def test_mosquitto_clients_see_the_properties(broker: BrokerThread) -> None:
    """mosquitto_pub -D publish ... and mosquitto_sub -F show the same properties."""
    sub = start_mosquitto_sub(
        broker.port, "-V", "mqttv5", "-t", "mq/rr", "-C", "1", "-F", "%R|%C|%F|%P|%p"
    )
    wait_matched(broker, "mq/rr", 1)
    mosquitto_pub(
        broker.port,
        "-V",
        "mqttv5",
        "-t",
        "mq/rr",
        "-m",
        "body",
        "-D",
        "publish",
        "response-topic",
        "mq/reply",
        "-D",
        "publish",
        "content-type",
        "text/plain",
        "-D",
        "publish",
        "payload-format-indicator",
        "1",
        "-D",
        "publish",
        "user-property",
        "k",
        "v1",
        "-D",
        "publish",
        "user-property",
        "k",
        "v2",
    )
    [line] = finish(sub)
    response_topic, content_type, payload_format, users, payload = line.split("|")
    assert (response_topic, content_type, payload_format, payload) == (
        "mq/reply",
        "text/plain",
        "1",
        "body",
    )
    assert users.split() == ["k:v1", "k:v2"]
