"""The API's OpenAPI 3 description, served at ``/api/v1/openapi.json``.

Written by hand (the API is small); tests/http checks that it is valid and that it
lists every route the server has.
"""

from __future__ import annotations

from typing import Any

from roost import __version__


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _listing(item: str) -> dict[str, Any]:
    return _json(
        {
            "type": "object",
            "properties": {"data": {"type": "array", "items": _ref(item)}, "meta": _ref("Meta")},
        }
    )


def _param(name: str, where: str = "query", kind: str = "string", doc: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": {"type": kind},
        "description": doc,
    }


_PAGING = [
    _param("page", kind="integer", doc="page number, from 1"),
    _param("limit", kind="integer", doc="items per page, 1 to 1000 (default 100)"),
]
_CLIENTID = _param("clientid", "path")
_TOPIC = _param("topic", "path", doc="topic name, URL-encoded ('/' may stay)")
_ENCODING = _param("payload_encoding", doc='"base64" (default) or "plain" (UTF-8 text)')
_UNAUTHORIZED = {"401": _error("missing or wrong API key")}
_NOT_FOUND = {"404": _error("no such client, session or message")}
_BAD = {"400": _error("bad input")}
_STREAM = {
    "description": "server-sent events",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
}


def _op(
    summary: str,
    responses: dict[str, Any],
    params: list[Any] | None = None,
    body: dict[str, Any] | None = None,
    public: bool = False,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        operation["parameters"] = params
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    if public:
        operation["security"] = []
    return operation


def _obj(**properties: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {name: {"type": kind} for name, kind in properties.items()},
    }


SCHEMAS: dict[str, Any] = {
    "Error": _obj(code="string", message="string"),
    "Meta": _obj(page="integer", limit="integer", count="integer", hasnext="boolean"),
    "Client": _obj(
        clientid="string",
        username="string",
        ip_address="string",
        port="integer",
        proto_name="string",
        proto_ver="integer",
        keepalive="integer",
        connected="boolean",
        connected_at="string",
        listener="string",
        expiry_interval="integer",
        inflight="integer",
        mqueue_len="integer",
        subscriptions_cnt="integer",
    ),
    "Session": _obj(
        clientid="string",
        username="string",
        connected="boolean",
        expiry_interval="integer",
        expires_at="string",
        inflight="integer",
        mqueue_len="integer",
        subscriptions_cnt="integer",
        will="boolean",
    ),
    "Subscription": _obj(
        clientid="string",
        topic="string",
        qos="integer",
        nl="integer",
        rap="integer",
        rh="integer",
        share_group="string",
        subid="integer",
    ),
    "RetainedMessage": _obj(
        topic="string",
        qos="integer",
        from_clientid="string",
        payload_size="integer",
        content_type="string",
        expires_at="string",
        payload="string",
        payload_encoding="string",
    ),
    "Publish": {
        **_obj(
            topic="string",
            payload="string",
            qos="integer",
            retain="boolean",
            payload_encoding="string",
            message_expiry_interval="integer",
            content_type="string",
        ),
        "required": ["topic"],
    },
    "Status": _obj(
        version="string",
        node="string",
        uptime="integer",
        started_at="string",
        listeners="array",
        http="object",
        persistence="string",
        auth="string",
        config="object",
    ),
}


def openapi() -> dict[str, Any]:
    auth = {**_UNAUTHORIZED}
    paths: dict[str, Any] = {
        "/healthz": {"get": _op("alive", {"200": _json(_obj(status="string"))}, public=True)},
        "/readyz": {
            "get": _op(
                "ready: listening, store open, cluster connected where configured",
                {"200": _json(_obj(status="string")), "503": _json(_obj(status="string"))},
                public=True,
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics (text format)",
                {"200": {"description": "metrics", "content": {"text/plain": {}}}, **auth},
            )
        },
        "/api/v1/openapi.json": {
            "get": _op("this description", {"200": _json({"type": "object"})}, public=True)
        },
        "/api/v1/status": {
            "get": _op("version, uptime, listeners", {"200": _json(_ref("Status")), **auth})
        },
        "/api/v1/clients": {
            "get": _op(
                "connected clients",
                {"200": _listing("Client"), **_BAD, **auth},
                [
                    *_PAGING,
                    _param("like_clientid"),
                    _param("username"),
                    _param("like_username"),
                    _param("ip_address"),
                ],
            )
        },
        "/api/v1/clients/{clientid}": {
            "get": _op(
                "one connected client",
                {"200": _json(_ref("Client")), **_NOT_FOUND, **auth},
                [_CLIENTID],
            ),
            "delete": _op(
                "disconnect a client (MQTT 5: DISCONNECT 0x98 Administrative action)",
                {"204": {"description": "disconnected"}, **_NOT_FOUND, **auth},
                [_CLIENTID],
            ),
        },
        "/api/v1/clients/{clientid}/subscriptions": {
            "get": _op(
                "a client's subscriptions",
                {
                    "200": _json({"type": "array", "items": _ref("Subscription")}),
                    **_NOT_FOUND,
                    **auth,
                },
                [_CLIENTID],
            )
        },
        "/api/v1/sessions": {
            "get": _op(
                "sessions, online and offline",
                {"200": _listing("Session"), **_BAD, **auth},
                [*_PAGING, _param("connected", doc='"true" or "false"')],
            )
        },
        "/api/v1/sessions/{clientid}": {
            "get": _op(
                "one session", {"200": _json(_ref("Session")), **_NOT_FOUND, **auth}, [_CLIENTID]
            )
        },
        "/api/v1/subscriptions": {
            "get": _op(
                "subscriptions",
                {"200": _listing("Subscription"), **_BAD, **auth},
                [
                    *_PAGING,
                    _param("clientid"),
                    _param("topic", doc="exact filter"),
                    _param("qos", kind="integer"),
                    _param("share_group"),
                    _param("match_topic", doc="filters matching this topic name"),
                ],
            )
        },
        "/api/v1/retainer/messages": {
            "get": _op(
                "retained messages",
                {"200": _listing("RetainedMessage"), **_BAD, **auth},
                [*_PAGING, _param("topic", doc="topic filter (default #)"), _ENCODING],
            )
        },
        "/api/v1/retainer/message/{topic}": {
            "get": _op(
                "one retained message",
                {"200": _json(_ref("RetainedMessage")), **_BAD, **_NOT_FOUND, **auth},
                [_TOPIC, _ENCODING],
            ),
            "delete": _op(
                "delete a retained message",
                {"204": {"description": "deleted"}, **_BAD, **_NOT_FOUND, **auth},
                [_TOPIC],
            ),
        },
        "/api/v1/publish": {
            "post": _op(
                "publish a message",
                {
                    "200": _json(_obj(delivered="integer")),
                    **_BAD,
                    "415": _error("not JSON"),
                    **auth,
                },
                body=_ref("Publish"),
            )
        },
        "/api/v1/events/stats": {
            "get": _op("counters once a second (server-sent events)", {"200": _STREAM, **auth})
        },
        "/api/v1/events/watch": {
            "get": _op(
                "messages on a topic filter as they are routed (server-sent events)",
                {"200": _STREAM, **_BAD, "503": _error("too many watchers"), **auth},
                [_param("topic", doc="topic filter (default #)")],
            )
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Roost broker HTTP API",
            "version": __version__,
            "description": "Operators' API of the Roost MQTT broker (docs/operations.md).",
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"apiKey": []}],
        "paths": paths,
    }
