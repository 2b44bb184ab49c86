"""PcapWriter / read_pcap, checked against tcpdump and scapy."""
from __future__ import annotations

import io
import struct
import subprocess
import threading

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap, wrpcap

from stack.pcap import LINKTYPE_IPV4, LINKTYPE_RAW, PcapWriter, read_pcap

SYN = bytes(IP(src="192.0.2.1", dst="192.0.2.2") / TCP(sport=40000, dport=80, flags="S"))
DGRAM = bytes(IP(src="192.0.2.2", dst="192.0.2.1") / UDP(sport=7, dport=9) / b"payload")


def test_round_trip(tmp_path):
    path = tmp_path / "a.pcap"
    with PcapWriter(path) as w:
        w.write(SYN, 1700000000.25)
        w.write(DGRAM, 1700000001.000001)
        assert w.count == 2
    got = list(read_pcap(path))
    assert [p for _, p in got] == [SYN, DGRAM]
    assert got[0][0] == pytest.approx(1700000000.25, abs=1e-6)
    assert got[1][0] == pytest.approx(1700000001.000001, abs=1e-6)


def test_tcpdump_reads_our_file(tmp_path):
    path = tmp_path / "t.pcap"
    with PcapWriter(path) as w:
        w.write(SYN, 1.0)
        w.write(DGRAM, 2.0)
    out = subprocess.run(["tcpdump", "-n", "-r", str(path)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2
    assert "192.0.2.1.40000 > 192.0.2.2.80: Flags [S]" in lines[0]
    assert "192.0.2.2.7 > 192.0.2.1.9: UDP, length 7" in lines[1]
    assert "RAW" in out.stderr or "Raw IP" in out.stderr  # "link-type RAW (Raw IP)"


def test_scapy_reads_our_file(tmp_path):
    path = tmp_path / "s.pcap"
    with PcapWriter(path, linktype=LINKTYPE_IPV4) as w:
        w.write(SYN, 5.5)
        w.write(DGRAM, 6.0)
    pkts = rdpcap(str(path))
    assert [bytes(p) for p in pkts] == [SYN, DGRAM]
    assert pkts[0][TCP].flags == "S" and float(pkts[0].time) == pytest.approx(5.5)


def test_stream_is_flushed_but_left_open():
    buf = io.BytesIO()
    w = PcapWriter(buf)
    w.write(SYN, 0.0)
    w.close()
    w.close()
    assert not buf.closed
    magic, major, minor, _, _, snaplen, linktype = struct.unpack("<IHHiIII", buf.getvalue()[:24])
    assert (magic, major, minor, snaplen, linktype) == (0xA1B2C3D4, 2, 4, 65535, LINKTYPE_RAW)
    assert len(buf.getvalue()) == 24 + 16 + len(SYN)
    with pytest.raises(ValueError):
        w.write(SYN, 1.0)


def test_concurrent_writers_never_interleave_records(tmp_path):
    path = tmp_path / "threads.pcap"
    w = PcapWriter(path)
    packets = [bytes(IP(src="192.0.2.2", dst="192.0.2.1", id=i) / UDP() / (b"%d" % i * 50))
               for i in range(8)]

    def writer(p):
        for _ in range(500):
            w.write(p, 1.0)

    threads = [threading.Thread(target=writer, args=(p,)) for p in packets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.close()
    got = [p for _, p in read_pcap(path)]
    assert len(got) == 8 * 500 and set(got) == set(packets)


def test_reads_ethernet_capture_as_ip(tmp_path):
    path = tmp_path / "eth.pcap"
    wrpcap(str(path), [Ether() / IP(SYN)])  # scapy: LINKTYPE_ETHERNET
    assert [p for _, p in read_pcap(path)] == [SYN]


def test_reads_big_endian_nanosecond_file(tmp_path):
    path = tmp_path / "be.pcap"
    head = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, LINKTYPE_RAW)
    rec = struct.pack(">IIII", 10, 500_000_000, len(DGRAM), len(DGRAM)) + DGRAM
    path.write_bytes(head + rec + rec[:10])  # last record cut short: ignored
    assert list(read_pcap(path)) == [(10.5, DGRAM)]


def test_rejects_non_pcap(tmp_path):
    path = tmp_path / "x.pcap"
    path.write_bytes(b"\x0a\x0d\x0d\x0a" + bytes(40))  # pcapng section header
    with pytest.raises(ValueError, match="not a pcap"):
        list(read_pcap(path))
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="too short"):
        list(read_pcap(path))


def test_snaplen_truncates_but_keeps_wire_length(tmp_path):
    path = tmp_path / "snap.pcap"
    with PcapWriter(path, snaplen=20) as w:
        w.write(DGRAM, 0.0)
    raw = path.read_bytes()
    caplen, wirelen = struct.unpack("<II", raw[32:40])
    assert (caplen, wirelen) == (20, len(DGRAM))
    assert [p for _, p in read_pcap(path)] == [DGRAM[:20]]
