"""Issue 12 against the real kernel (Linux >= 6.18 drops a segment that ends beyond its window, ACK
field included): echo clients that never read until both directions are full do not wedge, and a
smaller MTU on the path ("fragmentation needed" from a kernel router) still lets curl finish.

Everything runs in the test run's private network namespace (tests/conftest.py); the PMTU test
adds a namespace of its own (``unshare --net``) joined by a veth pair, removed with its process.
"""
from __future__ import annotations

import hashlib
import itertools
import os
import select
import socket
import subprocess
import sys
import threading
import time

import pytest

from stack.apps.servers import echo_server, http_server
from stack.link.netconf import configure_host_side
from stack.link.tun import TunLink
from stack.runtime.stack import Stack
from stack.tcp.config import TcpConfig
from stack.trace import ListSink, Tracer

STACK, HOST = "192.0.2.2", "192.0.2.1"
_names = itertools.count()


def unique_tun_name(prefix: str) -> str:
    """Unique among this run's devices (pid + counter), at most 15 characters."""
    return f"{prefix}{os.getpid() % 1000000}n{next(_names)}"


@pytest.fixture
def small_buffer_stack(private_netns):
    """A started stack (64 KiB buffers, so the directions fill fast) on a fresh TUN, with a trace."""
    name = unique_tun_name("ta")
    link = TunLink(name, mtu=1500)
    configure_host_side(name, HOST + "/24", 1500)
    sink = ListSink()
    stack = Stack(link, STACK, tracer=Tracer(sink), tcp_config=TcpConfig(rcvbuf=64 << 10, sndbuf=64 << 10)).start()
    try:
        yield stack, sink, name
    finally:
        stack.close()
        link.close()
        assert stack.loop_error is None, stack.loop_error


def _serve(server):
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    return t


def _fill(clients, pattern: bytes, quiet_for: float, limit: float):
    """Send on every (non-blocking) client until none has accepted a byte for ``quiet_for`` s.
    Returns (octets sent, SHA-256 of what was sent) per client."""
    sent = [0] * len(clients)
    hashes = [hashlib.sha256() for _ in clients]
    last_progress = time.monotonic()
    deadline = time.monotonic() + limit
    while time.monotonic() - last_progress < quiet_for:
        assert time.monotonic() < deadline, f"the directions never filled: sent {sent}"
        for i, c in enumerate(clients):
            try:
                n = c.send(pattern)
            except BlockingIOError:
                continue
            sent[i] += n
            hashes[i].update(pattern[:n])
            last_progress = time.monotonic()
        time.sleep(0.01)
    return sent, hashes


def test_echo_clients_that_never_read_do_not_wedge(small_buffer_stack):
    """20 kernel clients write to the stack's echo port and never read until both directions are full
    (their receive window and ours are zero, the echo threads block in sendall); then they read:
    every byte comes back, in order. Before the fix the stack's one-octet persist probe and the ACKs
    riding on it lay beyond the kernel's zero window and were dropped: every connection wedged."""
    stack, sink, _ = small_buffer_stack
    server = echo_server(stack, 7, quiet=True)
    _serve(server)
    clients = []
    try:
        for _ in range(20):
            c = socket.socket()
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 10)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 << 10)
            c.settimeout(10)
            c.connect((STACK, 7))
            c.setblocking(False)
            clients.append(c)
        pattern = bytes(range(256)) * 64  # 16 KiB
        sent, sent_hash = _fill(clients, pattern, quiet_for=1.5, limit=60)
        assert all(n > (64 << 10) for n in sent), sent  # more than our receive buffer: both directions full
        assert any(e["ev"] == "zero_window" for e in sink.events)
        got = [hashlib.sha256() for _ in clients]
        count = [0] * len(clients)
        deadline = time.monotonic() + 60
        while any(count[i] < sent[i] for i in range(len(clients))):
            assert time.monotonic() < deadline, f"wedged: echoed {count} of {sent}"
            ready, _, _ = select.select([c for i, c in enumerate(clients) if count[i] < sent[i]], [], [], 1.0)
            for c in ready:
                i = clients.index(c)
                data = c.recv(1 << 16)
                assert data, "the stack closed an echo connection"
                got[i].update(data)
                count[i] += len(data)
        for i, n in enumerate(sent):
            assert count[i] == n and got[i].digest() == sent_hash[i].digest(), f"client {i}: {count[i]} of {n}"
    finally:
        for c in clients:
            c.close()
        server.shutdown()
        server.server_close()


