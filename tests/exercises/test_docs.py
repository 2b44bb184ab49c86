"""docs/exercises.md and its Chinese twin: the same code blocks, and every output shown is real."""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

from solutions import MUTANTS, mutant_source

ROOT = Path(__file__).resolve().parents[2]
EN = (ROOT / "docs" / "exercises.md").read_text()
ZH = (ROOT / "docs" / "exercises.zh.md").read_text()
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)


def blocks(text: str) -> list[tuple[str, str]]:
    return FENCE.findall(text)


def _norm(text: str) -> str:
    return re.sub(r"\d+\.\d\d s", "T s", text)


def _tunstack(cwd, *argv) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "stack", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60).stdout


def _block_after(command: str) -> str:
    for _, body in blocks(EN):
        if body.startswith(f"$ {command}\n"):
            return body[len(command) + 3:]
    raise AssertionError(f"no block for {command}")


def test_chinese_twin_records_the_english_hash():
    """The twin names the sha256 of the English text it translates: an English edit without the
    Chinese one fails here (update the text, then the hash)."""
    m = re.search(r"<!-- exercises\.md sha256: ([0-9a-f]{64}) -->", ZH)
    assert m, "docs/exercises.zh.md records no English sha256"
    assert m.group(1) == hashlib.sha256((ROOT / "docs" / "exercises.md").read_bytes()).hexdigest()


def test_code_blocks_identical_in_both_languages():
    assert blocks(EN) == blocks(ZH)
    assert len(blocks(EN)) == 7


def test_list_output_is_real(tmp_path):
    assert _tunstack(tmp_path, "exercise", "list") == _block_after("tunstack exercise list")


def test_student_session_is_real(tmp_path):
    assert _tunstack(tmp_path, "exercise", "start", "8", "work") == _block_after("tunstack exercise start 8 work")
    solution = next(body for lang, body in blocks(EN) if lang == "python" and "def usable_window" in body)
    (tmp_path / "work" / "window.py").write_text(solution)
    got = _tunstack(tmp_path, "exercise", "check", "8", "work")
    assert _norm(got) == _norm(_block_after("tunstack exercise check 8 work"))


def test_packet_trace_excerpt_is_real(tmp_path):
    _, _, edits, _, _ = next(m for m in MUTANTS if m[:2] == ("rtt", "rto_not_doubled"))
    (tmp_path / "rtt.py").write_text(mutant_source("rtt", edits))
    got = _tunstack(tmp_path, "exercise", "check", "4", ".", "--only", "rto_through_stack")
    excerpt = next(body for _, body in blocks(EN) if body.lstrip().startswith("FAIL  rto_through_stack"))
    assert _norm(excerpt) in _norm(got)
