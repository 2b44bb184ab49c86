"""SO_RCVTIMEO and SO_SNDTIMEO: struct timeval in and out (rounded up to the kernel's jiffy), their
errors, inheritance by accepted sockets, and what they do to blocking calls (sock_rcvtimeo(),
sock_sndtimeo()): EAGAIN once they run out, EINPROGRESS for a connect. A Python timeout
(``settimeout``) runs the socket non-blocking underneath, so they matter in blocking mode only."""
from __future__ import annotations

import errno
import socket
import struct
import time

import pytest

pytestmark = pytest.mark.timeout(30)

SOL = socket.SOL_SOCKET
TV = struct.Struct("ll")
OPTIONS = [pytest.param(socket.SO_RCVTIMEO, id="SO_RCVTIMEO"), pytest.param(socket.SO_SNDTIMEO, id="SO_SNDTIMEO")]


def _jiffy_us() -> int:
    """The host kernel's rounding, read off a kernel socket (both runs expect the same)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as k:
        k.setsockopt(SOL, socket.SO_RCVTIMEO, TV.pack(0, 1))
        return TV.unpack(k.getsockopt(SOL, socket.SO_RCVTIMEO, TV.size))[1]


@pytest.mark.parametrize("option", OPTIONS)
def test_default_is_zero_for_ever(net, option):
    s = net.socket()
    assert TV.unpack(s.getsockopt(SOL, option, TV.size)) == (0, 0)
    assert s.getsockopt(SOL, option) == 0


@pytest.mark.parametrize("option", OPTIONS)
def test_set_reads_back_rounded_up_to_a_jiffy(net, option):
    s = net.socket()
    jiffy = _jiffy_us()
    for tv, want in [((0, 1), (0, jiffy)), ((1, 500), (1, jiffy)), ((2, 999999), (3, 0)), ((5, 0), (5, 0)),
                     ((0, 0), (0, 0)), ((-1, 0), (0, 0))]:
        s.setsockopt(SOL, option, TV.pack(*tv))
        assert TV.unpack(s.getsockopt(SOL, option, TV.size)) == want, tv
    s.setsockopt(SOL, option, TV.pack(7, 0))
    assert s.getsockopt(SOL, option) == 7  # no buflen: the first int of the timeval, tv_sec


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("value,err", [(TV.pack(0, 1_000_000), errno.EDOM), (TV.pack(0, -1), errno.EDOM),
                                       (b"\0" * 8, errno.EINVAL), (5, errno.EINVAL)],
                         ids=["usec-1e6", "usec-negative", "8-bytes", "int"])
def test_bad_timevals(net, option, value, err):
    s = net.socket()
    with pytest.raises(OSError) as exc:
        s.setsockopt(SOL, option, value)
    assert exc.value.errno == err


def test_accepted_socket_inherits_them(net):
    ls = net.listener()
    ls.setsockopt(SOL, socket.SO_RCVTIMEO, TV.pack(3, 0))
    ls.setsockopt(SOL, socket.SO_SNDTIMEO, TV.pack(4, 0))
    c = net.peer_socket()
    c.connect(ls.getsockname())
    s, _ = ls.accept()
    net._closers.append(s)
    assert TV.unpack(s.getsockopt(SOL, socket.SO_RCVTIMEO, TV.size)) == (3, 0)
    assert TV.unpack(s.getsockopt(SOL, socket.SO_SNDTIMEO, TV.size)) == (4, 0)


def _blocking(s, option, seconds: float):
    s.settimeout(None)
    s.setsockopt(SOL, option, TV.pack(0, int(seconds * 1e6)))


def test_blocking_recv_gives_eagain_after_rcvtimeo(net):
    s, p = net.connected()
    _blocking(s, socket.SO_RCVTIMEO, 0.2)
    t0 = time.monotonic()
    with pytest.raises(BlockingIOError) as exc:
        s.recv(10)
    assert exc.value.errno == errno.EAGAIN and 0.15 < time.monotonic() - t0 < 2
    p.sendall(b"x")
    assert s.recv(10) == b"x"  # data in time: no error


def test_blocking_accept_gives_eagain_after_rcvtimeo(net):
    ls = net.listener()
    _blocking(ls, socket.SO_RCVTIMEO, 0.2)
    with pytest.raises(BlockingIOError) as exc:
        ls.accept()
    assert exc.value.errno == errno.EAGAIN


def test_python_timeout_wins_over_rcvtimeo(net):
    """With settimeout() CPython polls itself (the fd is non-blocking): socket.timeout, not EAGAIN."""
    s, _ = net.connected()
    s.setsockopt(SOL, socket.SO_RCVTIMEO, TV.pack(5, 0))
    s.settimeout(0.2)
    with pytest.raises(TimeoutError):
        s.recv(10)


def test_blocking_send_to_a_full_buffer_gives_eagain_after_sndtimeo(net):
    s, _ = net.connected()
    s.setsockopt(SOL, socket.SO_SNDBUF, 1 << 16)
    _blocking(s, socket.SO_SNDTIMEO, 0.2)
    sent, deadline = 0, time.monotonic() + 10
    with pytest.raises(BlockingIOError) as exc:
        while time.monotonic() < deadline:  # bounded: the buffers fill within a few calls
            sent += s.send(bytes(1 << 16))
    assert exc.value.errno == errno.EAGAIN and sent > 0


def test_blocking_connect_gives_einprogress_after_sndtimeo(net):
    s = net.socket()
    _blocking(s, socket.SO_SNDTIMEO, 0.2)
    addr = net.silent_peer()
    with pytest.raises(BlockingIOError) as exc:
        s.connect(addr)
    assert exc.value.errno == errno.EINPROGRESS
    with pytest.raises(OSError) as again:
        s.connect(addr)  # still connecting: EALREADY (after SO_SNDTIMEO once more)
    assert again.value.errno == errno.EALREADY


def test_blocking_send_stopped_by_sndtimeo_returns_what_it_queued(net):
    """tcp_sendmsg(): a blocking send that runs out of SO_SNDTIMEO after queueing some returns that count."""
    s, _ = net.connected()
    _blocking(s, socket.SO_SNDTIMEO, 0.2)
    t0 = time.monotonic()
    n = s.send(bytes(32 << 20))  # far more than the buffers hold: the peer reads nothing
    assert 0 < n < 32 << 20 and time.monotonic() - t0 >= 0.15


# ---------------------------------------------------------------- UDP
@pytest.mark.parametrize("option", OPTIONS)
def test_udp_reads_back_and_refuses_alike(net, option):
    u = net.socket(socket.SOCK_DGRAM)
    assert TV.unpack(u.getsockopt(SOL, option, TV.size)) == (0, 0)
    u.setsockopt(SOL, option, TV.pack(1, 1))
    assert TV.unpack(u.getsockopt(SOL, option, TV.size)) == (1, _jiffy_us())
    assert u.getsockopt(SOL, option) == 1
    with pytest.raises(OSError) as exc:
        u.setsockopt(SOL, option, TV.pack(0, 1_000_000))
    assert exc.value.errno == errno.EDOM


def test_udp_blocking_recv_gives_eagain_after_rcvtimeo(net):
    """A UDP client's classic receive timeout (the reply never comes)."""
    u = net.socket(socket.SOCK_DGRAM)
    u.bind(("", 0))
    _blocking(u, socket.SO_RCVTIMEO, 0.2)
    t0 = time.monotonic()
    with pytest.raises(BlockingIOError) as exc:
        u.recvfrom(100)
    assert exc.value.errno == errno.EAGAIN and 0.15 < time.monotonic() - t0 < 2


def test_waitall_recv_stopped_by_rcvtimeo_returns_what_arrived(net):
    """tcp_recvmsg(): MSG_WAITALL waits for the whole request, but SO_RCVTIMEO running out returns
    the bytes copied so far (EAGAIN only when there are none)."""
    s, p = net.connected()
    _blocking(s, socket.SO_RCVTIMEO, 0.2)
    p.sendall(b"abc")
    assert s.recv(10, socket.MSG_WAITALL) == b"abc"


def test_rcvlowat_recv_stopped_by_rcvtimeo_returns_what_arrived(net):
    s, p = net.connected()
    _blocking(s, socket.SO_RCVTIMEO, 0.2)
    s.setsockopt(SOL, socket.SO_RCVLOWAT, 10)
    p.sendall(b"abc")
    assert s.recv(100) == b"abc"
