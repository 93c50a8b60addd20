"""A blocking HTTP client for the API tests (urllib: one we did not write, and no extra
dependency), and the fixture pieces every test of tests/http shares."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from tests.support.broker_thread import BrokerThread
from tests.support.raw import TIMEOUT


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)


class Api:
    """Requests to one broker's HTTP server, with an API key or without."""

    def __init__(self, port: int, key: str | None = None) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.key = key

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        if self.key is not None:
            sent.setdefault("Authorization", f"Bearer {self.key}")
        request = urllib.request.Request(self.base + path, data, sent, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
                return Reply(response.status, response.read(), dict(response.headers))
        except urllib.error.HTTPError as error:
            with error:
                return Reply(error.code, error.read(), dict(error.headers))

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def data(self, path: str) -> Any:
        """GET ``path``, which must answer 200, as JSON."""
        reply = self.get(path)
        assert reply.status == 200, (path, reply.status, reply.body)
        return reply.json()

    def delete(self, path: str, **kwargs: Any) -> Reply:
        return self.request("DELETE", path, **kwargs)

    def post(self, path: str, body: object = None, **kwargs: Any) -> Reply:
        return self.request("POST", path, body, **kwargs)


def http_port(broker: BrokerThread) -> int:
    http = broker.broker.http
    assert http is not None
    return http.port


def expect_error(reply: Reply, status: int, code: str) -> str:
    """``reply`` is the JSON error ``{"code", "message"}`` with this status; its message."""
    assert reply.status == status, (reply.status, reply.body)
    assert reply.headers.get("Content-Type", "").startswith("application/json")
    body = reply.json()
    assert body["code"] == code, body
    assert isinstance(body["message"], str)
    assert body["message"]
    return str(body["message"])
