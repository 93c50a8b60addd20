"""The HTTP server: aiohttp on the broker's event loop, its routes, and who may call them.

Policy (docs/operations.md, "Authentication"):

- With ``api_keys_file``: every route but ``/healthz``, ``/readyz``, the OpenAPI
  description and the dashboard's static files needs ``Authorization: Bearer <key>``
  (401 otherwise). ``/metrics`` too: Prometheus sends the key with ``authorization``.
- Without it the server binds loopback addresses only (``config.py`` refuses another
  host at load, and ``HttpServer.start`` again for a config made in code), needs no key,
  and answers only requests whose ``Host`` names a loopback address, so that a web page
  elsewhere cannot reach it through a DNS name it points at 127.0.0.1.
- Cross-origin browser calls: none unless ``cors_origins`` lists the origin. POST takes
  only ``application/json``, which a browser will not send across origins without a
  preflight this server refuses.
"""

from __future__ import annotations

import asyncio
import logging
from importlib import resources
from typing import TYPE_CHECKING

from aiohttp import web

from roost.broker.config import is_loopback_host
from roost.broker.persistence.sqlite import SqliteStore
from roost.http.api_clients import ClientsApi
from roost.http.api_messages import MAX_PUBLISH_PAYLOAD, MessagesApi
from roost.http.apikeys import ApiKeyError, KeyChecker
from roost.http.errors import HttpSetupError
from roost.http.live import LiveEvents
from roost.http.metrics import CONTENT_TYPE, Metrics
from roost.http.openapi import openapi
from roost.http.responses import ApiError, error_response

if TYPE_CHECKING:
    from aiohttp.typedefs import Handler

    from roost.broker.config import HttpConfig
    from roost.http.host import HttpHost

log = logging.getLogger("roost.http")

PUBLIC_PATHS = frozenset(
    {"/", "/app.js", "/app.css", "/healthz", "/readyz", "/api/v1/openapi.json"}
)
_STATIC = {"/": "index.html", "/app.js": "app.js", "/app.css": "app.css"}
_STATIC_TYPES = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "app.css": "text/css",
}
# The dashboard loads nothing from elsewhere, and may not be framed (clickjacking).
_PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
SHUTDOWN_TIMEOUT = 2.0  # seconds stopping waits for requests under way


