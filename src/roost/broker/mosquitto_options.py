"""mosquitto.conf(5)'s options by scope, and those Roost has no equivalent for.

Tables only, with the two small rules of Mosquitto's parser the reader shares: C's
``atoi`` (how Mosquitto reads every integer) and the order ``include_dir`` files load in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Options that set up the listener being configured (the default one before any
# `listener` line, as in Mosquitto).
LISTENER_OPTIONS = frozenset(
    {
        "bind_interface", "cafile", "capath", "certfile", "ciphers", "ciphers_tls1.3",
        "crlfile", "dhparamfile", "http_dir", "keyfile", "max_connections", "max_qos",
        "maximum_qos", "max_topic_alias", "mount_point", "protocol", "psk_hint",
        "require_certificate", "socket_domain", "tls_engine", "tls_engine_kpass_sha1",
        "tls_keyform", "tls_version", "use_identity_as_username", "use_subject_as_username",
        "use_username_as_clientid",
    }
)  # fmt: skip

# Global, or the current listener's with per_listener_settings true.
SECURITY_OPTIONS = frozenset(
    {
        "acl_file", "allow_anonymous", "allow_zero_length_clientid", "auth_plugin", "plugin",
        "auto_id_prefix", "password_file", "psk_file",
    }
)  # fmt: skip

# Options valid only after a `connection` line.
BRIDGE_OPTIONS = frozenset(
    {
        "address", "addresses", "bridge_alpn", "bridge_attempt_unsubscribe",
        "bridge_bind_address", "bridge_cafile", "bridge_capath", "bridge_certfile",
        "bridge_identity", "bridge_insecure", "bridge_keyfile", "bridge_max_packet_size",
        "bridge_outgoing_retain", "bridge_protocol_version", "bridge_psk",
        "bridge_require_ocsp", "bridge_tls_version", "cleansession", "clientid",
        "idle_timeout", "keepalive_interval", "local_cleansession", "local_clientid",
        "local_password", "local_username", "notification_topic", "notifications",
        "notifications_local_only", "password", "remote_clientid", "remote_password",
        "remote_username", "restart_timeout", "round_robin", "start_type", "threshold",
        "topic", "try_private", "username",
    }
)  # fmt: skip

_PLUGIN = "write a Roost auth plugin in Python (auth_plugin, docs/auth.md)"
_BRIDGE = "the bridge runs without it"
_LOGS = "Roost's log lines carry their own time stamp (log_format, docs/configuration.md)"

# Known options Roost does not apply: (how Mosquitto parses the value, so that a value
# Mosquitto refuses is refused here too; what to use instead).
UNSUPPORTED: dict[str, tuple[str, str]] = {
    "auth_plugin": ("string", _PLUGIN),
    "plugin": ("string", _PLUGIN),
    "auth_opt_": ("any", "options of a Mosquitto plugin; a Roost plugin takes auth_plugin_options"),
    "auth_plugin_deny_special_chars": ("bool", "Roost's ACL checks never match + or # in names"),
    "psk_file": ("string", "pre-shared keys are not supported: use certificates (cafile)"),
    "psk_hint": ("string", "pre-shared keys are not supported: use certificates (cafile)"),
    "capath": ("string", "put the CA certificates in one cafile"),
    "ciphers": ("string", "Roost uses Python's default cipher list"),
    "ciphers_tls1.3": ("string", "Roost uses Python's default TLS 1.3 suites"),
    "dhparamfile": ("string", "Roost uses ECDHE key exchange"),
    "tls_engine": ("string", "use a key file (keyfile)"),
    "tls_engine_kpass_sha1": ("string", "use a key file (keyfile)"),
    "tls_keyform": ("string", "use a PEM key file (keyfile)"),
    "use_subject_as_username": ("bool", 'use_identity_as_username ("cn" or "san")'),
    "use_username_as_clientid": ("bool", "client ids stay the clients' own"),
    "mount_point": ("string", "give each group of clients its own topic prefix in the ACL file"),
    "bind_interface": ("string", "bind the listener to that interface's address (host)"),
    "socket_domain": ("any", 'choose the address family with host ("0.0.0.0" or "::")'),
    "http_dir": ("string", "serve files with a web server; Roost's ws listeners speak MQTT only"),
    "websockets_log_level": ("int", "roost broker -v logs WebSocket upgrades"),
    "websockets_headers_size": ("int", "Roost reads HTTP headers up to its own limit"),
    "user": ("string", "start roost as that user (systemd User=)"),
    "pid_file": ("string", "a service manager (systemd) tracks the process"),
    "autosave_interval": ("int", "Roost writes every change as it happens (commit_policy)"),
    "autosave_on_changes": ("bool", "Roost writes every change as it happens (commit_policy)"),
    "persistence_file": ("string", "Roost's database is roost.db in data_dir"),
    "allow_duplicate_messages": ("bool", "Roost delivers a message once per client, as MQTT asks"),
    "allow_zero_length_clientid": ("bool", "Roost assigns ids to clients that send none"),
    "auto_id_prefix": ("string", "Roost assigns ids of its own form"),
    "check_retain_source": ("bool", "Roost does not check a retained message's publisher again"),
    "clientid_prefixes": ("string", "restrict client ids with the ACL file or a plugin"),
    "connection_messages": ("bool", "Roost logs connections at info level (log_level)"),
    "log_facility": ("int", "Roost logs to syslog's daemon facility"),
    "log_timestamp": ("bool", _LOGS),
    "log_timestamp_format": ("string", _LOGS),
    "max_inflight_bytes": (
        "int",
        "Roost limits in-flight messages by count (max_inflight_messages)",
    ),
    "memory_limit": ("int", "limit the process's memory from outside (systemd MemoryMax=)"),
    "message_size_limit": ("int", "use max_packet_size"),
    "set_tcp_nodelay": ("bool", "Roost always sets TCP_NODELAY"),
    "upgrade_outgoing_qos": ("bool", "Roost delivers at the QoS MQTT asks for"),
    "retry_interval": ("any", "Mosquitto 2 ignores it too"),
    # Bridges.
    "local_clientid": ("string", _BRIDGE),
    "local_username": ("string", _BRIDGE),
    "local_password": ("string", _BRIDGE),
    "local_cleansession": ("bool", _BRIDGE),
    "notification_topic": ("string", _BRIDGE),
    "notifications_local_only": ("bool", _BRIDGE),
    "bridge_attempt_unsubscribe": ("bool", _BRIDGE),
    "bridge_outgoing_retain": ("bool", _BRIDGE),
    "bridge_max_packet_size": ("int", _BRIDGE),
    "bridge_insecure": ("bool", _BRIDGE),
    "bridge_alpn": ("string", _BRIDGE),
    "bridge_bind_address": ("string", _BRIDGE),
    "bridge_capath": ("string", "put the CA certificates in one bridge_cafile"),
    "bridge_identity": ("string", "pre-shared keys are not supported: use certificates"),
    "bridge_psk": ("string", "pre-shared keys are not supported: use certificates"),
    "bridge_require_ocsp": ("bool", _BRIDGE),
    "bridge_tls_version": ("string", _BRIDGE),
    "idle_timeout": ("int", _BRIDGE),
    "threshold": ("int", _BRIDGE),
    "round_robin": ("bool", _BRIDGE),
}

_ATOI = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)")


def atoi(text: str) -> int:
    """C's atoi, as Mosquitto reads numbers: leading digits, else 0 ("10k" is 10)."""
    match = _ATOI.match(text)
    return int(match[1]) if match else 0


def include_order(names: Iterable[str]) -> list[str]:
    """Mosquitto's order for include_dir files: case-sensitive alphabetical, with the
    upper case of each letter before its lower case (00, 01, A, a, B, b)."""
    return sorted(names, key=lambda name: [(char.lower(), char.islower()) for char in name])
