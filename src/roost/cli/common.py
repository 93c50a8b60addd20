"""What ``roost pub``, ``roost sub`` and ``roost rr`` share: Mosquitto-style connection
options, ``-D`` properties, building the Client, and errors mapped to exit codes.

The tools themselves (``roost.cli.pub`` and friends) only add their own options and
their main loop; everything a script relies on (the exit codes, the error wording)
is decided here, once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from roost.client import (
    AuthenticationError,
    Client,
    ConnectError,
    ConnectionLost,
    ConnectRefused,
    ConnectTimeout,
    MQTTError,
    ScramAuth,
    TLSError,
    tls_context,
)
from roost.client.auth import MECHANISMS
from roost.codec import Will

EXIT_OK = 0
EXIT_ERROR = 1  # the server refused a publish/subscribe, or another MQTT-level error
EXIT_USAGE = 2  # bad command line
EXIT_CONNECT = 3  # no connection: refused, unreachable, unknown host, ws upgrade, no CONNACK
EXIT_REFUSED = 4  # the server refused the connection (CONNACK), or failed to prove itself
EXIT_TLS = 5  # the TLS handshake failed
EXIT_TIMEOUT = 6  # connect timeout; -W ran out; no response to a request
EXIT_LOST = 7  # the connection was lost after it was made
EXIT_INTERRUPTED = 130  # SIGINT or SIGTERM

EXIT_CODES_HELP = """\
exit status:
  0    success
  1    the server refused a publish or subscribe, or another MQTT error
  2    bad command line
  3    could not connect (connection refused, host unreachable, unknown host,
       WebSocket upgrade refused, or no CONNACK: the server closed the connection
       or answered in HTTP or TLS; a TLS or WebSocket port?)
  4    the server refused the connection (CONNACK: bad credentials, not authorized, ...),
       or failed to prove itself in enhanced authentication (SCRAM)
  5    TLS handshake failed (certificate, hostname, not a TLS port)
  6    timed out (connecting, -W, waiting for a response)
  7    connection lost after it was made
  130  interrupted (SIGINT / SIGTERM)
