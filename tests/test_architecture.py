"""Import direction and import cycles in ``src/roost``, read from the source with ``ast``.

The layers, lowest first: ``roost.codec`` (bytes <-> packets) <- ``roost.protocol``
(the MQTT rules both ends share) <- ``roost.broker`` and ``roost.client`` (the two
ends, which know nothing of each other) <- ``roost.cli`` (the commands, which may use
anything). ``roost.loadtest`` is a client of brokers, so it sits beside
``roost.client``; ``roost.testing`` (a broker and clients for an application's tests)
sits above both; ``roost.http`` (the operators' API) above the broker, which imports it
at one seam only (``SEAMS``): to start it.

Every import counts, wherever it is: at module level, inside functions, and under
``if TYPE_CHECKING:`` (a type-only import still ties the two modules' designs together,
and a cycle hidden there becomes a real one as soon as a name is needed at run time).
Imports by name at run time (``importlib.import_module``, as auth plugins are loaded)
cannot be seen here and are not checked.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src"
ROOT = "roost"  # the top-level package, which holds __version__ and nothing else

# Layer -> the layers its modules may import from. ROOT stands for the module ``roost``
# itself (``roost/__init__.py``). A layer missing here (``roost.cli``, and the
# ``roost.__main__`` entry point) may import anything.
ALLOWED: dict[str, frozenset[str]] = {
    "codec": frozenset({"codec"}),
    "protocol": frozenset({"codec", "protocol"}),
    "broker": frozenset({"codec", "protocol", "broker", "broker.bridge", ROOT}),
    # Bridges (roost.broker.bridge) are the broker's outgoing connections to other
    # brokers: the one part of the broker that uses the client library, so that there
    # is one implementation of the client side of MQTT. The client never imports the
    # broker, so this adds no cycle; the rest of the broker may not use the client.
    "broker.bridge": frozenset({"codec", "protocol", "broker", "broker.bridge", "client", ROOT}),
    "client": frozenset({"codec", "protocol", "client", ROOT}),
    # The load tester must be able to measure any broker, so it may not reach into
    # ours. Today it imports only roost.codec (its connection frames packets itself, as
    # a packet object per delivery would make the generator the bottleneck); the
    # client's helpers are allowed because a load tester is a client.
    "loadtest": frozenset({"codec", "protocol", "client", "loadtest", ROOT}),
    # Broker hooks shipped as examples (webhook, JSON schema): code a broker loads by
    # name, written against the broker's public hook interface like anyone's hooks.
    "hooks": frozenset({"codec", "protocol", "broker", "hooks", ROOT}),
    # What an application's tests use: a broker to test against and a client to talk to it.
    "testing": frozenset({"codec", "protocol", "broker", "client", "testing", ROOT}),
    # The operators' HTTP API, metrics and dashboard: it reads the broker (and kicks and
    # publishes through BrokerCore), so it sits above it; no client.
    "http": frozenset({"codec", "protocol", "broker", "http", ROOT}),
    # A broker as a node of a cluster: it plugs into the broker's seams.
    "cluster": frozenset({"codec", "protocol", "broker", "cluster", ROOT}),
}

# Imports against ALLOWED that are the design: (importer, target). The broker starts the
# HTTP server it is configured with (server.py, when [http] is set), through the one
# name roost.http exports for it, and loads the cluster package at start only when the
# config has [cluster] (docs/clustering.md); neither imports roost.broker.server back
# (test_no_import_cycles holds them to that).
SEAMS: frozenset[tuple[str, str]] = frozenset(
    {("roost.broker.server", "roost.http"), ("roost.broker.server", "roost.cluster")}
)


@dataclass(frozen=True, slots=True)
class Import:
    """One import of a roost module by another, and where the importing file says it."""

    importer: str
    path: str  # of the importing file, relative to the repository
    line: int
    target: str

    def __str__(self) -> str:
        # FILE:LINE first, so that editors and terminals can jump to it.
        return f"{self.path}:{self.line}: {self.importer} imports {self.target}"


def _layer(module: str) -> str:
    parts = module.split(".")
    if parts[1:3] == ["broker", "bridge"]:
        return "broker.bridge"  # a layer of its own: see ALLOWED
    return ROOT if len(parts) == 1 else parts[1]


@functools.cache
def _module_files() -> dict[str, Path]:
    """Every module under src/roost by dotted name (a package by its own name)."""
    names: dict[str, Path] = {}
    for path in sorted((SRC / ROOT).rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _imports_in(
    module: str, source: str, *, is_package: bool, modules: frozenset[str], path: str
) -> list[Import]:
    """The roost modules that ``source`` (the text of ``module``) imports, anywhere in it."""
    found: list[Import] = []
    for node in ast.walk(ast.parse(source, path)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                # "from . import x" in a package's __init__ is relative to the package
                # itself; in a plain module, to the package that holds it.
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base]) if base else ".".join(package)
            # "from a import b" imports the module a.b when there is one, else a name of a.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        else:
            continue
        found.extend(
            Import(module, path, node.lineno, target)
            for target in dict.fromkeys(targets)  # "from a import x, y" is one edge to a
            if target == ROOT or target.startswith(ROOT + ".")
        )
    return found


@functools.cache
def _import_graph() -> tuple[Import, ...]:
    files = _module_files()
    modules = frozenset(files)
    edges: list[Import] = []
    for module, file in files.items():
        edges += _imports_in(
            module,
            file.read_text(encoding="utf-8"),
            is_package=file.name == "__init__.py",
            modules=modules,
            path=str(file.relative_to(REPO)),
        )
    return tuple(edges)


def _cycles(edges: tuple[Import, ...]) -> list[list[str]]:
    """The groups of modules that import each other (strongly connected components with
    a cycle, by Tarjan's algorithm), each sorted; every cycle lies within one group."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        # Recursive: the depth is at most the number of roost modules, well in bounds.
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for after in sorted(graph[node]):
            if after not in index:
                visit(after)
                low[node] = min(low[node], low[after])
            elif after in on_stack:
                low[node] = min(low[node], index[after])
        if low[node] == index[node]:
            group: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph[node]:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def _resolve(module: str, source: str, *, is_package: bool = False) -> set[tuple[int, str]]:
    modules = frozenset({"roost", "roost.a", "roost.a.b", "roost.a.c", "roost.d", "roost.d.e"})
    edges = _imports_in(module, source, is_package=is_package, modules=modules, path="x.py")
    return {(edge.line, edge.target) for edge in edges}


def test_imports_are_resolved_as_python_would() -> None:
    source = (
        "import os\n"  # 1: not roost: ignored
        "import roost.d.e\n"  # 2: the named module
        "from roost.a import b, x\n"  # 3: b is a module, x a name of roost.a
        "from roost.a.c import name, other\n"  # 4: one edge, to the module
        "from roost import __version__\n"  # 5: the top-level package
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from roost.d import e\n"  # 8: counted: type-only imports are edges too
        "def f() -> None:\n"
        "    from roost.d import thing\n"  # 10: counted: function-level
        "from . import c\n"  # 11: relative to the holding package, roost.a
        "from .. import d\n"  # 12: one level up: roost.d
        "from ..d.e import y\n"  # 13: roost.d.e
    )
    assert _resolve("roost.a.b", source) == {
        (2, "roost.d.e"),
        (3, "roost.a.b"),
        (3, "roost.a"),
        (4, "roost.a.c"),
        (5, "roost"),
        (8, "roost.d.e"),
        (10, "roost.d"),
        (11, "roost.a.c"),
        (12, "roost.d"),
        (13, "roost.d.e"),
    }
    # In a package's __init__, "." is the package itself.
    assert _resolve("roost.a", "from . import b\nfrom .c import z\n", is_package=True) == {
        (1, "roost.a.b"),
        (2, "roost.a.c"),
    }


def test_cycles_are_found_as_groups() -> None:
    def edges(*pairs: str) -> tuple[Import, ...]:
        return tuple(Import(a, "x.py", 1, b) for a, b in (pair.split() for pair in pairs))

    assert _cycles(edges("roost.a roost.b", "roost.b roost.c")) == []
    assert _cycles(edges("roost.a roost.b", "roost.b roost.c", "roost.c roost.a", "roost.c x")) == [
        ["roost.a", "roost.b", "roost.c"]
    ]
    assert _cycles(edges("roost.a roost.a", "roost.b roost.c", "roost.c roost.b")) == [
        ["roost.a"],
        ["roost.b", "roost.c"],
    ]


def test_the_source_is_read() -> None:
    # Guards the checks below against passing because they saw nothing.
    pairs = {(edge.importer, edge.target) for edge in _import_graph()}
    assert ("roost.codec.packets.connect", "roost.codec.errors") in pairs
    assert ("roost.broker.auth.manager", "roost.broker.config") in pairs  # TYPE_CHECKING
    assert {_layer(importer) for importer, _ in pairs} >= {*ALLOWED, "cli"}


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layers_import_only_downwards(layer: str) -> None:
    allowed = ALLOWED[layer]
    forbidden = [
        edge
        for edge in _import_graph()
        if _layer(edge.importer) == layer
        and _layer(edge.target) not in allowed
        and (edge.importer, edge.target) not in SEAMS
    ]
    allowed_names = ", ".join(ROOT if name == ROOT else f"roost.{name}" for name in sorted(allowed))
    assert not forbidden, (
        f"roost.{layer} may import only from {allowed_names}; these imports break that:\n"
        + "\n".join(f"  {edge}" for edge in forbidden)
    )


# One test per layer, so that cycles in one layer do not hide those of another. The
# layers are read from the source tree, so a new top-level package is checked too.
@pytest.mark.parametrize("layer", sorted({_layer(module) for module in _module_files()}))
def test_no_import_cycles(layer: str) -> None:
    edges = _import_graph()
    cycles = [group for group in _cycles(edges) if any(_layer(m) == layer for m in group)]
    report = []
    for group in cycles:
        members = set(group)
        report.append(f"import cycle among {len(group)} modules: {', '.join(group)}")
        report.append("  the imports that tie them (remove enough that no loop is left):")
        report.extend(
            f"    {edge}"
            for edge in sorted(edges, key=lambda e: (e.importer, e.line))
            if edge.importer in members and edge.target in members
        )
    assert not cycles, "\n".join(report)


def test_the_module_map_lists_every_module() -> None:
    # docs/architecture.md's module map is what a newcomer reads first: a module added or
    # removed without `python -m tools.module_map` makes it lie.
    from tools import module_map

    assert module_map.main(["--check"]) == 0
