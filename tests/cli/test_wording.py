"""What the tools say when the server says no: each thing once, and the right thing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from roost.client import Client, ServerDisconnected
from tests.cli.helpers import roost, roost_sub
from tests.support.broker_thread import BrokerThread
from tests.support.mosquitto import make_password_file


@pytest.mark.parametrize("version", ["mqttv5", "mqttv311"])
async def test_refused_logins_are_worded_once_and_to_the_point(
    make_broker: Callable[..., BrokerThread], tmp_path: Path, version: str
) -> None:
    passwords = make_password_file(tmp_path, {"bob": "right"})
    broker = make_broker(password_file=str(passwords), allow_anonymous=False)
    publish = ("-V", version, "-t", "x", "-m", "y")
    wrong = await roost("pub", broker.port, "-u", "bob", "-P", "wrong", *publish)
    assert wrong.returncode == 4, wrong.stderr
    assert wrong.stderr.lower().count("bad username or password") == 1, wrong.stderr
    anonymous = await roost("pub", broker.port, *publish)
    assert anonymous.returncode == 4, anonymous.stderr
    assert "check the user name and password" not in anonymous.stderr
    assert "anonymous" in anonymous.stderr
    assert "-u" in anonymous.stderr


async def test_a_refused_filter_is_named(make_broker: Callable[..., BrokerThread]) -> None:
    broker = make_broker(allow_anonymous=True, max_topic_levels=2)
    some = await roost("sub", broker.port, "-t", "fine/topic", "-t", "a/b/c/d", "-E")
    assert some.returncode == 0, some.stderr
    assert "'a/b/c/d'" in some.stderr
    assert "fine/topic" not in some.stderr
    assert "topic filter invalid [0x8F]" in some.stderr
    every = await roost("sub", broker.port, "-V", "mqttv311", "-t", "a/b/c/d", "-t", "e/f/g")
    assert every.returncode == 1, every.stderr
    assert "'a/b/c/d'" in every.stderr
    assert "'e/f/g'" in every.stderr


async def test_a_server_shutdown_is_logged_once(
    make_broker: Callable[..., BrokerThread], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="roost.client")
    broker = make_broker(allow_anonymous=True)
    async with Client("127.0.0.1", broker.port) as client:
        stream = client.messages()
        await asyncio.to_thread(broker.stop)  # DISCONNECT 0x8B, then the close
        with pytest.raises(ServerDisconnected):
            async with asyncio.timeout(5):
                await anext(stream)
    lines = [r.getMessage() for r in caplog.records if r.name == "roost.client"]
    assert sum("0x8B" in line for line in lines) == 1, lines


async def test_the_tool_reports_a_server_shutdown_once(
    make_broker: Callable[..., BrokerThread],
) -> None:
    broker = make_broker(allow_anonymous=True)
    async with roost_sub(broker.port, "-t", "x") as sub:
        await asyncio.to_thread(broker.stop)
        result = await sub.finish()
    assert result.returncode == 7
    # With -d (which roost_sub uses to see the SUBACK): the packet trace, one log
    # line for the loss, and the tool's own error as its last line.
    logged = result.stderr.splitlines()[:-1]
    assert sum("0x8B" in line for line in logged) == 1, result.stderr
    assert "0x8B" in result.stderr.splitlines()[-1]
