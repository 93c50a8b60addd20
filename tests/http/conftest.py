"""Brokers with the HTTP API on port 0, and a client for it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from roost.broker.config import HttpConfig
from tests.http.client import Api, http_port
from tests.support.broker_thread import BrokerThread


@pytest.fixture
def http_broker(make_broker: Callable[..., BrokerThread]) -> BrokerThread:
    return make_broker(http=HttpConfig(port=0), sys_interval=0)


@pytest.fixture
def api(http_broker: BrokerThread) -> Api:
    return Api(http_port(http_broker))
