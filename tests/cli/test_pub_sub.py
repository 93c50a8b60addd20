"""`roost pub` and `roost sub` as subprocesses, against Roost and Mosquitto, and checked
against Mosquitto's own clients in both directions."""

from __future__ import annotations

import base64
import json
import signal
from pathlib import Path

import pytest

from roost.client import Client
from tests.cli.helpers import ROOST, roost, roost_sub, run, start_sub, sub_lines
from tests.client.servers import Server


@pytest.mark.parametrize("version", ["mqttv5", "mqttv311"])
async def test_roost_sub_sees_roost_pub(server: Server, version: str) -> None:
    async with roost_sub(server.port, "-t", "cli/#", "-v", "-C", "1", "-V", version) as sub:
        published = await roost(
            "pub", server.port, "-t", "cli/a", "-m", "hi", "-q", "1", "-V", version
        )
        assert published.returncode == 0, published.stderr
        result = await sub.finish()
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"cli/a hi\n"


async def test_mosquitto_sub_sees_roost_pub(server: Server) -> None:
    command = ("mosquitto_sub", "-h", "127.0.0.1", "-p", str(server.port), "-t", "x/#", "-v")
    async with start_sub(*command, "-C", "2", "-q", "2", mosquitto=True) as sub:
        for qos in ("0", "2"):
            result = await roost("pub", server.port, "-t", f"x/{qos}", "-m", f"q{qos}", "-q", qos)
            assert result.returncode == 0, result.stderr
        finished = await sub.finish()
    assert sub_lines(finished) == ["x/0 q0", "x/2 q2"]


async def test_roost_sub_sees_mosquitto_pub(server: Server) -> None:
    async with roost_sub(server.port, "-t", "m/#", "-v", "-C", "1", "-q", "1") as sub:
        published = await run(
            "mosquitto_pub",
            "-h",
            "127.0.0.1",
            "-p",
            str(server.port),
            "-t",
            "m/1",
            "-m",
            "from mosquitto",
            "-q",
            "1",
        )
        assert published.returncode == 0, published.stderr
        result = await sub.finish()
    assert result.stdout == b"m/1 from mosquitto\n"


async def test_line_mode_streams_stdin(server: Server) -> None:
    async with roost_sub(server.port, "-t", "lines", "-C", "3", "-q", "1") as sub:
        lines = b"one\ntwo\n\nthree\n"
        result = await roost("pub", server.port, "-t", "lines", "-l", "-q", "1", stdin=lines)
        assert result.returncode == 0, result.stderr
        received = await sub.finish()
    assert received.stdout == b"one\ntwo\nthree\n"  # the blank line is not sent


async def test_message_sources_and_retained_only(server: Server, tmp_path: Path) -> None:
    payload_file = tmp_path / "payload.bin"
    payload_file.write_bytes(b"from a file")
    sources = {
        "src/stdin": (["-s"], b"all of\nstdin"),
        "src/file": (["-f", str(payload_file)], b"from a file"),
        "src/m": (["-m", "plain"], b"plain"),
    }
    for topic, (args, _) in sources.items():
        stdin = b"all of\nstdin" if "-s" in args else None
        result = await roost("pub", server.port, "-t", topic, "-r", "-q", "1", *args, stdin=stdin)
        assert result.returncode == 0, result.stderr
    for topic, (_, expected) in sources.items():
        got = await roost("sub", server.port, "-t", topic, "--retained-only", "-C", "1", "-N")
        assert got.returncode == 0, got.stderr
        assert got.stdout == expected
    # -n -r: a zero-length retained message clears the retained one.
    cleared = await roost("pub", server.port, "-t", "src/m", "-r", "-n", "-q", "1")
    assert cleared.returncode == 0
    none_left = await roost("sub", server.port, "-t", "src/m", "--retained-only", "-W", "0.5")
    assert (none_left.returncode, none_left.stdout) == (6, b"")


async def test_json_output_with_properties_and_binary(server: Server, tmp_path: Path) -> None:
    port = str(server.port)
    await run(
        "mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-V", "mqttv5", "-t", "j/text",
        "-m", "héllo", "-r", "-D", "publish", "user-property", "unit", "C",
        "-D", "publish", "content-type", "text/plain",
    )  # fmt: skip
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\x00\xfe")
    await roost("pub", server.port, "-t", "j/bin", "-f", str(binary), "-r", "-q", "1")
    text = await roost("sub", server.port, "-t", "j/text", "--json", "-C", "1")
    record = json.loads(text.stdout)
    assert record == {
        "topic": "j/text",
        "qos": 0,
        "retain": True,
        "properties": {"content_type": "text/plain", "user_properties": [["unit", "C"]]},
        "payload": "héllo",
    }
    raw = await roost("sub", server.port, "-t", "j/bin", "--json", "-C", "1", "-q", "1")
    record = json.loads(raw.stdout)
    assert base64.b64decode(record["payload_base64"]) == b"\xff\x00\xfe"
    assert "payload" not in record