def test_our_window_update_reaches_a_peer_whose_window_is_zero(small_buffer_stack):
    """Both directions full, and the stack has probed the kernel's zero window for a few seconds; then
    the stack's application reads everything while the kernel clients still read nothing. The window
    updates must reach the kernel (its window is zero): they go as pure ACKs at an acceptable sequence
    number. Before the fix they went at SND.NXT, one octet past the kernel's window after a one-octet
    probe, and Linux 6.18 dropped them: the clients' writes never completed (wedged)."""
    stack, sink, _ = small_buffer_stack
    lst = stack.socket()
    lst.bind(("", 9000))
    lst.listen(16)
    lst.settimeout(10)
    n_clients, up, down = 5, 512 << 10, 256 << 10
    received = [0] * n_clients
    threads = []

    def serve_one(i, s):
        def send():
            try:
                s.sendall(b"d" * down)
            except OSError:
                pass
        t = threading.Thread(target=send, daemon=True)
        t.start()
        time.sleep(3.0)  # both directions full; persist probes go out meanwhile
        while received[i] < up:
            data = s.recv(1 << 16)
            if not data:
                break
            received[i] += len(data)
        t.join(30)

    clients, results = [], [None] * n_clients

    def client(i):
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 10)
        c.settimeout(30)
        c.connect((STACK, 9000))
        clients.append(c)
        try:
            c.sendall(b"u" * up)  # completes only if the stack's window updates reach us
            got = 0
            while got < down:
                data = c.recv(1 << 16)
                if not data:
                    break
                got += len(data)
            results[i] = got
        except OSError as exc:
            results[i] = exc

    try:
        for i in range(n_clients):
            threading.Thread(target=client, args=(i,), daemon=True).start()
            s, _ = lst.accept()
            s.settimeout(30)
            t = threading.Thread(target=serve_one, args=(i, s), daemon=True)
            t.start()
            threads.append((t, s))
        for t, _ in threads:
            t.join(40)
        deadline = time.monotonic() + 30
        while None in results and time.monotonic() < deadline:
            time.sleep(0.1)
        assert received == [up] * n_clients, f"the stack received {received} of {up} each"
        assert results == [down] * n_clients, results
        assert any(e["ev"] == "persist_probe" for e in sink.events)
    finally:
        for c in clients:
            c.close()
        for _, s in threads:
            s.close()
        lst.close()


# ------------------------------------------------------------------ PMTU discovery through a kernel router
_CLIENT = r"""
import os, subprocess, sys, time
link, addr, gw, url = sys.argv[1:5]
deadline = time.monotonic() + 20
while subprocess.run(["ip", "link", "show", link], capture_output=True).returncode:
    if time.monotonic() > deadline:
        sys.exit("veth end never arrived")
    time.sleep(0.05)
for cmd in (["ip", "link", "set", "lo", "up"], ["ip", "addr", "add", addr, "dev", link],
            ["ip", "link", "set", link, "up"], ["ip", "route", "add", "default", "via", gw]):
    subprocess.run(cmd, check=True)
r = subprocess.run(["curl", "-sS", "--max-time", "30", "-o", "-", url], capture_output=True)
sys.stdout.buffer.write(r.stdout)
sys.stderr.buffer.write(r.stderr)
sys.exit(r.returncode)
"""


def _netns_of(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def test_curl_finishes_through_a_hop_with_a_smaller_mtu(small_buffer_stack, tmp_path):
    """RFC 1191: the client sits behind a kernel router whose next hop has MTU 1000; the stack's 1500-octet
    segments (DF) draw ICMP "fragmentation needed" from the router; the stack lowers its MSS, resends
    and curl gets the whole file. Without PMTUD the large segments are a black hole."""
    stack, sink, _ = small_buffer_stack
    body = os.urandom(300 << 10)
    (tmp_path / "f.bin").write_bytes(body)
    server = http_server(stack, 8080, str(tmp_path), quiet=True)
    _serve(server)
    ours, theirs = f"pa{os.getpid() % 100000}", f"pb{os.getpid() % 100000}"
    subprocess.run(["ip", "link", "add", ours, "mtu", "1000", "type", "veth", "peer", "name", theirs,
                    "mtu", "1500"], check=True)
    child = None
    try:
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:  # this run's namespace only
            f.write("1")
        subprocess.run(["ip", "addr", "add", "10.77.0.1/24", "dev", ours], check=True)
        subprocess.run(["ip", "link", "set", ours, "up"], check=True)
        child = subprocess.Popen(["unshare", "--net", "--", sys.executable, "-c", _CLIENT, theirs, "10.77.0.2/24",
                                  "10.77.0.1", f"http://{STACK}:8080/f.bin"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        here = os.readlink("/proc/self/ns/net")
        while _netns_of(child.pid) in (here, None) or subprocess.run(["ip", "link", "set", theirs, "netns", str(child.pid)],
                             capture_output=True).returncode:
            assert time.monotonic() < deadline and child.poll() is None, "could not hand the veth end over"
            time.sleep(0.05)
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err.decode(errors="replace")
        assert hashlib.sha256(out).digest() == hashlib.sha256(body).digest(), f"{len(out)} of {len(body)} octets"
        pmtu = [e for e in sink.events if e["ev"] == "pmtu"]
        assert pmtu and pmtu[0]["mtu"] == 1000, pmtu
        assert stack.host.tcp.stats.get("icmp_error", 0) >= 1
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
        subprocess.run(["ip", "link", "del", ours], capture_output=True)
        server.shutdown()
        server.server_close()
