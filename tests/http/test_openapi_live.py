"""The OpenAPI description lists every route; the server-sent event streams deliver."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from roost.http import live
from roost.http.openapi import openapi
from roost.http.server import HttpServer
from tests.http.client import Api, expect_error, http_port
from tests.support.broker_thread import BrokerThread
from tests.support.mosquitto_tools import mosquitto_pub
from tests.support.raw import TIMEOUT
from tests.support.waiting import wait_until

_METHODS = {"get", "post", "delete", "put", "patch"}
_DASHBOARD_FILES = {"/", "/app.js", "/app.css"}


def test_openapi_is_served_valid_and_lists_every_route(http_broker: BrokerThread, api: Api) -> None:
    served = api.data("/api/v1/openapi.json")
    assert served == json.loads(json.dumps(openapi()))
    assert served["openapi"].startswith("3.")
    assert served["info"]["title"]
    schemas = served["components"]["schemas"]
    # Every operation has responses, and every reference resolves.
    for path, item in served["paths"].items():
        for method, operation in item.items():
            assert method in _METHODS, (path, method)
            assert operation["responses"], (path, method)
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    assert "{" + parameter["name"] + "}" in path
    text = json.dumps(served)
    for name in {part.split('"')[0] for part in text.split("#/components/schemas/")[1:]}:
        assert name in schemas, name

    http = http_broker.broker.http
    assert isinstance(http, HttpServer)
    routes = set()
    for route in http.application().router.routes():
        info: dict[str, Any] = dict(route.resource.get_info()) if route.resource else {}
        path = info.get("path") or info.get("formatter", "")
        path = path.replace("{topic:.+}", "{topic}")
        if route.method == "HEAD" or path in _DASHBOARD_FILES:
            continue
        routes.add((path, route.method.lower()))
    described = {(path, method) for path, item in served["paths"].items() for method in item}
    assert routes == described


def test_stats_stream_sends_counters(http_broker: BrokerThread) -> None:
    url = f"http://127.0.0.1:{http_port(http_broker)}/api/v1/events/stats"
    with urllib.request.urlopen(url, timeout=TIMEOUT) as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        assert stream.readline() == b"event: stats\n"
        line = stream.readline().decode()
        assert line.startswith("data: ")
        stats = json.loads(line.removeprefix("data: "))
    assert {"messages_received", "messages_sent", "connections", "subscriptions"} <= set(stats)


def _next_event(stream: Any) -> tuple[str, dict[str, Any]]:
    name = data = None
    while True:
        line = stream.readline().decode()
        assert line, "the stream ended"
        if line.startswith("event: "):
            name = line.removeprefix("event: ").strip()
        elif line.startswith("data: "):
            data = json.loads(line.removeprefix("data: "))
        elif line == "\n" and name is not None and data is not None:
            return name, data


def test_watch_stream_sends_matching_messages(http_broker: BrokerThread, api: Api) -> None:
    port = http_port(http_broker)
    url = f"http://127.0.0.1:{port}/api/v1/events/watch?topic=w/%2B/t"
    with urllib.request.urlopen(url, timeout=TIMEOUT) as stream:
        assert _next_event(stream) == ("watching", {"topic": "w/+/t"})
        mosquitto_pub(http_broker.port, "-t", "other", "-m", "not this")
        mosquitto_pub(http_broker.port, "-t", "w/a/t", "-m", "this", "-q", "1", "-r")
        name, message = _next_event(stream)
        assert name == "message"
        assert message["topic"] == "w/a/t"
        assert message["payload"] == "this"
        assert message["payload_encoding"] == "plain"
        assert message["qos"] == 1
        assert message["retain"] is True
        api.post(
            "/api/v1/publish", {"topic": "w/b/t", "payload": "//4=", "payload_encoding": "base64"}
        )
        name, message = _next_event(stream)
        assert (message["topic"], message["payload"]) == ("w/b/t", "//4=")
        assert message["payload_encoding"] == "base64"
        router = http_broker.broker.router
        assert http_broker.call(lambda: router.observer is not None)
    # The watcher gone, the router has no observer left.
    wait_until(lambda: http_broker.call(lambda: router.observer is None))
    expect_error(api.get("/api/v1/events/watch?topic=a/%23/b"), 400, "BAD_REQUEST")


def test_watchers_are_limited(
    http_broker: BrokerThread, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "MAX_WATCHERS", 1)
    url = f"http://127.0.0.1:{http_port(http_broker)}/api/v1/events/watch?topic=a"
    with urllib.request.urlopen(url, timeout=TIMEOUT) as stream:
        assert _next_event(stream)[0] == "watching"
        expect_error(api.get("/api/v1/events/watch?topic=b"), 503, "SERVICE_UNAVAILABLE")
