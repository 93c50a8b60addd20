"""MQTT 5 topic aliases the broker sends (MQTT 5.0 section 3.3.2.3.4), on the wire.

A subscriber that states a Topic Alias Maximum in CONNECT gets, per connection, the
topic and an alias on the first PUBLISH of a topic and an empty Topic Name with the
alias on later ones; when all are taken the least recently used alias is given to the
new topic. ``topic_alias_send_maximum`` caps how many (0: none). The raw client decodes
exactly what was sent: ``Publish.topic`` is "" where the broker left it out.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from roost.broker.message import Message
from roost.broker.topic_aliases import OutgoingAliases
from roost.client import Client
from roost.codec import MQTT_3_1, MQTT_3_1_1, MQTT_5, Puback, Publish, Subscription
from tests.support.broker_thread import BrokerThread
from tests.support.paho import PahoClient, prop
from tests.support.raw import (
    TIMEOUT,
    RawClient,
    acknowledge,
    connect,
    drop,
    persistent,
    publish,
    publishes,
    recv_publish,
    settle,
    subscribe_and_sync,
    sync,
)
from tests.support.waiting import wait_offline

JS_DIR = Path(__file__).resolve().parents[1] / "interop" / "js"


def subscriber(broker: BrokerThread, qos: int = 0, **fields: object) -> RawClient:
    sub = connect(broker.port, MQTT_5, "sub", **fields)
    subscribe_and_sync(sub, Subscription("ta/#", qos))
    return sub


def publisher(broker: BrokerThread) -> RawClient:
    return connect(broker.port, MQTT_5, "pub")


def received(pub: RawClient, sub: RawClient) -> list[tuple[str, int | None]]:
    """(Topic Name, Topic Alias) of each PUBLISH ``sub`` got, once ``pub``'s are routed."""
    [packets] = settle(pub, sub)
    return [(p.topic, p.topic_alias) for p in publishes(packets)]


def test_the_map_offers_an_alias_and_takes_it_only_when_assigned() -> None:
    """``OutgoingAliases`` alone: a new topic is offered the next free alias, then the
    least recently used one; nothing changes until ``assign`` (the packet was sent)."""
    aliases = OutgoingAliases(2)
    assert aliases.lookup("a") == (1, False)
    assert aliases.lookup("a") == (1, False)  # offered, not taken
    aliases.assign("a", 1)
    assert aliases.lookup("b") == (2, False)
    aliases.assign("b", 2)
    assert aliases.lookup("a") == (1, True)  # "b" is now the least recently used
    assert aliases.lookup("c") == (2, False)
    aliases.assign("c", 2)
    assert aliases.lookup("b") == (1, False)  # "a" is now the least recently used
    assert aliases.lookup("c") == (2, True)


def test_an_alias_too_large_to_send_is_not_taken() -> None:
    """The packet that would set the alias does not fit the client's Maximum Packet
    Size, the plain one does: the plain one is sent and the alias stays free."""
    aliases = OutgoingAliases(2)
    message = Message("ta/a", b"m", 0, False)
    plain = message.encode(MQTT_5, 0, False)
    assert aliases.encode(message, 0, False, 0, False, (), 0.0, len(plain)) == plain
    assert aliases.lookup("ta/a") == (1, False)
    setting = aliases.encode(message, 0, False, 0, False, (), 0.0, len(plain) + 3)
    assert len(setting) == len(plain) + 3
    assert aliases.lookup("ta/a") == (1, True)


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_first_publish_sets_the_alias_later_ones_use_it(broker: BrokerThread, qos: int) -> None:
    """The first PUBLISH on a topic has the topic and alias 1; the next ones on it an
    empty Topic Name and alias 1 (the payload and the rest unchanged)."""
    sub = subscriber(broker, qos, topic_alias_maximum=3)
    pub = publisher(broker)
    for number in range(3):
        publish(pub, Publish("ta/a", b"%d" % number, qos, packet_id=number + 1 if qos else 0))
    got = [recv_publish(sub) for _ in range(3)]
    assert got == [
        Publish(topic, b"%d" % n, qos, packet_id=got[n].packet_id, topic_alias=1)
        for n, topic in enumerate(["ta/a", "", ""])
    ]
    for message in got:
        acknowledge(sub, message)
    assert sync(sub) == []


