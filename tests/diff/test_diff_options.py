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
    (TCP, socket.TCP_KEEPCNT, 4), (TCP, TCP_USER_TIMEOUT, 5000), (socket.IPPROTO_IP, socket.IP_TTL, 7),
    (socket.IPPROTO_IP, socket.IP_TOS, 0x10)],
    ids=["TCP_NODELAY", "SO_KEEPALIVE", "TCP_KEEPIDLE", "TCP_KEEPCNT", "TCP_USER_TIMEOUT", "IP_TTL", "IP_TOS"])
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


def _listener_with_maxseg(net, mss: int):
    ls = net.socket()
    ls.setsockopt(TCP, socket.TCP_MAXSEG, mss)
    ls.bind((net.local_host, 0))
    ls.listen()
    return ls


def test_listener_maxseg_is_announced_to_the_peer(net):
    """TCP_MAXSEG on a listener goes into the SYN-ACK's MSS option: the kernel client's own TCP_MAXSEG
    (its mss_cache: the announced 600 less the 12 octets of timestamps) shows it."""
    ls = _listener_with_maxseg(net, 600)
    c = net.peer_socket()
    c.connect(ls.getsockname())
    s, _ = ls.accept()
    try:
        assert c.getsockopt(TCP, socket.TCP_MAXSEG) == 588
    finally:
        s.close()


def test_listener_maxseg_clamps_the_accepted_socket(net):
    """The accepted socket's segments are no larger than the listener's TCP_MAXSEG (less timestamps)."""
    ls = _listener_with_maxseg(net, 600)
    c = net.peer_socket()
    c.connect(ls.getsockname())
    s, _ = ls.accept()
    try:
        assert s.getsockopt(TCP, socket.TCP_MAXSEG) == 588
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


# ------------------------------------------------------------------------------ more of the table
def test_so_linger_off_keeps_the_time(net):
    s = net.socket()
    s.setsockopt(SOL, socket.SO_LINGER, struct.pack("ii", 1, 5))
    s.setsockopt(SOL, socket.SO_LINGER, struct.pack("ii", 0, 9))
    assert struct.unpack("ii", s.getsockopt(SOL, socket.SO_LINGER, 8)) == (0, 5)


def test_so_linger_as_int_is_einval(net):
    assert errno_of(lambda: net.socket().setsockopt(SOL, socket.SO_LINGER, 1)) == errno.EINVAL


def test_so_linger_without_buflen_is_l_onoff(net):
    s = net.socket()
    s.setsockopt(SOL, socket.SO_LINGER, struct.pack("ii", 1, 5))
    assert s.getsockopt(SOL, socket.SO_LINGER) == 1


def test_so_linger_with_time_close_sends_fin_not_rst(net):
    s, p = net.connected()
    s.setsockopt(SOL, socket.SO_LINGER, struct.pack("ii", 1, 2))
    s.sendall(b"bye")
    s.close()
    assert p.recv(10) == b"bye"
    assert p.recv(10) == b""


def test_tcp_info_without_buflen_is_an_int_of_its_first_bytes(net):
    assert net.socket().getsockopt(TCP, TCP_INFO) & 0xFF == 7  # tcpi_state TCP_CLOSE


def test_tcp_info_is_cut_to_buflen(net):
    s, _ = net.connected()
    assert len(s.getsockopt(TCP, TCP_INFO, 8)) == 8


def test_tcp_info_bytes_acked_counts_what_was_sent(net):
    s, p = net.connected()
    s.sendall(b"x" * 1000)
    assert p.recv(2000)
    def acked():
        raw = s.getsockopt(TCP, TCP_INFO, 232)
        return len(raw) >= 128 and struct.unpack_from("Q", raw, 120)[0] >= 1000  # tcpi_bytes_acked
    assert wait_for(acked)


def test_tcp_info_cannot_be_set(net):
    assert errno_of(lambda: net.socket().setsockopt(TCP, TCP_INFO, 1)) == errno.ENOPROTOOPT


def test_tcp_congestion_without_buflen_is_an_int_of_the_name(net):
    s = net.socket()
    s.setsockopt(TCP, socket.TCP_CONGESTION, b"reno")
    assert s.getsockopt(TCP, socket.TCP_CONGESTION) == struct.unpack("i", b"reno")[0]


def test_getsockopt_buflen_zero_is_an_int(net):
    assert net.socket().getsockopt(SOL, socket.SO_TYPE, 0) == socket.SOCK_STREAM


def test_getsockopt_buflen_too_big_is_an_error(net):
    with pytest.raises(OSError):
        net.socket().getsockopt(SOL, socket.SO_TYPE, 2000)


def test_getsockopt_short_buflen_cuts_the_int(net):
    assert net.socket().getsockopt(SOL, socket.SO_TYPE, 2) == struct.pack("i", socket.SOCK_STREAM)[:2]


def test_setsockopt_short_bytes_is_einval(net):
    assert errno_of(lambda: net.socket().setsockopt(TCP, socket.TCP_NODELAY, b"\1")) == errno.EINVAL


@pytest.mark.parametrize("name", ["SO_TYPE", "SO_ERROR", "SO_ACCEPTCONN", "SO_PROTOCOL", "SO_DOMAIN"])
def test_read_only_options_cannot_be_set(net, name):
    assert errno_of(lambda: net.socket().setsockopt(SOL, getattr(socket, name), 1)) == errno.ENOPROTOOPT


