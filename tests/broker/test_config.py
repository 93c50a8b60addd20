"""The TOML loader: every error names the file, the line, the key and the problem."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from roost.broker.bridge_config import BridgeConfig, BridgeTls, BridgeTopic
from roost.broker.config import (
    BrokerConfig,
    ClusterConfig,
    ConfigError,
    HookConfig,
    HttpConfig,
    ListenerConfig,
    config_from_mapping,
    load_config,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"

# Every field set to something other than its default, so a key that is read into the
# wrong field (or not at all) shows up as a difference.
COMPLETE_TOML = """\
allow_anonymous = false
max_connections = 5000
max_packet_size = 65536
connect_timeout = 2.5
max_client_id_length = 128
max_publish_rate = 50
max_topic_length = 1024
max_topic_levels = 16
max_subscriptions_per_client = 0
max_keep_alive = 600
receive_maximum = 50
topic_alias_maximum = 0
topic_alias_send_maximum = 4
maximum_qos = 1
max_inflight_messages = 10
max_queued_messages = 500
max_queued_bytes = 10_000_000
queue_full_policy = "drop_oldest"
queue_qos0_messages = true
persistent_session_expiry = 3600
max_session_expiry_interval = 86400
retain_available = false
max_retained_messages = 10
sys_interval = 0
password_file = "passwords"
acl_file = "acl"
scram_file = "scram"
auth_plugin = "tests.auth.plugins:AllowList"
auth_plugin_options = { users = ["alice"], realm = "test" }
allow_sys_publish = ["$SYS/broker/connection/+/state"]
persistence = "memory"
data_dir = "/var/lib/roost"
commit_policy = "batched"
commit_window_ms = 25
log_level = "debug"
log_dest = "file"
log_file = "/var/log/roost/roost.log"
log_format = "json"
connection_messages = false

[[listeners]]
host = "0.0.0.0"
port = 1883
max_connections = 100
max_connection_rate = 20.5
allow_anonymous = true

[[listeners]]
host = "::1"
port = 8883
type = "wss"
path = "/ws"
certfile = "server.crt"
keyfile = "server.key"
cafile = "ca.crt"
require_certificate = true
use_identity_as_username = "san"
crlfile = "ca.crl"
tls_version = "1.3"