def test_least_recently_used_alias_is_reassigned(broker: BrokerThread) -> None:
    """[MQTT-3.1.2-26], [MQTT-3.3.2-11]: never an alias above the client's Topic Alias
    Maximum (2 here). With both taken, a new topic gets the least recently used one,
    sent with its topic so that the client's mapping is replaced."""
    sub = subscriber(broker, topic_alias_maximum=2)
    pub = publisher(broker)
    for topic in ["ta/a", "ta/b", "ta/a", "ta/c", "ta/b", "ta/c", "ta/b"]:
        pub.send(Publish(topic, b"m"))
    assert received(pub, sub) == [
        ("ta/a", 1),
        ("ta/b", 2),
        ("", 1),  # ta/a, now the most recently used
        ("ta/c", 2),  # ta/b's alias was the least recently used
        ("ta/b", 1),  # then ta/a's
        ("", 2),
        ("", 1),
    ]


def test_broker_cap_below_the_clients_maximum(make_broker: Callable[..., BrokerThread]) -> None:
    """topic_alias_send_maximum = 1: one alias, whatever the client allows (5)."""
    broker = make_broker(topic_alias_send_maximum=1)
    sub = subscriber(broker, topic_alias_maximum=5)
    pub = publisher(broker)
    for topic in ["ta/a", "ta/a", "ta/b", "ta/a", "ta/a"]:
        pub.send(Publish(topic, b"m"))
    assert received(pub, sub) == [
        ("ta/a", 1),
        ("", 1),
        ("ta/b", 1),
        ("ta/a", 1),
        ("", 1),
    ]


@pytest.mark.parametrize(
    ("send_maximum", "client_maximum"),
    [
        pytest.param(0, 5, id="broker-off"),
        pytest.param(10, 0, id="client-0"),
        pytest.param(10, None, id="client-absent"),
    ],
)
def test_no_alias_is_sent(
    make_broker: Callable[..., BrokerThread], send_maximum: int, client_maximum: int | None
) -> None:
    """[MQTT-3.1.2-27]: Topic Alias Maximum absent or 0, no Topic Alias is sent; nor
    with topic_alias_send_maximum = 0. Every delivery has its Topic Name."""
    broker = make_broker(topic_alias_send_maximum=send_maximum)
    sub = subscriber(broker, topic_alias_maximum=client_maximum)
    pub = publisher(broker)
    for _ in range(3):
        pub.send(Publish("ta/a", b"m"))
    assert received(pub, sub) == [("ta/a", None)] * 3


@pytest.mark.parametrize("version", [MQTT_3_1, MQTT_3_1_1])
def test_no_alias_for_mqtt_3(broker: BrokerThread, version: int) -> None:
    """MQTT 3.1.x has no aliases: the same topic again comes with its name."""
    sub = connect(broker.port, version, "sub")
    subscribe_and_sync(sub, Subscription("ta/#", 0))
    pub = publisher(broker)
    for _ in range(3):
        pub.send(Publish("ta/a", b"m"))
    assert [p.topic for p in publishes(settle(pub, sub)[0])] == ["ta/a"] * 3


def test_a_new_connection_starts_with_no_alias(broker: BrokerThread) -> None:
    """[MQTT-3.3.2-7]: aliases belong to the network connection. A resumed session's
    next message on a topic aliased before carries the topic again."""
    fields: dict[str, Any] = {"topic_alias_maximum": 3, **persistent(MQTT_5)}
    sub = subscriber(broker, **fields)
    pub = publisher(broker)
    pub.send(Publish("ta/a", b"1"))
    pub.send(Publish("ta/a", b"2"))
    assert received(pub, sub) == [("ta/a", 1), ("", 1)]
    drop(sub)
    wait_offline(broker, "sub")
    sub = connect(broker.port, MQTT_5, "sub", present=True, **fields)
    pub.send(Publish("ta/a", b"3"))
    pub.send(Publish("ta/a", b"4"))
    assert received(pub, sub) == [("ta/a", 1), ("", 1)]


