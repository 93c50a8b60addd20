"""A TCP relay between an MQTT client and a real broker that can withhold packets.

``MqttRelay(port)`` listens on a port of its own and passes every connection through to
the broker on ``port``, whole MQTT packet by whole packet. A packet type put in
``withhold["up"]`` (client to broker) or ``withhold["down"]`` (broker to client) is
dropped and recorded in ``withheld``: a PUBREL or PUBCOMP that never arrives, as when a
process dies at that moment, while both ends are real and keep their own state.

``MqttRelay(port, raw=True)`` passes bytes through as they come (any protocol: NATS),
and ``refusing = True`` closes new connections at once: with ``cut()``, a network
partition between one process and a server, until ``refusing`` is False again.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.support.waiting import wait_until

PUBREC, PUBREL, PUBCOMP = 5, 6, 7


def _split(buffer: bytearray) -> bytes | None:
    """Take one whole packet off the front of ``buffer``; None if it is not all there."""
    length = 0
    shift = 0
    for index in range(1, min(len(buffer), 5)):
        byte = buffer[index]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            end = index + 1 + length
            if len(buffer) < end:
                return None
            packet = bytes(buffer[:end])
            del buffer[:end]
            return packet
    return None


class MqttRelay:
    """Relays client connections to 127.0.0.1:port; see the module docstring."""

    def __init__(self, port: int, *, raw: bool = False) -> None:
        self.target = port
        self.raw = raw
        self.refusing = False
        self.withhold: dict[str, set[int]] = {"up": set(), "down": set()}
        self.withheld: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            if self.refusing:
                client.close()
                continue
            try:
                broker = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, broker]
            threading.Thread(target=self._pump, args=(client, broker, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(broker, client, "down"), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, direction: str) -> None:
        buffer = bytearray()
        try:
            while data := source.recv(65536):
                if self.raw:
                    sink.sendall(data)
                    continue
                buffer += data
                while (packet := _split(buffer)) is not None:
                    kind = packet[0] >> 4
                    if kind in self.withhold[direction]:
                        with self._lock:
                            self.withheld.append((direction, kind))
                        continue
                    sink.sendall(packet)
        except OSError:
            pass
        finally:
            # One side gone: close both, as a broken network path would.
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            source.close()  # the other direction's pump closes the other socket

    def wait_withheld(self, direction: str, kind: int) -> None:
        wait_until(lambda: (direction, kind) in self.withheld)

    def cut(self) -> None:
        """Break every connection relayed so far (new ones are relayed as before)."""
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._listener.close()
        self.cut()
