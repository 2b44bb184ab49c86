"""connect(): blocking, timeout and non-blocking; EINPROGRESS, EALREADY, EISCONN, SO_ERROR."""
from __future__ import annotations

import errno
import socket

import pytest
from diffnet import sel, wait_for


def connected_now(s) -> bool:
    try:
        s.getpeername()
        return True
    except OSError:
        return False

pytestmark = pytest.mark.timeout(30)


def test_blocking_connect_returns_none_and_sets_peer(net):
    ls = net.peer_listener()
    s = net.socket()
    assert s.connect(ls.getsockname()) is None
    assert s.getpeername() == ls.getsockname()


def test_connect_ex_returns_zero(net):
    ls = net.peer_listener()
    s = net.socket()
    assert s.connect_ex(ls.getsockname()) == 0


def test_getsockname_after_connect_is_local_address_and_port(net):
    ls = net.peer_listener()
    s = net.socket()
    s.connect(ls.getsockname())
    host, port = s.getsockname()
    assert host == net.local_host and port > 0


def test_accepted_peer_address_is_our_sockname(net):
    ls = net.peer_listener()
    s = net.socket()
    s.connect(ls.getsockname())
    _, addr = ls.accept()
    assert addr == s.getsockname()


def test_connect_to_closed_port_is_refused(net):
    s = net.socket()
    with pytest.raises(ConnectionRefusedError) as exc:
        s.connect(net.closed_port())
    assert exc.value.errno == errno.ECONNREFUSED


def test_connect_ex_to_closed_port_returns_econnrefused(net):
    s = net.socket()
    assert s.connect_ex(net.closed_port()) == errno.ECONNREFUSED


def test_connect_again_after_refused_is_refused_again(net):
    s = net.socket(timeout=None)
    addr = net.closed_port()
    assert s.connect_ex(addr) == errno.ECONNREFUSED
    assert s.connect_ex(addr) == errno.ECONNREFUSED


def test_connect_after_refused_can_succeed_on_same_socket(net):
    s = net.socket(timeout=None)
    assert s.connect_ex(net.closed_port()) == errno.ECONNREFUSED
    ls = net.peer_listener()
    assert s.connect_ex(ls.getsockname()) == 0


def test_connect_when_connected_is_eisconn(net):
    s, _ = net.connected(timeout=None)
    with pytest.raises(OSError) as exc:
        s.connect((net.peer_host, 9))
    assert exc.value.errno == errno.EISCONN


def test_connect_ex_when_connected_is_eisconn(net):
    s, _ = net.connected(timeout=None)
    assert s.connect_ex((net.peer_host, 9)) == errno.EISCONN


# With a timeout CPython connects non-blocking and waits with poll() + SO_ERROR, so the kernel's
# socket stays SS_CONNECTING: the next connect() completes it (0) or, after a failure, is ECONNABORTED.
def test_timeout_mode_connect_when_connected_returns_zero_once_then_eisconn(net):
    s, _ = net.connected()
    assert s.connect_ex((net.peer_host, 9)) == 0
    assert s.connect_ex((net.peer_host, 9)) == errno.EISCONN


def test_timeout_mode_connect_again_after_refused_is_econnaborted(net):
    s = net.socket()
    addr = net.closed_port()
    assert s.connect_ex(addr) == errno.ECONNREFUSED
    assert s.connect_ex(addr) == errno.ECONNABORTED


def test_connect_on_listening_socket(net):
    ls = net.listener()
    assert ls.connect_ex((net.peer_host, 9)) == errno.EISCONN


def test_nonblocking_connect_raises_einprogress(net):
    s = net.socket(timeout=0)
    with pytest.raises(BlockingIOError) as exc:
        s.connect(net.silent_peer())
    assert exc.value.errno == errno.EINPROGRESS


def test_nonblocking_connect_ex_returns_einprogress(net):
    s = net.socket(timeout=0)
    assert s.connect_ex(net.silent_peer()) == errno.EINPROGRESS


