"""Entry point: ``python -m bench <command> [options]`` (``make bench ARGS="codec"``).

Each command lives in its own module and registers here with a name, a one-line help,
a function that adds its options and a function that runs it and returns an exit status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench import (
    codec,
    deliver,
    load,
    memory,
    nats_cost,
    persistence,
    scale,
    scrape,
    soak,
    websocket,
)


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: tuple[Command, ...] = (
    Command("codec", codec.HELP, codec.add_arguments, codec.run),
    Command("deliver", deliver.HELP, deliver.add_arguments, deliver.run),
    Command("load", load.HELP, load.add_arguments, load.run),
    Command("memory", memory.HELP, memory.add_arguments, memory.run),
    Command("nats-cost", nats_cost.HELP, nats_cost.add_arguments, nats_cost.run),
    Command("persistence", persistence.HELP, persistence.add_arguments, persistence.run),
    Command("scale", scale.HELP, scale.add_arguments, scale.run),
    Command("soak", soak.HELP, soak.add_arguments, soak.run),
    Command("ws", websocket.HELP, websocket.add_arguments, websocket.run),
    Command("scrape", scrape.HELP, scrape.add_arguments, scrape.run),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Roost benchmarks (single process, single core)."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
