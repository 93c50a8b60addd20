"""`roost broker -c roost.toml` with a [[bridges]] table, as a process, to Mosquitto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from roost.codec import MQTT_3_1_1, MQTT_5
from tests.broker.test_cli_broker import BrokerProcess
from tests.support.mosquitto import Mosquitto
from tests.support.paho import PahoClient
from tests.support.relay import PUBCOMP, MqttRelay


def test_the_will_says_0_on_the_remote_when_roost_dies(tmp_path: Path, remote: Mosquitto) -> None:
    config = tmp_path / "roost.toml"
    config.write_text(
        "[[bridges]]\n"
        'name = "edge"\n'
        f'addresses = ["127.0.0.1:{remote.port}"]\n'
        'protocol = "mqttv311"\n'
        'client_id = "edge-1"\n'
        "restart_timeout = [0.1, 1]\n"
        'topics = [{ pattern = "sensors/#", direction = "out", qos = 1, remote_prefix = "s1/" }]\n'
    )
    roost = BrokerProcess("-c", str(config))
    try:
        roost.wait_for(r"Bridge edge connected to 127\.0\.0\.1:\d+")
        far = PahoClient(remote.port, "far", MQTT_3_1_1)
        far.subscribe("$SYS/broker/connection/edge/state", 1)
        assert far.next_message().payload == b"1"
        roost.proc.kill()  # no clean stop: the remote publishes the bridge's will
        assert far.next_message().payload == b"0"
    finally:
        roost.stop()


class DurableBroker(BrokerProcess):
    """`roost broker` keeping its state in ``data_dir`` (SQLite, commit policy sync)."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "roost",
                "broker",
                "-p",
                "0",
                "--data-dir",
                str(data_dir),
                *args,
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines = []
        self.port = int(self.wait_for(r"Listening on 127\.0\.0\.1:(\d+)").group(1))


def test_a_qos2_message_released_when_roost_is_killed_is_not_delivered_again(
    tmp_path: Path, remote: Mosquitto
) -> None:
    """kill -9 after the remote delivered a QoS 2 message (our PUBREL reached it) and
    before its PUBCOMP reached us (a relay withholds it): the restarted bridge resumes
    at PUBREL under the same packet id, and the remote's subscriber gets no copy."""
    relay = MqttRelay(remote.port)
    config = tmp_path / "roost.toml"
    config.write_text(
        "[[bridges]]\n"
        'name = "edge"\n'
        f'addresses = ["127.0.0.1:{relay.port}"]\n'
        'client_id = "edge-1"\n'
        "restart_timeout = [0.1, 1]\n"
        'topics = [{ pattern = "x/#", direction = "out", qos = 2, remote_prefix = "s1/" }]\n'
    )
    data = tmp_path / "data"
    roost = DurableBroker(data, "-c", str(config))
    try:
        roost.wait_for(r"Bridge edge connected")
        far = PahoClient(remote.port, "far", MQTT_3_1_1)
        far.subscribe("s1/#", 2)
        relay.withhold["down"].add(PUBCOMP)
        PahoClient(roost.port, "near", MQTT_5).publish("x/once", b"once", 2)
        assert far.next_message().payload == b"once"
        relay.wait_withheld("down", PUBCOMP)
        roost.proc.kill()
        roost.stop()
        relay.withhold["down"].clear()

        roost = DurableBroker(data, "-c", str(config))
        roost.wait_for(r"Bridge edge connected")
        PahoClient(roost.port, "near", MQTT_5).publish("x/end", b"end", 2)
        assert far.next_message().payload == b"end"  # a copy of "once" would come first
    finally:
        roost.stop()
        relay.close()
