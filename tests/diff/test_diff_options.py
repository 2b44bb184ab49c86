"""The socket-option table: defaults, set/read back, errors (ENOPROTOOPT, EINVAL, ENOENT), inheritance."""
from __future__ import annotations

import errno
import socket
import struct

import pytest
from diffnet import wait_for

pytestmark = pytest.mark.timeout(30)

SOL, TCP = socket.SOL_SOCKET, socket.IPPROTO_TCP
TCP_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", 18)
TCP_INFO = getattr(socket, "TCP_INFO", 11)
TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", 12)


def errno_of(call) -> int:
    try:
        call()
    except OSError as exc:
        return exc.errno
    return 0


# (name, level, option, default on a fresh TCP socket)
DEFAULTS = [
    ("SO_TYPE", SOL, socket.SO_TYPE, socket.SOCK_STREAM),
    ("SO_DOMAIN", SOL, socket.SO_DOMAIN, socket.AF_INET),
    ("SO_PROTOCOL", SOL, socket.SO_PROTOCOL, socket.IPPROTO_TCP),
    ("SO_ACCEPTCONN", SOL, socket.SO_ACCEPTCONN, 0),
    ("SO_ERROR", SOL, socket.SO_ERROR, 0),
    ("SO_REUSEADDR", SOL, socket.SO_REUSEADDR, 0),
    ("SO_KEEPALIVE", SOL, socket.SO_KEEPALIVE, 0),
    ("SO_RCVLOWAT", SOL, socket.SO_RCVLOWAT, 1),
    ("SO_SNDLOWAT", SOL, socket.SO_SNDLOWAT, 1),
    ("SO_BROADCAST", SOL, socket.SO_BROADCAST, 0),
    ("SO_OOBINLINE", SOL, socket.SO_OOBINLINE, 0),
    ("TCP_NODELAY", TCP, socket.TCP_NODELAY, 0),
    ("TCP_KEEPIDLE", TCP, socket.TCP_KEEPIDLE, 7200),
    ("TCP_KEEPINTVL", TCP, socket.TCP_KEEPINTVL, 75),
    ("TCP_KEEPCNT", TCP, socket.TCP_KEEPCNT, 9),
    ("TCP_MAXSEG", TCP, socket.TCP_MAXSEG, 536),
    ("TCP_USER_TIMEOUT", TCP, TCP_USER_TIMEOUT, 0),
]


@pytest.mark.parametrize("name,level,option,default", DEFAULTS, ids=[d[0] for d in DEFAULTS])
def test_default(net, name, level, option, default):
    assert net.socket().getsockopt(level, option) == default


# (name, level, option, value set, value read back)
ROUND_TRIPS = [
    ("SO_REUSEADDR", SOL, socket.SO_REUSEADDR, 1, 1),
    ("SO_REUSEADDR_any_nonzero", SOL, socket.SO_REUSEADDR, 5, 1),
    ("SO_KEEPALIVE", SOL, socket.SO_KEEPALIVE, 1, 1),
    ("SO_RCVLOWAT", SOL, socket.SO_RCVLOWAT, 100, 100),
    ("SO_BROADCAST", SOL, socket.SO_BROADCAST, 1, 1),
    ("TCP_NODELAY", TCP, socket.TCP_NODELAY, 1, 1),
    ("TCP_NODELAY_any_nonzero", TCP, socket.TCP_NODELAY, 7, 1),
    ("TCP_KEEPIDLE", TCP, socket.TCP_KEEPIDLE, 30, 30),
    ("TCP_KEEPINTVL", TCP, socket.TCP_KEEPINTVL, 5, 5),
    ("TCP_KEEPCNT", TCP, socket.TCP_KEEPCNT, 3, 3),
    ("TCP_USER_TIMEOUT", TCP, TCP_USER_TIMEOUT, 1000, 1000),
    ("TCP_MAXSEG", TCP, socket.TCP_MAXSEG, 1000, 1000),
    ("IP_TOS", socket.IPPROTO_IP, socket.IP_TOS, 0x10, 0x10),
    ("IP_TTL", socket.IPPROTO_IP, socket.IP_TTL, 32, 32),
]


