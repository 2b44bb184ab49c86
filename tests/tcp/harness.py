"""Packet-level TCP test harness: smoltcp's send!/recv!/recv_nothing! style, scapy as the oracle.

One ``Host`` (192.0.2.2) with a virtual clock; the test plays the peer (192.0.2.1).
Every segment the test sends is crafted with scapy and goes through ``Host.receive``
as real IPv4 bytes; every packet the host emits is parsed back with scapy, its IP and
TCP checksums verified by scapy's own recomputation, and queued for ``expect``.

    h = TcpHarness()                       # options off: MSS only, simple expectations
    conn = h.listen_and_establish()        # passive open: SYN / SYN,ACK / ACK
    h.send(h.tcp("PA", seq=PEER_ISN + 1, ack=ISS + 1, load=b"hi"))
    h.advance(0.040)                       # delayed ACK fires at exactly 40 ms
    h.expect(flags="A", seq=ISS + 1, ack=PEER_ISN + 3, at=0.040)
    h.expect_nothing()

Conventions: the stack's ISS is ``ISS`` (1000) unless given; the peer's initial sequence
number is ``PEER_ISN`` (5000). After a helper establishes a connection, ``h.p_nxt`` is the
peer's next sequence number (what the stack's RCV.NXT should be) and ``h.l_nxt`` the
stack's SND.NXT as the peer saw it. ``h.seg(...)`` builds a segment from the peer that
by default carries ``seq=h.p_nxt`` and ``ack=h.l_nxt``.

``expect`` checks only the fields it is given, each exactly. ``flags`` is a scapy flag
string compared as a set of letters ("SA" == "AS"); ``options`` is a dict of scapy
option names (NOP and EOL ignored) that must be exactly the options present, with
``ANY`` as a wildcard value; ``at`` is the virtual time the segment was emitted.

Buffers are pinned (``FIXED_BUFFERS``: 4 MiB each, no autotuning, the budget far away) so the
windows the tests expect do not depend on autotuning or memory pressure; a test about buffers
passes its own (``rcvbuf=None`` to autotune, ``mem_limit=...``).

Other engineers: reuse ``TcpHarness`` for any packet-exact test of the TCP layer.
"""
from __future__ import annotations

import math
import random
import socket
from collections import deque
from dataclasses import dataclass

from scapy.layers.inet import IP, TCP
from scapy.packet import Raw

from stack.netstack import NetStack as Host
from stack.tcp.config import TcpConfig
from stack.tcp.isn import FixedIsn
from stack.tcp.states import State

LOCAL = "192.0.2.2"
PEER = "192.0.2.1"
LOCAL_B = socket.inet_aton(LOCAL)
PEER_B = socket.inet_aton(PEER)
ISS = 1000            # the stack's initial send sequence number (FixedIsn)
PEER_ISN = 5000       # the peer's (the test's) initial sequence number
LISTEN_PORT = 80      # passive opens: the stack listens here, the peer uses PEER_PORT
PEER_PORT = 40000
ACTIVE_PORT = 50000   # active opens: the stack connects from here to the peer's LISTEN_PORT
MASK = 0xFFFFFFFF


def s32(x: int) -> int:
    """A sequence number modulo 2**32."""
    return x & MASK


class _Any:
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    def __repr__(self):
        return "ANY"


ANY = _Any()


@dataclass
class Emitted:
    """One packet the host wrote: when, and scapy's parse of it."""
    at: float
    ip: IP

    @property
    def tcp(self) -> TCP:
        return self.ip[TCP]

    @property
    def flags(self) -> str:
        return str(self.tcp.flags)

    @property
    def payload(self) -> bytes:
        return bytes(self.tcp.payload) if self.tcp.payload else b""

    @property
    def options(self) -> dict:
        return tcp_options(self.tcp)

    def __repr__(self) -> str:
        t = self.tcp
        return (f"<t={self.at:.6f} {t.sport}>{t.dport} [{t.flags}] seq={t.seq} ack={t.ack} win={t.window} "
                f"len={len(self.payload)} opts={t.options}>")


def tcp_options(tcp: TCP) -> dict:
    """scapy's option list as a dict, NOP/EOL dropped; SAck blocks as a list of (left, right)."""
    out = {}
    for name, value in tcp.options:
        if name in ("NOP", "EOL"):
            continue
        if name == "SAck":
            value = [(value[i], value[i + 1]) for i in range(0, len(value), 2)]
        elif name == "SAckOK":
            value = True
        assert name not in out, f"option {name} appears twice: {tcp.options}"
        out[name] = value
    return out


def _flagset(flags) -> frozenset:
    return frozenset(str(flags))


