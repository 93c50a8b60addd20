"""`roost bench` end to end: short runs against a real Roost broker and a real Mosquitto.

Each run is small (a few hundred to a few thousand messages, well under a second of
publishing); the checks are on the counts, which must be exact: every message sent is
received once, acknowledgements match, and the RESULT line says so.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from roost.loadtest import Settings, execute, loop_factory, run_retained
from roost.loadtest.connection import open_connection
from roost.loadtest.plan import Shape
from roost.loadtest.result import Outcome
from roost.loadtest.stats import SubscriberCounts, Tracker
from tests.loadtest.lossy_broker import LossyBroker
from tests.support.broker_thread import BrokerThread
from tests.support.mosquitto import Mosquitto

MakeBroker = Callable[..., BrokerThread]


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path).start()
    yield broker
    broker.stop()


def _exact(outcome: Outcome, expected: int) -> None:
    fields = outcome.fields
    assert outcome.status == "ok", (outcome.summary, outcome.errors)
    assert fields["expected"] == expected
    assert fields["unique"] == expected
    assert fields["received"] == expected
    assert fields["lost"] == fields["dup"] == fields["invalid"] == 0


@pytest.mark.parametrize(
    ("shape", "qos", "processes"),
    [("pairs", 0, 1), ("fanin", 1, 2), ("fanout", 2, 1), ("pairs", 2, 2)],
)
def test_pubsub_against_roost_counts_every_message(
    make_broker: MakeBroker, shape: Shape, qos: int, processes: int
) -> None:
    broker = make_broker()
    settings = Settings(
        "pubsub", port=broker.port, shape=shape, qos=qos, clients=4, count=800,
        duration=0, processes=processes,
    )  # fmt: skip
    outcome = execute(settings)
    per_message = 4 if shape == "fanout" else 1  # fanout: each message reaches 4 subscribers
    _exact(outcome, 800 * per_message)
    assert outcome.fields["sent"] == 800
    assert outcome.fields["acked"] == (800 if qos else 0)
    assert outcome.fields["processes"] == processes
    assert isinstance(outcome.fields["msgs_per_s"], float)
    assert outcome.result_line().startswith("RESULT generator=roost-bench ")


def test_timed_mqtt5_run_with_a_rate_against_roost(make_broker: MakeBroker) -> None:
    broker = make_broker()
    settings = Settings(
        "pubsub", port=broker.port, version=5, shape="pairs", qos=1, clients=2,
        duration=0.5, rate=400,
    )  # fmt: skip
    outcome = execute(settings)
    sent = outcome.fields["sent"]
    assert isinstance(sent, int)
    assert 150 <= sent <= 210  # 400 msg/s for 0.5 s, give or take a timer tick
    _exact(outcome, sent)
    assert outcome.fields["send_lag_p50_us"] != "NA"


def test_conn_holds_connections_with_pings_over_two_processes(make_broker: MakeBroker) -> None:
    broker = make_broker()
    settings = Settings(
        "conn", port=broker.port, clients=60, keepalive=1, hold=1.6, processes=2,
        sources=("127.0.0.1", "127.0.0.2"),
    )  # fmt: skip
    outcome = execute(settings, broker_pid=None)
    fields = outcome.fields
    _exact(outcome, 60)
    assert fields["connected"] == fields["alive"] == 61  # and the verifier
    assert isinstance(fields["pings"], int)
    assert fields["pings"] >= 61  # every connection pinged at least once during the hold
    assert fields["ping_timeouts"] == 0
    assert fields["conn_per_s"] != "NA"


def test_extra_subscriptions_are_held_and_match_nothing(make_broker: MakeBroker) -> None:
    broker = make_broker()
    settings = Settings(
        "pubsub", port=broker.port, shape="fanin", qos=0, clients=3, count=300,
        duration=0, extra_subscriptions=1500, extra_clients=2,
    )  # fmt: skip
    outcome = execute(settings)
    _exact(outcome, 300)
    assert outcome.fields["subscriptions"] == 1 + 1500


def test_loss_and_duplicates_are_counted_exactly() -> None:
    """Against a broker that drops every 50th and doubles every 70th message."""
    broker = LossyBroker(drop_every=50, dup_every=70).start()
    try:
        settings = Settings(
            "pubsub", port=broker.port, shape="pairs", qos=0, clients=2, count=3500,
            duration=0, drain_timeout=0.5, processes=2,
        )  # fmt: skip
        outcome = execute(settings)
    finally:
        broker.stop()
    assert broker.dropped == 70
    assert broker.duplicated == 50 - 10  # multiples of 350 are dropped, not doubled
    fields = outcome.fields
    assert fields["expected"] == 3500
    assert fields["lost"] == 70
    assert fields["dup"] == 40
    assert fields["unique"] == 3430
    assert outcome.status == "LOSS_QOS0"
    assert outcome.exit_code == 2


def test_pubsub_and_conn_against_mosquitto(mosquitto: Mosquitto) -> None:
    settings = Settings(
        "pubsub", port=mosquitto.port, shape="pairs", qos=1, clients=3, count=600,
        duration=0, processes=2,
    )  # fmt: skip
    _exact(execute(settings), 600)
    conn = Settings("conn", port=mosquitto.port, clients=40, hold=0.2, qos=1)
    _exact(execute(conn), 40)


def test_retained_catch_up_against_mosquitto_and_roost(
    mosquitto: Mosquitto, make_broker: MakeBroker
) -> None:
    for port in (mosquitto.port, make_broker().port):
        settings = Settings("pubsub", port=port, qos=0, drain_timeout=2.0)
        with asyncio.Runner(loop_factory=loop_factory(True)) as runner:
            outcome = runner.run(run_retained(settings, 300, None, keep=False))
            assert outcome.status == "ok", outcome.summary
            assert outcome.fields["unique"] == 300
            assert outcome.fields["dup"] == 0
            # Cleared at the end: a new subscriber to the same prefix gets nothing.
            again = runner.run(run_retained_leftovers(settings))
        assert again == 0


async def run_retained_leftovers(settings: Settings) -> int:
    """How many retained messages a new subscriber to the run's prefix gets in 0.3 s."""
    conn = await open_connection(
        "127.0.0.1", settings.port, "leftovers", version=4, keepalive=60, timeout=5
    )
    counts = SubscriberCounts()
    conn.tracker = Tracker(counts, None)
    await conn.subscribe(1, [f"{settings.prefix}/retained/#"], 0, 5)
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    conn.disconnect()
    return counts.received


