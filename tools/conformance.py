"""Generate the "Covered by" column of docs/conformance.md from the tests' own citations.

    python -m tools.conformance              rewrite docs/conformance.md
    python -m tools.conformance --check      exit 1 if the file is out of date
    python -m tools.conformance --citations  list every citation found and how it resolved

Tests cite the statements they check as ``[MQTT-x.y.z-n]`` in docstrings and comments.
Some ids exist in both MQTT 5.0 and 3.1.1 with different meanings, so a citation is
assigned to a version by a hint written next to it ("3.1.1 [MQTT-..]", "[MQTT-..] (5.0)",
"(3.1.1) [MQTT-..]", "v5: ... [MQTT-..]"): the hint on the same comment line or in the
same docstring sentence (see ``resolve``); failing that, a test named for one version
(``test_x_3_1_1``, ``test_x_5``); failing that, every version whose table has the id.

A citation belongs to the test function it is written in (its docstring, its body, or
its decorators, where a ``pytest.param(id=...)`` on the same line names the case), else
to the module. Cells list up to ``MAX_LISTED`` tests, written relative to tests/. Only
the Covered-by cells and one summary line per version are generated; the rest of the
file is left byte for byte as written.
"""

from __future__ import annotations

import argparse
import ast
import io
import re
import sys
import tokenize
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "conformance.md"
TESTS = ROOT / "tests"

V5 = "5.0"
V311 = "3.1.1"
BOTH = frozenset({V5, V311})
_OTHER = {V5: V311, V311: V5}
_HEADINGS = {"## MQTT 5.0": V5, "## MQTT 3.1.1": V311}

#: Tests listed per statement before the rest are counted as "+N more".
MAX_LISTED = 3
UNCOVERED = "—"
CLIENT_ONLY = "n/a (client)"
SERVER_SIDE = frozenset({"server", "both"})

# [MQTT-3.1.2-8], the appendix's odd spellings [MQTT-3-8.3-4] [MQTT-3.1.2.7], and the
# shorthand [MQTT-1.5.3-1/2] for consecutive statements.
_CITE = re.compile(r"\[(MQTT-\d[\d.\-]*\d)((?:/\d+)*)\]")
_HINT = re.compile(
    r"(?<![\w.])(?:(?P<v311>(?:MQTT\s+v?|v)?3\.1\.1)|(?P<v5>MQTT\s+v?5(?:\.0)?|v5(?:\.0)?|5\.0))"
    r"(?!\w|\.\d)"
)
# "5.0's CONNACK", "3.1.1 section 3.1.2.5": the version names where to read, not which
# statement a citation is.
_NOT_A_HINT = re.compile(r"'s\b|\s+section\b")
# "3.1.1 [MQTT-3.2.2-4], 5.0 -6": the same statement family, last number only.
_SHORTHAND = re.compile(r"\s+-(\d+)\b")
_NAMED_VERSION = re.compile(r"_(?:(?P<v311>3_1_1)|v?5)$")
_CITATION_NEXT = re.compile(r"\s*:?\s*\[MQTT-")
# What may separate citations that share one hint: "[A], [B]", "[A] / [B]", "[A] and [B]".
_GROUP_GAP = re.compile(r"\s*(?:[,/]\s*)*(?:(?:and|or)\s+)?")
_LABEL_END = re.compile(r"\s*(?P<extra>too|also|only)?\s*\)")
_SENTENCE_END = re.compile(r"(?<!e\.g)(?<!i\.e)[.!?]\s+|\n\s*\n|\n\s*(?=[*-]\s)")

_ROW = re.compile(
    r"^(?P<head>\| (?P<id>MQTT-[^ |]+) \| .* \| (?P<binds>server|client|both) \| )"
    r"(?P<cell>.*)(?P<tail> \|)$"
)
_SUMMARY = re.compile(r"^\d+ of \d+ server-side statements cited by a test")


@dataclass(frozen=True)
class Citation:
    """One statement cited at one place in the tests."""

    statement: str
    versions: frozenset[str]
    path: str  # relative to tests/
    line: int
    function: str | None  # "test_x" or "TestX::test_x"; None: module level
    case: str | None  # the pytest.param id the citation sits on, if any

    @property
    def target(self) -> str:
        return self.path if self.function is None else f"{self.path}::{self.function}"


@dataclass(frozen=True)
class Statement:
    version: str
    id: str
    binds: str


# --- resolving versions within one comment line or docstring sentence --------------------


@dataclass
class _Cite:
    start: int
    end: int
    ids: tuple[str, ...]
    forced: frozenset[str] | None = None  # from a "5.0 -6" shorthand


@dataclass(frozen=True)
class _Prefix:
    position: int
    scope_end: int
    versions: frozenset[str]


