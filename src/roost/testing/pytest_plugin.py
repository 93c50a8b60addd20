"""Roost's pytest plugin: a broker, and a client connected to it, as fixtures.

Installed with Roost (the ``pytest11`` entry point ``roost``): nothing to configure.

- ``roost_broker``: a fresh broker per test (``RunningBroker``: 127.0.0.1, port 0,
  state in memory), stopped after it.
- ``roost_broker_factory``: ``roost_broker_factory(config=None, **overrides)`` starts
  more, or differently configured, brokers; all stop after the test.
- ``roost_session_broker``: one broker for the whole session, for suites that start
  many tests against the same broker (clean up topics yourself: state is shared).
- ``roost_client``: an async fixture, a ``roost.client.Client`` connected to
  ``roost_broker`` (MQTT 5), for ``async def`` tests run by pytest-asyncio or anyio.
- ``roost_async_broker``: an async fixture, a ``Broker`` in the test's own event loop.

The brokers of the first three run in a thread of their own, so those fixtures work in
plain tests and in async tests under any runner. See docs/testing.md.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from roost.broker import Broker
from roost.client import Client
from roost.testing.broker import RunningBroker, config_for_tests

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Generator, Iterator

    from roost.broker import BrokerConfig

# The attribute pytest-asyncio (1.x) marks its own async fixtures with.
_PYTEST_ASYNCIO_MARK = "_force_asyncio_fixture"


class BrokerFactory(Protocol):
    """``roost_broker_factory``: start a broker from a config, or from overrides of
    ``config_for_tests()``'s (``max_queued_messages=5``, ``listeners=[...]``)."""

    def __call__(self, config: BrokerConfig | None = None, **overrides: Any) -> RunningBroker: ...


@pytest.fixture
def roost_broker_factory() -> Iterator[BrokerFactory]:
    """Start brokers for one test: ``roost_broker_factory(max_queued_messages=5)``."""
    # An ExitStack: every broker is stopped, last first, even if stopping one fails.
    with contextlib.ExitStack() as started:

        def start(config: BrokerConfig | None = None, **overrides: Any) -> RunningBroker:
            if config is not None and overrides:
                raise TypeError("give a BrokerConfig or overrides of config_for_tests(), not both")
            chosen = config if config is not None else config_for_tests(**overrides)
            return started.enter_context(RunningBroker(chosen))

        yield start


@pytest.fixture
def roost_broker(roost_broker_factory: BrokerFactory) -> RunningBroker:
    """A broker for this test only: 127.0.0.1, port 0 (``roost_broker.port``), memory."""
    return roost_broker_factory()


@pytest.fixture(scope="session")
def roost_session_broker() -> Iterator[RunningBroker]:
    """One broker for every test of the session that asks for it."""
    with RunningBroker(config_for_tests()) as broker:
        yield broker


async def _roost_client(roost_broker: RunningBroker) -> AsyncIterator[Client]:
    """A Client connected to ``roost_broker`` (MQTT 5, clean start), disconnected after
    the test. For async tests under pytest-asyncio or anyio."""
    async with Client(roost_broker.host, roost_broker.port) as client:
        yield client


async def _roost_async_broker() -> AsyncIterator[Broker]:
    """A ``Broker`` in the test's own event loop (127.0.0.1, port 0, state in memory),
    stopped after the test: its state is read directly, no thread in between. For async
    tests under pytest-asyncio or anyio."""
    async with Broker(config_for_tests()) as broker:
        yield broker


# The async fixtures, each registered for the async plugin that is installed: pytest-
# asyncio, in its default strict mode, runs only the async fixtures it was told about;
# anyio runs any async fixture of a test of its own.
_ASYNC_FIXTURES = (_roost_client, _roost_async_broker)
roost_client: Any  # pytest's or pytest-asyncio's fixture definition
roost_async_broker: Any
try:
    import pytest_asyncio
except ImportError:  # anyio (or no async plugin): plain async fixtures
    roost_client = pytest.fixture(_roost_client, name="roost_client")
    roost_async_broker = pytest.fixture(_roost_async_broker, name="roost_async_broker")
else:
    roost_client = pytest_asyncio.fixture(_roost_client, name="roost_client")
    roost_async_broker = pytest_asyncio.fixture(_roost_async_broker, name="roost_async_broker")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, object, object]:
    # With both plugins installed, pytest-asyncio would run our async fixtures (marked
    # as its own above) in its loop even for an anyio test, whose loop is another. For such a
    # test the mark is lifted during this setup (this wrapper runs before both
    # plugins'), and anyio runs the fixture in the test's loop.
    func = fixturedef.func
    if not (
        func in _ASYNC_FIXTURES
        and "anyio_backend" in request.fixturenames
        and getattr(func, _PYTEST_ASYNCIO_MARK, False)
    ):
        return (yield)
    delattr(func, _PYTEST_ASYNCIO_MARK)
    try:
        return (yield)
    finally:
        setattr(func, _PYTEST_ASYNCIO_MARK, True)
