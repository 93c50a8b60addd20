"""What every API handler shares: JSON errors, query parameters and pagination.

Errors are ``{"code": "NOT_FOUND", "message": "..."}`` with the HTTP status, as
EMQX v5's API answers; lists are ``{"data": [...], "meta": {"page", "limit", "count",
"hasnext"}}`` with ``page`` from 1 and ``limit`` from 1 to ``MAX_LIMIT``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from roost.codec import CodecError
from roost.protocol.topics import validate_topic_filter, validate_topic_name

if TYPE_CHECKING:
    from collections.abc import Sequence

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

# HTTP status -> the error code answered with it.
CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


class ApiError(Exception):
    """An error the API answers with: a status, and a message for the caller."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"code": CODES.get(status, f"HTTP_{status}"), "message": message}
    return web.json_response(body, status=status, headers=headers)


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise bad_request(f"{name} must be an integer, got {text!r}") from None
    if not low <= value <= high:
        raise bad_request(f"{name} must be from {low} to {high}, got {value}")
    return value


def page(request: web.Request, items: Sequence[Any]) -> web.Response:
    """One page of ``items`` as the query's ``page`` and ``limit`` ask."""
    number = int_param(request, "page", 1, 1, 1_000_000_000)
    limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    start = (number - 1) * limit
    chunk = list(items[start : start + limit])
    meta = {
        "page": number,
        "limit": limit,
        "count": len(items),
        "hasnext": start + limit < len(items),
    }
    return web.json_response({"data": chunk, "meta": meta})


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object. Only ``application/json`` is accepted: a browser
    cannot send it to another origin without a CORS preflight, which this server
    refuses unless configured, so a web page elsewhere cannot make the call."""
    if request.content_type != "application/json":
        raise ApiError(415, "send a JSON object with Content-Type: application/json")
    try:
        body = await request.json()
    except ValueError:
        raise bad_request("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    return body


def _check_string(what: str, text: str) -> None:
    # What the codec checks of an MQTT UTF-8 string as it decodes one.
    if "\0" in text or len(text.encode("utf-8", "surrogatepass")) > 65535:
        raise bad_request(f"not a valid {what}: a NUL character, or over 65535 bytes")


def check_topic_name(topic: str) -> str:
    _check_string("topic name", topic)
    try:
        validate_topic_name(topic)
    except CodecError as exc:
        raise bad_request(f"not a valid topic name: {exc}") from None
    return topic


def check_topic_filter(topic_filter: str) -> str:
    _check_string("topic filter", topic_filter)
    try:
        validate_topic_filter(topic_filter)
    except CodecError as exc:
        raise bad_request(f"not a valid topic filter: {exc}") from None
    return topic_filter
