"""`roost broker`: run the MQTT broker."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from roost.broker.config import BrokerConfig, ConfigError, ListenerConfig, load_config
from roost.broker.server import serve


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "broker",
        help="run the MQTT broker",
        description="Run the Roost MQTT broker. With no options it listens on "
        "127.0.0.1:1883 and allows anonymous clients there.",
    )
    parser.add_argument("-c", "--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument("--host", help="address to listen on (overrides the config's listeners)")
    parser.add_argument("-p", "--port", type=int, help="port to listen on (0: any free port)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        config = load_config(args.config) if args.config else BrokerConfig()
    except ConfigError as exc:
        print(f"roost broker: {exc}", file=sys.stderr)
        return 2
    if args.host is not None or args.port is not None:
        first = config.listeners[0] if config.listeners else ListenerConfig()
        host = args.host if args.host is not None else first.host
        port = args.port if args.port is not None else first.port
        config.listeners = [ListenerConfig(host=host, port=port)]
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        loop_factory = None
    else:
        loop_factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(serve(config))
    except OSError as exc:
        print(f"roost broker: {exc}", file=sys.stderr)
        return 1
    return 0
