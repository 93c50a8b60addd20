"""Roost's pytest plugin as a project that only installed Roost sees it: fresh pytest
processes (``pytester``) running the sample suite and small test files; and the
helpers under it, directly."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from roost.broker import ListenerConfig
from roost.client import Client
from roost.codec import CodecError
from roost.testing import RunningBroker, config_for_tests, wait_for_message
from roost.testing.pytest_plugin import BrokerFactory

pytest_plugins = ["pytester"]

SAMPLE = Path(__file__).parent / "sample_app"
DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
SUBPROCESS_TIMEOUT = 60.0
INI = """\
[pytest]
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""


def test_the_plugin_is_registered_through_the_pytest11_entry_point() -> None:
    (plugin,) = [e for e in entry_points(group="pytest11") if e.name == "roost"]
    assert plugin.value == "roost.testing.pytest_plugin"


def test_the_sample_suite_passes_in_a_project_of_its_own(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    shutil.copytree(SAMPLE, pytester.path / "sample_app", ignore=shutil.ignore_patterns("*.pyc"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=SUBPROCESS_TIMEOUT)
    result.assert_outcomes(passed=9)
    # No conftest.py: the fixtures came from the entry point. And no broker kept state.
    assert [p for p in pytester.path.rglob("*") if p.name in ("roost-data", "roost.db")] == []


def test_the_example_in_docs_testing_md_passes(pytester: pytest.Pytester) -> None:
    blocks = re.findall(r"```python\n# (\S+\.py)\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert [name for name, _code in blocks] == ["app.py", "test_app.py"]
    pytester.makeini(INI)
    for name, code in blocks:
        (pytester.path / name).write_text(code, encoding="utf-8")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=SUBPROCESS_TIMEOUT)
    result.assert_outcomes(passed=3)


def test_plain_tests_need_no_async_plugin(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nfilterwarnings = error\n")
    pytester.makepyfile(
        """
        from roost.broker import ListenerConfig

        PORTS = []

        def test_factory_and_ports(roost_broker_factory):
            broker = roost_broker_factory(
                listeners=[ListenerConfig(port=0), ListenerConfig(port=0, type="ws", name="web")]
            )
            assert broker.ports.by_name("web") == broker.ports[1] != broker.port
            with broker.watch("a/#") as watcher:
                assert broker.publish("a/b", "hi", qos=1) == 1
                message = watcher.get()
            assert (message.topic, message.payload, message.qos) == ("a/b", b"hi", 1)

        def test_session_one(roost_session_broker):
            PORTS.append(roost_session_broker.port)

        def test_session_two(roost_session_broker):
            PORTS.append(roost_session_broker.port)
            assert PORTS[0] == PORTS[1]

        def test_a_fresh_broker_per_test_one(roost_broker):
            roost_broker.publish("kept", "1", retain=True)

        def test_a_fresh_broker_per_test_two(roost_broker):
            with roost_broker.watch("#") as watcher:
                roost_broker.publish("probe", "")
                assert watcher.get().topic == "probe"  # no retained "kept" before it
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:asyncio", "-p", "no:anyio", "-p", "no:cacheprovider", timeout=SUBPROCESS_TIMEOUT
    )
    result.assert_outcomes(passed=5)


# --- the helpers, directly --------------------------------------------------------------


def test_a_watcher_that_gets_nothing_says_so(roost_broker: RunningBroker) -> None:
    with (
        roost_broker.watch("quiet/#") as watcher,
        pytest.raises(TimeoutError, match=r"^no message on quiet/# within 0.05 s$"),
    ):
        watcher.get(timeout=0.05)


def test_wait_for_message_says_what_it_waited_for(roost_broker: RunningBroker) -> None:
    async def main() -> None:
        async with Client(roost_broker.host, roost_broker.port) as client:
            with pytest.raises(TimeoutError, match=r"^no message on x/\+ within 0.05 s$"):
                await wait_for_message(client, "x/+", timeout=0.05)

    asyncio.run(main())


def test_wait_for_message_takes_one_that_came_before_the_call(
    roost_broker: RunningBroker,
) -> None:
    async def main() -> None:
        async with Client(roost_broker.host, roost_broker.port) as client:
            await client.subscribe("early", qos=1)
            await client.publish("early", "first", qos=1)
            await client.publish("early", "second", qos=1)
            assert (await wait_for_message(client, "early")).text == "first"
            assert (await wait_for_message(client, "early")).text == "second"

    asyncio.run(main())


def test_broker_side_publish_checks_its_arguments(roost_broker: RunningBroker) -> None:
    with pytest.raises(CodecError):
        roost_broker.publish("a/+", "wildcards are for filters")
    with pytest.raises(ValueError, match="qos must be 0, 1 or 2, not 3"):
        roost_broker.publish("a", "", qos=3)


def test_broker_side_publish_keeps_and_deletes_retained_messages(
    roost_broker: RunningBroker,
) -> None:
    def retained() -> int:
        return roost_broker.call(lambda: roost_broker.broker.router.retained_count)

    assert roost_broker.publish("r", "kept", retain=True) == 0  # no subscriber yet
    assert retained() == 1
    roost_broker.publish("r", "", retain=True)
    assert retained() == 0


def test_a_broker_that_cannot_start_says_why() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = RunningBroker(config_for_tests(listeners=[ListenerConfig(port=port)]))
        with pytest.raises(OSError, match="address already in use"):
            broker.start()


def test_the_factory_takes_a_config_or_overrides_not_both(
    roost_broker_factory: BrokerFactory,
) -> None:
    with pytest.raises(TypeError, match="not both"):
        roost_broker_factory(config_for_tests(), maximum_qos=1)
    assert roost_broker_factory(config_for_tests(maximum_qos=1)).config.maximum_qos == 1


def test_ports_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        _ = RunningBroker().ports
