"""Where each key of a TOML document is defined: the line numbers config errors cite.

tomllib reports no positions for values, so when a loaded configuration has a problem,
``KeyLocator`` scans the (already valid) TOML text for the line that defines each key
and table. Valid input keeps this simple: a statement is a [table] header, a [[array]]
header or a key = value pair, and only strings and brackets can span lines.

This module owns only the scanning; what counts as a problem, and the messages, are
``roost.broker.config``'s.
"""

from __future__ import annotations

import bisect
import string
import tomllib
from collections.abc import Mapping

# A key's place in the document: table and key names, and indexes into arrays
# (("listeners", 0, "port") for listeners[0].port).
KeyPath = tuple[str | int, ...]
# The characters of a TOML bare key; any other key must be quoted.
BARE_KEY_CHARS = frozenset(string.ascii_letters + string.digits + "_-")


class KeyLocator:
    """Answers "which line defines this key?" for one TOML text, scanning it on first use."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._lines: dict[KeyPath, int] | None = None

    def line_of(self, path: KeyPath) -> int | None:
        """The line defining ``path``, or its nearest enclosing key; None if unknown.

        Falling back to the enclosing key covers values inside inline tables and
        arrays, which are on (or start at) the line of the key that holds them.
        """
        if self._lines is None:  # scan only once there is an error to report
            self._lines = _scan_key_lines(self._text)
        for end in range(len(path), 0, -1):
            line = self._lines.get(path[:end])
            if line is not None:
                return line
        return None


def _scan_key_lines(text: str) -> dict[KeyPath, int]:
    newlines = [i for i, ch in enumerate(text) if ch == "\n"]
    lines: dict[KeyPath, int] = {}
    array_lengths: dict[KeyPath, int] = {}  # [[name]] tables seen so far, per array
    table: KeyPath = ()
    pos = 0
    while pos < len(text):
        ch = text[pos]
        if ch in " \t\r\n":
            pos += 1
            continue
        if ch == "#":
            pos = _line_end(text, pos)
            continue
        line = bisect.bisect_right(newlines, pos) + 1
        if ch == "[":
            is_array = text.startswith("[[", pos)
            keys, pos = _parse_key(text, pos + (2 if is_array else 1))
            pos = _line_end(text, pos)  # past "]" or "]]" and any comment
            if is_array:
                array = (*_resolve(keys[:-1], array_lengths), keys[-1])
                index = array_lengths.get(array, 0)
                array_lengths[array] = index + 1
                table = (*array, index)
            else:
                table = _resolve(keys, array_lengths)
            for end in range(1, len(table) + 1):
                lines.setdefault(table[:end], line)
            continue
        keys, pos = _parse_key(text, pos)
        for end in range(1, len(keys) + 1):
            lines.setdefault((*table, *keys[:end]), line)
        pos = _skip_value(text, pos + 1)  # + 1: past the "="
    return lines


def _resolve(keys: tuple[str, ...], array_lengths: Mapping[KeyPath, int]) -> KeyPath:
    """A header's key path, with each array of tables replaced by its last element."""
    path: KeyPath = ()
    for key in keys:
        path = (*path, key)
        if path in array_lengths:
            path = (*path, array_lengths[path] - 1)
    return path


def _parse_key(text: str, pos: int) -> tuple[tuple[str, ...], int]:
    """A (dotted) key starting at ``pos``; returns its parts and the position after it."""
    parts: list[str] = []
    while True:
        while text[pos] in " \t":
            pos += 1
        if text[pos] == '"':
            end = pos + 1
            while text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            # Let tomllib undo the escapes: the quoted key is also a valid string value.
            parts.append(str(tomllib.loads(f"k = {text[pos : end + 1]}")["k"]))
            pos = end + 1
        elif text[pos] == "'":
            end = text.index("'", pos + 1)
            parts.append(text[pos + 1 : end])
            pos = end + 1
        else:
            start = pos
            while text[pos] in BARE_KEY_CHARS:
                pos += 1
            parts.append(text[start:pos])
        while text[pos] in " \t":
            pos += 1
        if text[pos] != ".":
            return tuple(parts), pos
        pos += 1


def _skip_value(text: str, pos: int) -> int:
    """The position of the newline (or end of text) that ends the value at ``pos``."""
    depth = 0  # open [ and { brackets; only inside them may a value span lines
    while pos < len(text):
        ch = text[pos]
        if ch in "\"'":
            pos = _skip_string(text, pos)
            continue
        if ch == "#":
            pos = _line_end(text, pos)
            continue
        if ch == "\n" and depth == 0:
            return pos
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        pos += 1
    return pos


def _skip_string(text: str, pos: int) -> int:
    """The position just after the string (of any of TOML's four kinds) at ``pos``."""
    quote = text[pos]
    escapes = quote == '"'
    if text.startswith(quote * 3, pos):
        delimiter, pos = quote * 3, pos + 3
    else:
        delimiter, pos = quote, pos + 1
    while not text.startswith(delimiter, pos):
        pos += 2 if escapes and text[pos] == "\\" else 1
    pos += len(delimiter)
    # A multi-line string may end with one or two quotes just before its delimiter:
    # """a""""" is 'a""'. The delimiter is the last three quotes of the run.
    extra = 0
    while len(delimiter) == 3 and extra < 2 and text.startswith(quote, pos):
        pos += 1
        extra += 1
    return pos


def _line_end(text: str, pos: int) -> int:
    end = text.find("\n", pos)
    return len(text) if end < 0 else end
