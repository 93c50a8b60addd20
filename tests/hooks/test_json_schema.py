"""roost.hooks.json_schema: payloads checked against the schema of their topic filter;
those that fail are not routed, and MQTT 5 publishers are told 0x99."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from roost.broker import Broker, BrokerConfig, DropReason, HookConfig, HookError
from roost.codec import MQTT_5, Puback, Publish, Subscription
from roost.hooks.json_schema import JsonSchemaValidator
from tests.broker.hook_probes import instance
from tests.support import raw
from tests.support.broker_thread import BrokerThread

MakeBroker = Callable[..., BrokerThread]

READING = {
    "type": "object",
    "required": ["value"],
    "properties": {"value": {"type": "number"}},
}


def test_payloads_are_checked_per_topic_filter(make_broker: MakeBroker, tmp_path: Path) -> None:
    order = tmp_path / "order.json"
    order.write_text(json.dumps({"type": "array", "maxItems": 2}), encoding="utf-8")
    schemas = {"sensors/+/reading": READING, "orders/#": str(order)}
    broker = make_broker(hooks=[HookConfig("json_schema", {"schemas": schemas})])
    subscriber = raw.connect(broker.port, MQTT_5, "sub")
    raw.subscribe(subscriber, Subscription("#", 1))
    publisher = raw.connect(broker.port, MQTT_5, "pub")
    cases = [
        ("sensors/1/reading", b'{"value": 21.5}', 0),
        ("sensors/1/reading", b'{"value": "warm"}', 0x99),
        ("sensors/1/reading", b"not json", 0x99),
        ("sensors/1/reading", b"\xff", 0x99),
        ("orders/eu/1", b"[1, 2]", 0),
        ("orders/eu/1", b"[1, 2, 3]", 0x99),
        ("free/topic", b"anything", 0),
    ]
    for packet_id, (topic, payload, _code) in enumerate(cases, 1):
        publisher.send(Publish(topic, payload, 1, packet_id=packet_id))
    acks = [publisher.recv() for _ in cases]
    assert all(isinstance(ack, Puback) for ack in acks)
    assert [ack.reason_code for ack in acks if isinstance(ack, Puback)] == [
        code for _topic, _payload, code in cases
    ]
    got = raw.publishes(raw.settle(publisher, subscriber)[0])
    assert [(p.topic, p.payload) for p in got] == [
        ("sensors/1/reading", b'{"value": 21.5}'),
        ("orders/eu/1", b"[1, 2]"),
        ("free/topic", b"anything"),
    ]
    hook = instance(broker, JsonSchemaValidator)
    assert (hook.accepted, hook.refused) == (2, 4)
    assert broker.call(lambda: broker.broker.stats.dropped[DropReason.HOOK]) == 4


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"schemas": {"a/#": {"type": "nonsense"}}}, "not a valid schema"),
        ({"schemas": {"a/#/b": READING}}, "not a valid topic filter"),
        ({"schemas": {"a": "/no/such/file.json"}}, "cannot read"),
        ({}, "options.schemas"),
    ],
)
def test_bad_schemas_stop_the_broker_from_starting(
    options: dict[str, object], problem: str
) -> None:
    with pytest.raises(HookError, match=problem):
        Broker(BrokerConfig(hooks=[HookConfig("json_schema", options)]))
