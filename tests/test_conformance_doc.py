"""docs/conformance.md cannot rot silently.

The conformance table cites tests as ``tests/...py::test_name`` and code as
``stack/...py:Class.method``. These checks fail when a cited test is no longer collected
by pytest (or is marked xfail), when a cited function or attribute is gone, when a row of RFC 9293 Appendix B
goes missing, or when the summary counts no longer match the rows.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import Counter
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "conformance.md"

TEST_REF = re.compile(r"(tests/[\w/]+\.py)::(\w+(?:::\w+)?)")
CODE_REF = re.compile(r"(stack/[\w/]+\.py):([A-Za-z_]\w*(?:\.\w+)?)")
STATUSES = ("Implemented", "Partly", "Not implemented", "N/A")
APPENDIX_B = ([f"MUST-{i}" for i in range(1, 70)] + [f"SHLD-{i}" for i in range(1, 32)]
              + [f"MAY-{i}" for i in range(1, 19)] + ["REC-1"])
KIND = {"MUST": "MUST", "SHLD": "SHOULD / REC", "REC": "SHOULD / REC", "MAY": "MAY"}


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def requirement_rows(text: str) -> list[tuple[str, list[str]]]:
    """Every row of every requirement table (header ``| ... | Status | Where | Tests |``),
    with the ``## `` section it is in."""
    rows, section, in_table = [], "", False
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[-3:] == ["Status", "Where", "Tests"]:
            in_table = True
            continue
        if in_table and not set(cells[0]) <= set("-: "):
            rows.append((section, cells))
    return rows


def status_of(cell: str) -> str:
    for status in STATUSES:
        if cell.startswith(status):
            return status
    raise AssertionError(f"status cell does not start with one of {STATUSES}: {cell!r}")


def appendix_b_rows(text: str) -> list[list[str]]:
    return [cells for section, cells in requirement_rows(text) if section.startswith("RFC 9293")]


@lru_cache(maxsize=None)
def collected(files: tuple[str, ...]) -> frozenset[str]:
    """``path::name`` of every test pytest collects from ``files`` (parameters stripped)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    ids = set()
    for line in proc.stdout.splitlines():
        if "::" in line and line.startswith("tests/"):
            ids.add(re.sub(r"\[.*\]$", "", line.strip()))
    assert ids or proc.returncode == 0, f"pytest --collect-only failed:\n{proc.stdout}\n{proc.stderr}"
    return frozenset(ids)


def defined_names(body) -> dict[str, ast.AST]:
    names = {}
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names[target.id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
    return names


@lru_cache(maxsize=None)
def module_names(path: str) -> dict[str, ast.AST]:
    return defined_names(ast.parse((ROOT / path).read_text(encoding="utf-8")).body)


def resolves(path: str, qualname: str) -> bool:
    if not (ROOT / path).is_file():
        return False
    head, _, attr = qualname.partition(".")
    node = module_names(path).get(head)
    if node is None:
        return False
    if not attr:
        return True
    return isinstance(node, ast.ClassDef) and attr in defined_names(node.body)


def test_every_cited_test_is_collected():
    refs = sorted(set(TEST_REF.findall(doc_text())))
    assert len(refs) > 150, f"only {len(refs)} test references found: is the pattern still right?"
    missing_files = sorted({path for path, _ in refs if not (ROOT / path).is_file()})
    assert not missing_files, f"docs/conformance.md cites test files that do not exist: {missing_files}"
    ids = collected(tuple(sorted({path for path, _ in refs})))
    missing = [f"{path}::{name}" for path, name in refs if f"{path}::{name}" not in ids]
    assert not missing, "docs/conformance.md cites tests pytest does not collect:\n" + "\n".join(missing)


def test_no_cited_test_is_an_expected_failure():
    """A test marked xfail pins a bug, not the behaviour a row claims."""
    xfails = []
    for path, name in sorted(set(TEST_REF.findall(doc_text()))):
        func = module_names(path).get(name.split("::")[-1])
        for deco in getattr(func, "decorator_list", []):
            target = deco.func if isinstance(deco, ast.Call) else deco
            if isinstance(target, ast.Attribute) and target.attr == "xfail":
                xfails.append(f"{path}::{name}")
    assert not xfails, "docs/conformance.md cites tests marked xfail:\n" + "\n".join(xfails)


def test_every_cited_function_exists():
    refs = sorted(set(CODE_REF.findall(doc_text())))
    assert len(refs) > 80, f"only {len(refs)} code references found: is the pattern still right?"
    missing = [f"{path}:{name}" for path, name in refs if not resolves(path, name)]
    assert not missing, "docs/conformance.md cites code that does not exist:\n" + "\n".join(missing)


def test_every_row_has_a_status_and_tests_or_says_no_test():
    rows = requirement_rows(doc_text())
    assert len(rows) > 200
    for section, cells in rows:
        assert len(cells) == 5, f"{section}: row should have 5 cells: {cells}"
        status_of(cells[2])
        assert TEST_REF.search(cells[4]) or cells[4].startswith("no test"), \
            f"{section}: {cells[0]}: the Tests cell names no test and does not say 'no test': {cells[4]!r}"
        if "⚠" in cells[2]:
            assert status_of(cells[2]) in ("Partly", "Not implemented"), f"{cells[0]}: ⚠ on {cells[2]!r}"


def test_appendix_b_has_one_row_per_identifier():
    ids = Counter(cells[0] for cells in appendix_b_rows(doc_text()))
    missing = [i for i in APPENDIX_B if i not in ids]
    extra = sorted(set(ids) - set(APPENDIX_B))
    twice = sorted(i for i, n in ids.items() if n > 1)
    assert not (missing or extra or twice), f"missing {missing}, unknown {extra}, repeated {twice}"


def test_summary_counts_match_the_rows():
    text = doc_text()
    counts = Counter()
    warned = Counter()
    for cells in appendix_b_rows(text):
        kind = KIND[cells[0].split("-")[0]]
        counts[status_of(cells[2]), kind] += 1
        if "⚠" in cells[2]:
            warned[kind] += 1
    kinds = ("MUST", "SHOULD / REC", "MAY")
    for status in STATUSES + ("**Total**",):
        row = re.search(rf"^\| {re.escape(status)} \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$", text, re.M)
        assert row, f"summary table has no row for {status}"
        if status == "**Total**":
            want = [sum(n for (s, k), n in counts.items() if k == kind) for kind in kinds]
        else:
            want = [counts[status, kind] for kind in kinds]
        assert [int(x) for x in row.groups()] == want + [sum(want)], f"summary row {status}: the rows give {want}"
    line = re.search(r"Of these, (\d+) rows carry ⚠ \((\d+) MUST, (\d+) SHOULD\)", text)
    assert line, "the sentence counting ⚠ rows is gone"
    assert [int(x) for x in line.groups()] == [sum(warned.values()), warned["MUST"], warned["SHOULD / REC"]]
    assert "lists 119 distinct identifiers" in text and len(APPENDIX_B) == 119


def test_summary_of_the_other_tables_matches_the_rows():
    text = doc_text()
    rows = Counter()
    for section, cells in requirement_rows(text):
        if not section.startswith("RFC 9293"):
            status = status_of(cells[2])
            rows[status] += 1
            rows[status, "⚠"] += "⚠" in cells[2]
    for status in STATUSES:
        row = re.search(rf"^\| {re.escape(status)} \| (\d+) \| (\d+) \|$", text, re.M)
        assert row, f"the other tables' summary has no row for {status}"
        want = [rows[status], rows[status, "⚠"]]
        assert [int(x) for x in row.groups()] == want, f"other tables, {status}: the rows give {want}"
