"""shutdown() on every state; bind/listen/accept rules; names; close."""
from __future__ import annotations

import errno
import select
import socket
import struct
import time

import pytest
from diffnet import poll_mask, sel, wait_for

pytestmark = pytest.mark.timeout(30)


def errno_of(call) -> int:
    try:
        call()
    except OSError as exc:
        return exc.errno
    return 0


# ------------------------------------------------------------------------------ shutdown
def test_shut_wr_peer_sees_eof_and_we_can_still_read(net):
    s, p = net.connected()
    s.shutdown(socket.SHUT_WR)
    assert p.recv(10) == b""
    p.sendall(b"still")
    assert s.recv(10) == b"still"


def test_shut_rd_then_recv_is_eof(net):
    s, _ = net.connected()
    s.shutdown(socket.SHUT_RD)
    assert s.recv(10) == b""


def test_shut_rd_then_send_still_works(net):
    s, p = net.connected()
    s.shutdown(socket.SHUT_RD)
    assert s.send(b"ok") == 2
    assert p.recv(10) == b"ok"


def test_shut_rdwr_peer_sees_eof_and_recv_is_eof(net):
    s, p = net.connected()
    s.shutdown(socket.SHUT_RDWR)
    assert p.recv(10) == b""
    assert s.recv(10) == b""


def test_shut_wr_twice_is_fine(net):
    s, _ = net.connected()
    s.shutdown(socket.SHUT_WR)
    assert errno_of(lambda: s.shutdown(socket.SHUT_WR)) == 0


def test_shutdown_unconnected_is_enotconn(net):
    s = net.socket()
    assert errno_of(lambda: s.shutdown(socket.SHUT_RDWR)) == errno.ENOTCONN


def test_shutdown_bound_unconnected_is_enotconn(net):
    s = net.socket()
    s.bind((net.local_host, 0))
    assert errno_of(lambda: s.shutdown(socket.SHUT_WR)) == errno.ENOTCONN


def test_shutdown_invalid_how_is_einval(net):
    s, _ = net.connected()
    assert errno_of(lambda: s.shutdown(3)) == errno.EINVAL


def test_shutdown_after_reset_is_enotconn(net):
    s, p = net.connected()
    p.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    p.close()
    assert wait_for(lambda: sel(s)[0])
    assert errno_of(lambda: s.shutdown(socket.SHUT_RDWR)) == errno.ENOTCONN


def test_shutdown_listener_wr_is_noop(net):
    ls = net.listener()
    assert errno_of(lambda: ls.shutdown(socket.SHUT_WR)) == 0
    c = net.peer_socket()
    c.connect(ls.getsockname())
    s, _ = ls.accept()
    s.close()


def test_shutdown_listener_rd_stops_listening(net):
    ls = net.listener()
    addr = ls.getsockname()
    assert errno_of(lambda: ls.shutdown(socket.SHUT_RD)) == 0
    assert net.peer_socket().connect_ex(addr) == errno.ECONNREFUSED


def test_shutdown_pending_connect_disconnects(net):
    s = net.socket(timeout=0)
    s.connect_ex(net.silent_peer())
    assert errno_of(lambda: s.shutdown(socket.SHUT_RDWR)) == 0


def test_shutdown_closed_socket_is_ebadf(net):
    s, _ = net.connected()
    s.close()
    assert errno_of(lambda: s.shutdown(socket.SHUT_RDWR)) == errno.EBADF


# ------------------------------------------------------------------------------ bind / listen / accept
def test_unbound_getsockname_is_any_zero(net):
    assert net.socket().getsockname() == ("0.0.0.0", 0)


def test_bind_port_zero_picks_a_port(net):
    s = net.socket()
    s.bind((net.local_host, 0))
    host, port = s.getsockname()
    assert host == net.local_host and port > 0


def test_bind_any_address(net):
    s = net.socket()
    s.bind(("", 0))
    assert s.getsockname()[0] == "0.0.0.0"


def test_bind_twice_is_einval(net):
    s = net.socket()
    s.bind((net.local_host, 0))
    assert errno_of(lambda: s.bind((net.local_host, 0))) == errno.EINVAL


def test_bind_foreign_address_is_eaddrnotavail(net):
    s = net.socket()
    assert errno_of(lambda: s.bind(("203.0.113.77", 0))) == errno.EADDRNOTAVAIL


