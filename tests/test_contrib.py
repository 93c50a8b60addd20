"""contrib/: the systemd unit, checked by systemd itself where it is installed; the
Docker image's health check, run against real brokers; and what can be checked of the
Dockerfile without a container engine (none is installed here: the image itself is
neither built nor run by these tests)."""

from __future__ import annotations

import configparser
import json
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from roost.broker import load_config
from roost.cli.main import build_parser
from roost.testing import RunningBroker
from roost.testing.pytest_plugin import BrokerFactory

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "contrib" / "roost.service"
DOCKERFILE = REPO / "contrib" / "Dockerfile"
HEALTHCHECK = REPO / "contrib" / "healthcheck.py"


def read_unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=True)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    unit.read_string(UNIT.read_text(encoding="utf-8"))
    return unit


def test_the_unit_runs_roost_broker_with_options_it_has() -> None:
    service = read_unit()["Service"]
    program, *argv = shlex.split(service["ExecStart"])
    assert program == "/usr/local/bin/roost"
    args = build_parser().parse_args(argv)
    assert args.command == "broker"
    # The directories systemd makes for the service are the ones the broker uses.
    assert args.config == f"/etc/{service['ConfigurationDirectory']}/roost.toml"
    assert args.data_dir == f"/var/lib/{service['StateDirectory']}"


def test_the_unit_uses_the_signals_and_exit_codes_roost_broker_has() -> None:
    service = read_unit()["Service"]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"  # SIGHUP reloads
    assert service["KillSignal"] == "SIGTERM"  # a clean shutdown
    assert service["RestartPreventExitStatus"] == "2"  # a configuration error


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    # verify checks that the program exists: point it at this environment's roost.
    roost = Path(sys.executable).with_name("roost")
    unit = tmp_path / "roost.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/roost", str(roost)))
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Unknown keys and bad values are only warnings (exit status 0): any output fails.
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


# --- the Docker image's health check ----------------------------------------------------


def healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), "127.0.0.1", str(port)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_health_check_passes_on_a_running_broker(roost_broker: RunningBroker) -> None:
    result = healthcheck(roost_broker.port)
    assert (result.returncode, result.stderr) == (0, "")


def test_a_broker_that_refuses_anonymous_clients_is_healthy(
    roost_broker_factory: BrokerFactory,
) -> None:
    broker = roost_broker_factory(allow_anonymous=False)
    assert healthcheck(broker.port).returncode == 0


def test_the_health_check_fails_where_nothing_listens() -> None:
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        port = reserved.getsockname()[1]
        result = healthcheck(port)
    assert result.returncode == 1
    assert result.stderr.startswith(f"unhealthy: 127.0.0.1:{port}: ")


# --- the Dockerfile, read (not built) -----------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def arguments(name: str) -> list[str]:
    return [rest for word, rest in instructions() if word == name]


def copied_files() -> dict[str, str]:
    """Where each COPY puts a file -> the file in the repository."""
    copies: dict[str, str] = {}
    for rest in arguments("COPY"):
        source, destination = rest.split()
        copies[destination] = source
    return copies


def test_the_dockerfile_copies_files_that_exist() -> None:
    for rest in arguments("COPY"):
        source = rest.split()[0]
        assert (REPO / source).exists(), source


def test_the_dockerfile_runs_roost_broker_as_configured() -> None:
    (entrypoint,) = arguments("ENTRYPOINT")
    (cmd,) = arguments("CMD")
    program, *argv = json.loads(entrypoint) + json.loads(cmd)
    assert program == "roost"
    args = build_parser().parse_args(argv)
    assert args.command == "broker"
    assert arguments("VOLUME") == [args.data_dir]
    copies = copied_files()
    config = load_config(REPO / copies[args.config])
    (listener,) = config.listeners
    assert (listener.host, listener.port) == ("0.0.0.0", 1883)
    assert arguments("EXPOSE") == ["1883"]


def test_the_dockerfile_health_check_is_the_tested_script() -> None:
    (healthcheck_line,) = arguments("HEALTHCHECK")
    command = json.loads(healthcheck_line.partition(" CMD ")[2])
    copies = copied_files()
    assert command[0] == "python"
    assert copies[command[1]] == "contrib/healthcheck.py"
    assert command[2:] == ["127.0.0.1", "1883"]
