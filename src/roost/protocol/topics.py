"""What topic names and filters mean (MQTT 5.0 sections 4.7 and 4.8.2).

Syntax is checked by the codec (``roost.codec.topics``, re-exported here); this module
adds the meaning: which part of ``$share/{ShareName}/{filter}`` is the group, whether a
filter matches a name, and the rule that wildcards at the first level do not reach
``$``-topics [MQTT-4.7.2-1].

``topic_matches`` is the reference matcher: clear rather than fast. The broker routes
with the trie in ``roost.broker.subscriptions``, and the tests hold the two to agreeing.
"""

from __future__ import annotations

from roost.codec.errors import TopicFilterInvalid
from roost.codec.topics import SHARE_PREFIX, validate_topic_filter, validate_topic_name

__all__ = [
    "SHARE_PREFIX",
    "is_wildcard",
    "parse_shared",
    "topic_matches",
    "validate_topic_filter",
    "validate_topic_name",
]


def parse_shared(topic_filter: str) -> tuple[str | None, str]:
    """Split a filter into (share name, inner filter); (None, filter) if it is not shared.

    ``$share/consumers/sport/#`` gives ``("consumers", "sport/#")``. A filter that
    starts with ``$share/`` but has no share name or no inner filter raises
    ``TopicFilterInvalid``: the codec refuses those already, and silently treating one
    as an ordinary filter would subscribe the client to the wrong thing.
    """
    if not topic_filter.startswith(SHARE_PREFIX):
        return None, topic_filter
    group, sep, inner = topic_filter[len(SHARE_PREFIX) :].partition("/")
    if not group or not sep or not inner:
        raise TopicFilterInvalid(f"shared subscription {topic_filter!r} is incomplete")
    return group, inner


def is_wildcard(topic_filter: str) -> bool:
    """True if the filter contains ``+`` or ``#`` (a share name may hold neither)."""
    return "+" in topic_filter or "#" in topic_filter


def topic_matches(topic_filter: str, topic: str) -> bool:
    """True if ``topic`` (a topic name) matches ``topic_filter``.

    ``+`` matches exactly one level, which may be empty; ``#`` matches its parent level
    and everything below it, so ``sport/#`` matches ``sport``. A filter whose first
    level is a wildcard never matches a name starting with ``$`` [MQTT-4.7.2-1]. A
    shared filter is matched by its inner filter: the share name only picks the group.
    Both arguments are assumed valid (the codec checks them).
    """
    _, topic_filter = parse_shared(topic_filter)
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            # Validation put '#' last, so every remaining topic level (or none) matches.
            return True
        if index >= len(topic_levels):
            return False
        if level not in ("+", topic_levels[index]):
            return False
    return len(filter_levels) == len(topic_levels)