class HttpServer:
    """The API, metrics and dashboard of one broker, on one address."""

    def __init__(self, host: HttpHost, config: HttpConfig) -> None:
        if config.api_keys_file is None and not is_loopback_host(config.host):
            raise HttpSetupError(
                f"[http] host {config.host!r} is not a loopback address: the HTTP API "
                "listens elsewhere only with api_keys_file set (roost apikey create)"
            )
        self._host = host
        self._config = config
        try:
            self._keys = None if config.api_keys_file is None else KeyChecker(config.api_keys_file)
        except ApiKeyError as exc:
            raise HttpSetupError(f"[http] api_keys_file: {exc}") from exc
        self._metrics = Metrics(host)
        self._live = LiveEvents(host)
        self._static = {
            path: (resources.files("roost.http") / "static" / name).read_bytes()
            for path, name in _STATIC.items()
        }
        self._openapi = openapi()
        self._cors = frozenset(config.cors_origins)
        self._runner: web.AppRunner | None = None
        self._port = 0
        summary = {
            "host": config.host,
            "port": config.port,
            "auth": "api keys" if self._keys is not None else "none (loopback only)",
        }
        self._clients = ClientsApi(host)
        self._messages = MessagesApi(host, summary)

    @property
    def port(self) -> int:
        return self._port

    def application(self) -> web.Application:
        app = web.Application(
            middlewares=[self._errors, self._guard],
            client_max_size=MAX_PUBLISH_PAYLOAD * 2,  # base64 and JSON around a payload
        )
        app.add_routes(
            [
                web.get("/healthz", self._healthz),
                web.get("/readyz", self._readyz),
                web.get("/metrics", self._metrics_page),
                web.get("/api/v1/openapi.json", self._openapi_page),
                *self._clients.routes(),
                *self._messages.routes(),
                *self._live.routes(),
                *(web.get(path, self._static_file) for path in _STATIC),
            ]
        )
        return app

    async def start(self) -> None:
        config = self._config
        runner = web.AppRunner(
            self.application(),
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            # A client that goes away ends its handler: an event stream must not wait
            # for its next write to notice (and keep a topic watched until then).
            handler_cancellation=True,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, config.host, config.port)
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise HttpSetupError(
                f"[http] cannot listen on {config.host}:{config.port}: {exc.strerror or exc}"
            ) from exc
        self._runner = runner
        self._port = runner.addresses[0][1]
        self._metrics.lag.start()
        log.info(
            "HTTP API, metrics and dashboard on http://%s:%d/ (%s).",
            f"[{config.host}]" if ":" in config.host else config.host,
            self._port,
            "API keys required" if self._keys is not None else "loopback, no keys",
        )

    async def stop(self) -> None:
        self._live.close()
        await self._metrics.lag.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # Middlewares: errors as JSON, then who may ask.

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return error_response(exc.status, exc.message)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            message = (
                exc.text if exc.text and not exc.text.startswith(str(exc.status)) else (exc.reason)
            )
            return error_response(exc.status, message, _allow_header(exc))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("HTTP API: %s %s failed", request.method, request.path)
            return error_response(500, "internal error (logged)")

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._keys is None and not _loopback_host_header(request.host):
            raise ApiError(403, "without api_keys_file, only loopback Host names are served")
        origin = request.headers.get("Origin")
        allowed_origin = origin if origin is not None and origin in self._cors else None
        if request.method == "OPTIONS" and allowed_origin is not None:
            return web.Response(status=204, headers=_cors_headers(allowed_origin, preflight=True))
        if self._keys is not None and request.path not in PUBLIC_PATHS:
            self._authenticate(request)
        response = await handler(request)
        if allowed_origin is not None and not response.prepared:
            response.headers.update(_cors_headers(allowed_origin, preflight=False))
        if not response.prepared:
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    def _authenticate(self, request: web.Request) -> None:
        keys = self._keys
        assert keys is not None  # noqa: S101  (only called with keys)
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise _unauthorized("send an API key: Authorization: Bearer <key>")
        if keys.check(presented.strip()) is None:
            raise _unauthorized("unknown API key")

    # Handlers.

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        host = self._host
        problems = [
            f"listener {listener.label} is not listening"
            for listener in host.listeners
            if listener.server is None or not listener.server.is_serving()
        ]
        if not host.listeners:
            problems.append("no listener is running")
        store = host.core.store
        if isinstance(store, SqliteStore) and not store.is_open:
            problems.append("the store is not open")
        if host.cluster_connected is False:
            # Serving local clients, but not the cluster's (docs/clustering.md).
            problems.append("the cluster's NATS is unreachable")
        if problems:
            return web.json_response({"status": "unavailable", "problems": problems}, status=503)
        return web.json_response({"status": "ready"})

    async def _metrics_page(self, request: web.Request) -> web.Response:
        response = web.Response(body=self._metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    async def _openapi_page(self, request: web.Request) -> web.Response:
        return web.json_response(self._openapi)

    async def _static_file(self, request: web.Request) -> web.Response:
        name = _STATIC[request.path]
        response = web.Response(body=self._static[request.path], content_type=_STATIC_TYPES[name])
        response.headers["Content-Security-Policy"] = _PAGE_POLICY
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, message)


def _allow_header(exc: web.HTTPException) -> dict[str, str] | None:
    allow = exc.headers.get("Allow")
    return None if allow is None else {"Allow": allow}


def _cors_headers(origin: str, *, preflight: bool) -> dict[str, str]:
    headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    if preflight:
        headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE"
        headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        headers["Access-Control-Max-Age"] = "600"
    return headers


def _loopback_host_header(host: str) -> bool:
    """Whether a Host header (``name``, ``name:port``, ``[v6]:port``) names loopback."""
    if host.startswith("["):
        name = host[1:].partition("]")[0]
    else:
        name = host.rpartition(":")[0] if host.count(":") == 1 else host
    return is_loopback_host(name)
