"""What the packaging promises: one version, and no development tool for users."""

from __future__ import annotations

import importlib.metadata

import roost


def test_the_package_and_the_module_state_one_version() -> None:
    assert importlib.metadata.version("roost") == roost.__version__


def test_installing_roost_brings_no_development_tool() -> None:
    # The dev tools are a dependency group, which pip and uv never install for a user:
    # the published metadata names only the optional extras: [fast] (uvloop), [http]
    # (the HTTP API), [hooks] (what the example broker hooks need) and [cluster] (nats-py).
    # Build backends quote marker values differently ('fast' or "fast").
    requires = [r.replace("'", '"') for r in importlib.metadata.requires("roost") or []]
    assert requires, "the [fast] extra should be listed"
    extras = ("fast", "http", "hooks", "cluster")
    assert all(
        any(f'extra == "{extra}"' in requirement for extra in extras) for requirement in requires
    ), requires
    names = {requirement.split(">")[0].split(" ")[0] for requirement in requires}
    assert names == {"uvloop", "aiohttp", "jsonschema", "prometheus-client", "nats-py"}, names
