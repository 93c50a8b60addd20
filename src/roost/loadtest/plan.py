"""What a load run does: its settings, its clients and how they are spread over workers.

A scenario is a list of ``ClientSpec``: what each client subscribes to, which topics it
expects messages on (to count loss), and what it publishes. The runner deals the
clients out to the worker processes; each worker connects and drives its own share.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from typing import Literal

Scenario = Literal["pub", "sub", "conn", "pubsub"]
Shape = Literal["fanin", "fanout", "pairs"]
SHAPES: tuple[Shape, ...] = ("fanin", "fanout", "pairs")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the command line decides; handed to every worker as it is."""

    scenario: Scenario
    host: str = "127.0.0.1"
    port: int = 1883
    version: int = 4
    clients: int = 10
    shape: Shape = "pairs"
    qos: int = 0
    size: int = 64
    retain: bool = False
    duration: float = 5.0  # publishing time; 0 = until ``count`` is sent
    count: int = 0  # messages in total (fanout: from its one publisher); 0 = no limit
    rate: float = 0.0  # messages per second in total; 0 = as fast as flow control allows
    inflight: int = 20
    window: int = 1000
    keepalive: int = 60
    hold: float = 0.0  # conn: seconds to hold the connections before the verify publish
    connect_timeout: float = 30.0
    conn_parallel: int = 100  # connects in progress at once, over all workers
    drain_timeout: float = 10.0
    max_loss: float = 0.0  # QoS 0 loss (percent) still counted as ok
    topic: str = ""  # pub/sub: topic (filter) pattern; %i is the client number
    topic_prefix: str = ""
    sources: tuple[str, ...] = ()  # local addresses to connect from, round robin
    processes: int = 1
    extra_subscriptions: int = 0  # non-matching filters held by extra clients
    extra_clients: int = 0
    username: str | None = None
    password: str | None = None
    use_uvloop: bool = True
    run_tag: int = field(default_factory=lambda: secrets.randbelow(0xFFFF) + 1)

    @property
    def prefix(self) -> str:
        return self.topic_prefix or f"roostbench/{self.run_tag:04x}"


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """One simulated client's part in the plan: what it subscribes to, publishes and
    expects to receive.
    """

    index: int  # its slot in the shared counters
    client_id: str
    subscribe: tuple[str, ...] = ()  # topic filters
    expects: tuple[str, ...] = ()  # topic names it should receive every message of
    publish: tuple[str, ...] = ()  # topics it publishes to, round robin
    count: int = 0  # messages to publish; 0 = until the duration ends
    # Window: for each subscriber this publisher feeds, (its slot, the slots feeding it).
    sinks: tuple[tuple[int, tuple[int, ...]], ...] = ()
    verify: bool = False  # conn: publishes only in the verify phase
    filler: tuple[str, ...] = ()  # subscriptions that match nothing published

    @property
    def publishes(self) -> bool:
        return bool(self.publish)


def _client_id(settings: Settings, role: str, index: int) -> str:
    # At most 23 characters, as MQTT 3.1.1 servers must accept [MQTT-3.1.3-5].
    return f"rb{settings.run_tag:04x}-{role}{index}"


def _share(total: int, parts: int, index: int) -> int:
    return total // parts + (1 if index < total % parts else 0)


def filler_filters(settings: Settings, count: int, first: int) -> tuple[str, ...]:
    """Filters that match none of the scenario's topics but share their first levels.

    They sit beside the topics that are published (same prefix, and wildcards at the
    levels a match has to look at), so a broker that scans subscriptions, rather than
    walking a tree, pays for every one of them.
    """
    prefix = settings.prefix
    shapes = (
        "{p}/f{i}",
        "{p}/+/f{i}",
        "{p}/pair/f{i}/#",
        "{p}/fanin/f{i}",
        "+/pair/f{i}",
        "{p}/+/+/f{i}",
    )
    return tuple(shapes[i % len(shapes)].format(p=prefix, i=i) for i in range(first, first + count))


