"""TunLink + netconf against the real kernel, inside the run's private network namespace.

The kernel side of the TUN is 192.0.2.1/24; we play 192.0.2.2 by hand with scapy-crafted
packets.
"""
from __future__ import annotations

import errno
import select
import socket
import subprocess
import time

import pytest
from pyroute2 import IPRoute
from scapy.layers.inet import ICMP, IP, UDP

from stack.link import netconf
from stack.link.tun import LinkError, TunLink
from stack.pcap import read_pcap

HOST, STACK = "192.0.2.1", "192.0.2.2"


def read_until(link, match, timeout=2.0):
    """Read packets from ``link`` until ``match(scapy_ip)`` is true; return that packet."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        select.select([link], [], [], 0.1)
        for raw in link.read_batch():
            seen.append(raw)
            if raw[0] >> 4 == 4 and match(IP(raw)):
                return IP(raw)
    raise AssertionError(f"no matching packet within {timeout} s; read {seen!r}")


def kernel_udp_socket(port=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((HOST, port))
    s.settimeout(2)
    return s


def test_configured_host_side(tun_link):
    with IPRoute() as ipr:
        (link,) = ipr.get_links(ifname=tun_link.name)
        addrs = [a.get("IFA_ADDRESS") for a in ipr.get_addr(index=link["index"])]
    assert link.get("IFLA_MTU") == 1500
    assert link.get("IFLA_TXQLEN") == netconf.TXQUEUELEN != 500  # not the TUN default
    assert link["flags"] & 1, "interface should be up (IFF_UP)"
    assert addrs == [HOST]
    with open(f"/proc/sys/net/ipv6/conf/{tun_link.name}/disable_ipv6") as f:
        assert f.read().strip() == "1"
    netconf.configure_host_side(tun_link.name)  # idempotent: address already there
    netconf.set_mtu(tun_link.name, 1280)
    netconf.set_txqueuelen(tun_link.name, 1000)
    with IPRoute() as ipr:
        (link,) = ipr.get_links(ifname=tun_link.name)
    assert (link.get("IFLA_MTU"), link.get("IFLA_TXQLEN")) == (1280, 1000)


def test_kernel_udp_datagram_is_read_from_tun(tun_link):
    with kernel_udp_socket() as s:
        s.sendto(b"hello tun", (STACK, 9))
        port = s.getsockname()[1]
    pkt = read_until(tun_link, lambda p: UDP in p and p[UDP].dport == 9)
    assert (pkt.src, pkt.dst, pkt[UDP].sport) == (HOST, STACK, port)
    assert bytes(pkt[UDP].payload) == b"hello tun"
    assert tun_link.stats["rx_packets"] >= 1


def test_packet_written_to_tun_reaches_kernel_socket(tun_link):
    with kernel_udp_socket() as s:
        port = s.getsockname()[1]
        tun_link.write(bytes(IP(src=STACK, dst=HOST) / UDP(sport=4242, dport=port) / b"hi"))
        data, addr = s.recvfrom(100)
    assert (data, addr) == (b"hi", (STACK, 4242))
    assert tun_link.stats["tx_packets"] == 1


def test_icmp_echo_round_trip_with_raw_socket(tun_link):
    """The kernel pings 192.0.2.2; we answer with a scapy-crafted echo reply."""
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
        s.settimeout(2)
        s.sendto(bytes(ICMP(type=8, id=0x1234, seq=7) / b"ping!"), (STACK, 0))
        req = read_until(tun_link, lambda p: ICMP in p and p[ICMP].type == 8)
        reply = IP(src=STACK, dst=HOST) / ICMP(type=0, id=req[ICMP].id, seq=req[ICMP].seq) \
            / bytes(req[ICMP].payload)
        tun_link.write_batch([bytes(reply)])
        while True:  # a raw socket also sees other ICMP; bounded by its timeout
            got = IP(s.recv(2000))
            if got[ICMP].type == 0:
                break
    assert got.src == STACK and (got[ICMP].id, got[ICMP].seq) == (0x1234, 7)
    assert bytes(got[ICMP].payload) == b"ping!"


def test_read_batch_is_nonblocking_and_bounded(tun_link):
    t0 = time.monotonic()
    assert tun_link.read_batch() == []
    assert time.monotonic() - t0 < 0.5
    with kernel_udp_socket() as s:
        for i in range(5):
            s.sendto(b"%d" % i, (STACK, 9))
    time.sleep(0.2)
    first = tun_link.read_batch(max_packets=3)
    rest = tun_link.read_batch(max_packets=3)
    assert [len(first), len(rest)] == [3, 2]
    assert [bytes(IP(p)[UDP].payload) for p in first + rest] == [b"0", b"1", b"2", b"3", b"4"]
    assert tun_link.read_batch() == []


def test_read_iter_is_nonblocking_bounded_and_counted(tun_link):
    """TunLink.read_iter: read_batch one packet at a time (the runtime processes each as it is read)."""
    assert list(tun_link.read_iter()) == []
    before = tun_link.stats["rx_packets"]
    with kernel_udp_socket() as s:
        for i in range(5):
            s.sendto(b"%d" % i, (STACK, 9))
    time.sleep(0.2)
    first, rest = list(tun_link.read_iter(max_packets=3)), list(tun_link.read_iter(max_packets=3))
    assert [bytes(IP(p)[UDP].payload) for p in first + rest] == [b"0", b"1", b"2", b"3", b"4"]
    assert [len(first), len(rest)] == [3, 2] and tun_link.stats["rx_packets"] - before == 5


def test_write_never_raises_for_transient_errors(tun_link):
    tun_link.write(b"\x00 not an ip packet")  # TUN: EINVAL (version nibble 0)
    with IPRoute() as ipr:
        ipr.link("set", index=netconf.link_index(tun_link.name), state="down")
    tun_link.write(bytes(IP(src=STACK, dst=HOST) / UDP(dport=9)))  # EIO: link down
    assert tun_link.stats["tx_drop_invalid"] == 1
    assert tun_link.stats["tx_drop_down"] == 1
    assert tun_link.stats["tx_dropped"] == 2 and tun_link.stats["tx_packets"] == 0


def test_write_batch_sends_in_order_and_counts_each_drop(tun_link):
    """The batch loop (TunLink.write_batch) keeps write()'s rules: a bad packet is dropped and
    counted, the ones after it still go out, in order; (headers, payload) pairs are one packet."""
    with kernel_udp_socket(9999) as s:
        good = [bytes(IP(src=STACK, dst=HOST) / UDP(sport=7, dport=9999) / (b"%d" % i)) for i in range(3)]
        pair = (good[2][:28], good[2][28:])
        tun_link.write_batch([good[0], b"\x00 not an ip packet", good[1], pair])
        got = [s.recvfrom(100)[0] for _ in range(3)]
    assert got == [b"0", b"1", b"2"]
    assert tun_link.stats["tx_drop_invalid"] == 1 and tun_link.stats["tx_dropped"] == 1
    assert tun_link.stats["tx_packets"] == 3


def test_device_is_removed_on_close(tun_name):
    link = TunLink(tun_name)
    assert link.name == tun_name and link.fileno() >= 0
    assert netconf.link_index(tun_name) is not None
    link.close()
    link.close()  # idempotent
    assert netconf.link_index(tun_name) is None
    assert link.closed
    with pytest.raises(ValueError):
        link.fileno()


def test_context_manager_closes(tun_name):
    with TunLink(tun_name) as link:
        assert netconf.link_index(tun_name) is not None
    assert link.closed and netconf.link_index(tun_name) is None


def test_open_errors_are_clear(tun_name):
    with TunLink(tun_name):
        with pytest.raises(LinkError, match="busy") as exc:
            TunLink(tun_name)
        assert exc.value.errno == errno.EBUSY
    with pytest.raises(LinkError, match="non-TUN device"):
        TunLink("lo")


def test_remove_link(tun_name):
    with TunLink(tun_name):
        assert netconf.remove_link(tun_name) is True
        assert netconf.link_index(tun_name) is None
    assert netconf.remove_link(tun_name) is False


def test_loopback_is_up_in_private_namespace():
    with socket.create_server(("127.0.0.1", 0)) as srv:
        with socket.create_connection(srv.getsockname(), timeout=2):
            pass


def test_read_pcap_reads_tcpdump_capture_of_tun(tun_link, tmp_path):
    """Our reader understands tcpdump's own capture of a TUN (a raw-IP link type)."""
    out = tmp_path / "cap.pcap"
    dump = subprocess.Popen(["tcpdump", "-n", "-U", "-i", tun_link.name, "-c", "1",
                             "-w", str(out), "udp"], stderr=subprocess.PIPE, text=True)
    try:
        assert "listening on" in dump.stderr.readline()
        with kernel_udp_socket() as s:
            s.sendto(b"captured", (STACK, 9))
        dump.wait(timeout=10)
    finally:
        if dump.poll() is None:
            dump.kill()
            dump.wait()
    (t, raw), = list(read_pcap(out))
    assert abs(t - time.time()) < 60
    assert bytes(IP(raw)[UDP].payload) == b"captured"
