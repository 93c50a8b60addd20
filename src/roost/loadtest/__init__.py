"""Roost's load generator (``roost bench``): multi-process, for any MQTT broker.

Clients are raw asyncio protocols on roost.codec (not the high-level roost.client),
spread over worker processes. Every payload carries a publisher id, a sequence number
and a send time, so loss, duplicates, reordering and end-to-end latency are counted per
message; the outcome ends in a ``RESULT key=value ...`` line in the spirit of mqttload's.

Modules: plan (settings, clients, dealing them to workers), connection (one client's
protocol), publisher (templates, windows, rates), stats (histogram, loss tracking),
worker (one process's share, phase by phase), runner (the processes and the phases),
result (RESULT line, status), retained (the retained catch-up scenario), procstats
(a broker's CPU and memory from /proc), shared (cross-process counters, uvloop).
"""

from roost.loadtest.plan import Settings
from roost.loadtest.procstats import raise_open_files_limit
from roost.loadtest.result import Outcome
from roost.loadtest.retained import run_retained
from roost.loadtest.runner import execute
from roost.loadtest.shared import loop_factory

__all__ = [
    "Outcome",
    "Settings",
    "execute",
    "loop_factory",
    "raise_open_files_limit",
    "run_retained",
]
