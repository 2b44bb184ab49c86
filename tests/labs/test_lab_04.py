"""docs/labs/04-blocking-vs-epoll.md: every block prints what the lab shows; every claim holds.

The simulator is not used here: the lab runs two real-time Stacks over a socketpair link,
as tests/test_epoll.py does; every wait in the lab's code is bounded.
"""
from __future__ import annotations

import inspect
import threading

import pytest

from labdoc import LANGS, Lab, run_shell, unique_tun
from stack import epoll as epoll_mod
from stack.apps import epoll_echo, servers
from stack.netstack import NetStack as Host
from stack.runtime.stack import Stack
from stack.socket import socket as StackSocket
from stack.tcp.connection import Connection

NAME = "04-blocking-vs-epoll.md"
LAB = Lab(NAME)  # the English page: its block ids (the twins' blocks are equal: test_translations.py)


@pytest.fixture(scope="module", params=LANGS)
def lab(request):
    """The lab in each language: every check below runs on the English page and on its translation."""
    return Lab(NAME, request.param)


@pytest.fixture(scope="module")
def s(lab):
    return lab.run()


@pytest.mark.parametrize("block", LAB.output_ids())
def test_each_block_prints_what_the_lab_shows(lab, s, block):
    assert s.out[block] == lab.output(block)


def test_the_lab_leaves_no_thread_behind(s):
    """The cleanup block closed both stacks: their threads, the reader and the servers' loops ended."""
    for st in (s.ns["client_stack"], s.ns["server_stack"]):
        assert st._thread is not None and not st._thread.is_alive()
    assert not s.ns["reader"].is_alive()
    assert not [t for t in threading.enumerate() if t.name in ("epoll-server", "reader", "TCPServer-worker")]


# ------------------------------------------------------------ the mapping table
def src(obj) -> str:
    return inspect.getsource(obj)


def test_the_table_names_real_code():
    assert "_read_packets" in src(Stack._run) and "host.receive" in src(Stack._read_packets)
    assert hasattr(Host, "receive")
    sim_conn = Connection.__init__
    assert "self.rcvbuf = ByteQueue()" in src(sim_conn) and "self.sndbuf = SendQueue()" in src(sim_conn)
    assert "self._cond = threading.Condition(stack.lock)" in src(StackSocket.__init__)
    assert "self._cond.wait(" in src(StackSocket._wait)
    assert "self.rcvbuf += payload" in src(Connection._deliver) and 'self.notify("readable")' in src(Connection._deliver)
    assert "conn.notify = self.stack.deferred(self._wakeup)" in src(StackSocket._attach)
    wakeup = src(StackSocket._wakeup)
    assert "self._cond.notify_all()" in wakeup and "for cb in list(self._watchers)" in wakeup
    # 'here epoll.rbr is a dict keyed by the socket'
    assert "self.rbr: dict[int, EpItem] = {}" in src(epoll_mod.epoll.__init__)
    assert "return id(sock)" in src(epoll_mod.epoll._key_of)
    reg = src(epoll_mod.epoll.register)
    assert "EpItem(" in reg and "self.rbr[key] = item" in reg and "sock._watchers.append" in reg
    assert "def ep_poll_callback" in src(epoll_mod.epoll._callback_for)
    cb = src(epoll_mod.epoll._ep_poll_callback)
    assert "ep_poll_callback(item, key, item.sock.poll_events(), self.rdllist)" in cb and "self.wq.notify_all()" in cb
    assert "rdllist.append(item)" in src(epoll_mod.ep_poll_callback)  # the decision: one home, exercise 9's seam
    assert "self.wq.wait(" in src(epoll_mod.epoll.poll)
    # 'poll (epoll_wait) only has to take items off that list': it never walks the interest set
    send = src(epoll_mod.epoll._ep_send_events)
    assert "self.rdllist.popleft()" in send and "rbr" not in send and "rbr" not in src(epoll_mod.epoll.poll)


# ------------------------------------------------------------ 3. blocking server
def test_the_blocking_server_keeps_an_acceptor_pool_and_grows_it(lab):
    """'keeps a small pool of threads waiting in accept() and adds one whenever all are busy'."""
    assert servers.StackServerMixin.min_workers == 4
    # the worker spawned when the tenth got busy needs a moment to reach accept(): wait for it too
    # (wait_until raises TimeoutError after 5 s, so a pool that keeps no acceptor still fails)
    probe = ('wait_until(lambda: len(sleepers("recv")) == 10 and len(sleepers("accept")) >= 1)\n'
             'counts = (len([t for t in threading.enumerate() if t.name == "TCPServer-worker"]),'
             ' len(sleepers("accept")))')
    ns = lab.run(["setup", "threads", "cleanup"], edit=lambda id_, code: code.replace(
        'wait_until(lambda: len(sleepers("recv")) == 10)', probe).replace(
        "for s in (client, conn, c1, s1, c2, s2, c3, s3):\n    s.close()\n", "")).ns
    workers, in_accept = ns["counts"]
    assert workers >= 11 and in_accept >= 1   # 10 busy in recv(), at least one waiting in accept()


# ------------------------------------------------------------ 5. and 6. epoll internals
def test_edge_triggered_server_drains_until_eagain():
    code = src(epoll_echo.EpollEchoServer._service)
    assert "while True:" in code and "except BlockingIOError:" in code and "drain until EAGAIN" in code
    assert "EPOLLET" in src(epoll_echo.EpollEchoServer._accept_all)


def test_level_triggered_items_go_back_on_the_ready_list():
    code = src(epoll_mod.epoll._ep_send_events)
    assert "keep.append(item)" in code and "not item.events & EPOLLET" in code


# ------------------------------------------------------------ 8. the real thing
def test_real_tun_thread_counts(lab, private_netns, tmp_path):
    lines = []
    tun = unique_tun("lab4t")  # one name for every line of this run
    for line in lab.shell("tun").splitlines():
        if line.startswith(("sudo unshare", "source ", "exit")):
            continue
        lines.append(line.replace("tun0", tun).replace("/tmp/lab4", str(tmp_path / "lab4")))
    res = run_shell("\n".join(lines), tmp_path, timeout=90)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.splitlines() == [
        "threads: 7 threads before",
        "20 clients connected: 24 threads",
        "epoll: 3 threads before",
        "20 clients connected: 3 threads",
    ]
