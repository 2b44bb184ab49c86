"""IPv4 fragment reassembly (RFC 791 3.2, RFC 815 hole list), bounded in count, bytes and time."""
from __future__ import annotations

from ..wire.ipv4 import IPv4Header


class _Datagram:
    __slots__ = ("first_seen", "parts", "total", "nbytes", "first_header", "first_payload")

    def __init__(self, now: float):
        self.first_seen = now
        self.parts: dict[int, bytes] = {}
        self.total: int | None = None   # payload length, known once the last fragment arrives
        self.nbytes = 0
        self.first_header: IPv4Header | None = None
        self.first_payload = b""


class Reassembler:
    """Collects fragments per (src, dst, proto, id). ``add`` returns the whole payload when complete.

    Limits: at most ``max_datagrams`` in progress and ``max_bytes`` buffered in all; a datagram not
    complete within ``timeout`` seconds is dropped (RFC 1122 3.3.2: 60-120 s recommended; Linux uses 30 s).
    A fragment that overlaps another without being its exact duplicate drops the whole datagram
    (overlaps are how fragment attacks work; RFC 5722 does the same for IPv6).
    """

    def __init__(self, max_datagrams: int = 64, max_bytes: int = 4 << 20, timeout: float = 30.0,
                 max_size: int = 65535):
        self.max_datagrams, self.max_bytes, self.timeout, self.max_size = max_datagrams, max_bytes, timeout, max_size
        self.pending: dict[tuple, _Datagram] = {}
        self.nbytes = 0

    def add(self, hdr: IPv4Header, payload, now: float, count) -> bytes | None:
        key = (hdr.src, hdr.dst, hdr.proto, hdr.ident)
        off, data = hdr.frag_offset, bytes(payload)
        if off + len(data) > self.max_size - hdr.header_len:
            count("frag_too_big")
            return None
        if hdr.mf and len(data) % 8:
            count("frag_bad_length")  # every fragment but the last carries a multiple of 8 octets
            return None
        dg = self.pending.get(key)
        if dg is None:
            if len(self.pending) >= self.max_datagrams:
                count("frag_table_full")
                return None
            dg = self.pending[key] = _Datagram(now)
        if self.nbytes + len(data) > self.max_bytes:
            count("frag_memory_full")
            self._discard(key)
            return None
        if not self._insert(dg, off, data, hdr, payload):
            count("frag_overlap")
            self._discard(key)
            return None
        self.nbytes += len(data)
        dg.nbytes += len(data)
        if dg.total is not None and dg.nbytes == dg.total:
            whole = b"".join(dg.parts[o] for o in sorted(dg.parts))
            self._discard(key)
            return whole
        return None

    def _insert(self, dg: _Datagram, off: int, data: bytes, hdr: IPv4Header, payload) -> bool:
        if off in dg.parts:
            return dg.parts[off] == data and self._undo_count(dg, data)
        end = off + len(data)
        for o, d in dg.parts.items():
            if o < end and off < o + len(d):
                return False
        if not hdr.mf:
            if dg.total is not None and dg.total != end:
                return False
            dg.total = end
        if dg.total is not None and end > dg.total:
            return False
        if off == 0:
            dg.first_header = hdr
        dg.parts[off] = data
        return True

    def _undo_count(self, dg: _Datagram, data: bytes) -> bool:
        """An exact duplicate fragment: accepted but not counted twice."""
        self.nbytes -= len(data)
        dg.nbytes -= len(data)
        return True

    def _discard(self, key: tuple) -> None:
        dg = self.pending.pop(key, None)
        if dg is not None:
            self.nbytes -= dg.nbytes

    def next_deadline(self) -> float | None:
        if not self.pending:
            return None
        return min(dg.first_seen for dg in self.pending.values()) + self.timeout

    def expire(self, now: float) -> list[tuple[IPv4Header, bytes]]:
        """Drop datagrams past the timeout; return (header, first-fragment payload) for those whose
        first fragment arrived, so the host can send ICMP time exceeded (RFC 792, code 1)."""
        expired = []
        for key, dg in list(self.pending.items()):
            if now >= dg.first_seen + self.timeout:
                if dg.first_header is not None:
                    expired.append((dg.first_header, dg.parts.get(0, b"")))
                self._discard(key)
        return expired
