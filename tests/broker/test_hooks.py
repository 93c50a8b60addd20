"""Broker hooks (docs/hooks.md): loaded from the config, called at each point with the
right data, rewriting and dropping messages, pausing only their own connection when
async, and failing without taking the broker down.

Real broker, real clients: paho-mqtt for ordinary traffic, the raw client where the
test must read a reason code off the wire.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from roost.broker import Broker, BrokerConfig, DropReason, HookConfig, HookError
from roost.broker.config import config_from_mapping
from roost.broker.hooks import load_hook
from roost.codec import MQTT_3_1_1, MQTT_5, Puback, Pubcomp, Publish, Pubrec, Pubrel, Subscription
from tests.broker.hook_probes import Gate, Recorder, instance
from tests.support import raw
from tests.support.broker_thread import BrokerThread
from tests.support.paho import PahoClient, user_properties
from tests.support.waiting import wait_until

PROBES = "tests.broker.hook_probes"

MakeBroker = Callable[..., BrokerThread]


def hooks(*paths: str, **options: object) -> list[HookConfig]:
    return [HookConfig(f"{PROBES}:{path}", dict(options)) for path in paths]


def test_hooks_load_from_a_config_table() -> None:
    config = config_from_mapping(
        {"hooks": [{"path": f"{PROBES}:Recorder", "options": {"mute": ["x"]}, "timeout": 2}]}
    )
    assert config.hooks == [HookConfig(f"{PROBES}:Recorder", {"mute": ["x"]}, 2.0)]


def test_every_hook_point_fires_with_its_data(make_broker: MakeBroker) -> None:
    broker = make_broker(hooks=hooks("Recorder", mute=["muted"]), persistence="memory")
    recorder = instance(broker, Recorder)
    assert recorder.started
    subscriber = PahoClient(broker.port, "sub")
    subscriber.subscribe("t/#", 1)
    muted = PahoClient(broker.port, "muted")
    muted.subscribe("t/#", 0)
    publisher = PahoClient(broker.port, "pub")
    publisher.publish("t/a", b"hello", qos=1)
    message = subscriber.next_message()
    assert (message.topic, message.payload) == ("t/a", b"hello")
    subscriber.client.unsubscribe("t/#")
    wait_until(lambda: recorder.seen("unsubscribe"))
    # A session that outlives its connection by a second, then expires.
    leaving = PahoClient(broker.port, "leaving", session_expiry=1, clean=False)
    leaving.disconnect()
    wait_until(lambda: recorder.seen("expired"))
    publisher.disconnect()
    wait_until(lambda: ("disconnect", "pub", True) in recorder.events)

    assert recorder.seen("connect")[:3] == [
        ("connect", "sub", None, False),
        ("connect", "muted", None, False),
        ("connect", "pub", None, False),
    ]
    assert recorder.seen("subscribe") == [
        ("subscribe", "sub", "t/#", 1),
        ("subscribe", "muted", "t/#", 0),
    ]
    assert recorder.seen("publish") == [("publish", "pub", "t/a", b"hello", 1)]
    assert sorted(recorder.seen("deliver")) == [
        ("deliver", "muted", "t/a", 0),
        ("deliver", "sub", "t/a", 1),
    ]
    assert recorder.seen("dropped") == [("dropped", "muted", "t/a", DropReason.HOOK)]
    assert recorder.seen("unsubscribe") == [("unsubscribe", "sub", "t/#")]
    assert ("disconnect", "leaving", True) in recorder.events
    assert recorder.seen("expired") == [("expired", "leaving")]
    # The muted subscriber got nothing on t/: the next message it gets is on ctl/
    # (sent after, so it would come after); the broker counted the drops.
    muted.subscribe("ctl/#", 1)
    subscriber.publish("t/b", b"again", qos=1)
    subscriber.publish("ctl/c", b"control", qos=1)
    assert muted.next_message().topic == "ctl/c"
    assert broker.call(lambda: broker.broker.stats.dropped[DropReason.HOOK]) == 2
    broker.stop()
    assert recorder.stopped


def test_on_deliver_sees_the_retained_catch_up(make_broker: MakeBroker) -> None:
    # Retained messages a SUBSCRIBE catches up on are deliveries too: the hook sees
    # each one and may drop it for that subscriber only.
    broker = make_broker(hooks=hooks("Recorder", mute=["muted"]))
    recorder = instance(broker, Recorder)
    publisher = PahoClient(broker.port, "pub")
    publisher.publish("t/kept", b"for some", qos=1, retain=True)
    publisher.publish("u/kept", b"for all", qos=1, retain=True)
    muted = PahoClient(broker.port, "muted")
    muted.subscribe("#", 1)
    got = muted.next_message()
    assert (got.topic, got.payload, got.retain) == ("u/kept", b"for all", True)
    other = PahoClient(broker.port, "other")
    other.subscribe("#", 1)
    assert sorted(m.topic for m in other.take(2)) == ["t/kept", "u/kept"]
    assert ("deliver", "muted", "t/kept", 1) in recorder.events
    assert broker.call(lambda: broker.broker.stats.dropped[DropReason.HOOK]) == 1


def test_on_publish_rewrites_topic_payload_and_properties(make_broker: MakeBroker) -> None:
    broker = make_broker(hooks=hooks("Rewriter"))
    subscriber = PahoClient(broker.port, "sub")
    subscriber.subscribe("#", 1)
    publisher = PahoClient(broker.port, "pub")
    publisher.publish("in/x", b"shout", qos=1)
    message = subscriber.next_message()
    assert (message.topic, message.payload) == ("out/x", b"SHOUT")
    assert ("hooked", "pub") in user_properties(message)
    publisher.publish("plain", b"as is", qos=0)
    assert subscriber.next_message().topic == "plain"


@pytest.mark.parametrize("version", [MQTT_5, MQTT_3_1_1])
@pytest.mark.parametrize("qos", [1, 2])
def test_on_publish_drop_is_acknowledged_with_its_reason(
    make_broker: MakeBroker, version: int, qos: int
) -> None:
    broker = make_broker(hooks=hooks("Rewriter"))
    subscriber = raw.connect(broker.port, MQTT_5, "sub")
    raw.subscribe(subscriber, Subscription("#", 2))
    publisher = raw.connect(broker.port, version, "pub")
    publisher.send(Publish("drop/me", b"x", qos, packet_id=7))
    ack = publisher.recv()
    assert isinstance(ack, Puback if qos == 1 else Pubrec), ack
    # MQTT 5: the hook's 0x99; 3.1.1 cannot be told (and then goes on to PUBREL).
    assert ack.reason_code == (0x99 if version == MQTT_5 else 0)
    if qos == 2 and version == MQTT_3_1_1:
        publisher.send(Pubrel(7))
        assert publisher.recv() == Pubcomp(7)
    assert raw.settle(publisher, subscriber) == [[]]
    # The id is free again: a new message with it is routed.
    raw.publish(publisher, Publish("t/after", b"ok", qos, packet_id=7))
    assert [p.payload for p in raw.publishes(raw.sync(subscriber))] == [b"ok"]
    assert broker.call(lambda: broker.broker.stats.dropped[DropReason.HOOK]) == 1


def test_a_rewrite_to_an_invalid_topic_is_dropped_and_counted(make_broker: MakeBroker) -> None:
    broker = make_broker(hooks=hooks("Rewriter"))
    subscriber = raw.connect(broker.port, MQTT_5, "sub")
    raw.subscribe(subscriber, Subscription("#", 1))
    publisher = raw.connect(broker.port, MQTT_5, "pub")
    publisher.send(Publish("bad/x", b"x", 1, packet_id=1))
    ack = publisher.recv()
    assert isinstance(ack, Puback)
    assert ack.reason_code == 0x83
    # Not a verdict at all: counted, and the message goes through unchanged.
    publisher.send(Publish("odd/x", b"y", 1, packet_id=2))
    assert publisher.recv() == Puback(2)
    got = raw.publishes(raw.settle(publisher, subscriber)[0])
    assert [(p.topic, p.payload) for p in got] == [("odd/x", b"y")]
    stats = broker.broker.stats
    assert broker.call(lambda: (stats.hook_errors, stats.dropped[DropReason.HOOK])) == (2, 1)


def test_async_on_publish_pauses_only_its_connection(make_broker: MakeBroker) -> None:
    broker = make_broker(hooks=hooks("Gate"))
    gate = instance(broker, Gate)
    subscriber = PahoClient(broker.port, "sub")
    subscriber.subscribe("t/#", 1)
    slow = PahoClient(broker.port, "slow")
    held = [slow.client.publish("t/slow", f"{n}".encode(), 1) for n in range(3)]
    wait_until(lambda: gate.waiting == 1)
    # Another client's messages flow while the slow one's wait.
    fast = PahoClient(broker.port, "fast")
    fast.publish("t/fast", b"f1", qos=1)
    fast.publish("t/fast", b"f2", qos=1)
    got = subscriber.take(2)
    assert [(m.topic, m.payload) for m in got] == [("t/fast", b"f1"), ("t/fast", b"f2")]
    assert not any(info.is_published() for info in held)
    assert gate.waiting == 1  # its later packets were not even read: order is kept
    broker.call(gate.release)
    got = subscriber.take(3)
    assert [(m.topic, m.payload) for m in got] == [
        ("t/slow", b"0"),
        ("t/slow", b"1"),
        ("t/slow", b"2"),
    ]
    for info in held:
        info.wait_for_publish(5)
        assert info.is_published()


def test_an_async_on_publish_over_its_timeout_lets_the_message_through(
    make_broker: MakeBroker,
) -> None:
    broker = make_broker(hooks=[HookConfig(f"{PROBES}:Gate", {}, timeout=0.2)])
    subscriber = PahoClient(broker.port, "sub")
    subscriber.subscribe("t/#", 1)
    slow = PahoClient(broker.port, "slow")
    slow.publish("t/slow", b"late", qos=1)  # the gate never opens
    message = subscriber.next_message()
    assert (message.topic, message.payload) == ("t/slow", b"late")
    assert broker.call(lambda: broker.broker.stats.hook_errors) == 1


def test_a_raising_hook_is_counted_and_the_broker_carries_on(make_broker: MakeBroker) -> None:
    broker = make_broker(hooks=hooks("Raiser", "Recorder"), sys_interval=0.5)
    recorder = instance(broker, Recorder, 1)
    subscriber = PahoClient(broker.port, "sub")
    subscriber.subscribe("t/#", 1)
    subscriber.subscribe("$SYS/broker/hooks/errors", 0)
    publisher = PahoClient(broker.port, "pub")
    publisher.publish("t/a", b"unchanged", qos=1)
    message = subscriber.next_message()
    while message.topic.startswith("$SYS"):
        message = subscriber.next_message()
    assert (message.topic, message.payload) == ("t/a", b"unchanged")
    # The hook after the failing one was still asked, at every point.
    assert recorder.seen("publish") == [("publish", "pub", "t/a", b"unchanged", 1)]
    assert recorder.seen("deliver") == [("deliver", "sub", "t/a", 1)]
    assert [event[1] for event in recorder.seen("connect")] == ["sub", "pub"]
    stats = broker.broker.stats
    # on_connect x2, on_subscribe x2 (async, later), on_publish, on_deliver.
    wait_until(lambda: broker.call(lambda: stats.hook_errors) >= 6)

    def sys_errors() -> int:
        while True:
            got = subscriber.next_message()
            if got.topic == "$SYS/broker/hooks/errors" and int(got.payload) >= 6:
                return int(got.payload)

    assert sys_errors() >= 6


def test_load_errors_name_the_hook() -> None:
    with pytest.raises(HookError, match="cannot import"):
        load_hook("no_such_package.hooks:Hook")
    with pytest.raises(HookError, match="has no"):
        load_hook(f"{PROBES}:Missing")
    with pytest.raises(HookError, match="must be a plain function"):
        load_hook(f"{PROBES}:AsyncDeliver")
    with pytest.raises(HookError, match="has none of the methods"):
        load_hook(f"{PROBES}:Nothing")
    with pytest.raises(HookError, match="no entry point"):
        load_hook("no_such_hook_name")
    # The broker refuses to start with one: at construction, before any socket.
    with pytest.raises(HookError, match="no entry point"):
        Broker(BrokerConfig(hooks=[HookConfig("no_such_hook_name")]))


def test_hooks_load_by_entry_point_name() -> None:
    loaded = load_hook("json_schema", {"schemas": {"#": {"type": "object"}}})
    assert type(loaded.hook).__name__ == "JsonSchemaValidator"
