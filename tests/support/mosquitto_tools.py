"""The mosquitto command-line clients, mosquitto_pub and mosquitto_sub, against a broker.

Each runs as a subprocess connecting to 127.0.0.1 on the given port. A mosquitto_sub
started in the background is killed at the end of the test if it is still running.
"""

from __future__ import annotations

import subprocess

from roost.codec import MQTT_3_1, MQTT_3_1_1, MQTT_5
from tests.support.cleanup import close_at_end

# The -V option for each protocol level.
MOSQUITTO_VERSIONS = {MQTT_3_1: "mqttv31", MQTT_3_1_1: "mqttv311", MQTT_5: "mqttv5"}
# mosquitto_sub's exit status when its -W timeout ran out.
SUB_TIMED_OUT = 27


def _run(
    program: str, port: int, args: tuple[str, ...], input_text: str | None, check: bool
) -> subprocess.CompletedProcess[str]:
    command = [program, "-h", "127.0.0.1", "-p", str(port), *args]
    result = subprocess.run(
        command, input=input_text, capture_output=True, text=True, timeout=20, check=False
    )
    if check:
        assert result.returncode == 0, (command, result.returncode, result.stdout, result.stderr)
    return result


def mosquitto_pub(
    port: int, *args: str, input_text: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run mosquitto_pub to completion (``input_text`` feeds -l or -s); unless ``check`` is
    False, a non-zero exit fails the test with its output."""
    return _run("mosquitto_pub", port, args, input_text, check)


def mosquitto_sub(port: int, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run mosquitto_sub to completion (give it -C, -W or -E so that it ends)."""
    return _run("mosquitto_sub", port, args, None, check)


def start_mosquitto_sub(port: int, *args: str, wait: int = 10) -> subprocess.Popen[str]:
    """Start mosquitto_sub in the background; it gives up after ``wait`` seconds (-W)."""
    process = subprocess.Popen(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-W", str(wait), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    close_at_end(lambda: _kill(process))
    return process


def _kill(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.communicate()


def finish(process: subprocess.Popen[str], *, timed_out_ok: bool = False) -> list[str]:
    """The output lines of a background mosquitto_sub, run to its end: its -C count reached
    (exit status 0) or, if ``timed_out_ok``, its -W timeout run out."""
    stdout, stderr = process.communicate(timeout=20)
    allowed = (0, SUB_TIMED_OUT) if timed_out_ok else (0,)
    assert process.returncode in allowed, (process.returncode, stderr)
    return stdout.splitlines()