def test_bind_port_of_listener_is_eaddrinuse(net):
    ls = net.listener()
    s = net.socket()
    assert errno_of(lambda: s.bind((net.local_host, ls.getsockname()[1]))) == errno.EADDRINUSE


def test_bind_port_of_listener_with_reuseaddr_is_still_eaddrinuse(net):
    ls = net.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((net.local_host, 0))
    ls.listen()
    s = net.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    assert errno_of(lambda: s.bind((net.local_host, ls.getsockname()[1]))) == errno.EADDRINUSE


def test_bind_bound_port_is_eaddrinuse(net):
    a = net.socket()
    a.bind((net.local_host, 0))
    b = net.socket()
    assert errno_of(lambda: b.bind((net.local_host, a.getsockname()[1]))) == errno.EADDRINUSE


def test_bind_bound_port_both_reuseaddr_is_allowed(net):
    a = net.socket()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    a.bind((net.local_host, 0))
    b = net.socket()
    b.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    assert errno_of(lambda: b.bind((net.local_host, a.getsockname()[1]))) == 0


def _port_in_time_wait(net, reuse: bool) -> int:
    """A port of ours whose connection we closed first (so it sits in TIME-WAIT).

    Linux lets a bind share the port with a TIME-WAIT only when both sockets set
    SO_REUSEADDR (the TIME-WAIT keeps the listener's flag, as a restarted server has it)."""
    ls = net.socket()
    if reuse:
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((net.local_host, 0))
    ls.listen()
    port = ls.getsockname()[1]
    c = net.peer_socket()
    c.connect(ls.getsockname())
    s, _ = ls.accept()
    ls.close()
    s.close()               # our FIN first: we go to TIME-WAIT
    assert c.recv(1) == b""
    c.close()
    wait_for(lambda: False, 0.1)
    return port


def test_bind_port_in_time_wait_of_a_socket_without_reuseaddr_is_eaddrinuse(net):
    port = _port_in_time_wait(net, reuse=False)
    s = net.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    assert errno_of(lambda: s.bind((net.local_host, port))) == errno.EADDRINUSE


def test_bind_port_in_time_wait_both_reuseaddr_succeeds(net):
    port = _port_in_time_wait(net, reuse=True)
    s = net.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    assert errno_of(lambda: s.bind((net.local_host, port))) == 0
    s.listen()


def test_bind_after_listener_closed_is_allowed(net):
    ls = net.listener()
    port = ls.getsockname()[1]
    ls.close()
    s = net.socket()
    assert errno_of(lambda: s.bind((net.local_host, port))) == 0


def test_listen_without_bind_picks_a_port(net):
    s = net.socket()
    s.listen()
    assert s.getsockname()[1] > 0


def test_listen_twice_is_fine(net):
    ls = net.listener()
    assert errno_of(lambda: ls.listen(5)) == 0


def test_listen_on_connected_socket_is_einval(net):
    s, _ = net.connected()
    assert errno_of(lambda: s.listen()) == errno.EINVAL


def test_accept_on_unlistened_socket_is_einval(net):
    s = net.socket()
    s.bind((net.local_host, 0))
    assert errno_of(lambda: s.accept()) == errno.EINVAL


def test_accept_nonblocking_without_pending_is_eagain(net):
    ls = net.listener()
    ls.setblocking(False)
    with pytest.raises(BlockingIOError) as exc:
        ls.accept()
    assert exc.value.errno == errno.EAGAIN


def test_accept_with_timeout_times_out(net):
    ls = net.listener()
    ls.settimeout(0.1)
    with pytest.raises(TimeoutError):
        ls.accept()


def test_accept_returns_client_address(net):
    ls = net.listener()
    c = net.peer_socket()
    c.connect(ls.getsockname())
    s, addr = ls.accept()
    assert addr == c.getsockname()
    assert s.getpeername() == c.getsockname()
    assert s.getsockname() == ls.getsockname()
    s.close()


def test_accepted_socket_is_blocking_by_default(net):
    ls = net.listener()
    ls.setblocking(False)
    c = net.peer_socket()
    c.connect(ls.getsockname())
    assert wait_for(lambda: sel(ls)[0])
    s, _ = ls.accept()
    assert s.getblocking() and s.gettimeout() is None
    s.close()


