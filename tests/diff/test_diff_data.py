"""send/recv: modes, flags (MSG_PEEK, MSG_WAITALL, MSG_DONTWAIT), EOF, EPIPE/ECONNRESET sequences."""
from __future__ import annotations

import errno
import os
import select
import socket
import struct
import threading
import time

import pytest
from diffnet import poll_mask, sel, wait_for

pytestmark = pytest.mark.timeout(30)


def later(delay: float, fn, *args):
    """Run ``fn(*args)`` after ``delay`` in a thread; the caller joins it (``with later(...):``)."""
    class _Later:
        def __enter__(self):
            self.t = threading.Timer(delay, fn, args)
            self.t.start()
            return self

        def __exit__(self, *exc):
            self.t.join()
    return _Later()


def arrived(s, n: int = 1) -> bool:
    """Wait until ``s`` has at least ``n`` bytes queued (MSG_PEEK|MSG_DONTWAIT probe)."""
    def have():
        try:
            return len(s.recv(n, socket.MSG_PEEK | socket.MSG_DONTWAIT)) >= n
        except BlockingIOError:
            return False
    return wait_for(have)


def reset_by_peer(net):
    """(socket under test, connected; the peer closed it with RST (SO_LINGER 0))."""
    s, p = net.connected()
    p.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    p.close()
    assert wait_for(lambda: sel(s)[0])
    return s


def test_send_returns_count_and_peer_receives(net):
    s, p = net.connected()
    assert s.send(b"hello") == 5
    assert p.recv(100) == b"hello"


def test_recv_returns_what_peer_sent(net):
    s, p = net.connected()
    p.sendall(b"abc")
    assert s.recv(100) == b"abc"


def test_sendall_large_arrives_intact(net):
    s, p = net.connected()
    data = bytes(range(256)) * 4096  # 1 MiB
    got = bytearray()
    t = threading.Thread(target=lambda: [got.extend(p.recv(65536)) for _ in iter(lambda: len(got) < len(data), False)])
    t.start()
    assert s.sendall(data) is None
    t.join(10)
    assert bytes(got) == data


def test_recv_smaller_than_available_returns_prefix(net):
    s, p = net.connected()
    p.sendall(b"0123456789")
    assert arrived(s, 10)
    assert s.recv(4) == b"0123"
    assert s.recv(100) == b"456789"


def test_recv_zero_returns_empty(net):
    s, _ = net.connected()
    assert s.recv(0) == b""


def test_recv_negative_is_valueerror(net):
    s, _ = net.connected()
    with pytest.raises(ValueError):
        s.recv(-1)


def test_send_empty_returns_zero(net):
    s, _ = net.connected()
    assert s.send(b"") == 0


def test_recv_into_fills_buffer(net):
    s, p = net.connected()
    p.sendall(b"xyz")
    buf = bytearray(10)
    assert s.recv_into(buf) == 3
    assert buf[:3] == b"xyz"


def test_recv_into_respects_nbytes(net):
    s, p = net.connected()
    p.sendall(b"abcdef")
    assert arrived(s, 6)
    buf = bytearray(10)
    assert s.recv_into(buf, 2) == 2
    assert buf[:2] == b"ab"


def test_recv_into_negative_is_valueerror(net):
    s, _ = net.connected()
    with pytest.raises(ValueError):
        s.recv_into(bytearray(4), -1)



def test_recv_into_nbytes_beyond_the_buffer_is_valueerror(net):
    """CPython checks nbytes against the buffer before it reads: nothing is consumed."""
    s, p = net.connected()
    p.sendall(b"abc")
    assert arrived(s, 3)
    with pytest.raises(ValueError, match="buffer too small"):
        s.recv_into(bytearray(2), 3)
    with pytest.raises(ValueError, match="greater than the length"):
        s.recvfrom_into(bytearray(2), 3)
    assert s.recv(10) == b"abc"

def test_send_memoryview_and_bytearray(net):
    s, p = net.connected()
    assert s.send(memoryview(b"mv")) == 2
    assert s.send(bytearray(b"ba")) == 2
    assert arrived(p, 4)
    assert p.recv(10) == b"mvba"


