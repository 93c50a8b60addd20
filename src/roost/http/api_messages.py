"""``/api/v1/retainer/...``, ``/api/v1/publish`` and ``/api/v1/status``: retained
messages, publishing as the broker, and what this broker is. EMQX v5's names.

Retained messages are the router's (``retained_messages``, ``retained_message``,
``delete_retained``, which records the deletion in the store); a publish is a
``Message`` handed to ``BrokerCore.publish``, the entry ``$SYS`` and wills use too.
"""

from __future__ import annotations

import base64
import binascii
import socket
from typing import TYPE_CHECKING, Any

from aiohttp import web

from roost import __version__
from roost.broker.message import Message
from roost.http.host import rfc3339, wall_time
from roost.http.responses import (
    bad_request,
    check_topic_filter,
    check_topic_name,
    json_body,
    not_found,
    page,
)

if TYPE_CHECKING:
    from roost.http.host import HttpHost

# Largest payload POST /publish takes (the request body limit is set to match).
MAX_PUBLISH_PAYLOAD = 1_048_576
_ENCODINGS = ("plain", "base64")


def encode_payload(payload: bytes, encoding: str) -> tuple[str, str]:
    """(payload as text, the encoding used): "plain" when asked and it is UTF-8 text."""
    if encoding == "plain":
        try:
            return payload.decode("utf-8"), "plain"
        except UnicodeDecodeError:
            pass
    return base64.b64encode(payload).decode("ascii"), "base64"


def _payload_encoding(request: web.Request) -> str:
    encoding = request.query.get("payload_encoding", "base64")
    if encoding not in _ENCODINGS:
        raise bad_request(f'payload_encoding must be "plain" or "base64", got {encoding!r}')
    return encoding


def message_record(
    host: HttpHost, topic: str, message: Message, encoding: str | None
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "topic": topic,
        "qos": message.qos,
        "from_clientid": message.sender,
        "payload_size": len(message.payload),
        "content_type": message.content_type,
        "expires_at": None
        if message.expires_at is None
        else rfc3339(wall_time(host, message.expires_at)),
    }
    if encoding is not None:
        record["payload"], record["payload_encoding"] = encode_payload(message.payload, encoding)
    return record


def _field(body: dict[str, Any], name: str, kind: type, default: object) -> Any:
    value = body.get(name, default)
    # bool is an int in Python; "qos": true is a mistake in JSON.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise bad_request(f"{name} must be a {kind.__name__}, got {value!r}")
    return value


class MessagesApi:
    def __init__(self, host: HttpHost, http_summary: dict[str, Any]) -> None:
        self._host = host
        self._http_summary = http_summary

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/retainer/messages", self.list_retained),
            web.get("/api/v1/retainer/message/{topic:.+}", self.get_retained),
            web.delete("/api/v1/retainer/message/{topic:.+}", self.delete_retained),
            web.post("/api/v1/publish", self.publish),
            web.get("/api/v1/status", self.status),
        ]

    async def list_retained(self, request: web.Request) -> web.Response:
        topic_filter = check_topic_filter(request.query.get("topic", "#"))
        encoding = _payload_encoding(request) if "payload_encoding" in request.query else None
        found = sorted(self._host.core.router.retained_messages(topic_filter), key=lambda p: p[0])
        return page(request, [message_record(self._host, t, m, encoding) for t, m in found])

    def _retained(self, request: web.Request) -> tuple[str, Message]:
        topic = check_topic_name(request.match_info["topic"])
        message = self._host.core.router.retained_message(topic)
        if message is None:
            raise not_found(f"no retained message on {topic!r}")
        return topic, message

    async def get_retained(self, request: web.Request) -> web.Response:
        topic, message = self._retained(request)
        record = message_record(self._host, topic, message, _payload_encoding(request))
        return web.json_response(record)

    async def delete_retained(self, request: web.Request) -> web.Response:
        topic, _message = self._retained(request)
        self._host.core.router.delete_retained(topic)
        return web.Response(status=204)

    async def publish(self, request: web.Request) -> web.Response:
        body = await json_body(request)
        core = self._host.core
        config = self._host.config
        topic = check_topic_name(_field(body, "topic", str, None))
        if topic.startswith("$") and not core.auth.sys_publish_allowed(topic):
            raise bad_request(f"{topic!r} is a $-topic not in allow_sys_publish")
        qos = _field(body, "qos", int, 0)
        if not 0 <= qos <= config.maximum_qos:
            raise bad_request(f"qos must be from 0 to {config.maximum_qos}, got {qos}")
        retain = _field(body, "retain", bool, False)
        if retain and not config.retain_available:
            raise bad_request("retained messages are not available (retain_available)")
        encoding = _field(body, "payload_encoding", str, "plain")
        text = _field(body, "payload", str, "")
        if encoding == "plain":
            payload = text.encode("utf-8")
        elif encoding == "base64":
            try:
                payload = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise bad_request("payload is not valid base64") from None
        else:
            raise bad_request(f'payload_encoding must be "plain" or "base64", got {encoding!r}')
        if len(payload) > MAX_PUBLISH_PAYLOAD:
            raise bad_request(f"payload is over {MAX_PUBLISH_PAYLOAD} bytes")
        expiry = body.get("message_expiry_interval")
        if expiry is not None and (
            not isinstance(expiry, int) or isinstance(expiry, bool) or not 0 < expiry < 2**32
        ):
            raise bad_request("message_expiry_interval must be an integer from 1 to 4294967295")
        content_type = body.get("content_type")
        if content_type is not None and not isinstance(content_type, str):
            raise bad_request("content_type must be a string")
        now = self._host.now()
        message = Message(
            topic,
            payload,
            qos,
            retain,
            None,
            None if expiry is None else now + expiry,
            content_type=content_type,
        )
        delivered = core.publish(message, now)
        return web.json_response({"delivered": delivered})

    async def status(self, request: web.Request) -> web.Response:
        host = self._host
        config = host.config
        core = host.core
        listeners = [
            {
                "name": listener.config.name,
                "type": listener.config.type,
                "bind": listener.label,
                "port": listener.port,
                "running": listener.server is not None and listener.server.is_serving(),
                "current_connections": listener.connections,
                "max_connections": listener.config.max_connections,
            }
            for listener in host.listeners
        ]
        summary = {
            name: getattr(config, name)
            for name in (
                "allow_anonymous",
                "max_connections",
                "max_packet_size",
                "maximum_qos",
                "retain_available",
                "max_retained_messages",
                "receive_maximum",
                "max_inflight_messages",
                "max_queued_messages",
                "queue_qos0_messages",
                "max_session_expiry_interval",
                "sys_interval",
                "commit_policy",
            )
        }
        return web.json_response(
            {
                "version": __version__,
                "node": socket.gethostname(),
                "uptime": int(host.now() - host.started_at),
                "started_at": rfc3339(wall_time(host, host.started_at)),
                "listeners": listeners,
                "http": self._http_summary,
                "persistence": core.store.description,
                "auth": core.auth.describe(),
                "config": summary,
            }
        )
