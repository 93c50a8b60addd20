"""Retained catch-up: many retained messages for one SUBSCRIBE, paced by the client.

The broker walks its retained messages lazily and sends them as the subscriber has
room (catchup.py), so the session queue limit never applies to them while the client
is connected; UNSUBSCRIBE, a second SUBSCRIBE, a disconnect and changes to the
retained messages during the walk each have a defined outcome (docs/architecture.md,
"Retained catch-up").
"""

from __future__ import annotations

from collections.abc import Callable

from roost.broker.stats import DropReason
from roost.codec import (
    MQTT_3_1_1,
    MQTT_5,
    Puback,
    Publish,
    Subscription,
    Unsuback,
    Unsubscribe,
)
from tests.support.broker_thread import BrokerThread
from tests.support.paho import PahoClient
from tests.support.raw import (
    RawClient,
    connect,
    persistent,
    publish,
    receive_all,
    recv_publish,
    subscribe,
    sync,
)
from tests.support.waiting import wait_offline, wait_session_gone

WINDOW = 20  # max_inflight_messages: QoS 1 PUBLISHes in flight to a 3.1.1 client


def store_retained(broker: BrokerThread, count: int, prefix: str = "cu", qos: int = 1) -> None:
    """``count`` retained messages ``{prefix}/{i}`` (payload ``i``), in that order."""
    pub = connect(broker.port, MQTT_3_1_1, "storer")
    pub.send(
        b"".join(
            Publish(
                f"{prefix}/{i}",
                str(i).encode(),
                qos,
                retain=True,
                packet_id=i % 0xFFFF + 1 if qos else 0,
            ).encode(MQTT_3_1_1)
            for i in range(count)
        )
    )
    if qos:
        for _ in range(count):
            assert isinstance(pub.recv(), Puback)
    else:
        assert sync(pub) == []
    pub.close()


def dropped(broker: BrokerThread, reason: DropReason) -> int:
    return broker.call(lambda: broker.broker.stats.dropped[reason])


def take_window(client: RawClient) -> list[Publish]:
    """The QoS 1 PUBLISHes the broker sends before it waits for acknowledgements."""
    return [recv_publish(client) for _ in range(WINDOW)]


def test_catch_up_sends_every_retained_message_in_walk_order_past_a_small_queue(
    make_broker: Callable[..., BrokerThread],
) -> None:
    """20 000 retained messages to a paho subscriber at QoS 1 with a queue limit of 100:
    all arrive, once, retain set, in the order they were stored, none dropped."""
    count = 20_000
    broker = make_broker(max_queued_messages=100, max_retained_messages=30_000)
    store_retained(broker, count)
    sub = PahoClient(broker.port, "catcher", MQTT_5)
    sub.subscribe("cu/#", 1)
    messages = sub.take(count)
    assert [m.topic for m in messages] == [f"cu/{i}" for i in range(count)]
    assert all(m.retain and m.qos == 1 for m in messages)
    assert [m.payload for m in messages[:3]] == [b"0", b"1", b"2"]
    assert dropped(broker, DropReason.QUEUE_FULL) == 0
    assert sub.messages.empty()


def test_catch_up_at_qos0_is_paced_by_the_transport(
    make_broker: Callable[..., BrokerThread],
) -> None:
    """QoS 0 (the message's QoS) is paced by the transport's flow control, not dropped."""
    count = 20_000
    broker = make_broker(max_queued_messages=100, max_retained_messages=30_000)
    store_retained(broker, count, qos=0)
    sub = PahoClient(broker.port, "catcher0", MQTT_3_1_1)
    sub.subscribe("cu/+", 1)
    messages = sub.take(count)
    assert [m.topic for m in messages] == [f"cu/{i}" for i in range(count)]
    assert dropped(broker, DropReason.SLOW_CLIENT) == 0


def test_messages_published_during_a_catch_up_follow_it(
    make_broker: Callable[..., BrokerThread],
) -> None:
    """A QoS 1 message published while the catch-up waits for acknowledgements goes
    out after the last retained message, as if all had been queued at the SUBSCRIBE."""
    count = 200
    broker = make_broker(max_retained_messages=1000)
    store_retained(broker, count)
    sub = connect(broker.port, MQTT_3_1_1, "sub")
    subscribe(sub, Subscription("cu/#", 1))
    first = take_window(sub)
    pub = connect(broker.port, MQTT_3_1_1, "live")
    publish(pub, Publish("cu/live", b"now", 1, packet_id=1))
    for message in first:
        sub.send(Puback(message.packet_id))
    rest = receive_all(sub, count - WINDOW + 1)
    topics = [m.topic for m in first + rest]
    assert topics == [f"cu/{i}" for i in range(count)] + ["cu/live"]
    assert not rest[-1].retain


def test_unsubscribe_during_a_catch_up_ends_it(make_broker: Callable[..., BrokerThread]) -> None:
    """[MQTT-3.10.4-2]: no new messages for the filter once unsubscribed; what is in
    flight completes, the rest of the catch-up is not sent, the session carries on."""
    broker = make_broker(max_retained_messages=1000)
    store_retained(broker, 500)
    sub = connect(broker.port, MQTT_3_1_1, "sub")
    subscribe(sub, Subscription("cu/#", 1), Subscription("other", 1))
    in_flight = take_window(sub)
    sub.send(Unsubscribe(2, ("cu/#",)))
    for message in in_flight:
        sub.send(Puback(message.packet_id))
    assert sub.recv() == Unsuback(2)
    pub = connect(broker.port, MQTT_3_1_1, "live")
    publish(pub, Publish("other", b"still here", 1, packet_id=1))
    assert recv_publish(sub).topic == "other"  # not another retained message
    assert sync(sub) == []


