"""`roost config convert` and `roost broker -c` on a mosquitto.conf, as a user runs them."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from roost.broker.config import load_config
from roost.broker.mosquitto_conf import load_mosquitto_config

MOSQUITTO_CONF = """\
# A small real-world file.
per_listener_settings false
allow_anonymous false
password_file /etc/mosquitto/passwd
listener 8883
certfile /etc/mosquitto/certs/server.crt
keyfile /etc/mosquitto/certs/server.key
user mosquitto
persistence true
persistence_location /var/lib/mosquitto/
"""


def roost(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "roost", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_convert_prints_toml_that_loads_as_the_same_broker(tmp_path: Path) -> None:
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(MOSQUITTO_CONF)
    result = roost("config", "convert", str(conf))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        (
            f"roost config convert: {conf}:8: user: no equivalent in Roost, not applied; start"
            " roost as that user (systemd User=)"
        ),
        (
            f"roost config convert: {conf}:9: persistence: Roost keeps its state in roost.db and"
            " does not read mosquitto.db; what Mosquitto stored is not carried over"
        ),
    ]
    # The same notices head the TOML, as comments.
    assert f"#   {conf}:8: user: no equivalent in Roost" in result.stdout
    data = tomllib.loads(result.stdout)
    assert data["listeners"] == [
        {
            "host": "0.0.0.0",
            "port": 8883,
            "type": "tls",
            "certfile": "/etc/mosquitto/certs/server.crt",
            "keyfile": "/etc/mosquitto/certs/server.key",
        }
    ]
    out = tmp_path / "roost.toml"
    written = roost("config", "convert", "-q", "-o", str(out), str(conf))
    assert (written.returncode, written.stdout, written.stderr) == (0, "", "")
    assert out.read_text() == result.stdout
    assert load_config(out) == load_mosquitto_config(conf)[0]


def test_convert_and_broker_refuse_what_mosquitto_refuses_with_file_and_line(
    tmp_path: Path,
) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text("listener 1883\nallow_anonymous yes\n")
    message = f"{conf}:2: allow_anonymous: invalid value (yes): true or false"
    converted = roost("config", "convert", str(conf))
    assert (converted.returncode, converted.stdout) == (2, "")
    assert converted.stderr == f"roost config convert: {message}\n"
    broker = roost("broker", "-c", str(conf))
    assert broker.returncode == 2
    assert broker.stderr == f"roost broker: {message}\n"


def test_a_mosquitto_file_without_the_conf_name_is_recognised_by_content(tmp_path: Path) -> None:
    conf = tmp_path / "broker.cfg"
    conf.write_text("# no .conf name\nlistener 1883\nmax_packet_size 5\n")
    broker = roost("broker", "-c", str(conf))
    assert broker.returncode == 2
    assert (
        broker.stderr
        == f"roost broker: {conf}:3: max_packet_size: invalid max_packet_size value (5)\n"
    )


def test_help_texts_name_the_mosquitto_format() -> None:
    top = roost("--help")
    assert "config" in top.stdout
    config = roost("config", "--help")
    assert "convert" in config.stdout
    convert = roost("config", "convert", "--help")
    assert "mosquitto.conf" in convert.stdout
    assert "docs/mosquitto.md" in convert.stdout
    broker = roost("broker", "--help")
    assert "mosquitto.conf" in broker.stdout
