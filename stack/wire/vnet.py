"""The virtio-net header that a TUN device opened with IFF_VNET_HDR puts before each packet.

With it the kernel and we can exchange packets whose TCP checksum is left for the other
side (NEEDS_CSUM: the field holds only the pseudo-header sum) and "super-segments" of up to
64 KiB that the kernel splits into MSS-sized segments (GSO/TSO), so one write or read
moves ~44 segments at MTU 1500. Layout (struct virtio_net_hdr, little-endian on the
machines we run on): flags u8, gso_type u8, hdr_len u16, gso_size u16, csum_start u16,
csum_offset u16.
"""
from __future__ import annotations

import struct

VNET_HDR = struct.Struct("<BBHHHH")
VNET_HDR_LEN = VNET_HDR.size  # 10
F_NEEDS_CSUM = 1
F_DATA_VALID = 2
GSO_NONE = 0
GSO_TCPV4 = 1
TCP_CSUM_OFFSET = 16  # the checksum field within the TCP header

PLAIN = VNET_HDR.pack(0, GSO_NONE, 0, 0, 0, 0)


def gso_header(ip_header_len: int, tcp_header_len: int, gso_size: int, total_len: int) -> bytes:
    """Header for a TCP packet whose checksum the kernel completes, split by it when longer than one MSS."""
    payload = total_len - ip_header_len - tcp_header_len
    gso = GSO_TCPV4 if payload > gso_size > 0 else GSO_NONE
    return VNET_HDR.pack(F_NEEDS_CSUM, gso, ip_header_len + tcp_header_len,
                         gso_size if gso else 0, ip_header_len, TCP_CSUM_OFFSET)


def checksum_trusted(header) -> bool:
    """True when the kernel says the checksum is unfinished (NEEDS_CSUM) or already verified."""
    return bool(header[0] & (F_NEEDS_CSUM | F_DATA_VALID))
