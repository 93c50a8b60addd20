"""The broker's typed configuration and its documented defaults.

Every field here is documented in docs/configuration.md; `roost broker -c FILE`
reads the same names from TOML (see ``load_config``).
"""

from __future__ import annotations

import datetime
import difflib
import ipaddress
import json
import math
import os
import re
import tomllib
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Literal, NoReturn, TypeVar, Union, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

from roost.broker.bridge_config import BridgeConfig, BridgeTopic, check_bridges
from roost.broker.toml_key_lines import BARE_KEY_CHARS, KeyLocator, KeyPath
from roost.codec import CodecError
from roost.protocol.topics import validate_topic_filter

QueueFullPolicy = Literal["drop_newest", "drop_oldest"]
Persistence = Literal["sqlite", "memory"]
CommitPolicy = Literal["sync", "batched", "off"]
ListenerType = Literal["tcp", "tls", "ws", "wss"]
IdentitySource = Literal["", "cn", "san"]  # "": the username comes from CONNECT
TlsVersion = Literal["1.2", "1.3"]
LogLevel = Literal["debug", "info", "warning", "error"]
LogDest = Literal["stderr", "file", "syslog"]
LogFormat = Literal["text", "json"]

TLS_LISTENER_TYPES = ("tls", "wss")
WEBSOCKET_LISTENER_TYPES = ("ws", "wss")


@dataclass(slots=True)
class ListenerConfig:
    """One address the broker accepts connections on: transport, TLS files and
    per-listener limits (a ``[[listeners]]`` table).
    """

    host: str = "127.0.0.1"
    port: int = 1883
    type: ListenerType = "tcp"
    # "": unnamed. A name shows in the log and in errors, and finds the port the
    # listener was given (``Broker.ports.by_name``), which port 0 makes unknown until then.
    name: str = ""
    # WebSocket listeners (ws, wss).
    path: str = "/mqtt"
    # TLS listeners (tls, wss). Files are read at start and again on SIGHUP.
    certfile: str = ""
    keyfile: str = ""  # "": the key is in certfile
    cafile: str = ""  # CA for client certificates; set: they are asked for
    require_certificate: bool = False
    use_identity_as_username: IdentitySource = ""
    crlfile: str = ""
    tls_version: TlsVersion = "1.2"  # the lowest version accepted
    # Limits and access.
    max_connections: int = 0  # 0: no limit of this listener's own
    max_connection_rate: float = 0.0  # new connections per second admitted; 0: no limit
    allow_anonymous: bool | None = None  # None: the broker's allow_anonymous


@dataclass(slots=True)
class HttpConfig:
    """The operators' HTTP API, Prometheus metrics and dashboard (an ``[http]`` table;
    docs/operations.md). Off unless configured."""

    host: str = "127.0.0.1"  # loopback: only this machine; anything else needs api keys
    port: int = 18083  # 0: any free port (tests)
    # API keys (`roost apikey`), hashed; required when host is not a loopback address.
    api_keys_file: str | None = None
    # Origins allowed to call the API from a browser (CORS); empty: none but the page's own.
    cors_origins: list[str] = field(default_factory=list)


@dataclass(slots=True)
class HookConfig:
    """One ``[[hooks]]`` table: a broker hook to load (docs/hooks.md)."""

    path: str = ""  # "package.module:Attribute", or an entry point name in "roost.plugins"
    options: dict[str, object] = field(default_factory=dict)  # handed to the hook
    timeout: float = 10.0  # seconds an async hook method may take before it counts as failed


@dataclass(slots=True)
class ClusterConfig:
    """``[cluster]``: this broker is one node of a cluster joined through NATS
    (docs/clustering.md). Absent: a broker on its own, with no cluster code loaded."""

    # One URL or several (a TOML string or array): nats://, tls://, ws:// or wss://.
    nats_url: list[str] = field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    node: str | None = None  # unique per broker process group; None: the host name
    # Copies JetStream keeps of each stream Roost creates: 1 on a single NATS server,
    # 3 on a NATS cluster of 3 or more, so a stream outlives the loss of one server.
    replicas: int = 1
    # Seconds NATS may be unreachable before persistent sessions this node does not
    # hold are refused (CONNACK 0x88), rather than forked from the cluster's record.
    offline_session_grace: float = 30.0
    # Seconds without a heartbeat after which a node is taken for dead (its wills sent).
    node_timeout: float = 5.0