def test_nonblocking_recv_without_data_is_eagain(net):
    s, _ = net.connected()
    s.setblocking(False)
    with pytest.raises(BlockingIOError) as exc:
        s.recv(10)
    assert exc.value.errno == errno.EAGAIN


def test_recv_with_timeout_times_out(net):
    s, _ = net.connected()
    s.settimeout(0.1)
    with pytest.raises(TimeoutError):
        s.recv(10)


def test_msg_dontwait_on_blocking_socket_is_eagain(net):
    s, _ = net.connected(timeout=None)
    with pytest.raises(BlockingIOError):
        s.recv(10, socket.MSG_DONTWAIT)
    assert s.getblocking()


def test_msg_peek_leaves_data_queued(net):
    s, p = net.connected()
    p.sendall(b"peekaboo")
    assert arrived(s, 8)
    assert s.recv(4, socket.MSG_PEEK) == b"peek"
    assert s.recv(100, socket.MSG_PEEK) == b"peekaboo"
    assert s.recv(100) == b"peekaboo"


def test_msg_peek_blocks_until_data(net):
    s, p = net.connected()
    with later(0.1, p.sendall, b"late"):
        assert s.recv(10, socket.MSG_PEEK) == b"late"
    assert s.recv(10) == b"late"


def test_msg_peek_at_eof_is_empty(net):
    s, p = net.connected()
    p.shutdown(socket.SHUT_WR)
    assert wait_for(lambda: sel(s)[0])
    assert s.recv(10, socket.MSG_PEEK) == b""


def test_msg_peek_recv_into(net):
    s, p = net.connected()
    p.sendall(b"pk")
    assert arrived(s, 2)
    buf = bytearray(4)
    assert s.recv_into(buf, 0, socket.MSG_PEEK) == 2
    assert s.recv(4) == b"pk"


def test_msg_waitall_waits_for_all(net):
    s, p = net.connected(timeout=None)
    p.sendall(b"12")
    with later(0.15, p.sendall, b"345"):
        assert s.recv(5, socket.MSG_WAITALL) == b"12345"


def test_msg_waitall_returns_short_at_eof(net):
    s, p = net.connected(timeout=None)
    p.sendall(b"ab")
    p.shutdown(socket.SHUT_WR)
    assert s.recv(10, socket.MSG_WAITALL) == b"ab"


def test_msg_waitall_in_timeout_mode_returns_what_is_there(net):
    """CPython runs a socket with a timeout non-blocking, and Linux's MSG_WAITALL does not wait then."""
    s, p = net.connected(timeout=0.5)
    p.sendall(b"part")
    assert arrived(s, 4)
    assert s.recv(10, socket.MSG_WAITALL) == b"part"


def test_eof_after_peer_close_is_repeatable(net):
    s, p = net.connected()
    p.close()
    assert s.recv(10) == b""
    assert s.recv(10) == b""


def test_data_then_eof(net):
    s, p = net.connected()
    p.sendall(b"last words")
    p.close()
    assert arrived(s, 10)
    assert s.recv(100) == b"last words"
    assert s.recv(100) == b""


def test_send_after_peer_shut_wr_still_works(net):
    s, p = net.connected()
    p.shutdown(socket.SHUT_WR)
    assert s.recv(10) == b""
    assert s.send(b"reply") == 5
    assert p.recv(10) == b"reply"


def test_send_after_own_shut_wr_is_epipe(net):
    s, _ = net.connected()
    s.shutdown(socket.SHUT_WR)
    with pytest.raises(BrokenPipeError):
        s.send(b"x")


def test_send_after_own_shut_wr_is_epipe_every_time(net):
    s, _ = net.connected()
    s.shutdown(socket.SHUT_WR)
    for _ in range(3):
        with pytest.raises(BrokenPipeError):
            s.send(b"x")


def test_send_on_unconnected_socket_is_epipe(net):
    s = net.socket()
    with pytest.raises(OSError) as exc:
        s.send(b"x")
    assert exc.value.errno == errno.EPIPE


def test_recv_on_unconnected_socket_is_enotconn(net):
    s = net.socket()
    with pytest.raises(OSError) as exc:
        s.recv(1)
    assert exc.value.errno == errno.ENOTCONN


