"""The broker's log as the configuration asks: level, destination and format."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from roost.broker import BrokerConfig
from roost.broker.logs import TEXT_FORMAT, TextFormatter, TurnStreamHandler, configure_logging
from roost.codec import MQTT_3_1_1
from tests.support.broker_thread import BrokerThread
from tests.support.paho import PahoClient
from tests.support.waiting import wait_until

STARTUP_TIMEOUT = 15.0


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if handler not in handlers:
            handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_lines_to_a_file(tmp_path: Path) -> None:
    path = tmp_path / "roost.log"
    config = BrokerConfig(log_dest="file", log_file=str(path), log_format="json")
    configure_logging(config)
    log = logging.getLogger("roost.broker")
    log.debug("not at info")
    log.info("Listening on %s.", "127.0.0.1:1883")
    try:
        int("boom")
    except ValueError:
        log.exception("It failed.")
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(e["level"], e["logger"], e["message"]) for e in entries] == [
        ("INFO", "roost.broker", "Listening on 127.0.0.1:1883."),
        ("ERROR", "roost.broker", "It failed."),
    ]
    assert entries[0]["time"].endswith("+00:00")
    assert "ValueError: invalid literal" in entries[1]["exception"]


def test_the_file_is_opened_again_after_logrotate_moves_it(tmp_path: Path) -> None:
    path = tmp_path / "roost.log"
    configure_logging(BrokerConfig(log_dest="file", log_file=str(path)))
    log = logging.getLogger("roost.broker")
    log.info("before")
    path.rename(tmp_path / "roost.log.1")
    log.info("after")
    assert "before" in (tmp_path / "roost.log.1").read_text()
    assert path.read_text().endswith(" INFO after\n")


def test_level_and_verbose(tmp_path: Path) -> None:
    path = tmp_path / "roost.log"
    config = BrokerConfig(log_dest="file", log_file=str(path), log_level="warning")
    configure_logging(config)
    logging.getLogger("roost").info("quiet")
    logging.getLogger("roost").warning("loud")
    assert "quiet" not in path.read_text()
    assert "loud" in path.read_text()
    configure_logging(config, verbose=True)
    logging.getLogger("roost").debug("debug now")
    assert "debug now" in path.read_text()


def test_syslog_gets_tagged_records() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        server.settimeout(5)
        configure_logging(BrokerConfig(log_dest="syslog"), syslog_address=server.getsockname())
        logging.getLogger("roost.broker").warning("to syslog")
        datagram = server.recv(4096).decode()
    # <28>: facility daemon (3) * 8 + severity warning (4).
    assert datagram.startswith(f"<28>roost[{os.getpid()}]: WARNING to syslog")


def test_a_file_log_made_in_code_without_a_file_is_refused() -> None:
    with pytest.raises(ValueError, match="needs log_file"):
        configure_logging(BrokerConfig(log_dest="file"))


def test_roost_broker_logs_json_to_the_configured_file(tmp_path: Path) -> None:
    log_file = tmp_path / "broker.log"
    config = tmp_path / "roost.toml"
    config.write_text(f'log_dest = "file"\nlog_file = "{log_file}"\nlog_format = "json"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "roost", "broker", "-c", str(config), "-p", "0", "--no-persistence"],
        stderr=subprocess.PIPE,
        text=True,
    )

    def listening() -> bool:
        # Only whole lines count: the broker may be writing the last one.
        if not log_file.exists():
            return False
        lines = log_file.read_text().split("\n")[:-1]
        return any(json.loads(line)["message"].startswith("Listening on") for line in lines)

    try:
        wait_until(listening, STARTUP_TIMEOUT)
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=STARTUP_TIMEOUT)
    assert proc.returncode == 0
    assert err == ""  # everything went to the file
    assert json.loads(log_file.read_text().splitlines()[-1])["message"] == "Broker stopped."


def test_roost_broker_says_when_it_cannot_open_the_log_file(tmp_path: Path) -> None:
    config = tmp_path / "roost.toml"
    missing = tmp_path / "no-such-dir" / "roost.log"
    config.write_text(f'log_dest = "file"\nlog_file = "{missing}"\n')
    result = subprocess.run(
        [sys.executable, "-m", "roost", "broker", "-c", str(config), "--no-persistence"],
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"roost broker: log_file: cannot open {missing}: No such file or directory\n"
    )


class CountingStream(io.StringIO):
    """A stream that counts its writes (each would be a system call on stderr)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_stderr_lines_of_one_loop_turn_are_written_together() -> None:
    stream = CountingStream()
    handler = TurnStreamHandler(stream)
    handler.setFormatter(TextFormatter())
    log = logging.getLogger("roost.test.turns")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("outside a loop: at once")
        assert stream.writes == 1

        async def burst() -> int:
            for number in range(3):
                log.warning("in a loop %d", number)
            written = stream.writes
            await asyncio.sleep(0)  # the end of this turn
            return written

        assert asyncio.run(burst()) == 1  # nothing more during the turn
        assert stream.writes == 2
        lines = stream.getvalue().splitlines()
        assert [line.split(" WARNING ")[1] for line in lines] == [
            "outside a loop: at once",
            "in a loop 0",
            "in a loop 1",
            "in a loop 2",
        ]
    finally:
        log.removeHandler(handler)
        log.propagate = True


def test_the_text_format_is_unchanged_by_its_time_cache() -> None:
    record = logging.makeLogRecord(
        {"msg": "Client %s disconnected.", "args": ("c1",), "levelname": "INFO", "created": 1e9}
    )
    record.msecs = 25.0
    expected = logging.Formatter(TEXT_FORMAT).format(record)
    formatter = TextFormatter()
    assert formatter.format(record) == formatter.format(record) == expected
    assert expected.endswith(",025 INFO Client c1 disconnected.")


CONNECTED = "New client connected from"


def test_connection_messages_off_drops_the_lines_but_not_the_counts(
    make_broker: Callable[..., BrokerThread], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="roost")
    for setting in (True, False):
        caplog.clear()
        broker = make_broker(connection_messages=setting)
        client = PahoClient(broker.port, f"logged-{setting}", MQTT_3_1_1)
        client.disconnect()
        wait_until(lambda: broker.call(lambda: not broker.broker.sessions))  # noqa: B023
        lines = [record.getMessage() for record in list(caplog.records)]
        assert any(CONNECTED in line for line in lines) is setting, lines
        assert any(" disconnected." in line for line in lines) is setting, lines
        assert broker.call(lambda: broker.broker.stats.clients_total) == 1  # noqa: B023
