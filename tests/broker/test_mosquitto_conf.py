"""mosquitto.conf read as Mosquitto 2.x reads it, mapped onto Roost's configuration.

The error cases are also given to the real Mosquitto (Debian's 2.0.11): both must
refuse the file at the same line. Behaviour (who may connect, publish, subscribe) is
compared with a running Mosquitto in test_mosquitto_compare.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tomllib
from pathlib import Path

import pytest

from roost.broker.config import ConfigError, ListenerConfig, load_config
from roost.broker.mosquitto_conf import (
    MosquittoConf,
    load_mosquitto_config,
    looks_like_mosquitto,
    read_mosquitto_conf,
)
from roost.broker.mosquitto_options import atoi, include_order
from roost.broker.mosquitto_toml import to_toml

FILES = Path(__file__).parent / "mosquitto_files"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
needs_mosquitto = pytest.mark.skipif(
    not os.access(MOSQUITTO, os.X_OK), reason="the mosquitto broker is not installed"
)


def write(tmp_path: Path, text: str, name: str = "mosquitto.conf") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def read(tmp_path: Path, text: str) -> MosquittoConf:
    return read_mosquitto_conf(write(tmp_path, text))


def notices(conf: MosquittoConf) -> list[tuple[int, str]]:
    return [(notice.line, notice.text) for notice in conf.notices]


def roundtrip(conf: MosquittoConf) -> dict[str, object]:
    """The converted TOML, parsed back: it must say exactly what was read."""
    data = tomllib.loads(to_toml(conf))
    bridges = data.pop("bridges", [])
    assert data == conf.data
    assert bridges == conf.bridges
    return data


# -- the files Debian's mosquitto package installs --------------------------------------

LOCAL_ONLY = [ListenerConfig(host="127.0.0.1", port=1883)]


@pytest.mark.parametrize(
    "path",
    [
        FILES / "debian-example.conf",
        pytest.param(Path("/usr/share/doc/mosquitto/examples/mosquitto.conf"), id="system"),
    ],
)
def test_debians_example_file_is_mosquittos_defaults(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} is not installed")
    conf = read_mosquitto_conf(path)
    assert conf.notices == []  # every line of it is a comment
    config, _ = load_mosquitto_config(path)
    # Mosquitto with no listener: local only, anonymous clients allowed.
    assert config.listeners == LOCAL_ONLY
    assert config.allow_anonymous is True
    assert config.persistence == "memory"
    assert config.max_packet_size == 268_435_460  # Mosquitto: no limit of its own
    assert config.max_subscriptions_per_client == 0
    assert config.persistent_session_expiry == config.max_session_expiry_interval == 2**32 - 1
    roundtrip(conf)


def test_debians_etc_file_with_its_include_dir(tmp_path: Path) -> None:
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    (conf_d / "README").write_text("Files in this directory ending in .conf are loaded.\n")
    (conf_d / "local.conf").write_text("listener 1883\nallow_anonymous true\n")
    text = (FILES / "debian-etc.conf").read_text()
    assert "include_dir /etc/mosquitto/conf.d" in text
    path = write(tmp_path, text.replace("/etc/mosquitto/conf.d", str(conf_d)))
    conf = read_mosquitto_conf(path)
    assert notices(conf) == [
        (6, ("pid_file: no equivalent in Roost, not applied; a service manager (systemd)"
         " tracks the process")),
        (8, ("persistence: Roost keeps its state in roost.db and does not read mosquitto.db;"
         " what Mosquitto stored is not carried over")),
    ]  # fmt: skip
    config, _ = load_mosquitto_config(path)
    assert (config.persistence, config.data_dir) == ("sqlite", "/var/lib/mosquitto/")
    assert (config.log_dest, config.log_file) == ("file", "/var/log/mosquitto/mosquitto.log")
    # The README is not a .conf file; local.conf opens the network listener.
    assert config.listeners == [ListenerConfig(host="0.0.0.0", port=1883)]
    assert config.allow_anonymous is True
    roundtrip(conf)


def test_the_installed_etc_file_reads(tmp_path: Path) -> None:
    path = Path("/etc/mosquitto/mosquitto.conf")
    if not path.exists():
        pytest.skip("mosquitto's /etc file is not installed")
    conf = read_mosquitto_conf(path)
    assert ("persistence", "sqlite") in conf.data.items()


# -- real-world style files ---------------------------------------------------------------

TLS_AND_WEBSOCKETS = """\
# Devices over TLS with client certificates, browsers over WebSocket.
per_listener_settings false
allow_anonymous false
password_file /etc/mosquitto/passwd
acl_file /etc/mosquitto/acl
max_packet_size 262144
max_keepalive 120
max_inflight_messages 10
max_queued_messages 5000
max_queued_bytes 0
retain_available false
sys_interval 30
persistent_client_expiration 2d

