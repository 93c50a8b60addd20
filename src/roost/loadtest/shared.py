"""What the worker processes share: counters in shared memory, and the event loop choice.

Counters: one int64 per client, in shared memory.

A publisher's slot holds how many messages it has sent, a subscriber's how many
distinct messages it has received; the throughput window compares the two. Each slot
has one writer; readers tolerate a slightly stale value (they look again soon).
"""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing.sharedctypes
from collections.abc import Callable, MutableSequence
from typing import cast


class Counters:
    """A worker's handle on the shared counters (one slot per client), passed to
    the publishers whose send window reads them.
    """

    __slots__ = ("values",)

    def __init__(self, values: MutableSequence[int]) -> None:
        self.values = values


def shared_counters(size: int) -> MutableSequence[int]:
    """Zeroed shared memory that survives being handed to spawned processes."""
    array = multiprocessing.sharedctypes.RawArray(ctypes.c_int64, max(size, 1))
    return cast("MutableSequence[int]", array)


def loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed and wanted, else None (stdlib asyncio)."""
    if not use_uvloop:
        return None
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
