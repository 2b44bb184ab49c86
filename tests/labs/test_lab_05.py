"""docs/labs/05-http.md: every block prints what the lab shows; every claim holds.

The simulator parts are exact (virtual time, seed 1); scapy dissects the same packet as the
independent oracle for part 5. The real-TUN part runs the lab's own shell commands (curl
fetching one page twice) in this run's private network namespace.
"""
from __future__ import annotations

import re

import pytest
from scapy.layers.inet import IP, TCP

from labdoc import LANGS, Lab, run_shell, unique_tun
from stack.pcap import read_pcap
from stack.wire.checksum import pseudo_header_sum, verify
from stack.wire.ipv4 import parse_ipv4
from stack.wire.tcp import ACK, FIN, PSH, SYN, parse_tcp

NAME = "05-http.md"
LAB = Lab(NAME)  # the English page: its block ids (the twins' blocks are equal: test_translations.py)
COURSE_PAGE = b'<html>\n<meta http-equiv="refresh" content="0;url=http://www.baidu.com/">\n</html>\n'


@pytest.fixture(scope="module", params=LANGS)
def lab(request):
    """The lab in each language: every check below runs on the English page and on its translation."""
    return Lab(NAME, request.param)


@pytest.fixture(scope="module")
def s(lab):
    return lab.run()


@pytest.fixture(scope="module")
def conv(lab):
    """Parts 2 to 5 alone (part 6 rebinds sim, client, log ...)."""
    return lab.run(["setup", "request", "response", "keepalive", "dissect"]).ns


def segments(log, start=0):
    out = []
    for t, packet in log[start:]:
        ip, payload = parse_ipv4(packet)
        out.append((t, ip.src, parse_tcp(payload)))
    return out


@pytest.mark.parametrize("block", LAB.output_ids())
def test_each_block_prints_what_the_lab_shows(lab, s, block):
    assert s.out[block] == lab.output(block)


# ------------------------------------------------------------ 2. the request
def test_the_request_is_76_bytes_of_crlf_lines_ending_in_an_empty_line(conv):
    request = conv["request"]
    lines = request.split(b"\r\n")
    assert [len(line) + 2 for line in lines[:4]] == [26, 17, 18, 13] and lines[4:] == [b"", b""]
    assert len(request) == 26 + 17 + 18 + 13 + 2 == 76 and request.endswith(b"\r\n\r\n")
    assert lines[0].split() == [b"GET", b"/index.html", b"HTTP/1.1"]
    assert b"content-length" not in request.lower()


# ------------------------------------------------------------ 3. the response
def test_the_response_is_the_course_page_with_content_length_81(conv):
    page, response = conv["page"], conv["response"]
    assert page == COURSE_PAGE and len(page) == 81  # the course deck's 'Content-Length: 81'
    whole = response(page)
    head, _, body = whole.partition(b"\r\n\r\n")
    assert [len(line) + 2 for line in head.split(b"\r\n")] == [17, 25, 20, 24]
    assert len(head) + 4 == 17 + 25 + 20 + 24 + 2 == 88 and body == page and len(whole) == 169
    assert b"\r\nContent-Length: 81\r\n" in whole


def test_read_message_stops_at_content_length_not_at_the_end_of_the_connection():
    """'the client knows the response is complete without waiting for the connection to close':
    read_message returns while the connection is still open, with nothing left over."""
    ns = LAB.run(["setup", "request", "response"]).ns
    assert ns["client"].state.name == "ESTABLISHED" and ns["rest"] == b"" and ns["body"] == COURSE_PAGE


# ------------------------------------------------------------ 4. keep-alive
def test_three_requests_one_handshake_and_the_numbers_fit(conv):
    client = conv["client"]
    segs = segments(conv["log"])
    assert [seg.flags & SYN for _, _, seg in segs].count(SYN) == 2        # one SYN, one SYN-ACK
    assert {(seg.sport, seg.dport) for _, src, seg in segs if src == client.local[0]} == {(client.local[1], 80)}
    assert client.local[1] == 42068
    ci, si = client.iss, client.irs
    data = [(src == client.local[0], (seg.seq - (ci if src == client.local[0] else si)) % 2**32,
             (seg.ack - (si if src == client.local[0] else ci)) % 2**32, len(seg.payload))
            for _, src, seg in segs if seg.payload]
    assert data == [(True, 1, 1, 76), (False, 1, 77, 169), (True, 77, 170, 72), (False, 170, 149, 101),
                    (True, 149, 271, 72), (False, 271, 221, 101)]
    assert 72 == 76 - (len("/index.html") - len("/a.html")) and 101 == 88 + len(b"page /a.html\n")
    # 'no pure ACKs between the handshake and the FIN'
    middle = [seg for _, _, seg in segs[3:] if not seg.flags & FIN]
    assert all(seg.payload for seg in middle[:6]) and len(segs) == 13
    fins = [seg for _, _, seg in segs if seg.flags & FIN]
    assert len(fins) == 2


