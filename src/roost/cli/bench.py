"""`roost bench`: load-test any MQTT broker (pub, sub, conn, pubsub, retained).

The options and their meaning live here; the work is done by roost.loadtest.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import signal
import sys
from collections.abc import Callable

from roost.loadtest import (
    Outcome,
    Settings,
    execute,
    loop_factory,
    raise_open_files_limit,
    run_retained,
)
from roost.loadtest.plan import SHAPES

_VERSIONS = {"mqttv5": 5, "5": 5, "mqttv311": 4, "311": 4, "mqttv31": 3, "31": 3}
FD_HEADROOM = 100  # descriptors besides the connections: pipes, stdio, the loop

DESCRIPTION = """\
Load-test an MQTT broker. Clients are spread over worker processes (-j); every
payload carries a publisher id, a sequence number and a send time, so loss,
duplicates, reordering and end-to-end latency are counted per message. The last line
is machine-readable: RESULT key=value ..."""

EPILOG = """\
scenarios:
  pub       N publishers, no subscribers (publish rate)
  sub       N subscribers on -t, counting what arrives for -d seconds
  conn      N connections, each subscribed to its own topic, held --hold seconds with
            keep-alive pings, then one message to each: connect rate, CONNACK latency
  pubsub    --shape fanin (N pubs -> 1 sub), fanout (1 pub -> N subs), pairs (N x 1:1)
  retained  store --topics retained messages, then time a subscriber's catch-up

defaults: host 127.0.0.1 and MQTT 3.1.1, unlike roost pub/sub (localhost, MQTT 5):
"localhost" may try ::1 first on every one of thousands of connects, and 3.1.1 is
what mqttload and most published broker figures use, so results compare.

