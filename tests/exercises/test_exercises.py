"""Every exercise: the reference scores 100 %, a good student solution scores 100 % through the
seams, the empty skeleton scores 0 % without hanging, and each typical mistake is caught by a
named check whose step trace shows it."""
from __future__ import annotations

import pytest

from solutions import GOOD, MUTANTS, mutant_source
from stack.exercises.catalog import exercises, find
from stack.exercises.runner import grade

SMALL = 128 << 10  # end-to-end bytes in these tests (the CLI's default is 4 MiB)
SLUGS = [e.slug for e in exercises()]


def _write(tmp_path, slug: str, source: str):
    ex = find(slug)
    (tmp_path / ex.filename).write_text(source)
    return ex


def _failures(report) -> str:
    return "\n".join(f"{r.name}: {r.trace} {r.error}" for r in report.results if not r.passed)


def test_course_order_and_metadata():
    """list is in course order: lab 1 exercises first, lab 4 last; each names clauses, a lab and a skeleton."""
    exs = exercises()
    assert [e.number for e in exs] == list(range(1, len(exs) + 1))
    labs = [e.lab for e in exs]
    assert labs == sorted(labs), labs
    for e in exs:
        assert e.clauses and e.lab.startswith("docs/labs/") and e.checks
        assert "TODO" in e.skeleton and "Read:" in e.skeleton
        assert len({c.name for c in e.checks}) == len(e.checks)
        assert e.wired and e.wiring and e.replacements, f"{e.slug}: every part runs inside the stack"


@pytest.mark.parametrize("slug", SLUGS)
def test_reference_scores_full(slug):
    report = grade(find(slug), None, isolate=False, e2e_bytes=SMALL, real_tun=False)
    assert report.full, _failures(report)
    assert report.score == 100.0


@pytest.mark.parametrize("slug", SLUGS)
def test_good_solution_scores_full_through_the_seams(slug, tmp_path):
    """A correct student file, swapped in where the stack holds the reference, scores 100 %."""
    ex = _write(tmp_path, slug, GOOD[slug])
    report = grade(ex, str(tmp_path), isolate=False, e2e_bytes=SMALL, real_tun=False)
    assert report.full, _failures(report)
    if ex.wired:
        assert {r.kind for r in report.results} >= {"unit", "packet", "e2e"}


@pytest.mark.parametrize("slug", SLUGS)
def test_skeleton_scores_zero_without_hanging(slug, tmp_path):
    """The skeleton as written by 'start' loads, runs every check in a child process, and earns nothing."""
    ex = _write(tmp_path, slug, find(slug).skeleton)
    report = grade(ex, str(tmp_path), e2e_bytes=SMALL, time_limit=10, real_tun=False)
    assert not report.load_error
    assert len(report.results) == len(ex.checks)
    assert report.earned == 0 and report.score == 0.0 and not report.full
    assert all(not r.passed for r in report.results)
    assert any("NotImplementedError" in r.error for r in report.results)


@pytest.mark.parametrize("slug,mistake,edits,check,fragment", MUTANTS, ids=[f"{m[0]}-{m[1]}" for m in MUTANTS])
def test_mutant_caught_by_named_check(slug, mistake, edits, check, fragment, tmp_path):
    ex = _write(tmp_path, slug, mutant_source(slug, edits))
    report = grade(ex, str(tmp_path), isolate=False, only=[check], e2e_bytes=SMALL)
    res = report.result(check)
    assert not res.passed, f"{mistake} passed {check}"
    trace = "\n".join(res.trace)
    assert fragment in trace, f"{mistake}: {fragment!r} not in the trace of {check}:\n{trace}\n{res.error}"
    assert not res.error, f"{mistake}: a wrong answer, not an exception, expected:\n{res.error}"


def test_every_exercise_has_three_mutants():
    counts = {slug: sum(1 for m in MUTANTS if m[0] == slug) for slug in SLUGS}
    assert all(n >= 3 for n in counts.values()), counts


