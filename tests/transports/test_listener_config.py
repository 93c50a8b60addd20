"""Listener settings in the TOML file: types, TLS and WebSocket keys, and the settings
that only make sense together, each refused with the line and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.broker.config import ConfigError, ListenerConfig, load_config


def load(tmp_path: Path, text: str) -> list[ListenerConfig]:
    path = tmp_path / "roost.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path).listeners


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as excinfo:
        load(tmp_path, text)
    return str(excinfo.value).removeprefix(str(tmp_path / "roost.toml"))


def test_every_type_loads(tmp_path: Path) -> None:
    listeners = load(
        tmp_path,
        """
[[listeners]]
port = 1883

[[listeners]]
type = "tls"
port = 8883
certfile = "server.pem"

[[listeners]]
type = "ws"
port = 8080
path = "/mqtt/ws"
max_connections = 10
allow_anonymous = false

[[listeners]]
type = "wss"
port = 8443
certfile = "server.crt"
keyfile = "server.key"
cafile = "ca.crt"
require_certificate = true
use_identity_as_username = "cn"
crlfile = "ca.crl"
tls_version = "1.3"
""",
    )
    assert [listener.type for listener in listeners] == ["tcp", "tls", "ws", "wss"]
    assert listeners[0].allow_anonymous is None
    assert listeners[2] == ListenerConfig(
        port=8080, type="ws", path="/mqtt/ws", max_connections=10, allow_anonymous=False
    )
    assert listeners[3].use_identity_as_username == "cn"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[listeners]]\ntype = "mqtts"\n',
            ':3: listeners[0].type: expected one of "tcp", "tls", "ws", "wss", got "mqtts"',
        ),
        (
            '[[listeners]]\ntype = "tls"\nport = 8883\n',
            ':2: listeners[0].certfile: required for a "tls" listener',
        ),
        (
            '[[listeners]]\nport = 1883\ncafile = "ca.crt"\n',
            ':4: listeners[0].cafile: only for "tls" and "wss" listeners; this one is "tcp"',
        ),
        (
            '[[listeners]]\ntype = "ws"\ntls_version = "1.3"\n',
            ':4: listeners[0].tls_version: only for "tls" and "wss" listeners; this one is "ws"',
        ),
        (
            '[[listeners]]\ntype = "tls"\ncertfile = "c"\npath = "/x"\n',
            ':5: listeners[0].path: only for "ws" and "wss" listeners; this one is "tls"',
        ),
        (
            '[[listeners]]\ntype = "ws"\npath = "mqtt"\n',
            ':4: listeners[0].path: must start with "/", got "mqtt"',
        ),
        (
            '[[listeners]]\ntype = "tls"\ncertfile = "c"\nrequire_certificate = true\n',
            (
                ":5: listeners[0].require_certificate: needs cafile (the CA that signs client"
                " certificates)"
            ),
        ),
        (
            '[[listeners]]\ntype = "wss"\ncertfile = "c"\nuse_identity_as_username = "cn"\n',
            (
                ":5: listeners[0].use_identity_as_username: needs cafile (the CA that signs client"
                " certificates)"
            ),
        ),
        (
            '[[listeners]]\ntype = "tls"\ncertfile = "c"\nuse_identity_as_username = "dn"\n',
            (
                ':5: listeners[0].use_identity_as_username: expected one of "", "cn", "san", got'
                ' "dn"'
            ),
        ),
        (
            '[[listeners]]\ntype = "tls"\ncertfile = "c"\ntls_version = "1.1"\n',
            (
                ':5: listeners[0].tls_version: expected one of "1.2", "1.3", got "1.1"; did you'
                ' mean "1.3"?'
            ),
        ),
        (
            "[[listeners]]\nmax_connections = -1\n",
            ":3: listeners[0].max_connections: expected an integer >= 0, got -1",
        ),
        (
            "[[listeners]]\nallow_anonymous = 1\n",
            ":3: listeners[0].allow_anonymous: expected true or false, got 1",
        ),
        ("max_connections = 1.5\n", ":2: max_connections: expected an integer >= 0, got 1.5"),
    ],
)
def test_listener_settings_that_are_refused(tmp_path: Path, text: str, message: str) -> None:
    assert error(tmp_path, "# roost\n" + text) == message
