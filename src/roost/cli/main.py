"""The `roost` command: a thin argparse front end; all logic lives in the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from roost import __version__
from roost.cli import bench, broker, passwd, pub, rr, scram, sub


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
