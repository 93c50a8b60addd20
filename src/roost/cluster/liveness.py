"""Which node processes are alive: heartbeats in the JetStream KV bucket ``ROOST_NODES``
(docs/clustering.md, "Wills of a dead node").

Every node puts ``<node>`` = {process, started, time} every ``HEARTBEAT`` seconds and
watches the bucket. A node whose record has not changed for ``timeout`` seconds of the
watcher's own clock is dead (no clocks are compared between hosts), counting only up
to the last time the watcher's own heartbeat came back through the same watch; so is
the earlier
process of a node whose record names a new process (it was restarted), and a node
whose record was deleted (it stopped). Each death is reported once, to ``on_dead``.

When this node is cut off from NATS, or NATS or its own loop is slow, its own
heartbeats stop coming back too, so the silence it would count is its own, and it
judges nobody. After every (re)connection every node gets a fresh ``timeout``. The
others may still have judged it meanwhile: when its own heartbeat comes back after
more than ``timeout`` without, it is told (``on_back``; ``wills.WillKeeper`` sorts out
its clients' wills).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING

from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BadRequestError
from nats.js.kv import KV_DEL, KV_PURGE

if TYPE_CHECKING:
    from collections.abc import Callable

    from nats.aio.client import Client as NatsClient
    from nats.js.kv import KeyValue

log = logging.getLogger("roost.cluster")

NODES_BUCKET = "ROOST_NODES"
HEARTBEAT = 1.0  # seconds between a node's heartbeats
RECORD_MAX_AGE = 3600.0  # seconds a stopped node's record (or a reaper's claim) is kept
API_TIMEOUT = 5.0
DEATHS_KEPT = 10_000  # processes whose time of death is remembered
REAPER_PREFIX = "reaper."  # claims on a dead process's wills share the bucket


async def open_bucket(
    nc: NatsClient, name: str, max_age: float | None = None, replicas: int = 1
) -> KeyValue:
    """The KV bucket ``name``, created (file storage, one value per key, ``replicas``
    copies) if missing."""
    js = nc.jetstream(timeout=API_TIMEOUT)
    try:
        return await js.create_key_value(
            KeyValueConfig(
                bucket=name, history=1, storage=StorageType.FILE, ttl=max_age, replicas=replicas
            )
        )
    except BadRequestError as exc:
        # It exists with other settings (an operator's replicas, say): use it as it is.
        log.info("Cluster: using the existing %s bucket (%s).", name, exc.description)
        return await js.key_value(name)


class _Seen:
    __slots__ = ("changed_at", "dead", "process", "revision")

    def __init__(self, process: str, revision: int, now: float) -> None:
        self.process = process
        self.revision = revision
        self.changed_at = now
        self.dead = False


class Liveness:
    """This node's heartbeat, and its view of the other nodes' processes."""

    def __init__(
        self, name: str, process: str, timeout: float, on_dead: Callable[[str, str], None]
    ) -> None:
        self.name = name
        self.process = process
        self.timeout = timeout
        self._on_dead = on_dead
        self.started = time.time()
        self.kv: KeyValue | None = None
        self._seen: dict[str, _Seen] = {}
        self._gone: set[tuple[str, str]] = set()  # (node, process) known to have ended
        self._died_at: dict[tuple[str, str], float] = {}  # ... when found dead (loop time)
        self._tasks: list[asyncio.Task[None]] = []
        self._watcher: KeyValue.KeyWatcher | None = None
        self._connected = False
        self._echo_at: float | None = None  # when our own heartbeat last came back
        self._last_echo: float | None = None  # the same, kept across reconnections
        # Called when our own heartbeat comes back after more than ``timeout`` without:
        # the other nodes may have taken this process for dead meanwhile.
        self.on_back: Callable[[], None] | None = None
        self.deaths = 0

    def alive_nodes(self) -> list[str]:
        """The other nodes whose current process is alive, as this node sees it."""
        return [node for node, seen in self._seen.items() if not seen.dead]

    def silent_too_long(self) -> bool:
        """Whether our own heartbeat last came back more than ``timeout`` ago (the
        others may have taken us for dead: ``on_back`` will be called)."""
        last = self._last_echo
        return last is not None and asyncio.get_running_loop().time() - last > self.timeout

    def is_gone(self, node: str, process: str) -> bool:
        """Whether this process is known to have ended (detected dead, replaced by a
        new process of its node, or stopped); not for one that merely is not known."""
        if (node, process) in self._gone:
            return True
        seen = self._seen.get(node)
        return seen is not None and seen.process != process and node != self.name

    async def start(self, nc: NatsClient, replicas: int = 1) -> None:
        """(Re)start after a (re)connection: watch first, then beat."""
        await self._cancel()
        self._echo_at = None
        kv = self.kv = await open_bucket(nc, NODES_BUCKET, RECORD_MAX_AGE, replicas)
        now = asyncio.get_running_loop().time()
        for seen in self._seen.values():
            seen.changed_at = now  # we heard nothing while away: everyone gets a fresh wait
        watcher = self._watcher = await kv.watch("*")
        ready = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._watch(watcher, ready), name="roost-cluster-nodes"),
        ]
        try:
            await asyncio.wait_for(ready.wait(), API_TIMEOUT)
        except TimeoutError:
            log.warning("Cluster: %s still arriving from NATS; going on.", NODES_BUCKET)
        await kv.put(self.name, self._record())
        self._connected = True
        self._tasks.append(asyncio.create_task(self._loop(nc), name="roost-cluster-heartbeat"))

    def lost(self) -> None:
        """NATS is gone: judge nobody until it is back."""
        self._connected = False

    async def stop(self) -> None:
        """A clean stop: say so (the other nodes take this node's remaining wills)."""
        await self._cancel()
        kv = self.kv
        if kv is not None and self._connected:
            try:
                await kv.delete(self.name)
            except Exception as exc:  # noqa: BLE001  (shutting down: the timeout does it)
                log.debug("Cluster: deleting the heartbeat failed: %r", exc)

    async def _cancel(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=API_TIMEOUT)
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            try:
                await watcher.stop()  # type: ignore[no-untyped-call]
            except Exception as exc:  # noqa: BLE001  (its consumer may be gone with NATS)
                log.debug("Cluster: stopping the %s watch: %r", NODES_BUCKET, exc)

    def _record(self) -> bytes:
        record = {"process": self.process, "started": self.started, "time": time.time()}
        return json.dumps(record).encode()

    async def _loop(self, nc: NatsClient) -> None:
        # Published without waiting for JetStream's ack, so that a slow ack does not
        # slow the beat; the watch shows whether it arrived (our own echo).
        subject = f"$KV.{NODES_BUCKET}.{self.name}"
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                await nc.publish(subject, self._record())
            except Exception as exc:  # noqa: BLE001  (NATS lost: the reconnect restarts us)
                log.debug("Cluster: heartbeat failed: %r", exc)
            self.judge()

    def judge(self) -> None:
        """Declare dead every node silent for longer than ``timeout``."""
        echo = self._echo_at
        if not self._connected or echo is None:
            return
        for node, seen in self._seen.items():
            # Silent while our own heartbeats made the round trip: theirs did not.
            if not seen.dead and echo - seen.changed_at > self.timeout:
                log.warning(
                    "Cluster: node %s (process %s) silent for %.0f s: taken for dead.",
                    node,
                    seen.process,
                    echo - seen.changed_at,
                )
                self._died(node, seen)

    def died_at(self, origin: str) -> float | None:
        """When the node process ``origin`` (``<node>/<process>``) was found dead, on
        this loop's clock; None unless it is known to be gone."""
        node, _, process = origin.rpartition("/")
        if not self.is_gone(node, process):
            return None
        return self._died_at.get((node, process))

    def _died(self, node: str, seen: _Seen) -> None:
        seen.dead = True
        self._gone.add((node, seen.process))
        if len(self._died_at) >= DEATHS_KEPT:
            self._died_at.clear()  # old deaths only make sessions outlive their expiry
        self._died_at[(node, seen.process)] = asyncio.get_running_loop().time()
        self.deaths += 1
        self._on_dead(node, seen.process)

    async def _watch(self, watcher: KeyValue.KeyWatcher, ready: asyncio.Event) -> None:
        async for entry in watcher:
            if entry is None:  # the initial values are all in
                ready.set()
                continue
            key = entry.key
            if key == self.name:
                if entry.operation is None and entry.value:
                    self._heard_self(entry.value, asyncio.get_running_loop().time())
                continue
            now = asyncio.get_running_loop().time()
            if entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
                seen = self._seen.pop(key, None)
                if seen is not None and not seen.dead:
                    log.info("Cluster: node %s stopped.", key)
                    self._died(key, seen)
                continue
            try:
                process = str(json.loads(entry.value)["process"])
            except (ValueError, KeyError, TypeError):
                log.warning("Cluster: ignoring a bad record for node %r.", key)
                continue
            self._heard(key, process, entry.revision, now)

    def _heard_self(self, value: bytes, now: float) -> None:
        """Our own heartbeat came back; or our node's record from before we started:
        the process that wrote it is over."""
        try:
            process = str(json.loads(value)["process"])
        except (ValueError, KeyError, TypeError):
            return
        if process == self.process:
            last = self._last_echo
            self._echo_at = self._last_echo = now
            if last is not None and now - last > self.timeout and self.on_back is not None:
                log.warning(
                    "Cluster: no heartbeat of ours made the round trip for %.0f s: the"
                    " other nodes may have taken this one for dead.",
                    now - last,
                )
                self.on_back()
        elif (self.name, process) not in self._gone:
            self._gone.add((self.name, process))
            self._on_dead(self.name, process)

    def _heard(self, node: str, process: str, revision: int, now: float) -> None:
        seen = self._seen.get(node)
        if seen is None:
            self._seen[node] = _Seen(process, revision, now)
            log.info("Cluster: node %s (process %s) is up.", node, process)
            return
        if seen.process != process:
            if not seen.dead:
                log.warning(
                    "Cluster: node %s restarted (process %s, was %s).", node, process, seen.process
                )
                self._died(node, seen)
            self._seen[node] = _Seen(process, revision, now)
            return
        if revision != seen.revision:
            seen.revision = revision
            seen.changed_at = now
            if seen.dead:
                # Cut off (or paused) longer than the timeout: its wills may have gone out.
                log.warning("Cluster: node %s, taken for dead, is back.", node)
                seen.dead = False
                self._gone.discard((node, process))