def _paren_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    stack: list[int] = []
    for i, char in enumerate(text):
        if char == "(":
            stack.append(i)
        elif char == ")" and stack:
            spans.append((stack.pop(), i))
    spans.extend((start, len(text)) for start in stack)
    return spans


def _scope_end(spans: list[tuple[int, int]], position: int, length: int) -> int:
    """The end of the innermost parenthesis holding ``position``: where a hint stops."""
    inside = [(start, end) for start, end in spans if start < position < end]
    return max(inside)[1] if inside else length


def _expand(statement: str, more: str) -> tuple[str, ...]:
    family = statement.rsplit("-", 1)[0]
    return (statement, *(f"{family}-{n}" for n in more.split("/")[1:]))


def resolve(text: str) -> list[tuple[str, frozenset[str] | None, int]]:
    """(statement, versions, offset) for each citation in one sentence or comment line.

    A hint applies, in order of precedence, when it directly follows the citations it
    qualifies ("[A] (3.1.1)", "[A] 3.1.1,"); when a parenthesis right after them names the
    other version's statement ("[A] (3.1.1: [B])" makes A a 5.0 citation); or when it is
    the nearest one before them whose parenthesis, if any, is still open ("3.1.1 [A],
    5.0 [B]"; "(5.0) ... [A]"); or when every hint is an aside in parentheses naming one
    version ("[A] ...; [B] ... (3.1.1: [C])" makes A and B 5.0 citations). Without one,
    the versions are None: the text does not say.
    """
    cites = [_Cite(m.start(), m.end(), _expand(m[1], m[2])) for m in _CITE.finditer(text)]
    hints = [
        m
        for m in _HINT.finditer(text)
        if not _NOT_A_HINT.match(text, m.end())
        and not any(c.start <= m.start() < c.end for c in cites)
    ]
    spans = _paren_spans(text)
    consumed: set[int] = set()

    for hint in hints:
        shorthand = _SHORTHAND.match(text, hint.end())
        before = [c for c in cites if c.end <= hint.start()]
        if shorthand and before:
            family = before[-1].ids[0].rsplit("-", 1)[0]
            cites.append(
                _Cite(
                    hint.start(),
                    shorthand.end(),
                    (f"{family}-{shorthand[1]}",),
                    frozenset({_version(hint)}),
                )
            )
            consumed.add(hint.start())
    cites.sort(key=lambda c: c.start)

    groups: list[list[_Cite]] = []
    for cite in cites:
        if (
            groups
            and groups[-1][-1].forced is None
            and cite.forced is None
            and _GROUP_GAP.fullmatch(text, groups[-1][-1].end, cite.start)
        ):
            groups[-1].append(cite)
        else:
            groups.append([cite])

    suffix: dict[int, frozenset[str]] = {}
    contrast: dict[int, frozenset[str]] = {}
    for index, group in enumerate(groups):
        end = group[-1].end
        for hint in hints:
            gap = text[end : hint.start()]
            if hint.start() in consumed or hint.start() < end:
                continue
            if gap.strip() == "" and gap and not _CITATION_NEXT.match(text, hint.end()):
                suffix[index] = frozenset({_version(hint)})  # "[A] 3.1.1, [B]"
                consumed.add(hint.start())
            elif gap.strip() == "(":
                label = _LABEL_END.match(text, hint.end())
                if label:  # "[A] (3.1.1)", "[A] (3.1.1 too)"
                    extra = label["extra"]
                    suffix[index] = (
                        BOTH if extra in {"too", "also"} else frozenset({_version(hint)})
                    )
                    consumed.add(hint.start())
                elif _CITATION_NEXT.match(text, hint.end()):  # "[A] (3.1.1: [B])"
                    contrast[index] = frozenset({_OTHER[_version(hint)]})
            break

    prefixes: list[_Prefix] = []
    labels: set[int] = set()
    for hint in hints:
        if hint.start() in consumed:
            continue
        position = hint.start()
        label = _LABEL_END.match(text, hint.end())
        opening = text.rfind("(", 0, position)
        if label and opening >= 0 and text[opening + 1 : position].strip() == "":
            # "(3.1.1) [A] ...": a label reaches as far as a bare hint in its place would.
            position = opening
            labels.add(hint.start())
        scope_end = _scope_end(spans, position, len(text))
        prefixes.append(_Prefix(hint.end(), scope_end, frozenset({_version(hint)})))

    # "[A] same id; [B] one code per filter (3.1.1: [C])": when every hint left is inside
    # a parenthesis naming one version's statements, the citations outside are the other's.
    asides = [
        (hint, span)
        for hint in hints
        if hint.start() not in consumed and hint.start() not in labels
        for span in [max((s for s in spans if s[0] < hint.start() < s[1]), default=None)]
    ]
    aside_versions = {_version(hint) for hint, _ in asides}
    other: frozenset[str] | None = None
    if len(aside_versions) == 1 and all(span is not None for _, span in asides):
        other = frozenset({_OTHER[aside_versions.pop()]})

    resolved: list[tuple[str, frozenset[str] | None, int]] = []
    for index, group in enumerate(groups):
        for cite in group:
            versions = cite.forced or suffix.get(index) or contrast.get(index)
            if versions is None:
                applicable = [p for p in prefixes if p.position <= group[0].start < p.scope_end]
                if applicable:
                    versions = max(applicable, key=lambda p: p.position).versions
                elif other is not None and not any(
                    span is not None and span[0] < cite.start < span[1] for _, span in asides
                ):
                    versions = other
            resolved.extend((statement, versions, cite.start) for statement in cite.ids)
    return resolved


