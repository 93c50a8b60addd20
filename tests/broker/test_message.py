"""A routed message's PUBLISH bytes: the templates match the codec's encoding exactly."""

from __future__ import annotations

import pytest

from roost.broker.message import Message
from roost.codec import MQTT_3_1, MQTT_3_1_1, MQTT_5

MESSAGES = [
    Message("a/b", b"payload", 1, True, "c"),
    Message("", b"", 0, False),
    Message("t/" + "x" * 200, b"y" * 20_000, 2, True),  # a 3-byte remaining length
    Message("é/ü", b"\x00\xff", 1, False),
    Message(
        "p", b"with properties", 1, True, None, None, 1, "text/plain", "r", b"cd", (("k", "v"),)
    ),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: repr(m.topic[:8]))
@pytest.mark.parametrize("version", [MQTT_3_1, MQTT_3_1_1, MQTT_5])
@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("retain", [False, True])
def test_template_bytes_are_the_codecs(
    message: Message, version: int, qos: int, retain: bool
) -> None:
    packet_id = 0x1234 if qos else 0
    expected = message.to_publish(qos, retain, packet_id).encode(version)
    assert message.encode(version, qos, retain, packet_id) == expected
    assert message.encode(version, qos, retain, packet_id) == expected  # from the template
    if qos:
        resent = message.to_publish(qos, retain, 7, dup=True).encode(version)
        assert message.encode(version, qos, retain, 7, dup=True) == resent
