"""docs/conformance.md's Covered-by column is generated from the tests' citations.

A test that adds, drops or changes an ``[MQTT-x.y.z-n]`` citation makes the document
stale; this test then fails until ``python -m tools.conformance`` is run again.
"""

from __future__ import annotations

import pytest
from tools import conformance

V5 = frozenset({conformance.V5})
V311 = frozenset({conformance.V311})


def test_conformance_doc_is_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    status = conformance.main(["--check"])
    assert status == 0, capsys.readouterr().err


def test_a_changed_citation_makes_the_doc_stale() -> None:
    doc = conformance.DOC.read_text(encoding="utf-8")
    citations = conformance.scan_tests()
    assert conformance.render(doc, citations)[0] == doc
    extra = conformance.Citation(
        "MQTT-3.1.0-2", conformance.BOTH, "broker/test_new.py", 1, "test_new", None
    )
    assert conformance.render(doc, [*citations, extra])[0] != doc


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # No hint: left to the caller (the test's name, then both versions).
        ("[MQTT-3.12.4-1]: PINGREQ gets PINGRESP", [("MQTT-3.12.4-1", None)]),
        # A hint before, nearest first.
        (
            "3.1.1 [MQTT-3.1.4-5], 5.0 [MQTT-3.1.4-6]: nothing after a refusal",
            [("MQTT-3.1.4-5", V311), ("MQTT-3.1.4-6", V5)],
        ),
        # A label before; another after a semicolon takes over.
        (
            "(3.1.1) [MQTT-3.1.2-16] / [MQTT-3.1.2-17]; (5.0) [MQTT-3.1.2-14]",
            [("MQTT-3.1.2-16", V311), ("MQTT-3.1.2-17", V311), ("MQTT-3.1.2-14", V5)],
        ),
        # A label after the citation.
        ("[MQTT-3-8.3-4] (3.1.1): QoS 3 is malformed", [("MQTT-3-8.3-4", V311)]),
        ("[MQTT-4.4.0-1] (3.1.1 too): resent", [("MQTT-4.4.0-1", conformance.BOTH)]),
        # The other version's statement in parentheses names this one's version.
        (
            "[MQTT-2.2.1-3] (3.1.1 [MQTT-2.3.1-1]): identifier 0",
            [("MQTT-2.2.1-3", V5), ("MQTT-2.3.1-1", V311)],
        ),
        (
            "[MQTT-3.8.4-2] same id; [MQTT-3.9.3-1] in order (3.1.1: [MQTT-3.8.4-5])",
            [("MQTT-3.8.4-2", V5), ("MQTT-3.9.3-1", V5), ("MQTT-3.8.4-5", V311)],
        ),
        # A hint in parentheses stops at the closing one.
        (
            "closed (3.1.1 [MQTT-3.1.2-24], 5.0 [MQTT-3.1.2-22]); then [MQTT-3.2.2-22]",
            [("MQTT-3.1.2-24", V311), ("MQTT-3.1.2-22", V5), ("MQTT-3.2.2-22", None)],
        ),
        # Shorthands for statements of one family.
        (
            "Session Present 0 (3.1.1 [MQTT-3.2.2-4], 5.0 -6)",
            [("MQTT-3.2.2-4", V311), ("MQTT-3.2.2-6", V5)],
        ),
        ("[MQTT-1.5.3-1/2] (3.1.1)", [("MQTT-1.5.3-1", V311), ("MQTT-1.5.3-2", V311)]),
        # Where to read is not which version: "3.1.1 section 3.1.2.5", "5.0's".
        ("3.1.1 section 3.1.2.5 and [MQTT-3.1.2-8]", [("MQTT-3.1.2-8", None)]),
    ],
)
def test_version_hints(text: str, expected: list[tuple[str, frozenset[str] | None]]) -> None:
    assert [(statement, versions) for statement, versions, _ in conformance.resolve(text)] == (
        expected
    )