def test_recv_on_listening_socket_is_enotconn(net):
    ls = net.listener()
    ls.settimeout(None)  # with a timeout CPython would first poll for readability
    with pytest.raises(OSError) as exc:
        ls.recv(1)
    assert exc.value.errno == errno.ENOTCONN


def test_send_on_listening_socket_is_epipe(net):
    ls = net.listener()
    ls.settimeout(None)
    with pytest.raises(OSError) as exc:
        ls.send(b"x")
    assert exc.value.errno == errno.EPIPE


def test_recv_after_reset_is_econnreset_then_eof(net):
    s = reset_by_peer(net)
    with pytest.raises(ConnectionResetError):
        s.recv(10)
    assert s.recv(10) == b""


def test_send_after_reset_is_econnreset_then_epipe(net):
    s = reset_by_peer(net)
    with pytest.raises(ConnectionResetError):
        s.send(b"x")
    with pytest.raises(BrokenPipeError):
        s.send(b"x")


def test_so_error_after_reset_then_send_is_epipe(net):
    s = reset_by_peer(net)
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNRESET
    with pytest.raises(BrokenPipeError):
        s.send(b"x")



def test_reset_in_close_wait_is_epipe(net):
    """Linux tcp_reset(): an RST in CLOSE-WAIT (the peer's FIN read already) sets EPIPE, not ECONNRESET.
    recv() still reports the EOF it had (the FIN came first); SO_ERROR and send() see EPIPE."""
    s, p = net.connected()
    p.close()
    assert s.recv(1) == b""
    s.send(b"first")  # accepted locally; the closed peer answers RST
    assert wait_for(lambda: poll_mask(s) & select.POLLERR)
    assert s.recv(10) == b""
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.EPIPE
    with pytest.raises(BrokenPipeError):
        s.send(b"x")

def test_send_to_closed_peer_eventually_fails(net):
    """The peer closed (FIN); our first send is answered by RST; a later send fails."""
    s, p = net.connected()
    p.close()
    assert s.recv(1) == b""
    s.send(b"first")  # accepted locally; the peer answers RST
    assert wait_for(lambda: s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNRESET or _send_fails(s))


def _send_fails(s) -> bool:
    try:
        s.send(b"x")
        return False
    except (BrokenPipeError, ConnectionResetError):
        return True


def test_nonblocking_send_fills_then_eagain(net):
    s, p = net.connected()
    s.setblocking(False)
    sent, chunk = 0, bytes(65536)
    with pytest.raises(BlockingIOError) as exc:
        for _ in range(4000):  # at most 256 MiB: the peer never reads
            sent += s.send(chunk)
    assert exc.value.errno == errno.EAGAIN
    assert sent > 0


def test_send_buffer_full_is_not_writable(net):
    s, p = net.connected()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)  # fixed: it outlasts the peer's window
    s.setblocking(False)
    try:
        for _ in range(4000):
            s.send(bytes(65536))
    except BlockingIOError:
        pass
    assert sel(s) == (False, False)


def test_send_with_timeout_when_full_times_out(net):
    s, p = net.connected()
    s.settimeout(0.2)
    with pytest.raises(TimeoutError):
        for _ in range(4000):
            s.sendall(bytes(65536))


def test_sendall_blocks_until_peer_reads(net):
    s, p = net.connected()
    total = 8 << 20
    got = [0]

    def reader():
        time.sleep(0.1)
        while got[0] < total:
            n = len(p.recv(1 << 16))
            if not n:
                break
            got[0] += n

    t = threading.Thread(target=reader)
    t.start()
    s.sendall(bytes(total))
    t.join(15)
    assert got[0] == total


def test_makefile_readline_and_write(net):
    s, p = net.connected()
    p.sendall(b"line one\nline two\n")
    f = s.makefile("rwb")
    assert f.readline() == b"line one\n"
    assert f.readline() == b"line two\n"
    f.write(b"back\n")
    f.flush()
    assert p.recv(10) == b"back\n"
    f.close()


def test_operations_after_close_are_ebadf(net):
    s, _ = net.connected()
    s.close()
    for call in (lambda: s.send(b"x"), lambda: s.recv(1)):
        with pytest.raises(OSError) as exc:
            call()
        assert exc.value.errno == errno.EBADF


