"""A mosquitto.conf as Roost configuration: the same broker, as Mosquitto 2.x would run it.

``read_mosquitto_conf`` reads the file (``mosquitto_parse``) and maps it onto Roost's
TOML schema: a plain mapping that ``config.config_from_mapping`` checks as it checks a
TOML file, the bridges apart (``[[bridges]]`` tables), a ``Notice`` for every line Roost
applies differently or not at all, and the line each key came from. Where Mosquitto
2.x's defaults differ from Roost's, the mapping states Mosquitto's (``MOSQUITTO_DEFAULTS``;
no listener: local only, anonymous allowed; a listener: anonymous refused).
``load_mosquitto_config`` gives the checked ``BrokerConfig``.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from roost.broker.auth.no_credentials import PLUGIN_PATH
from roost.broker.config import (
    _MOSQUITTO_LINE,
    _MOSQUITTO_OPTIONS,
    BrokerConfig,
    ConfigError,
    config_from_mapping,
)
from roost.broker.mosquitto_parse import Listener, MosquittoReader, Notice
from roost.broker.toml_key_lines import KeyPath

_Where = tuple[str, int]
_TOML_LINE = re.compile(r"""^(\[|[A-Za-z0-9_."'-]+\s*=)""")  # a table header or key = value

# Mosquitto 2.x's behaviour where Roost's defaults differ, and why (the converter's comments).
MOSQUITTO_DEFAULTS: dict[str, tuple[object, str]] = {
    "max_packet_size": (268_435_460, "Mosquitto's default: no limit but MQTT's own"),
    "max_subscriptions_per_client": (0, "Mosquitto's default: no limit"),
    "persistent_session_expiry": (4_294_967_295, "Mosquitto's default: sessions never expire"),
    "max_session_expiry_interval": (4_294_967_295, "Mosquitto's default: no cap"),
    "persistence": ("memory", "Mosquitto's default: persistence false"),
}
_EVERY_IPV4 = "0.0.0.0"  # noqa: S104  (Mosquitto's listener without an address)
_MOSQUITTO_NAMES = {"maximum_qos": "max_qos", "topic_alias_maximum": "max_topic_alias"}
_TLS_VERSIONS = {"tlsv1.3": "1.3", "tlsv1.2": "1.2", "tlsv1.1": "1.2"}
_NO_LIMIT = 4_294_967_295  # Mosquitto's 0 ("no maximum") for counts Roost requires >= 1
_REFUSE_ALL = "Mosquitto 2 refuses every client: no password_file, anonymous refused"


@dataclass(slots=True)
class MosquittoConf:
    """A mosquitto.conf read: Roost's schema, the bridges apart, notices, lines, comments."""

    source: str
    data: dict[str, object] = field(default_factory=dict)
    bridges: list[dict[str, object]] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    lines: dict[KeyPath, _Where] = field(default_factory=dict)
    # Why a key has its value, where that is not plain from the file (the converter's
    # comments): Mosquitto's defaults, the local-only listener, and such.
    comments: dict[KeyPath, str] = field(default_factory=dict)
    bridge_lines: list[_Where] = field(default_factory=list)

    def note(self, where: _Where, text: str) -> None:
        self.notices.append(Notice(where[0], where[1], text))

    def set(self, path: KeyPath, value: object, where: _Where | None, comment: str = "") -> None:
        target: Any = self.data  # the path alternates tables and arrays
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
        if where is not None:
            self.lines[path] = where
        if comment:
            self.comments[path] = comment


def looks_like_mosquitto(path: str | os.PathLike[str]) -> bool:
    """Mosquitto's format by content (the first setting is an ``option value`` line of a
    known option), else by a ``.conf`` name unless that first setting is TOML's."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _MOSQUITTO_LINE.match(line)
        if match and match[1] in _MOSQUITTO_OPTIONS:
            return True
        if _TOML_LINE.match(stripped):
            return False
        break
    return os.fspath(path).endswith(".conf")


def read_mosquitto_conf(path: str | os.PathLike[str]) -> MosquittoConf:
    """Read a mosquitto.conf (and its include_dir files); ConfigError on what Mosquitto refuses."""
    source = os.fspath(path)
    reader = MosquittoReader()
    reader.read_file(source, 0)
    conf = MosquittoConf(source, notices=reader.notices)
    _listeners(reader, conf)
    _security(reader, conf)
    _refuse_credentials(reader, conf)
    _globals(reader, conf)
    _bridges(reader, conf)
    conf.notices.sort(key=lambda notice: (reader.files.index(notice.source), notice.line))
    return conf


def load_mosquitto_config(path: str | os.PathLike[str]) -> tuple[BrokerConfig, list[Notice]]:
    """The checked BrokerConfig of a mosquitto.conf, and the notices to log."""
    conf = read_mosquitto_conf(path)
    data = dict(conf.data)
    notices = list(conf.notices)
    if conf.bridges:
        data["bridges"] = conf.bridges
    config = config_from_mapping(data, conf.source, lines=conf.lines)
    return config, notices


def _listeners(reader: MosquittoReader, conf: MosquittoConf) -> None:
    started = [*reader.listeners, *([reader.default] if reader.default.used else [])]
    conf.data["listeners"] = []
    if not started:
        conf.data["listeners"] = [{"host": "127.0.0.1", "port": 1883}]
        conf.comments[("listeners",)] = (
            "Mosquitto with no listener: local only, on 127.0.0.1 and ::1 port 1883"
        )
        return
    for index, listener in enumerate(started):
        conf.data["listeners"].append({})  # type: ignore[attr-defined]
        _listener(listener, index, conf)
    _per_listener_to_global(started, "maximum_qos", conf)
    _per_listener_to_global(started, "topic_alias_maximum", conf)


def _listener(listener: Listener, index: int, conf: MosquittoConf) -> None:
    where = listener.where
    settings = listener.settings
    if where is not None:
        conf.lines[("listeners", index)] = where
    host_comment = "" if listener.host else 'Mosquitto: every interface (add host "::" for IPv6)'
    conf.set(("listeners", index, "host"), listener.host or _EVERY_IPV4, where, host_comment)
    conf.set(("listeners", index, "port"), listener.port, where)
    tls = "certfile" in settings and "keyfile" in settings
    kind = {(False, False): "tcp", (True, False): "tls", (False, True): "ws", (True, True): "wss"}
    conf.set(("listeners", index, "type"), kind[tls, listener.websockets], where)
    if listener.websockets:
        conf.note(
            (where or _first(settings, conf)),
            ('websockets: Roost answers at path "/mqtt" only (Mosquitto at any path)'),
        )
    for key in ("certfile", "keyfile", "cafile", "require_certificate",
                "use_identity_as_username", "crlfile", "tls_version"):  # fmt: skip
        if key not in settings:
            continue
        value, at = settings[key]
        if not tls:
            conf.note(
                at,
                f"{key}: TLS needs both certfile and keyfile;"
                " Mosquitto runs this listener without TLS, and so does Roost",
            )
        elif listener.websockets and key not in ("certfile", "keyfile", "cafile"):
            conf.note(
                at,
                f"{key}: Mosquitto ignores it on a websockets listener, so Roost does not apply it",
            )
        elif key == "tls_version":
            conf.set(("listeners", index, key), _tls_version(value, at, conf), at)
        elif key == "use_identity_as_username":
            if value:
                conf.set(("listeners", index, key), "cn", at, "the certificate's common name")
        else:
            conf.set(("listeners", index, key), value, at)
    if "max_connections" in settings:
        value, at = settings["max_connections"]
        conf.set(("listeners", index, "max_connections"), value, at)


def _tls_version(value: object, at: _Where, conf: MosquittoConf) -> str:
    if value not in _TLS_VERSIONS:
        raise ConfigError(
            f'unsupported tls_version "{value}" (tlsv1.3, tlsv1.2 or tlsv1.1)',
            source=at[0],
            line=at[1],
            key="tls_version",
        )
    if value == "tlsv1.1":
        conf.note(at, "tls_version tlsv1.1: Roost accepts TLS 1.2 and later only")
    return _TLS_VERSIONS[str(value)]


def _first(settings: dict[str, tuple[object, _Where]], conf: MosquittoConf) -> _Where:
    return next((at for _, at in settings.values()), (conf.source, 1))


def _per_listener_to_global(started: list[Listener], key: str, conf: MosquittoConf) -> None:
    """Mosquitto's per-listener max_qos and max_topic_alias; one broker-wide key in Roost."""
    values = [(lst.settings[key], lst) for lst in started if key in lst.settings]
    if not values:
        return
    (value, at), _ = values[0]
    conf.set((key,), value, at)
    if len(values) < len(started) or any(v != value for (v, _), _ in values):
        for (_, other), _ in values:
            conf.note(
                other,
                f"{_MOSQUITTO_NAMES[key]}: per listener in Mosquitto; Roost's {key} ="
                f" {value} applies to every listener",
            )


def _security(reader: MosquittoReader, conf: MosquittoConf) -> None:
    if not reader.per_listener:
        security = reader.security
        if reader.local_only:
            conf.set(("allow_anonymous",), True, None, "Mosquitto's local-only mode")
        elif security.allow_anonymous is None:
            conf.set(("allow_anonymous",), False, None, "Mosquitto 2's default with a listener")
        for name in ("allow_anonymous", "password_file", "acl_file"):
            setting = getattr(security, name)
            if setting is not None and not (name == "allow_anonymous" and reader.local_only):
                conf.set((name,), setting[0], setting[1])
            elif setting is not None:
                conf.note(
                    setting[1],
                    "allow_anonymous: Mosquitto with no"
                    " listener allows anonymous clients, local ones only",
                )
        return
    started = [*reader.listeners, *([reader.default] if reader.default.used else [])]
    if not reader.default.used:
        for name in ("allow_anonymous", "password_file", "acl_file"):
            setting = getattr(reader.default.security, name)
            if setting is not None:
                conf.note(
                    setting[1],
                    f"{name}: with per_listener_settings"
                    " true, before any listener: Mosquitto ignores it, so does Roost",
                )
    for index, listener in enumerate(started):
        setting = listener.security.allow_anonymous
        if setting is None:
            comment = "Mosquitto 2's default" if not reader.local_only else "local-only mode"
            conf.set(("listeners", index, "allow_anonymous"), reader.local_only, None, comment)
        else:
            conf.set(("listeners", index, "allow_anonymous"), setting[0], setting[1])
    for name in ("password_file", "acl_file"):
        settings = [getattr(lst.security, name) for lst in started]
        chosen = next((s for s in settings if s is not None), None)
        if chosen is None:
            continue
        conf.set((name,), chosen[0], chosen[1])
        if all(s is not None and s[0] == chosen[0] for s in settings):
            continue
        for setting in settings:
            if setting is not None and setting[0] != chosen[0]:
                conf.note(
                    setting[1],
                    f"{name}: Roost has one {name} for"
                    f" every listener; {chosen[0]} applies, not this one",
                )
        if any(s is None for s in settings):
            conf.note(
                chosen[1],
                f"{name}: per listener in Mosquitto; Roost"
                " applies it on every listener, also those that had none",
            )


def _refuse_credentials(reader: MosquittoReader, conf: MosquittoConf) -> None:
    """Mosquitto 2.x refuses every client where anonymous clients are refused and there
    is no password file or plugin; Roost needs a plugin to say so."""
    if reader.local_only or "password_file" in conf.data:
        return
    listeners = cast("list[dict[str, object]]", conf.data["listeners"])
    refusing = [
        listener.get("allow_anonymous", conf.data.get("allow_anonymous")) is False
        for listener in listeners
    ]
    if all(refusing):
        conf.set(("auth_plugin",), PLUGIN_PATH, None, _REFUSE_ALL)
        return
    started = [*reader.listeners, *([reader.default] if reader.default.used else [])]
    for listener, refuses in zip(started, refusing, strict=True):
        if refuses:
            conf.note(
                listener.where or (conf.source, 1),
                "Mosquitto refuses every client on this listener (no password_file,"
                " anonymous refused); Roost lets in clients that send a user name",
            )


def _globals(reader: MosquittoReader, conf: MosquittoConf) -> None:
    values = dict(reader.values)
    direct = ("max_packet_size", "max_keep_alive", "sys_interval", "retain_available",
              "queue_qos0_messages", "max_queued_bytes", "log_dest", "log_file",
              "log_level")  # fmt: skip
    for key in direct:
        if key in values:
            value, at = values.pop(key)
            if key == "max_packet_size" and isinstance(value, int) and value > 268_435_460:
                conf.note(at, "max_packet_size: above MQTT's largest packet; 268435460 applies")
                value = 268_435_460
            conf.set((key,), value, at)
    for key, roost_max in (("max_inflight_messages", 65535), ("max_queued_messages", _NO_LIMIT)):
        if key in values:
            value, at = values.pop(key)
            comment = "Mosquitto's 0: no limit" if value == 0 else ""
            conf.set((key,), value or roost_max, at, comment)
    expiration = values.pop("persistent_client_expiration", None)
    if expiration is not None:
        conf.set(("persistent_session_expiry",), expiration[0], expiration[1])
        conf.set(("max_session_expiry_interval",), expiration[0], expiration[1])
    persistence = values.pop("persistence", None)
    location = values.pop("persistence_location", None)
    if persistence is not None and persistence[0]:
        conf.set(("persistence",), "sqlite", persistence[1])
        conf.set(("data_dir",), location[0] if location else ".", location[1] if location else None,
                 "" if location else "Mosquitto's default: the working directory")  # fmt: skip
        conf.note(
            persistence[1],
            "persistence: Roost keeps its state in"
            " roost.db and does not read mosquitto.db; what Mosquitto stored"
            " is not carried over",
        )
    else:
        if persistence is not None:
            conf.set(("persistence",), "memory", persistence[1])
        if location is not None:
            conf.note(
                location[1],
                "persistence_location: persistence is"
                " false, so Mosquitto does not use it, nor does Roost",
            )
    for key, (value, comment) in MOSQUITTO_DEFAULTS.items():
        if key not in conf.data:
            conf.set((key,), value, None, comment)
    if values:  # every value the reader collects has its key above
        raise TypeError(f"mosquitto.conf values not mapped: {sorted(values)}")


def _bridges(reader: MosquittoReader, conf: MosquittoConf) -> None:
    defaults: dict[str, object] = {
        "protocol": "mqttv311",
        "clean_start": False,
        "keep_alive": 60,
        "try_private": True,
        "notifications": True,
        "start_type": "automatic",
        "restart_timeout": [5, 30],
    }
    for bridge, where in reader.bridges:
        if "addresses" not in bridge:
            raise ConfigError("invalid bridge configuration: no remote addresses defined",
                              source=where[0], line=where[1], key="connection")  # fmt: skip
        if "topics" not in bridge:
            raise ConfigError("invalid bridge configuration: no topics defined",
                              source=where[0], line=where[1], key="connection")  # fmt: skip
        full: dict[str, object] = {"name": bridge["name"], "addresses": bridge["addresses"]}
        full["protocol"] = bridge.get("protocol", defaults["protocol"])
        # Mosquitto's default remote client id: this host's name, a dot, the bridge's name.
        full["client_id"] = bridge.get("client_id", f"{socket.gethostname()}.{bridge['name']}")
        for key in ("clean_start", "keep_alive", "username", "password", "try_private",
                    "notifications", "start_type", "restart_timeout", "tls", "topics"):  # fmt: skip
            if key in bridge or key in defaults:
                full[key] = bridge.get(key, defaults.get(key))
        conf.bridges.append(full)
        conf.bridge_lines.append(where)