def test_accepted_socket_talks(net):
    s, c, _ = net.accepted()
    c.sendall(b"ping")
    assert s.recv(10) == b"ping"
    s.sendall(b"pong")
    assert c.recv(10) == b"pong"


def test_connection_queued_before_accept(net):
    ls = net.listener()
    clients = [net.peer_socket() for _ in range(3)]
    for c in clients:
        c.connect(ls.getsockname())
    got = sorted(ls.accept()[1] for _ in clients)
    assert got == sorted(c.getsockname() for c in clients)


def test_close_listener_refuses_new_connections(net):
    ls = net.listener()
    addr = ls.getsockname()
    ls.close()
    assert net.peer_socket().connect_ex(addr) == errno.ECONNREFUSED


def test_getpeername_unconnected_is_enotconn(net):
    assert errno_of(lambda: net.socket().getpeername()) == errno.ENOTCONN


def test_getpeername_listener_is_enotconn(net):
    assert errno_of(lambda: net.listener().getpeername()) == errno.ENOTCONN


def test_getpeername_after_peer_fin_still_works(net):
    s, p = net.connected()
    p.close()
    assert s.recv(1) == b""
    assert s.getpeername()[0] == net.peer_host


def test_family_type_proto_attributes(net):
    s = net.socket()
    assert (s.family, s.type) == (socket.AF_INET, socket.SOCK_STREAM)


def test_timeout_and_blocking_modes(net):
    s = net.socket(timeout=None)
    assert s.gettimeout() is None and s.getblocking()
    s.settimeout(1.5)
    assert s.gettimeout() == 1.5 and s.getblocking()
    s.setblocking(False)
    assert s.gettimeout() == 0.0 and not s.getblocking()
    s.setblocking(True)
    assert s.gettimeout() is None
    with pytest.raises(ValueError):
        s.settimeout(-1)


def test_context_manager_closes(net):
    s = net.socket()
    with s:
        pass
    assert s.fileno() == -1


def test_bind_port_in_time_wait_without_reuseaddr_is_eaddrinuse(net):
    port = _port_in_time_wait(net, reuse=True)
    s = net.socket()
    assert errno_of(lambda: s.bind((net.local_host, port))) == errno.EADDRINUSE


def test_shutdown_listener_rdwr_stops_listening(net):
    ls = net.listener()
    addr = ls.getsockname()
    ls.shutdown(socket.SHUT_RDWR)
    assert net.peer_socket().connect_ex(addr) == errno.ECONNREFUSED


def test_listener_shut_rd_then_listen_again_gets_a_new_port(net):
    """tcp_disconnect() releases a port bind() chose (no SOCK_BINDPORT_LOCK); the address stays."""
    ls = net.listener()
    addr = ls.getsockname()
    ls.shutdown(socket.SHUT_RD)
    assert ls.getsockname() == addr  # inet_sport stays, the port is no longer held
    ls.listen()
    new = ls.getsockname()
    assert new[0] == addr[0] and new[1] != 0
    assert net.peer_socket().connect_ex(new) == 0


def test_listener_shut_rd_keeps_a_port_given_to_bind(net):
    probe = net.socket()
    probe.bind((net.local_host, 0))
    port = probe.getsockname()[1]
    probe.close()
    ls = net.socket()
    ls.bind((net.local_host, port))
    ls.listen()
    ls.shutdown(socket.SHUT_RD)
    assert ls.getsockname() == (net.local_host, port)
    ls.listen()
    assert net.peer_socket().connect_ex((net.local_host, port)) == 0


def test_listener_shut_rd_then_accept_is_einval(net):
    ls = net.listener()
    ls.shutdown(socket.SHUT_RD)
    assert errno_of(lambda: ls.accept()) == errno.EINVAL


def test_shutdown_invalid_how_on_fresh_socket_is_einval(net):
    assert errno_of(lambda: net.socket().shutdown(-1)) == errno.EINVAL


def test_shutdown_in_close_wait_sends_fin(net):
    s, p = net.connected()
    p.shutdown(socket.SHUT_WR)
    assert s.recv(1) == b""
    s.shutdown(socket.SHUT_WR)
    assert p.recv(1) == b""


