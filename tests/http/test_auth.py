"""Who may call the HTTP API: API keys (`roost apikey`), loopback without them, the
Host check, CORS; and the keys file itself."""

from __future__ import annotations

import asyncio
import hmac
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from roost.broker.config import BrokerConfig, ConfigError, HttpConfig, config_from_mapping
from roost.broker.server import Broker
from roost.cli.main import main
from roost.http import HttpSetupError, apikeys
from roost.http.apikeys import (
    ApiKeyError,
    KeyChecker,
    create_key,
    delete_key,
    digest,
    read_keys,
)
from tests.http.client import Api, expect_error, http_port
from tests.support.broker_thread import BrokerThread

PROTECTED = [
    "/metrics",
    "/api/v1/status",
    "/api/v1/clients",
    "/api/v1/clients/x",
    "/api/v1/clients/x/subscriptions",
    "/api/v1/sessions",
    "/api/v1/sessions/x",
    "/api/v1/subscriptions",
    "/api/v1/retainer/messages",
    "/api/v1/retainer/message/a/b",
    "/api/v1/events/stats",
    "/api/v1/events/watch",
]
PUBLIC = ["/healthz", "/readyz", "/api/v1/openapi.json", "/", "/app.js", "/app.css"]


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    return tmp_path / "api-keys"


@pytest.fixture
def keyed_broker(make_broker: Callable[..., BrokerThread], keys_file: Path) -> BrokerThread:
    create_key(keys_file, "setup")  # the file exists; tests make their own keys
    return make_broker(http=HttpConfig(port=0, api_keys_file=str(keys_file)), sys_interval=0)


def test_with_a_keys_file_every_api_route_wants_a_key(
    keyed_broker: BrokerThread, keys_file: Path
) -> None:
    port = http_port(keyed_broker)
    key = create_key(keys_file, "ops")
    anonymous = Api(port)
    wrong = Api(port, "roost_" + "A" * 43)
    for path in PROTECTED:
        message = expect_error(anonymous.get(path), 401, "UNAUTHORIZED")
        assert "Authorization: Bearer" in message
        expect_error(wrong.get(path), 401, "UNAUTHORIZED")
    expect_error(anonymous.delete("/api/v1/clients/x"), 401, "UNAUTHORIZED")
    expect_error(anonymous.post("/api/v1/publish", {"topic": "a"}), 401, "UNAUTHORIZED")
    # Another scheme, or a key with nothing after "Bearer", is no key.
    expect_error(
        anonymous.get("/api/v1/status", headers={"Authorization": f"Basic {key}"}),
        401,
        "UNAUTHORIZED",
    )
    expect_error(
        anonymous.get("/api/v1/status", headers={"Authorization": "Bearer "}),
        401,
        "UNAUTHORIZED",
    )
    for path in PUBLIC:
        assert anonymous.get(path).status == 200, path

    api = Api(port, key)
    assert api.data("/api/v1/status")["http"]["auth"] == "api keys"
    assert api.get("/metrics").status == 200
    assert api.post("/api/v1/publish", {"topic": "a", "payload": "b"}).status == 200
    assert api.get("/api/v1/clients/x").status == 404  # authorized, then not found