def check_checksums(raw: bytes) -> IP:
    """Parse with scapy; assert the IP and TCP checksums equal scapy's own recomputation."""
    pkt = IP(raw)
    assert pkt.version == 4 and pkt.ihl == 5, pkt.summary()
    assert pkt.len == len(raw), f"IP total length {pkt.len} != {len(raw)}"
    fresh = IP(raw)
    del fresh.chksum
    assert IP(bytes(fresh)).chksum == pkt.chksum, "bad IPv4 header checksum"
    if TCP in pkt:
        fresh = IP(raw)
        del fresh[TCP].chksum
        assert IP(bytes(fresh))[TCP].chksum == pkt[TCP].chksum, "bad TCP checksum"
    return pkt


# the windows most tests expect: fixed 4 MiB buffers (what TcpConfig gave before autotuning)
FIXED_BUFFERS = dict(rcvbuf=4 << 20, sndbuf=4 << 20, mem_limit=1 << 40)


class TcpHarness:
    """One Host under test, a virtual clock, and the segments it emitted (oldest first)."""

    def __init__(self, *, iss: int = ISS, peer_isn: int = PEER_ISN, timestamps: bool = False,
                 sack: bool = False, window_scaling: bool = False, seed: int = 1, **config):
        config = {**FIXED_BUFFERS, **config}
        self.config = TcpConfig(timestamps=timestamps, sack=sack, window_scaling=window_scaling, **config)
        self.iss = s32(iss)
        self.peer_isn = s32(peer_isn)
        self.host = Host(LOCAL_B, mtu=1500, tcp_config=self.config, isn=FixedIsn(self.iss),
                         rng=random.Random(seed))
        self.now = 0.0
        self.out: deque[Emitted] = deque()
        self.lport, self.pport = LISTEN_PORT, PEER_PORT
        self.p_nxt = s32(self.peer_isn + 1)
        self.l_nxt = s32(self.iss + 1)
        self.conn = None
        self.listener = None

    # ------------------------------------------------------------ building segments
    def seg(self, flags: str = "A", seq: int | None = None, ack: int | None = None, window: int = 65535,
            options=None, load: bytes = b"", **fields) -> TCP:
        """A segment from the peer; seq/ack default to the peer's view (p_nxt / l_nxt)."""
        fields.setdefault("sport", self.pport)
        fields.setdefault("dport", self.lport)
        t = TCP(flags=flags, seq=s32(self.p_nxt if seq is None else seq),
                ack=s32(self.l_nxt if ack is None else ack) if "A" in flags or ack is not None else 0,
                window=window, options=options or [], **fields)
        return t / Raw(load) if load else t

    tcp = seg

    # ------------------------------------------------------------ time and I/O
    def send(self, tcp: TCP, at: float | None = None) -> None:
        """Deliver one peer segment (as IPv4 bytes) at ``at`` (running timers due before it) or now."""
        if at is not None:
            self.advance_to(at)
        if "sport" not in tcp.fields:
            tcp.sport = self.pport
        if "dport" not in tcp.fields:
            tcp.dport = self.lport
        raw = bytes(IP(src=PEER, dst=LOCAL) / tcp)
        self.host.receive(raw, self.now)
        self._collect()

    def send_raw(self, raw: bytes, at: float | None = None) -> None:
        if at is not None:
            self.advance_to(at)
        self.host.receive(raw, self.now)
        self._collect()

    def _collect(self) -> None:
        for raw in self.host.take_output(self.now):
            self.out.append(Emitted(self.now, check_checksums(bytes(raw))))

    def advance(self, dt: float) -> None:
        """Let ``dt`` seconds of virtual time pass, firing every timer at its exact deadline."""
        self.advance_to(self.now + dt)

    def advance_to(self, t: float) -> None:
        assert t >= self.now, f"time runs forward: {t} < {self.now}"
        while True:
            d = self.host.next_deadline()
            if d is None or d > t:
                break
            self.now = max(self.now, d)
            self.host.on_timers(self.now)
            self._collect()
        self.now = t
        self._collect()

    def run_next_timer(self) -> float | None:
        """Jump to the next deadline and run it; returns the time (None when no timer is armed)."""
        d = self.host.next_deadline()
        if d is None:
            return None
        self.advance_to(max(d, self.now))
        return self.now

    def call(self, fn, *args):
        """Run a user call on the connection (``fn(*args, now)``), then let the layer flush it."""
        result = fn(*args, self.now)
        if self.conn is not None:
            self.host.tcp.touch(self.conn, self.now)
        self._collect()
        return result

    def app_send(self, data: bytes) -> int:
        return self.call(self.conn.send, data)

    def app_recv(self, n: int = 1 << 30) -> bytes:
        return self.call(self.conn.recv, n)

    def app_close(self) -> None:
        self.call(self.conn.close)

    def app_shutdown(self) -> None:
        self.call(self.conn.shutdown_write)

    # ------------------------------------------------------------ checking output
    def next(self) -> Emitted:
        assert self.out, "expected a segment, the stack emitted nothing"
        return self.out.popleft()

    def expect(self, flags: str | None = None, seq: int | None = None, ack: int | None = None,
               window: int | None = None, options: dict | None = None, payload: bytes | None = None,
               length: int | None = None, at: float | None = None, sport: int | None = None,
               dport: int | None = None, dst: str = PEER) -> Emitted:
        """Pop the oldest emitted segment and check the given fields exactly."""
        e = self.next()
        t = e.tcp
        where = repr(e)
        assert e.ip.src == LOCAL and e.ip.dst == dst, where
        assert e.ip.proto == 6, where
        assert sport is None or t.sport == sport, where
        assert dport is None or t.dport == dport, where
        if sport is None:
            assert t.sport == self.lport, f"sport: {where}"
        if dport is None:
            assert t.dport == self.pport, f"dport: {where}"
        if flags is not None:
            assert _flagset(t.flags) == _flagset(flags), f"flags {t.flags} != {flags}: {where}"
        if seq is not None:
            assert t.seq == s32(seq), f"seq {t.seq} != {s32(seq)}: {where}"
        if ack is not None:
            assert t.ack == s32(ack), f"ack {t.ack} != {s32(ack)}: {where}"
        if window is not None:
            assert t.window == window, f"window {t.window} != {window}: {where}"
        if options is not None:
            got = e.options
            assert set(got) == set(options) and all(options[k] == got[k] for k in options), \
                f"options {got} != {options}: {where}"
        if payload is not None:
            assert e.payload == payload, f"payload {e.payload[:40]!r}.. != {payload[:40]!r}..: {where}"
        if length is not None:
            assert len(e.payload) == length, f"length {len(e.payload)} != {length}: {where}"
        if at is not None:
            assert math.isclose(e.at, at, abs_tol=1e-9), f"emitted at {e.at}, expected {at}: {where}"
        return e

    def expect_nothing(self) -> None:
        assert not self.out, f"expected no segment, got {list(self.out)}"

    def drain(self) -> list[Emitted]:
        out = list(self.out)
        self.out.clear()
        return out

    # ------------------------------------------------------------ state
    @property
    def state(self) -> State:
        return self.conn.state

    def conn_for(self, pport: int, lport: int | None = None):
        return self.host.tcp.conns.get((LOCAL_B, lport or self.lport, PEER_B, pport))

    # ------------------------------------------------------------ opens
    def listen(self, backlog: int = 8):
        self.lport, self.pport = LISTEN_PORT, PEER_PORT
        self.listener = self.host.tcp.listen(LOCAL_B, LISTEN_PORT, backlog)
        return self.listener

    def peer_syn_options(self, mss: int | None = 1460, wscale: int | None = None, sack: bool = False,
                         tsval: int | None = None, tsecr: int = 0) -> list:
        opts = []
        if mss is not None:
            opts.append(("MSS", mss))
        if sack:
            opts.append(("SAckOK", b""))
        if tsval is not None:
            opts.append(("Timestamp", (tsval, tsecr)))
        if wscale is not None:
            opts.append(("WScale", wscale))
        return opts

    def syn_received(self, *, window: int = 65535, syn_options=None, mss: int | None = 1460):
        """LISTEN, then the peer's SYN: the stack answers SYN,ACK and sits in SYN-RECEIVED."""
        if self.listener is None:
            self.listen()
        opts = syn_options if syn_options is not None else self.peer_syn_options(mss=mss)
        self.send(self.seg("S", seq=self.peer_isn, window=window, options=opts))
        self.syn_ack = self.expect(flags="SA", seq=self.iss, ack=self.peer_isn + 1)
        self.conn = self.conn_for(self.pport)
        assert self.conn is not None and self.conn.state is State.SYN_RECEIVED
        self.p_nxt = s32(self.peer_isn + 1)
        self.l_nxt = s32(self.iss + 1)
        return self.conn

    def listen_and_establish(self, *, window: int = 65535, rtt: float = 0.0, syn_options=None,
                             mss: int | None = 1460, ack_options=None, ack_window: int | None = None):
        """Passive open: SYN -> SYN,ACK -> ACK (``rtt`` seconds after the SYN). Returns the accepted conn."""
        self.syn_received(window=window, syn_options=syn_options, mss=mss)
        self.send(self.seg("A", window=window if ack_window is None else ack_window, options=ack_options),
                  at=self.now + rtt)
        self.expect_nothing()
        conn = self.listener.accept()
        assert conn is self.conn and conn.state is State.ESTABLISHED
        return conn

    def connect(self, *, window: int = 65535, rtt: float = 0.0, syn_ack_options=None, mss: int | None = 1460,
                complete: bool = True):
        """Active open via host.tcp.connect: SYN -> SYN,ACK -> ACK. Returns the connection."""
        self.lport, self.pport = ACTIVE_PORT, LISTEN_PORT
        self.conn = self.host.tcp.connect((LOCAL_B, ACTIVE_PORT), (PEER_B, LISTEN_PORT), self.now)
        self._collect()
        self.syn = self.expect(flags="S", seq=self.iss, ack=0)
        self.l_nxt = s32(self.iss + 1)
        if not complete:
            return self.conn
        opts = syn_ack_options if syn_ack_options is not None else self.peer_syn_options(mss=mss)
        self.send(self.seg("SA", seq=self.peer_isn, ack=self.iss + 1, window=window, options=opts),
                  at=self.now + rtt)
        self.p_nxt = s32(self.peer_isn + 1)
        self.expect(flags="A", seq=self.iss + 1, ack=self.peer_isn + 1)
        self.expect_nothing()
        assert self.conn.state is State.ESTABLISHED
        return self.conn

    # ------------------------------------------------------------ synchronized states
    def established(self, active: bool = False, **kw):
        return self.connect(**kw) if active else self.listen_and_establish(**kw)

    def fin_wait_1(self, close: bool = False, **kw):
        """ESTABLISHED, then the app shuts down writing (or closes): FIN out, not yet acknowledged."""
        self.established(**kw)
        self.call(self.conn.close if close else self.conn.shutdown_write)
        self.expect(flags="FA", seq=self.l_nxt, ack=self.p_nxt)
        self.expect_nothing()
        self.l_nxt = s32(self.l_nxt + 1)
        assert self.conn.state is State.FIN_WAIT_1
        return self.conn

    def fin_wait_2(self, close: bool = False, **kw):
        """FIN-WAIT-1, then the peer ACKs our FIN."""
        self.fin_wait_1(close=close, **kw)
        self.send(self.seg("A"))
        self.expect_nothing()
        assert self.conn.state is State.FIN_WAIT_2
        return self.conn

    def close_wait(self, **kw):
        """ESTABLISHED, then the peer's FIN: the stack ACKs it."""
        self.established(**kw)
        self.send(self.seg("FA"))
        self.p_nxt = s32(self.p_nxt + 1)
        self.expect(flags="A", seq=self.l_nxt, ack=self.p_nxt)
        self.expect_nothing()
        assert self.conn.state is State.CLOSE_WAIT
        return self.conn

    def last_ack(self, **kw):
        """CLOSE-WAIT, then the app closes: FIN out."""
        self.close_wait(**kw)
        self.call(self.conn.close)
        self.expect(flags="FA", seq=self.l_nxt, ack=self.p_nxt)
        self.expect_nothing()
        self.l_nxt = s32(self.l_nxt + 1)
        assert self.conn.state is State.LAST_ACK
        return self.conn

    def closing(self, **kw):
        """FIN-WAIT-1, then the peer's FIN that does not ACK ours (simultaneous close)."""
        self.fin_wait_1(**kw)
        self.send(self.seg("FA", ack=s32(self.l_nxt - 1)))
        self.p_nxt = s32(self.p_nxt + 1)
        self.expect(flags="A", seq=self.l_nxt, ack=self.p_nxt)
        self.expect_nothing()
        assert self.conn.state is State.CLOSING
        return self.conn

    def time_wait(self, **kw):
        """FIN-WAIT-2, then the peer's FIN: ACK it, TIME-WAIT."""
        self.fin_wait_2(**kw)
        self.send(self.seg("FA"))
        self.p_nxt = s32(self.p_nxt + 1)
        self.expect(flags="A", seq=self.l_nxt, ack=self.p_nxt)
        self.expect_nothing()
        assert self.conn.state is State.TIME_WAIT
        return self.conn

    def to_state(self, name: str, **kw):
        """Drive a fresh connection into the named synchronized state (RFC 9293 spelling or enum name)."""
        key = name.replace("-", "_").upper()
        return {"SYN_RECEIVED": self.syn_received, "ESTABLISHED": self.established,
                "FIN_WAIT_1": self.fin_wait_1, "FIN_WAIT_2": self.fin_wait_2, "CLOSE_WAIT": self.close_wait,
                "CLOSING": self.closing, "LAST_ACK": self.last_ack, "TIME_WAIT": self.time_wait}[key](**kw)
