"""The operators' HTTP API, Prometheus metrics and dashboard (docs/operations.md).

Served from the broker's own event loop by aiohttp when the configuration has an
``[http]`` table. The broker starts it through ``start_http``, the one name it imports
from here (tests/test_architecture.py, ``SEAMS``); everything else reads the broker
through ``host.HttpHost``. aiohttp and prometheus-client are the ``roost[http]`` extra:
this module imports neither, so ``roost apikey`` and a broker without ``[http]`` run
without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from roost.http.errors import HttpSetupError

if TYPE_CHECKING:
    from roost.broker.config import HttpConfig
    from roost.http.host import HttpHost


__all__ = ["HttpSetupError", "RunningHttp", "start_http"]


class RunningHttp(Protocol):
    """A started HTTP server, as the broker keeps it."""

    @property
    def port(self) -> int:
        """The port it is bound to (useful with port 0)."""

    async def stop(self) -> None:
        """Stop serving: open streams end, then the socket closes."""


async def start_http(host: HttpHost, config: HttpConfig) -> RunningHttp:
    """Start the HTTP API for ``host`` as ``config`` says; HttpSetupError if it cannot."""
    try:
        from roost.http.server import HttpServer  # noqa: PLC0415  (the optional extra)
    except ImportError as exc:
        raise HttpSetupError(
            f"[http] needs the roost[http] extra (aiohttp, prometheus-client): {exc}"
        ) from exc
    server = HttpServer(host, config)
    await server.start()
    return server