def test_qos1_resend_after_reconnect_carries_the_topic(broker: BrokerThread) -> None:
    """A message first sent with an empty Topic Name and an alias is resent, after
    the client reconnects, with its topic: the new connection knows no alias."""
    fields: dict[str, Any] = {"topic_alias_maximum": 3, **persistent(MQTT_5)}
    sub = subscriber(broker, 1, **fields)
    pub = publisher(broker)
    publish(pub, Publish("ta/a", b"1", 1, packet_id=1))
    publish(pub, Publish("ta/a", b"2", 1, packet_id=2))
    first, second = recv_publish(sub), recv_publish(sub)
    assert (first.topic, first.topic_alias, second.topic, second.topic_alias) == (
        "ta/a",
        1,
        "",
        1,
    )
    sub.send(Puback(first.packet_id))  # only the second is left unacknowledged
    assert sync(sub) == []
    drop(sub)
    wait_offline(broker, "sub")
    sub = connect(broker.port, MQTT_5, "sub", present=True, **fields)
    resent = recv_publish(sub)
    assert resent == Publish("ta/a", b"2", 1, dup=True, packet_id=second.packet_id, topic_alias=1)
    acknowledge(sub, resent)
    # And the alias it set is used from then on.
    publish(pub, Publish("ta/a", b"3", 1, packet_id=3))
    later = recv_publish(sub)
    assert (later.topic, later.topic_alias, later.payload) == ("", 1, b"3")


def test_resend_to_a_client_without_aliases_now_has_no_alias(broker: BrokerThread) -> None:
    """The client states no Topic Alias Maximum when it comes back: the message sent
    with an alias before is resent plain."""
    sub = subscriber(broker, 1, topic_alias_maximum=3, **persistent(MQTT_5))
    pub = publisher(broker)
    publish(pub, Publish("ta/a", b"1", 1, packet_id=1))
    first = recv_publish(sub)
    assert (first.topic, first.topic_alias) == ("ta/a", 1)
    drop(sub)
    wait_offline(broker, "sub")
    sub = connect(broker.port, MQTT_5, "sub", present=True, **persistent(MQTT_5))
    assert recv_publish(sub) == Publish("ta/a", b"1", 1, dup=True, packet_id=first.packet_id)


def test_maximum_packet_size_counts_the_bytes_sent(broker: BrokerThread) -> None:
    """[MQTT-3.1.2-24] (5.0): the size checked is that of the packet as sent. A message that
    fits only without the 3-byte Topic Alias property goes without it (the alias is
    not taken); one that fits only with the empty Topic Name an alias allows is sent;
    [MQTT-3.1.2-25] one that fits in no form is discarded."""
    topic = "ta/" + "t" * 40
    limit = len(Publish(topic, b"x" * 100).encode(MQTT_5))  # a 100-byte payload, plain
    assert len(Publish("", b"y" * 130, topic_alias=1).encode(MQTT_5)) <= limit
    assert len(Publish("", b"z" * 200, topic_alias=1).encode(MQTT_5)) > limit
    sub = subscriber(broker, topic_alias_maximum=3, maximum_packet_size=limit)
    pub = publisher(broker)
    pub.send(Publish(topic, b"x" * 100))  # fits plain, not with topic and alias
    pub.send(Publish(topic, b"s"))  # sets the alias
    pub.send(Publish(topic, b"y" * 130))  # fits only with an empty Topic Name
    pub.send(Publish(topic, b"z" * 200))  # fits in no form: discarded
    pub.send(Publish(topic, b"e"))
    [packets] = settle(pub, sub)
    assert [(p.topic, p.topic_alias, len(p.payload)) for p in publishes(packets)] == [
        (topic, None, 100),
        (topic, 1, 1),
        ("", 1, 130),
        ("", 1, 1),
    ]


