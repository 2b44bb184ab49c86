"""SYN cookies (RFC 4987 3.6), encoded as Linux encodes them (net/ipv4/syncookies.c).

When a listener's SYN queue is full, the SYN-ACK's ISN carries what the listener would
otherwise have kept: a keyed hash of the 4-tuple, a coarse clock (one tick a minute) and
an index into a small MSS table. The final ACK (ACK = ISN + 1) is checked against the
last ``MAX_AGE`` ticks; a valid cookie gives back the MSS, and with timestamps the low
bits of the TSval we sent (echoed in TSecr) give back window scale and SACK-permitted.

Pure functions of their arguments: ``now`` (seconds) and the secret are passed in.
"""
from __future__ import annotations

import hashlib

COOKIE_BITS = 24                  # low bits: hash + MSS index; high 8 bits: the tick count
COOKIE_MASK = (1 << COOKIE_BITS) - 1
MAX_AGE = 2                       # ticks a cookie stays valid after the one it was made in (Linux)
TICK = 60.0                       # seconds per tick (Linux: tcp_cookie_time(), one a minute)
MSS_TABLE = (536, 1300, 1440, 1460)  # Linux msstab: the MSS values a cookie can carry
TS_BITS = 6                       # low TSval bits: 4 window scale (15 = none), 1 SACK-permitted
TS_MASK = (1 << TS_BITS) - 1
NO_WSCALE = 0xF


def _tuple_bytes(src: bytes, sport: int, dst: bytes, dport: int) -> bytes:
    return src + dst + sport.to_bytes(2, "big") + dport.to_bytes(2, "big")


class SynCookies:
    def __init__(self, secret: bytes):
        if len(secret) < 16:
            raise ValueError("SYN cookie secret must be at least 16 bytes")
        self._keys = (secret[:16] + b"\x01", secret[:16] + b"\x02")

    def _hash(self, which: int, tup: bytes, count: int) -> int:
        data = tup + count.to_bytes(4, "big")
        return int.from_bytes(hashlib.blake2b(data, key=self._keys[which], digest_size=4).digest(), "big")

    @staticmethod
    def tick(now: float) -> int:
        return int(now // TICK) & 0xFFFFFFFF

    @staticmethod
    def mss_index(mss: int) -> int:
        """The largest table entry not above the peer's MSS (RFC 4987 3.6: 'a small set of values')."""
        index = 0
        for i, value in enumerate(MSS_TABLE):
            if value <= mss:
                index = i
        return index

    def make_isn(self, src: bytes, sport: int, dst: bytes, dport: int, peer_isn: int, mss: int,
                 now: float) -> tuple[int, int]:
        """The ISN for our SYN-ACK and the MSS it encodes (src/sport: the peer's end)."""
        tup = _tuple_bytes(src, sport, dst, dport)
        count = self.tick(now)
        index = self.mss_index(mss)
        isn = (self._hash(0, tup, 0) + peer_isn + (count << COOKIE_BITS)
               + ((self._hash(1, tup, count) + index) & COOKIE_MASK))
        return isn & 0xFFFFFFFF, MSS_TABLE[index]

    def check_ack(self, src: bytes, sport: int, dst: bytes, dport: int, peer_isn: int, ack: int,
                  now: float) -> int | None:
        """The MSS a valid cookie carries in ``ack - 1``, or None (forged, stale or not a cookie).

        ``peer_isn`` is SEG.SEQ - 1 of the ACK (the peer's ISN, as its SYN carried it)."""
        tup = _tuple_bytes(src, sport, dst, dport)
        cookie = ((ack - 1) - self._hash(0, tup, 0) - peer_isn) & 0xFFFFFFFF
        count = self.tick(now)
        age = (count - (cookie >> COOKIE_BITS)) & (0xFFFFFFFF >> COOKIE_BITS)
        if age > MAX_AGE:
            return None
        index = (cookie - self._hash(1, tup, (count - age) & 0xFFFFFFFF)) & COOKIE_MASK
        return MSS_TABLE[index] if index < len(MSS_TABLE) else None


def encode_ts(ts_val: int, wscale: int | None, sack_ok: bool) -> int:
    """A TSval whose low bits carry the SYN's options (Linux cookie_init_timestamp).

    Never later than ``ts_val`` itself, so the peer's timestamp clock does not jump."""
    options = (NO_WSCALE if wscale is None else wscale & 0xF) | (0x10 if sack_ok else 0)
    ts = (ts_val & ~TS_MASK) | options
    if ts > ts_val:
        ts -= 1 << TS_BITS
    return ts & 0xFFFFFFFF


def decode_ts(ts_ecr: int) -> tuple[int | None, bool]:
    """(window scale or None, SACK permitted) from the TSecr of the ACK that returns a cookie."""
    wscale = ts_ecr & 0xF  # 0-14 a shift (RFC 7323 2.3), 15 none
    return (None if wscale == NO_WSCALE else wscale), bool(ts_ecr & 0x10)