def _version(hint: re.Match[str]) -> str:
    return V311 if hint["v311"] else V5


def _sentences(text: str) -> Iterator[tuple[int, str]]:
    start = 0
    for match in _SENTENCE_END.finditer(text):
        yield start, text[start : match.end()]
        start = match.end()
    yield start, text[start:]


# --- finding citations in test files ----------------------------------------------------


@dataclass(frozen=True)
class _TestScope:
    first: int
    last: int
    name: str
    cases: tuple[tuple[int, int, str], ...]  # (first line, last line, id) of pytest.param


def _test_scopes(tree: ast.Module) -> list[_TestScope]:
    found: list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.append(("", node))
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            found.extend(
                (f"{node.name}::", item)
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            )
    scopes = []
    for prefix, function in found:
        if not function.name.startswith("test"):
            continue
        cases = tuple(
            (call.lineno, call.end_lineno or call.lineno, keyword.value.value)
            for decorator in function.decorator_list
            for call in ast.walk(decorator)
            if isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "param"
            for keyword in call.keywords
            if keyword.arg == "id"
            and isinstance(keyword.value, ast.Constant)
            and isinstance(keyword.value.value, str)
        )
        first = min([function.lineno, *(d.lineno for d in function.decorator_list)])
        last = function.end_lineno or function.lineno
        scopes.append(_TestScope(first, last, prefix + function.name, cases))
    return scopes


def _texts(source: str, tree: ast.Module) -> Iterator[tuple[int, str, bool]]:
    """(first line, text, is a docstring) for every docstring and comment of a module."""
    for node in ast.walk(tree):
        if isinstance(
            node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
        ) and ast.get_docstring(node, clean=False):
            docstring = node.body[0]
            if isinstance(docstring, ast.Expr) and isinstance(docstring.value, ast.Constant):
                yield docstring.lineno, str(docstring.value.value), True
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string, False


def scan_file(path: Path, relative: str) -> list[Citation]:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    scopes = _test_scopes(tree)
    citations = []
    for first_line, text, is_docstring in _texts(source, tree):
        pieces = _sentences(text) if is_docstring else iter([(0, text)])
        for offset, piece in pieces:
            for statement, hinted, position in resolve(piece):
                versions = hinted
                line = first_line + text.count("\n", 0, offset + position)
                scope = next((s for s in scopes if s.first <= line <= s.last), None)
                function = case = None
                if scope is not None:
                    function = scope.name
                    case = next((c for lo, hi, c in scope.cases if lo <= line <= hi), None)
                    # test_x_3_1_1, test_x_5: a test named for one version.
                    named = _NAMED_VERSION.search(function)
                    if versions is None and named:
                        versions = frozenset({V311 if named["v311"] else V5})
                citations.append(
                    Citation(statement, versions or BOTH, relative, line, function, case)
                )
    return sorted(citations, key=lambda c: c.line)


def scan_tests(tests: Path = TESTS) -> list[Citation]:
    citations = []
    for path in sorted(tests.rglob("*.py")):
        citations.extend(scan_file(path, path.relative_to(tests).as_posix()))
    return citations


# --- the document -----------------------------------------------------------------------


def parse_statements(doc: str) -> dict[tuple[str, str], Statement]:
    statements: dict[tuple[str, str], Statement] = {}
    version: str | None = None
    for line in doc.splitlines():
        if line.startswith("## "):
            version = _HEADINGS.get(line.rstrip())
        elif version is not None and (row := _ROW.match(line)):
            statements[version, row["id"]] = Statement(version, row["id"], row["binds"])
    return statements