[http]
host = "0.0.0.0"
port = 8080
api_keys_file = "api-keys"
cors_origins = ["https://ops.example.com"]
[[hooks]]
path = "tests.broker.hook_probes:Recorder"
options = { mute = ["x"] }
timeout = 2.5
[[bridges]]
name = "cloud"
addresses = ["cloud.example:8883", "backup.example:8883"]
protocol = "mqttv5"
restart_timeout = 30
tls = { cafile = "ca.crt", certfile = "edge.crt", keyfile = "edge.key" }
topics = [
  { pattern = "sensors/#", direction = "out", qos = 1, remote_prefix = "site1/" },
  { pattern = "cmd/#", direction = "in", qos = 2, local_prefix = "remote/" },
]
[cluster]
nats_url = ["nats://10.0.0.5:4222", "tls://10.0.0.6:4222"]
node = "edge-a"
replicas = 3
offline_session_grace = 60
node_timeout = 12.5
"""

COMPLETE_CONFIG = BrokerConfig(
    listeners=[
        ListenerConfig(
            "0.0.0.0", 1883, max_connections=100, max_connection_rate=20.5, allow_anonymous=True
        ),
        ListenerConfig(
            "::1",
            8883,
            type="wss",
            path="/ws",
            certfile="server.crt",
            keyfile="server.key",
            cafile="ca.crt",
            require_certificate=True,
            use_identity_as_username="san",
            crlfile="ca.crl",
            tls_version="1.3",
        ),
    ],
    allow_anonymous=False,
    max_connections=5000,
    max_packet_size=65536,
    connect_timeout=2.5,
    max_client_id_length=128,
    max_publish_rate=50.0,
    max_topic_length=1024,
    max_topic_levels=16,
    max_subscriptions_per_client=0,
    max_keep_alive=600,
    receive_maximum=50,
    topic_alias_maximum=0,
    topic_alias_send_maximum=4,
    maximum_qos=1,
    max_inflight_messages=10,
    max_queued_messages=500,
    max_queued_bytes=10_000_000,
    queue_full_policy="drop_oldest",
    queue_qos0_messages=True,
    persistent_session_expiry=3600,
    max_session_expiry_interval=86400,
    retain_available=False,
    max_retained_messages=10,
    sys_interval=0.0,
    password_file="passwords",  # noqa: S106  (a file name, not a password)
    acl_file="acl",
    scram_file="scram",
    auth_plugin="tests.auth.plugins:AllowList",
    auth_plugin_options={"users": ["alice"], "realm": "test"},
    allow_sys_publish=["$SYS/broker/connection/+/state"],
    persistence="memory",
    data_dir="/var/lib/roost",
    commit_policy="batched",
    commit_window_ms=25.0,
    log_level="debug",
    cluster=ClusterConfig(
        ["nats://10.0.0.5:4222", "tls://10.0.0.6:4222"],
        "edge-a",
        replicas=3,
        offline_session_grace=60,
        node_timeout=12.5,
    ),
    log_dest="file",
    log_file="/var/log/roost/roost.log",
    log_format="json",
    http=HttpConfig("0.0.0.0", 8080, "api-keys", ["https://ops.example.com"]),
    hooks=[HookConfig("tests.broker.hook_probes:Recorder", {"mute": ["x"]}, 2.5)],
    connection_messages=False,
    bridges=[
        BridgeConfig(
            name="cloud",
            addresses=["cloud.example:8883", "backup.example:8883"],
            protocol="mqttv5",
            restart_timeout=30.0,
            tls=BridgeTls("ca.crt", "edge.crt", "edge.key"),
            topics=[
                BridgeTopic("sensors/#", "out", 1, remote_prefix="site1/"),
                BridgeTopic("cmd/#", "in", 2, local_prefix="remote/"),
            ],
        )
    ],
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "roost.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    return excinfo.value


def assert_error(err: ConfigError, path: Path, line: int | None, key: str, problem: str) -> None:
    where = str(path) if line is None else f"{path}:{line}"
    assert str(err) == f"{where}: {key}: {problem}"
    assert (err.source, err.line, err.column, err.key, err.problem) == (
        str(path),
        line,
        None,
        key,
        problem,
    )


def assert_bad_last_line(tmp_path: Path, text: str, key: str, problem_end: str) -> None:
    """The error is about the key on the last line of ``text``; its problem ends so."""
    # Two lines of padding, so the line number is not 1 by accident.
    path = write(tmp_path, "# roost\n\n" + text + "\n")
    line = 3 + text.count("\n")
    err = load_error(path)
    assert (err.line, err.key) == (line, key)
    assert str(err).startswith(f"{path}:{line}: {key}: expected ")
    assert str(err).endswith(problem_end)


# --- valid files ----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_an_empty_file_gives_the_defaults(tmp_path: Path, text: str) -> None:
    assert load_config(write(tmp_path, text)) == BrokerConfig()


def test_a_complete_file_round_trips(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, COMPLETE_TOML)) == COMPLETE_CONFIG


def test_the_complete_file_sets_every_field_away_from_its_default() -> None:
    default = BrokerConfig()
    same = [
        f.name
        for f in dataclasses.fields(BrokerConfig)
        if getattr(COMPLETE_CONFIG, f.name) == getattr(default, f.name)
    ]
    assert same == []


def test_load_config_accepts_a_str_path(tmp_path: Path) -> None:
    assert load_config(str(write(tmp_path, "maximum_qos = 0\n"))).maximum_qos == 0


def test_integers_are_accepted_for_float_fields_and_become_floats(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "connect_timeout = 5\nsys_interval = 1\n"))
    assert config.connect_timeout == 5.0
    assert type(config.connect_timeout) is float
    assert type(config.sys_interval) is float


def test_listeners_given_as_an_inline_array_of_tables(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, 'listeners = [{ host = "::" }, { port = 0 }]\n'))
    assert config.listeners == [ListenerConfig("::", 1883), ListenerConfig("127.0.0.1", 0)]


def test_a_byte_order_mark_is_forgiven(tmp_path: Path) -> None:
    path = tmp_path / "roost.toml"
    path.write_bytes(b"\xef\xbb\xbfmaximum_qos = 1\n")
    assert load_config(path).maximum_qos == 1


@pytest.mark.parametrize(
    "text",
    [
        "[[listeners]]\nport = 0\n",
        "[[listeners]]\nport = 65535\n",
        "max_packet_size = 2\n",
        "max_packet_size = 268435460\n",
        "receive_maximum = 1\n",
        "receive_maximum = 65535\n",
        "topic_alias_maximum = 65535\n",
        "topic_alias_send_maximum = 0\n",
        "topic_alias_send_maximum = 65535\n",
        "maximum_qos = 0\n",
        "max_keep_alive = 0\n",
        "max_client_id_length = 23\n",
        "max_queued_bytes = 0\n",
        "sys_interval = 0.0\n",
        "connect_timeout = 0.001\n",
        "max_session_expiry_interval = 4294967295\n",
        # Port 0 twice is two different ephemeral ports, not a clash.
        "[[listeners]]\nport = 0\n[[listeners]]\nport = 0\n",
    ],
)
def test_values_at_the_edges_of_their_ranges_are_accepted(tmp_path: Path, text: str) -> None:
    load_config(write(tmp_path, text))


# --- errors: each names file, line, key and problem -----------------------------------


def test_the_documented_example_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '# Two listeners.\n\n[[listeners]]\nhost = "0.0.0.0"\n\n[[listeners]]\nport = "abc"\n',
    )
    err = load_error(path)
    assert str(err) == (
        f'{path}:7: listeners[1].port: expected an integer from 0 to 65535, got "abc"'
    )


@pytest.mark.parametrize(
    ("text", "line", "key", "problem"),
    [
        pytest.param(
            "maximum_qos = 1\nmax_pakcet_size = 10\n",
            2,
            "max_pakcet_size",
            'unknown key; did you mean "max_packet_size"?',
            id="unknown-with-suggestion",
        ),
        pytest.param("flavour = 'red'\n", 1, "flavour", "unknown key", id="unknown-no-suggestion"),
        pytest.param(
            "\n[[listeners]]\nport = 1\n\n[[listeners]]\nprot = 2\n",
            6,
            "listeners[1].prot",
            'unknown key; did you mean "port"?',
            id="unknown-in-second-listener",
        ),
        pytest.param(
            "maximum_qos = 1\n\n[storage]\npath = 'x'\n",
            3,
            "storage",
            "unknown key",
            id="unknown-table",
        ),
        pytest.param(
            "[[listeners]]\nport = 1\n[[listeners]]\nport = 2\n[listeners.tls]\ncert = 'x'\n",
            5,
            "listeners[1].tls",
            "unknown key",
            id="unknown-subtable-of-second-listener",
        ),
        pytest.param(
            "port = 1883\n",
            1,
            "port",
            "unknown key; host and port belong in a [[listeners]] table",
            id="top-level-port",
        ),
        pytest.param(
            "host = '0.0.0.0'\n",
            1,
            "host",
            "unknown key; host and port belong in a [[listeners]] table",
            id="top-level-host",
        ),
        pytest.param(
            "[[listeners]]\nport = 1883\n\n    password_file = 'passwords'\n",
            4,
            "listeners[0].password_file",
            "unknown key; password_file is a top-level key: move it above the first"
            " [[listeners]] table (in TOML, the keys after a table header belong to that"
            " table)",
            id="top-level-key-after-listeners",
        ),
        pytest.param(
            "[[listeners]]\nport = 1\n[[listeners]]\nport = 2\nsys_interval = 0\n",
            5,
            "listeners[1].sys_interval",
            "unknown key; sys_interval is a top-level key: move it above the first"
            " [[listeners]] table (in TOML, the keys after a table header belong to that"
            " table)",
            id="top-level-key-after-second-listener",
        ),
    ],
)
def test_unknown_keys(tmp_path: Path, text: str, line: int, key: str, problem: str) -> None:
    path = write(tmp_path, text)
    assert_error(load_error(path), path, line, key, problem)


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        # bool is not an int, and an int is not a bool.
        ("[[listeners]]\nport = true", "listeners[0].port", "got true"),
        ("maximum_qos = false", "maximum_qos", "expected an integer from 0 to 2, got false"),
        ("allow_anonymous = 1", "allow_anonymous", "expected true or false, got 1"),
        ("retain_available = 0", "retain_available", "expected true or false, got 0"),
        ("connect_timeout = true", "connect_timeout", "expected a number > 0, got true"),
        # Other wrong types.
        ("allow_anonymous = 'yes'", "allow_anonymous", 'expected true or false, got "yes"'),
        ("max_queued_messages = 10.5", "max_queued_messages", "expected an integer >= 1, got 10.5"),
        ("max_packet_size = '1MB'", "max_packet_size", 'got "1MB"'),
        ("[[listeners]]\nhost = 127", "listeners[0].host", "expected a non-empty string, got 127"),
        ("sys_interval = 1979-05-27", "sys_interval", "got a date/time (1979-05-27)"),
        ("sys_interval = [1]", "sys_interval", "expected a number >= 0, got an array"),
        ("[sys_interval]", "sys_interval", "expected a number >= 0, got a table"),
        (
            "queue_full_policy = 'drop_newset'",
            "queue_full_policy",
            (
                'expected one of "drop_newest", "drop_oldest", got "drop_newset";'
                ' did you mean "drop_newest"?'
            ),
        ),
        (
            "queue_full_policy = 1",
            "queue_full_policy",
            'expected one of "drop_newest", "drop_oldest", got 1',
        ),
        (
            "[listeners]",
            "listeners",
            "expected a non-empty array of tables ([[listeners]]), got a table",
        ),
        (
            "listeners = []",
            "listeners",
            "expected a non-empty array of tables ([[listeners]]), got an empty array",
        ),
        ("listeners = [1]", "listeners[0]", "expected a table, got 1"),
    ],
)
def test_wrong_types(tmp_path: Path, text: str, key: str, problem: str) -> None:
    assert_bad_last_line(tmp_path, text, key, problem)


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (
            "[[listeners]]\nport = 65536",
            "listeners[0].port",
            "an integer from 0 to 65535, got 65536",
        ),
        ("[[listeners]]\nport = -1", "listeners[0].port", "an integer from 0 to 65535, got -1"),
        ("[[listeners]]\nhost = ''", "listeners[0].host", 'a non-empty string, got ""'),
        ("max_packet_size = 1", "max_packet_size", "an integer from 2 to 268435460, got 1"),
        (
            "max_packet_size = 268435461",
            "max_packet_size",
            "an integer from 2 to 268435460, got 268435461",
        ),
        ("receive_maximum = 0", "receive_maximum", "an integer from 1 to 65535, got 0"),
        ("receive_maximum = 65536", "receive_maximum", "an integer from 1 to 65535, got 65536"),
        ("topic_alias_maximum = -1", "topic_alias_maximum", "an integer from 0 to 65535, got -1"),
        ("topic_alias_maximum = 70000", "topic_alias_maximum", "from 0 to 65535, got 70000"),
        (
            "topic_alias_send_maximum = 65536",
            "topic_alias_send_maximum",
            "from 0 to 65535, got 65536",
        ),
        ("maximum_qos = 3", "maximum_qos", "an integer from 0 to 2, got 3"),
        ("max_keep_alive = 65536", "max_keep_alive", "an integer from 0 to 65535, got 65536"),
        ("max_client_id_length = 22", "max_client_id_length", "from 23 to 65535, got 22"),
        ("max_inflight_messages = 0", "max_inflight_messages", "from 1 to 65535, got 0"),
        ("max_queued_messages = 0", "max_queued_messages", "an integer >= 1, got 0"),
        ("max_queued_bytes = -1", "max_queued_bytes", "an integer >= 0, got -1"),
        ("max_retained_messages = 0", "max_retained_messages", "an integer >= 1, got 0"),
        (
            "persistent_session_expiry = 4294967296",
            "persistent_session_expiry",
            "an integer from 0 to 4294967295, got 4294967296",
        ),
        ("max_session_expiry_interval = -1", "max_session_expiry_interval", "got -1"),
        ("connect_timeout = 0", "connect_timeout", "a number > 0, got 0"),
        ("connect_timeout = -1.5", "connect_timeout", "a number > 0, got -1.5"),
        ("connect_timeout = inf", "connect_timeout", "a finite number > 0, got inf"),
        ("sys_interval = -0.5", "sys_interval", "a number >= 0, got -0.5"),
        ("sys_interval = nan", "sys_interval", "a finite number >= 0, got nan"),
    ],
)
def test_out_of_range_values(tmp_path: Path, text: str, key: str, problem: str) -> None:
    assert_bad_last_line(tmp_path, text, key, problem)


def test_two_listeners_on_one_address(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[[listeners]]\nhost = '0.0.0.0'\nport = 1883\n\n[[listeners]]\nhost = '0.0.0.0'\n",
    )
    assert_error(
        load_error(path),
        path,
        5,
        "listeners[1]",
        'same host and port as listeners[0] (host "0.0.0.0", port 1883)',
    )


def test_values_inside_inline_tables_point_at_the_line_of_the_array(tmp_path: Path) -> None:
    path = write(tmp_path, "maximum_qos = 1\nlisteners = [\n  { port = 1 },\n  { port = -2 },\n]\n")
    err = load_error(path)
    assert (err.line, err.key) == (2, "listeners[1].port")


# --- finding the line when the file is hard to scan -----------------------------------

# Things that look like keys and tables but are inside strings, arrays and comments.
TRICKY_TOML = """\
# A comment that looks like a table: [[listeners]]
listeners = [
  { host = "127.0.0.1", port = 1883 },  # [[listeners]]
  { host = \"\"\"
[[listeners]]
port = "x"
receive_maximum = 0
\"\"\", port = 1884 },
]
"max_queued_messages" = 5
'queue_full_policy' = "drop_oldest"  # receive_maximum = 0
queue_qos0_messages = true
receive_maximum = 0
"""


def test_the_line_is_found_past_strings_arrays_and_comments(tmp_path: Path) -> None:
    path = write(tmp_path, TRICKY_TOML)
    assert load_error(path).line == 13


def test_the_line_is_found_with_windows_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "roost.toml"
    path.write_bytes(TRICKY_TOML.replace("\n", "\r\n").encode())
    assert load_error(path).line == 13


def test_quoted_unknown_keys_are_found_and_quoted_in_the_message(tmp_path: Path) -> None:
    path = write(tmp_path, 'maximum_qos = 1\n\n"max packet\\tsize" = 1\n')
    err = load_error(path)
    assert (err.line, err.key) == (3, '"max packet\\tsize"')


def test_a_dotted_unknown_key_is_found(tmp_path: Path) -> None:
    path = write(tmp_path, "maximum_qos = 1\ntls . cert = 'x'\n")
    assert_error(load_error(path), path, 2, "tls", "unknown key")


# --- errors before any key is looked at ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column", "problem"),
    [
        ("maximum_qos = 1\nmax_packet_size = \n", 2, 19, "Invalid value"),
        ("maximum_qos = 1\nmaximum_qos = 2\n", 2, 16, "Cannot overwrite a value"),
        ("[[listeners]]\nhost = 0.0.0.0\n", 2, 11, None),
    ],
)
def test_toml_syntax_errors_give_line_and_column(
    tmp_path: Path, text: str, line: int, column: int, problem: str | None
) -> None:
    path = write(tmp_path, text)
    err = load_error(path)
    assert (err.source, err.line, err.column, err.key) == (str(path), line, column, None)
    assert str(err).startswith(f"{path}:{line}:{column}: invalid TOML: ")
    if problem is not None:
        assert err.problem == f"invalid TOML: {problem}"


def mosquitto_hint(path: Path) -> str:
    return (
        "this looks like a Mosquitto configuration file (mosquitto.conf), not TOML:"
        f" `roost broker -c {path}` reads it when its name ends in .conf (or its first"
        f" setting is Mosquitto's), and `roost config convert {path}` prints it as TOML"
        " (docs/mosquitto.md)"
    )


def test_log_dest_file_needs_log_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'maximum_qos = 1\nlog_dest = "file"\n')
    assert_error(
        load_error(path),
        path,
        2,
        "log_dest",
        'log_dest = "file" needs log_file (the file to write)',
    )


def test_a_hook_needs_a_path_and_a_positive_timeout(tmp_path: Path) -> None:
    path = write(tmp_path, "maximum_qos = 1\n\n[[hooks]]\noptions = { a = 1 }\n")
    assert_error(
        load_error(path),
        path,
        3,
        "hooks[0]",
        'needs path ("package.module:Attribute" or a name)',
    )
    path = write(tmp_path, '[[hooks]]\npath = "x:Y"\ntimeout = 0\n')
    err = load_error(path)
    assert (err.line, err.key) == (3, "hooks[0].timeout")


def test_log_file_needs_log_dest_file(tmp_path: Path) -> None:
    path = write(tmp_path, 'log_file = "roost.log"\nlog_dest = "syslog"\n')
    assert_error(
        load_error(path), path, 1, "log_file", 'only with log_dest = "file"; log_dest is "syslog"'
    )


def test_a_mosquitto_file_gets_a_hint_not_a_toml_syntax_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "# mosquitto.conf\n\nper_listener_settings false\nlistener 1883 0.0.0.0\n"
        "allow_anonymous false\npassword_file /etc/mosquitto/passwd\n",
    )
    assert str(load_error(path)) == f"{path}:3: {mosquitto_hint(path)}"


def test_a_toml_file_with_one_mosquitto_line_points_at_it(tmp_path: Path) -> None:
    path = write(tmp_path, "maximum_qos = 1\n\npersistence true\n")
    assert str(load_error(path)) == f"{path}:3: {mosquitto_hint(path)}"


def test_a_syntax_error_at_the_end_points_at_the_last_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'maximum_qos = 1\n[[listeners]]\nhost = """\n0.0.0.0\n')
    err = load_error(path)
    assert str(err) == f"{path}:4: invalid TOML: Unterminated string (at end of file)"


def test_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"
    err = load_error(path)
    assert str(err) == f"{path}: cannot read the file: No such file or directory"
    assert err.line is None


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "roost.toml"
    path.write_bytes(b"maximum_qos = 1\n# caf\xe9\n")
    assert str(load_error(path)) == f"{path}:2: not valid UTF-8 (TOML files must be)"


# --- config_from_mapping --------------------------------------------------------------


def test_config_from_mapping_builds_the_dataclass() -> None:
    config = config_from_mapping(
        {"listeners": [{"host": "::", "port": 0}], "maximum_qos": 1, "sys_interval": 5}
    )
    assert config == BrokerConfig(
        listeners=[ListenerConfig("::", 0)], maximum_qos=1, sys_interval=5.0
    )


def test_config_from_mapping_of_nothing_gives_the_defaults() -> None:
    assert config_from_mapping({}) == BrokerConfig()


def test_config_from_mapping_errors_name_the_source_but_no_line() -> None:
    with pytest.raises(ConfigError) as excinfo:
        config_from_mapping({"listeners": [{"port": 99999}]}, source="settings")
    assert str(excinfo.value) == (
        "settings: listeners[0].port: expected an integer from 0 to 65535, got 99999"
    )
    assert excinfo.value.line is None


def test_config_from_mapping_default_source() -> None:
    with pytest.raises(ConfigError, match=r"^<config>: mqtt: unknown key$"):
        config_from_mapping({"mqtt": {}})


def test_config_from_mapping_rejects_keys_that_are_not_strings() -> None:
    data: dict[object, object] = {1: 2}
    with pytest.raises(ConfigError, match=r"^<config>: keys must be strings, got 1$"):
        config_from_mapping(data)  # type: ignore[arg-type]  # the wrong type is the test


# --- the documentation ----------------------------------------------------------------


def test_every_field_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z0-9_]+)` \|", text, flags=re.MULTILINE))
    expected = {f.name for f in dataclasses.fields(BrokerConfig)}
    expected |= {f.name for f in dataclasses.fields(ListenerConfig)}
    expected |= {f.name for f in dataclasses.fields(HttpConfig)}
    for cls in (BridgeConfig, BridgeTopic, BridgeTls, ClusterConfig):
        expected |= {f.name for f in dataclasses.fields(cls)}
    assert expected <= documented


def test_the_documented_example_loads(tmp_path: Path) -> None:
    text = DOCS.read_text(encoding="utf-8")
    match = re.search(r"```toml\n(.*?)```", text, flags=re.DOTALL)
    assert match is not None
    config = load_config(write(tmp_path, match[1]))
    assert config != BrokerConfig()


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("max_publish_rate = -1\n", "max_publish_rate", "expected a number >= 0, got -1"),
        (
            "[cluster]\nnode_timeout = 1\n",
            "cluster.node_timeout",
            "expected a number from 2 to 3600, got 1",
        ),
        (
            "[[listeners]]\nmax_connection_rate = -0.5\n",
            "listeners[0].max_connection_rate",
            "expected a number >= 0, got -0.5",
        ),
        ("max_publish_rate = 'fast'\n", "max_publish_rate", 'expected a number >= 0, got "fast"'),
    ],
)
def test_rate_limits_must_be_non_negative_numbers(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    """The rate limits are off (0) by default; a bad value names its key."""
    assert BrokerConfig().max_publish_rate == 0
    assert ListenerConfig().max_connection_rate == 0
    err = load_error(write(tmp_path, text))
    assert err.key == key
    assert err.problem == problem


BRIDGE = '[[bridges]]\nname = "b"\naddresses = ["h:1883"]\ntopics = [{ pattern = "a/#" }]\n'


@pytest.mark.parametrize(
    ("extra", "key", "problem"),
    [
        ("restart_timeout = [5]\n", "bridges[0].restart_timeout", "expected [base, cap]"),
        ("restart_timeout = 0\n", "bridges[0].restart_timeout", "expected a number of seconds"),
        ('protocol = "mqttv4"\n', "bridges[0].protocol", "expected one of"),
        ("tls = { cafile = 1 }\n", "bridges[0].tls.cafile", "expected a string, got 1"),
        ('tls = { certfile = "c" }\n', "bridges[0].tls.keyfile", "go together"),
        ('password = "p"\n', "bridges[0].username", "a password needs a username"),
        ("keep_alive = -1\n", "bridges[0].keep_alive", "expected an integer from 0 to 65535"),
        ("colour = 1\n", "bridges[0].colour", "unknown key"),
    ],
)
def test_bridge_errors_name_the_file_line_and_key(
    tmp_path: Path, extra: str, key: str, problem: str
) -> None:
    path = write(tmp_path, BRIDGE + extra)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == key
    assert problem in info.value.problem
    assert info.value.line is not None


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (
            '[[bridges]]\nname = "b"\naddresses = ["nohost"]\ntopics = [{ pattern = "a" }]\n',
            "bridges[0].addresses[0]",
            'expected "host:port"',
        ),
        (BRIDGE.replace('"a/#"', '"a/#/b"'), "bridges[0].topics[0].pattern", "not a valid"),
        (
            BRIDGE.replace("}]", ', direction = "up" }]'),
            "bridges[0].topics[0].direction",
            "expected one of",
        ),
        (BRIDGE.replace("}]", ", qos = 3 }]"), "bridges[0].topics[0].qos", "from 0 to 2"),
        (BRIDGE + BRIDGE, "bridges[1].name", "same name as bridges[0]"),
        (BRIDGE.replace('name = "b"', 'name = "a/b"'), "bridges[0].name", "may not contain"),
        ('[[bridges]]\nname = "b"\naddresses = ["h:1"]\n', "bridges[0].topics", "required"),
    ],
)
def test_bridge_table_problems(tmp_path: Path, text: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert info.value.key == key
    assert problem in info.value.problem
