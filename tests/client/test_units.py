"""Small pure pieces: backoff, format strings, reason names, message properties."""

from __future__ import annotations

import random

import pytest

from roost.client import Message, ReconnectPolicy, reason_name
from roost.client.formatting import compile_format, json_line, render


def test_backoff_is_jittered_and_capped() -> None:
    policy = ReconnectPolicy(initial_delay=1.0, max_delay=5.0, multiplier=2.0, max_attempts=6)
    delays = list(policy.delays(random.Random(7)))
    assert len(delays) == 6
    ceilings = [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == 6  # jittered, not a fixed schedule
    endless = ReconnectPolicy().delays()
    assert len([next(endless) for _ in range(100)]) == 100


MESSAGE = Message(
    "a/b",
    b"hi\x00",
    qos=1,
    retain=True,
    packet_id=9,
    content_type="text/plain",
    user_properties=(("k", "v"), ("k", "w")),
    subscription_identifiers=(3, 4),
    correlation_data=b"\x01",
)


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("%t %q %r %l %m %%", b"a/b 1 1 3 9 %"),
        ("%x|%X", b"686900|686900"),
        (r"%p\n\t\\\0", b"hi\x00\n\t\\\x00"),
        ("%C;%P;%S;%D;%E;%R", b"text/plain;k:v k:w;3,4;\x01;;"),
        ("%c@@", b"me@"),
        ("@Y", b"1970"),
    ],
)
def test_format_sequences(fmt: str, expected: bytes) -> None:
    assert render(compile_format(fmt, "me"), MESSAGE, stamp=3600.0 * 24) == expected


@pytest.mark.parametrize("fmt", ["%Z", r"\q", "%A"])
def test_unknown_format_sequences_are_refused(fmt: str) -> None:
    with pytest.raises(ValueError, match="unknown"):
        compile_format(fmt)


def test_json_line() -> None:
    record = json_line(MESSAGE)
    assert record["payload"] == "hi\x00"
    assert record["properties"] == {
        "content_type": "text/plain",
        "correlation_data": "AQ==",
        "user_properties": [["k", "v"], ["k", "w"]],
        "subscription_identifiers": [3, 4],
    }
    assert "payload_base64" in json_line(Message("t", b"\xff"))


def test_reason_names() -> None:
    assert reason_name(0x86) == "bad username or password"
    assert reason_name(0x8B) == "server shutting down"
    assert reason_name(4, version=4) == "bad username or password"
    assert reason_name(0xFE) == "reason code 0xFE"
