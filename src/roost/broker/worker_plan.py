"""What each worker of ``roost broker --workers N`` is given: its own configuration,
made from the one the supervisor read, and the listener ports they all share.

Worker ``i`` is the same broker with these differences (docs/clustering.md, "--workers"):

- it is cluster node ``<node>-w<i>`` (``node``: ``[cluster] node``, else the host name),
  joined through ``[cluster] nats_url``, or the supervisor's private nats-server when
  the file has no ``[cluster]``;
- its state is in ``<data_dir>/worker-<i>`` (its own SQLite file);
- it binds every listener with ``SO_REUSEPORT``, on the port the supervisor reserved
  (a configured port 0 is resolved once, so all workers share the same port);
- ``[http]``, when configured, listens on ``port + i`` (port 0: any free port each);
- bridges run in worker 0 only (one connection per bridge to the remote broker, as
  with one process; the other workers reach it through the cluster).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import socket
from pathlib import Path

from roost.broker.config import BrokerConfig, ClusterConfig, ListenerConfig


def worker_config(config: BrokerConfig, index: int, nats_url: list[str] | None) -> BrokerConfig:
    """Worker ``index``'s configuration; ``nats_url`` None: the file's ``[cluster]``."""
    cluster = config.cluster or ClusterConfig()
    node = f"{cluster.node or host_node_name()}-w{index}"
    urls = list(cluster.nats_url) if nats_url is None else nats_url
    http = config.http
    if http is not None and http.port != 0:
        http = dataclasses.replace(http, port=http.port + index)
    data_dir = config.data_dir if config.data_dir is not None else "roost-data"
    return dataclasses.replace(
        config,
        listeners=list(config.listeners),
        data_dir=str(Path(data_dir) / f"worker-{index}"),
        cluster=dataclasses.replace(cluster, nats_url=urls, node=node),
        http=http,
        bridges=list(config.bridges) if index == 0 else [],
    )


def host_node_name() -> str:
    """The host name as a node name: characters a node name may not have become '-'."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname()) or "roost"


class PortReservation:
    """A bound (not listening) ``SO_REUSEPORT`` socket per listener, held by the
    supervisor for its lifetime: it resolves port 0 once for all workers, fails early
    and clearly when another program has the port, and keeps the port ours while every
    worker is down. A socket that does not listen receives no connections."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []

    def reserve(self, listeners: list[ListenerConfig]) -> list[ListenerConfig]:
        """The listeners with their ports fixed; raises OSError naming the listener."""
        fixed = []
        for index, listener in enumerate(listeners):
            try:
                port = self._bind(listener.host, listener.port)
            except OSError as exc:
                where = f"{listener.host}:{listener.port}"
                reason = exc.strerror or str(exc)
                if exc.errno == errno.EADDRINUSE:
                    reason += " (another program has this port, without SO_REUSEPORT)"
                self.close()
                label = f"listeners[{index}] ({listener.type} {where})"
                raise OSError(f"{label}: cannot listen: {reason}") from exc
            fixed.append(dataclasses.replace(listener, port=port))
        return fixed

    def _bind(self, host: str, port: int) -> int:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
        except OSError:
            sock.close()
            raise
        os.set_inheritable(sock.fileno(), False)
        self.sockets.append(sock)
        return int(sock.getsockname()[1])

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()
