"""The stack loop's ping path (stack/runtime/stack.py:Stack._run): a turn's first packet, if it is a
ping, is answered (``NetStack.answer_ping``) and written before the clock, the rest of the batch and
TCP; every other packet, and every ping under pcap, takes the batch path. Over a socket-pair link,
with the real stack thread."""
from __future__ import annotations

import time

from scapy.all import ICMP, IP, TCP, raw

import stack.socket  # noqa: F401  (registers Stack.socket's type)
from stack.link.memory import SocketPairLink
from stack.pcap import PcapWriter, read_pcap
from stack.runtime.stack import Stack

ME, PEER = "192.0.2.2", "192.0.2.1"


def _ping(seq: int) -> bytes:
    return raw(IP(src=PEER, dst=ME, id=seq) / ICMP(type=8, id=0x77, seq=seq) / b"abcdefgh")


def _syn(sport: int) -> bytes:
    return raw(IP(src=PEER, dst=ME) / TCP(sport=sport, dport=80, flags="S", seq=1000, window=8192))


def _written(peer, n: int, timeout: float = 5.0) -> list[IP]:
    """The first ``n`` packets the stack writes (bounded in time)."""
    got, deadline = [], time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += peer.read_batch(16)
        time.sleep(0.005)
    return [IP(p) for p in got]


def _run(packets: list[bytes], n: int, pcap=None):
    """Queue ``packets`` on the link before the loop starts (one batch), return what it writes."""
    a, b = SocketPairLink.pair()
    st = Stack(link=a, address=ME, seed=1, pcap=pcap)
    lst = st.socket()
    lst.bind((ME, 80))
    lst.listen(8)
    b.write_batch(packets)
    with st:
        out = _written(b, n)
        stats, link_stats = st.stats(), dict(a.stats)
    lst.close()
    return out, stats, link_stats


def test_pings_in_a_batch_are_answered_before_the_tcp_output_and_counted():
    """RFC 792 echo: each reply carries its request's identifier, sequence and data; the replies
    leave before the SYN-ACK the batch owes (TCP's output is pulled after the batch)."""
    out, stats, link_stats = _run([_ping(1), _syn(4000), _ping(2)], 3)
    assert [(p[ICMP].type, p[ICMP].seq) if ICMP in p else p[TCP].flags for p in out] == [(0, 1), (0, 2), "SA"]
    assert all(p.dst == PEER and bytes(p[ICMP].payload) == b"abcdefgh" for p in out[:2])
    assert stats["icmp_echo_replies"] == 2 and stats["icmp_in"] == 2
    assert stats["ip_in"] == 3 and stats["ip_out"] == 3
    assert link_stats["rx_packets"] == 3 and link_stats["tx_packets"] == 3


def test_a_tcp_segment_first_then_a_ping_take_the_batch_path():
    out, stats, _ = _run([_syn(4001), _ping(3)], 2)
    assert [(p[ICMP].type, p[ICMP].seq) if ICMP in p else p[TCP].flags for p in out] == [(0, 3), "SA"]
    assert stats["icmp_echo_replies"] == 1 and stats["ip_out"] == 2


def test_a_ping_under_pcap_is_recorded_both_ways(tmp_path):
    """The loop's own ping path would skip the capture: with a pcap the ping takes the batch path."""
    pcap = PcapWriter(str(tmp_path / "ping.pcap"))
    out, stats, _ = _run([_ping(5)], 1, pcap)
    pcap.close()
    assert [(p[ICMP].type, p[ICMP].seq) for p in out] == [(0, 5)]
    assert [IP(p)[ICMP].type for _, p in read_pcap(str(tmp_path / "ping.pcap"))] == [8, 0]
    assert stats["icmp_echo_replies"] == 1 and stats["ip_out"] == 1


def test_a_failed_direct_write_goes_once_more_through_the_link():
    """A plain TUN's reply is written with os.write itself (Stack._first_io); if that write fails
    (ENOBUFS: the kernel's queue was full for a moment), the link's own write sends it (or counts
    the drop), and the ping is counted once."""
    import errno
    a, b = SocketPairLink.pair()
    st = Stack(link=a, address=ME, seed=1)
    read_one, _, _ = st._first_io()
    failed = []

    def failing_write(packet):
        failed.append(bytes(packet))
        raise OSError(errno.ENOBUFS, "No buffer space available")
    st._first_io = lambda: (read_one, failing_write, True)
    b.write_batch([_ping(9)])
    with st:
        out = _written(b, 1)
        stats, link_stats = st.stats(), dict(a.stats)
    assert [(p[ICMP].type, p[ICMP].seq) for p in out] == [(0, 9)] and len(failed) == 1
    assert bytes(out[0]) == failed[0]
    assert stats["icmp_echo_replies"] == 1 and stats["ip_out"] == 1
    assert link_stats["tx_packets"] == 1
