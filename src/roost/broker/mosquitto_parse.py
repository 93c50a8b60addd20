"""Reading mosquitto.conf(5) line by line, by Mosquitto 2.x's rules (its src/conf.c).

``MosquittoReader.read_file`` collects what each line says, per scope (global, a
listener, a bridge), with the line it came from; a line Mosquitto refuses raises
``ConfigError`` with file and line; a line Roost cannot apply becomes a ``Notice``.
``mosquitto_conf`` turns the result into Roost's schema.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn, cast

from roost.broker.config import ConfigError
from roost.broker.mosquitto_options import (
    BRIDGE_OPTIONS,
    LISTENER_OPTIONS,
    SECURITY_OPTIONS,
    UNSUPPORTED,
    atoi,
    include_order,
)

# With per_listener_settings, these make Mosquitto start the default listener (port
# 1883) when set before any `listener` line; allow_anonymous and acl_file do not.
_STARTS_DEFAULT_LISTENER = frozenset(
    {"password_file", "psk_file", "auth_plugin", "plugin", "allow_zero_length_clientid"}
)
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}
_EXPIRY_UNITS = {"h": 3600, "d": 86400, "w": 86400 * 7, "m": 86400 * 30, "y": 86400 * 365}
_BRIDGE_PROTOCOLS = {"mqttv31": "mqttv31", "mqttv311": "mqttv311", "mqttv50": "mqttv5"}


@dataclass(frozen=True, slots=True)
class Notice:
    """A line Roost applies differently from Mosquitto, or not at all, and what to do."""

    source: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.text}"


@dataclass(slots=True)
class Security:
    """Mosquitto's security options: global, or a listener's with per_listener_settings."""

    allow_anonymous: tuple[bool, tuple[str, int]] | None = None
    password_file: tuple[str, tuple[str, int]] | None = None
    acl_file: tuple[str, tuple[str, int]] | None = None
    touched: bool = False


@dataclass(slots=True)
class Listener:
    where: tuple[str, int] | None  # the `listener` line; None: the default listener
    port: int = 1883
    host: str | None = None
    websockets: bool = False
    settings: dict[str, tuple[object, tuple[str, int]]] = field(default_factory=dict)
    security: Security = field(default_factory=Security)
    used: bool = False  # the default listener: something set it up


@dataclass(slots=True)
class _Line:
    source: str
    number: int
    option: str
    words: list[str]  # the value split on spaces, as Mosquitto's strtok(" ") does
    rest: str  # everything after the option, blanks trimmed (Mosquitto's strings)

    @property
    def where(self) -> tuple[str, int]:
        return (self.source, self.number)


class MosquittoReader:
    """What a mosquitto.conf and its include_dir files say, scope by scope.

    Scopes follow Mosquitto: options before any `listener` line (in each file) set up
    the default listener; security options are global unless per_listener_settings;
    bridge options belong to the last `connection` of the same file.
    """

    def __init__(self) -> None:
        self.notices: list[Notice] = []
        self.files: list[str] = []  # in the order read: the main file, then includes
        self.values: dict[str, tuple[object, tuple[str, int]]] = {}
        self.default = Listener(None)
        self.listeners: list[Listener] = []
        self.security = Security()
        self.per_listener = False
        self.local_only = True
        self.bridges: list[tuple[dict[str, object], tuple[str, int]]] = []
        self.strings_seen: set[tuple[int, str]] = set()  # (scope id, option): duplicates

    # -- lines -----------------------------------------------------------------------

    def read_file(self, path: str, level: int) -> None:
        try:
            if Path(path).is_dir():
                raise ConfigError("is a directory, not a configuration file", source=path)
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the file: {exc.strerror or exc}", source=path) from exc
        self.files.append(path)
        current = self.default
        bridge: dict[str, object] | None = None
        for number, text in enumerate(raw.split(b"\n"), 1):
            if text.startswith(b"#") or text in (b"", b"\r"):
                continue  # a comment may be in any encoding: Mosquitto never reads it
            try:
                decoded = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ConfigError("not valid UTF-8", source=path, line=number) from exc
            words = [word for word in decoded.rstrip("\r\n").split(" ") if word]
            if not words:
                continue
            option = words[0]
            after = decoded.rstrip("\r\n").split(option, 1)[1]
            line = _Line(path, number, option, words[1:], after.strip(" \t"))
            if option == "include_dir":
                self._include(line, level)
            elif option == "listener":
                current = self._listener(line)
            elif option == "connection":
                bridge = self._connection(line)
            elif option in BRIDGE_OPTIONS:
                if bridge is None:
                    self._fail(line, "only inside a bridge (after a `connection` line)")
                self._bridge_option(line, bridge)
            else:
                self._option(line, current)

    def _include(self, line: _Line, level: int) -> None:
        if level > 0:
            self._notice(
                line, "include_dir is read only in the main file (as Mosquitto does): ignored"
            )
            return
        if not line.rest:
            self._fail(line, "empty value")
        directory = line.rest
        try:
            names = [name for name in os.listdir(directory) if name.endswith(".conf")]
        except OSError as exc:
            self._fail(line, f"cannot read the directory {directory}: {exc.strerror or exc}")
        for name in include_order(names):
            self.read_file(os.path.join(directory, name), level + 1)

    def _listener(self, line: _Line) -> Listener:
        self.local_only = False
        if not line.words:
            self._fail(line, "empty value")
        port = atoi(line.words[0])
        self._check_number(line, line.words[0])
        if port == 0 and len(line.words) > 1 and not line.words[1].startswith("#"):
            self._fail(
                line, "a Unix socket listener (port 0 and a path): Roost listens on TCP only"
            )
        if not 1 <= port <= 65535:
            if port == 0:
                self._fail(line, "a listener with port 0 must provide a Unix socket path")
            self._fail(line, f"invalid port ({port})")
        host = line.words[1] if len(line.words) > 1 and not line.words[1].startswith("#") else None
        listener = Listener(line.where, port, host)
        self.listeners.append(listener)
        return listener

    def _connection(self, line: _Line) -> dict[str, object]:
        if not line.words:
            self._fail(line, "empty value")
        name = line.words[0]
        if any(bridge["name"] == name for bridge, _ in self.bridges):
            self._fail(line, f'duplicate bridge name "{name}"')
        bridge: dict[str, object] = {"name": name}
        self.bridges.append((bridge, line.where))
        return bridge

    # -- options -----------------------------------------------------------------------

    def _option(self, line: _Line, listener: Listener) -> None:
        option = line.option
        if option in SECURITY_OPTIONS:
            security = listener.security if self.per_listener else self.security
            security.touched = True
            if self.per_listener and option in _STARTS_DEFAULT_LISTENER:
                listener.used = True
        if option in ("port", "bind_address"):
            self.local_only = False
            self.default.used = True
            if option == "port":
                port = self._int(line)
                if not 1 <= port <= 65535:
                    self._fail(line, f"invalid port ({port})")
                self.default.port = port
            else:
                self.default.host = self._string(line, id(self.default))
            self._notice(
                line, f"{option} is deprecated in Mosquitto; read as a listener on the default port"
            )
        elif option in LISTENER_OPTIONS:
            listener.used = True
            self._listener_option(line, listener)
        elif option == "per_listener_settings":
            value = self._bool(line)
            if value and (
                self.security.touched or any(lst.security.touched for lst in self._all_listeners())
            ):
                self._fail(
                    line, "per_listener_settings must be set before any other security settings"
                )
            self.per_listener = value
        elif option == "allow_anonymous":
            security = listener.security if self.per_listener else self.security
            security.allow_anonymous = (self._bool(line), line.where)
        elif option in ("password_file", "acl_file"):
            security = listener.security if self.per_listener else self.security
            path = self._string(line, id(security))
            setattr(security, option, (path, line.where))
        elif option in _GLOBALS:
            _GLOBALS[option](self, line)
        elif option in UNSUPPORTED or option.startswith(("auth_opt_", "plugin_opt_")):
            self._unsupported(line)
        else:
            self._fail(line, f'unknown configuration variable "{option}"')

    def _listener_option(self, line: _Line, listener: Listener) -> None:
        option = line.option
        if option == "protocol":
            if not line.words:
                self._notice(line, "empty protocol value: ignored (Mosquitto ignores it too)")
                return
            if line.words[0] not in ("mqtt", "websockets"):
                self._fail(line, f"invalid protocol value ({line.words[0]})")
            listener.websockets = line.words[0] == "websockets"
        elif option in ("cafile", "certfile", "keyfile", "crlfile"):
            listener.settings[option] = (self._string(line, id(listener)), line.where)
        elif option in ("require_certificate", "use_identity_as_username"):
            listener.settings[option] = (self._bool(line), line.where)
        elif option == "tls_version":
            # Checked where Mosquitto checks it, when the listener sets up TLS.
            listener.settings[option] = (self._string(line, id(listener)), line.where)
        elif option == "max_connections":
            if not line.words:
                self._notice(
                    line, "empty max_connections value: ignored (Mosquitto ignores it too)"
                )
                return
            count = atoi(line.words[0])
            self._check_number(line, line.words[0])
            listener.settings[option] = (max(count, 0), line.where)
        elif option in ("max_qos", "maximum_qos"):
            qos = self._int(line)
            if not 0 <= qos <= 2:
                self._fail(line, "max_qos must be between 0 and 2 inclusive")
            listener.settings["maximum_qos"] = (qos, line.where)
        elif option == "max_topic_alias":
            aliases = self._int(line)
            if not 0 <= aliases <= 65535:
                self._fail(line, "invalid max_topic_alias value")
            listener.settings["topic_alias_maximum"] = (aliases, line.where)
        else:
            self._unsupported(line)

    def _bridge_option(self, line: _Line, bridge: dict[str, object]) -> None:
        option = line.option
        if option in ("address", "addresses"):
            if "addresses" in bridge:
                self._fail(line, "invalid bridge configuration: a second address line")
            addresses = []
            for word in line.words:
                if word.startswith("#"):
                    break
                host, colon, port_text = word.rpartition(":")
                port = atoi(port_text) if colon else 1883
                if colon and not 1 <= port <= 65535:
                    self._fail(line, f"invalid port value ({port})")
                addresses.append(f"{host if colon else word}:{port}")
            if not addresses:
                self._fail(line, "empty address value")
            bridge["addresses"] = addresses
        elif option == "topic":
            self._bridge_topic(line, bridge)
        elif option == "bridge_protocol_version":
            if line.rest not in _BRIDGE_PROTOCOLS:
                self._fail(line, f"invalid bridge_protocol_version value ({line.rest})")
            bridge["protocol"] = _BRIDGE_PROTOCOLS[line.rest]
        elif option in ("remote_clientid", "clientid"):
            bridge["client_id"] = self._string(line, id(bridge), "client_id")
        elif option in ("remote_username", "username"):
            bridge["username"] = self._string(line, id(bridge), "username")
        elif option in ("remote_password", "password"):
            bridge["password"] = self._string(line, id(bridge), "password")
        elif option in ("bridge_cafile", "bridge_certfile", "bridge_keyfile"):
            tls = cast("dict[str, str]", bridge.setdefault("tls", {}))
            tls[option.removeprefix("bridge_")] = self._string(line, id(bridge), option)
        elif option == "cleansession":
            bridge["clean_start"] = self._bool(line)
        elif option in ("notifications", "try_private"):
            bridge[option] = self._bool(line)
        elif option == "keepalive_interval":
            value = self._int(line)
            if value > 65535:
                self._fail(line, "bridge keepalive value too high")
            if value < 5:
                self._notice(line, "keepalive_interval below 5: 5 seconds, as Mosquitto does")
            bridge["keep_alive"] = max(value, 5)
        elif option == "start_type":
            start = line.words[0] if line.words else ""
            if start not in ("automatic", "lazy", "once"):
                self._fail(line, f"invalid start_type value ({start or 'empty'})")
            bridge["start_type"] = start
        elif option == "restart_timeout":
            if not line.words:
                self._fail(line, "empty restart_timeout value")
            base = max(atoi(line.words[0]), 1)
            if len(line.words) > 1:
                cap = atoi(line.words[1])
                if cap < base:
                    self._fail(line, "backoff cap is lower than the base in restart_timeout")
                bridge["restart_timeout"] = [base, cap]
            else:
                bridge["restart_timeout"] = base
        else:
            self._unsupported(line)

    def _bridge_topic(self, line: _Line, bridge: dict[str, object]) -> None:
        words = line.words
        if not words:
            self._fail(line, "empty topic value")
        pattern = "" if words[0] == '""' else words[0]
        topic: dict[str, object] = {"pattern": pattern, "direction": "out", "qos": 0}
        if len(words) > 1:
            direction = words[1].lower()
            if direction not in ("in", "out", "both"):
                self._fail(line, f"invalid bridge topic direction '{words[1]}'")
            topic["direction"] = direction
        if len(words) > 2:
            qos = atoi(words[2])
            if not 0 <= qos <= 2:
                self._fail(line, f"invalid bridge QoS level '{words[2]}'")
            topic["qos"] = qos
        prefixes: list[str | None] = [None, None]
        for index, word in enumerate(words[3:5]):
            if word.startswith("#"):
                break
            prefixes[index] = "" if word == '""' else word
        for name, prefix in zip(("local", "remote"), prefixes, strict=True):
            if prefix and ("+" in prefix or "#" in prefix):
                self._fail(line, f"invalid bridge topic {name} prefix '{prefix}'")
        if not pattern and not (prefixes[0] and prefixes[1]):
            self._fail(line, "invalid bridge remapping (an empty pattern needs both prefixes)")
        topic["local_prefix"] = prefixes[0] or ""
        topic["remote_prefix"] = prefixes[1] or ""
        cast("list[object]", bridge.setdefault("topics", [])).append(topic)

    def _unsupported(self, line: _Line) -> None:
        option = line.option
        key = "auth_opt_" if option.startswith(("auth_opt_", "plugin_opt_")) else option
        kind, advice = UNSUPPORTED[key]
        if kind == "bool":
            self._bool(line)
        elif kind == "int":
            self._int(line)
        elif kind == "string":
            self._string(line, id(self), option)
        self._notice(line, f"{option}: no equivalent in Roost, not applied; {advice}")

    # -- values, as conf.c parses them ---------------------------------------------------

    def _bool(self, line: _Line) -> bool:
        if not line.words:
            self._fail(line, "empty value")
        word = line.words[0]
        value = _BOOLEANS.get(word)
        if value is None:
            self._fail(line, f"invalid value ({word}): true or false")
        return value

    def _int(self, line: _Line) -> int:
        if not line.words:
            self._fail(line, "empty value")
        self._check_number(line, line.words[0])
        return atoi(line.words[0])

    def _check_number(self, line: _Line, word: str) -> None:
        if str(atoi(word)) != word.lstrip("+"):
            self._notice(
                line, f'"{word}" is not an integer; read as {atoi(word)}, as Mosquitto does'
            )

    def _string(self, line: _Line, scope: int, name: str | None = None) -> str:
        if not line.rest:
            self._fail(line, "empty value")
        if (scope, name or line.option) in self.strings_seen:
            self._fail(line, "duplicate value in configuration (Mosquitto refuses a second one)")
        self.strings_seen.add((scope, name or line.option))
        if " #" in line.rest:
            self._notice(line, f'the value is "{line.rest}": Mosquitto has no end-of-line comments')
        return line.rest

    def _notice(self, line: _Line, text: str) -> None:
        self.notices.append(Notice(line.source, line.number, text))

    def _fail(self, line: _Line, problem: str) -> NoReturn:
        raise ConfigError(problem, source=line.source, line=line.number, key=line.option)

    def _all_listeners(self) -> list[Listener]:
        return [self.default, *self.listeners]


_Handler = Callable[[MosquittoReader, "_Line"], None]


def _global(key: str, kind: str) -> _Handler:
    def handler(reader: MosquittoReader, line: _Line) -> None:
        value: object = reader._bool(line) if kind == "bool" else reader._int(line)
        reader.values[key] = (value, line.where)

    return handler


def _checked_int(key: str, low: int, high: int | None, clamp_low: int | None = None) -> _Handler:
    def handler(reader: MosquittoReader, line: _Line) -> None:
        value = reader._int(line)
        if clamp_low is not None and value < clamp_low:
            value = clamp_low
        if value < low or (high is not None and value > high):
            reader._fail(line, f"invalid {line.option} value ({value})")
        reader.values[key] = (value, line.where)

    return handler


def _string_value(key: str) -> _Handler:
    def handler(reader: MosquittoReader, line: _Line) -> None:
        reader.values[key] = (reader._string(line, id(reader)), line.where)

    return handler


def _expiration(reader: MosquittoReader, line: _Line) -> None:
    if not line.words:
        reader._notice(
            line, "empty persistent_client_expiration value: ignored (Mosquitto ignores it too)"
        )
        return
    word = line.words[0]
    unit = _EXPIRY_UNITS.get(word[-1])
    seconds = atoi(word[:-1]) * unit if unit else 0
    if seconds <= 0:
        reader._fail(
            line, "invalid persistent_client_expiration duration (a number and h, d, w, m or y)"
        )
    reader.values["persistent_client_expiration"] = (seconds, line.where)


def _log_dest(reader: MosquittoReader, line: _Line) -> None:
    if not line.words:
        reader._fail(line, "empty log_dest value")
    dest = line.words[0]
    if dest not in ("none", "syslog", "stdout", "stderr", "topic", "dlt", "file"):
        reader._fail(line, f"invalid log_dest value ({dest})")
    if dest == "file":
        path = line.rest[len("file") :].strip(" \t")
        if not path:
            reader._fail(line, 'empty "log_dest file" value')
        if "log_file" in reader.values:
            reader._fail(line, 'duplicate "log_dest file" value')
        reader.values["log_file"] = (path, line.where)
    if dest in ("stderr", "file", "syslog") and "log_dest" not in reader.values:
        reader.values["log_dest"] = (dest, line.where)
    elif dest == "stderr" or dest in ("file", "syslog"):
        reader._notice(line, f"log_dest {dest}: Roost logs to one destination; kept the first")
    else:
        advice = {"stdout": "Roost logs to stderr", "none": 'use log_level = "error"'}
        reader._notice(line, f"log_dest {dest}: no equivalent in Roost, not applied; "
                       f"{advice.get(dest, 'Roost logs to stderr, a file or syslog')}")  # fmt: skip


def _log_type(reader: MosquittoReader, line: _Line) -> None:
    types = ("none", "information", "notice", "warning", "error", "debug", "subscribe",
             "unsubscribe", "internal", "websockets", "all")  # fmt: skip
    if line.words and line.words[0] not in types:
        reader._fail(line, f"invalid log_type value ({line.words[0]})")
    if line.words and line.words[0] in ("debug", "all"):
        reader.values["log_level"] = ("debug", line.where)
        return
    reader._notice(line, "log_type: Roost has levels, not types (log_level); not applied")


_GLOBALS: dict[str, _Handler] = {
    "max_packet_size": _checked_int("max_packet_size", 20, None),
    "max_keepalive": _checked_int("max_keep_alive", 10, 65535),
    "max_inflight_messages": _checked_int("max_inflight_messages", 0, 65535, clamp_low=0),
    "max_queued_messages": _checked_int("max_queued_messages", 0, None, clamp_low=0),
    "max_queued_bytes": _checked_int("max_queued_bytes", 0, None, clamp_low=0),
    "sys_interval": _checked_int("sys_interval", 0, 65535),
    "retain_available": _global("retain_available", "bool"),
    "queue_qos0_messages": _global("queue_qos0_messages", "bool"),
    "persistence": _global("persistence", "bool"),
    "retained_persistence": _global("persistence", "bool"),
    "persistence_location": _string_value("persistence_location"),
    "persistent_client_expiration": _expiration,
    "log_dest": _log_dest,
    "log_type": _log_type,
}
