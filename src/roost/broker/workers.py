"""``roost broker --workers N``: a supervisor process and N worker processes.

Each worker is an ordinary broker and a cluster node (``worker_plan.py`` says what
each is given); the supervisor runs no event loop and serves no client. It:

1. reserves every listener's port (``worker_plan.PortReservation``);
2. starts a private nats-server (``private_nats.py``) unless the configuration has
   ``[cluster]``, and waits until it accepts connections;
3. forks the workers (a fork, not a new interpreter: the configuration it read, flags
   included, is the one they run), each binding the listeners with ``SO_REUSEPORT`` so
   the kernel spreads new connections over them, and waits for each to say it is
   running (a byte on a pipe); a worker that ends before that at the first start stops
   everything, and the supervisor exits with status 1;
4. restarts a worker that ends (kill -9 included), after 0.5 s, doubling up to 30 s
   while it keeps ending within 10 s of its start, so a crash loop does not spin; the
   private nats-server is restarted the same way, on its port and store;
5. on SIGTERM or SIGINT stops the workers (SIGTERM, SIGKILL after 30 s), then the
   private nats-server, and exits 0; SIGHUP is passed on to the workers (reload).

Workers die with the supervisor (Linux ``PR_SET_PDEATHSIG``), so a supervisor that is
itself killed leaves no broker behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from roost.broker.private_nats import PrivateNats, die_with_parent
from roost.broker.worker_plan import PortReservation, worker_config

if TYPE_CHECKING:
    from roost.broker.config import BrokerConfig

log = logging.getLogger("roost.broker")

# Runs one worker's broker until it is stopped: (its config, call when running) -> exit status.
RunWorker = Callable[["BrokerConfig", Callable[[], None]], int]

BACKOFF_FIRST = 0.5  # seconds before restarting a process that ended
BACKOFF_MAX = 30.0
STABLE_AFTER = 10.0  # a process that ran this long before ending restarts at BACKOFF_FIRST
STOP_TIMEOUT = 30.0  # seconds workers have to stop after SIGTERM


@dataclass(slots=True)
class Worker:
    index: int
    config: BrokerConfig
    pid: int = 0  # 0: not running
    started_at: float = 0.0
    ready: bool = False
    ready_fd: int = -1  # read end of the pipe the worker writes one byte to when running
    failures: int = 0  # ends in a row that came soon after a start
    restart_at: float | None = None


@dataclass(slots=True)
class _Restarts:
    """Backoff for the private nats-server."""

    failures: int = 0
    at: float | None = None
    started_at: float = 0.0


def backoff(failures: int) -> float:
    """Seconds to wait before a restart after ``failures`` quick ends in a row (1, 2...)."""
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2.0 ** max(failures - 1, 0))


class Supervisor:
    def __init__(self, config: BrokerConfig, count: int, run_worker: RunWorker) -> None:
        self.config = config
        self.count = count
        self._run_worker = run_worker
        self.workers: list[Worker] = []
        self.nats: PrivateNats | None = None
        self._nats_restarts = _Restarts()
        self._ports = PortReservation()
        self._stopping = False
        self._stop_signal = ""  # the signal that asked to stop, for the log
        self._passed_on = 0  # SIGHUPs passed on to the workers and not yet logged
        self._wake_r, self._wake_w = os.pipe()
        self._pid = os.getpid()

    def run(self) -> int:
        """Supervise until SIGTERM/SIGINT: 0, or 1 when the workers could not start."""
        self._install_signals()
        try:
            return self._run()
        finally:
            self._stop_all()
            self._ports.close()
            signal.set_wakeup_fd(-1)
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _run(self) -> int:
        # Ports first: a port another program holds stops the start before anything runs.
        listeners = self._ports.reserve(self.config.listeners)
        urls: list[str] | None = None
        if self.config.cluster is None:
            data_dir = Path(self.config.data_dir or "roost-data")
            self.nats = PrivateNats(data_dir / "nats")
            self.nats.start()
            self._nats_restarts.started_at = time.monotonic()
            urls = [self.nats.url]
        base = self.config
        base.listeners = listeners
        log.info(
            "Supervisor (pid %d): starting %d workers on %s.",
            os.getpid(),
            self.count,
            ", ".join(f"{lc.type} {lc.host}:{lc.port}" for lc in listeners),
        )
        self.workers = [Worker(i, worker_config(base, i, urls)) for i in range(self.count)]
        for worker in self.workers:
            self._start(worker)
        while not self._stopping and not all(worker.ready for worker in self.workers):
            self._wait(1.0)
            for worker in self.workers:
                status = self._reap(worker)
                if status is not None:
                    log.error(
                        "Worker %d could not start (%s): stopping.",
                        worker.index,
                        _describe(status),
                    )
                    return 1
        if self._stopping:
            return 0
        log.info("All %d workers running.", self.count)
        while not self._stopping:
            self._wait(self._next_timeout())
            if self._passed_on:
                self._passed_on = 0
                log.info("Supervisor: SIGHUP passed on to the workers.")
            now = time.monotonic()
            for worker in self.workers:
                status = self._reap(worker)
                if status is not None:
                    self._schedule_restart(worker, status, now)
                if worker.restart_at is not None and worker.restart_at <= now:
                    worker.restart_at = None
                    self._start(worker)
            self._watch_nats(now)
        return 0

    # Workers.

    def _start(self, worker: Worker) -> None:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            os.close(read_fd)
            self._become_worker(worker, write_fd)  # never returns
        os.close(write_fd)
        worker.pid = pid
        worker.ready = False
        worker.ready_fd = read_fd
        worker.started_at = time.monotonic()
        log.info("Worker %d (pid %d) started as node %s.", worker.index, pid, _node(worker))

    def _become_worker(self, worker: Worker, ready_fd: int) -> None:
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                signal.signal(signum, signal.SIG_DFL)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the broker handles it
            os.close(self._wake_r)
            os.close(self._wake_w)
            for other in self.workers:
                if other.ready_fd != -1:
                    os.close(other.ready_fd)
            self._ports.close()
            die_with_parent(self._pid)
            _prefix_log(f"[w{worker.index}] ")

            def ready() -> None:
                os.write(ready_fd, b"r")
                os.close(ready_fd)

            code = self._run_worker(worker.config, ready)
        except BaseException:  # noqa: BLE001  (the child must end here, whatever happened)
            traceback.print_exc()
        finally:
            logging.shutdown()
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)

    def _reap(self, worker: Worker) -> int | None:
        """The worker's wait status if it has ended (and forget its pid), else None."""
        if worker.pid == 0:
            return None
        try:
            pid, status = os.waitpid(worker.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = worker.pid, 0
        if pid == 0:
            return None
        worker.pid = 0
        if worker.ready_fd != -1:
            os.close(worker.ready_fd)
            worker.ready_fd = -1
        return status

    def _schedule_restart(self, worker: Worker, status: int, now: float) -> None:
        ran = now - worker.started_at
        worker.failures = 1 if worker.ready and ran >= STABLE_AFTER else worker.failures + 1
        delay = backoff(worker.failures)
        worker.restart_at = now + delay
        log.warning(
            "Worker %d (node %s) ended (%s) after %.1f s: restarting in %g s.",
            worker.index,
            _node(worker),
            _describe(status),
            ran,
            delay,
        )

    def _on_ready(self, fd: int) -> None:
        for worker in self.workers:
            if worker.ready_fd == fd:
                said = os.read(fd, 1)  # b"r", or b"" if it ended first: _reap sees that
                os.close(fd)
                worker.ready_fd = -1
                if said == b"r":
                    worker.ready = True
                    log.info("Worker %d (pid %d) is running.", worker.index, worker.pid)

    def _stop_all(self) -> None:
        if self._stop_signal:
            log.info("Supervisor: %s received, stopping.", self._stop_signal)
        running = [worker for worker in self.workers if worker.pid != 0]
        if running:
            log.info("Stopping %d workers.", len(running))
        for worker in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(worker.pid != 0 for worker in running):
            for worker in running:
                status = self._reap(worker)
                if status is not None:
                    log.info("Worker %d stopped (%s).", worker.index, _describe(status))
            if time.monotonic() > deadline:
                for worker in running:
                    if worker.pid != 0:
                        log.warning("Worker %d did not stop in time: killed.", worker.index)
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(worker.pid, signal.SIGKILL)
                        os.waitpid(worker.pid, 0)
                        worker.pid = 0
            time.sleep(0.02)
        # After the workers: they publish their clients' wills through it while stopping.
        if self.nats is not None:
            self.nats.stop()

    # The private nats-server.

    def _watch_nats(self, now: float) -> None:
        nats, restarts = self.nats, self._nats_restarts
        if nats is None:
            return
        if restarts.at is None:
            status = nats.exited()
            if status is None:
                return
            ran = now - restarts.started_at
            restarts.failures = 1 if ran >= STABLE_AFTER else restarts.failures + 1
            delay = backoff(restarts.failures)
            restarts.at = now + delay
            log.warning(
                "Private nats-server ended (status %d) after %.1f s: restarting in %g s.",
                status,
                ran,
                delay,
            )
        elif restarts.at <= now:
            restarts.at = None
            restarts.started_at = now
            try:
                nats.start()
            except OSError as exc:
                log.error("Private nats-server did not restart: %s.", exc)  # noqa: TRY400

    # Waiting and signals.

    def _next_timeout(self) -> float:
        times = [worker.restart_at for worker in self.workers if worker.restart_at is not None]
        if self.nats is not None and self._nats_restarts.at is not None:
            times.append(self._nats_restarts.at)
        if not times:
            return 1.0
        return max(0.0, min(min(times) - time.monotonic(), 1.0))

    def _wait(self, timeout: float) -> None:
        fds = [self._wake_r] + [w.ready_fd for w in self.workers if w.ready_fd != -1]
        readable, _, _ = select.select(fds, [], [], timeout)
        for fd in readable:
            if fd == self._wake_r:
                os.read(fd, 512)  # signals were handled already; this only woke us
            else:
                self._on_ready(fd)

    def _install_signals(self) -> None:
        os.set_blocking(self._wake_w, False)
        signal.set_wakeup_fd(self._wake_w)

        # The handlers only note and pass on: logging from a handler could interrupt a
        # log record being written by the main code.
        def stop(signum: int, frame: object) -> None:
            self._stop_signal = self._stop_signal or signal.Signals(signum).name
            self._stopping = True

        def reload(signum: int, frame: object) -> None:
            self._passed_on += 1
            for worker in self.workers:
                if worker.pid != 0:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(worker.pid, signal.SIGHUP)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes the select


def _node(worker: Worker) -> str:
    cluster = worker.config.cluster
    return cluster.node or "" if cluster is not None else ""


def _describe(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


def _prefix_log(prefix: str) -> None:
    """Begin every log record of this process with ``prefix``: the workers share the
    supervisor's log destination, and a reader must tell them apart."""
    make = logging.getLogRecordFactory()

    def record(*args: object, **kwargs: object) -> logging.LogRecord:
        made = make(*args, **kwargs)
        if isinstance(made.msg, str):
            made.msg = prefix + made.msg
        return made

    logging.setLogRecordFactory(record)
