"""Printing received messages: Mosquitto's ``-F`` format strings, ``-v`` and JSON lines.

A format string is compiled once into a list of pieces, each either bytes or a function
of (message, time), so printing a message is one pass with no parsing.

Supported ``-F`` sequences (the rest of Mosquitto's, such as field widths, are not)::

    %%  a literal %              %t  topic                 %p  payload (raw bytes)
    %q  QoS                      %r  retain flag (0/1)     %l  payload length
    %m  packet id (QoS > 0)      %x  payload as hex        %X  payload as HEX
    %c  client id                %I  ISO-8601 time         %U  Unix time with ns
    %j  JSON object (see below)  %C  content type          %D  correlation data
    %E  message expiry interval  %F  payload format ind.   %P  user properties k:v
    %R  response topic           %S  subscription ids
    @X  strftime's %X            @@  a literal @           @N  nanoseconds
    \\n \\t \\r \\v \\a \\e \\0 \\\\  escapes
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import datetime

from roost.client import Message

Piece = bytes | Callable[[Message, float], bytes]

_ESCAPES = {
    "n": b"\n",
    "t": b"\t",
    "r": b"\r",
    "v": b"\v",
    "a": b"\a",
    "e": b"\x1b",
    "0": b"\0",
    "\\": b"\\",
}


def _text(value: object) -> bytes:
    return b"" if value is None else str(value).encode()


def _iso(stamp: float) -> bytes:
    return datetime.fromtimestamp(stamp).astimezone().strftime("%Y-%m-%dT%H:%M:%S%z").encode()


def _unix(stamp: float) -> bytes:
    return f"{stamp:.9f}".encode()


def json_line(message: Message, client_id: str = "") -> dict[str, object]:
    """The ``--json`` object: topic, qos, retain, properties, and the payload as text
    (``payload``) when it is UTF-8, otherwise as base64 (``payload_base64``)."""
    record: dict[str, object] = {
        "topic": message.topic,
        "qos": message.qos,
        "retain": message.retain,
        "properties": message.properties,
    }
    try:
        record["payload"] = message.payload.decode("utf-8")
    except UnicodeDecodeError:
        record["payload_base64"] = base64.b64encode(message.payload).decode("ascii")
    return record


def _mosquitto_json(message: Message, stamp: float) -> bytes:
    # %j: Mosquitto's shape (tst, topic, qos, retain, payloadlen, payload).
    tst = datetime.fromtimestamp(stamp).astimezone().strftime("%Y-%m-%dT%H:%M:%S.%f%z")
    record: dict[str, object] = {
        "tst": tst,
        "topic": message.topic,
        "qos": message.qos,
        "retain": int(message.retain),
        "payloadlen": len(message.payload),
    }
    if message.qos:
        record["mid"] = message.packet_id
    record.update(message.properties)
    record["payload"] = message.text
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def _fields(client_id: str) -> dict[str, Callable[[Message, float], bytes]]:
    return {
        "t": lambda m, _: m.topic.encode(),
        "p": lambda m, _: m.payload,
        "q": lambda m, _: b"%d" % m.qos,
        "r": lambda m, _: b"%d" % m.retain,
        "l": lambda m, _: b"%d" % len(m.payload),
        "m": lambda m, _: b"%d" % m.packet_id,
        "x": lambda m, _: m.payload.hex().encode(),
        "X": lambda m, _: m.payload.hex().upper().encode(),
        "c": lambda m, _: client_id.encode(),
        "I": lambda _, stamp: _iso(stamp),
        "U": lambda _, stamp: _unix(stamp),
        "j": _mosquitto_json,
        "C": lambda m, _: _text(m.content_type),
        "D": lambda m, _: m.correlation_data or b"",
        "E": lambda m, _: _text(m.message_expiry_interval),
        "F": lambda m, _: _text(m.payload_format_indicator),
        "P": lambda m, _: " ".join(f"{k}:{v}" for k, v in m.user_properties).encode(),
        "R": lambda m, _: _text(m.response_topic),
        "S": lambda m, _: ",".join(map(str, m.subscription_identifiers)).encode(),
    }


def _strftime(char: str) -> Callable[[Message, float], bytes]:
    if char == "N":
        return lambda _, stamp: b"%09d" % int((stamp % 1) * 1e9)
    spec = "%" + char
    return lambda _, stamp: time.strftime(spec, time.localtime(stamp)).encode()


def compile_format(fmt: str, client_id: str = "") -> list[Piece]:
    """Compile a ``-F`` format string; raises ValueError naming an unknown sequence."""
    fields = _fields(client_id)
    pieces: list[Piece] = []
    literal = bytearray()
    i = 0
    while i < len(fmt):
        char = fmt[i]
        if char in "%@\\" and i + 1 < len(fmt):
            code = fmt[i + 1]
            i += 2
            if char == "%" and code == "%":
                literal += b"%"
            elif char == "@" and code == "@":
                literal += b"@"
            elif char == "\\":
                if code not in _ESCAPES:
                    raise ValueError(f"unknown escape \\{code} in the format")
                literal += _ESCAPES[code]
            else:
                field = fields.get(code) if char == "%" else _strftime(code)
                if field is None:
                    raise ValueError(f"unknown or unsupported sequence %{code} in the format")
                if literal:
                    pieces.append(bytes(literal))
                    literal.clear()
                pieces.append(field)
            continue
        literal += char.encode()
        i += 1
    if literal:
        pieces.append(bytes(literal))
    return pieces


def render(pieces: list[Piece], message: Message, stamp: float | None = None) -> bytes:
    when = time.time() if stamp is None else stamp
    return b"".join(p if isinstance(p, bytes) else p(message, when) for p in pieces)