def test_shutdown_after_both_fins_is_enotconn_once_closed(net):
    """Our FIN first, then the peer's: TIME-WAIT, and the socket itself is CLOSE."""
    s, p = net.connected()
    s.shutdown(socket.SHUT_WR)
    assert p.recv(1) == b""
    p.close()
    assert s.recv(1) == b""
    assert wait_for(lambda: errno_of(lambda: s.shutdown(socket.SHUT_RD)) == errno.ENOTCONN)


def test_getpeername_after_reset_is_enotconn(net):
    s, p = net.connected()
    p.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    p.close()
    assert wait_for(lambda: sel(s)[0])
    assert errno_of(lambda: s.getpeername()) == errno.ENOTCONN


def test_bind_port_of_connected_socket_is_eaddrinuse(net):
    s, _ = net.connected()
    b = net.socket()
    assert errno_of(lambda: b.bind((net.local_host, s.getsockname()[1]))) == errno.EADDRINUSE


def test_bind_port_of_connected_socket_both_reuseaddr_is_allowed(net):
    ls = net.peer_listener()
    s = net.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.connect(ls.getsockname())
    b = net.socket()
    b.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    assert errno_of(lambda: b.bind((net.local_host, s.getsockname()[1]))) == 0


def test_bind_reuseaddr_on_one_side_only_is_eaddrinuse(net):
    a = net.socket()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    a.bind((net.local_host, 0))
    b = net.socket()
    assert errno_of(lambda: b.bind((net.local_host, a.getsockname()[1]))) == errno.EADDRINUSE


def test_bind_port_of_closed_bound_socket_is_allowed(net):
    a = net.socket()
    a.bind((net.local_host, 0))
    port = a.getsockname()[1]
    a.close()
    assert errno_of(lambda: net.socket().bind((net.local_host, port))) == 0


def test_bind_any_when_port_bound_on_address_is_eaddrinuse(net):
    a = net.socket()
    a.bind((net.local_host, 0))
    assert errno_of(lambda: net.socket().bind(("0.0.0.0", a.getsockname()[1]))) == errno.EADDRINUSE


def _shut_both_ways(net, how: str):
    """(socket under test, peer): connected, then reading and writing shut as ``how`` says; the peer has
    our FIN (its recv saw EOF)."""
    s, p = net.connected()
    if how == "SHUT_RDWR":
        s.shutdown(socket.SHUT_RDWR)
    else:
        s.shutdown(socket.SHUT_RD)
        s.shutdown(socket.SHUT_WR)
    assert p.recv(1) == b""
    return s, p


BOTH_WAYS = pytest.mark.parametrize("how", ["SHUT_RD then SHUT_WR", "SHUT_RDWR"])


@BOTH_WAYS
def test_data_after_shutting_both_ways_resets(net, how):
    """Linux tcp_rcv_state_process(): in FIN-WAIT-1/2 with the receive side shut, new data from the
    peer aborts the connection (as after close(), RFC 2525 2.17): ECONNRESET to us, and an RST to the
    peer, which had our FIN already (CLOSE-WAIT: EPIPE, see test_diff_data)."""
    s, p = _shut_both_ways(net, how)
    p.sendall(b"more")
    assert wait_for(lambda: poll_mask(p) & select.POLLERR)  # our RST reached the peer: we reset first
    with pytest.raises(ConnectionResetError):
        s.recv(10)
    assert s.recv(10) == b""
    assert p.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.EPIPE


@BOTH_WAYS
def test_reset_after_shutting_both_ways_shows_pollerr(net, how):
    """The reset above, as poll() on fileno() sees it: POLLERR joins the hang-up shown before."""
    s, p = _shut_both_ways(net, how)
    assert wait_for(lambda: poll_mask(s) & select.POLLHUP)  # our FIN acknowledged: closed both ways
    assert not poll_mask(s) & select.POLLERR
    p.sendall(b"more")
    assert wait_for(lambda: poll_mask(p) & select.POLLERR)
    assert wait_for(lambda: poll_mask(s) & select.POLLERR)


def test_data_after_shut_rd_alone_is_still_read(net):
    """SHUT_RD without our FIN: Linux keeps taking the peer's data, and recv() returns it."""
    s, p = net.connected()
    s.shutdown(socket.SHUT_RD)
    p.sendall(b"more")
    assert wait_for(lambda: sel(s)[0])
    time.sleep(0.05)  # all four bytes in
    assert s.recv(10) == b"more"
