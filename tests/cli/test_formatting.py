"""`roost sub`'s output: Mosquitto's -F format strings and the --json lines."""

from __future__ import annotations

import pytest

from roost.cli.formatting import compile_format, json_line, render
from roost.client import Message

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
