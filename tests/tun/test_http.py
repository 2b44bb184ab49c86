"""Real TUN, the kernel as the peer: curl, ping and hostile packets against the stack's HTTP server.

Everything runs in this test run's private network namespace (tests/conftest.py):
the stack runs in-process on a TUN device, and curl/ping are the kernel's own tools.
"""
from __future__ import annotations

import hashlib
import itertools
import os
import socket
import struct
import subprocess
import threading
import time

import pytest
from scapy.all import ICMP, IP, TCP, UDP, raw

from stack.apps.servers import http_server
from stack.link.netconf import configure_host_side
from stack.link.tun import TunLink
from stack.runtime.stack import Stack

STACK_ADDR = "192.0.2.2"
_names = itertools.count()


@pytest.fixture
def web_root(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "index.html").write_text("<h1>tunstack</h1>\n")
    (root / "big.bin").write_bytes(os.urandom(4 << 20))
    return root


@pytest.fixture(params=[False, True], ids=["plain", "offload"])
def served(request, private_netns, web_root):
    """The stack on a fresh TUN with an HTTP/1.1 server on port 80; yields (stack, tun name, root).

    Every test runs twice: with plain packets, and with TUN offloads (virtio-net header,
    kernel-finished checksums, 64 KiB TSO/GRO super-segments).
    """
    name = f"tsh{os.getpid() % 10000}{next(_names)}"
    link = TunLink(name, mtu=1500, offload=request.param)
    configure_host_side(name, "192.0.2.1/24", 1500)
    stack = Stack(link, STACK_ADDR).start()
    server = http_server(stack, 80, str(web_root), quiet=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield stack, name, web_root
    finally:
        server.shutdown()
        server.server_close()
        stack.close()
        link.close()
        assert stack.loop_error is None, stack.loop_error


def curl(*args, timeout=30):
    return subprocess.run(["curl", "-sS", "--max-time", str(timeout), *args],
                          capture_output=True, timeout=timeout + 5)


def test_curl_downloads_4mib_intact(served):
    """The stack serves a 4 MiB file to the kernel's TCP (curl) byte for byte."""
    stack, _, root = served
    result = curl(f"http://{STACK_ADDR}/big.bin")
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256(result.stdout).hexdigest() == hashlib.sha256((root / "big.bin").read_bytes()).hexdigest()


def test_two_requests_on_one_kept_alive_connection(served):
    """HTTP/1.1 keep-alive: curl reuses the connection (num_connects 1, then 0)."""
    result = curl("-w", "|%{num_connects}|%{http_code}\n", f"http://{STACK_ADDR}/index.html",
                  f"http://{STACK_ADDR}/index.html")
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert out.count("<h1>tunstack</h1>") == 2
    assert "|1|200" in out and "|0|200" in out


def test_kernel_http_client_keepalive_head_and_404(served):
    """http.client on the kernel's TCP: GET, HEAD and a 404 on one connection."""
    import http.client
    conn = http.client.HTTPConnection(STACK_ADDR, 80, timeout=10)
    conn.request("GET", "/index.html")
    r = conn.getresponse()
    assert (r.status, r.read()) == (200, b"<h1>tunstack</h1>\n")
    conn.request("HEAD", "/big.bin")
    r = conn.getresponse()
    assert r.status == 200 and int(r.headers["Content-Length"]) == 4 << 20 and r.read() == b""
    conn.request("GET", "/missing")
    r = conn.getresponse()
    r.read()
    assert r.status == 404
    conn.close()


def test_closed_port_refuses_at_once(served):
    """RFC 9293 3.10.7.1: a SYN to a closed port is answered with RST: connection refused, no wait."""
    start = time.monotonic()
    result = curl(f"http://{STACK_ADDR}:81/", timeout=10)
    assert result.returncode == 7, result.stderr  # curl: couldn't connect
    assert time.monotonic() - start < 1.0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((STACK_ADDR, 82), timeout=5)


def test_ping_is_answered(served):
    """RFC 792 echo: ping -c 3 gets three replies."""
    result = subprocess.run(["ping", "-c", "3", "-i", "0.2", "-W", "2", STACK_ADDR],
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 received" in result.stdout


def test_large_ping_is_reassembled_and_answered_in_fragments(served):
    """RFC 791 fragmentation both ways: a 4000-byte echo is reassembled and the reply fragmented."""
    stack, _, _ = served
    result = subprocess.run(["ping", "-c", "2", "-s", "4000", "-i", "0.2", "-W", "2", STACK_ADDR],
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stdout + result.stderr
    stats = stack.stats()
    assert stats["ip_reassembled"] >= 2 and stats["ip_fragmented_out"] >= 2


# ------------------------------------------------------------------ hostile input
def _ip(payload_layer, **ip):
    return raw(IP(src="192.0.2.1", dst=STACK_ADDR, **ip) / payload_layer)


def _set(packet: bytes, offset: int, value: bytes) -> bytes:
    return packet[:offset] + value + packet[offset + len(value):]


def _malformed_packets() -> dict[str, list[bytes]]:
    """Each category of broken packet, keyed by the drop reason the stack must count it under."""
    good_tcp = _ip(TCP(sport=40000, dport=80, flags="S", seq=1))
    cats: dict[str, list[bytes]] = {}
    cats["ip_checksum"] = [_set(good_tcp, 10, b"\x12\x34")]
    cats["ip_short"] = [good_tcp[:n] for n in (1, 5, 19)]
    cats["ip_version"] = [bytes([0x65]) + good_tcp[1:]]
    cats["ip_ihl"] = [_fix_ip_csum(bytes([0x44]) + good_tcp[1:]), _fix_ip_csum(bytes([0x4F]) + good_tcp[1:])]
    cats["ip_length"] = [_fix_ip_csum(_set(good_tcp, 2, struct.pack("!H", 400))),
                         _fix_ip_csum(_set(good_tcp, 2, struct.pack("!H", 10)))]
    cats["tcp_checksum"] = [_set(good_tcp, 36, b"\xde\xad")]
    cats["tcp_short"] = [_ip_with_payload(6, raw(TCP(sport=1, dport=80))[:12])]
    cats["tcp_offset"] = [_tcp_with_offset(3), _tcp_with_offset(15)]
    cats["tcp_option_length"] = [_tcp_with_options(b"\x02\x00\x05\xb4"),       # MSS length 0
                                 _tcp_with_options(b"\x02\x03\x05\x01"),       # MSS length 3
                                 _tcp_with_options(b"\x08\x0c" + bytes(10)[:2] + bytes(6) + b"\x01\x01")]  # TS bad length
    cats["tcp_option_truncated"] = [_tcp_with_options(b"\x01\x01\x01\x03")]      # kind 3 with no length
    cats["icmp_checksum"] = [_set(_ip(ICMP(type=8, id=1, seq=1) / (b"x" * 8)), 22, b"\x00\x01")]
    cats["icmp_short"] = [_ip_with_payload(1, b"\x08\x00\x00")]
    cats["udp_length"] = [_fix_udp(_ip(UDP(sport=1, dport=9) / b"abcd"), 200)]
    cats["ip_not_for_us"] = [raw(IP(src="192.0.2.1", dst="192.0.2.77") / TCP(dport=80))]
    cats["ip_bad_source"] = [raw(IP(src="127.0.0.1", dst=STACK_ADDR) / TCP(dport=80))]
    return cats


def _fix_ip_csum(packet: bytes) -> bytes:
    ihl = (packet[0] & 0x0F) * 4
    hdr = bytearray(packet[:max(ihl, 20)])
    hdr[10:12] = b"\0\0"
    from stack.wire.checksum import checksum
    hdr[10:12] = checksum(bytes(hdr[:ihl] if ihl >= 20 else hdr)).to_bytes(2, "big")
    return bytes(hdr) + packet[len(hdr):]


def _ip_with_payload(proto: int, payload: bytes) -> bytes:
    return raw(IP(src="192.0.2.1", dst=STACK_ADDR, proto=proto) / payload)


def _tcp_with_offset(words: int) -> bytes:
    seg = bytearray(raw(TCP(sport=40001, dport=80, flags="S")))
    seg[12] = words << 4
    return _ip_with_payload(6, bytes(seg))


def _tcp_with_options(options: bytes) -> bytes:
    """A SYN whose options bytes are exactly ``options`` (padded to 4), with a valid checksum."""
    from stack.wire.checksum import IPPROTO_TCP, finish, ones_sum, pseudo_header_sum
    opts = options + b"\0" * (-len(options) % 4)
    hdr = bytearray(raw(TCP(sport=40002, dport=80, flags="S", seq=7))[:20])
    hdr[12] = ((20 + len(opts)) // 4) << 4
    seg = bytes(hdr) + opts
    src, dst = socket.inet_aton("192.0.2.1"), socket.inet_aton(STACK_ADDR)
    csum = finish(ones_sum(seg[:16] + b"\0\0" + seg[18:]) + pseudo_header_sum(src, dst, IPPROTO_TCP, len(seg)))
    seg = seg[:16] + csum.to_bytes(2, "big") + seg[18:]
    return _ip_with_payload(6, seg)


def _fix_udp(packet: bytes, length: int) -> bytes:
    return _set(packet, 24, struct.pack("!H", length))


def _inject(ifname: str, packets: list[bytes]) -> None:
    """Put raw IP packets on the TUN exactly as given (an AF_PACKET socket skips all kernel checks)."""
    with socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800)) as s:
        s.bind((ifname, 0x0800))
        for p in packets:
            s.sendto(p, (ifname, 0x0800))


def test_1000_malformed_packets_counted_by_reason_and_service_continues(served):
    """1,000 broken packets: none crashes the stack, each is counted under its reason, HTTP still works."""
    stack, ifname, root = served
    cats = _malformed_packets()
    flat = [(reason, p) for reason, ps in cats.items() for p in ps]
    per = 1000 // len(flat) + 1
    sent: dict[str, int] = {}
    packets = []
    for i in range(1000):
        reason, p = flat[i % len(flat)]
        packets.append(p)
        sent[reason] = sent.get(reason, 0) + 1
    before = stack.stats()
    for start in range(0, len(packets), 100):  # bounded: 1000 packets, in 10 bursts
        _inject(ifname, packets[start:start + 100])
        time.sleep(0.01)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        after = stack.stats()
        if all(after.get("drop:" + r, 0) - before.get("drop:" + r, 0) >= n for r, n in sent.items()):
            break
        time.sleep(0.05)
    after = stack.stats()
    counted = {r: after.get("drop:" + r, 0) - before.get("drop:" + r, 0) for r in sent}
    assert counted == sent
    assert stack.loop_error is None
    result = curl(f"http://{STACK_ADDR}/index.html")
    assert result.returncode == 0 and result.stdout == b"<h1>tunstack</h1>\n"
    assert per > 0


def test_kernel_udp_to_closed_port_is_refused(served):
    """RFC 1122 4.1.3.1: our ICMP port unreachable reaches the kernel: its connected UDP socket
    reports ECONNREFUSED."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((STACK_ADDR, 9))
        s.settimeout(3)
        s.send(b"anyone there?")
        with pytest.raises(ConnectionRefusedError):
            s.recv(100)