"""

_VERSIONS = {"mqttv5": 5, "5": 5, "mqttv311": 4, "311": 4, "mqttv31": 3, "31": 3}

# -D: per command, identifier -> (keyword, kind). Kinds: int, str, bytes, pair.
_PROPERTIES: dict[str, dict[str, tuple[str, str]]] = {
    "connect": {
        "maximum-packet-size": ("maximum_packet_size", "int"),
        "receive-maximum": ("receive_maximum", "int"),
        "request-problem-information": ("request_problem_information", "int"),
        "request-response-information": ("request_response_information", "int"),
        "session-expiry-interval": ("session_expiry_interval", "int"),
        "topic-alias-maximum": ("topic_alias_maximum", "int"),
        "user-property": ("user_properties", "pair"),
    },
    "publish": {
        "content-type": ("content_type", "str"),
        "correlation-data": ("correlation_data", "bytes"),
        "message-expiry-interval": ("message_expiry_interval", "int"),
        "payload-format-indicator": ("payload_format_indicator", "int"),
        "response-topic": ("response_topic", "str"),
        "topic-alias": ("topic_alias", "int"),
        "user-property": ("user_properties", "pair"),
    },
    "subscribe": {
        "subscription-identifier": ("subscription_identifier", "int"),
        "user-property": ("user_properties", "pair"),
    },
    "unsubscribe": {"user-property": ("user_properties", "pair")},
    "disconnect": {
        "session-expiry-interval": ("session_expiry_interval", "int"),
        "user-property": ("user_properties", "pair"),
    },
    "will": {
        "content-type": ("content_type", "str"),
        "correlation-data": ("correlation_data", "bytes"),
        "message-expiry-interval": ("message_expiry_interval", "int"),
        "payload-format-indicator": ("payload_format_indicator", "int"),
        "response-topic": ("response_topic", "str"),
        "user-property": ("user_properties", "pair"),
        "will-delay-interval": ("will_delay_interval", "int"),
    },
}


class UsageError(Exception):
    """A command line that cannot work; printed with the usage hint, exit status 2."""


def add_connection_arguments(parser: argparse.ArgumentParser, *, session: bool = True) -> None:
    """The options every tool takes, spelled as Mosquitto's clients spell them."""
    parser.add_argument("--help", action="help", help="show this help and exit")
    net = parser.add_argument_group("connection")
    net.add_argument("-h", "--host", default="localhost", help="broker host (localhost)")
    net.add_argument("-p", "--port", type=int,
                     help="broker port (1883, or 8883 with TLS; 80 / 443 with --ws)")  # fmt: skip
    net.add_argument("-V", "--protocol-version", default="mqttv5", metavar="VERSION",
                     help="mqttv5 (default), mqttv311 or mqttv31")  # fmt: skip
    net.add_argument("-i", "--id", dest="client_id", help="client id (default: generated)")
    net.add_argument("-I", "--id-prefix", help="client id: this prefix and the process id")
    net.add_argument("-k", "--keepalive", type=int, default=60, help="keep-alive seconds (60)")
    net.add_argument("-u", "--username", help="user name")
    net.add_argument("-P", "--pw", dest="password", help="password")
    net.add_argument("--connect-timeout", type=float, default=10.0, metavar="SECONDS",
                     help="give up connecting after this long (10)")  # fmt: skip
    if session:
        net.add_argument("-c", "--disable-clean-session", action="store_true",
                         help="persistent session: keep subscriptions and messages while "
                         "away (needs -i)")  # fmt: skip
        net.add_argument("-x", "--session-expiry-interval", metavar="SECONDS",
                         help="MQTT 5 session expiry; -1: never (the default with -c)")  # fmt: skip
    net.add_argument("-D", "--property", nargs="+", action="append", default=[],
                     metavar="ARG", help="MQTT 5 property: COMMAND IDENTIFIER VALUE [VALUE]; "
                     "e.g. -D publish user-property key value")  # fmt: skip
    net.add_argument("-d", "--debug", action="store_true", help="log packets to stderr")
    net.add_argument("--quiet", action="store_true", help="print no error messages")
    ws = parser.add_argument_group("WebSocket")
    ws.add_argument("--ws", action="store_true",
                    help="MQTT over WebSocket: ws://, or wss:// with the TLS options")  # fmt: skip
    ws.add_argument("--ws-path", metavar="PATH", help="the WebSocket path (/mqtt)")
    ws.add_argument("--ws-header", action="append", default=[], metavar="'NAME: VALUE'",
                    help="an extra header for the WebSocket upgrade (repeatable)")  # fmt: skip
    auth = parser.add_argument_group("MQTT 5 enhanced authentication")
    auth.add_argument("--auth-method", metavar="METHOD", type=str.upper,
                      choices=sorted(MECHANISMS),
                      help="authenticate with SCRAM-SHA-256 or SCRAM-SHA-512, as -u with "
                      "password -P (neither is sent in CONNECT); the server must prove "
                      "it knows them")  # fmt: skip
    for mechanism in sorted(MECHANISMS):
        auth.add_argument(f"--{mechanism.lower()}", dest="auth_method", action="store_const",
                          const=mechanism, help=f"same as --auth-method {mechanism}")  # fmt: skip
    tls = parser.add_argument_group("TLS")
    tls.add_argument("--cafile", help="CA certificates to trust (turns TLS on)")
    tls.add_argument("--capath", help="directory of CA certificates (turns TLS on)")
    tls.add_argument("--cert", help="client certificate (PEM)")
    tls.add_argument("--key", help="client private key (PEM)")
    tls.add_argument("--insecure", action="store_true",
                     help="do not check that the certificate names the host")  # fmt: skip
    tls.add_argument("--tls-use-os-certs", action="store_true", help="TLS with the system CAs")
    will = parser.add_argument_group("will")
    will.add_argument("--will-topic", help="topic of the will message")
    will.add_argument("--will-payload", default="", help="payload of the will message")
    will.add_argument("--will-qos", type=int, default=0, choices=(0, 1, 2))
    will.add_argument("--will-retain", action="store_true")


def protocol_version(args: argparse.Namespace) -> int:
    version = _VERSIONS.get(str(args.protocol_version).lower())
    if version is None:
        raise UsageError(f"unknown protocol version {args.protocol_version!r}")
    return version