exit status, mqttload's: 0 ok; 2 loss, QoS 2 duplicates or unacknowledged publishes
(with a RESULT line), or a bad command line (usage message, no RESULT line, as in
roost pub/sub); 3 no client could connect, connection failures, dropped connections
or an aborted run (3 is roost pub/sub's "could not connect" too)."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {text}")
    return value


def _size(text: str) -> int:
    value = int(text)
    if value < 16:
        raise argparse.ArgumentTypeError(f"must be at least 16 (the payload header), not {text}")
    return value


def _version(text: str) -> int:
    try:
        return _VERSIONS[text.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"unknown protocol version {text!r} (mqttv5, mqttv311 or mqttv31)"
        ) from None


def parse_sources(text: str) -> tuple[str, ...]:
    """``127.0.0.2,127.0.0.3`` or a range ``127.0.0.2-127.0.0.40`` (or both, comma-joined)."""
    addresses: list[str] = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        first, dash, last = part.partition("-")
        try:
            low = ipaddress.ip_address(first)
            high = ipaddress.ip_address(last) if dash else low
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        if type(low) is not type(high) or int(high) < int(low):
            raise argparse.ArgumentTypeError(f"not an address range: {part}")
        if int(high) - int(low) > 65535:
            raise argparse.ArgumentTypeError(f"range too large: {part}")
        addresses += [str(type(low)(n)) for n in range(int(low), int(high) + 1)]
    if not addresses:
        raise argparse.ArgumentTypeError("no address given")
    return tuple(addresses)


def _common(parser: argparse.ArgumentParser, *, clients: int, qos: int) -> None:
    parser.add_argument("--help", action="help", help="show this help and exit")
    net = parser.add_argument_group("connection")
    net.add_argument("-h", "--host", default="127.0.0.1", help="broker host (127.0.0.1)")
    net.add_argument("-p", "--port", type=int, default=1883, help="broker port (1883)")
    net.add_argument("-V", "--protocol-version", type=_version, default=4, metavar="VERSION",
                     help="mqttv311 (default), mqttv5 or mqttv31")  # fmt: skip
    net.add_argument("-k", "--keepalive", type=int, default=60, help="keep-alive seconds (60)")
    net.add_argument("-u", "--username", help="user name")
    net.add_argument("-P", "--pw", dest="password", help="password")
    net.add_argument("--connect-timeout", type=float, default=30.0, metavar="SECONDS",
                     help="per connection, CONNACK/SUBACK included (30)")  # fmt: skip
    net.add_argument("--conn-parallel", type=_positive_int, default=100, metavar="N",
                     help="connects in progress at once, all workers together (100)")  # fmt: skip
    net.add_argument("--source", type=parse_sources, default=(), metavar="ADDRS",
                     help="local addresses to connect from, round robin: a list and/or "
                          "ranges, e.g. 127.0.0.2-127.0.0.9 (more than ~28k connections "
                          "to one address and port need several)")  # fmt: skip
    load = parser.add_argument_group("load")
    load.add_argument("-c", "--clients", type=_positive_int, default=clients,
                      help=f"clients (default {clients})")  # fmt: skip
    load.add_argument("-q", "--qos", type=int, default=qos, choices=(0, 1, 2),
                      help=f"QoS of publishes and subscriptions ({qos})")  # fmt: skip
    load.add_argument("-s", "--size", type=_size, default=64, help="payload bytes, >= 16 (64)")
    run = parser.add_argument_group("run")
    run.add_argument("-j", "--processes", type=_positive_int, default=1, metavar="N",
                     help="worker processes to spread the clients over (1)")  # fmt: skip
    run.add_argument("-b", "--broker-pid", type=int, metavar="PID",
                     help="report this process's CPU and memory (Linux /proc)")  # fmt: skip
    run.add_argument("--drain-timeout", type=float, default=10.0, metavar="SECONDS",
                     help="how long to wait for deliveries after publishing (10)")  # fmt: skip
    run.add_argument("--prefix", default="", help="topic prefix (default roostbench/<run tag>)")
    run.add_argument("--no-uvloop", action="store_true", help="stdlib asyncio even with uvloop")
    run.add_argument("--quiet", action="store_true", help="no progress on stderr")


def _publishing(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("publishing")
    group.add_argument("-d", "--duration", type=_non_negative, default=None, metavar="SECONDS",
                       help="publish for this long (5; 0 with -m: until the count)")  # fmt: skip
    group.add_argument("-m", "--count", type=int, default=0,
                       help="messages in total (fanout: from its one publisher)")  # fmt: skip
    group.add_argument("-r", "--rate", type=_non_negative, default=0.0, metavar="MSGS",
                       help="messages per second in total (default: as fast as flow "
                            "control allows)")  # fmt: skip
    group.add_argument("-i", "--inflight", type=_positive_int, default=20,
                       help="unacknowledged QoS 1/2 messages per publisher (20)")  # fmt: skip
    group.add_argument("-w", "--window", type=int, default=1000,
                       help="pause a publisher while a subscriber of its stream is this "
                            "many messages behind (1000; 0 = off)")  # fmt: skip
    group.add_argument("--retain", action="store_true", help="publish retained messages")
    group.add_argument("--max-loss", type=_non_negative, default=0.0, metavar="PCT",
                       help="QoS 0 loss still counted as ok (0)")  # fmt: skip


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "bench",
        help="load-test a broker (publish, subscribe, connections, retained)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scenarios = parser.add_subparsers(dest="scenario", metavar="SCENARIO", required=True)
    raw = argparse.RawDescriptionHelpFormatter

    pub = scenarios.add_parser("pub", add_help=False, help="N publishers", formatter_class=raw)
    _common(pub, clients=10, qos=0)
    _publishing(pub)
    pub.add_argument("-t", "--topic", default="", help="topic; %%i is the client number")

    sub = scenarios.add_parser("sub", add_help=False, help="N subscribers", formatter_class=raw)
    _common(sub, clients=10, qos=0)
    sub.add_argument("-t", "--topic", required=True, help="topic filter; %%i is the client number")
    sub.add_argument("-d", "--duration", type=_non_negative, default=10.0, metavar="SECONDS",
                     help="count for this long (10)")  # fmt: skip

    conn = scenarios.add_parser(
        "conn", add_help=False, help="N connections held with keep-alive", formatter_class=raw
    )
    _common(conn, clients=1000, qos=0)
    conn.add_argument("--hold", type=_non_negative, default=10.0, metavar="SECONDS",
                      help="hold the connections this long before the verify publish (10); "
                           "pings go out after keepalive/2 idle")  # fmt: skip

    pubsub = scenarios.add_parser(
        "pubsub", add_help=False, help="fan-in, fan-out or pairs", formatter_class=raw
    )
    _common(pubsub, clients=10, qos=0)
    _publishing(pubsub)
    pubsub.add_argument("--shape", choices=SHAPES, default="pairs", help="(pairs)")
    pubsub.add_argument("--extra-subscriptions", type=int, default=0, metavar="N",
                        help="also hold N subscriptions that match nothing published "
                             "(routing cost of unrelated subscriptions)")  # fmt: skip
    pubsub.add_argument("--extra-clients", type=int, default=0, metavar="N",
                        help="clients holding them (default: one per 1000 "
                             "subscriptions, at most 100)")  # fmt: skip

    retained = scenarios.add_parser(
        "retained", add_help=False, help="retained catch-up", formatter_class=raw
    )
    _common(retained, clients=1, qos=0)
    retained.add_argument("--topics", type=_positive_int, default=10_000,
                          help="retained messages to store (10000)")  # fmt: skip
    retained.add_argument("-i", "--inflight", type=_positive_int, default=20,
                          help="unacknowledged QoS 1/2 messages while storing (20)")  # fmt: skip
    retained.add_argument("--keep", action="store_true", help="leave the messages retained")
    parser.set_defaults(run=run)


def settings_from(args: argparse.Namespace) -> Settings:
    duration = getattr(args, "duration", None)
    count = getattr(args, "count", 0)
    if duration is None:
        duration = 0.0 if count else 5.0
    if args.size < 16:
        raise ValueError("--size must be at least 16 (the payload header)")
    return Settings(
        scenario="pubsub" if args.scenario == "retained" else args.scenario,
        host=args.host,
        port=args.port,
        version=args.protocol_version,
        clients=args.clients,
        shape=getattr(args, "shape", "pairs"),
        qos=args.qos,
        size=args.size,
        retain=getattr(args, "retain", False),
        duration=duration,
        count=count,
        rate=getattr(args, "rate", 0.0),
        inflight=getattr(args, "inflight", 20),
        window=getattr(args, "window", 0),
        keepalive=args.keepalive,
        hold=getattr(args, "hold", 0.0),
        connect_timeout=args.connect_timeout,
        conn_parallel=args.conn_parallel,
        drain_timeout=args.drain_timeout,
        max_loss=getattr(args, "max_loss", 0.0),
        topic=getattr(args, "topic", ""),
        topic_prefix=args.prefix,
        sources=args.source,
        processes=args.processes,
        extra_subscriptions=getattr(args, "extra_subscriptions", 0),
        extra_clients=getattr(args, "extra_clients", 0),
        username=args.username,
        password=args.password,
        use_uvloop=not args.no_uvloop,
    )


def _report(outcome: Outcome) -> int:
    for error in outcome.errors:
        print(f"roost bench: {error}", file=sys.stderr)
    print(outcome.summary)
    print(outcome.result_line(), flush=True)
    return outcome.exit_code


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args)
    except ValueError as exc:
        print(f"roost bench: error: {exc}", file=sys.stderr)
        return 2  # a usage error, as argparse's own
    progress: Callable[[str], None] | None = None
    if not args.quiet:

        def progress(text: str) -> None:
            print(f"roost bench: {text}", file=sys.stderr, flush=True)

    signal.signal(signal.SIGTERM, _interrupt)  # a RESULT line (ABORTED) even then
    connections = settings.clients + settings.extra_subscriptions // 1000 + 2
    limit = raise_open_files_limit(connections + FD_HEADROOM)
    if limit < connections + FD_HEADROOM and settings.processes == 1:
        print(
            f"roost bench: warning: open-files limit {limit} < {connections} connections; "
            "use -j to spread them over processes",
            file=sys.stderr,
        )
    if args.scenario == "retained":
        with asyncio.Runner(loop_factory=loop_factory(settings.use_uvloop)) as runner:
            outcome = runner.run(run_retained(settings, args.topics, args.broker_pid, args.keep))
    else:
        outcome = execute(settings, args.broker_pid, progress)
    return _report(outcome)