# ------------------------------------------------------------ 5. one packet, byte by byte
def test_dissection_agrees_with_scapy(conv):
    """Part 5 against scapy, the independent oracle: every field the lab names."""
    _, packet = conv["log"][3]
    pkt = IP(bytes(packet))
    assert (pkt.version, pkt.ihl, pkt.len, pkt.ttl, pkt.proto) == (4, 5, 128, 64, 6)
    assert 128 == 20 + 32 + 76 and str(pkt.flags) == "DF" and pkt.frag == 0 and pkt.tos == 0
    assert (pkt.src, pkt.dst) == ("192.0.2.1", "192.0.2.2")
    rebuilt = IP(bytes(packet))
    del rebuilt.chksum
    assert IP(bytes(rebuilt)).chksum == pkt.chksum            # scapy computes the same checksum
    tcp = pkt[TCP]
    client = conv["client"]
    assert (tcp.sport, tcp.dport) == (42068, 80)
    assert tcp.seq == client.iss + 1 == 1194239061 and tcp.ack == client.irs + 1 == 4252128953
    assert tcp.dataofs == 8 and int(tcp.flags) == 0x18 == ACK | PSH and tcp.window == 32768 and tcp.urgptr == 0
    assert 32768 << client.rcv_wscale == 4194304 and client.rcv_wscale == 7
    assert [o[0] for o in tcp.options] == ["NOP", "NOP", "Timestamp"] and tcp.options[2][1] == (2056372539, 833065039)
    assert bytes(tcp.payload) == conv["request"]
    rebuilt_tcp = IP(bytes(packet))
    del rebuilt_tcp[TCP].chksum
    assert IP(bytes(rebuilt_tcp))[TCP].chksum == tcp.chksum
    # 'the header's words sum to 0xffff' and 'pseudo-header + segment sum to 0xffff', with the stack's own code
    raw = bytes(packet)
    assert verify(raw[:20]) and verify(raw[20:], pseudo_header_sum(raw[12:16], raw[16:20], 6, len(raw) - 20))
    assert conv["ones_complement_sum"](raw[:20]) == 0xFFFF


def test_the_tcp_checksum_covers_the_addresses(conv):
    """Answer 6: the same segment with another destination address fails TCP's check."""
    raw = bytes(conv["log"][3][1])
    other = bytes([192, 0, 2, 3])
    assert not verify(raw[20:], pseudo_header_sum(raw[12:16], other, 6, len(raw) - 20))


# ------------------------------------------------------------ 6. two responses in one segment
def test_two_responses_in_one_segment_split_by_content_length(lab):
    ns = lab.run(["setup", "framing"]).ns
    segs = [seg for _, _, seg in segments(ns["log"]) if seg.payload]
    first, second = ns["response"](b"first\n"), ns["response"](b"second\n")
    assert (len(first), len(second)) == (93, 94)
    assert [bytes(seg.payload) for seg in segs] == [first + second] and len(segs[0].payload) == 187
    assert b"Content-Length: 6\r\n" in first


# ------------------------------------------------------------ 7. the real thing
def test_real_tun_curl_reuses_the_connection(lab, private_netns, tmp_path):
    script = []
    tun = unique_tun("lab5t")  # one name for every line of this run
    for line in lab.shell("tun").splitlines():
        if line.startswith(("sudo unshare", "source ", "exit")):
            continue
        script.append(line.replace("tun0", tun).replace("/tmp/lab5", str(tmp_path / "lab5")))
    res = run_shell("\n".join(script), tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout.splitlines()
    # curl: two requests of the same shape, two responses with Content-Length 81, one reuse
    requests = [i for i, line in enumerate(out) if line.startswith("> GET /index.html HTTP/1.1")]
    assert len(requests) == 2
    for i in requests:
        assert [line.split(":")[0] for line in out[i + 1:i + 4]] == ["> Host", "> User-Agent", "> Accept"]
        assert out[i + 1] == "> Host: 192.0.2.2:8080" and out[i + 4].strip() == ">"
    heads = [line for line in out if line.startswith("< ")]
    assert heads.count("< HTTP/1.1 200 OK") == 2 and heads.count("< Content-Length: 81") == 2
    assert heads.count("< Content-type: text/html") == 2 and not [h for h in heads if h.startswith("< Connection")]
    assert sum(1 for h in heads if h.startswith(("< Server: SimpleHTTP/", "< Date: ", "< Last-Modified: "))) == 6
    assert len([line for line in out if line.startswith("* Re-using existing connection")]) == 1
    # the ladder: one SYN; the second request right after the first; bodies of exactly 81 bytes
    rows = [line for line in out if line[:12].strip().replace(".", "").isdigit() and "|" in line]
    assert sum(" SYN " in r for r in rows) == 1 and sum("SYN-ACK" in r for r in rows) == 1
    reqs = [r for r in rows if "|-- PSH,ACK" in r]
    assert len(reqs) == 2
    first_len = int(re.search(r" len=(\d+) ", reqs[0])[1])
    assert " seq=1 " in reqs[0] and f" seq={1 + first_len} " in reqs[1]
    assert sum(1 for r in rows if "|<" in r and " len=81 --|" in r) == 2
    assert sum(1 for r in rows if "FIN" in r) == 2 and "|-- FIN,ACK" in [r for r in rows if "FIN" in r][0]
    # the pcap: the stack's data segments are head, body, head, body; each body is the course's page
    data = []
    for _, packet in read_pcap(str(tmp_path / "lab5.pcap")):
        ip, payload = parse_ipv4(packet)
        seg = parse_tcp(payload)
        if ip.src == bytes([192, 0, 2, 2]) and seg.payload:
            data.append(bytes(seg.payload))
    assert len(data) == 4 and data[1] == data[3] == COURSE_PAGE
    assert data[0].startswith(b"HTTP/1.1 200 OK\r\n") and data[0].endswith(b"\r\n\r\n") and b"Content-Length: 81\r\n" in data[0]
