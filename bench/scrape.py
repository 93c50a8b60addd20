"""Does scraping /metrics cost the broker anything? fanout-q0 with and without a scrape
loop.

Each repetition runs the load benchmark's fanout-q0 scenario (``roost bench pubsub
--shape fanout -q 0``, the generator load.py uses) twice against a fresh Roost with
``[http]`` configured: once untouched, once while this process fetches ``/metrics``
every second, alternating which goes first. The table gives each run's delivered
messages per second, and the medians; the difference should be within the spread of
the runs without scraping (docs/performance.md, "HTTP metrics scraping").
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from bench import brokers, loadgen
from bench.scenarios import CLIENTS, CONNECT_TIMEOUT, DRAIN_TIMEOUT, Load
from roost.loadtest import procstats

HELP = "fanout-q0 throughput with and without a 1 s /metrics scrape loop"
SCRAPE_INTERVAL = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds of load per run (default 10)"
    )


class _Scraper(threading.Thread):
    def __init__(self, port: int) -> None:
        super().__init__(name="scraper", daemon=True)
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.done = threading.Event()
        self.scrapes = 0
        self.failures = 0
        self.seconds: list[float] = []

    def run(self) -> None:
        while not self.done.wait(SCRAPE_INTERVAL):
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:  # noqa: S310
                    response.read()
            except OSError:
                self.failures += 1
                continue
            self.seconds.append(time.perf_counter() - started)
            self.scrapes += 1


def _wait_for_http(port: int) -> None:
    """The HTTP server starts just after the MQTT listeners: wait until it answers."""
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        else:
            return


def _one(workdir: Path, tag: str, duration: float, scrape: bool) -> tuple[float, float | None, str]:
    http_port = brokers.free_port()
    spec = brokers.BrokerSpec(
        "roost-http", brokers.roost_executable(), "roost", ("[http]", f"port = {http_port}")
    )
    broker = brokers.start(spec, workdir, tag)
    scraper = _Scraper(http_port) if scrape else None
    try:
        _wait_for_http(http_port)
        if scraper is not None:
            scraper.start()
        generator = loadgen.find_generator(None)
        load = Load("fanout", CLIENTS, 0, duration)
        run = loadgen.run(
            generator,
            broker.port,
            load,
            broker.pid,
            CONNECT_TIMEOUT + duration + DRAIN_TIMEOUT + 30,
            tag,
        )
    finally:
        if scraper is not None:
            scraper.done.set()
            scraper.join()
        broker.stop()
    if run.result is None:
        raise RuntimeError(f"no RESULT line: {run.stderr}")
    rate = float(run.result.get("msgs_per_s", 0.0))
    cpu = run.result.get("broker_cpu_pct")
    # Broker CPU per delivered message: less sensitive than msg/s to the other processes
    # sharing the machine.
    cpu_us = float(cpu) / 100 / rate * 1e6 if isinstance(cpu, int | float) and rate else None
    note = ""
    if scraper is not None and scraper.seconds:
        median = statistics.median(scraper.seconds) * 1e3
        note = f"{scraper.scrapes} scrapes ({scraper.failures} failed), median {median:.1f} ms"
    return rate, cpu_us, note


def _cpu_per_scrape(workdir: Path, scrapes: int = 200) -> float:
    """Broker CPU milliseconds per /metrics scrape, on an idle broker (measured from
    /proc: the broker's CPU time before and after ``scrapes`` scrapes)."""
    http_port = brokers.free_port()
    spec = brokers.BrokerSpec(
        "roost-http", brokers.roost_executable(), "roost", ("[http]", f"port = {http_port}")
    )
    broker = brokers.start(spec, workdir, "cpu-per-scrape")
    try:
        _wait_for_http(http_port)
        before = procstats.cpu_ns(broker.pid)
        for _ in range(scrapes):
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics") as response:
                response.read()
        after = procstats.cpu_ns(broker.pid)
    finally:
        broker.stop()
    return (after - before) / scrapes / 1e6


def run(args: argparse.Namespace) -> int:
    rates: dict[bool, list[float]] = {False: [], True: []}
    costs: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="roost-scrape-") as tmp:
        workdir = Path(tmp)
        for rep in range(args.reps):
            order = (False, True) if rep % 2 == 0 else (True, False)
            for scrape in order:
                tag = f"r{rep}-{'scrape' if scrape else 'plain'}"
                rate, cpu_us, note = _one(workdir, tag, args.duration, scrape)
                rates[scrape].append(rate)
                if cpu_us is not None:
                    costs[scrape].append(cpu_us)
                label = "scrape 1 s" if scrape else "no scrape "
                cost = "?" if cpu_us is None else f"{cpu_us:.2f}"
                print(f"rep {rep} {label}: {rate:10.0f} msg/s, {cost} broker CPU µs/msg {note}")
    plain = statistics.median(rates[False])
    scraped = statistics.median(rates[True])
    spread = (max(rates[False]) - min(rates[False])) / plain * 100 if plain else 0.0
    print(
        f"median without scraping {plain:.0f} msg/s, with {scraped:.0f} msg/s "
        f"({(scraped - plain) / plain * 100:+.1f} %); spread without: {spread:.1f} %"
    )
    with tempfile.TemporaryDirectory(prefix="roost-scrape-") as tmp:
        per_scrape = _cpu_per_scrape(Path(tmp))
    print(
        f"one scrape costs the broker {per_scrape:.2f} ms of CPU (idle broker, 200 scrapes): "
        f"{per_scrape / 1e3 / SCRAPE_INTERVAL * 100:.3f} % of a core at one a second"
    )
    if costs[False] and costs[True]:
        plain_cost = statistics.median(costs[False])
        scraped_cost = statistics.median(costs[True])
        print(
            f"median broker CPU per message without {plain_cost:.2f} µs, with "
            f"{scraped_cost:.2f} µs ({(scraped_cost - plain_cost) / plain_cost * 100:+.1f} %); "
            f"range without {min(costs[False]):.2f}-{max(costs[False]):.2f} µs"
        )
    return 0
