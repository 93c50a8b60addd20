"""MQTT topic names and filters as NATS subjects, and back (docs/clustering.md).

A topic's levels become a subject's tokens under a prefix: ``sport/tennis`` ->
``roost.m.sport.tennis``. NATS tokens may not be empty, contain whitespace or ``.``,
and a token that is exactly ``*`` or ``>`` is a wildcard, while MQTT levels may be all
of these; so a level outside a plain character set is percent-encoded (UTF-8, ``%XX``,
``.`` and ``%`` included) and an empty level is the token ``%``. The mapping is
one-to-one: two topics never share a subject, and a wildcard in a filter maps to a
wildcard only where it stands for a whole level.

A filter maps to one subject, or two when it ends in ``#``: ``a/#`` also matches ``a``
itself [MQTT-4.7.1-2], while NATS's ``a.>`` needs at least one more token. ``#`` alone
needs one, every topic having at least one level. The ``$``-topic rule [MQTT-4.7.2-1]
is not expressed here: a receiving node matches the topic in its own subscription
tree, which applies it.

Subjects longer than ``MAX_SUBJECT_BYTES`` are not used: NATS refuses control lines
over 4,096 bytes, so such topics stay on their node.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from roost.protocol.topics import parse_shared

MESSAGES = "roost.m"  # live messages: one subject per topic
RETAINED = "roost.r"  # the retained messages' stream
QOS = "roost.q"  # QoS 1 and 2 messages for other nodes: the ROOST_QOS stream
MAX_SUBJECT_BYTES = 3800  # below NATS's 4,096-byte control line, with room for the rest

_PLAIN_CHARS = r"A-Za-z0-9_\-~!$&'(),;=@:"
_SAFE_FOR_QUOTE = "-_~!$&'(),;=@:"  # plus letters and digits, which quote keeps anyway
_PLAIN_TOPIC = re.compile(f"[{_PLAIN_CHARS}]+(?:/[{_PLAIN_CHARS}]+)*")
_PLAIN_LEVEL = re.compile(f"[{_PLAIN_CHARS}]+")
EMPTY_LEVEL = "%"


def level_token(level: str) -> str:
    """One topic level as one literal NATS token."""
    if _PLAIN_LEVEL.fullmatch(level):
        return level
    if not level:
        return EMPTY_LEVEL
    # quote leaves "." alone (an unreserved URL character); here it separates tokens.
    return quote(level, safe=_SAFE_FOR_QUOTE).replace(".", "%2E")


def topic_subject(prefix: str, topic: str) -> str | None:
    """The subject ``topic`` is published on; None if it would be too long."""
    if _PLAIN_TOPIC.fullmatch(topic):
        subject = f"{prefix}.{topic.replace('/', '.')}"
    else:
        subject = f"{prefix}.{'.'.join(level_token(level) for level in topic.split('/'))}"
    if len(subject) > MAX_SUBJECT_BYTES and len(subject.encode()) > MAX_SUBJECT_BYTES:
        return None
    return subject


def subject_topic(prefix: str, subject: str) -> str:
    """The topic a subject made by ``topic_subject`` stands for."""
    tokens = subject[len(prefix) + 1 :].split(".")
    return "/".join(
        "" if token == EMPTY_LEVEL else unquote(token, errors="strict") if "%" in token else token
        for token in tokens
    )


def filter_subjects(prefix: str, topic_filter: str) -> tuple[str, ...]:
    """The subjects to subscribe to for a (possibly shared) MQTT filter: every topic
    the filter matches is published on one of them; () if one would be too long."""
    _group, inner = parse_shared(topic_filter)
    tokens = []
    for level in inner.split("/"):
        if level == "+":
            tokens.append("*")
        elif level == "#":
            break
        else:
            tokens.append(level_token(level))
    subjects: tuple[str, ...]
    if inner.endswith("#"):
        subjects = (f"{prefix}.{'.'.join([*tokens, '>'])}",)
        if tokens:  # "a/#" matches "a" too
            subjects = (*subjects, f"{prefix}.{'.'.join(tokens)}")
    else:
        subjects = (f"{prefix}.{'.'.join(tokens)}",)
    if any(len(subject.encode()) > MAX_SUBJECT_BYTES for subject in subjects):
        return ()
    return subjects
