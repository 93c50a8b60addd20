"""The reference topic matcher and shared-filter parsing (MQTT 5.0 sections 4.7, 4.8.2)."""

from __future__ import annotations

import pytest

from roost.codec import topics as codec_topics
from roost.codec.errors import TopicFilterInvalid
from roost.protocol import topics
from roost.protocol.topics import is_wildcard, parse_shared, topic_matches

# (filter, topic, matches): the examples of sections 4.7.1.2, 4.7.1.3, 4.7.2 and 4.7.3.
SPEC_EXAMPLES = [
    # 4.7.1.2 multi-level wildcard
    ("sport/tennis/player1/#", "sport/tennis/player1", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/#", "sport", True),
    ("#", "sport/tennis/player1", True),
    ("#", "/", True),
    ("sport/tennis/#", "sport/tennis", True),
    ("sport/tennis/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/#", "sport/tennisplayer1", False),
    # 4.7.1.3 single-level wildcard
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player2", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),
    ("+", "sport", True),
    ("+/tennis/#", "sport/tennis/player1", True),
    ("+/tennis/#", "sport/tennis", True),
    ("sport/+/player1", "sport/tennis/player1", True),
    ("sport/+/player1", "sport/tennis/player2", False),
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("+", "/finance", False),
    # 4.7.2 topics beginning with $
    ("#", "$SYS/monitor/Clients", False),
    ("+/monitor/Clients", "$SYS/monitor/Clients", False),
    ("$SYS/#", "$SYS/monitor/Clients", True),
    ("$SYS/#", "$SYS", True),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    # 4.7.3 case, spaces, and the empty levels that leading/trailing '/' make
    ("ACCOUNTS", "Accounts", False),
    ("ACCOUNTS", "ACCOUNTS", True),
    ("Accounts payable", "Accounts payable", True),
    ("/finance", "finance", False),
    ("finance", "/finance", False),
    ("/", "/", True),
    ("a//b", "a//b", True),
    ("a/+/b", "a//b", True),
    ("a/b/", "a/b", False),
    ("a/b/+", "a/b/", True),
    ("a/#", "a/", True),
]


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), SPEC_EXAMPLES)
def test_spec_examples(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        # The $ rule is about the first level only.
        ("a/+", "a/$b", True),
        ("a/#", "a/$b/c", True),
        ("$SYS/+", "$SYS/x", True),
        ("+", "$", False),
        # A filter that names the $ level literally is fine.
        ("$share", "$share", True),
    ],
)
def test_dollar_rule(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


def test_shared_filter_matches_by_its_inner_filter() -> None:
    assert topic_matches("$share/g/sport/#", "sport/tennis")
    assert not topic_matches("$share/g/#", "$SYS/x")
    assert not topic_matches("$share/g/a", "$share/g/a")


@pytest.mark.parametrize(
    ("topic_filter", "expected"),
    [
        ("$share/consumers/sport/#", ("consumers", "sport/#")),
        ("$share/g/a/b", ("g", "a/b")),
        ("$share/g//", ("g", "/")),
        ("$share/g/$SYS/#", ("g", "$SYS/#")),
        ("sport/#", (None, "sport/#")),
        ("$SYS/#", (None, "$SYS/#")),
        ("$share", (None, "$share")),
        ("$sharex/g/a", (None, "$sharex/g/a")),
    ],
)
def test_parse_shared(topic_filter: str, expected: tuple[str | None, str]) -> None:
    assert parse_shared(topic_filter) == expected


@pytest.mark.parametrize("topic_filter", ["$share/", "$share//a", "$share/g", "$share/g/"])
def test_parse_shared_refuses_incomplete(topic_filter: str) -> None:
    with pytest.raises(TopicFilterInvalid):
        parse_shared(topic_filter)


@pytest.mark.parametrize(
    ("topic_filter", "expected"),
    [("a/b", False), ("a/+", True), ("#", True), ("$share/g/a", False), ("$share/g/+", True)],
)
def test_is_wildcard(topic_filter: str, expected: bool) -> None:
    assert is_wildcard(topic_filter) is expected


def test_validators_are_the_codecs() -> None:
    assert topics.validate_topic_name is codec_topics.validate_topic_name
    assert topics.validate_topic_filter is codec_topics.validate_topic_filter
