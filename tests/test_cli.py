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


def test_an_unknown_option_prints_the_subcommands_usage() -> None:
    for args, usage, unknown in (
        (("broker", "-d"), "usage: roost broker ", "-d"),
        (("rr", "-t", "a", "-m", "b", "-F", "%p"), "usage: roost rr ", "-F %p"),
        (("sub", "-t", "a", "--nonsense"), "usage: roost sub ", "--nonsense"),
        (("bench", "pub", "--nonsense"), "usage: roost bench pub ", "--nonsense"),
    ):
        result = run_roost(*args)
        assert result.returncode == 2, args
        assert result.stderr.startswith(usage), (args, result.stderr)
        assert f"error: unrecognized arguments: {unknown}" in result.stderr
    top = run_roost("--nonsense")
    assert top.returncode == 2
    assert top.stderr.startswith("usage: roost [")
