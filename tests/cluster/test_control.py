"""The session record and the takeover answer survive their JSON round trip: every
subscription option, message property and in-flight state (control.py)."""

from __future__ import annotations

import pytest

from roost.broker.message import Message
from roost.broker.persistence.store import StoredDelivery, StoredSession
from roost.broker.records import SubscriptionRecord
from roost.cluster import control

SUBSCRIPTIONS = [
    SubscriptionRecord("é/id", "a/+", 1, no_local=True, retain_handling=2, identifier=7),
    SubscriptionRecord("é/id", "$share/g/b/#", 2, retain_as_published=True, share_group="g"),
]


def test_record_round_trip() -> None:
    record = control.SessionRecord("a", "a/0123abcd", 5, 300, True, SUBSCRIPTIONS)
    key = control.record_key("é/id")
    assert control.key_client(key) == "é/id"
    assert set(key) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")
    assert control.decode_record("é/id", control.encode_record(record)) == record


def test_answer_round_trip() -> None:
    now = 1000.0
    rich = Message(
        "a/x",
        b"\x00\xffbinary",
        2,
        False,
        expires_at=now + 60,
        payload_format_indicator=0,
        content_type="application/octet-stream",
        response_topic="reply/here",
        correlation_data=b"\x01\x02",
        user_properties=(("k", "v"), ("k", "w")),
    )
    plain = Message("b/y", b"plain", 1, True)
    state = StoredSession(
        "é/id",
        300,
        None,
        None,
        None,
        None,
        SUBSCRIPTIONS,
        [
            StoredDelivery(0, rich, 2, False, (7,), None, 12, True),
            StoredDelivery(0, plain, 1, True, (), "g", None, False),
        ],
        [3, 9],
    )
    back = control.decode_answer("é/id", control.encode_answer(state, now), now)
    assert back is not None
    assert back.subscriptions == SUBSCRIPTIONS
    assert back.receive_ids == [3, 9]
    assert [
        (d.qos, d.retain, d.subscription_ids, d.share_group, d.packet_id, d.released)
        for d in back.deliveries
    ] == [(2, False, (7,), None, 12, True), (1, True, (), "g", None, False)]
    got = back.deliveries[0].message
    assert (got.topic, got.payload, got.content_type, got.response_topic) == (
        "a/x",
        b"\x00\xffbinary",
        "application/octet-stream",
        "reply/here",
    )
    assert (got.correlation_data, got.user_properties, got.expires_at) == (
        b"\x01\x02",
        (("k", "v"), ("k", "w")),
        now + 60,
    )
    assert (back.deliveries[1].message.topic, back.deliveries[1].message.payload) == (
        "b/y",
        b"plain",
    )
    assert control.decode_answer("x", control.encode_answer(None, now), now) is None


@pytest.mark.parametrize("data", [b"", b"{}", b'{"session":{"subs":[["a"]]}}', b"[1]"])
def test_bad_answers_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="bad takeover answer"):
        control.decode_answer("x", data, 0.0)