def test_a_second_subscribe_restarts_the_catch_up(
    make_broker: Callable[..., BrokerThread],
) -> None:
    """MQTT 5.0 3.8.4: a SUBSCRIBE replacing a subscription sends its retained messages
    again: the catch-up under way gives way to the new one, which sends them all."""
    count = 100
    broker = make_broker(max_retained_messages=1000)
    store_retained(broker, count)
    sub = connect(broker.port, MQTT_3_1_1, "sub")
    subscribe(sub, Subscription("cu/#", 1))
    first = take_window(sub)
    subscribe(sub, Subscription("cu/#", 1), packet_id=2)
    for message in first:
        sub.send(Puback(message.packet_id))
    again = receive_all(sub, count)
    assert [m.topic for m in again] == [f"cu/{i}" for i in range(count)]
    assert sync(sub) == []


def test_a_clean_session_leaving_during_a_catch_up(
    make_broker: Callable[..., BrokerThread],
) -> None:
    """The catch-up ends with the session; the broker and other subscribers carry on."""
    count = 300
    broker = make_broker(max_retained_messages=1000)
    store_retained(broker, count)
    sub = connect(broker.port, MQTT_3_1_1, "gone")
    subscribe(sub, Subscription("cu/#", 1))
    take_window(sub)
    sub.close()
    wait_session_gone(broker, "gone")
    other = connect(broker.port, MQTT_3_1_1, "next")
    subscribe(other, Subscription("cu/#", 1))
    assert [m.topic for m in receive_all(other, count)] == [f"cu/{i}" for i in range(count)]


def test_a_persistent_session_keeps_the_rest_of_its_catch_up_queued(
    make_broker: Callable[..., BrokerThread],
) -> None:
    """The client goes mid catch-up, its session stays: what was in flight is resent
    on its return, the rest was queued (under the queue's limit) and follows."""
    count, limit = 300, 200
    broker = make_broker(max_retained_messages=1000, max_queued_messages=limit)
    store_retained(broker, count)
    sub = connect(broker.port, MQTT_3_1_1, "back", **persistent(MQTT_3_1_1))
    subscribe(sub, Subscription("cu/#", 1))
    in_flight = take_window(sub)
    sub.close()
    wait_offline(broker, "back")
    again = connect(broker.port, MQTT_3_1_1, "back", present=True, **persistent(MQTT_3_1_1))
    resent = [recv_publish(again) for _ in range(WINDOW)]
    assert [m.topic for m in resent] == [m.topic for m in in_flight]
    assert all(m.dup for m in resent)
    for message in resent:
        again.send(Puback(message.packet_id))
    rest = receive_all(again, limit)
    assert [m.topic for m in rest] == [f"cu/{i}" for i in range(WINDOW, WINDOW + limit)]
    assert all(m.retain for m in rest)
    assert dropped(broker, DropReason.QUEUE_FULL) == count - WINDOW - limit
    assert sync(again) == []


def test_retained_messages_changed_during_the_walk(
    make_broker: Callable[..., BrokerThread],
) -> None:
    """Set, replaced and deleted while the walk waits: it sees each topic as it is when
    it gets there, never fails, and the live copies follow the catch-up."""
    count = 300
    broker = make_broker(max_retained_messages=1000)
    store_retained(broker, count)
    sub = connect(broker.port, MQTT_3_1_1, "sub")
    subscribe(sub, Subscription("cu/#", 1))
    first = take_window(sub)
    pub = connect(broker.port, MQTT_3_1_1, "changer")
    publish(pub, Publish("cu/250", b"new", 1, retain=True, packet_id=1))
    publish(pub, Publish("cu/260", b"", 1, retain=True, packet_id=2))  # deleted
    publish(pub, Publish("cu/261/below", b"deep", 1, retain=True, packet_id=3))
    publish(pub, Publish("cu/new", b"added", 1, retain=True, packet_id=4))
    for number in range(270, 280):  # a whole run of siblings deleted
        publish(pub, Publish(f"cu/{number}", b"", 1, retain=True, packet_id=number))
    for message in first:
        sub.send(Puback(message.packet_id))
    # Retained: 300, less cu/260 and cu/270..279, plus cu/261/below. Live (every
    # PUBLISH above matches cu/#, the empty ones too): 14.
    rest = receive_all(sub, count - 11 + 1 - WINDOW + 14)
    retained = [m for m in first + rest if m.retain]
    live = [m for m in rest if not m.retain]
    by_topic = {m.topic: m.payload for m in retained}
    assert len(retained) == len(by_topic) == count - 11 + 1
    assert by_topic["cu/250"] == b"new"
    assert "cu/260" not in by_topic
    assert not any(f"cu/{n}" in by_topic for n in range(270, 280))
    # The walk copies a node's children when it gets there: cu/261/below, under a node
    # it had not reached, comes as retained (right after cu/261), cu/new (added at the
    # node it had already passed) only live.
    topics = [m.topic for m in retained]
    assert topics[topics.index("cu/261") + 1] == "cu/261/below"
    assert "cu/new" not in by_topic
    assert rest[-len(live) :] == live  # every live message after the catch-up
    assert [m.topic for m in live] == [
        "cu/250",
        "cu/260",
        "cu/261/below",
        "cu/new",
        *(f"cu/{n}" for n in range(270, 280)),
    ]
    assert sync(sub) == []
