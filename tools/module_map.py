"""Write the module map at the end of docs/architecture.md from the source tree.

Every module under ``src/roost`` gets a row: its path, its line count and the first
paragraph of its docstring (the module's job; cut at 150 characters). The table is the
last section of the file, so everything after its header row is replaced.

    python -m tools.module_map          # rewrite the table
    python -m tools.module_map --check  # exit 1 if a module is missing or gone
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src"
DOC = ROOT / "docs" / "architecture.md"
HEADER = "| module | lines | job |\n|---|---|---|\n"
WIDTH = 150


def job(path: Path) -> str:
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    first = " ".join(docstring.split("\n\n", 1)[0].split())
    return first if len(first) <= WIDTH else first[:WIDTH] + "..."


def rows() -> list[str]:
    lines = []
    for path in sorted((SOURCE / "roost").rglob("*.py")):
        count = len(path.read_text(encoding="utf-8").splitlines())
        name = path.relative_to(SOURCE).as_posix()
        lines.append(f"| `{name}` | {count} | {job(path)} |\n")
    return lines


def listed(text: str) -> set[str]:
    table = text.split(HEADER, 1)[1]
    return {line.split("`")[1] for line in table.splitlines() if line.startswith("| `")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare the module names")
    args = parser.parse_args(argv)
    text = DOC.read_text(encoding="utf-8")
    if HEADER not in text:
        print(f"{DOC}: no module map table", file=sys.stderr)
        return 1
    table = rows()
    if args.check:
        actual = {line.split("`")[1] for line in table}
        documented = listed(text)
        missing, stale = sorted(actual - documented), sorted(documented - actual)
        for name in missing:
            print(f"not in the module map: {name}")
        for name in stale:
            print(f"in the module map but gone: {name}")
        return 1 if missing or stale else 0
    DOC.write_text(text.split(HEADER, 1)[0] + HEADER + "".join(table), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
