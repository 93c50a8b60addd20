"""`roost rr` against a responder, and the exit codes scripts rely on."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trustme

from roost.broker.config import ListenerConfig
from roost.cli.common import EXIT_CODES_HELP
from roost.client import Client
from tests.cli.helpers import ROOST, roost, roost_sub, run
from tests.client.servers import Server, listener_port, server_certificate, start_roost
from tests.support.broker_thread import BrokerThread
from tests.support.mosquitto import Mosquitto, free_port, make_password_file


@contextlib.asynccontextmanager
async def responder(port: int, version: int = 5) -> AsyncIterator[list[bytes | None]]:
    """Answers every request on "service/#" on its response topic (echoing correlation
    data), prefixed with "re: ". Yields the correlation data it saw."""
    seen: list[bytes | None] = []
    async with Client("127.0.0.1", port, version=version) as client:
        await client.subscribe("service/#", qos=1)

        async def serve() -> None:
            async for request in client.messages("service/#"):
                seen.append(request.correlation_data)
                reply_to = request.response_topic or "service-replies"
                await client.publish(
                    reply_to,
                    b"re: " + request.payload,
                    qos=1,
                    **({"correlation_data": request.correlation_data} if version == 5 else {}),  # type: ignore[arg-type]
                )

        task = asyncio.create_task(serve())
        try:
            yield seen
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_request_response(server: Server) -> None:
    async with responder(server.port) as seen:
        result = await roost("rr", server.port, "-t", "service/echo", "-m", "ping", "-W", "5")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"re: ping\n"
    assert seen[0] is not None
    assert len(seen[0]) == 16  # rr made fresh correlation data, and the answer echoed it


async def test_request_response_with_own_topic_and_json(server: Server) -> None:
    async with responder(server.port):
        result = await roost(
            "rr",
            server.port,
            "-t",
            "service/x",
            "-e",
            "my/replies",
            "-m",
            "hi",
            "--json",
            "-W",
            "5",
        )
    assert result.returncode == 0, result.stderr
    assert b'"topic": "my/replies"' in result.stdout
    assert b'"payload": "re: hi"' in result.stdout


async def test_request_response_3_1_1(server: Server) -> None:
    async with responder(server.port, version=4):
        result = await roost(
            "rr", server.port, "-V", "mqttv311", "-t", "service/x", "-e", "service-replies",
            "-m", "old", "-W", "5",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"re: old\n"


async def test_request_without_responder_times_out(server: Server) -> None:
    result = await roost("rr", server.port, "-t", "nobody/home", "-m", "hello?", "-W", "0.3")
    assert result.returncode == 6
    assert "no response" in result.stderr


async def test_connection_refused_exit_code() -> None:
    port = free_port()
    for tool, args in (
        ("pub", ("-t", "x", "-m", "y")),
        ("sub", ("-t", "x")),
        ("rr", ("-t", "x", "-n")),
    ):
        result = await roost(tool, port, *args)
        assert result.returncode == 3, (tool, result.stderr)
        assert "connection refused" in result.stderr


@pytest.mark.parametrize("version", ["mqttv5", "mqttv311"])
async def test_bad_credentials_exit_code(tmp_path: Path, version: str) -> None:
    passwords = make_password_file(tmp_path, {"bob": "right"})
    broker = Mosquitto(tmp_path, f"allow_anonymous false\npassword_file {passwords}\n").start()
    try:
        login = ("-u", "bob", "-V", version, "-t", "x", "-m", "y")
        ok = await roost("pub", broker.port, *login, "-P", "right")
        assert ok.returncode == 0, ok.stderr
        bad = await roost("pub", broker.port, *login, "-P", "wrong")
        assert bad.returncode == 4
        assert "not authorized" in bad.stderr
        assert "user name and password" in bad.stderr
    finally:
        broker.stop()


async def test_tls_failure_exit_code(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_pem = tmp_path / "server.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    good_ca, wrong_ca = tmp_path / "ca.pem", tmp_path / "wrong.pem"
    ca.cert_pem.write_to_path(str(good_ca))
    trustme.CA().cert_pem.write_to_path(str(wrong_ca))
    config = f"certfile {server_pem}\nkeyfile {server_pem}\n"
    broker = Mosquitto(tmp_path, config).start()
    try:
        ok = await roost("pub", broker.port, "--cafile", str(good_ca), "-t", "x", "-m", "y")
        assert ok.returncode == 0, ok.stderr
        bad = await roost("pub", broker.port, "--cafile", str(wrong_ca), "-t", "x", "-m", "y")
        assert bad.returncode == 5
        assert "certificate verify failed" in bad.stderr.lower()
    finally:
        broker.stop()


async def test_connect_timeout_exit_code() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = await roost("sub", port, "-t", "x", "--connect-timeout", "0.3")
    assert result.returncode == 6
    assert "within 0.3 s" in result.stderr


async def test_usage_errors_exit_2(server: Server) -> None:
    v3_props = await roost(
        "pub",
        server.port,
        "-V",
        "mqttv311",
        "-t",
        "x",
        "-m",
        "y",
        "-D",
        "publish",
        "content-type",
        "a",
    )
    assert v3_props.returncode == 2
    assert "MQTT 5" in v3_props.stderr
    unknown = await roost(
        "pub", server.port, "-t", "x", "-m", "y", "-D", "publish", "nonsense", "1"
    )
    assert unknown.returncode == 2
    wildcard = await roost("pub", server.port, "-t", "x/#", "-m", "y")
    assert wildcard.returncode == 2
    missing = await roost("pub", server.port, "-t", "x")
    assert missing.returncode == 2
    assert "one of the arguments -m" in missing.stderr


async def test_publish_refused_exit_code(make_broker: Callable[..., BrokerThread]) -> None:
    broker = make_broker(allow_anonymous=True)  # Roost refuses client PUBLISH to $-topics
    result = await roost("pub", broker.port, "-t", "$SYS/mine", "-m", "y", "-q", "1")
    assert result.returncode == 1
    assert "not authorized" in result.stderr


async def test_connection_lost_exit_code(make_broker: Callable[..., BrokerThread]) -> None:
    broker = make_broker(allow_anonymous=True)
    async with roost_sub(broker.port, "-t", "x") as sub:
        await asyncio.to_thread(broker.stop)  # MQTT 5: DISCONNECT 0x8B, then the close
        result = await sub.finish()
    assert result.returncode == 7
    assert "server shutting down" in result.stderr


async def test_wrong_place_exit_codes_and_messages(tmp_path: Path) -> None:
    cafile, server_pem = server_certificate(tmp_path)
    thread = start_roost(
        ListenerConfig(port=0),
        ListenerConfig(port=0, type="tls", certfile=str(server_pem)),
        allow_anonymous=True,
    )
    try:
        plain, tls = listener_port(thread, 0), listener_port(thread, 1)
        publish = ("-t", "x", "-m", "y")
        unknown = await run(*ROOST, "pub", "-h", "nowhere.invalid", "-p", str(plain), *publish)
        assert unknown.returncode == 3, unknown.stderr
        assert "unknown host" in unknown.stderr
        assert "unknown error" not in unknown.stderr
        tls_to_plain = await roost("pub", plain, "--cafile", str(cafile), *publish)
        assert tls_to_plain.returncode == 5, tls_to_plain.stderr
        assert "plain MQTT port" in tls_to_plain.stderr
        plain_to_tls = await roost("sub", tls, "-t", "x")
        assert plain_to_tls.returncode == 3, plain_to_tls.stderr
        assert "no CONNACK" in plain_to_tls.stderr
        assert "TLS" in plain_to_tls.stderr
    finally:
        thread.stop()
    for status in ("3 ", "5 "):  # the help's exit-code table names these cases
        assert status in EXIT_CODES_HELP
    assert "no CONNACK" in EXIT_CODES_HELP
    assert "not a TLS port" in EXIT_CODES_HELP