def test_nonblocking_connect_twice_is_ealready(net):
    s = net.socket(timeout=0)
    addr = net.silent_peer()
    assert s.connect_ex(addr) == errno.EINPROGRESS
    assert s.connect_ex(addr) == errno.EALREADY


def test_nonblocking_connect_twice_raises_blockingioerror_ealready(net):
    s = net.socket(timeout=0)
    addr = net.silent_peer()
    s.connect_ex(addr)
    with pytest.raises(BlockingIOError) as exc:
        s.connect(addr)
    assert exc.value.errno == errno.EALREADY


def test_pending_connect_is_not_writable(net):
    s = net.socket(timeout=0)
    s.connect_ex(net.silent_peer())
    assert sel(s, 0.1) == (False, False)


def test_pending_connect_so_error_is_zero(net):
    s = net.socket(timeout=0)
    s.connect_ex(net.silent_peer())
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0


def test_pending_connect_getpeername_is_enotconn(net):
    s = net.socket(timeout=0)
    s.connect_ex(net.silent_peer())
    with pytest.raises(OSError) as exc:
        s.getpeername()
    assert exc.value.errno == errno.ENOTCONN


def test_pending_connect_send_is_eagain(net):
    s = net.socket(timeout=0)
    s.connect_ex(net.silent_peer())
    with pytest.raises(BlockingIOError) as exc:
        s.send(b"x")
    assert exc.value.errno == errno.EAGAIN


def test_pending_connect_recv_is_eagain(net):
    s = net.socket(timeout=0)
    s.connect_ex(net.silent_peer())
    with pytest.raises(BlockingIOError) as exc:
        s.recv(10)
    assert exc.value.errno == errno.EAGAIN


def test_pending_connect_getsockname_has_a_port(net):
    s = net.socket(timeout=0)
    s.connect_ex(net.silent_peer())
    assert s.getsockname()[1] > 0


def test_connect_with_timeout_to_silent_peer_times_out(net):
    s = net.socket(timeout=0.3)
    with pytest.raises(TimeoutError):
        s.connect(net.silent_peer())


def test_connect_ex_with_timeout_returns_eagain(net):
    """CPython's connect_ex maps its own timeout to EWOULDBLOCK (sock_connect_impl)."""
    s = net.socket(timeout=0.3)
    assert s.connect_ex(net.silent_peer()) == errno.EAGAIN


def test_nonblocking_connect_completes_writable_so_error_zero(net):
    ls = net.peer_listener()
    s = net.socket(timeout=0)
    s.connect_ex(ls.getsockname())
    assert wait_for(lambda: connected_now(s))
    assert sel(s) == (False, True)
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    assert s.getpeername() == ls.getsockname()


def test_nonblocking_connect_then_connect_again_succeeds_once_then_eisconn(net):
    ls = net.peer_listener()
    s = net.socket(timeout=0)
    s.connect_ex(ls.getsockname())
    assert wait_for(lambda: connected_now(s))
    assert s.connect_ex(ls.getsockname()) == 0
    assert s.connect_ex(ls.getsockname()) == errno.EISCONN


def test_nonblocking_connect_refused_reports_so_error_once(net):
    s = net.socket(timeout=0)
    s.connect_ex(net.closed_port())
    assert wait_for(lambda: sel(s)[0])
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0


def test_nonblocking_connect_refused_is_readable_and_writable(net):
    s = net.socket(timeout=0)
    s.connect_ex(net.closed_port())
    assert wait_for(lambda: sel(s) == (True, True))


def test_nonblocking_connect_refused_then_connect_reports_econnrefused(net):
    s = net.socket(timeout=0)
    addr = net.closed_port()
    s.connect_ex(addr)
    assert wait_for(lambda: sel(s)[0])
    assert s.connect_ex(addr) == errno.ECONNREFUSED


def test_nonblocking_connect_refused_then_recv_reports_econnrefused(net):
    s = net.socket(timeout=0)
    s.connect_ex(net.closed_port())
    assert wait_for(lambda: sel(s)[0])
    with pytest.raises(ConnectionRefusedError):
        s.recv(1)


