"""Mosquitto-format ACL files: parsed once, compiled per client, asked per topic.

The format (mosquitto.conf(5), ``acl_file``)::

    # Comment lines start with "#".
    topic read $SYS/#                 # before any "user" line: anonymous clients
    user roger                        # the following topic lines are roger's
    topic foo/bar                     # no access word: read and write
    topic deny foo/bar/secret
    pattern write sensors/%u/%c/#     # every client, %u/%c filled in

``topic [read|write|readwrite|deny] FILTER`` and ``pattern [...] FILTER``; the access
word is optional unless the filter contains a space. ``%c`` (client id) and ``%u``
(username) are substituted where they are a whole level; a ``%u`` pattern does not apply
to clients without a username, and no pattern applies to a client whose username or
client id contains ``+`` or ``#`` (Mosquitto's defence against CVE-2017-7650).

How a question is answered, as Mosquitto does: the client's own rules (its user's, or
the anonymous ones) first, ``deny`` rules before the rest; then the patterns, again
``deny`` first. The first rule whose filter matches the topic decides: a ``deny`` rule
refuses, a rule granting the access asked for allows, other matches are passed over.
A ``$``-topic is matched only by rules whose filter starts with ``$``. If nothing
decides, the answer is no; a client for which the file has no rules at all (and no
patterns exist) gets ``None``, which leaves the question to the next backend.

Subscribing is not in Mosquitto's file format, so Roost derives it from read access:
a filter may be subscribed if a rule grants read access to some topic it can match,
unless a ``deny`` rule covers every topic it can match. Each delivered message is then
checked for read access too, so a subscription to ``a/#`` never delivers a denied
``a/secret``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from roost.codec import CodecError
from roost.protocol.topics import validate_topic_filter

__all__ = ["READ", "WRITE", "AclFile", "AclFileError", "AclRule", "ClientRules"]

DENY = 0
READ = 1
WRITE = 2
_ACCESS_WORDS = {"read": READ, "write": WRITE, "readwrite": READ | WRITE, "deny": DENY}


class AclFileError(Exception):
    """An ACL file Roost cannot use; ``str()`` is ``FILE:LINE: PROBLEM``."""

    def __init__(self, problem: str, *, path: str, line: int | None = None) -> None:
        self.problem = problem
        self.path = path
        self.line = line
        where = path if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True, slots=True)
class AclRule:
    """One ``topic`` or ``pattern`` line of an ACL file: the access it grants on a
    topic filter, and the line it came from.
    """

    access: int  # READ | WRITE bits; 0 (DENY) refuses
    topic_filter: str
    line: int = 0


class AclFile:
    """The rules of one file: anonymous ones, per-user ones, and patterns."""

    __slots__ = ("anonymous", "patterns", "users")

    def __init__(
        self,
        anonymous: tuple[AclRule, ...] = (),
        users: dict[str, tuple[AclRule, ...]] | None = None,
        patterns: tuple[AclRule, ...] = (),
    ) -> None:
        self.anonymous = anonymous
        self.users = users or {}
        self.patterns = patterns

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AclFile:
        source = os.fspath(path)
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise AclFileError(f"cannot read the file: {exc.strerror or exc}", path=source) from exc
        except UnicodeDecodeError:
            raise AclFileError("not valid UTF-8", path=source) from None
        return cls.parse(text, source)

    @classmethod
    def parse(cls, text: str, source: str = "<acl>") -> AclFile:
        anonymous: list[AclRule] = []
        users: dict[str, list[AclRule]] = {}
        patterns: list[AclRule] = []
        current = anonymous
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            keyword, _, rest = line.partition(" ")
            rest = rest.strip()
            if keyword == "user":
                if not rest:
                    raise AclFileError("user without a username", path=source, line=number)
                current = users.setdefault(rest, [])
            elif keyword in ("topic", "pattern"):
                rule = _parse_rule(keyword, rest, source, number)
                (current if keyword == "topic" else patterns).append(rule)
            else:
                raise AclFileError(
                    f"unknown line {line!r} (expected topic, pattern or user)",
                    path=source,
                    line=number,
                )
        return cls(
            _deny_first(anonymous),
            {user: _deny_first(rules) for user, rules in users.items()},
            _deny_first(patterns),
        )

    def rules_for(self, username: str | None, client_id: str) -> ClientRules:
        """The effective rules of one client, patterns filled in: compiled once per CONNECT."""
        own = self.anonymous if username is None else self.users.get(username, ())
        compiled_patterns: list[_Compiled] = []
        # Substituting a wildcard would let a client widen its own rules.
        unsafe = any("+" in name or "#" in name for name in (username or "", client_id))
        if not unsafe:
            for rule in self.patterns:
                levels = _substitute(rule.topic_filter, username, client_id)
                if levels is not None:
                    compiled_patterns.append(_Compiled(rule.access, levels))
        return ClientRules(
            tuple(_Compiled(rule.access, tuple(rule.topic_filter.split("/"))) for rule in own),
            tuple(compiled_patterns),
            has_patterns=bool(self.patterns),
            unsafe=unsafe and bool(self.patterns),
        )


def _parse_rule(keyword: str, rest: str, source: str, number: int) -> AclRule:
    word, _, topic = rest.partition(" ")
    topic = topic.strip()
    if not word:
        raise AclFileError(f"{keyword} without a topic", path=source, line=number)
    if not topic:
        # One word: the filter itself, with read and write access.
        word, topic = "readwrite", word
    access = _ACCESS_WORDS.get(word)
    if access is None:
        raise AclFileError(
            f"unknown access {word!r} (expected read, write, readwrite or deny)",
            path=source,
            line=number,
        )
    try:
        validate_topic_filter(topic)
    except CodecError as exc:
        raise AclFileError(
            f"invalid topic filter {topic!r}: {exc}", path=source, line=number
        ) from None
    return AclRule(access, topic, number)


def _deny_first(rules: list[AclRule]) -> tuple[AclRule, ...]:
    return tuple(sorted(rules, key=lambda rule: rule.access != DENY))  # stable sort


def _substitute(topic_filter: str, username: str | None, client_id: str) -> tuple[str, ...] | None:
    levels = []
    for level in topic_filter.split("/"):
        if level == "%c":
            levels.extend(client_id.split("/"))
        elif level == "%u":
            if username is None:
                return None
            levels.extend(username.split("/"))
        else:
            levels.append(level)
    return tuple(levels)


@dataclass(frozen=True, slots=True)
class _Compiled:
    access: int
    levels: tuple[str, ...]

    @property
    def dollar(self) -> bool:
        return self.levels[0].startswith("$")


class ClientRules:
    """One client's rules, ready to answer; the caller caches the answers."""

    __slots__ = ("_has_patterns", "_own", "_patterns", "_unsafe")

    def __init__(
        self,
        own: tuple[_Compiled, ...],
        patterns: tuple[_Compiled, ...],
        *,
        has_patterns: bool,
        unsafe: bool,
    ) -> None:
        self._own = own
        self._patterns = patterns
        self._has_patterns = has_patterns
        self._unsafe = unsafe

    def check(self, access: int, topic: str) -> bool | None:
        """May the client READ or WRITE ``topic``? None: the file has nothing on this client."""
        levels = topic.split("/")
        dollar = topic.startswith("$")
        decided = _first_match(self._own, access, levels, dollar)
        if decided is not None:
            return decided
        if self._unsafe:
            return False
        decided = _first_match(self._patterns, access, levels, dollar)
        if decided is not None:
            return decided
        return None if not self._own and not self._has_patterns else False

    def check_subscribe(self, topic_filter: str) -> bool | None:
        """May the client subscribe with ``topic_filter`` (see the module docstring)?"""
        levels = topic_filter.split("/")
        decided = _first_overlap(self._own, levels)
        if decided is not None:
            return decided
        if self._unsafe:
            return False
        decided = _first_overlap(self._patterns, levels)
        if decided is not None:
            return decided
        return None if not self._own and not self._has_patterns else False


