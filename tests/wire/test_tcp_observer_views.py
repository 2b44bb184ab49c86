"""stack/wire/tcp.py's lenient views for observers: peek, option walking, flag letters."""
from __future__ import annotations

from scapy.layers.inet import IP, TCP

from stack.wire.tcp import (ACK, PSH, SYN, flag_bits, flag_string, iter_options,
                            option_words, parse_tcp, peek_ipv4_tcp)


def test_option_words_match_the_strict_parser_and_go_relative():
    pkt = TCP(options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (5, 6)), ("NOP", None),
                       ("WScale", 7), ("SAck", (1100, 1200, 1300, 1400))])
    raw = bytes(pkt)
    seg = parse_tcp(raw)
    words = option_words(raw[20:])
    assert words == [f"mss={seg.mss}", "sack_perm", f"ts={seg.tsval}/{seg.tsecr}",
                     f"wscale={seg.wscale}", "sack=1100-1200,1300-1400"]
    assert option_words(raw[20:], sack_base=1000)[-1] == "sack=100-200,300-400"


def test_iter_options_stops_at_eol_and_reports_a_broken_option_once():
    assert list(iter_options(b"\x01\x01\x02\x04\x05\xb4\x00\xfe\x02")) == [(2, b"\x05\xb4")]
    assert list(iter_options(b"\x02\x04\x05")) == [(None, b"")]
    assert list(iter_options(b"\x08\x01")) == [(None, b"")]       # length below 2
    assert option_words(b"\xfe\x02") == ["opt254"]


def test_flag_bits_inverts_flag_string():
    for bits in (0, SYN, SYN | ACK, PSH | ACK, 0xFF):
        assert flag_bits(flag_string(bits)) == bits
    assert flag_bits("P.") == PSH | ACK and flag_bits("none") == 0


def test_peek_reads_an_ipv4_tcp_segment_without_validating_it():
    p = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2, seq=7, flags="PA") / b"abc")
    bad_checksum = p[:10] + b"\x00\x00" + p[12:]
    for packet in (p, bad_checksum):
        info = peek_ipv4_tcp(packet)
        assert (info.flow[1:], info.seq, info.flags, info.paylen) == ((1, 2), 7, PSH | ACK, 3)
    assert peek_ipv4_tcp(p[:30]) is None and peek_ipv4_tcp(b"") is None
