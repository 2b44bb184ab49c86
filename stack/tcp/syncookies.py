"""SYN cookies (RFC 4987 3.6), encoded as Linux encodes them (net/ipv4/syncookies.c).

When a listener's SYN queue is full, the SYN-ACK's ISN carries what the listener would
otherwise have kept: a keyed hash of the 4-tuple, a coarse clock (one tick a minute) and
an index into a small MSS table. The final ACK (ACK = ISN + 1) is checked against the
last ``MAX_AGE`` ticks; a valid cookie gives back the MSS, and with timestamps the low
bits of the TSval we sent (echoed in TSecr) give back window scale and SACK-permitted.

Pure functions of their arguments: ``now`` (seconds) and the secret are passed in. The layer
(``stack/tcp/layer.py``) uses them through ``cookie_syn_ack`` (the SYN-ACK for a SYN that found
the SYN queue full), ``check_cookie_ack`` (is this ACK's cookie ours?) and ``open_from_cookie``
(the SYN-RECEIVED connection the cookie stands for, ready to take the ACK).
"""
from __future__ import annotations

import hashlib
import math
from typing import NamedTuple

from ..wire.tcp import ACK, SYN, TcpSegment
from .config import TcpConfig
from .connection import DEFAULT_MSS, _wscale_for
from .seq import MASK, seq_add

COOKIE_BITS = 24                  # low bits: hash + MSS index; high 8 bits: the tick count
COOKIE_MASK = (1 << COOKIE_BITS) - 1
MAX_AGE = 2                       # ticks a cookie stays valid after the one it was made in (Linux)
TICK = 60.0                       # seconds per tick (Linux: tcp_cookie_time(), one a minute)
COOKIE_LIFETIME = (MAX_AGE + 1) * TICK  # a listener checks ACKs for cookies this long after its last one
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
        self.secret = bytes(secret)
        self._keys = (secret[:16] + b"\x01", secret[:16] + b"\x02", secret[:16] + b"\x03")

    def _hash(self, which: int, tup: bytes, count: int) -> int:
        data = tup + count.to_bytes(4, "big")
        return int.from_bytes(hashlib.blake2b(data, key=self._keys[which], digest_size=4).digest(), "big")

    def ts_offset(self, src: bytes, sport: int, dst: bytes, dport: int) -> int:
        """Our TSval offset for a connection made from a cookie: a keyed hash of the 4-tuple, so the
        SYN-ACK's TSval and the rebuilt connection's agree without state (Linux secure_tcp_ts_off)."""
        return self._hash(2, _tuple_bytes(src, sport, dst, dport), 0)

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


class CookieOptions(NamedTuple):
    """What a valid cookie gives back: the peer's MSS (from the table) and, with timestamps, the rest."""
    mss: int
    wscale: int | None
    sack: bool
    timestamps: bool


def _ts_clock(now: float, offset: int) -> int:
    return (round(now * 1000) + offset) & MASK  # the connections' 1 ms TSval clock (RFC 7323 5.4)


def cookie_syn_ack(cookies: SynCookies, config: TcpConfig, mss_limit: int, src: bytes, dst: bytes,
                   syn: TcpSegment, now: float) -> TcpSegment:
    """The SYN-ACK for ``syn`` (from src to dst) that keeps no state: ISN = the cookie; with timestamps,
    window scale and SACK-permitted in the TSval's low bits (Linux cookie_init_timestamp). Without
    timestamps the cookie carries the MSS only, so no other option is offered (Linux tcp_clear_options)."""
    peer_mss = syn.mss if syn.mss is not None else DEFAULT_MSS  # RFC 9293 3.7.1 default
    isn, _ = cookies.make_isn(src, syn.sport, dst, syn.dport, syn.seq, peer_mss, now)
    reply = TcpSegment(syn.dport, syn.sport, isn, seq_add(syn.seq, 1), SYN | ACK, min(config.receive_buffer()[0], 0xFFFF))
    reply.mss = mss_limit
    if config.timestamps and syn.tsval is not None:
        wscale = min(syn.wscale, 14) if config.window_scaling and syn.wscale is not None else None
        ours = _wscale_for(config.window_scale_buffer())
        if wscale is not None and (ours or wscale):  # as Connection._send_syn offers it
            reply.wscale = ours
        sack = config.sack and syn.sack_perm
        reply.sack_perm = sack
        offset = cookies.ts_offset(src, syn.sport, dst, syn.dport)
        reply.tsval, reply.tsecr = encode_ts(_ts_clock(now, offset), wscale, sack), syn.tsval
    return reply


def check_cookie_ack(cookies: SynCookies, config: TcpConfig, src: bytes, dst: bytes, ack: TcpSegment,
                     now: float) -> CookieOptions | None:
    """The options the ACK's cookie carries, or None (forged, stale, or options we never offer)."""
    mss = cookies.check_ack(src, ack.sport, dst, ack.dport, seq_add(ack.seq, -1), ack.ack, now)
    if mss is None:
        return None
    if not (config.timestamps and ack.tsval is not None and ack.tsecr):
        return CookieOptions(mss, None, False, False)  # Linux cookie_check_timestamp: no TS, no options
    wscale, sack = decode_ts(ack.tsecr)
    if (wscale is not None and not config.window_scaling) or (sack and not config.sack):
        return None  # we never encode what we do not offer
    return CookieOptions(mss, wscale, sack, True)


def open_from_cookie(conn, found: CookieOptions, ack: TcpSegment, now: float) -> None:
    """Put the new ``conn`` (ISS = the cookie) in the SYN-RECEIVED state the peer's SYN would have made:
    the SYN is rebuilt from the cookie and taken by ``Connection.open_passive``; the SYN-ACK that
    produces already went out (as the cookie), so it is not queued again. The caller then feeds
    ``ack`` to the connection (ESTABLISHED, the accept queue, its data)."""
    syn = TcpSegment(ack.sport, ack.dport, seq_add(ack.seq, -1), 0, SYN, ack.window, mss=found.mss,
                     wscale=found.wscale, sack_perm=found.sack,
                     tsval=ack.tsval if found.timestamps else None)
    conn.open_passive(syn, now)
    conn.outq.clear()
    rtt = ((_ts_clock(now, conn.ts_offset) - ack.tsecr) & MASK) / 1000.0 if found.timestamps else math.inf
    # RFC 7323 4.1: the echoed TSval times the SYN-ACK (up to 2**6 ms early, as on Linux); without
    # timestamps when it left is unknown, and no RTT sample is taken (Linux: snt_synack = 0)
    conn.rtx.syn_sent_at = now - rtt if rtt <= COOKIE_LIFETIME else math.inf
