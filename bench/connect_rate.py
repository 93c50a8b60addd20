"""Connect N persistent MQTT 5 clients one after the other (CONNECT, CONNACK,
DISCONNECT) and print the rate: ``python -m bench.connect_rate PORT N``
(bench/cluster_connect.sh runs it against a broker alone and a cluster node)."""

from __future__ import annotations

import socket
import sys
import time

from roost.codec import MQTT_5, Connect, Disconnect

CONNACK = 0x20


def connect_once(port: int, client_id: str) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        packet = Connect(client_id, MQTT_5, clean_start=False, session_expiry_interval=60)
        sock.sendall(packet.encode(MQTT_5))
        answer = sock.recv(256)
        if not answer or answer[0] != CONNACK:
            raise SystemExit(f"no CONNACK: {answer!r}")
        sock.sendall(Disconnect().encode(MQTT_5))


def main() -> None:
    port, count = int(sys.argv[1]), int(sys.argv[2])
    start = time.perf_counter()
    for index in range(count):
        connect_once(port, f"rate-{index}")
    took = time.perf_counter() - start
    each = took / count * 1000
    print(f"{count} connects in {took:.2f} s: {count / took:.0f}/s, {each:.2f} ms each")


if __name__ == "__main__":
    main()