def build_clients(settings: Settings) -> list[ClientSpec]:
    n = settings.clients
    prefix = settings.prefix
    clients: list[ClientSpec] = []
    if settings.scenario == "pub":
        pattern = settings.topic or f"{prefix}/pub/%i"
        for i in range(n):
            count = _share(settings.count, n, i) if settings.count else 0
            topic = pattern.replace("%i", str(i))
            clients.append(
                ClientSpec(i, _client_id(settings, "p", i), publish=(topic,), count=count)
            )
    elif settings.scenario == "sub":
        pattern = settings.topic or f"{prefix}/pub/%i"
        for i in range(n):
            topic = pattern.replace("%i", str(i))
            clients.append(ClientSpec(i, _client_id(settings, "s", i), subscribe=(topic,)))
    elif settings.scenario == "conn":
        topics = [f"{prefix}/conn/{i}" for i in range(n)]
        for i, topic in enumerate(topics):
            clients.append(
                ClientSpec(i, _client_id(settings, "c", i), subscribe=(topic,), expects=(topic,))
            )
        clients.append(
            ClientSpec(n, _client_id(settings, "v", 0), publish=tuple(topics), count=n, verify=True)
        )
    else:
        clients = _pubsub(settings)
    clients += _fillers(settings, len(clients))
    return clients


def _pubsub(settings: Settings) -> list[ClientSpec]:
    n = settings.clients
    prefix = settings.prefix
    pubs: list[tuple[str, ...]] = []  # topics per publisher
    subs: list[tuple[str, tuple[str, ...]]] = []  # (filter, expected topics) per subscriber
    if settings.shape == "fanin":
        pubs = [(f"{prefix}/fanin/{i}",) for i in range(n)]
        subs = [(f"{prefix}/fanin/+", tuple(t for (t,) in pubs))]
    elif settings.shape == "fanout":
        pubs = [(f"{prefix}/fanout",)]
        subs = [(f"{prefix}/fanout", (f"{prefix}/fanout",)) for _ in range(n)]
    else:
        pubs = [(f"{prefix}/pair/{i}",) for i in range(n)]
        subs = [(f"{prefix}/pair/{i}", (f"{prefix}/pair/{i}",)) for i in range(n)]
    pub_slots = list(range(len(subs), len(subs) + len(pubs)))
    feeders = [
        tuple(pub_slots[p] for p, topics in enumerate(pubs) if set(topics) & set(expected))
        for _, expected in subs
    ]
    clients = [
        ClientSpec(s, _client_id(settings, "s", s), subscribe=(flt,), expects=expected)
        for s, (flt, expected) in enumerate(subs)
    ]
    for p, topics in enumerate(pubs):
        slot = pub_slots[p]
        sinks = tuple((s, feeders[s]) for s in range(len(subs)) if slot in feeders[s])
        count = _share(settings.count, len(pubs), p) if settings.count else 0
        clients.append(
            ClientSpec(slot, _client_id(settings, "p", p), publish=topics, count=count, sinks=sinks)
        )
    return clients


def _fillers(settings: Settings, first_slot: int) -> list[ClientSpec]:
    total = settings.extra_subscriptions
    if not total:
        return []
    holders = settings.extra_clients or max(1, min(100, total // 1000))
    clients = []
    start = 0
    for i in range(holders):
        count = _share(total, holders, i)
        filters = filler_filters(settings, count, start)
        start += count
        clients.append(ClientSpec(first_slot + i, _client_id(settings, "f", i), filler=filters))
    return clients


def deal(clients: list[ClientSpec], workers: int) -> list[list[ClientSpec]]:
    """Spread the clients over ``workers``: subscribers, publishers, fillers each evenly."""
    shares: list[list[ClientSpec]] = [[] for _ in range(workers)]
    groups = (
        [c for c in clients if c.subscribe and not c.publishes],
        [c for c in clients if c.publishes],
        [c for c in clients if not c.subscribe and not c.publishes],
    )
    turn = 0
    for group in groups:
        for client in group:
            shares[turn % workers].append(client)
            turn += 1
    return shares


def with_processes(settings: Settings, clients: int) -> Settings:
    """No more worker processes than clients."""
    return replace(settings, processes=max(1, min(settings.processes, clients)))