def test_roost_bench_command_prints_a_result_line(make_broker: MakeBroker) -> None:
    broker = make_broker()
    command = [
        sys.executable, "-m", "roost", "bench", "pubsub", "-p", str(broker.port),
        "--shape", "fanout", "-c", "3", "-q", "1", "-m", "300", "-j", "2", "--quiet",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    result = done.stdout.splitlines()[-1]
    assert result.startswith("RESULT generator=roost-bench scenario=fanout ")
    assert " expected=900 unique=900 " in result
    assert result.endswith(" status=ok")


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "roost", "bench", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def _result_fields(stdout: str) -> dict[str, str]:
    line = stdout.splitlines()[-1]
    assert line.startswith("RESULT ")
    return dict(item.split("=", 1) for item in line.split()[1:])


@pytest.mark.parametrize(
    "scenario", [("conn", "-c", "3", "--hold", "0"), ("pubsub", "-c", "2", "-m", "10")]
)
def test_nothing_listening_is_a_clear_failure(scenario: tuple[str, ...]) -> None:
    with socket.socket() as placeholder:  # a port where nothing listens
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
        done = _bench(*scenario, "-p", str(port))
    assert done.returncode == 3, done.stderr
    fields = _result_fields(done.stdout)
    assert fields["status"] == "CONN_FAILED"
    assert fields["connected"] == "0"
    assert fields["connect_secs"] == "NA"  # not a negative time
    assert f"no client could connect to 127.0.0.1:{port}" in done.stderr
    assert "connection refused" in done.stderr
    assert "Error(" not in done.stderr  # no exception reprs
    assert "Connect call failed" not in done.stderr


def test_an_unknown_host_is_named() -> None:
    done = _bench("conn", "-c", "1", "--hold", "0", "-h", "no-such-host.invalid")
    assert done.returncode == 3, done.stderr
    assert "unknown host" in done.stderr
    assert "gaierror" not in done.stderr


def test_a_refused_connect_names_the_reason(make_broker: MakeBroker) -> None:
    broker = make_broker(allow_anonymous=False)
    done = _bench("conn", "-c", "1", "--hold", "0", "-p", str(broker.port))
    assert done.returncode == 3, done.stderr
    assert "connection refused: not authorized [0x05] (CONNACK)" in done.stderr


def test_pub_reports_what_it_sent(make_broker: MakeBroker) -> None:
    broker = make_broker()
    done = _bench("pub", "-p", str(broker.port), "-c", "2", "-m", "500", "-q", "1", "--quiet")
    assert done.returncode == 0, done.stderr
    fields = _result_fields(done.stdout)
    assert fields["sent"] == "500"
    summary = done.stdout.splitlines()[-2]
    assert summary.startswith("pub qos1: 500 msgs sent in ")
    assert "500 acknowledged" in summary


def test_usage_errors_exit_2_with_the_scenarios_usage() -> None:
    done = _bench("pub", "-s", "8")
    assert done.returncode == 2
    assert done.stderr.startswith("usage: roost bench pub ")
    assert "at least 16" in done.stderr


def test_timed_pub_summary_agrees_with_its_result_line(make_broker: MakeBroker) -> None:
    broker = make_broker()
    done = _bench("pub", "-p", str(broker.port), "-c", "2", "-d", "0.3", "--quiet")
    assert done.returncode == 0, done.stderr
    sent = _result_fields(done.stdout)["sent"]
    assert int(sent) > 0
    summary = done.stdout.splitlines()[-2]
    assert summary.startswith(f"pub qos0: {sent} msgs sent in "), summary
    assert "acknowledged" not in summary  # QoS 0 has no acknowledgements
