"""SocketPairLink: the in-memory link two stacks in one process talk over."""
from __future__ import annotations

import select

import pytest

from stack.link import tun
from stack.link.memory import SocketPairLink
from stack.link.tun import LinkError, TunLink


@pytest.fixture
def pair():
    a, b = SocketPairLink.pair(mtu=1500)
    yield a, b
    a.close()
    b.close()


def test_what_a_writes_b_reads_and_back(pair):
    a, b = pair
    a.write(b"\x45one")
    a.write_batch([b"\x45two", b"\x45three"])
    b.write(b"\x45reply")
    assert b.read_batch() == [b"\x45one", b"\x45two", b"\x45three"]
    assert a.read_batch() == [b"\x45reply"]
    assert (a.stats["tx_packets"], b.stats["rx_packets"]) == (3, 3)


def test_read_batch_empty_bounded_and_boundaries_kept(pair):
    a, b = pair
    assert b.read_batch() == []
    sizes = [1, 1500, 20, 600, 1499]
    for n in sizes:
        a.write(bytes([n % 256]) * n)
    got = b.read_batch(max_packets=2) + b.read_batch(max_packets=10)
    assert [len(p) for p in got] == sizes
    assert b.read_batch() == []


def test_read_iter_reads_each_packet_when_asked_and_counts_what_it_read(pair):
    a, b = pair
    assert list(b.read_iter()) == []
    for n in (1, 2, 3, 4):
        a.write(b"\x45" * n)
    it = b.read_iter(max_packets=3)
    assert next(it) == b"\x45"
    a.write(b"\x45late")  # not read yet: the iterator takes it after what was queued before
    assert list(it) == [b"\x45" * 2, b"\x45" * 3]
    assert list(b.read_iter()) == [b"\x45" * 4, b"\x45late"]
    assert b.stats["rx_packets"] == 5


def test_fileno_becomes_readable(pair):
    a, b = pair
    assert select.select([b], [], [], 0) == ([], [], [])
    a.write(b"x")
    assert select.select([b], [], [], 1)[0] == [b]


def test_packet_over_mtu_is_dropped_and_counted():
    a, b = SocketPairLink.pair(mtu=576)
    a.write(b"y" * 577)
    a.write(b"y" * 576)
    assert [len(p) for p in b.read_batch()] == [576]
    assert a.stats["tx_drop_toobig"] == 1 and a.stats["tx_dropped"] == 1


def test_full_queue_drops_instead_of_blocking(pair):
    a, b = pair
    for _ in range(100_000):  # bounded: the queue fills long before this
        a.write(b"z" * 1500)
        if a.stats["tx_drop_full"]:
            break
    assert a.stats["tx_drop_full"] == 1
    assert len(b.read_batch(max_packets=100_000)) == a.stats["tx_packets"]


def test_close_is_idempotent_and_peer_sees_eof(pair):
    a, b = pair
    a.write(b"last")
    a.close()
    a.close()
    assert a.closed
    with pytest.raises(ValueError):
        a.fileno()
    assert b.read_batch() == [b"last"]
    assert b.read_batch() == []  # EOF, not a busy loop
    b.write(b"to nobody")  # peer gone: a drop, not an exception
    assert b.stats["tx_drop_down"] == 1


def test_names_are_distinct():
    a, b = SocketPairLink.pair()
    c, d = SocketPairLink.pair()
    assert len({x.name for x in (a, b, c, d)}) == 4
    assert "mtu=1500" in repr(a)
    for x in (a, b, c, d):
        x.close()


def test_tun_missing_device_gives_clear_error(monkeypatch):
    monkeypatch.setattr(tun, "TUN_PATH", "/nonexistent/net/tun")
    with pytest.raises(LinkError, match="modprobe tun"):
        TunLink("tsnone0")


def test_tun_name_too_long():
    with pytest.raises(ValueError, match="1..15"):
        TunLink("x" * 16)
