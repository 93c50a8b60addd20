"""The broker's log as the configuration asks: level, destination and format."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from roost.broker import BrokerConfig
from roost.broker.logs import configure_logging
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