async def test_format_string(server: Server) -> None:
    await roost("pub", server.port, "-t", "fmt/x", "-m", "AB", "-r", "-q", "1")
    result = await roost(
        "sub", server.port, "-t", "fmt/#", "-C", "1", "-q", "1", "-F", r"%t|%p|%q|%r|%l|%%|%x|%X\t!"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"fmt/x|AB|1|1|2|%|4142|4142\t!\n"
    bad = await roost("sub", server.port, "-t", "fmt/#", "-F", "%Z")
    assert bad.returncode == 2
    assert "%Z" in bad.stderr


async def test_filter_out_count_and_stale_retained(server: Server) -> None:
    for topic in ("f/1", "f/2", "f/3"):
        await roost("pub", server.port, "-t", topic, "-m", topic, "-r", "-q", "1")
    result = await roost("sub", server.port, "-t", "f/#", "-T", "f/2", "-C", "2", "-v")
    assert sorted(result.text.splitlines()) == ["f/1 f/1", "f/3 f/3"]
    # -R: retained (stale) messages are not printed, so nothing comes before -W runs out.
    stale = await roost("sub", server.port, "-t", "f/#", "-R", "-W", "0.5")
    assert (stale.returncode, stale.stdout) == (6, b"")


async def test_exit_after_subscribe_and_persistent_session(server: Server) -> None:
    session = ("-c", "-i", "cli-persistent", "-q", "1", "-t", "persist/#")
    made = await roost("sub", server.port, *session, "-E")
    assert made.returncode == 0, made.stderr
    await roost("pub", server.port, "-t", "persist/x", "-m", "kept for you", "-q", "1")
    back = await roost("sub", server.port, *session, "-C", "1", "-v")
    assert back.returncode == 0, back.stderr
    assert back.stdout == b"persist/x kept for you\n"


async def test_persistent_session_needs_a_client_id(server: Server) -> None:
    result = await roost("sub", server.port, "-c", "-t", "x")
    assert result.returncode == 2
    assert "-i" in result.stderr


async def test_will_options_and_sigint(server: Server) -> None:
    async with Client("127.0.0.1", server.port) as watcher:
        await watcher.subscribe("cli-wills/#", qos=1)
        stream = watcher.messages()
        first_will = ("--will-topic", "cli-wills/a", "--will-payload", "gone", "--will-qos", "1")
        async with roost_sub(server.port, "-t", "nothing", *first_will) as killed:
            killed.process.kill()  # no DISCONNECT: the will goes out
        message = await anext(stream)
        assert (message.topic, message.payload, message.qos) == ("cli-wills/a", b"gone", 1)
        second_will = ("--will-topic", "cli-wills/b", "--will-payload", "unused")
        async with roost_sub(server.port, "-t", "nothing", *second_will) as interrupted:
            interrupted.process.send_signal(signal.SIGINT)
            result = await interrupted.finish()
        assert result.returncode == 130
        # A clean disconnect: no will. The next message is the marker.
        await watcher.publish("cli-wills/marker", "m", qos=1)
        assert (await anext(stream)).topic == "cli-wills/marker"


async def test_debug_output_shows_packets(server: Server) -> None:
    result = await roost("pub", server.port, "-t", "d", "-m", "x", "-q", "1", "-d")
    assert result.returncode == 0
    for packet in (
        "sending CONNECT",
        "received CONNACK",
        "sending PUBLISH (d0, q1",
        "received PUBACK",
    ):
        assert packet in result.stderr


async def test_properties_on_the_command_line(server: Server) -> None:
    args = (
        "-D",
        "publish",
        "user-property",
        "k",
        "v",
        "-D",
        "publish",
        "message-expiry-interval",
        "60",
    )
    async with roost_sub(server.port, "-t", "props", "-C", "1", "-F", "%P %E") as sub:
        result = await roost("pub", server.port, "-t", "props", "-m", "x", *args)
        assert result.returncode == 0, result.stderr
        finished = await sub.finish()
    topic_props, expiry = finished.text.split()
    assert topic_props == "k:v"
    assert 55 <= int(expiry) <= 60


async def test_help_documents_flags_and_exit_codes() -> None:
    for tool in ("pub", "sub", "rr"):
        result = await run(*ROOST, tool, "--help")
        assert result.returncode == 0
        assert "-h HOST, --host HOST" in result.text
        assert "exit status:" in result.text
        assert "4    the server refused the connection" in result.text
