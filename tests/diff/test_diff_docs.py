"""docs/api.md's table of differences and tests/diff/differences.py list the same tests."""
from __future__ import annotations

import re
from pathlib import Path

from differences import STACK_DIFFERENCES

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def documented() -> set[str]:
    rows = re.findall(r"^\| `([\w]+)` \| `([^`]+)` \|", DOC.read_text(), re.M)
    return {f"test_diff_{module}::{test}" for module, test in rows}


def test_every_difference_is_documented_and_nothing_else():
    assert documented() == set(STACK_DIFFERENCES)


def test_every_listed_test_exists():
    here = Path(__file__).parent
    for key in STACK_DIFFERENCES:
        module, test = key.split("::")
        source = (here / f"{module}.py").read_text()
        name = test.split("[")[0]
        assert name == "*" or f"def {name}(" in source, key
