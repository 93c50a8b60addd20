"""The main process of a load run: start the workers, step them through the phases,
sample the broker, add everything up.

Phases: every worker connects its clients and reports; for ``conn`` the connections
are then held (keep-alive pings run in the workers) and the broker's memory is
sampled; the publishers run (``conn``: one verifier sends one message to each
connection's topic); the workers wait for their subscribers to receive everything that
was sent to their topics; the workers disconnect and exit.

Worker processes are started with ``spawn``, so the tool can be used from a process
that already runs threads (a test with a broker in a thread, for instance).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from typing import TypeVar

from roost.loadtest import procstats
from roost.loadtest.plan import Settings, build_clients, deal, with_processes
from roost.loadtest.result import Outcome, Totals, summarize
from roost.loadtest.shared import shared_counters
from roost.loadtest.worker import (
    ConnectReport,
    DrainReport,
    PublishReport,
    StatusReport,
    worker_main,
)

STOP_TIMEOUT = 10.0
T = TypeVar("T")


class WorkerFailed(Exception):
    """A worker process died or stopped answering."""


class Workers:
    """The worker processes and one pipe to each."""

    def __init__(self, settings: Settings) -> None:
        clients = build_clients(settings)
        self.settings = settings = with_processes(settings, len(clients))
        self.clients = clients
        shares = deal(clients, settings.processes)
        ranks = {
            verify: {
                c.index: rank
                for rank, c in enumerate(c for c in clients if c.publishes and c.verify == verify)
            }
            for verify in (False, True)
        }
        shared = shared_counters(len(clients))
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes: list[SpawnProcess] = []
        for share in shares:
            parent, child = context.Pipe()
            process = context.Process(
                target=worker_main,
                args=(settings, share, ranks, child, shared),
                name="roost-bench-worker",
                daemon=True,
            )
            process.start()
            child.close()
            self.pipes.append(parent)
            self.processes.append(process)

    def receive(self, kind: type[T], timeout: float | None) -> list[T]:
        """One answer from every worker, in worker order."""
        answers: dict[int, T] = {}
        deadline = None if timeout is None else time.monotonic() + timeout
        while len(answers) < len(self.pipes):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise WorkerFailed(f"no answer from the workers in {timeout:g} s")
            waiting = [p for i, p in enumerate(self.pipes) if i not in answers]
            sentinels = [proc.sentinel for i, proc in enumerate(self.processes) if i not in answers]
            ready = multiprocessing.connection.wait([*waiting, *sentinels], left)
            for i, pipe in enumerate(self.pipes):
                if i in answers:
                    continue
                if pipe in ready:
                    answer = pipe.recv()
                    if isinstance(answer, tuple) and answer and answer[0] == "error":
                        raise WorkerFailed(f"worker {i}: {answer[1]}")
                    if not isinstance(answer, kind):
                        raise WorkerFailed(f"worker {i}: unexpected answer {answer!r}")
                    answers[i] = answer
                elif self.processes[i].sentinel in ready and not pipe.poll():
                    code = self.processes[i].exitcode
                    raise WorkerFailed(f"worker {i} exited with status {code}")
        return [answers[i] for i in range(len(self.pipes))]

    def send(self, *command: object) -> None:
        for pipe in self.pipes:
            pipe.send(command)

    def ask(self, kind: type[T], timeout: float | None, *command: object) -> list[T]:
        self.send(*command)
        return self.receive(kind, timeout)

    def stop(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(("stop",))
            except OSError:
                continue
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in self.processes:
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        for pipe in self.pipes:
            pipe.close()


def _merge_publish(reports: list[PublishReport]) -> PublishReport:
    total = PublishReport()
    for report in reports:
        total.sent += report.sent
        total.acked += report.acked
        total.unacked += report.unacked
        if report.first_ns and (not total.first_ns or report.first_ns < total.first_ns):
            total.first_ns = report.first_ns
        total.last_ns = max(total.last_ns, report.last_ns)
        for topic, sent in report.sent_by_topic.items():
            total.sent_by_topic[topic] = total.sent_by_topic.get(topic, 0) + sent
        total.send_lag.merge(report.send_lag)
    return total


def _merge_status(reports: list[StatusReport]) -> StatusReport:
    return StatusReport(
        alive=sum(r.alive for r in reports),
        pings=sum(r.pings for r in reports),
        pongs=sum(r.pongs for r in reports),
        ping_timeouts=sum(r.ping_timeouts for r in reports),
    )


def _merge_connect(reports: list[ConnectReport]) -> ConnectReport:
    total = ConnectReport()
    for report in reports:
        total.connected += report.connected
        total.failed += report.failed
        total.subscriptions += report.subscriptions
        total.refused_subscriptions += report.refused_subscriptions
        starts = [t for t in (total.first_ns, report.first_ns) if t]
        total.first_ns = min(starts) if starts else 0
        total.last_ns = max(total.last_ns, report.last_ns)
        total.connack.merge(report.connack)
        total.cpu_s += report.cpu_s
        total.errors += report.errors
    return total


def _connect_wait(settings: Settings, clients: int) -> float:
    # Generous: every client may take the whole connect timeout, conn_parallel at a time.
    rounds = -(-clients // max(1, settings.conn_parallel))
    return settings.connect_timeout * max(2, rounds) + 60


def execute(
    settings: Settings,
    broker_pid: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Outcome:
    """Run one load scenario to the end and return its outcome (never raises for load)."""
    note = progress or (lambda _text: None)
    started = time.monotonic()
    totals = Totals(settings, 0)
    totals.broker_start = procstats.sample(broker_pid)
    workers: Workers | None = None
    try:
        workers = Workers(settings)
        settings = totals.settings = workers.settings
        totals.clients = len(workers.clients)
        note(f"{totals.clients} clients in {settings.processes} worker process(es): connecting")
        totals.connect = _merge_connect(
            workers.receive(ConnectReport, _connect_wait(settings, totals.clients))
        )
        totals.broker_connected = procstats.sample(broker_pid)
        if totals.connect.first_ns and totals.connect.last_ns:
            connect_s = (totals.connect.last_ns - totals.connect.first_ns) / 1e9
            totals.broker_connect_cpu_pct = procstats.cpu_pct(
                totals.broker_start, totals.broker_connected, connect_s
            )
        note(f"{totals.connect.connected} connected, {totals.connect.failed} failed")
        if totals.connect.connected:  # with no client there is nothing to measure
            _run_phases(workers, totals, broker_pid, note)
    except WorkerFailed as exc:
        totals.aborted = str(exc)
    except KeyboardInterrupt:
        totals.aborted = "interrupted"
    finally:
        if workers is not None:
            workers.stop()
    return summarize(totals, time.monotonic() - started)


def _run_phases(
    workers: Workers,
    totals: Totals,
    broker_pid: int | None,
    note: Callable[[str], None],
) -> None:
    settings = totals.settings
    if settings.hold:
        note(f"holding the connections for {settings.hold:g} s")
        time.sleep(settings.hold)
        totals.broker_held = procstats.sample(broker_pid)
        totals.status = _merge_status(workers.ask(StatusReport, 30, "status"))
    totals.broker_before = procstats.sample(broker_pid)
    window_start = time.monotonic()
    begin = time.monotonic() + 0.05  # every worker starts its publishers at the same moment
    if settings.scenario != "conn":
        publish_timeout = (settings.duration or 0) + _count_wait(settings)
        totals.publish = _merge_publish(
            workers.ask(PublishReport, publish_timeout, "publish", False, begin)
        )
        if settings.scenario == "sub":
            time.sleep(max(0.0, settings.duration - (time.monotonic() - window_start)))
    else:
        totals.publish = _merge_publish(
            workers.ask(PublishReport, _count_wait(settings), "publish", True, begin)
        )
    sent = totals.publish.sent_by_topic
    drains = workers.ask(
        DrainReport, settings.drain_timeout + 60, "drain", sent, settings.drain_timeout
    )
    totals.window_s = time.monotonic() - window_start
    totals.broker_after = procstats.sample(broker_pid)
    for drain in drains:
        totals.counts.merge(drain.counts)
        totals.expected += drain.expected
        totals.gen_cpu_s += drain.cpu_s
    totals.final_status = _merge_status([d.status for d in drains])


def _count_wait(settings: Settings) -> float:
    # Publishing by count: a floor of 1000 messages per second, plus a minute.
    return (settings.count or settings.clients) / 1000 + 60