def _first_match(
    rules: tuple[_Compiled, ...], access: int, topic: list[str], dollar: bool
) -> bool | None:
    for rule in rules:
        if dollar and not rule.dollar:
            continue
        if _matches(rule.levels, topic):
            if rule.access == DENY:
                return False
            if rule.access & access:
                return True
    return None


def _first_overlap(rules: tuple[_Compiled, ...], topic_filter: list[str]) -> bool | None:
    for rule in rules:
        if rule.access == DENY:
            if _covers(rule.levels, topic_filter):
                return False
        elif rule.access & READ and _intersects(rule.levels, topic_filter):
            return True
    return None


def _matches(levels: tuple[str, ...], topic: list[str]) -> bool:
    count = len(topic)
    for index, level in enumerate(levels):
        if level == "#":
            return True  # '#' also matches its parent level: "a/#" matches "a"
        if index >= count or (level != "+" and level != topic[index]):
            return False
    return len(levels) == count


def _covers(outer: tuple[str, ...], inner: list[str]) -> bool:
    """True if every topic ``inner`` matches is matched by ``outer`` (both filters)."""
    if inner[0].startswith("$") and not outer[0].startswith("$"):
        return False  # a wildcard first level does not reach $-topics
    for index, level in enumerate(outer):
        if level == "#":
            return True
        if index >= len(inner):
            return False
        mine = inner[index]
        if mine == "#" or (level != "+" and (mine == "+" or mine != level)):
            return False
    return len(outer) == len(inner)


def _intersects(first: tuple[str, ...], second: list[str]) -> bool:
    """True if some topic name matches both filters."""
    if first[0].startswith("$") != second[0].startswith("$"):
        return False  # $-topics match only filters that start with a literal $ level
    for index in range(max(len(first), len(second))):
        one = first[index] if index < len(first) else None
        two = second[index] if index < len(second) else None
        if one == "#" or two == "#":
            return True
        if one is None or two is None:
            return False
        if "+" not in (one, two) and one != two:
            return False
    return True
