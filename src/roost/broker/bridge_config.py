"""The ``[[bridges]]`` tables of the configuration: their shape and their checks.

A bridge (docs/bridges.md) is an outgoing connection from this broker to another that
forwards messages by topic pattern. The dataclasses here are what ``config.py`` loads
each table into (types, ranges and unknown keys are checked there, as for every other
table); ``check_bridge`` then checks what only makes sense together, reporting through
the loader's ``fail(path, problem)`` so that errors read like every other one
(``FILE:LINE: bridges[0].topics[1].pattern: PROBLEM``). The meaning of each key follows
Mosquitto's mosquitto.conf(5), section Bridges, where Mosquitto has one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, NoReturn

from roost.codec import CodecError
from roost.protocol.topics import validate_topic_filter, validate_topic_name

BridgeProtocol = Literal["mqttv31", "mqttv311", "mqttv5"]
Direction = Literal["out", "in", "both"]
StartType = Literal["automatic", "lazy", "once"]
BridgeQueueFullPolicy = Literal["drop_newest", "drop_oldest"]

# The protocol level each `protocol` value connects with.
PROTOCOL_LEVELS: dict[str, int] = {"mqttv31": 3, "mqttv311": 4, "mqttv5": 5}

KeyPath = tuple[str | int, ...]
Fail = Callable[[KeyPath, str], NoReturn]


@dataclass(slots=True)
class BridgeTopic:
    """One ``topics`` entry: which topics go which way, at what QoS, renamed how.

    A local topic is ``local_prefix`` + a topic matching ``pattern``; on the remote
    broker the same message has ``remote_prefix`` + that part.
    """

    pattern: str = ""
    direction: Direction = "out"
    qos: int = 0  # the most a message is forwarded at (the lower of this and its own)
    local_prefix: str = ""
    remote_prefix: str = ""

    def local_filter(self) -> str:
        return self.local_prefix + self.pattern

    def remote_filter(self) -> str:
        return self.remote_prefix + self.pattern

    @property
    def outgoing(self) -> bool:
        return self.direction != "in"

    @property
    def incoming(self) -> bool:
        return self.direction != "out"


@dataclass(slots=True)
class BridgeTls:
    """TLS to the remote broker: the CA that signs its certificate, and ours."""

    cafile: str | None = None  # None: the system's trusted CAs
    certfile: str | None = None  # a client certificate, if the remote asks for one
    keyfile: str | None = None
    insecure: bool = False  # Mosquitto's bridge_insecure: no host name check


@dataclass(slots=True)
class BridgeConfig:
    """One ``[[bridges]]`` table."""

    name: str = ""
    addresses: list[str] = field(default_factory=list)  # "host:port", tried in order
    protocol: BridgeProtocol = "mqttv311"
    client_id: str | None = None  # None: "<name>.<hostname>", as Mosquitto does
    clean_start: bool = False  # False: a persistent session on the remote broker
    keep_alive: int = 60
    username: str | None = None
    password: str | None = None
    password_file: str | None = None  # a file holding the password (first line)
    # Who the bridge is to this broker's ACL file or plugin (Mosquitto's
    # local_username); None: an anonymous client's rules.
    local_username: str | None = None
    try_private: bool = True  # tell the remote we are a bridge (3.1/3.1.1 only)
    notifications: bool = True  # $SYS/broker/connection/<name>/state, 1 up / 0 down
    notification_topic: str | None = None  # instead of the default above
    start_type: StartType = "automatic"
    # Seconds before reconnecting: a constant, or [base, cap] of a jittered backoff.
    restart_timeout: float | list[float] = field(default_factory=lambda: [5.0, 30.0])
    tls: BridgeTls | None = None
    topics: list[BridgeTopic] = field(default_factory=list)
    # The queue of messages waiting for the remote: 0 means the broker's
    # max_queued_messages; what happens to one more when full (docs/bridges.md).
    max_queued_messages: int = 0
    queue_full_policy: BridgeQueueFullPolicy = "drop_newest"
    # QoS 1/2 messages sent to the remote and not yet acknowledged, at most.
    max_inflight_messages: int = 20

    @property
    def level(self) -> int:
        return PROTOCOL_LEVELS[self.protocol]

    def state_topic(self) -> str:
        return self.notification_topic or f"$SYS/broker/connection/{self.name}/state"

    def delays(self) -> tuple[float, float]:
        """(base, cap) of the reconnect delay; a constant is its own base and cap."""
        timeout = self.restart_timeout
        if isinstance(timeout, list):
            return float(timeout[0]), float(timeout[1])
        return float(timeout), float(timeout)


def parse_address(text: str) -> tuple[str, int] | None:
    """``host:port`` (``[v6]:port``) as a pair; None if it is not one."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def check_bridges(bridges: list[BridgeConfig], fail: Fail) -> None:
    names: dict[str, int] = {}
    for index, bridge in enumerate(bridges):
        path: KeyPath = ("bridges", index)
        if bridge.name in names:
            fail((*path, "name"), f"same name as bridges[{names[bridge.name]}]")
        names[bridge.name] = index
        check_bridge(bridge, path, fail)


