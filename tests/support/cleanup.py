"""Everything the support helpers open is closed after the test, whether it passed or not.

An unclosed socket is a ResourceWarning, which the test configuration turns into an
error, and a leftover paho thread or mosquitto_sub process would outlive its broker.
The helpers register how to close what they open with ``close_at_end``; the fixtures in
tests/conftest.py call ``close_all`` (``make_broker`` before it stops its brokers, and an
autouse fixture after every test).
"""

from __future__ import annotations

from collections.abc import Callable

_closers: list[Callable[[], None]] = []


def close_at_end(closer: Callable[[], None]) -> None:
    """Call ``closer`` when the current test ends (closers run newest first)."""
    _closers.append(closer)


def close_all() -> None:
    """Run every registered closer; the first error, if any, is raised after all have run."""
    error: BaseException | None = None
    while _closers:
        try:
            _closers.pop()()
        except Exception as exc:  # noqa: BLE001  (the others must still be closed)
            error = error or exc
    if error is not None:
        raise error