def parse_properties(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """``-D`` options as ``{command: {keyword: value}}``, values converted to their type."""
    result: dict[str, dict[str, Any]] = {}
    for item in args.property:
        if len(item) < 3:
            raise UsageError("-D takes COMMAND IDENTIFIER VALUE")
        command, identifier, *values = item
        known = _PROPERTIES.get(command)
        if known is None:
            raise UsageError(f"-D: unknown command {command!r} (one of {', '.join(_PROPERTIES)})")
        spec = known.get(identifier)
        if spec is None:
            raise UsageError(f"-D: property {identifier!r} is not valid for {command}")
        name, kind = spec
        target = result.setdefault(command, {})
        if kind == "pair":
            if len(values) != 2:
                raise UsageError("-D ... user-property takes a NAME and a VALUE")
            target.setdefault(name, []).append((values[0], values[1]))
            continue
        if len(values) != 1:
            raise UsageError(f"-D ... {identifier} takes one value")
        if kind == "int":
            try:
                target[name] = int(values[0])
            except ValueError:
                raise UsageError(f"-D ... {identifier} must be a number") from None
        else:
            target[name] = values[0].encode() if kind == "bytes" else values[0]
    if result and protocol_version(args) != 5:
        raise UsageError("-D properties need MQTT 5 (-V mqttv5)")
    return result


def _session_expiry(args: argparse.Namespace, version: int) -> int | None:
    raw = getattr(args, "session_expiry_interval", None)
    persistent = getattr(args, "disable_clean_session", False)
    if raw is None:
        return 0xFFFFFFFF if persistent and version == 5 else None
    if version != 5:
        raise UsageError("-x needs MQTT 5 (-V mqttv5)")
    if raw in ("-1", "∞"):
        return 0xFFFFFFFF
    try:
        value = int(raw)
    except ValueError:
        raise UsageError("-x takes seconds, or -1 for never") from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise UsageError("-x must be 0..4294967295 or -1")
    return value


def build_client(args: argparse.Namespace, tool: str, **overrides: Any) -> Client:
    """The Client the options describe."""
    version = protocol_version(args)
    properties = parse_properties(args)
    persistent = getattr(args, "disable_clean_session", False)
    client_id = args.client_id
    if client_id is None and args.id_prefix is not None:
        client_id = f"{args.id_prefix}{os.getpid()}"
    if client_id is None:
        if persistent:
            raise UsageError("a persistent session (-c) needs a client id (-i)")
        client_id = f"roost-{tool}-{secrets.token_hex(4)}"
    will = None
    if args.will_topic is not None:
        will = Will(
            args.will_topic,
            args.will_payload.encode(),
            args.will_qos,
            args.will_retain,
            **properties.get("will", {}),
        )
    tls = None
    if args.cafile or args.capath or args.cert or args.insecure or args.tls_use_os_certs:
        try:
            tls = tls_context(args.cafile, args.cert, args.key, insecure=args.insecure)
            if args.capath:
                tls.load_verify_locations(capath=args.capath)
        except OSError as exc:  # ssl.SSLError is one, and so is a missing file
            raise UsageError(f"TLS files: {exc}") from None
    connect_props = dict(properties.get("connect", {}))
    expiry = _session_expiry(args, version)
    if expiry is not None:
        connect_props["session_expiry_interval"] = expiry
    username, password = args.username, args.password
    auth = _authenticator(args, version)
    if auth is not None:
        username = password = None  # the SCRAM exchange carries them, not CONNECT
    try:
        return Client(
            args.host,
            args.port,
            version=version,
            client_id=client_id,
            clean_start=not persistent,
            keep_alive=args.keepalive,
            username=username,
            password=password,
            will=will,
            tls=tls,
            connect_timeout=args.connect_timeout,
            auth=auth,
            **_websocket_options(args),
            **connect_props,
            **overrides,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _authenticator(args: argparse.Namespace, version: int) -> ScramAuth | None:
    method = getattr(args, "auth_method", None)
    if method is None:
        return None
    if version != 5:
        raise UsageError(f"{method} is MQTT 5 enhanced authentication: it needs -V mqttv5")
    if not args.username or args.password is None:
        raise UsageError(f"{method} needs the user name (-u) and password (-P)")
    try:
        return ScramAuth(args.username, args.password, method)
    except ValueError as exc:
        raise UsageError(f"{method}: {exc}") from None


def _websocket_options(args: argparse.Namespace) -> dict[str, Any]:
    if not args.ws:
        if args.ws_path is not None or args.ws_header:
            raise UsageError("--ws-path and --ws-header need --ws")
        return {}
    headers = []
    for header in args.ws_header:
        name, colon, value = header.partition(":")
        if not colon or not name.strip():
            raise UsageError(f"--ws-header takes 'NAME: VALUE', not {header!r}")
        headers.append((name.strip(), value.strip()))
    options: dict[str, Any] = {"transport": "websockets", "websocket_headers": headers}
    if args.ws_path is not None:
        options["websocket_path"] = args.ws_path
    return options


def configure_logging(args: argparse.Namespace) -> None:
    if args.debug:
        logging.basicConfig(level=logging.DEBUG, format="%(message)s", stream=sys.stderr)
        logging.getLogger("asyncio").setLevel(logging.WARNING)
    else:
        # The library's own warnings (e.g. a lost connection) would repeat the error
        # message the tool prints itself.
        logging.getLogger("roost.client").setLevel(logging.CRITICAL)


def exit_code(exc: BaseException) -> int:
    if isinstance(exc, AuthenticationError):
        return EXIT_REFUSED
    if isinstance(exc, TLSError):
        return EXIT_TLS
    if isinstance(exc, ConnectError):
        return EXIT_CONNECT
    if isinstance(exc, ConnectRefused):
        return EXIT_REFUSED
    if isinstance(exc, ConnectTimeout | TimeoutError):
        return EXIT_TIMEOUT
    if isinstance(exc, ConnectionLost):
        return EXIT_LOST
    return EXIT_ERROR


def _refusal_hint(exc: ConnectRefused, args: argparse.Namespace) -> str:
    """What to do about a refused CONNECT, unless the reason already says it."""
    if not exc.bad_credentials:
        return ""
    if not args.username and getattr(args, "auth_method", None) is None:
        # Nothing was checked: no user name and password to get wrong.
        if "anonymous" in str(exc).lower():  # the server's reason string said so
            return " (give a user name and password: -u, -P)"
        return " (no user name was given: does the server refuse anonymous clients? use -u, -P)"
    if "password" in exc.reason_name:
        return ""  # "bad username or password" says it already
    return " (check the user name and password)"


def run_tool(
    prog: str,
    args: argparse.Namespace,
    main: Callable[[], Coroutine[Any, Any, int]],
) -> int:
    """Run a tool's coroutine; map errors to a message on stderr and an exit status."""
    configure_logging(args)

    def report(message: str) -> None:
        if not args.quiet:
            print(f"{prog}: {message}", file=sys.stderr)

    async def guarded() -> int:
        task = asyncio.current_task()
        assert task is not None  # noqa: S101
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        return await main()

    try:
        return asyncio.run(guarded())
    except UsageError as exc:
        report(f"error: {exc}")
        return EXIT_USAGE
    except ConnectRefused as exc:
        report(f"{exc}{_refusal_hint(exc, args)}")
        return EXIT_REFUSED
    except (MQTTError, TimeoutError) as exc:
        report(str(exc) or type(exc).__name__)
        return exit_code(exc)
    except (KeyboardInterrupt, asyncio.CancelledError):
        return EXIT_INTERRUPTED
    except OSError as exc:  # a file (-f) that cannot be read, stdout closed, ...
        report(f"error: {exc}")
        return EXIT_ERROR


def read_message(args: argparse.Namespace) -> bytes | None:
    """The message of -m, -f, -n or -s (None for -l, which streams lines)."""
    if args.message is not None:
        return str(args.message).encode()
    if args.file is not None:
        with open(args.file, "rb") as source:
            return source.read()
    if args.null_message:
        return b""
    if args.stdin_file:
        return sys.stdin.buffer.read()
    return None
