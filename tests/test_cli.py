"""The `roost` command's own surface: --version and --help."""

from __future__ import annotations

import subprocess
import sys

from roost import __version__


def run_roost(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "roost", *args], capture_output=True, text=True, check=False
    )


def test_version_prints_the_package_version() -> None:
    result = run_roost("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"roost {__version__}"


def test_help_lists_the_broker_command() -> None:
    result = run_roost("--help")
    assert result.returncode == 0
    assert "broker" in result.stdout
