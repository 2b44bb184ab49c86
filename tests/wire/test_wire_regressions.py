"""Regressions for the bugs tests/wire found in stack/wire (all-zero checksums, the reserved IP flag)."""
from scapy.layers.inet import IP, UDP
from scapy.utils import checksum as scapy_checksum

from stack.wire import MalformedPacket, icmp, ipv4
from stack.wire.checksum import checksum

import pytest


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00\x00", bytes(7), bytes(1500)])
def test_checksum_of_all_zero_data_is_ffff(data):
    assert checksum(data) == scapy_checksum(data) == 0xFFFF      # got 0


def test_echo_reply_to_id0_seq0_empty_ping_has_valid_checksum():
    reply = icmp.echo_reply(icmp.IcmpMessage(icmp.ECHO_REQUEST, 0, 0, b""))
    assert reply == b"\x00\x00\xff\xff\x00\x00\x00\x00"            # got 00 00 00 00 00 00 00 00
    assert scapy_checksum(reply) == 0


def test_all_zero_icmp_message_fails_checksum():
    with pytest.raises(MalformedPacket):                            # parse_icmp accepts it
        icmp.parse_icmp(bytes(8))


def test_header_of_keeps_the_reserved_flag_bit():
    wire = bytes(IP(src="10.0.0.1", dst="10.0.0.2", flags="evil+DF") / UDP())
    hdr, _ = ipv4.parse_ipv4(wire)
    assert ipv4.header_of(hdr) == wire[:20]                         # byte 6: 0xc0 expected, 0x40 got