def test_keys_made_and_deleted_while_running_take_effect(
    keyed_broker: BrokerThread, keys_file: Path
) -> None:
    port = http_port(keyed_broker)
    key = create_key(keys_file, "later")
    assert Api(port, key).get("/api/v1/status").status == 200
    # A new mtime is what tells the server to read the file again; a coarse file
    # system clock could give the same one, so move it on explicitly.
    assert delete_key(keys_file, "later")
    stat = keys_file.stat()
    os.utime(keys_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    expect_error(Api(port, key).get("/api/v1/status"), 401, "UNAUTHORIZED")


def test_without_keys_only_loopback_host_names_are_served(api: Api) -> None:
    assert api.get("/api/v1/status", headers={"Host": "localhost:1"}).status == 200
    assert api.get("/api/v1/status", headers={"Host": "[::1]:1"}).status == 200
    for host in ("evil.example", "evil.example:18083", "10.0.0.1"):
        expect_error(api.get("/api/v1/status", headers={"Host": host}), 403, "FORBIDDEN")


def test_no_cors_unless_configured(api: Api) -> None:
    reply = api.get("/api/v1/status", headers={"Origin": "https://elsewhere.example"})
    assert reply.status == 200
    assert "Access-Control-Allow-Origin" not in reply.headers
    preflight = api.request(
        "OPTIONS",
        "/api/v1/publish",
        headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status == 405
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_cors_for_configured_origins(make_broker: Callable[..., BrokerThread]) -> None:
    broker = make_broker(http=HttpConfig(port=0, cors_origins=["https://ops.example"]))
    api = Api(http_port(broker))
    preflight = api.request(
        "OPTIONS",
        "/api/v1/publish",
        headers={"Origin": "https://ops.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://ops.example"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    reply = api.get("/api/v1/status", headers={"Origin": "https://ops.example"})
    assert reply.headers["Access-Control-Allow-Origin"] == "https://ops.example"
    other = api.get("/api/v1/status", headers={"Origin": "https://other.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_a_non_loopback_host_needs_a_keys_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"http\.host: \"0\.0\.0\.0\" is not a loopback"):
        config_from_mapping({"http": {"host": "0.0.0.0"}})
    with pytest.raises(ConfigError, match="not a loopback"):
        config_from_mapping({"http": {"host": "broker.example"}})
    keys = str(tmp_path / "keys")
    assert config_from_mapping({"http": {"host": "0.0.0.0", "api_keys_file": keys}}).http
    assert config_from_mapping({"http": {"host": "::1"}}).http
    # A config made in code is held to the same rule when the broker starts.
    config = BrokerConfig(http=HttpConfig(host="0.0.0.0", port=0))

    async def start() -> None:
        async with Broker(config):
            pass

    with pytest.raises(HttpSetupError, match="not a loopback address"):
        asyncio.run(start())


def test_a_broken_keys_file_stops_the_start(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("ops:md5:abcd\n")
    config = BrokerConfig(http=HttpConfig(port=0, api_keys_file=str(keys)))

    async def start() -> None:
        async with Broker(config):
            pass

    with pytest.raises(HttpSetupError, match="line 1"):
        asyncio.run(start())


def test_keys_are_kept_hashed_and_checked_by_name(keys_file: Path) -> None:
    key = create_key(keys_file, "grafana")
    text = keys_file.read_text()
    assert key not in text
    assert digest(key).hex() in text
    assert keys_file.stat().st_mode & 0o777 == 0o600
    assert len(key) > 40
    assert key.startswith("roost_")
    checker = KeyChecker(str(keys_file))
    assert checker.check(key) == "grafana"
    assert checker.check(key[:-1]) is None
    assert checker.check("") is None
    with pytest.raises(ApiKeyError, match="already has"):
        create_key(keys_file, "grafana")
    with pytest.raises(ApiKeyError, match="key names"):
        create_key(keys_file, "has space")
    assert not delete_key(keys_file, "nobody")


def test_roost_apikey_create_list_delete(
    keys_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["apikey", "create", str(keys_file), "prometheus"]) == 0
    key = capsys.readouterr().out.strip()
    assert KeyChecker(str(keys_file)).check(key) == "prometheus"
    assert main(["apikey", "create", str(keys_file), "dashboard"]) == 0
    capsys.readouterr()
    assert main(["apikey", "list", str(keys_file)]) == 0
    listed = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [name for name, _created in listed] == ["prometheus", "dashboard"]
    assert all(created.endswith("Z") for _name, created in listed)
    assert key not in keys_file.read_text()
    assert main(["apikey", "delete", str(keys_file), "prometheus"]) == 0
    assert [k.name for k in read_keys(keys_file)] == ["dashboard"]
    assert main(["apikey", "delete", str(keys_file), "prometheus"]) == 1
    assert "no key named" in capsys.readouterr().err
    assert main(["apikey", "create", str(keys_file), "dashboard"]) == 1
    assert "already has" in capsys.readouterr().err


def test_a_key_is_compared_with_every_stored_digest(
    keys_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not a timing test (tests never assert on timings): the check compares the whole
    # digest with every stored one, whichever matched, so there is no early exit to time.
    keys = [create_key(keys_file, f"k{index}") for index in range(3)]
    checker = KeyChecker(str(keys_file))
    compared: list[bytes] = []
    real = hmac.compare_digest

    def spy(presented: bytes, stored: bytes) -> bool:
        compared.append(stored)
        return real(presented, stored)

    monkeypatch.setattr(apikeys, "hmac", SimpleNamespace(compare_digest=spy))
    assert checker.check("roost_wrong") is None
    assert len(compared) == 3
    compared.clear()
    assert checker.check(keys[0]) == "k0"
    assert compared == [digest(key) for key in keys]


def test_a_taken_http_port_stops_the_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = BrokerConfig(http=HttpConfig(port=port))

        async def start() -> None:
            async with Broker(config):
                pass

        with pytest.raises(HttpSetupError, match=f"cannot listen on 127.0.0.1:{port}"):
            asyncio.run(start())


def test_without_the_http_extra_the_start_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # None in sys.modules makes the import fail as if aiohttp were not installed.
    monkeypatch.setitem(sys.modules, "roost.http.server", None)
    config = BrokerConfig(http=HttpConfig(port=0))

    async def start() -> None:
        async with Broker(config):
            pass

    with pytest.raises(HttpSetupError, match=r"roost\[http\] extra"):
        asyncio.run(start())
