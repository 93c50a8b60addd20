"""Async tests and the broker fixtures, shared with tests/client (see servers.py there)."""

from __future__ import annotations

import pytest

from tests.client.servers import (
    client_log,
    mosquitto,
    roost,
    run_async_test,
    server,
    ws_server,
)

__all__ = ["client_log", "mosquitto", "roost", "server", "ws_server"]


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    return run_async_test(pyfuncitem)