@pytest.mark.parametrize("name,level,option,value,back", ROUND_TRIPS, ids=[r[0] for r in ROUND_TRIPS])
def test_set_then_read_back(net, name, level, option, value, back):
    s = net.socket()
    s.setsockopt(level, option, value)
    assert s.getsockopt(level, option) == back


def test_so_rcvbuf_reads_back_doubled(net):
    s = net.socket()
    s.setsockopt(SOL, socket.SO_RCVBUF, 65536)
    assert s.getsockopt(SOL, socket.SO_RCVBUF) == 131072


def test_so_sndbuf_reads_back_doubled(net):
    s = net.socket()
    s.setsockopt(SOL, socket.SO_SNDBUF, 65536)
    assert s.getsockopt(SOL, socket.SO_SNDBUF) == 131072


def test_so_acceptconn_after_listen(net):
    assert net.listener().getsockopt(SOL, socket.SO_ACCEPTCONN) == 1


def test_so_acceptconn_on_connected_socket(net):
    s, _ = net.connected()
    assert s.getsockopt(SOL, socket.SO_ACCEPTCONN) == 0


@pytest.mark.parametrize("option", ["TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT"])
def test_keepalive_parameters_below_one_are_einval(net, option):
    s = net.socket()
    assert errno_of(lambda: s.setsockopt(TCP, getattr(socket, option), 0)) == errno.EINVAL


def test_tcp_maxseg_too_small_is_einval(net):
    assert errno_of(lambda: net.socket().setsockopt(TCP, socket.TCP_MAXSEG, 10)) == errno.EINVAL


def test_tcp_user_timeout_negative_is_einval(net):
    assert errno_of(lambda: net.socket().setsockopt(TCP, TCP_USER_TIMEOUT, -1)) == errno.EINVAL


def test_so_sndlowat_cannot_be_set(net):
    assert errno_of(lambda: net.socket().setsockopt(SOL, socket.SO_SNDLOWAT, 10)) == errno.ENOPROTOOPT


def test_unknown_sol_socket_option_is_enoprotoopt(net):
    s = net.socket()
    assert errno_of(lambda: s.setsockopt(SOL, 9999, 1)) == errno.ENOPROTOOPT
    assert errno_of(lambda: s.getsockopt(SOL, 9999)) == errno.ENOPROTOOPT


def test_unknown_tcp_option_is_enoprotoopt(net):
    s = net.socket()
    assert errno_of(lambda: s.setsockopt(TCP, 9999, 1)) == errno.ENOPROTOOPT
    assert errno_of(lambda: s.getsockopt(TCP, 9999)) == errno.ENOPROTOOPT


def test_unknown_level_is_enoprotoopt(net):
    s = net.socket()
    assert errno_of(lambda: s.setsockopt(9999, 1, 1)) == errno.ENOPROTOOPT


def test_tcp_congestion_set_and_read_back(net):
    s = net.socket()
    s.setsockopt(TCP, socket.TCP_CONGESTION, b"reno")
    assert s.getsockopt(TCP, socket.TCP_CONGESTION, 16).rstrip(b"\0") == b"reno"


def test_tcp_congestion_unknown_is_enoent(net):
    s = net.socket()
    assert errno_of(lambda: s.setsockopt(TCP, socket.TCP_CONGESTION, b"no-such-cc")) == errno.ENOENT


def test_tcp_congestion_with_buflen_is_bytes_of_that_length(net):
    s = net.socket()
    s.setsockopt(TCP, socket.TCP_CONGESTION, b"reno")
    assert len(s.getsockopt(TCP, socket.TCP_CONGESTION, 16)) == 16


def test_so_linger_default_is_off(net):
    s = net.socket()
    assert struct.unpack("ii", s.getsockopt(SOL, socket.SO_LINGER, 8)) == (0, 0)