listener 8883 0.0.0.0
certfile /etc/mosquitto/certs/server.crt
keyfile /etc/mosquitto/certs/server.key
cafile /etc/mosquitto/ca_certificates/ca.crt
require_certificate true
use_identity_as_username true
crlfile /etc/mosquitto/ca.crl
tls_version tlsv1.3
max_connections 500

listener 9001 127.0.0.1
protocol websockets
max_connections -1

listener 8443
protocol websockets
certfile /etc/mosquitto/certs/server.crt
keyfile /etc/mosquitto/certs/server.key
"""


def test_tls_and_websocket_listeners(tmp_path: Path) -> None:
    conf = read(tmp_path, TLS_AND_WEBSOCKETS)
    config, _ = load_mosquitto_config(tmp_path / "mosquitto.conf")
    assert config.listeners == [
        ListenerConfig(
            host="0.0.0.0",
            port=8883,
            type="tls",
            certfile="/etc/mosquitto/certs/server.crt",
            keyfile="/etc/mosquitto/certs/server.key",
            cafile="/etc/mosquitto/ca_certificates/ca.crt",
            require_certificate=True,
            use_identity_as_username="cn",
            crlfile="/etc/mosquitto/ca.crl",
            tls_version="1.3",
            max_connections=500,
        ),
        ListenerConfig(host="127.0.0.1", port=9001, type="ws"),
        ListenerConfig(
            host="0.0.0.0",
            port=8443,
            type="wss",
            certfile="/etc/mosquitto/certs/server.crt",
            keyfile="/etc/mosquitto/certs/server.key",
        ),
    ]
    assert (config.allow_anonymous, config.password_file, config.acl_file) == (
        False,
        "/etc/mosquitto/passwd",
        "/etc/mosquitto/acl",
    )
    assert config.max_packet_size == 262_144
    assert config.max_keep_alive == 120
    assert config.max_inflight_messages == 10
    assert (config.max_queued_messages, config.max_queued_bytes) == (5000, 0)
    assert config.retain_available is False
    assert config.sys_interval == 30
    assert config.persistent_session_expiry == config.max_session_expiry_interval == 2 * 86400
    assert config.persistence == "memory"
    assert notices(conf) == [
        (25, 'websockets: Roost answers at path "/mqtt" only (Mosquitto at any path)'),
        (29, 'websockets: Roost answers at path "/mqtt" only (Mosquitto at any path)'),
    ]
    roundtrip(conf)


def test_no_listener_means_local_only_even_with_a_password_file(tmp_path: Path) -> None:
    config, _ = load_mosquitto_config(write(tmp_path, "password_file /p\n"))
    assert config.listeners == LOCAL_ONLY
    assert config.allow_anonymous is True


def test_a_listener_means_anonymous_clients_are_refused(tmp_path: Path) -> None:
    config, _ = load_mosquitto_config(write(tmp_path, "listener 1883\n"))
    assert config.allow_anonymous is False
    # And with no password file, Mosquitto 2 refuses clients with a user name too.
    assert config.auth_plugin == "roost.broker.auth.no_credentials:RefuseCredentials"
    with_passwords, _ = load_mosquitto_config(
        write(tmp_path, "listener 1883\npassword_file /p\n", "p.conf")
    )
    assert with_passwords.auth_plugin is None
    anonymous, _ = load_mosquitto_config(
        write(tmp_path, "listener 1883\nallow_anonymous true\n", "a.conf")
    )
    assert anonymous.auth_plugin is None


def test_the_deprecated_port_option_opens_the_default_listener(tmp_path: Path) -> None:
    conf = read(tmp_path, "port 1884\n")
    assert conf.data["listeners"] == [{"host": "0.0.0.0", "port": 1884, "type": "tcp"}]
    assert conf.data["allow_anonymous"] is False
    assert notices(conf) == [
        (1, "port is deprecated in Mosquitto; read as a listener on the default port")
    ]


def test_per_listener_settings_that_roost_can_express(tmp_path: Path) -> None:
    conf = read(
        tmp_path,
        "per_listener_settings true\n"
        "listener 1883 127.0.0.1\nallow_anonymous true\npassword_file /p\nacl_file /a\n"
        "listener 8883 0.0.0.0\npassword_file /p\nacl_file /a\n",
    )
    assert conf.notices == []
    config, _ = load_mosquitto_config(tmp_path / "mosquitto.conf")
    assert [lst.allow_anonymous for lst in config.listeners] == [True, False]
    assert (config.password_file, config.acl_file) == ("/p", "/a")
    roundtrip(conf)


def test_per_listener_files_roost_cannot_express_are_named(tmp_path: Path) -> None:
    conf = read(
        tmp_path,
        "per_listener_settings true\n"
        "listener 1883\npassword_file /p1\n"
        "listener 1884\npassword_file /p2\n"
        "listener 1885\n",
    )
    assert conf.data["password_file"] == "/p1"  # noqa: S105  (a path)
    assert notices(conf) == [
        (3, ("password_file: per listener in Mosquitto; Roost applies it on every listener,"
         " also those that had none")),
        (5, ("password_file: Roost has one password_file for every listener; /p1 applies,"
         " not this one")),
    ]  # fmt: skip


def test_per_listener_settings_must_come_first(tmp_path: Path) -> None:
    path = write(tmp_path, "password_file /p\nper_listener_settings true\n")
    with pytest.raises(ConfigError) as caught:
        read_mosquitto_conf(path)
    assert str(caught.value) == (
        f"{path}:2: per_listener_settings: per_listener_settings must be set before any"
        " other security settings"
    )


def test_include_dir_in_mosquittos_order_each_file_from_the_default_listener(
    tmp_path: Path,
) -> None:
    included = tmp_path / "conf.d"
    included.mkdir()
    # Options before a `listener` line in an included file are the default listener's,
    # whatever the file that included it was configuring.
    (included / "b.conf").write_text("port 1886\ncertfile /b.crt\n")
    (included / "A.conf").write_text("listener 1884\nmax_connections 7\n")
    (included / "a.conf").write_text("listener 1885\n")
    (included / "notes.txt").write_text("not a config file\n")
    conf = read(tmp_path, f"listener 1883\ninclude_dir {included}\nmax_connections 3\n")
    listeners = conf.data["listeners"]
    assert isinstance(listeners, list)
    assert [listener["port"] for listener in listeners] == [1883, 1884, 1885, 1886]
    assert listeners[0]["max_connections"] == 3  # back in the main file: listener 1883
    assert listeners[1]["max_connections"] == 7
    # b.conf's certfile (without a keyfile: no TLS) is the default listener's (port 1886).
    assert [(n.source, n.line) for n in conf.notices] == [
        (str(included / "b.conf"), 1),
        (str(included / "b.conf"), 2),
    ]
    assert conf.notices[1].text.startswith("certfile: TLS needs both certfile and keyfile")
    assert include_order(["b.conf", "B.conf", "a.conf", "01.conf", "A.conf", "00.conf"]) == [
        "00.conf", "01.conf", "A.conf", "a.conf", "B.conf", "b.conf",
    ]  # fmt: skip


def test_an_error_in_an_included_file_names_that_file(tmp_path: Path) -> None:
    included = tmp_path / "conf.d"
    included.mkdir()
    (included / "x.conf").write_text("# one\nmax_qos 7\n")
    path = write(tmp_path, f"listener 1883\ninclude_dir {included}\n")
    with pytest.raises(ConfigError) as caught:
        read_mosquitto_conf(path)
    assert (caught.value.source, caught.value.line) == (str(included / "x.conf"), 2)


BRIDGE = """\
listener 1883 127.0.0.1
connection cloud
address cloud.example:8883 backup.example:8883
topic sensors/# out 1 "" site1/
topic commands/# in 2 local/ remote/
topic status both
bridge_protocol_version mqttv311
remote_clientid edge-1
cleansession false
keepalive_interval 60
remote_username edge-1
remote_password s3cret
try_private true
notifications true
start_type automatic
restart_timeout 30
bridge_cafile ca.crt
bridge_certfile edge.crt
bridge_keyfile edge.key
local_clientid edge-local