def coverage(
    statements: dict[tuple[str, str], Statement], citations: Sequence[Citation]
) -> tuple[dict[tuple[str, str], list[Citation]], list[str]]:
    """The citations of each (version, statement), and a warning per citation that fits none."""
    covered: dict[tuple[str, str], list[Citation]] = {}
    warnings = []
    for citation in citations:
        keys = [(v, citation.statement) for v in sorted(citation.versions)]
        known = [key for key in keys if key in statements]
        if not known:
            named = " or ".join(sorted(citation.versions))
            warnings.append(
                f"tests/{citation.path}:{citation.line}: [{citation.statement}] "
                f"is not a {named} statement"
            )
        for key in known:
            covered.setdefault(key, []).append(citation)
    return covered, warnings


def _cell(statement: Statement, citations: Sequence[Citation]) -> str:
    # One entry per test; cases are listed only when nothing in the test cites it whole.
    entries: dict[str, set[str] | None] = {}
    order = sorted(citations, key=lambda c: (c.function is None, c.path, c.line))
    for citation in order:
        cases = entries.setdefault(citation.target, set())
        if citation.case is None or cases is None:
            entries[citation.target] = None
        else:
            cases.add(citation.case)
    names = [
        f"`{target}[{', '.join(sorted(cases))}]`" if cases else f"`{target}`"
        for target, cases in entries.items()
    ]
    listed = ", ".join(names[:MAX_LISTED])
    if len(names) > MAX_LISTED:
        listed += f", +{len(names) - MAX_LISTED} more"
    if statement.binds == "client":
        return f"{CLIENT_ONLY}; cited by {listed}" if names else CLIENT_ONLY
    return listed or UNCOVERED


def _summary(
    version: str, statements: dict[tuple[str, str], Statement], covered: set[tuple[str, str]]
) -> str:
    server = [
        key for key, s in statements.items() if s.version == version and s.binds in SERVER_SIDE
    ]
    cited = sum(key in covered for key in server)
    return (
        f"{cited} of {len(server)} server-side statements cited by a test "
        "(Binds `server` or `both`)."
    )


def render(doc: str, citations: Sequence[Citation]) -> tuple[str, list[str]]:
    """The document with its Covered-by cells and summary lines regenerated."""
    statements = parse_statements(doc)
    covered, warnings = coverage(statements, citations)
    lines = doc.splitlines(keepends=True)
    out: list[str] = []
    version: str | None = None
    index = 0
    while index < len(lines):
        raw = lines[index]
        line = raw.rstrip("\r\n")
        ending = raw[len(line) :]
        index += 1
        if line.startswith("## "):
            version = _HEADINGS.get(line.rstrip())
            out.append(raw)
            if version is not None and index < len(lines) and not lines[index].strip():
                out.append(lines[index])
                index += 1
                if index < len(lines) and _SUMMARY.match(lines[index]):
                    index += 2  # the old summary and the blank line after it
                out.append(_summary(version, statements, set(covered)) + ending)
                out.append(ending)
            continue
        row = _ROW.match(line) if version is not None else None
        if row is None or version is None:
            out.append(raw)
            continue
        statement = statements[version, row["id"]]
        cell = _cell(statement, covered.get((version, row["id"]), []))
        out.append(f"{row['head']}{cell}{row['tail']}{ending}")
    return "".join(out), warnings


def uncovered(doc: str) -> list[tuple[str, str, str]]:
    """(version, statement, summary) of every server-side row whose cell says none."""
    result = []
    version: str | None = None
    for line in doc.splitlines():
        if line.startswith("## "):
            version = _HEADINGS.get(line.rstrip())
        elif (
            version is not None
            and (row := _ROW.match(line))
            and row["binds"] in SERVER_SIDE
            and row["cell"] == UNCOVERED
        ):
            result.append((version, row["id"], row["head"].split(" | ")[1]))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.conformance",
        description="Generate the Covered-by column of docs/conformance.md.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if the document is stale")
    mode.add_argument("--citations", action="store_true", help="list the citations found")
    mode.add_argument("--uncovered", action="store_true", help="list uncited server rows")
    args = parser.parse_args(argv)

    doc = DOC.read_bytes().decode("utf-8")
    citations = scan_tests()
    if args.citations:
        for c in citations:
            case = f"[{c.case}]" if c.case else ""
            versions = ",".join(sorted(c.versions))
            print(f"tests/{c.path}:{c.line}: {c.statement} ({versions}) -> {c.target}{case}")
        return 0
    if args.uncovered:
        for version, statement, summary in uncovered(doc):
            print(f"{version}\t{statement}\t{summary}")
        return 0
    new, warnings = render(doc, citations)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    relative = DOC.relative_to(ROOT)
    if args.check:
        if new != doc:
            print(
                f"{relative} is out of date with the tests' citations; "
                "run: python -m tools.conformance",
                file=sys.stderr,
            )
            return 1
        return 0
    if new != doc:
        DOC.write_bytes(new.encode("utf-8"))
        print(f"rewrote {relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