def test_close_is_idempotent_and_fileno_minus_one(net):
    s, _ = net.connected()
    s.close()
    s.close()
    assert s.fileno() == -1


def test_close_sends_fin_peer_reads_eof(net):
    s, p = net.connected()
    s.sendall(b"bye")
    s.close()
    assert p.recv(10) == b"bye"
    assert p.recv(10) == b""


def test_close_with_unread_data_resets_peer(net):
    """RFC 2525 / Linux: closing with unread received data sends RST, not FIN."""
    s, p = net.connected()
    p.sendall(b"unread")
    assert arrived(s, 6)
    s.close()
    with pytest.raises(ConnectionResetError):
        p.recv(10)


# ------------------------------------------------------------------------------ the other data calls
def test_sendfile_sends_a_file(net, tmp_path):
    s, p = net.connected()
    f = tmp_path / "f"
    f.write_bytes(b"file contents" * 1000)
    with open(f, "rb") as fh:
        assert s.sendfile(fh) == 13000
    s.shutdown(socket.SHUT_WR)
    got = bytearray()
    while chunk := p.recv(65536):
        got += chunk
    assert bytes(got) == b"file contents" * 1000


def test_sendmsg_gathers_buffers(net):
    s, p = net.connected()
    assert s.sendmsg([b"one ", b"two"]) == 7
    assert arrived(p, 7)
    assert p.recv(10) == b"one two"


def test_recvmsg_returns_data_and_flags(net):
    s, p = net.connected()
    p.sendall(b"msg")
    assert arrived(s, 3)
    data, ancdata, flags, addr = s.recvmsg(10)
    assert (data, ancdata, flags) == (b"msg", [], 0)


def test_recvfrom_on_tcp_has_no_address(net):
    s, p = net.connected()
    p.sendall(b"rf")
    assert arrived(s, 2)
    assert s.recvfrom(10) == (b"rf", None)


def test_sendto_on_connected_tcp_ignores_address(net):
    s, p = net.connected()
    assert s.sendto(b"st", ("203.0.113.1", 1)) == 2
    assert p.recv(10) == b"st"


def test_dup_shares_the_connection(net):
    s, p = net.connected()
    d = s.dup()
    try:
        d.sendall(b"dup")
        assert p.recv(10) == b"dup"
        s.close()
        d.sendall(b" still")  # the connection lives while a duplicate is open
        assert p.recv(10) == b" still"
    finally:
        d.close()


# ------------------------------------------------------------------------------ errors, low-water mark, the other calls
def test_so_error_after_reset_then_recv_is_eof(net):
    s = reset_by_peer(net)
    assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNRESET
    assert s.recv(10) == b""


def test_recv_after_reset_consumes_the_error_for_send(net):
    s = reset_by_peer(net)
    with pytest.raises(ConnectionResetError):
        s.recv(10)
    with pytest.raises(BrokenPipeError):
        s.send(b"x")


def test_nonblocking_send_after_reset_is_econnreset_then_epipe(net):
    s = reset_by_peer(net)
    s.setblocking(False)
    with pytest.raises(ConnectionResetError):
        s.send(b"x")
    with pytest.raises(BrokenPipeError):
        s.send(b"x")


def test_send_empty_after_reset_reports_the_error(net):
    s = reset_by_peer(net)
    with pytest.raises(ConnectionResetError):
        s.send(b"")


def test_so_rcvlowat_blocking_recv_waits_for_the_mark(net):
    s, p = net.connected(timeout=None)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 5)
    p.sendall(b"ab")
    with later(0.15, p.sendall, b"cdefg"):  # Linux wakes the reader only for an arrival that reaches the mark
        assert s.recv(10) == b"abcdefg"


def test_so_rcvlowat_bigger_than_the_request_waits_only_for_the_request(net):
    s, p = net.connected(timeout=None)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 100)
    p.sendall(b"abc")
    assert s.recv(2) == b"ab"


def test_so_rcvlowat_nonblocking_returns_what_is_there(net):
    s, p = net.connected(timeout=None)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 5)
    p.sendall(b"abc")
    got = []

    def some():
        try:
            got.append(s.recv(10, socket.MSG_DONTWAIT))
            return True
        except BlockingIOError:
            return False
    assert wait_for(some)
    assert got == [b"abc"]


