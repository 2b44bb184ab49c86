"""`tunstack exercise`: list, start, check; and a wrong part never hangs or crashes the checker."""
from __future__ import annotations

import json
import re
import time

from solutions import GOOD, MUTANTS, mutant_source
from stack.cli import main as tunstack
from stack.exercises.catalog import find
from stack.exercises.runner import grade


def run(capsys, *argv):
    code = tunstack(["exercise", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_in_course_order_with_clauses_and_labs(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    lines = [l for l in out.splitlines() if l[:1].isdigit()]
    assert [l.split(".")[0] for l in lines] == [str(n) for n in range(1, 10)]
    assert "RFC 1071" in out and "RFC 9293 3.10.7.4" in out and "RFC 6298" in out and "01-handshake" in out
    code, out, _ = run(capsys, "list", "--json")
    data = json.loads(out)
    assert data[0]["slug"] == "checksum" and all(e["wired"] is True for e in data)


def test_start_writes_skeleton_and_refuses_to_overwrite(capsys, tmp_path):
    d = tmp_path / "work"
    code, out, _ = run(capsys, "start", "2", str(d))
    assert code == 0 and (d / "seq.py").read_text() == find("seq").skeleton
    (d / "seq.py").write_text("# my work\n")
    code, _, err = run(capsys, "start", "seq", str(d))
    assert code == 1 and "exists already" in err and "\n" == err[-1] and err.count("\n") == 1
    assert (d / "seq.py").read_text() == "# my work\n"


def test_unknown_exercise_and_missing_dir_are_one_line_errors(capsys, tmp_path):
    code, _, err = run(capsys, "check", "42")
    assert code == 1 and "no exercise '42'" in err and err.count("\n") == 1
    code, _, err = run(capsys, "check", "1", str(tmp_path / "nope"))
    assert code == 1 and "not a directory" in err
    code, _, err = run(capsys, "check", "1", "--only", "no_such_check")
    assert code == 1 and "has no check 'no_such_check'" in err
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run(capsys, "start", "1", str(blocker / "sub"))  # a directory that cannot be made
    assert code == 1 and "cannot write" in err and err.count("\n") == 1


def test_check_reference_default_size_exits_zero(capsys):
    """A teacher's sanity check: no DIR grades the reference, 4 MiB end to end; exit status 0."""
    code, out, _ = run(capsys, "check", "1")
    assert code == 0, out
    assert re.search(r"score: (\d+)/\1 \(100 %\)", out) and "4194304 bytes" not in out  # passes are not traced


def test_check_json_for_a_grading_system(capsys, tmp_path):
    mutant = next(m for m in MUTANTS if m[:2] == ("window", "negative_window"))
    (tmp_path / "window.py").write_text(mutant_source("window", mutant[2]))
    code, out, _ = run(capsys, "check", "8", str(tmp_path), "--json")
    assert code == 1
    rep = json.loads(out)
    assert rep["exercise"] == 8 and rep["full"] is False and 0 < rep["score"] < 100
    failed = [c for c in rep["checks"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["never_negative"]
    assert any("expected 0, got -4000" in line for line in failed[0]["trace"])


def test_text_report_shows_step_trace_and_score(capsys, tmp_path):
    (tmp_path / "acceptable.py").write_text(GOOD["acceptable"].replace("% MOD < size", "% MOD <= size"))
    code, out, _ = run(capsys, "check", "7", str(tmp_path))
    assert code == 1
    assert "FAIL  case2_zero_len_open_window" in out
    assert "acceptable(seg_seq=1100, seg_len=0, rcv_nxt=1000, rcv_wnd=100) -> True" in out
    assert "expected False, got True" in out and "score: " in out


def test_syntax_error_is_a_clear_message(capsys, tmp_path):
    (tmp_path / "seq.py").write_text("def seq_lt(a, b)\n    return a < b\n")
    code, out, _ = run(capsys, "check", "2", str(tmp_path))
    assert code == 1
    assert "cannot load your file" in out and "seq.py:1: SyntaxError" in out and "score: 0/" in out
    assert "stack/exercises" not in out  # no checker-internal traceback


def test_missing_name_is_a_clear_message(tmp_path):
    (tmp_path / "seq.py").write_text("def seq_lt(a, b):\n    return a < b\n")
    report = grade(find("seq"), str(tmp_path))
    assert "defines no seq_le, seq_gt, seq_ge" in report.load_error and report.score == 0


def test_endless_loop_costs_its_checks_not_the_run(tmp_path):
    """A part that never returns: each check stops at its time limit, the rest still run."""
    (tmp_path / "window.py").write_text("def usable_window(a, b, c, d):\n    while True:\n        pass\n")
    start = time.monotonic()
    report = grade(find("window"), str(tmp_path), time_limit=0.3)
    assert time.monotonic() - start < 15
    assert len(report.results) == len(find("window").checks) and report.earned == 0
    assert all("time limit" in "\n".join(r.trace) for r in report.results)


def test_a_timeout_dropped_in_a_destructor_comes_again(tmp_path):
    """The time limit lands inside a ``__del__`` (the interpreter prints and drops the exception
    there) and the part then loops for ever: the alarm fires again and the check still stops."""
    (tmp_path / "window.py").write_text(
        "class Sink:\n    def __del__(self):\n        while True:\n            pass\n\n"
        "def usable_window(a, b, c, d):\n    Sink()\n    while True:\n        pass\n")
    first = find("window").checks[0].name
    start = time.monotonic()
    report = grade(find("window"), str(tmp_path), isolate=False, only=[first], time_limit=0.3)
    assert time.monotonic() - start < 10
    assert "time limit" in "\n".join(report.result(first).trace)


def test_exception_in_student_code_shows_its_traceback(tmp_path):
    (tmp_path / "window.py").write_text("def usable_window(a, b, c, d):\n    return helper(a)\n\n"
                                        "def helper(x):\n    return x / 0\n")
    report = grade(find("window"), str(tmp_path))
    r = report.results[0]
    assert not r.passed and "ZeroDivisionError" in r.error
    assert "window.py\", line 5, in helper" in r.error and "window.py\", line 2, in usable_window" in r.error


def test_interpreter_exit_and_import_hang_do_not_crash_the_checker(tmp_path):
    (tmp_path / "window.py").write_text("import os\ndef usable_window(a, b, c, d):\n    os._exit(3)\n")
    report = grade(find("window"), str(tmp_path))
    assert report.earned == 0 and "exit status 3" in report.results[0].trace[0]
    (tmp_path / "epoll_callback.py").write_text("while True:\n    pass\n")
    start = time.monotonic()
    report = grade(find("epoll"), str(tmp_path), time_limit=0.2, slack=2.0)
    assert time.monotonic() - start < 10
    assert report.earned == 0 and "stopped after" in report.results[0].trace[0]


def test_student_prints_do_not_break_the_protocol(tmp_path):
    (tmp_path / "window.py").write_text('print("{\\"name\\": 1}")\n' + GOOD["window"].replace(
        "    in_flight", '    print("debug", snd_una)\n    in_flight', 1))
    assert grade(find("window"), str(tmp_path)).full


def test_student_helper_module_next_to_the_file_is_importable(tmp_path):
    (tmp_path / "flight.py").write_text("def in_flight(una, nxt):\n    return (nxt - una) % 2**32\n")
    (tmp_path / "window.py").write_text("from flight import in_flight\n\n"
                                        "def usable_window(una, nxt, wnd, cwnd):\n"
                                        "    return max(0, min(wnd, cwnd) - in_flight(una, nxt))\n")
    assert grade(find("window"), str(tmp_path)).full
