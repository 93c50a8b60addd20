"""`roost rr`: publish a request and print the response, like mosquitto_rr.

With MQTT 5 the request carries a Response Topic and a fresh Correlation Data; a message
on the response topic is the answer if it echoes that correlation data (or carries
none, for responders that do not copy it). With 3.1.x there are no properties: the
first message on the response topic is taken as the answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
from typing import Any

from roost.cli.common import (
    EXIT_CODES_HELP,
    EXIT_OK,
    EXIT_TIMEOUT,
    UsageError,
    add_connection_arguments,
    build_client,
    parse_properties,
    read_message,
    run_tool,
)
from roost.cli.formatting import json_line
from roost.client import Client, ConnectionLost, Message
from roost.protocol.topics import validate_topic_filter, validate_topic_name


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "rr",
        add_help=False,
        help="request/response: publish and wait for the answer (like mosquitto_rr)",
        description="Publish a request with an MQTT 5 response topic and correlation data, "
        "then print the first matching response.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_connection_arguments(parser)
    what = parser.add_argument_group("request")
    what.add_argument("-t", "--topic", required=True, help="topic to send the request to")
    what.add_argument("-e", "--response-topic",
                      help="topic to wait on for the response (default: a fresh one)")  # fmt: skip
    what.add_argument("-q", "--qos", type=int, default=0, choices=(0, 1, 2), help="QoS (0)")
    what.add_argument("-W", "--timeout", type=float,
                      help="give up (status 6) after this many seconds")  # fmt: skip
    source = what.add_mutually_exclusive_group(required=True)
    source.add_argument("-m", "--message", help="the request message")
    source.add_argument("-f", "--file", help="send the contents of a file")
    source.add_argument("-n", "--null-message", action="store_true", help="a zero-length request")
    source.add_argument(
        "-s", "--stdin-file", action="store_true", help="read the request from stdin"
    )
    out = parser.add_argument_group("output")
    style = out.add_mutually_exclusive_group()
    style.add_argument("-v", "--verbose", action="store_true", help="print 'topic payload'")
    style.add_argument("--json", action="store_true", help="print the response as JSON")
    out.add_argument("-N", "--no-eol", action="store_true", help="no newline after the response")
    parser.set_defaults(run=run, stdin_line=False)


def run(args: argparse.Namespace) -> int:
    return run_tool("roost rr", args, lambda: _main(args))


async def _main(args: argparse.Namespace) -> int:
    properties = parse_properties(args)
    payload = read_message(args)
    assert payload is not None  # noqa: S101  (-l is not an option of rr)
    try:
        validate_topic_name(args.topic)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    response_topic = args.response_topic or f"roost/rr/{secrets.token_hex(8)}"
    try:
        validate_topic_filter(response_topic)
        validate_topic_name(response_topic)
    except ValueError as exc:
        raise UsageError(f"response topic: {exc}") from None
    client = build_client(args, "rr")
    try:
        async with asyncio.timeout(args.timeout):
            async with client:
                answer = await _ask(client, args, payload, response_topic, properties)
                await client.disconnect(**properties.get("disconnect", {}))
    except TimeoutError:
        if args.timeout is None:
            raise
        if not args.quiet:
            print(f"roost rr: no response within {args.timeout:g} s", file=sys.stderr)
        return EXIT_TIMEOUT
    sys.stdout.buffer.write(_render(answer, args) + (b"" if args.no_eol else b"\n"))
    sys.stdout.buffer.flush()
    return EXIT_OK


async def _ask(
    client: Client,
    args: argparse.Namespace,
    payload: bytes,
    response_topic: str,
    properties: dict[str, dict[str, Any]],
) -> Message:
    stream = client.messages(response_topic)
    await client.subscribe(response_topic, args.qos)
    publish_props = dict(properties.get("publish", {}))
    correlation = None
    if client.version == 5:
        correlation = publish_props.pop("correlation_data", None) or secrets.token_bytes(16)
        publish_props["response_topic"] = response_topic
        publish_props["correlation_data"] = correlation
    await client.publish(args.topic, payload, args.qos, **publish_props)
    async for message in stream:
        if message.correlation_data in (None, correlation):
            return message
    raise ConnectionLost("the connection closed before a response came")


def _render(message: Message, args: argparse.Namespace) -> bytes:
    if args.json:
        return json.dumps(json_line(message), ensure_ascii=False).encode()
    if args.verbose:
        return message.topic.encode() + b" " + message.payload
    return message.payload
