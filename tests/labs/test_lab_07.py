"""docs/labs/07-io-models.md: every block prints what the lab shows; every claim holds.

Like lab 4, two real-time Stacks over a socketpair link; part 6 holds 10 000 connections on
one stack looping back to itself. The figures of part 6 come from this run: the counts are
exact (compared with the output block), the times are asserted by their shape only.
"""
from __future__ import annotations

import ast
import inspect
import re
import sys
import threading

import pytest

from labdoc import LANGS, Lab, run_shell, unique_tun
from stack import epoll as epoll_mod
from stack import iomux
from stack.socket import socket as StackSocket

NAME = "07-io-models.md"
LAB = Lab(NAME)  # the English page: its block ids (the twins' blocks are equal: test_translations.py)
ORIGINAL_POLL_EVENTS = StackSocket.poll_events


@pytest.fixture(scope="module", params=LANGS)
def lab(request):
    """The lab in each language: every check below runs on the English page and on its translation."""
    return Lab(NAME, request.param)


def _probe_waker(id_, code):
    """Part 2: record which thread wakes reader-1's wait queue (the claim: the server's stack thread)."""
    if id_ != "blocking":
        return code
    probe = ('wakers = []\n'
             '_notify = conns[1]._cond.notify_all\n'
             'conns[1]._cond.notify_all = lambda: (wakers.append(threading.current_thread()), _notify())\n'
             'clients[1].sendall(b"hi")')
    return code.replace('clients[1].sendall(b"hi")', probe)


@pytest.fixture(scope="module")
def s(lab):
    return lab.run(edit=_probe_waker)


@pytest.mark.parametrize("block", LAB.output_ids())
def test_each_block_prints_what_the_lab_shows(lab, s, block):
    assert s.out[block] == lab.output(block)


def test_the_lab_leaves_no_thread_behind_and_restores_poll_events(s):
    for st in (s.ns["client_stack"], s.ns["server_stack"]):
        assert st._thread is not None and not st._thread.is_alive()
    assert not [t for t in threading.enumerate() if t.name.startswith(("reader-", "selector"))]
    assert StackSocket.poll_events is ORIGINAL_POLL_EVENTS  # the counting wrapper is gone again


# ------------------------------------------------------------ the mapping table and the text
def src(obj) -> str:
    return inspect.getsource(obj)


def test_the_table_names_real_code():
    assert "count, result = scan()" in src(iomux._do_poll)
    assert "table.poll_wait(sock, interest)" in src(iomux._vfs_poll) and "sock.poll_events()" in src(iomux._vfs_poll)
    wait = src(iomux.PollWqueues.poll_wait)
    assert "def pollwake" in wait and "sock._watchers.append(pollwake)" in wait
    assert "self.wq.wait(" in src(iomux.PollWqueues.poll_schedule_timeout)
    assert "sock._watchers.remove(pollwake)" in src(iomux.PollWqueues.poll_freewait)
    assert "table.poll_freewait()" in src(iomux._do_poll)  # before every return
    assert "self.rdllist.popleft()" in src(epoll_mod.epoll._ep_send_events)
    # 'the interest set (rbr) is never walked by epoll_wait'
    assert "rbr" not in src(epoll_mod.epoll._ep_send_events) and "rbr" not in src(epoll_mod.epoll.poll)
    # 'POLLERR and POLLHUP are reported even when nobody asked for them' (tests/test_iomux.py shows it)
    assert iomux._ALWAYS == iomux.POLLERR | iomux.POLLHUP and "events | _ALWAYS" in src(iomux.poll._scan)
    # '(EPOLLIN has the value of POLLIN ...)'
    assert epoll_mod.EPOLLIN == iomux.POLLIN


def test_the_stack_thread_woke_the_blocked_reader(s):
    """Part 2: 'the stack thread wakes that one reader (socket._wakeup -> _cond.notify_all())'."""
    assert s.ns["wakers"][0] is s.ns["server_stack"]._thread  # the first wake-up: "hi" arrived
    assert "self._cond.notify_all()" in src(StackSocket._wakeup)


def test_select_woke_once_and_scanned_everything_twice(s):
    """Part 3 after the lab ran: the figures the prose quotes (3 entries, 6 scanned, a second pass)."""
    out = s.out["select"]
    assert "calls 1, passes 2, sockets scanned 6, wait-queue entries 3, sleeps 1" in out
    assert "sockets scanned so far: 3" in out


def test_the_scale_figures_come_from_this_run(s):
    """Part 6: per-call cost of select/poll grows with n, epoll_wait's does not (counts exact, times by shape)."""
    times = s.ns["times"]
    assert sorted(times) == [10, 100, 1000, 10_000]
    for k in (0, 1):  # select, poll
        assert times[10_000][k] > 20 * times[10][k]
        assert times[10][k] < times[100][k] < times[10_000][k]
    assert times[10_000][2] < 20 * times[10][2]  # epoll_wait
    assert times[10_000][2] < times[10_000][0] / 100
    rows = [line.split() for line in s.out["scale"].splitlines() if re.match(r"^\s+\d+ \|", line)]
    assert [(int(r[0]), int(r[2]), int(r[3]), int(r[4])) for r in rows] == [
        (n, n, n, 1) for n in (10, 100, 1000, 10_000)]


def test_the_sample_times_say_what_the_prose_says(lab):
    """The indicative times quoted: same keys; select and poll over a thousand times slower at 10 000
    than at 10 ('more than a thousand times the time'), epoll_wait about the same."""
    block = lab.text[lab.text.index("```text\n{10:"):]
    sample = ast.literal_eval(block.split("\n")[1])
    assert sorted(sample) == [10, 100, 1000, 10_000]
    assert all(sample[10_000][k] > 1000 * sample[10][k] for k in (0, 1))
    assert sample[10_000][2] <= 2 * sample[10][2]


def test_the_lab_counts_with_the_real_poll_events(lab):
    """The counting wrapper calls the socket's own poll_events (the lab measures the real scan)."""
    code = lab.code("scale")
    assert "original_poll_events = StackSocket.poll_events" in code and "return original_poll_events(self)" in code
    assert "per_call(call) for call in calls" in code and "def per_call(call, repeat=10)" in code
    assert "StackSocket.poll_events = original_poll_events" in lab.code("idle")


# ------------------------------------------------------------ 8. the real thing
def tun_script(lab, tmp_path) -> str:
    lines = []
    tun = unique_tun("lab7t")  # one name for every line of this run
    for line in lab.shell("tun").splitlines():
        if line.startswith(("sudo unshare", "source ", "exit")):
            continue
        line = line.replace("tun0", tun).replace("/tmp/lab7", str(tmp_path / "lab7"))
        lines.append(line.replace("python3 -", f"{sys.executable} -"))
    return "\n".join(lines)


def test_real_tun_poll_server(lab, private_netns, tmp_path):
    res = run_shell(tun_script(lab, tmp_path), tmp_path, timeout=90)
    assert res.returncode == 0, res.stdout + res.stderr
    shown = lab.text[lab.text.index("```text\nhello"):].split("```")[1].split("\n", 1)[1].splitlines()
    assert res.stdout.splitlines() == shown == [
        "hello", "hello", "hello", "serving",
        "request 1: poll scanned 202 sockets",
        "request 2: poll scanned 202 sockets",
        "request 3: poll scanned 202 sockets",
    ]
