"""`roost pub/sub/rr` over WebSocket (--ws, --ws-path, --ws-header) and with SCRAM
(--scram-sha-256, --scram-sha-512, --auth-method), as subprocesses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from roost.broker.auth.scram_file import ScramFile
from roost.broker.config import ListenerConfig
from tests.cli.helpers import roost, roost_sub
from tests.client.servers import WsServer, listener_port, start_roost
from tests.support.broker_thread import BrokerThread


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
async def test_pub_and_sub_over_websocket(ws_server: WsServer, secure: bool) -> None:
    port = ws_server.wss_port if secure else ws_server.ws_port
    tls = ("--cafile", str(ws_server.cafile)) if secure else ()
    async with roost_sub(port, "--ws", *tls, "-t", "w/#", "-v", "-C", "2", "-q", "1") as sub:
        for qos in ("0", "1"):
            published = await roost(
                "pub", port, "--ws", *tls, "-t", f"w/{qos}", "-m", f"q{qos}", "-q", qos
            )
            assert published.returncode == 0, published.stderr
        result = await sub.finish()
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"w/0 q0\nw/1 q1\n"


async def test_websocket_path_and_headers(tmp_path: Path) -> None:
    broker = start_roost(ListenerConfig(port=0, type="ws", path="/ws"), allow_anonymous=True)
    try:
        port = listener_port(broker, 0)
        ok = await roost(
            "pub", port, "--ws", "--ws-path", "/ws", "--ws-header", "Origin: https://app",
            "-t", "t", "-m", "x",
        )  # fmt: skip
        assert ok.returncode == 0, ok.stderr
        wrong = await roost("pub", port, "--ws", "-t", "t", "-m", "x")
        assert wrong.returncode == 3  # could not connect
        assert "HTTP 404 Not Found" in wrong.stderr
        assert "ws://127.0.0.1" in wrong.stderr
    finally:
        broker.stop()


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("--ws-path", "/mqtt"), "need --ws"),
        (("--ws-header", "Origin: x"), "need --ws"),
        (("--ws", "--ws-header", "no colon"), "NAME: VALUE"),
        (("--ws", "--ws-header", "Sec-WebSocket-Key: x"), "sets Sec-WebSocket-Key itself"),
        (("--ws", "--ws-path", "mqtt"), "must start with '/'"),
        (("--scram-sha-256", "-u", "alice"), "needs the user name (-u) and password (-P)"),
        (("--scram-sha-256", "-P", "x"), "needs the user name"),
        (("--auth-method", "SCRAM-SHA-512", "-u", "a", "-P", "b", "-V", "mqttv311"), "mqttv5"),
        (("--auth-method", "PLAIN", "-u", "a", "-P", "b"), "invalid choice"),
    ],
)
async def test_usage_errors(args: tuple[str, ...], problem: str) -> None:
    result = await roost("pub", 1, *args, "-t", "t", "-m", "x")
    assert result.returncode == 2
    assert problem in result.stderr


@pytest.fixture
def scram_broker(make_broker: Callable[..., BrokerThread], tmp_path: Path) -> BrokerThread:
    credentials = ScramFile()
    credentials.set("alice", "wonderland", iterations=4096)
    path = tmp_path / "scram"
    credentials.save(path)
    return make_broker(scram_file=str(path), allow_anonymous=False)


async def test_scram_pub_sub_and_rr(scram_broker: BrokerThread) -> None:
    port = scram_broker.port
    alice = ("-u", "alice", "-P", "wonderland")
    async with roost_sub(port, "--scram-sha-256", *alice, "-t", "s/#", "-v", "-C", "1") as sub:
        published = await roost(
            "pub", port, "--auth-method", "scram-sha-512", *alice, "-t", "s/1", "-m", "hi"
        )
        assert published.returncode == 0, published.stderr
        result = await sub.finish()
    assert result.stdout == b"s/1 hi\n", result.stderr
    # Without an answer rr times out, which shows that it got as far as waiting.
    timed_out = await roost(
        "rr", port, "--scram-sha-512", *alice, "-t", "q", "-m", "?", "-W", "0.5"
    )
    assert timed_out.returncode == 6, timed_out.stderr


async def test_scram_refused(scram_broker: BrokerThread) -> None:
    result = await roost(
        "pub",
        scram_broker.port,
        "--scram-sha-256",
        "-u",
        "alice",
        "-P",
        "nope",
        "-t",
        "t",
        "-m",
        "x",
    )
    assert result.returncode == 4
    assert "not authorized" in result.stderr
    # The debug log shows the exchange: CONNECT, AUTH both ways, a refusing CONNACK.
    debug = await roost(
        "pub", scram_broker.port, "--scram-sha-256", "-u", "alice", "-P", "nope", "-d",
        "-t", "t", "-m", "x",
    )  # fmt: skip
    assert "sending AUTH (rc 0x18, SCRAM-SHA-256)" in debug.stderr
    assert "received AUTH (rc 0x18, SCRAM-SHA-256)" in debug.stderr
