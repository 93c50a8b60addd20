"""`roost broker`: run the MQTT broker."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import logging
import sys
from collections.abc import Callable

from roost.broker.auth.manager import AuthSetupError
from roost.broker.config import (
    DEFAULT_DATA_DIR,
    BrokerConfig,
    ConfigError,
    HttpConfig,
    ListenerConfig,
    load_config,
)
from roost.broker.hooks import HookError
from roost.broker.logs import configure_logging, lean_records
from roost.broker.mosquitto_conf import load_mosquitto_config, looks_like_mosquitto
from roost.broker.mosquitto_parse import Notice
from roost.broker.persistence import StoreError
from roost.broker.server import serve
from roost.http.errors import HttpSetupError

log = logging.getLogger("roost.broker")

# Allocations between two collections of the youngest generation (CPython's default: 700).
GC_THRESHOLD = 50_000


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "broker",
        help="run the MQTT broker",
        description="Run the Roost MQTT broker. With no options it listens on "
        "127.0.0.1:1883, allows anonymous clients there, and keeps persistent sessions "
        "and retained messages in ./roost-data/roost.db (docs/persistence.md).",
        epilog="Listeners (tcp, tls, ws and wss: MQTT over TCP, TLS, WebSocket and "
        "WebSocket with TLS), certificates, connection limits and anonymous access are set "
        "in the configuration file (docs/configuration.md). Anonymous clients are allowed "
        "only on listeners bound to loopback addresses unless allow_anonymous says "
        "otherwise. Password, ACL and SCRAM files and an auth plugin (password_file, "
        "acl_file, scram_file, auth_plugin; docs/auth.md) are set there too. SIGHUP reloads "
        "the TLS certificates and the password, ACL and SCRAM files without dropping "
        "connections (a broken file is reported and the old one kept); SIGINT and SIGTERM "
        "stop the broker. Limits on what clients may send and make the broker hold "
        "(max_connections, connect_timeout, max_packet_size, max_topic_length, "
        "max_topic_levels, max_subscriptions_per_client, queues) are in the configuration "
        "file too; docs/security.md says how the broker meets hostile input. The [http] "
        "table (or --http PORT) serves an HTTP API, Prometheus metrics at /metrics and a "
        "dashboard at / (docs/operations.md; API keys: roost apikey). A Mosquitto "
        "mosquitto.conf is read as Mosquitto 2.x reads it, each line it cannot apply named "
        "in a warning (`roost config convert` prints it as TOML; docs/mosquitto.md). A "
        "[cluster] table (nats_url, node) makes the broker one node of a cluster joined "
        "through NATS (docs/clustering.md; needs roost[cluster]).",
    )
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="configuration file: TOML (docs/configuration.md), or Mosquitto's mosquitto.conf"
        " (a name ending in .conf, or Mosquitto's `option value` lines; docs/mosquitto.md)",
    )
    parser.add_argument(
        "--host",
        help="address to listen on: replaces the first listener's host and drops the others",
    )
    parser.add_argument(
        "-p",
        "--port",
        type=int,
        help="port to listen on (0: any free port): replaces the first listener's port and "
        "drops the others",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="directory of the state database (default: the config's data_dir, ./roost-data)",
    )
    parser.add_argument(
        "--no-persistence",
        action="store_true",
        help="keep all state in memory only: sessions and retained messages end with the process",
    )
    parser.add_argument(
        "--http",
        type=int,
        metavar="PORT",
        help="serve the HTTP API, /metrics and the dashboard on 127.0.0.1:PORT (the [http] "
        "table's port; its other settings are kept)",
    )
    parser.add_argument(
        "--workers",
        type=_worker_count,
        default=1,
        metavar="N",
        help="run N broker processes on the same listeners (SO_REUSEPORT: the kernel "
        "spreads connections over them) under a supervisor that restarts one that dies and "
        "stops them all on SIGTERM/SIGINT. Each is a cluster node <node>-w<i> with its own "
        "state in DATA_DIR/worker-<i>; they share messages and retained messages through "
        "NATS: [cluster] nats_url, or without [cluster] a private nats-server (Debian "
        "package nats-server) that the supervisor runs on a loopback port with its "
        "JetStream store in DATA_DIR/nats. [http] port P: worker i serves on P+i. Bridges "
        "run in worker 0. A persistent session lives in the worker the client reached "
        '(docs/clustering.md, "--workers N"). 1 (the default): one process, no cluster',
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help='log debug messages (log_level = "debug"; log_dest and log_format in the '
        "configuration file say where the log goes and how)",
    )
    parser.set_defaults(run=run)


def _worker_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"expected a number of processes, 1 or more: {text!r}")
    return count


def _log_replaced_listeners(
    args: argparse.Namespace, listeners: list[ListenerConfig], host: str, port: int
) -> None:
    """Say in the log what --host/-p did to the file's listeners: an operator reading
    the config file would otherwise expect every listener in it to be up."""
    flags = " and ".join(
        flag for flag, value in (("--host", args.host), ("-p", args.port)) if value is not None
    )
    first = listeners[0]
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    log.info(
        "%s: listeners[0] of %s (%s %s:%d) listens on %s instead.",
        flags,
        args.config,
        first.type,
        first.host,
        first.port,
        where,
    )
    if len(listeners) > 1:
        dropped = ", ".join(
            f"listeners[{index}] ({listener.type} {listener.host}:{listener.port})"
            for index, listener in enumerate(listeners[1:], 1)
        )
        log.warning(
            "%s: the other listeners of %s are not started: %s.", flags, args.config, dropped
        )


def _read_config(path: str | None) -> tuple[BrokerConfig, list[Notice]]:
    if path is None:
        return BrokerConfig(), []
    if looks_like_mosquitto(path):
        return load_mosquitto_config(path)
    return load_config(path), []


def lean_gc() -> None:
    """Run CPython's cycle collector less often in this process, a broker.

    A broker holds many long-lived objects (connections, sessions, subscriptions,
    retained messages) and makes few reference cycles; with the default thresholds the
    collector walks them again and again as connections come (10-18% of the connect
    rate, measured with gc off, docs/performance.md). Young objects are collected every
    GC_THRESHOLD allocations instead of 700, and what start-up made (modules, config)
    is moved out of the collector's sight. Cycles are still collected, a little later.
    """
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 10, 10)


def run(args: argparse.Namespace) -> int:
    try:
        config, notices = _read_config(args.config)
    except ConfigError as exc:
        print(f"roost broker: {exc}", file=sys.stderr)
        return 2
    lean_records()  # this process is a broker: cheaper log records
    lean_gc()
    try:
        configure_logging(config, verbose=args.verbose)
    except OSError as exc:
        print(
            f"roost broker: log_file: cannot open {config.log_file}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    for notice in notices:
        log.warning("%s", notice)
    if args.host is not None or args.port is not None:
        first = config.listeners[0] if config.listeners else ListenerConfig()
        host = args.host if args.host is not None else first.host
        port = args.port if args.port is not None else first.port
        if args.config:
            _log_replaced_listeners(args, config.listeners, host, port)
        # The first listener keeps its type, TLS files and limits; only the address changes.
        config.listeners = [dataclasses.replace(first, host=host, port=port)]
    # The command's documented default, unlike a BrokerConfig made in code: SQLite in
    # ./roost-data, so that sessions and retained messages outlive a restart.
    if config.persistence is None:
        config.persistence = "sqlite"
    if config.data_dir is None:
        config.data_dir = DEFAULT_DATA_DIR
    if args.data_dir is not None:
        config.data_dir = args.data_dir
    if args.no_persistence:
        config.persistence = "memory"
    if args.http is not None:
        config.http = dataclasses.replace(config.http or HttpConfig(), port=args.http)
    if args.workers > 1:
        # Imported here: a single broker never loads the supervisor.
        from roost.broker.workers import Supervisor  # noqa: PLC0415

        def run_worker(worker: BrokerConfig, ready: Callable[[], None]) -> int:
            return _serve(worker, reuse_port=True, ready=ready)

        try:
            return Supervisor(config, args.workers, run_worker).run()
        except OSError as exc:
            print(f"roost broker: {exc}", file=sys.stderr)
            return 1
    return _serve(config)


def _serve(
    config: BrokerConfig, *, reuse_port: bool = False, ready: Callable[[], None] | None = None
) -> int:
    """Run one broker until it is stopped: its exit status."""
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        loop_factory = None
    else:
        loop_factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(serve(config, reuse_port=reuse_port, ready=ready))
    except ConfigError as exc:  # found only when starting ([cluster] without nats-py)
        print(f"roost broker: {exc}", file=sys.stderr)
        return 2
    except (OSError, StoreError, AuthSetupError, HttpSetupError, HookError) as exc:
        print(f"roost broker: {exc}", file=sys.stderr)
        return 1
    return 0