def test_wrap_mutant_also_fails_inside_the_stack(tmp_path):
    """Sequence comparison without wraparound: the packet-level scenario through the core catches it too."""
    slug, _, edits, _, _ = next(m for m in MUTANTS if m[:2] == ("seq", "no_wraparound"))
    ex = _write(tmp_path, slug, mutant_source(slug, edits))
    report = grade(ex, str(tmp_path), isolate=False, only=["data_across_wrap_through_stack"], time_limit=2)
    res = report.result("data_across_wrap_through_stack")
    assert not res.passed
    assert any("host >" in line for line in res.trace)  # the segments so far are in the trace


def test_checksum_mutant_fails_end_to_end(tmp_path):
    """A checksum without the end-around carry puts packets on the wire the reference rejects."""
    slug, _, edits, _, _ = next(m for m in MUTANTS if m[:2] == ("checksum", "no_end_around_carry"))
    ex = _write(tmp_path, slug, mutant_source(slug, edits))
    report = grade(ex, str(tmp_path), isolate=False, only=["transfer_5pct_loss"], e2e_bytes=SMALL, time_limit=30)
    res = report.result("transfer_5pct_loss")
    assert not res.passed
    assert "packets on the wire whose checksum the reference rejects" in "\n".join(res.trace)


@pytest.mark.parametrize("mistake,check", [("ignores_key", "level_and_edge_through_epoll"),
                                           ("oneshot_ignored", "oneshot_through_epoll")])
def test_epoll_mutants_also_fail_inside_the_stack(mistake, check, tmp_path):
    """Installed in stack.epoll, the callback that ignores the wake-up's key re-reports an edge-triggered
    reader when an ACK arrives; the one that ignores EPOLLONESHOT puts a fired entry back on the ready list."""
    slug, _, edits, _, _ = next(m for m in MUTANTS if m[:2] == ("epoll", mistake))
    ex = _write(tmp_path, slug, mutant_source(slug, edits))
    report = grade(ex, str(tmp_path), isolate=False, only=[check], time_limit=10)
    res = report.result(check)
    assert not res.passed and not res.error, "\n".join(res.trace) + res.error
    assert "expected" in res.trace[-1]


@pytest.mark.parametrize("mistake,check", [("ignores_cwnd", "cwnd_limits_through_stack"),
                                           ("no_wraparound", "peer_window_limits_through_stack"),
                                           ("off_by_one", "peer_window_limits_through_stack")])
def test_window_mutants_also_fail_inside_the_stack(mistake, check, tmp_path):
    """Installed in the sender (stack/tcp/output.py), a usable window without cwnd sends past the initial
    window, one without wraparound past the peer's window once SND.NXT wraps, one off by one a segment less."""
    slug, _, edits, _, _ = next(m for m in MUTANTS if m[:2] == ("window", mistake))
    ex = _write(tmp_path, slug, mutant_source(slug, edits))
    report = grade(ex, str(tmp_path), isolate=False, only=[check], time_limit=5)
    res = report.result(check)
    assert not res.passed and not res.error, "\n".join(res.trace) + res.error
    assert "data sent" in res.trace[-2] and any("host >" in line for line in res.trace)


@pytest.mark.parametrize("slug,mistake,check", [("reassembler", "bare_fin_forgotten", "fin_out_of_order_through_stack"),
                                                ("reno", "dupacks_not_reset_by_new_ack", "second_loss_through_stack")])
def test_mistakes_only_the_stack_shows(slug, mistake, check, tmp_path):
    """A FIN that arrives alone beyond a hole, a duplicate-ACK count that a new ACK does not reset: every
    unit scenario passes, the named scenario through the stack fails with the segments in its trace."""
    _, _, edits, _, _ = next(m for m in MUTANTS if m[:2] == (slug, mistake))
    ex = _write(tmp_path, slug, mutant_source(slug, edits))
    report = grade(ex, str(tmp_path), isolate=False, e2e_bytes=SMALL, real_tun=False, time_limit=30)
    failed = {r.name for r in report.results if not r.passed and not r.skipped}
    assert check in failed and all(ex.check_named(n).kind != "unit" for n in failed), failed
    assert any("host >" in line for line in report.result(check).trace)
