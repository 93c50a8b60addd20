"""`roost broker` as a process: startup, logging, config errors and clean shutdown."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from roost.codec import MQTT_5, Connect, Disconnect, Will
from tests.support.raw import RawClient

STARTUP_TIMEOUT = 15.0


class BrokerProcess:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            # In memory: these tests must not write (or share) a ./roost-data database.
            [sys.executable, "-m", "roost", "broker", "-p", "0", "--no-persistence", *args],
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.port = int(self.wait_for(r"Listening on 127\.0\.0\.1:(\d+)").group(1))

    def wait_for(self, pattern: str) -> re.Match[str]:
        """Read the log until a line matches ``pattern`` (the process writes as it goes)."""
        assert self.proc.stderr is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        for line in self.lines:
            if match := re.search(pattern, line):
                return match
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"no log line matching {pattern!r} in:\n{''.join(self.lines)}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(STARTUP_TIMEOUT)
        assert self.proc.stderr is not None
        self.lines.extend(self.proc.stderr.readlines())
        self.proc.stderr.close()
        return code


@pytest.fixture
def broker_process() -> Iterator[BrokerProcess]:
    process = BrokerProcess()
    yield process
    process.stop()


def test_connect_and_disconnect_are_logged_as_operators_know_them(
    broker_process: BrokerProcess,
) -> None:
    client = RawClient(broker_process.port, MQTT_5)
    client.connect("logged-client", keep_alive=30)
    broker_process.wait_for(
        r"New client connected from 127\.0\.0\.1:\d+ as logged-client \(p5, c1, k30\)\."
    )
    client.send(Disconnect())
    broker_process.wait_for(r"Client logged-client disconnected\.")
    client.close()


def test_protocol_violations_are_logged(broker_process: BrokerProcess) -> None:
    client = RawClient(broker_process.port)
    client.connect("violator")
    client.send(b"\x30\x05\x00\x03a/+")  # a wildcard in a PUBLISH topic name
    client.expect_closed()
    broker_process.wait_for(r"Client violator \(127\.0\.0\.1:\d+\) protocol violation: .*wildcard")
    client.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_shuts_down_cleanly_telling_v5_clients_and_publishing_wills(
    signum: signal.Signals,
) -> None:
    process = BrokerProcess()
    watcher = RawClient(process.port, MQTT_5)
    watcher.connect("watcher")
    doomed = RawClient(process.port, MQTT_5)
    doomed.send(Connect("doomed", MQTT_5, will=Will("wills/doomed", b"gone", retain=True)))
    doomed.recv()
    process.proc.send_signal(signum)
    assert process.stop() == 0
    # [MQTT-3.1.2-8]: the server closed the connection without a DISCONNECT from the
    # client, so the will is published; v5 clients are told why (0x8B).
    assert watcher.expect_closed() == [Disconnect(0x8B)]
    assert doomed.expect_closed() == [Disconnect(0x8B)]
    assert any("Publishing will of client doomed" in line for line in process.lines)
    assert any("Broker stopped." in line for line in process.lines)
    watcher.close()
    doomed.close()


def test_config_error_names_file_line_key_and_problem_and_refuses_to_start(
    tmp_path: Path,
) -> None:
    config = tmp_path / "roost.toml"
    config.write_text("allow_anonymous = true\nmax_packet_size = 'big'\n")
    result = subprocess.run(
        [sys.executable, "-m", "roost", "broker", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT,
        check=False,
    )
    assert result.returncode == 2
    assert f"{config}:2: max_packet_size:" in result.stderr
    assert "Listening" not in result.stderr


def test_port_in_use_is_a_clear_error(broker_process: BrokerProcess) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "roost",
            "broker",
            "--no-persistence",
            "-p",
            str(broker_process.port),
        ],
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT,
        check=False,
    )
    assert result.returncode == 1
    assert "address already in use" in result.stderr


def test_port_option_replacing_the_files_listeners_is_logged(tmp_path: Path) -> None:
    config = tmp_path / "roost.toml"
    config.write_text("[[listeners]]\nport = 1883\n\n[[listeners]]\ntype = 'ws'\nport = 8080\n")
    process = BrokerProcess("-c", str(config))  # BrokerProcess passes -p 0
    try:
        process.wait_for(
            rf"INFO -p: listeners\[0\] of {re.escape(str(config))} \(tcp 127\.0\.0\.1:1883\)"
            r" listens on 127\.0\.0\.1:0 instead\."
        )
        process.wait_for(
            rf"WARNING -p: the other listeners of {re.escape(str(config))} are not started:"
            r" listeners\[1\] \(ws 127\.0\.0\.1:8080\)\."
        )
    finally:
        assert process.stop() == 0
