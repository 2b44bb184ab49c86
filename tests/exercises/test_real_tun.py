"""The real-TUN end-to-end check: curl and the kernel's TCP against the stack with a student's part.

Root only, like tests/tun: each run happens in a network namespace the check's own process
creates (stack/exercises/tun_e2e.py), inside this test run's private namespace.
"""
from __future__ import annotations

from solutions import GOOD, MUTANTS, mutant_source
from stack.exercises.catalog import find
from stack.exercises.runner import grade

SMALL = 256 << 10


def test_good_checksum_downloads_intact_over_a_real_tun(private_netns, tmp_path):
    (tmp_path / "checksum.py").write_text(GOOD["checksum"])
    report = grade(find("checksum"), str(tmp_path), only=["real_tun_curl"], e2e_bytes=SMALL)
    res = report.result("real_tun_curl")
    assert res.passed and not res.skipped, (res.trace, res.error)


def test_good_reassembler_receives_an_upload_intact_over_a_real_tun(private_netns, tmp_path):
    """Exercise 3's run turns the transfer around (curl uploads, the stack receives through the
    student's reassembler and answers with the hash of what it read): byte-exact through 5 % loss."""
    (tmp_path / "reassembler.py").write_text(GOOD["reassembler"])
    report = grade(find("reassembler"), str(tmp_path), only=["real_tun_curl"], e2e_bytes=SMALL)
    res = report.result("real_tun_curl")
    assert res.passed and not res.skipped, (res.trace, res.error)
    assert "curl uploads" in res.trace[0] and "received by the stack" in res.trace[1]


def test_broken_checksum_is_caught_by_the_kernel_round_trip(private_netns, tmp_path, monkeypatch):
    """Without the end-around carry the stack rejects the kernel's segments: named in the trace."""
    monkeypatch.setenv("TUNSTACK_EXERCISE_CONNECT_TIMEOUT", "3")  # it never connects: do not wait 10 s
    _, _, edits, _, _ = next(m for m in MUTANTS if m[:2] == ("checksum", "no_end_around_carry"))
    (tmp_path / "checksum.py").write_text(mutant_source("checksum", edits))
    report = grade(find("checksum"), str(tmp_path), only=["real_tun_curl"], e2e_bytes=SMALL)
    res = report.result("real_tun_curl")
    assert not res.passed
    trace = "\n".join(res.trace)
    assert "dropped for a bad checksum" in trace and "expected 0, got" in trace, trace


def test_without_root_the_real_tun_run_is_skipped_not_failed(monkeypatch):
    """Not root: the check says why it did not run, and the score counts it neither way."""
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    report = grade(find("seq"), None, isolate=False, only=["plain_order", "real_tun_curl"])
    res = report.result("real_tun_curl")
    assert res.skipped == "real-TUN curl run skipped: needs root (the TUN device and a private network namespace)"
    assert report.full and report.total == 1