connection second
address 10.0.0.1
topic # in
bridge_protocol_version mqttv50
restart_timeout 5 60
"""


def test_bridges_in_the_bridges_schema(tmp_path: Path) -> None:
    conf = read(tmp_path, BRIDGE)
    assert conf.bridges == [
        {
            "name": "cloud",
            "addresses": ["cloud.example:8883", "backup.example:8883"],
            "protocol": "mqttv311",
            "client_id": "edge-1",
            "clean_start": False,
            "keep_alive": 60,
            "username": "edge-1",
            "password": "s3cret",
            "try_private": True,
            "notifications": True,
            "start_type": "automatic",
            "restart_timeout": 30,
            "tls": {"cafile": "ca.crt", "certfile": "edge.crt", "keyfile": "edge.key"},
            "topics": [
                {"pattern": "sensors/#", "direction": "out", "qos": 1,
                 "local_prefix": "", "remote_prefix": "site1/"},
                {"pattern": "commands/#", "direction": "in", "qos": 2,
                 "local_prefix": "local/", "remote_prefix": "remote/"},
                {"pattern": "status", "direction": "both", "qos": 0,
                 "local_prefix": "", "remote_prefix": ""},
            ],
        },
        {
            "name": "second",
            "addresses": ["10.0.0.1:1883"],
            "protocol": "mqttv5",
            # Mosquitto's default remote client id: this host's name and the bridge's.
            "client_id": f"{socket.gethostname()}.second",
            "clean_start": False,
            "keep_alive": 60,
            "try_private": True,
            "notifications": True,
            "start_type": "automatic",
            "restart_timeout": [5, 60],
            "topics": [{"pattern": "#", "direction": "in", "qos": 0,
                        "local_prefix": "", "remote_prefix": ""}],
        },
    ]  # fmt: skip
    assert notices(conf) == [
        (20, "local_clientid: no equivalent in Roost, not applied; the bridge runs without it")
    ]
    text = to_toml(conf)
    assert text.count("[[bridges]]") == 2
    roundtrip(conf)


def test_a_connection_section_loads_as_a_bridge(tmp_path: Path) -> None:
    config, warnings = load_mosquitto_config(write(tmp_path, BRIDGE))
    assert [bridge.name for bridge in config.bridges] == ["cloud", "second"]
    cloud, second = config.bridges
    assert cloud.addresses == ["cloud.example:8883", "backup.example:8883"]
    assert (cloud.protocol, cloud.client_id, cloud.clean_start) == ("mqttv311", "edge-1", False)
    assert (cloud.username, cloud.password, cloud.try_private) == ("edge-1", "s3cret", True)
    assert cloud.tls is not None
    assert cloud.tls.cafile == "ca.crt"
    assert [(t.pattern, t.direction, t.qos, t.local_prefix, t.remote_prefix)
            for t in cloud.topics] == [
        ("sensors/#", "out", 1, "", "site1/"),
        ("commands/#", "in", 2, "local/", "remote/"),
        ("status", "both", 0, "", ""),
    ]  # fmt: skip
    assert (second.protocol, second.restart_timeout) == ("mqttv5", [5.0, 60.0])
    # What has no equivalent is still named, with its line.
    assert [(w.line, w.text.split(":")[0]) for w in warnings] == [(20, "local_clientid")]


def test_known_options_without_an_equivalent_are_named_with_what_to_use(tmp_path: Path) -> None:
    conf = read(
        tmp_path,
        "listener 1883\nplugin /usr/lib/mosquitto_dynamic_security.so\n"
        "plugin_opt_config_file /etc/dynsec.json\nauth_plugin /usr/lib/auth.so\n"
        "psk_hint hint\nuser mosquitto\nlog_timestamp_format %Y\nmessage_size_limit 100\n",
    )
    texts = dict(notices(conf))
    assert texts[2].startswith("plugin: no equivalent in Roost, not applied; write a Roost")
    assert "auth_plugin_options" in texts[3]
    assert "auth_plugin" in texts[4]
    assert "pre-shared keys" in texts[5]
    assert "systemd User=" in texts[6]
    assert "log_format" in texts[7]
    assert "max_packet_size" in texts[8]


def test_mosquittos_lenient_values_are_read_as_it_reads_them_and_named(tmp_path: Path) -> None:
    conf = read(
        tmp_path,
        "listener 1883\nmax_queued_messages 10k\nmax_connections abc\n"
        "password_file /etc/passwd # the users\nmax_inflight_messages 0\n",
    )
    assert conf.data["max_queued_messages"] == 10
    assert conf.data["listeners"][0]["max_connections"] == 0  # type: ignore[index]
    assert conf.data["password_file"] == "/etc/passwd # the users"  # noqa: S105  (a path)
    assert conf.data["max_inflight_messages"] == 65535  # Mosquitto's 0: no limit
    assert notices(conf) == [
        (2, '"10k" is not an integer; read as 10, as Mosquitto does'),
        (3, '"abc" is not an integer; read as 0, as Mosquitto does'),
        (4, 'the value is "/etc/passwd # the users": Mosquitto has no end-of-line comments'),
    ]
    assert [atoi(s) for s in ("12", " -3", "+4x", "x", "")] == [12, -3, 4, 0, 0]


def test_a_setting_roost_refuses_names_the_mosquitto_line(tmp_path: Path) -> None:
    path = write(
        tmp_path, "listener 8883\ncertfile a.crt\nkeyfile a.key\nrequire_certificate true\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_mosquitto_config(path)
    assert str(caught.value) == (
        f"{path}:4: listeners[0].require_certificate: needs cafile (the CA that signs client"
        " certificates)"
    )


def test_recognised_by_name_or_by_content(tmp_path: Path) -> None:
    assert looks_like_mosquitto(tmp_path / "anything.conf")
    assert looks_like_mosquitto(write(tmp_path, "# mine\n\nlistener 1883\n", "broker.cfg"))
    assert not looks_like_mosquitto(write(tmp_path, "maximum_qos = 1\n", "roost.toml"))
    assert not looks_like_mosquitto(write(tmp_path, "[[listeners]]\nport = 1\n", "r.toml"))
    # A TOML file named .conf is TOML; a Mosquitto file named .toml is Mosquitto's.
    assert not looks_like_mosquitto(write(tmp_path, "# roost\nmaximum_qos = 1\n", "roost.conf"))
    assert looks_like_mosquitto(write(tmp_path, "allow_anonymous true\n", "mosq.toml"))
    assert looks_like_mosquitto(write(tmp_path, "# only comments\n", "empty.conf"))


def test_a_toml_file_that_looks_like_mosquittos_points_at_the_commands(tmp_path: Path) -> None:
    path = write(tmp_path, "maximum_qos = 1\npersistence true\n", "roost.toml")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"`roost config convert {path}`" in str(caught.value)
    assert f"`roost broker -c {path}`" in str(caught.value)


# -- lines Mosquitto refuses: refused here at the same line ---------------------------------

ERRORS = [
    ("unknown", "listener 1883\nfoo bar\n", 2, 'unknown configuration variable "foo"'),
    ("bad-bool", "allow_anonymous yes\n", 1, "invalid value (yes): true or false"),
    ("empty-bool", "listener 1883\nallow_anonymous\n", 2, "empty value"),
    ("indented-comment", "listener 1883\n  # note\n", 2, 'unknown configuration variable "#"'),
    ("tab", "\tlistener 1883\n", 1, 'unknown configuration variable "\tlistener"'),
    ("small-packet", "max_packet_size 10\n", 1, "invalid max_packet_size value (10)"),
    ("keepalive", "max_keepalive 5\n", 1, "invalid max_keepalive value (5)"),
    ("sys-interval", "sys_interval -1\n", 1, "invalid sys_interval value (-1)"),
    ("topic-outside-bridge", "topic a/#\n", 1, "only inside a bridge (after a `connection` line)"),
    ("port-0", "listener 0\n", 1, "a listener with port 0 must provide a Unix socket path"),
    ("port-big", "listener 70000\n", 1, "invalid port (70000)"),
    ("max-qos", "listener 1883\nmax_qos 3\n", 2, "max_qos must be between 0 and 2 inclusive"),
    ("protocol", "listener 1883\nprotocol ftp\n", 2, "invalid protocol value (ftp)"),
    ("duplicate", "password_file /a\npassword_file /b\n", 2,
     "duplicate value in configuration (Mosquitto refuses a second one)"),
    ("expiration", "persistent_client_expiration 5x\n", 1,
     "invalid persistent_client_expiration duration (a number and h, d, w, m or y)"),
    ("log-dest", "log_dest somewhere\n", 1, "invalid log_dest value (somewhere)"),
    ("direction", "connection a\naddress h\ntopic # sideways\n", 3,
     "invalid bridge topic direction 'sideways'"),
    ("bridge-qos", "connection a\naddress h\ntopic # in 3\n", 3, "invalid bridge QoS level '3'"),
    ("remap", 'connection a\naddress h\ntopic "" in 0 "" r/\n', 3,
     "invalid bridge remapping (an empty pattern needs both prefixes)"),
    ("duplicate-bridge", "connection a\naddress h\ntopic #\nconnection a\n", 4,
     'duplicate bridge name "a"'),
    ("bridge-protocol", "connection a\nbridge_protocol_version mqttv4\n", 2,
     "invalid bridge_protocol_version value (mqttv4)"),
    ("start-type", "connection a\nstart_type manual\n", 2, "invalid start_type value (manual)"),
    ("backoff", "connection a\nrestart_timeout 30 10\n", 2,
     "backoff cap is lower than the base in restart_timeout"),
    ("plugin-bool", "listener 1\nset_tcp_nodelay maybe\n", 2,
     "invalid value (maybe): true or false"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "line", "problem"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS]
)
def test_lines_mosquitto_refuses_are_errors(
    tmp_path: Path, text: str, line: int, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        read_mosquitto_conf(path)
    assert (caught.value.source, caught.value.line, caught.value.problem) == (
        str(path),
        line,
        problem,
    )
    assert str(caught.value).startswith(f"{path}:{line}: ")


@needs_mosquitto
@pytest.mark.parametrize(("text", "line"), [e[1:3] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_mosquitto_refuses_the_same_lines(tmp_path: Path, text: str, line: int) -> None:
    path = write(tmp_path, text)
    # A refused file stops Mosquitto before it opens any socket or drops privileges.
    result = subprocess.run(
        [MOSQUITTO, "-c", str(path)], capture_output=True, text=True, timeout=10, check=False
    )
    assert result.returncode != 0, result.stderr
    assert f"Error found at {path}:{line}." in result.stdout + result.stderr


BRIDGE_ERRORS = [
    ("no-address", "connection a\ntopic #\n",
     "invalid bridge configuration: no remote addresses defined"),
    ("no-topic", "connection a\naddress h\n", "invalid bridge configuration: no topics defined"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "problem"), [e[1:] for e in BRIDGE_ERRORS], ids=[e[0] for e in BRIDGE_ERRORS]
)
def test_an_incomplete_bridge_is_an_error_at_its_connection_line(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        read_mosquitto_conf(path)
    assert (caught.value.line, caught.value.problem) == (1, problem)
    if os.access(MOSQUITTO, os.X_OK):
        result = subprocess.run(
            [MOSQUITTO, "-c", str(path)], capture_output=True, text=True, timeout=10, check=False
        )
        assert result.returncode != 0
        assert problem.replace("invalid", "Invalid") in result.stdout + result.stderr


def test_an_unknown_tls_version_is_refused_where_mosquitto_refuses_it(tmp_path: Path) -> None:
    # Mosquitto reads the value at any time and refuses it when it sets up TLS, at start.
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    text = f"listener {port.getsockname()[1]} 127.0.0.1\ncertfile a\nkeyfile b\ntls_version ssl3\n"
    port.close()
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        read_mosquitto_conf(path)
    assert (caught.value.line, caught.value.problem) == (
        4,
        'unsupported tls_version "ssl3" (tlsv1.3, tlsv1.2 or tlsv1.1)',
    )
    # Without TLS on the listener, Mosquitto never looks at it: named, not refused.
    conf = read_mosquitto_conf(write(tmp_path, "listener 1883\ntls_version ssl3\n", "plain.conf"))
    assert [n.line for n in conf.notices] == [2]
    if os.access(MOSQUITTO, os.X_OK):
        result = subprocess.run(
            [MOSQUITTO, "-c", str(path)], capture_output=True, text=True, timeout=10, check=False
        )
        assert result.returncode != 0
        assert 'Error: Unsupported tls_version "ssl3".' in result.stdout + result.stderr


def test_per_listener_refusal_roost_cannot_express_is_named(tmp_path: Path) -> None:
    conf = read(
        tmp_path,
        "per_listener_settings true\nlistener 1883\nallow_anonymous true\nlistener 1884\n",
    )
    assert "auth_plugin" not in conf.data
    assert notices(conf) == [
        (
            4,
            (
                "Mosquitto refuses every client on this listener (no password_file, anonymous"
                " refused); Roost lets in clients that send a user name"
            ),
        )
    ]


def test_comments_in_any_encoding_values_in_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.conf"
    path.write_bytes(b"# caf\xe9\nlistener 1883\npassword_file /caf\xe9\n")
    with pytest.raises(ConfigError) as caught:
        read_mosquitto_conf(path)
    assert (caught.value.line, caught.value.problem) == (3, "not valid UTF-8")


def test_per_listener_limits_become_broker_wide_and_are_named_when_they_differ(
    tmp_path: Path,
) -> None:
    same = read(tmp_path, "listener 1883\nmax_qos 1\nmax_topic_alias 5\n")
    assert (same.data["maximum_qos"], same.data["topic_alias_maximum"]) == (1, 5)
    assert same.notices == []
    differ = read_mosquitto_conf(
        write(tmp_path, "listener 1883\nmax_qos 1\nlistener 1884\n", "differ.conf")
    )
    assert differ.data["maximum_qos"] == 1
    assert notices(differ) == [
        (2, "max_qos: per listener in Mosquitto; Roost's maximum_qos = 1 applies to every listener")
    ]
