"""`roost config`: work with configuration files (``convert``: mosquitto.conf to TOML)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from roost.broker.config import ConfigError, config_from_mapping
from roost.broker.mosquitto_conf import read_mosquitto_conf
from roost.broker.mosquitto_toml import to_toml

CONVERT_DESCRIPTION = """\
Print a Mosquitto configuration file (mosquitto.conf, with its include_dir files) as
Roost's TOML configuration, for `roost broker -c`. The result behaves as Mosquitto 2.x
did: where Mosquitto's defaults differ from Roost's (no packet size limit, anonymous
clients refused once a listener is configured, no persistence), they are written out.
Comments at the top name every line that had no equivalent in Roost or is applied
differently; those are also printed to standard error. A line Mosquitto itself would
refuse is an error, with file and line. `roost broker -c mosquitto.conf` reads the file
directly, with the same result. See docs/mosquitto.md."""

EPILOG = """\
exit status:
  0  converted (even with lines that had no equivalent: see the comments)
  1  the output file cannot be written
  2  the file cannot be read, or Mosquitto or Roost would refuse it"""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "config",
        help="configuration files: convert a mosquitto.conf to Roost's TOML",
        description="Work with Roost's configuration files (docs/configuration.md). "
        "`roost config convert mosquitto.conf` prints a Mosquitto configuration as TOML.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    convert = actions.add_parser(
        "convert",
        help="print a mosquitto.conf as Roost's TOML configuration",
        description=CONVERT_DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    convert.add_argument("file", metavar="FILE", help="the mosquitto.conf to convert")
    convert.add_argument(
        "-o", "--output", metavar="OUT", help="write the TOML to OUT instead of standard output"
    )
    convert.add_argument(
        "-q", "--quiet", action="store_true", help="do not repeat the notices on standard error"
    )
    convert.set_defaults(run=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    try:
        conf = read_mosquitto_conf(args.file)
        # What Roost itself would refuse (a listener Mosquitto starts without TLS checks,
        # say) is found now, not when the broker starts on the output.
        config_from_mapping(conf.data, conf.source, lines=conf.lines)
    except ConfigError as exc:
        print(f"roost config convert: {exc}", file=sys.stderr)
        return 2
    text = to_toml(conf)
    if not args.quiet:
        for notice in conf.notices:
            print(f"roost config convert: {notice}", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        print(
            f"roost config convert: cannot write {args.output}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    return 0