def test_connect_to_broadcast_is_enetunreach(net):
    s = net.socket()
    assert s.connect_ex(("255.255.255.255", 80)) == errno.ENETUNREACH


def test_connect_to_multicast_is_enetunreach(net):
    s = net.socket()
    assert s.connect_ex(("224.0.0.1", 80)) == errno.ENETUNREACH


def test_connect_address_must_be_a_tuple(net):
    s = net.socket()
    with pytest.raises(TypeError):
        s.connect("not a tuple")


def test_connect_port_out_of_range(net):
    s = net.socket()
    with pytest.raises(OverflowError):
        s.connect((net.peer_host, 70000))


def test_connect_from_bound_port_uses_it(net):
    ls = net.peer_listener()
    s = net.socket()
    s.bind((net.local_host, 0))
    port = s.getsockname()[1]
    s.connect(ls.getsockname())
    assert s.getsockname()[1] == port


def test_close_pending_connect_then_fileno_is_minus_one(net):
    s = net.socket(timeout=0)
    s.connect_ex(net.silent_peer())
    s.close()
    assert s.fileno() == -1


# ------------------------------------------------------------------------------ after a failure; send and recv while connecting
def test_nonblocking_refused_reported_then_a_new_attempt_starts(net):
    """sock_error() then disconnect: the socket is unconnected again, so the next connect() is a new attempt."""
    s = net.socket(timeout=0)
    addr = net.closed_port()
    s.connect_ex(addr)
    assert wait_for(lambda: sel(s)[0])
    assert s.connect_ex(addr) == errno.ECONNREFUSED
    ls = net.peer_listener()
    assert s.connect_ex(ls.getsockname()) == errno.EINPROGRESS
    assert wait_for(lambda: connected_now(s))


def test_connect_ex_on_closed_socket_is_ebadf(net):
    s = net.socket()
    s.close()
    assert s.connect_ex((net.peer_host, 9)) == errno.EBADF


def test_pending_connect_send_with_timeout_times_out(net):
    s = net.socket(timeout=0)
    s.connect_ex(net.silent_peer())
    s.settimeout(0.2)
    with pytest.raises(TimeoutError):
        s.send(b"x")


def test_pending_connect_recv_with_timeout_times_out(net):
    s = net.socket(timeout=0)
    s.connect_ex(net.silent_peer())
    s.settimeout(0.2)
    with pytest.raises(TimeoutError):
        s.recv(1)


def test_pending_connect_shutdown_then_socket_is_fresh(net):
    """inet_shutdown() in SYN-SENT disconnects: the socket polls as a fresh one (POLLOUT|POLLHUP)."""
    s = net.socket(timeout=0)
    s.connect_ex(net.silent_peer())
    s.shutdown(socket.SHUT_RDWR)
    assert sel(s) == (True, True)
    with pytest.raises(OSError) as exc:
        s.getpeername()
    assert exc.value.errno == errno.ENOTCONN


def test_blocking_send_right_after_nonblocking_connect_waits_for_the_handshake(net):
    ls = net.peer_listener()
    s = net.socket(timeout=0)
    s.connect_ex(ls.getsockname())
    s.settimeout(None)
    assert s.send(b"hi") == 2  # sk_stream_wait_connect() waits in SYN-SENT
    p, _ = ls.accept()
    net._closers.append(p)
    assert p.recv(2) == b"hi"


def test_connect_after_peer_reset_is_eisconn(net):
    """A connection that was reset stays SS_CONNECTED: connect() is EISCONN, not a new attempt."""
    s, p = net.connected(timeout=None)
    p.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    p.close()
    assert wait_for(lambda: sel(s)[0])
    assert s.connect_ex((net.peer_host, 9)) == errno.EISCONN


def test_so_error_after_refused_timeout_connect_is_zero(net):
    """CPython's timed connect reads SO_ERROR itself: the error is consumed."""
    s = net.socket(timeout=1.0)
    assert s.connect_ex(net.closed_port()) == errno.ECONNREFUSED
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