# Clients we did not write.


def test_paho_gets_the_aliases(broker: BrokerThread) -> None:
    """paho-mqtt 2.2 decodes the aliases but does not resolve them (its on_message gets
    the empty Topic Name and the TopicAlias property): resolving them here as a client
    must, every message maps back to the topic it was published to."""
    sub = PahoClient(broker.port, "sub", MQTT_5, topic_alias_maximum=2)
    sub.subscribe("ta/#", 1)
    pub = PahoClient(broker.port, "pub", MQTT_5)
    topics = ["ta/a", "ta/a", "ta/b", "ta/c", "ta/a", "ta/c"]
    for number, topic in enumerate(topics):
        pub.publish(topic, b"%d" % number, 1)
    got = sub.take(len(topics))
    assert [(m.topic, prop(m, "TopicAlias")) for m in got] == [
        ("ta/a", 1),
        ("", 1),
        ("ta/b", 2),
        ("ta/c", 1),
        ("ta/a", 2),
        ("", 1),
    ]
    mapping: dict[int, str] = {}
    resolved = []
    for message in got:
        alias = prop(message, "TopicAlias")
        if message.topic:
            mapping[alias] = message.topic
        resolved.append((mapping[alias], message.payload))
    assert resolved == [(topic, b"%d" % n) for n, topic in enumerate(topics)]


def run_aliases_js(port: int, maximum: int, topics: list[str]) -> list[dict[str, object]]:
    """Run tests/interop/js/aliases.mjs; what MQTT.js received."""
    if not (JS_DIR / "node_modules" / "mqtt").is_dir():
        pytest.fail("MQTT.js is not installed: run `make deps-node`")
    result = subprocess.run(
        [
            "node",
            str(JS_DIR / "aliases.mjs"),
            f"mqtt://127.0.0.1:{port}",
            "--maximum",
            str(maximum),
            "--topics",
            ",".join(topics),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=JS_DIR,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    received: list[dict[str, object]] = json.loads(result.stdout)["received"]
    return received


def test_mqtt_js_resolves_the_aliases(broker: BrokerThread) -> None:
    """MQTT.js with topicAliasMaximum 2 gets every message on its topic, though most
    came with an alias only (its own messages, published without aliases)."""
    topics = ["ta/a", "ta/a", "ta/b", "ta/c", "ta/a", "ta/c", "ta/c"]
    received = run_aliases_js(broker.port, 2, topics)
    assert [(m["topic"], m["payload"]) for m in received] == [
        (topic, f"message {n}") for n, topic in enumerate(topics)
    ]
    assert [m["alias"] for m in received] == [1, 1, 2, 1, 2, 1, 1]


def test_mqtt_js_without_a_maximum_gets_no_alias(broker: BrokerThread) -> None:
    received = run_aliases_js(broker.port, 0, ["ta/a", "ta/a"])
    assert received == [
        {"topic": "ta/a", "payload": f"message {n}", "alias": None} for n in range(2)
    ]


def test_roost_client_resolves_the_aliases(broker: BrokerThread) -> None:
    """Roost's own client, with topic_alias_maximum 2, sees every message on its topic."""
    topics = ["ta/a", "ta/a", "ta/b", "ta/c", "ta/a", "ta/c"]

    async def exchange() -> list[tuple[str, bytes]]:
        async with Client("127.0.0.1", broker.port, topic_alias_maximum=2) as client:
            await client.subscribe("ta/#", qos=1)
            stream = client.messages()
            for number, topic in enumerate(topics):
                await client.publish(topic, b"%d" % number, qos=1)
            got = []
            async with asyncio.timeout(TIMEOUT):
                async for message in stream:
                    got.append((message.topic, message.payload))
                    if len(got) == len(topics):
                        break
            return got

    assert asyncio.run(exchange()) == [(topic, b"%d" % n) for n, topic in enumerate(topics)]