@dataclass(slots=True)
class BrokerConfig:
    """Everything the broker can be configured with; the defaults are the documented ones."""

    listeners: list[ListenerConfig] = field(default_factory=lambda: [ListenerConfig()])
    # None: anonymous clients only on listeners bound to loopback addresses.
    allow_anonymous: bool | None = None
    max_connections: int = 0  # all listeners together; 0: no limit
    # Limits on what clients may send.
    max_packet_size: int = 1_048_576
    connect_timeout: float = 10.0
    max_client_id_length: int = 65535
    max_publish_rate: float = 0.0  # PUBLISH packets per second per client; 0: no limit
    # Topics: bytes of a topic name or filter, and its levels (each level of a filter is a
    # node in the subscription trie; Mosquitto's limit, set after CVE-2019-11779, is 200).
    max_topic_length: int = 65535
    max_topic_levels: int = 200
    max_subscriptions_per_client: int = 10_000  # 0: no limit
    max_keep_alive: int = 65535  # larger requests are capped (v5: Server Keep Alive)
    receive_maximum: int = 100  # QoS 1/2 PUBLISHes a client may have unacknowledged
    topic_alias_maximum: int = 10
    maximum_qos: int = 2
    # Outgoing flow and queues.
    max_inflight_messages: int = 20  # used when the client states no Receive Maximum
    max_queued_messages: int = 1000
    max_queued_bytes: int = 0  # 0: no byte limit, only the count
    queue_full_policy: QueueFullPolicy = "drop_newest"
    queue_qos0_messages: bool = False
    # Topic aliases sent to an MQTT 5 client, at most its Topic Alias Maximum; 0: none.
    topic_alias_send_maximum: int = 10
    # Sessions.
    persistent_session_expiry: int = 7 * 24 * 3600  # 3.1.x clean session 0, in seconds
    max_session_expiry_interval: int = 7 * 24 * 3600  # caps MQTT 5 Session Expiry Interval
    # Retained messages.
    retain_available: bool = True
    max_retained_messages: int = 100_000
    # $SYS topics.
    sys_interval: float = 10.0  # seconds; 0 disables $SYS publishing
    # Authentication and authorization (roost.broker.auth); files are re-read on SIGHUP.
    password_file: str | None = None  # Mosquitto format ($7$ / $6$), `roost passwd`
    acl_file: str | None = None  # Mosquitto format: user / topic / pattern lines
    scram_file: str | None = None  # SCRAM-SHA-256/512 credentials, `roost scram`
    auth_plugin: str | None = None  # "package.module:Attribute"
    auth_plugin_options: dict[str, object] = field(default_factory=dict)
    # $-topic filters clients may publish to (others, $SYS included, are refused).
    allow_sys_publish: list[str] = field(default_factory=list)
    # Broker hooks (roost.broker.hooks), called in this order: docs/hooks.md.
    hooks: list[HookConfig] = field(default_factory=list)
    # Durable state (sessions, queues, retained messages): docs/configuration.md.
    # None: unset. A broker made in code (a program's, a test's) must not write files
    # in its working directory unasked, so unset means memory unless data_dir is set;
    # `roost broker` fills in its documented default, SQLite in ./roost-data.
    persistence: Persistence | None = None
    data_dir: str | None = None  # relative paths are relative to the working directory
    commit_policy: CommitPolicy = "sync"
    commit_window_ms: float = 10.0  # "batched": the longest a change waits for its commit
    # The log (roost.broker.logs), as `roost broker` sets it up; -v means "debug".
    log_level: LogLevel = "info"
    log_dest: LogDest = "stderr"
    log_file: str | None = None  # with log_dest = "file"
    log_format: LogFormat = "text"
    # The HTTP API, metrics and dashboard (roost[http]); None: off.
    http: HttpConfig | None = None
    # An INFO line per client connect and disconnect (Mosquitto's connection_messages);
    # off, the counts are still in $SYS.
    connection_messages: bool = True
    # Connections to other brokers, forwarding by topic (docs/bridges.md).
    bridges: list[BridgeConfig] = field(default_factory=list)
    # Clustering over NATS (docs/clustering.md); None: no cluster.
    cluster: ClusterConfig | None = None

    def state_dir(self) -> str | None:
        """The directory durable state is kept in, or None when it is kept in memory.

        ``persistence`` unset: SQLite if ``data_dir`` is set, else memory. ``persistence
        = "sqlite"`` without ``data_dir``: ``DEFAULT_DATA_DIR``.
        """
        persistence = self.persistence
        if persistence is None:
            persistence = "memory" if self.data_dir is None else "sqlite"
        if persistence == "memory":
            return None
        return self.data_dir if self.data_dir is not None else DEFAULT_DATA_DIR


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` names this machine only: a loopback address or "localhost"."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.partition("%")[0]).is_loopback
    except ValueError:
        return False  # another name: it may resolve to anything


# Where `roost broker` (and a BrokerConfig saying persistence = "sqlite" alone) keeps state.
DEFAULT_DATA_DIR = "roost-data"


# --------------------------------------------------------------------------------------
# Loading: TOML file -> mapping -> checked BrokerConfig.
#
# The checks are derived from the dataclass annotations, so a new field is loadable as
# soon as it is declared; numeric fields must also state their range in _RANGES (the
# schema refuses to build otherwise, so a forgotten range fails every test at once).
# The line an error names comes from roost.broker.toml_key_lines.

_T = TypeVar("_T")
# The largest packet MQTT can express: Remaining Length 268,435,455 (the 4-byte varint
# maximum) plus a 5-byte fixed header.
_MAX_PACKET_SIZE = 268_435_460
_U16 = 65_535
_U32 = 4_294_967_295  # MQTT 5 Session Expiry Interval is a u32; 0xFFFFFFFF: never expire


@dataclass(frozen=True, slots=True)
class _Range:
    """Bounds on a number's value, or on a string's or a list's length."""

    low: float | None = None
    high: float | None = None
    low_exclusive: bool = False  # timeouts: 0 would expire at once, so they need > 0


_RANGES: dict[type, dict[str, _Range]] = {
    HookConfig: {
        "path": _Range(low=1),
        "timeout": _Range(0, 3600, low_exclusive=True),
    },
    ListenerConfig: {
        "host": _Range(low=1),  # "" binds every interface in asyncio: say "0.0.0.0" or "::"
        "port": _Range(0, _U16),  # 0: the OS picks a free port (what the tests use)
        "max_connections": _Range(low=0),
        "max_connection_rate": _Range(low=0),
    },
    HttpConfig: {
        "host": _Range(low=1),
        "port": _Range(0, _U16),
        "api_keys_file": _Range(low=1),
    },
    BrokerConfig: {
        "listeners": _Range(low=1),  # a broker with no listener cannot be reached
        "max_connections": _Range(low=0),
        "max_packet_size": _Range(2, _MAX_PACKET_SIZE),  # 2: the smallest packet (PINGREQ)
        "connect_timeout": _Range(low=0, low_exclusive=True),
        # MQTT-3.1.3-5: a server MUST accept client ids of 1 to 23 bytes.
        "max_client_id_length": _Range(23, _U16),
        "max_publish_rate": _Range(low=0),
        "max_topic_length": _Range(1, _U16),  # 65535: the most a topic can be in MQTT
        "max_topic_levels": _Range(1, _U16),
        "max_subscriptions_per_client": _Range(low=0),
        "max_keep_alive": _Range(0, _U16),
        "receive_maximum": _Range(1, _U16),  # 0 is a protocol error in MQTT 5
        "topic_alias_maximum": _Range(0, _U16),
        "topic_alias_send_maximum": _Range(0, _U16),
        "maximum_qos": _Range(0, 2),
        "max_inflight_messages": _Range(1, _U16),  # stands in for a Receive Maximum
        # >= 1, not 0: max_queued_bytes uses 0 for "no limit", and a 0 here would be
        # read the same way by some and as "queue nothing" by others.
        "max_queued_messages": _Range(low=1),
        "max_queued_bytes": _Range(low=0),
        "persistent_session_expiry": _Range(0, _U32),
        "max_session_expiry_interval": _Range(0, _U32),
        "max_retained_messages": _Range(low=1),  # to store none, set retain_available
        "sys_interval": _Range(low=0),
        "password_file": _Range(low=1),
        "acl_file": _Range(low=1),
        "scram_file": _Range(low=1),
        "auth_plugin": _Range(low=1),
        "data_dir": _Range(low=1),
        "commit_window_ms": _Range(0, 10_000, low_exclusive=True),
        "log_file": _Range(low=1),
    },
    BridgeConfig: {
        "keep_alive": _Range(0, _U16),
        "max_queued_messages": _Range(low=0),
        "max_inflight_messages": _Range(1, _U16),
    },
    BridgeTopic: {"qos": _Range(0, 2)},
    ClusterConfig: {
        "nats_url": _Range(low=1),
        "node": _Range(1, 64),
        "replicas": _Range(1, 5),
        "offline_session_grace": _Range(0, 86_400),
        "node_timeout": _Range(2, 3600),
    },
}

# List fields where one string stands for a list of one ("nats_url").
_ONE_OR_MORE = frozenset({"nats_url"})
_NATS_SCHEMES = ("nats", "tls", "ws", "wss")
_NODE_NAME = re.compile(r"[A-Za-z0-9_-]+")

_TLS_KEYS = (
    "certfile",
    "keyfile",
    "cafile",
    "require_certificate",
    "use_identity_as_username",
    "crlfile",
    "tls_version",
)

# Keys people carry over from other brokers' files, answered with where they belong.
_MOVED_KEYS = {
    "host": "host and port belong in a [[listeners]] table",
    "port": "host and port belong in a [[listeners]] table",
    "bind_address": "host and port belong in a [[listeners]] table",
    "listener": "listeners are [[listeners]] tables, each with host and port",
}


class ConfigError(Exception):
    """A configuration Roost cannot use; ``str()`` is one line for a person to act on.

    The format is ``FILE:LINE:COLUMN: KEY: PROBLEM``; parts that are not known are left
    out (the column is known only for TOML syntax errors, the line only when reading a
    file). The parts are also attributes, for callers that want them separately.
    """

    def __init__(
        self,
        problem: str,
        *,
        source: str,
        line: int | None = None,
        column: int | None = None,
        key: str | None = None,
    ) -> None:
        self.problem = problem
        self.source = source
        self.line = line
        self.column = column
        self.key = key
        where = source
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        parts = [where] if key is None else [where, key]
        super().__init__(": ".join([*parts, problem]))


def load_config(path: str | os.PathLike[str]) -> BrokerConfig:
    """Read a TOML file into a checked BrokerConfig; any problem raises ConfigError."""
    source = os.fspath(path)
    try:
        raw = Path(source).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", source=source) from exc
    try:
        # TOML is UTF-8; "-sig" forgives the byte-order mark some Windows editors write.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError("not valid UTF-8 (TOML files must be)", source=source, line=line) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        mosquitto_line = _mosquitto_directive(text)
        if mosquitto_line is not None:
            raise ConfigError(
                "this looks like a Mosquitto configuration file (mosquitto.conf), not TOML:"
                f" `roost broker -c {source}` reads it when its name ends in .conf (or its"
                f" first setting is Mosquitto's), and `roost config convert {source}` prints"
                " it as TOML (docs/mosquitto.md)",
                source=source,
                line=mosquitto_line,
            ) from exc
        raise _syntax_error(str(exc), text, source) from exc
    locator = KeyLocator(text)
    return _Builder(source, locator.line_of).broker_config(data)


def config_from_mapping(
    data: Mapping[str, object],
    source: str = "<config>",
    *,
    lines: Mapping[KeyPath, tuple[str, int]] | None = None,
) -> BrokerConfig:
    """Check a parsed configuration (as from tomllib) and build the BrokerConfig.

    ``source`` names the origin in error messages. Errors carry no line number (a
    mapping has none) unless ``lines`` says which file and line each key came from (a
    mosquitto.conf read by ``roost.broker.mosquitto_conf``).
    """
    where = lines or {}
    return _Builder(source, where.get).broker_config(data)


_TOML_POSITION = re.compile(r"^(?P<problem>.*) \(at line (?P<line>\d+), column (?P<column>\d+)\)$")
_TOML_AT_END = " (at end of document)"


# Options of mosquitto.conf(5) that people are likely to bring along; a line of one of
# these, a space and a value (no "="), is Mosquitto's syntax, not broken TOML.
_MOSQUITTO_OPTIONS = frozenset(
    {
        "listener", "port", "bind_address", "protocol", "allow_anonymous", "password_file",
        "acl_file", "psk_file", "persistence", "persistence_location", "persistence_file",
        "autosave_interval", "log_dest", "log_type", "log_timestamp", "include_dir",
        "pid_file", "user", "per_listener_settings", "max_connections", "max_inflight_messages",
        "max_queued_messages", "max_packet_size", "message_size_limit", "cafile", "capath",
        "certfile", "keyfile", "require_certificate", "use_identity_as_username", "crlfile",
        "tls_version", "connection", "address", "topic", "sys_interval", "retain_available",
        "persistent_client_expiration", "plugin", "auth_plugin", "mount_point",
        "allow_zero_length_clientid", "max_keepalive", "set_tcp_nodelay", "http_dir",
        "websockets_log_level", "connection_messages",
    }
)  # fmt: skip
_MOSQUITTO_LINE = re.compile(r"^\s*([a-z_]+)\s+[^\s=]")


def _mosquitto_directive(text: str) -> int | None:
    """The line number of the first line in Mosquitto's ``option value`` form, if any."""
    for number, line in enumerate(text.splitlines(), 1):
        match = _MOSQUITTO_LINE.match(line)
        if match and match[1] in _MOSQUITTO_OPTIONS:
            return number
    return None


def _syntax_error(message: str, text: str, source: str) -> ConfigError:
    # tomllib puts the position only in its message; take it back out so the error reads
    # like every other one (FILE:LINE:COLUMN: ...), which editors can jump to.
    match = _TOML_POSITION.match(message)
    if match:
        return ConfigError(
            f"invalid TOML: {match['problem']}",
            source=source,
            line=int(match["line"]),
            column=int(match["column"]),
        )
    if message.endswith(_TOML_AT_END):
        problem = message.removesuffix(_TOML_AT_END)
        last_line = max(len(text.splitlines()), 1)
        return ConfigError(
            f"invalid TOML: {problem} (at end of file)", source=source, line=last_line
        )
    return ConfigError(f"invalid TOML: {message}", source=source)


class _Builder:
    """Turns a mapping into config dataclasses; the first problem raises ConfigError.

    Keys are checked in the mapping's order (tomllib keeps the file's order), so the
    error reported is the first one in the file.
    """

    def __init__(
        self, source: str, line_of: Callable[[KeyPath], int | tuple[str, int] | None]
    ) -> None:
        self._source = source
        self._line_of = line_of

    def broker_config(self, data: object) -> BrokerConfig:
        config = self._dataclass(BrokerConfig, data, ())
        self._check_distinct_listeners(config)
        for index, listener in enumerate(config.listeners):
            self._check_listener(listener, ("listeners", index))
        self._check_sys_publish(config.allow_sys_publish)
        for index, hook in enumerate(config.hooks):
            if not hook.path:
                self._fail(("hooks", index), 'needs path ("package.module:Attribute" or a name)')
        check_bridges(config.bridges, self._fail)
        if config.cluster is not None:
            self._check_cluster(config.cluster)
        if config.log_dest == "file" and config.log_file is None:
            self._fail(("log_dest",), 'log_dest = "file" needs log_file (the file to write)')
        if config.http is not None:
            self._check_http(config.http)
        if config.log_dest != "file" and config.log_file is not None:
            self._fail(
                ("log_file",), f'only with log_dest = "file"; log_dest is {_show(config.log_dest)}'
            )
        return config

    def _check_http(self, http: HttpConfig) -> None:
        if http.api_keys_file is None and not is_loopback_host(http.host):
            self._fail(
                ("http", "host"),
                f"{_show(http.host)} is not a loopback address: the HTTP API listens "
                "elsewhere only with api_keys_file set (`roost apikey create`)",
            )
        for index, origin in enumerate(http.cors_origins):
            if not re.fullmatch(r"https?://[^/\s]+", origin):
                self._fail(
                    ("http", "cors_origins", index),
                    f'expected an origin like "https://example.com", got {_show(origin)}',
                )

    def _check_sys_publish(self, filters: list[str]) -> None:
        for index, topic_filter in enumerate(filters):
            path = ("allow_sys_publish", index)
            if not topic_filter.startswith("$"):
                self._fail(path, f"only $-topics need allowing, got {_show(topic_filter)}")
            try:
                validate_topic_filter(topic_filter)
            except CodecError as exc:
                self._fail(path, f"not a valid topic filter: {exc}")

    def _check_cluster(self, cluster: ClusterConfig) -> None:
        for index, url in enumerate(cluster.nats_url):
            path = ("cluster", "nats_url", index)
            parsed = urlsplit(url)
            if parsed.scheme not in _NATS_SCHEMES:
                self._fail(
                    path,
                    f"expected a URL starting with nats://, tls://, ws:// or wss://,"
                    f" got {_show(url)}",
                )
            try:
                port = parsed.port
            except ValueError:
                port = None
                self._fail(path, f"the port is not a number from 0 to 65535 in {_show(url)}")
            if not parsed.hostname or port == 0:
                self._fail(path, f"expected a host (and port) in the URL, got {_show(url)}")
        node = cluster.node
        if node is not None and not _NODE_NAME.fullmatch(node):
            self._fail(
                ("cluster", "node"),
                f"only letters, digits, '_' and '-' may name a node, got {_show(node)}",
            )

    def _fail(self, path: KeyPath, problem: str) -> NoReturn:
        source, line = self._source, self._line_of(path) if path else None
        if isinstance(line, tuple):  # a key from another file (a mosquitto.conf include)
            source, line = line
        raise ConfigError(problem, source=source, line=line, key=_dotted(path) if path else None)

    def _dataclass(self, cls: type[_T], data: object, path: KeyPath) -> _T:
        if not isinstance(data, Mapping):
            self._fail(path, f"expected a table, got {_show(data)}")
        schema = _schema(cls)
        values: dict[str, object] = {}
        for key, value in data.items():
            if not isinstance(key, str):
                self._fail(path, f"keys must be strings, got {key!r}")
            here = (*path, key)
            if key not in schema:
                self._fail(here, _unknown_key(key, cls, schema))
            hint, bounds = schema[key]
            values[key] = self._value(hint, bounds, value, here)
        return cls(**values)

    def _value(self, hint: object, bounds: _Range | None, value: object, path: KeyPath) -> object:
        expected = _describe(hint, bounds, path)
        if isinstance(hint, type) and is_dataclass(hint):
            return self._dataclass(hint, value, path)  # an inline table, as bridges' tls
        if get_origin(hint) in (types.UnionType, Union):
            # One of several shapes (restart_timeout: a number or a list): by TOML type.
            for arm in get_args(hint):
                if isinstance(value, list) == (get_origin(arm) is list):
                    return self._value(arm, bounds, value, path)
            self._fail(path, f"expected {expected}, got {_show(value)}")
        if hint is bool:
            if not isinstance(value, bool):
                self._fail(path, f"expected {expected}, got {_show(value)}")
            return value
        if hint is int or hint is float:
            # bool is an int subclass in Python, but `port = true` is a mistake in TOML.
            numeric = (int,) if hint is int else (int, float)
            if isinstance(value, bool) or not isinstance(value, numeric):
                self._fail(path, f"expected {expected}, got {_show(value)}")
            if isinstance(value, float) and not math.isfinite(value):
                # TOML allows inf and nan; no limit, interval or timeout here means either.
                finite = "a finite " + expected.removeprefix("a ")
                self._fail(path, f"expected {finite}, got {_show(value)}")
            if not _within(value, bounds):
                self._fail(path, f"expected {expected}, got {_show(value)}")
            return float(value) if hint is float else value
        if hint is str:
            if not isinstance(value, str) or not _within(len(value), bounds):
                self._fail(path, f"expected {expected}, got {_show(value)}")
            return value
        if get_origin(hint) is Literal:
            choices = get_args(hint)
            # Compare types too: Literal[1] must not accept True.
            if not any(type(value) is type(c) and value == c for c in choices):
                problem = f"expected {expected}, got {_show(value)}"
                if isinstance(value, str):
                    words = [c for c in choices if isinstance(c, str)]
                    close = difflib.get_close_matches(value, words, n=1)
                    if close:
                        problem += f"; did you mean {_show(close[0])}?"
                self._fail(path, problem)
            return value
        if isinstance(hint, type) and is_dataclass(hint):
            return self._dataclass(hint, value, path)  # a [section] table
        if get_origin(hint) is list:
            (item_hint,) = get_args(hint)
            if isinstance(value, str) and path[-1] in _ONE_OR_MORE:
                value = [value]
            if not isinstance(value, list) or not _within(len(value), bounds):
                self._fail(path, f"expected {expected}, got {_show(value)}")
            if isinstance(item_hint, type) and is_dataclass(item_hint):
                return [self._dataclass(item_hint, v, (*path, i)) for i, v in enumerate(value)]
            return [self._value(item_hint, None, v, (*path, i)) for i, v in enumerate(value)]
        if get_origin(hint) is dict:
            # A free-form table handed on as it is (auth_plugin_options: the plugin checks it).
            if not isinstance(value, Mapping):
                self._fail(path, f"expected {expected}, got {_show(value)}")
            return dict(value)
        if isinstance(hint, type) and is_dataclass(hint):
            return self._dataclass(hint, value, path)  # a table: [http]
        raise TypeError(f"config field type {hint!r} has no loader")  # a bug, not bad input

    def _check_distinct_listeners(self, config: BrokerConfig) -> None:
        # Two listeners on one address would fail at bind time with a socket error that
        # names neither; port 0 is exempt since each bind then gets its own port.
        seen: dict[tuple[str, int], int] = {}
        names: dict[str, int] = {}
        for index, listener in enumerate(config.listeners):
            if listener.name and listener.name in names:
                self._fail(
                    ("listeners", index, "name"),
                    f"same name as listeners[{names[listener.name]}] ({_show(listener.name)})",
                )
            names.setdefault(listener.name, index)
            address = (listener.host, listener.port)
            if listener.port != 0 and address in seen:
                self._fail(
                    ("listeners", index),
                    f"same host and port as listeners[{seen[address]}]"
                    f" (host {_show(listener.host)}, port {listener.port})",
                )
            seen.setdefault(address, index)

    def _check_listener(self, listener: ListenerConfig, path: KeyPath) -> None:
        """Settings that only make sense together, or only for some listener types."""
        kind = listener.type
        default = ListenerConfig()
        tls = kind in TLS_LISTENER_TYPES
        for name in _TLS_KEYS:
            if not tls and getattr(listener, name) != getattr(default, name):
                self._fail(
                    (*path, name), f'only for "tls" and "wss" listeners; this one is {_show(kind)}'
                )
        if kind not in WEBSOCKET_LISTENER_TYPES and listener.path != default.path:
            self._fail(
                (*path, "path"), f'only for "ws" and "wss" listeners; this one is {_show(kind)}'
            )
        if not listener.path.startswith("/"):
            self._fail((*path, "path"), f'must start with "/", got {_show(listener.path)}')
        if tls and not listener.certfile:
            self._fail((*path, "certfile"), f"required for a {_show(kind)} listener")
        for name in ("require_certificate", "use_identity_as_username", "crlfile"):
            if getattr(listener, name) and not listener.cafile:
                self._fail((*path, name), "needs cafile (the CA that signs client certificates)")


def _schema(cls: type) -> dict[str, tuple[object, _Range | None]]:
    """Field name -> (resolved annotation, bounds), for one config dataclass."""
    hints = get_type_hints(cls)
    ranges = _RANGES.get(cls, {})
    schema: dict[str, tuple[object, _Range | None]] = {}
    for f in fields(cls):
        hint = hints[f.name]
        # "str | None" is a types.UnionType; "Literal[...] | None" a typing.Union.
        if get_origin(hint) in (types.UnionType, Union) and type(None) in get_args(hint):
            # TOML has no null: "X | None" fields take X, and None is the unset default.
            arms = [arg for arg in get_args(hint) if arg is not type(None)]
            hint = arms[0] if len(arms) == 1 else Union[tuple(arms)]  # noqa: UP007
        if hint in (int, float) and f.name not in ranges:
            raise TypeError(f"{cls.__name__}.{f.name} needs a range in _RANGES")
        schema[f.name] = (hint, ranges.get(f.name))
    return schema


def _within(number: float, bounds: _Range | None) -> bool:
    if bounds is None:
        return True
    low = bounds.low
    if low is not None and (number < low or (number == low and bounds.low_exclusive)):
        return False
    return bounds.high is None or number <= bounds.high


def _describe(hint: object, bounds: _Range | None, path: KeyPath) -> str:
    """What a valid value looks like, in the words of the error message."""
    if hint is bool:
        return "true or false"
    if hint is int or hint is float:
        noun = "an integer" if hint is int else "a number"
        if bounds is None:
            return noun
        low, high = _fmt(bounds.low), _fmt(bounds.high)
        if bounds.high is None:
            return f"{noun} {'>' if bounds.low_exclusive else '>='} {low}"
        return f"{noun} from {low} to {high}"
    if hint is str:
        return "a non-empty string" if bounds and bounds.low else "a string"
    if get_origin(hint) is Literal:
        return "one of " + ", ".join(_show(c) for c in get_args(hint))
    if get_origin(hint) is list:
        (item_hint,) = get_args(hint)
        kind = "array" if not is_dataclass(item_hint) else f"array of tables ([[{path[-1]}]])"
        if path and path[-1] in _ONE_OR_MORE:
            return "a string or a non-empty array of strings"
        return f"a non-empty {kind}" if bounds and bounds.low else f"an {kind}"
    if get_origin(hint) is dict or (isinstance(hint, type) and is_dataclass(hint)):
        return "a table"
    if get_origin(hint) in (types.UnionType, Union):
        return " or ".join(_describe(arm, None, path) for arm in get_args(hint))
    return repr(hint)


def _fmt(number: float | None) -> str:
    return f"{number:g}" if isinstance(number, float) else str(number)


def _unknown_key(key: str, cls: type, schema: Mapping[str, object]) -> str:
    if cls is BrokerConfig and key in _MOVED_KEYS:
        return f"unknown key; {_MOVED_KEYS[key]}"
    if cls is ListenerConfig and key in _schema(BrokerConfig):
        # TOML puts every key after a [[listeners]] header into that table, however it
        # is indented: the commonest way to lose a top-level key.
        return (
            f"unknown key; {key} is a top-level key: move it above the first [[listeners]]"
            " table (in TOML, the keys after a table header belong to that table)"
        )
    close = difflib.get_close_matches(key, list(schema), n=1)
    if close:
        return f'unknown key; did you mean "{close[0]}"?'
    return "unknown key"


def _dotted(path: KeyPath) -> str:
    """("listeners", 1, "port") -> "listeners[1].port"; odd keys are quoted as in TOML."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        name = (
            part if part and set(part) <= BARE_KEY_CHARS else json.dumps(part, ensure_ascii=False)
        )
        text += f".{name}" if text else name
    return text


def _show(value: object) -> str:
    """A value as TOML would spell it, or what kind of thing it is."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = json.dumps(value, ensure_ascii=False)
        return shown if len(shown) <= 40 else shown[:36] + '..."'
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an empty array" if not value else "an array"
    if isinstance(value, datetime.date | datetime.time):
        return f"a date/time ({value.isoformat()})"
    return f"a {type(value).__name__}"
