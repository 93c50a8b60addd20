"""`roost broker -c roost.toml` with a [[bridges]] table, as a process, to Mosquitto."""

from __future__ import annotations

from pathlib import Path

from roost.codec import MQTT_3_1_1
from tests.broker.test_cli_broker import BrokerProcess
from tests.support.mosquitto import Mosquitto
from tests.support.paho import PahoClient


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
