"""`roost sub`: subscribe and print messages, with mosquitto_sub's options, plus --json."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from typing import Any

from roost.cli.common import (
    EXIT_CODES_HELP,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_TIMEOUT,
    UsageError,
    add_connection_arguments,
    build_client,
    parse_properties,
    run_tool,
)
from roost.cli.formatting import Piece, compile_format, json_line, render
from roost.client import Client, Message, SubscribeError, is_failure, reason_name
from roost.protocol.topics import topic_matches, validate_topic_filter


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "sub",
        add_help=False,
        help="subscribe and print messages (like mosquitto_sub)",
        description="Subscribe to topic filters and print the messages received. "
        "-F sequences: %% %t %p %q %r %l %m %x %X %c %I %U %j %C %D %E %F %P %R %S, "
        "@X (strftime), \\n \\t \\0 \\e \\\\ (see docs/client.md).",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_connection_arguments(parser)
    what = parser.add_argument_group("subscription")
    what.add_argument("-t", "--topic", action="append", default=[], help="filter (repeatable)")
    what.add_argument("-T", "--filter-out", action="append", default=[],
                      help="do not print topics matching this filter (repeatable)")  # fmt: skip
    what.add_argument("-U", "--unsubscribe", action="append", default=[],
                      help="unsubscribe from this filter first (repeatable)")  # fmt: skip
    what.add_argument("-q", "--qos", type=int, default=0, choices=(0, 1, 2), help="QoS (0)")
    what.add_argument("-C", "--count", type=int, help="exit after printing this many messages")
    what.add_argument("-W", "--timeout", type=float,
                      help="exit (status 6) after this many seconds")  # fmt: skip
    what.add_argument("-R", "--no-retained", action="store_true",
                      help="do not print stale (retained) messages")  # fmt: skip
    what.add_argument("--retained-only", action="store_true",
                      help="print only retained messages; exit at the first live one")  # fmt: skip
    what.add_argument("-E", "--exit-after-subscribe", action="store_true",
                      help="exit once the subscriptions are acknowledged")  # fmt: skip
    out = parser.add_argument_group("output")
    style = out.add_mutually_exclusive_group()
    style.add_argument("-v", "--verbose", action="store_true", help="print 'topic payload'")
    style.add_argument("-F", "--format", help="format string (see above)")
    style.add_argument("--json", action="store_true",
                       help="one JSON object per message: topic, qos, retain, properties, "
                       "payload (text) or payload_base64")  # fmt: skip
    out.add_argument("-N", "--no-eol", action="store_true", help="no newline after a message")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return run_tool("roost sub", args, lambda: _main(args))


def _printer(args: argparse.Namespace, client_id: str) -> tuple[list[Piece] | None, bytes]:
    end = b"" if args.no_eol else b"\n"
    if args.format is not None:
        try:
            return compile_format(args.format, client_id), end
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return None, end


async def _main(args: argparse.Namespace) -> int:
    if not args.topic and not args.unsubscribe:
        raise UsageError("give at least one topic filter with -t")
    try:
        for topic_filter in (*args.topic, *args.filter_out, *args.unsubscribe):
            validate_topic_filter(topic_filter)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    properties = parse_properties(args)
    client = build_client(args, "sub")
    pieces, end = _printer(args, client.client_id)
    timeout = args.timeout
    try:
        async with asyncio.timeout(timeout):
            async with client:
                return await _session(client, args, properties, pieces, end)
    except TimeoutError:
        if timeout is None:
            raise
        return EXIT_TIMEOUT


async def _session(
    client: Client,
    args: argparse.Namespace,
    properties: dict[str, dict[str, Any]],
    pieces: list[Piece] | None,
    end: bytes,
) -> int:
    if args.unsubscribe:
        await client.unsubscribe(args.unsubscribe, **properties.get("unsubscribe", {}))
    if not args.topic:
        return EXIT_OK
    stream = client.messages()
    try:
        await client.subscribe(args.topic, args.qos, **properties.get("subscribe", {}))
    except SubscribeError as exc:
        refused = _refused_filters(args.topic, exc.reason_codes, client.version)
        if all(is_failure(code) for code in exc.reason_codes):
            if not args.quiet:
                print(f"roost sub: all subscriptions were refused: {refused}", file=sys.stderr)
            return EXIT_ERROR
        if not args.quiet:
            print(f"roost sub: warning: subscription refused: {refused}", file=sys.stderr)
    if args.exit_after_subscribe:
        await client.disconnect(**properties.get("disconnect", {}))
        return EXIT_OK
    out = sys.stdout.buffer
    printed = 0
    async for message in stream:
        if any(topic_matches(f, message.topic) for f in args.filter_out):
            continue
        if args.retained_only and not message.retain:
            break
        if args.no_retained and message.retain:
            continue
        out.write(_render(message, args, pieces) + end)
        out.flush()
        printed += 1
        if args.count is not None and printed >= args.count:
            break
    with contextlib.suppress(Exception):
        await client.disconnect(**properties.get("disconnect", {}))
    return EXIT_OK


def _refused_filters(filters: list[str], codes: tuple[int, ...], version: int) -> str:
    """Each refused filter with the server's reason: "'a/#' (not authorized [0x87])"."""
    return ", ".join(
        f"{topic_filter!r} ({reason_name(code, version if code != 0x80 else 5)} [0x{code:02X}])"
        for topic_filter, code in zip(filters, codes, strict=False)
        if is_failure(code)
    )


def _render(message: Message, args: argparse.Namespace, pieces: list[Piece] | None) -> bytes:
    if pieces is not None:
        return render(pieces, message)
    if args.json:
        return json.dumps(json_line(message), ensure_ascii=False).encode()
    if args.verbose:
        return message.topic.encode() + b" " + message.payload
    return message.payload