def check_bridge(bridge: BridgeConfig, path: KeyPath, fail: Fail) -> None:
    """What the types alone do not say; the first problem calls ``fail``."""
    if not bridge.name:
        fail((*path, "name"), "required: a name for the bridge (it names its $SYS topics)")
    if "/" in bridge.name or "+" in bridge.name or "#" in bridge.name:
        fail((*path, "name"), "may not contain /, + or # (it is part of topic names)")
    if not bridge.addresses:
        fail((*path, "addresses"), 'required: at least one "host:port"')
    for i, address in enumerate(bridge.addresses):
        if parse_address(address) is None:
            fail((*path, "addresses", i), f'expected "host:port", got {address!r}')
    if bridge.password is not None and bridge.password_file is not None:
        fail((*path, "password_file"), "give password or password_file, not both")
    if (bridge.password is not None or bridge.password_file) and bridge.username is None:
        fail((*path, "username"), "a password needs a username")
    timeout = bridge.restart_timeout
    if isinstance(timeout, list):
        if len(timeout) != 2 or not 0 < timeout[0] <= timeout[1]:
            fail((*path, "restart_timeout"), "expected [base, cap] with 0 < base <= cap")
    elif timeout <= 0:
        fail((*path, "restart_timeout"), "expected a number of seconds > 0, or [base, cap]")
    if bridge.notification_topic is not None:
        try:
            validate_topic_name(bridge.notification_topic)
        except CodecError as exc:
            fail((*path, "notification_topic"), f"not a valid topic name: {exc}")
    tls = bridge.tls
    if tls is not None and (tls.certfile is None) != (tls.keyfile is None):
        fail((*path, "tls", "keyfile"), "certfile and keyfile go together")
    if not bridge.topics:
        fail((*path, "topics"), "required: at least one { pattern = ..., direction = ... }")
    for i, topic in enumerate(bridge.topics):
        _check_topic(topic, (*path, "topics", i), fail)


def _check_topic(topic: BridgeTopic, path: KeyPath, fail: Fail) -> None:
    if not topic.pattern:
        fail((*path, "pattern"), "required: a topic filter such as sensors/#")
    try:
        validate_topic_filter(topic.pattern)
    except CodecError as exc:
        fail((*path, "pattern"), f"not a valid topic filter: {exc}")
    if topic.pattern.startswith("$share/"):
        fail((*path, "pattern"), "a bridge cannot use a shared subscription")
    for name in ("local_prefix", "remote_prefix"):
        prefix = getattr(topic, name)
        if "+" in prefix or "#" in prefix:
            fail((*path, name), "a prefix may not contain wildcards")
