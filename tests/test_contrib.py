"""contrib/: the systemd unit, checked by systemd itself where it is installed."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from roost.cli.main import build_parser

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "contrib" / "roost.service"


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
