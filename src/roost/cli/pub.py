"""`roost pub`: publish messages, with mosquitto_pub's options."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from roost.cli.common import (
    EXIT_CODES_HELP,
    EXIT_OK,
    UsageError,
    add_connection_arguments,
    build_client,
    parse_properties,
    read_message,
    run_tool,
)
from roost.client import Client, PublishResult

# QoS 1/2 lines of -l in flight at once: enough to keep the connection busy, few enough
# that a broker's Receive Maximum (which the client honours anyway) is not the limit.
_WINDOW = 64


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "pub",
        add_help=False,
        help="publish messages (like mosquitto_pub)",
        description="Publish one message, a file, stdin, or stdin line by line.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_connection_arguments(parser)
    what = parser.add_argument_group("message")
    what.add_argument("-t", "--topic", required=True, help="topic to publish to")
    what.add_argument("-q", "--qos", type=int, default=0, choices=(0, 1, 2), help="QoS (0)")
    what.add_argument("-r", "--retain", action="store_true", help="retain the message")
    source = what.add_mutually_exclusive_group(required=True)
    source.add_argument("-m", "--message", help="the message")
    source.add_argument("-f", "--file", help="send the contents of a file")
    source.add_argument("-l", "--stdin-line", action="store_true",
                        help="read stdin, send each line (blank lines are skipped)")  # fmt: skip
    source.add_argument("-n", "--null-message", action="store_true", help="a zero-length message")
    source.add_argument("-s", "--stdin-file", action="store_true",
                        help="read stdin to its end, send it as one message")  # fmt: skip
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return run_tool("roost pub", args, lambda: _main(args))


async def _main(args: argparse.Namespace) -> int:
    properties = parse_properties(args)
    publish_props = properties.get("publish", {})
    disconnect_props = properties.get("disconnect", {})
    message = None if args.stdin_line else read_message(args)
    try:
        client = build_client(args, "pub")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    async with client:
        if message is not None:
            await _publish(client, args, message, publish_props)
        else:
            await _publish_lines(client, args, publish_props)
        await client.disconnect(**disconnect_props)
    return EXIT_OK


async def _publish(
    client: Client, args: argparse.Namespace, payload: bytes, props: dict[str, Any]
) -> PublishResult:
    try:
        return await client.publish(args.topic, payload, args.qos, args.retain, **props)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


async def _publish_lines(client: Client, args: argparse.Namespace, props: dict[str, Any]) -> None:
    """-l: stream stdin; QoS 1/2 lines are pipelined, in order, a window at a time."""
    pending: set[asyncio.Task[PublishResult]] = set()
    readline = sys.stdin.buffer.readline
    try:
        while True:
            line = await asyncio.to_thread(readline)
            if not line:
                break
            line = line.rstrip(b"\r\n")
            if not line:
                continue
            if args.qos == 0:
                await _publish(client, args, line, props)
                continue
            # Tasks start in creation order, so messages leave in line order.
            pending.add(asyncio.create_task(_publish(client, args, line, props)))
            if len(pending) >= _WINDOW:
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    pending.discard(task)
                    task.result()
        for task in list(pending):
            await task
            pending.discard(task)
    finally:
        for task in pending:
            task.cancel()
