"""Syntax of topic names and topic filters (MQTT 5.0 section 4.7, 4.8.2).

The codec refuses ill-formed names and filters while decoding; routing rules that
depend on meaning (the $-topic rule, shared-subscription groups) live in
``roost.protocol.topics``.
"""

from __future__ import annotations

from roost.codec.errors import TopicFilterInvalid, TopicNameInvalid

SHARE_PREFIX = "$share/"


def validate_topic_name(topic: str) -> None:
    if not topic:
        raise TopicNameInvalid("topic name is empty")
    if "+" in topic or "#" in topic:
        raise TopicNameInvalid(f"topic name {topic!r} contains a wildcard")


def validate_topic_filter(topic_filter: str) -> None:
    if not topic_filter:
        raise TopicFilterInvalid("topic filter is empty")
    if topic_filter.startswith(SHARE_PREFIX):
        group, sep, inner = topic_filter[len(SHARE_PREFIX) :].partition("/")
        if not group or "+" in group or "#" in group:
            raise TopicFilterInvalid(f"invalid share name in {topic_filter!r}")
        if not sep or not inner:
            raise TopicFilterInvalid(f"shared subscription {topic_filter!r} has no filter")
        topic_filter = inner
    if "+" not in topic_filter and "#" not in topic_filter:
        return
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if "+" in level and level != "+":
            raise TopicFilterInvalid(f"'+' must fill a whole level in {topic_filter!r}")
        if "#" in level and (level != "#" or index != last):
            raise TopicFilterInvalid(f"'#' must be the whole last level in {topic_filter!r}")
