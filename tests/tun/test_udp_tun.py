"""UDP over a real TUN, the host kernel as the peer: echo both ways (fragmented datagrams included)
and ECONNREFUSED on a connected stack socket from the kernel's ICMP port unreachable."""
from __future__ import annotations

import itertools
import os
import socket
import threading

import pytest

from stack.link.netconf import configure_host_side
from stack.link.tun import TunLink
from stack.runtime.stack import Stack
import stack.udpsocket  # noqa: F401 - registers SOCK_DGRAM

STACK, HOST = "192.0.2.2", "192.0.2.1"
SIZES = [0, 1, 100, 1472, 1473, 8000, 30000, 65507]  # 1473 and up: fragmented over the 1500-byte MTU
_names = itertools.count()
pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def stack(private_netns):
    name = f"tu{os.getpid() % 100000}n{next(_names)}"
    link = TunLink(name, mtu=1500)
    configure_host_side(name, HOST + "/24", 1500)
    st = Stack(link, STACK).start()
    try:
        yield st
    finally:
        st.close()
        link.close()
        assert st.loop_error is None, st.loop_error


def _echo_forever(sock, stop: threading.Event) -> None:
    sock.settimeout(0.1)
    while not stop.is_set():
        try:
            data, addr = sock.recvfrom(65535)
        except TimeoutError:
            continue
        sock.sendto(data, addr)


def _payload(n: int, seed: int) -> bytes:
    return bytes((seed + i * 7) & 0xFF for i in range(n))


def test_stack_echo_server_answers_a_kernel_client(stack):
    srv = stack.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("", 7007))
    stop = threading.Event()
    t = threading.Thread(target=_echo_forever, args=(srv, stop), daemon=True)
    t.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as cli:
            cli.settimeout(5)
            for k, n in enumerate(SIZES * 3):
                data = _payload(n, k)
                cli.sendto(data, (STACK, 7007))
                assert cli.recvfrom(65535) == (data, (STACK, 7007)), n
    finally:
        stop.set()
        t.join(2)
    assert stack.stats().get("drop:udp_rcvbuf_full", 0) == 0


def test_stack_client_talks_to_a_kernel_echo_server(stack):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as ksrv:
        ksrv.bind((HOST, 0))
        stop = threading.Event()
        t = threading.Thread(target=_echo_forever, args=(ksrv, stop), daemon=True)
        t.start()
        try:
            cli = stack.socket(socket.AF_INET, socket.SOCK_DGRAM)
            cli.settimeout(5)
            cli.connect(ksrv.getsockname())
            assert cli.getsockname()[0] == STACK
            for k, n in enumerate(SIZES * 3):
                data = _payload(n, k)
                assert cli.send(data) == n
                assert cli.recvfrom(65535) == (data, ksrv.getsockname()), n
            cli.close()
        finally:
            stop.set()
            t.join(2)


def test_connected_stack_socket_to_a_closed_host_port_is_refused(stack):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as k:
        k.bind((HOST, 0))
        closed = k.getsockname()
    s = stack.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.connect(closed)
    s.send(b"anyone there?")
    with pytest.raises(ConnectionRefusedError):
        s.recv(100)
    s.settimeout(0)
    with pytest.raises(BlockingIOError):  # reported once, then the socket is usable again
        s.recv(100)
    assert stack.stats()["udp_icmp_error_reported"] == 1


def test_serve_udp_echo_answers_the_host(serve_process):
    srv = serve_process("--udp-echo", 7)
    assert any("udp echo :7" in line for line in srv.stdout_lines)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as cli:
        cli.settimeout(5)
        for k, n in enumerate(SIZES):
            data = _payload(n, k)
            cli.sendto(data, (STACK, 7))
            assert cli.recvfrom(65535) == (data, (STACK, 7)), n
