"""Is an MQTT broker answering? Exit 0 if a CONNECT gets a CONNACK, else 1.

The Docker image's HEALTHCHECK (contrib/Dockerfile); usable for any MQTT broker:
``python healthcheck.py [HOST] [PORT]`` (default 127.0.0.1 1883). Any CONNACK counts,
a refusal too: a broker that refuses anonymous clients is still up. Standard library
only, so it runs wherever Python does.
"""

from __future__ import annotations

import socket
import sys

TIMEOUT = 5.0  # seconds for the connection and the answer together
# MQTT 3.1.1 CONNECT: clean session, keep-alive 60 s, client id "roost-health".
CONNECT = bytes.fromhex("101800044d5154540402003c000c") + b"roost-health"
CONNACK = 0x20
DISCONNECT = bytes.fromhex("e000")


def check(host: str, port: int) -> str | None:
    """None if the broker answered, else what went wrong."""
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
            sock.sendall(CONNECT)
            answer = sock.recv(4)
            if answer[:1] == bytes([CONNACK]):
                sock.sendall(DISCONNECT)
                return None
            return f"expected a CONNACK, got {answer.hex() or 'the connection closed'}"
    except OSError as exc:
        return str(exc) or type(exc).__name__


def main(argv: list[str]) -> int:
    host = argv[1] if len(argv) > 1 else "127.0.0.1"
    port = int(argv[2]) if len(argv) > 2 else 1883
    problem = check(host, port)
    if problem is not None:
        print(f"unhealthy: {host}:{port}: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