@pytest.mark.parametrize("option,value,want", [
    ("SO_RCVBUF", 1, 2304), ("SO_SNDBUF", 1, 4608), ("SO_RCVBUF", 100000, 200000)],
    ids=["SO_RCVBUF_min", "SO_SNDBUF_min", "SO_RCVBUF_100000"])
def test_buffer_sizes_are_doubled_with_a_floor(net, option, value, want):
    s = net.socket()
    s.setsockopt(SOL, getattr(socket, option), value)
    assert s.getsockopt(SOL, getattr(socket, option)) == want


@pytest.mark.parametrize("option,value,err", [
    ("TCP_MAXSEG", 0, 0), ("TCP_MAXSEG", 88, 0), ("TCP_MAXSEG", 87, errno.EINVAL),
    ("TCP_MAXSEG", 32768, errno.EINVAL), ("TCP_KEEPIDLE", 32767, 0), ("TCP_KEEPIDLE", 32768, errno.EINVAL),
    ("TCP_KEEPINTVL", 32768, errno.EINVAL), ("TCP_KEEPCNT", 127, 0), ("TCP_KEEPCNT", 128, errno.EINVAL),
    ("TCP_USER_TIMEOUT", 0, 0)],
    ids=lambda v: str(v))
def test_tcp_option_ranges(net, option, value, err):
    opt = getattr(socket, option, TCP_USER_TIMEOUT if option == "TCP_USER_TIMEOUT" else None)
    assert errno_of(lambda: net.socket().setsockopt(TCP, opt, value)) == err


def test_tcp_maxseg_read_back_before_connect(net):
    s = net.socket()
    s.setsockopt(TCP, socket.TCP_MAXSEG, 1000)
    assert s.getsockopt(TCP, socket.TCP_MAXSEG) == 1000


def test_tcp_maxseg_clamps_the_connection(net):
    ls = net.peer_listener()
    s = net.socket()
    s.setsockopt(TCP, socket.TCP_MAXSEG, 600)
    s.connect(ls.getsockname())
    assert 0 < s.getsockopt(TCP, socket.TCP_MAXSEG) <= 600


@pytest.mark.parametrize("value,err", [(0, errno.EINVAL), (256, errno.EINVAL), (255, 0), (1, 0)])
def test_ip_ttl_range(net, value, err):
    assert errno_of(lambda: net.socket().setsockopt(socket.IPPROTO_IP, socket.IP_TTL, value)) == err


def test_ip_ttl_minus_one_is_the_default(net):
    s = net.socket()
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 32)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, -1)
    assert s.getsockopt(socket.IPPROTO_IP, socket.IP_TTL) == 64


def test_so_rcvlowat_zero_reads_back_one(net):
    s = net.socket()
    s.setsockopt(SOL, socket.SO_RCVLOWAT, 0)
    assert s.getsockopt(SOL, socket.SO_RCVLOWAT) == 1


def test_tcp_quickack_default_is_one(net):
    assert net.socket().getsockopt(TCP, TCP_QUICKACK) == 1


def test_tcp_quickack_on_a_connection(net):
    s, p = net.connected()
    p.sendall(b"q")
    assert s.recv(1) == b"q"
    s.setsockopt(TCP, TCP_QUICKACK, 1)
    assert s.getsockopt(TCP, TCP_QUICKACK) == 1


def test_so_keepalive_then_keepidle_on_a_connection(net):
    s, _ = net.connected()
    s.setsockopt(SOL, socket.SO_KEEPALIVE, 1)
    s.setsockopt(TCP, socket.TCP_KEEPIDLE, 60)
    assert (s.getsockopt(SOL, socket.SO_KEEPALIVE), s.getsockopt(TCP, socket.TCP_KEEPIDLE)) == (1, 60)


def test_accepted_socket_inherits_linger(net):
    ls = net.socket()
    ls.setsockopt(SOL, socket.SO_LINGER, struct.pack("ii", 1, 7))
    ls.bind((net.local_host, 0))
    ls.listen()
    c = net.peer_socket()
    c.connect(ls.getsockname())
    s, _ = ls.accept()
    try:
        assert struct.unpack("ii", s.getsockopt(SOL, socket.SO_LINGER, 8)) == (1, 7)
    finally:
        s.close()


def test_accepted_socket_inherits_sndbuf(net):
    ls = net.socket()
    ls.setsockopt(SOL, socket.SO_SNDBUF, 50000)
    ls.bind((net.local_host, 0))
    ls.listen()
    c = net.peer_socket()
    c.connect(ls.getsockname())
    s, _ = ls.accept()
    try:
        assert s.getsockopt(SOL, socket.SO_SNDBUF) == 100000
    finally:
        s.close()


def test_so_acceptconn_after_listener_shut_rd_is_zero(net):
    ls = net.listener()
    ls.shutdown(socket.SHUT_RD)
    assert ls.getsockopt(SOL, socket.SO_ACCEPTCONN) == 0


def test_so_reuseport_read_back(net):
    s = net.socket()
    s.setsockopt(SOL, socket.SO_REUSEPORT, 3)
    assert s.getsockopt(SOL, socket.SO_REUSEPORT) == 1