def test_so_linger_set_and_read_back(net):
    s = net.socket()
    s.setsockopt(SOL, socket.SO_LINGER, struct.pack("ii", 1, 5))
    assert struct.unpack("ii", s.getsockopt(SOL, socket.SO_LINGER, 8)) == (1, 5)


def test_so_linger_zero_close_resets_peer(net):
    s, p = net.connected()
    s.setsockopt(SOL, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    with pytest.raises(ConnectionResetError):
        p.recv(10)


def test_tcp_info_is_linux_struct_with_state_established(net):
    s, _ = net.connected()
    info = s.getsockopt(TCP, TCP_INFO, 104)
    assert isinstance(info, bytes) and len(info) == 104
    assert info[0] == 1  # tcpi_state: TCP_ESTABLISHED


def test_tcp_info_state_close_on_fresh_socket(net):
    info = net.socket().getsockopt(TCP, TCP_INFO, 104)
    assert info[0] == 7  # TCP_CLOSE


def test_tcp_info_state_listen(net):
    info = net.listener().getsockopt(TCP, TCP_INFO, 104)
    assert info[0] == 10  # TCP_LISTEN


def test_so_error_is_int(net):
    assert isinstance(net.socket().getsockopt(SOL, socket.SO_ERROR), int)


def test_getsockopt_with_buflen_returns_bytes(net):
    s = net.socket()
    s.setsockopt(TCP, socket.TCP_NODELAY, 1)
    assert struct.unpack("i", s.getsockopt(TCP, socket.TCP_NODELAY, 4)) == (1,)


def test_setsockopt_bytes_value(net):
    s = net.socket()
    s.setsockopt(TCP, socket.TCP_NODELAY, struct.pack("i", 1))
    assert s.getsockopt(TCP, socket.TCP_NODELAY) == 1


# ------------------------------------------------------------------------------ inheritance by accept()
@pytest.mark.parametrize("level,option,value", [
    (TCP, socket.TCP_NODELAY, 1), (SOL, socket.SO_KEEPALIVE, 1), (TCP, socket.TCP_KEEPIDLE, 33),
    (TCP, socket.TCP_KEEPCNT, 4)], ids=["TCP_NODELAY", "SO_KEEPALIVE", "TCP_KEEPIDLE", "TCP_KEEPCNT"])
def test_accepted_socket_inherits(net, level, option, value):
    ls = net.socket()
    ls.setsockopt(level, option, value)
    ls.bind((net.local_host, 0))
    ls.listen()
    c = net.peer_socket()
    c.connect(ls.getsockname())
    s, _ = ls.accept()
    try:
        assert s.getsockopt(level, option) == value
    finally:
        s.close()


def test_accepted_socket_inherits_rcvbuf(net):
    ls = net.socket()
    ls.setsockopt(SOL, socket.SO_RCVBUF, 32768)
    ls.bind((net.local_host, 0))
    ls.listen()
    want = ls.getsockopt(SOL, socket.SO_RCVBUF)
    c = net.peer_socket()
    c.connect(ls.getsockname())
    s, _ = ls.accept()
    try:
        assert s.getsockopt(SOL, socket.SO_RCVBUF) == want
    finally:
        s.close()


def test_accepted_socket_so_acceptconn_is_zero(net):
    s, _, _ = net.accepted()
    assert s.getsockopt(SOL, socket.SO_ACCEPTCONN) == 0


def test_so_error_after_refused_connect_then_zero(net):
    s = net.socket(timeout=0)
    s.connect_ex(net.closed_port())
    assert wait_for(lambda: _readable(s))
    assert s.getsockopt(SOL, socket.SO_ERROR) == errno.ECONNREFUSED
    assert s.getsockopt(SOL, socket.SO_ERROR) == 0


def _readable(s) -> bool:
    import select
    return bool(select.select([s], [], [], 0)[0])
