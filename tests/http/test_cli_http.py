"""`roost broker --http PORT` and an [http] table in the config file, as a process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.broker.test_cli_broker import BrokerProcess
from tests.http.client import Api


def test_http_flag_serves_the_api_on_loopback() -> None:
    process = BrokerProcess("--http", "0")
    try:
        match = process.wait_for(r"HTTP API, metrics and dashboard on http://127\.0\.0\.1:(\d+)/")
        api = Api(int(match.group(1)))
        status = api.data("/api/v1/status")
        assert status["listeners"][0]["port"] == process.port
        assert api.get("/metrics").status == 200
    finally:
        assert process.stop() == 0


def test_config_file_http_table_with_keys(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    created = subprocess.run(
        [sys.executable, "-m", "roost", "apikey", "create", str(keys), "ops"],
        capture_output=True,
        text=True,
        check=True,
    )
    key = created.stdout.strip()
    config = tmp_path / "roost.toml"
    config.write_text(f'[http]\nport = 0\napi_keys_file = "{keys}"\n')
    process = BrokerProcess("-c", str(config))
    try:
        match = process.wait_for(r"on http://127\.0\.0\.1:(\d+)/ \(API keys required\)")
        port = int(match.group(1))
        assert Api(port).get("/api/v1/status").status == 401
        assert Api(port, key).get("/api/v1/status").status == 200
    finally:
        assert process.stop() == 0


def test_a_refused_http_host_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "roost.toml"
    config.write_text('[http]\nhost = "0.0.0.0"\n')
    result = subprocess.run(
        [sys.executable, "-m", "roost", "broker", "-c", str(config), "--no-persistence"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "roost.toml:2: http.host" in result.stderr
    assert "not a loopback address" in result.stderr
    assert "api_keys_file" in result.stderr
