"""pcap files: write what the stack sends and receives, read captures back.

The writer produces classic libpcap files (microsecond timestamps) with link type
``LINKTYPE_RAW`` (101: each record is a bare IP packet, which is what a TUN carries), so
tcpdump, tshark, Wireshark and scapy's ``rdpcap`` open them::

    with PcapWriter("out/run.pcap") as pcap:
        pcap.write(packet, now)

The reader yields ``(t, ip_packet)`` for our files and also for common captures by other
tools (Ethernet, Linux cooked v1/v2, either byte order, micro- or nanosecond stamps): the
link-layer header is stripped so callers always get the IP packet.
"""
from __future__ import annotations

import struct
import threading
import time
from typing import BinaryIO, Iterator

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_LINUX_SLL2 = 276

MAGIC_USEC = 0xA1B2C3D4
MAGIC_NSEC = 0xA1B23C4D
_LINK_HEADER = {LINKTYPE_RAW: 0, 12: 0, 14: 0, LINKTYPE_IPV4: 0,  # 12/14: DLT_RAW aliases
                LINKTYPE_ETHERNET: 14, LINKTYPE_LINUX_SLL: 16, LINKTYPE_LINUX_SLL2: 20}


class PcapWriter:
    """Append packets to a pcap file or binary stream; safe to call from many threads.

    ``path_or_stream`` is a filename (created/truncated, closed by :meth:`close`) or an
    open binary stream (flushed, but left open, by :meth:`close`).
    """

    def __init__(self, path_or_stream, linktype: int = LINKTYPE_RAW, snaplen: int = 65535):
        if hasattr(path_or_stream, "write"):
            self._f: BinaryIO = path_or_stream
            self._owns = False
        else:
            self._f = open(path_or_stream, "wb")
            self._owns = True
        self.snaplen = snaplen
        self.count = 0
        self._lock = threading.Lock()
        self._f.write(struct.pack("<IHHiIII", MAGIC_USEC, 2, 4, 0, 0, snaplen, linktype))

    def write(self, packet: bytes, t: float | None = None) -> None:
        """Record one packet captured at time ``t`` (seconds; default: now)."""
        if t is None:
            t = time.time()
        usec = round(t * 1_000_000)
        data = bytes(packet[:self.snaplen])
        record = struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000,
                             len(data), len(packet)) + data
        with self._lock:
            if self._f is None:
                raise ValueError("write to a closed PcapWriter")
            self._f.write(record)
            self.count += 1

    def flush(self) -> None:
        """Push buffered records to the file (readers then see them)."""
        with self._lock:
            if self._f is not None:
                self._f.flush()

    def close(self) -> None:
        """Flush, and close the file if we opened it. Idempotent."""
        with self._lock:
            f, self._f = self._f, None
        if f is not None:
            f.flush()
            if self._owns:
                f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_pcap(path) -> Iterator[tuple[float, bytes]]:
    """Yield ``(timestamp, ip_packet)`` for each record of a classic pcap file.

    Raises ValueError for a file that is not pcap (pcapng included: convert it with
    ``tshark -F pcap``) or whose link type carries no IP packets we know how to find.
    A truncated last record (a capture cut short) ends the iteration quietly.
    """
    with open(path, "rb") as f:
        head = f.read(24)
        if len(head) < 24:
            raise ValueError(f"{path}: too short for a pcap file")
        for endian in "<>":
            magic = struct.unpack(endian + "I", head[:4])[0]
            if magic in (MAGIC_USEC, MAGIC_NSEC):
                break
        else:
            raise ValueError(f"{path}: not a pcap file (magic {head[:4].hex()})")
        linktype = struct.unpack(endian + "I", head[20:24])[0] & 0x0FFFFFFF
        if linktype not in _LINK_HEADER:
            raise ValueError(f"{path}: unsupported link type {linktype}")
        skip = _LINK_HEADER[linktype]
        scale = 1e-9 if magic == MAGIC_NSEC else 1e-6
        rec = struct.Struct(endian + "IIII")
        while True:
            h = f.read(16)
            if len(h) < 16:
                return
            sec, frac, caplen, _wirelen = rec.unpack(h)
            data = f.read(caplen)
            if len(data) < caplen:
                return
            yield sec + frac * scale, data[skip:]
