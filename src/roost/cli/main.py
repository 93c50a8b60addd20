"""The `roost` command: a thin argparse front end; all logic lives in the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from roost import __version__
from roost.cli import apikey, bench, broker, config, passwd, pub, rr, scram, sub


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="roost",
        description="Roost: an MQTT 3.1, 3.1.1 and 5.0 broker, client and tools.",
    )
    parser.add_argument("--version", action="version", version=f"roost {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    broker.add_parser(commands)
    bench.add_parser(commands)
    pub.add_parser(commands)
    sub.add_parser(commands)
    rr.add_parser(commands)
    passwd.add_parser(commands)
    scram.add_parser(commands)
    apikey.add_parser(commands)
    config.add_parser(commands)
    return parser


def _innermost(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser:
    """The (sub)parser of the command line's (sub)command: ``roost bench pub``'s, say."""
    while True:
        chosen = None
        for action in parser._actions:  # argparse has no public way down to a subparser
            if isinstance(action, argparse._SubParsersAction):
                name = getattr(args, action.dest or "", None)
                chosen = action.choices.get(name) if name is not None else None
        if chosen is None:
            return parser
        parser = chosen


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # Unknown options reach the top-level parser, which would print `roost`'s usage;
    # the subcommand's own usage is the one that helps.
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _innermost(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.print_help()
        return 0
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