def test_timeout_mode_recv_polls_first_even_with_dontwait(net):
    """CPython polls for POLLIN before a timed recv: while connecting that is a timeout, not EAGAIN."""
    s = net.socket(timeout=0)
    s.connect_ex(net.silent_peer())
    s.settimeout(0.2)
    with pytest.raises(TimeoutError):
        s.recv(10, socket.MSG_DONTWAIT)


def test_timeout_mode_send_polls_first_even_with_dontwait(net):
    s = net.socket(timeout=0)
    s.connect_ex(net.silent_peer())
    s.settimeout(0.2)
    with pytest.raises(TimeoutError):
        s.send(b"x", socket.MSG_DONTWAIT)


def test_msg_waitall_recv_into(net):
    s, p = net.connected(timeout=None)
    buf = bytearray(5)
    p.sendall(b"12")
    with later(0.15, p.sendall, b"345"):
        assert s.recv_into(buf, 5, socket.MSG_WAITALL) == 5
    assert buf == b"12345"


def test_msg_waitall_stops_at_reset(net):
    s, p = net.connected(timeout=None)
    p.sendall(b"ab")
    assert arrived(s, 2)
    p.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with later(0.15, p.close):
        assert s.recv(10, socket.MSG_WAITALL) == b"ab"


def test_msg_peek_then_dontwait_then_read(net):
    s, p = net.connected()
    p.sendall(b"xyz")
    assert arrived(s, 3)
    assert s.recv(2, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"xy"
    assert s.recv(10) == b"xyz"


def test_sendfile_with_offset_and_count(net, tmp_path):
    s, p = net.connected()
    f = tmp_path / "f"
    f.write_bytes(bytes(range(256)) * 40)
    with open(f, "rb") as fh:
        assert s.sendfile(fh, 100, 1000) == 1000
        assert fh.tell() == 1100
    s.shutdown(socket.SHUT_WR)
    got = bytearray()
    while chunk := p.recv(65536):
        got += chunk
    assert bytes(got) == (bytes(range(256)) * 40)[100:1100]


def test_sendfile_on_unconnected_socket_is_epipe(net, tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"x" * 10)
    s = net.socket()
    with open(f, "rb") as fh, pytest.raises(BrokenPipeError):
        s.sendfile(fh)


def _read_to_eof(p) -> bytes:
    got = bytearray()
    while chunk := p.recv(1 << 20):
        got += chunk
    return bytes(got)


def test_sendfile_from_an_offset_to_the_end(net, tmp_path):
    """No count: everything from the offset to EOF (a count past EOF stops there too); the file
    is left positioned after the last byte sent."""
    s, p = net.connected()
    body = bytes(range(256)) * 12000  # 3 MB: more than the buffers hold, read as it arrives
    f = tmp_path / "f"
    f.write_bytes(body)
    got = []
    reader = threading.Thread(target=lambda: got.append(_read_to_eof(p)))
    reader.start()
    with open(f, "rb") as fh:
        assert s.sendfile(fh, 1000) == len(body) - 1000
        assert fh.tell() == len(body)
        assert s.sendfile(fh, len(body) - 10, 50) == 10
        assert fh.tell() == len(body)
    s.shutdown(socket.SHUT_WR)
    reader.join(10)
    assert got == [body[1000:] + body[-10:]]


def test_sendfile_of_an_empty_file_sends_nothing(net, tmp_path):
    s, p = net.connected()
    f = tmp_path / "f"
    f.write_bytes(b"")
    with open(f, "rb") as fh:
        assert s.sendfile(fh) == 0
        assert fh.tell() == 0
    s.shutdown(socket.SHUT_WR)
    assert p.recv(10) == b""


def test_sendfile_from_past_the_end_sends_nothing(net, tmp_path):
    s, p = net.connected()
    f = tmp_path / "f"
    f.write_bytes(b"0123456789")
    with open(f, "rb") as fh:
        assert s.sendfile(fh, 11) == 0
        assert fh.tell() == 0
        assert s.sendfile(fh, 9) == 1
    s.shutdown(socket.SHUT_WR)
    assert _read_to_eof(p) == b"9"


def test_sendfile_reads_the_file_not_its_buffer(net, tmp_path):
    """The offset is the file's, whatever the file object has read ahead (sendfile(2) reads the
    descriptor); afterwards the object is positioned after the bytes sent."""
    s, p = net.connected()
    f = tmp_path / "f"
    f.write_bytes(b"abcdefghij")
    with open(f, "rb") as fh:
        assert fh.read(3) == b"abc"
        assert s.sendfile(fh, 5) == 5
        assert fh.read() == b""
    s.shutdown(socket.SHUT_WR)
    assert _read_to_eof(p) == b"fghij"


def test_sendfile_without_a_descriptor_or_from_a_pipe(net, tmp_path):
    """A file object without fileno() (BytesIO): the standard library's read()/send() loop, the
    same contract. A pipe has no size (st_size 0): CPython takes it for an empty file."""
    import io
    s, p = net.connected()
    buf = io.BytesIO(b"0123456789")
    assert s.sendfile(buf, 2, 5) == 5
    assert buf.tell() == 7
    r, w = os.pipe()
    os.write(w, b"piped bytes")
    os.close(w)
    with open(r, "rb") as pipe:
        assert s.sendfile(pipe) == 0
        assert pipe.read() == b"piped bytes"
    s.shutdown(socket.SHUT_WR)
    assert _read_to_eof(p) == b"23456"


def test_sendfile_refuses_nonblocking_sockets_and_text_files(net, tmp_path):
    s, p = net.connected()
    f = tmp_path / "f"
    f.write_bytes(b"x" * 10)
    s.setblocking(False)
    with open(f, "rb") as fh, pytest.raises(ValueError):
        s.sendfile(fh)
    s.setblocking(True)
    with open(f, "r") as fh, pytest.raises(ValueError):
        s.sendfile(fh)
    with open(f, "rb") as fh, pytest.raises(ValueError):
        s.sendfile(fh, 0, 0)  # a count must be positive


def test_sendfile_timeout_leaves_the_file_after_what_was_queued(net, tmp_path):
    """A peer that does not read: the send buffer fills, the wait for room times out
    (TimeoutError), and the file position tells exactly how much the peer will get."""
    s, p = net.connected(timeout=0.3)
    body = bytes(range(251)) * (128 << 10)  # ~32 MB: more than both sides' buffers
    f = tmp_path / "f"
    f.write_bytes(body)
    with open(f, "rb") as fh:
        with pytest.raises(TimeoutError):
            s.sendfile(fh)
        queued = fh.tell()
    assert 0 < queued < len(body)
    s.shutdown(socket.SHUT_WR)
    assert _read_to_eof(p) == body[:queued]


def test_sendmsg_on_unconnected_socket_is_epipe(net):
    with pytest.raises(BrokenPipeError):
        net.socket().sendmsg([b"x"])


def test_sendto_on_unconnected_tcp_is_epipe(net):
    """TCP ignores the address (no fast open): an unconnected socket cannot send."""
    with pytest.raises(BrokenPipeError):
        net.socket().sendto(b"x", (net.peer_host, 9))


def test_recvfrom_into_on_tcp(net):
    s, p = net.connected()
    p.sendall(b"rfi")
    assert arrived(s, 3)
    buf = bytearray(8)
    assert s.recvfrom_into(buf) == (3, None)
    assert buf[:3] == b"rfi"


def test_recvmsg_into_scatters(net):
    s, p = net.connected()
    p.sendall(b"abcdef")
    assert arrived(s, 6)
    a, b = bytearray(2), bytearray(10)
    n, ancdata, flags, addr = s.recvmsg_into([a, b])
    assert (n, ancdata, flags, bytes(a), bytes(b[:4])) == (6, [], 0, b"ab", b"cdef")


def test_recvmsg_at_eof_is_empty(net):
    s, p = net.connected()
    p.shutdown(socket.SHUT_WR)
    assert s.recvmsg(10)[0] == b""


def test_dup_has_its_own_fileno_and_both_see_data(net):
    s, p = net.connected()
    d = s.dup()
    try:
        assert d.fileno() != s.fileno() and d.fileno() >= 0
        p.sendall(b"12")
        assert arrived(d, 2)
        assert sel(s)[0] and sel(d)[0]
        assert s.recv(1) == b"1" and d.recv(1) == b"2"
    finally:
        d.close()


def test_closing_both_dups_sends_fin(net):
    s, p = net.connected()
    d = s.dup()
    s.close()
    d.close()
    assert p.recv(10) == b""


def test_detach_then_the_object_is_closed(net):
    """detach() hands the fd over: the object reports -1; on the stack it is EOPNOTSUPP instead."""
    s = net.socket()
    try:
        fd = s.detach()
    except OSError as exc:
        assert net.kind == "stack" and exc.errno == errno.EOPNOTSUPP
        return
    os_close = __import__("os").close
    os_close(fd)
    assert s.fileno() == -1


def test_msg_waitall_with_peek_waits_for_all_and_leaves_it(net):
    s, p = net.connected(timeout=None)
    p.sendall(b"12")
    with later(0.15, p.sendall, b"345"):
        assert s.recv(5, socket.MSG_WAITALL | socket.MSG_PEEK) == b"12345"
    assert s.recv(5) == b"12345"


def test_blocking_send_queues_everything_before_it_returns(net):
    """tcp_sendmsg() in blocking mode waits for room until all of it is queued (a short count only on an
    error, a signal or SO_SNDTIMEO): send() of 8 MiB to a peer that reads later returns 8 MiB."""
    s, p = net.connected()
    s.settimeout(None)
    total = 8 << 20
    res = []
    t = threading.Thread(target=lambda: res.append(s.send(bytes(total))), daemon=True)
    t.start()
    time.sleep(0.3)
    assert res == []  # the peer has not read: the buffers are full, send() still waits
    p.setblocking(False)
    got, deadline = 0, time.monotonic() + 20
    while got < total and time.monotonic() < deadline:  # bounded
        try:
            got += len(p.recv(1 << 20))
        except BlockingIOError:
            time.sleep(0.001)
    t.join(5)
    assert res == [total] and got == total


def test_recv_msg_oob_is_einval_when_urgent_data_comes_inline(net):
    """tcp_recv_urg(): no urgent octet waits out of band (none was sent, or it came inline): EINVAL."""
    s, p = net.connected()
    p.sendall(b"abc")
    assert arrived(s, 3)
    with pytest.raises(OSError) as exc:
        s.recv(1, socket.MSG_OOB)
    assert exc.value.errno == errno.EINVAL
    assert s.recv(10) == b"abc"


def test_recv_msg_errqueue_is_eagain(net):
    """No error queue entries (no IP_RECVERR): EAGAIN at once, the data left alone."""
    s, p = net.connected()
    p.sendall(b"abc")
    assert arrived(s, 3)
    s.setblocking(False)
    with pytest.raises(BlockingIOError):
        s.recv(10, socket.MSG_ERRQUEUE)
    assert s.recv(10) == b"abc"


def test_recv_into_msg_trunc_consumes_without_copying(net):
    """TCP's MSG_TRUNC (tcp(7)): the octets are discarded, the count returned, the buffer untouched."""
    s, p = net.connected()
    p.sendall(b"abcdef")
    assert arrived(s, 6)
    buf = bytearray(b"xyz")
    assert s.recv_into(buf, 3, socket.MSG_TRUNC) == 3
    assert buf == b"xyz"
    assert len(s.recv(3, socket.MSG_TRUNC)) == 3
    p.sendall(b"g")
    assert s.recv(10) == b"g"


def test_send_msg_oob_is_urgent_data(net):
    """send(MSG_OOB) sends its last octet as urgent data: the peer reads it with MSG_OOB, out of the stream."""
    s, p = net.connected()
    s.sendall(b"ab")
    assert s.send(b"!", socket.MSG_OOB) == 1
    s.sendall(b"cd")
    assert wait_for(lambda: _oob(p) == b"!")
    got = b""
    while len(got) < 4:
        got += p.recv(10)
    assert got == b"abcd"


def _oob(p) -> bytes:
    try:
        return p.recv(1, socket.MSG_OOB | socket.MSG_DONTWAIT)
    except OSError:
        return b""
