"""The Eclipse Paho C client over ws and wss, and one MQTT packet per WebSocket frame.

Paho C's synchronous ``MQTTClient`` (Debian ``libpaho-mqtt-dev``) reads one MQTT packet
per WebSocket frame. A broker that puts SUBACK and a retained PUBLISH, or PUBACK and a
PUBLISH, in one frame loses it the second packet: it then waits and gives up. The probe
(``tests/interop/paho_c/probe.c``, built here) does exactly those exchanges.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from roost.broker.config import ListenerConfig
from roost.codec import MQTT_3_1_1, Publish, Suback, Subscribe, Subscription
from tests.transports.conftest import StartBroker
from tests.transports.helpers import WsClient
from tests.transports.pki import Pki
from tests.transports.test_websocket import connected, ws_listener, wss_listener

PROBE_SOURCE = Path(__file__).resolve().parents[1] / "interop" / "paho_c" / "probe.c"


@pytest.fixture(scope="session")
def paho_c_probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The probe, compiled against the system's Paho C library."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None or not Path("/usr/include/MQTTClient.h").is_file():
        pytest.fail("a C compiler and libpaho-mqtt-dev are needed: run `make deps-debian`")
    binary = tmp_path_factory.mktemp("paho-c") / "probe"
    command = [compiler, "-Wall", "-Wextra", "-Werror", "-O1", "-o", str(binary)]
    build = subprocess.run(
        [*command, str(PROBE_SOURCE), "-lpaho-mqtt3cs"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    return binary


@pytest.mark.parametrize("version", ["3", "4", "5"])
@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_paho_c_gets_every_reply_over_websocket(
    paho_c_probe: Path, start_broker: StartBroker, pki: Pki, scheme: str, version: str
) -> None:
    listener = ws_listener() if scheme == "ws" else wss_listener(pki)
    broker = start_broker(listener)
    args = [
        str(paho_c_probe),
        f"{scheme}://localhost:{broker.port_of(0)}/mqtt",
        version,
        f"paho-c-{scheme}-{version}",
        f"paho-c/{scheme}/{version}",
    ]
    if scheme == "wss":
        args.append(str(pki.cafile))
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split()[-1:] == ["OK"]


def test_a_suback_and_the_retained_message_after_it_come_in_frames_of_their_own(
    start_broker: StartBroker,
) -> None:
    broker = start_broker(ListenerConfig(port=0), ws_listener())
    client = WsClient(broker.port_of(1))
    connected(client, "framed", MQTT_3_1_1)
    client.send_mqtt(Publish("framed/a", b"1", qos=0, retain=True))
    client.send_mqtt(Publish("framed/b", b"2", qos=0, retain=True))
    client.send_mqtt(Subscribe(1, (Subscription("framed/#", 0),)))
    payloads = [client.recv_frame()[2] for _ in range(3)]
    # Each frame holds exactly one whole packet: SUBACK, then the two retained messages.
    packets = []
    for payload in payloads:
        client.stream = payload
        packets.append(client.recv_mqtt())
        assert client.stream == b"", "a frame held more than one packet"
    assert isinstance(packets[0], Suback)
    assert sorted(p.topic for p in packets[1:] if isinstance(p, Publish)) == [
        "framed/a",
        "framed/b",
    ]
