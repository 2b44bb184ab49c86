"""The ONE place the fuzzer (tools/fuzz.py, tests/fuzz) touches the TCP/IP core.

Everything the fuzzer needs goes through ``Core`` and ``Conn``: IPv4 packet bytes in at a
virtual time ``now``, packet bytes out, timers, the counters the core keeps, and a read-only
view of one connection's variables for the invariant checks. The core's entry points are
renamed once already (``stack.ip.host.Host`` -> ``stack.netstack.NetStack``): adapting the fuzzer
to that means editing this module only.

Today's core:  ``Host(address, mtu, config, tracer, rng, isn=...)``
               ``.receive(packet, now)`` ``.take_output(now)`` ``.next_deadline()`` ``.on_timers(now)``
               ``.tcp`` (the TcpLayer: ``listen``, ``connect``, ``conns``, ``touch``, ``stats``)
"""
from __future__ import annotations

import random

from stack.netstack import NetStack as Host
from stack.tcp.config import TcpConfig
from stack.tcp.isn import FixedIsn
from stack.tcp.seq import seq_diff, seq_le
from stack.tcp.states import State

#: names of the valid TCP states (RFC 9293 3.3.2), as ``Conn.state`` reports them
STATE_NAMES = frozenset(s.name for s in State)


def make_config(options: bool) -> TcpConfig:
    """Small buffers and short timers, so that every state and timer is reached quickly."""
    return TcpConfig(timestamps=options, sack=options, window_scaling=options, rcvbuf=65536,
                     sndbuf=65536, retries2=4, syn_retries=3, synack_retries=3, msl=5.0,
                     fin_timeout=10.0)


class Conn:
    """A read-only view of one connection plus the user calls (send, recv, close ...)."""

    def __init__(self, core: "Core", tcb):
        self._core, self._tcb = core, tcb

    # -- variables (RFC 9293 3.3.1 names)
    @property
    def state(self) -> str:
        return self._tcb.state.name

    @property
    def snd_una(self) -> int:
        return self._tcb.snd_una

    @property
    def snd_nxt(self) -> int:
        return self._tcb.snd_nxt

    @property
    def snd_max(self) -> int:
        return self._tcb.snd_max

    @property
    def rcv_nxt(self) -> int:
        return self._tcb.rcv_nxt

    @property
    def rcv_wnd(self) -> int:
        return self._tcb.rcv_wnd

    @property
    def stats(self) -> dict:
        return self._tcb.stats

    def fingerprint(self) -> tuple:
        """What a segment that was accepted (not dropped) may change."""
        t = self._tcb
        return (t.state, t.snd_una, t.snd_nxt, t.snd_max, t.snd_wnd, t.snd_wl1, t.snd_wl2, t.rcv_nxt,
                t.ts_recent, len(t.rcvbuf), len(t.reasm), t.rcv_closed, t.error, t.irs,
                t.recovery.in_recovery, t.stats.get("dupacks_in", 0))

    # -- user calls (each ends with the layer collecting output, as the runtime does)
    def send(self, data: bytes, now: float) -> int:
        n = self._tcb.send(data, now)
        self._core._touch(self._tcb, now)
        return n

    def recv(self, n: int, now: float) -> bytes:
        data = self._tcb.recv(n, now)
        self._core._touch(self._tcb, now)
        return data

    def close(self, now: float) -> None:
        self._tcb.close(now)
        self._core._touch(self._tcb, now)

    def shutdown_write(self, now: float) -> None:
        self._tcb.shutdown_write(now)
        self._core._touch(self._tcb, now)

    def abort(self, now: float) -> None:
        self._tcb.abort(now)
        self._core._touch(self._tcb, now)

    # -- invariants
    def violations(self) -> list[str]:
        """Broken invariants of the TCB (empty when all hold)."""
        t = self._tcb
        bad = []
        if t.state.name not in STATE_NAMES:
            bad.append(f"state {t.state!r} is not an RFC 9293 state")
        if t.state is State.CLOSED:
            return bad
        if not (seq_le(t.snd_una, t.snd_nxt) and seq_le(t.snd_nxt, t.snd_max)):
            bad.append(f"not SND.UNA <= SND.NXT <= SND.MAX: {t.snd_una} {t.snd_nxt} {t.snd_max}")
        if seq_diff(t.snd_max, t.snd_una) > len(t.sndbuf) + 2:
            bad.append(f"in flight {seq_diff(t.snd_max, t.snd_una)} > sndbuf {len(t.sndbuf)} + SYN + FIN")
        if t.rcv_wnd < 0:
            bad.append(f"RCV.WND {t.rcv_wnd} < 0")
        if len(t.rcvbuf) > t.rcvbuf_cap + (1 << t.rcv_wscale):
            bad.append(f"rcvbuf {len(t.rcvbuf)} > cap {t.rcvbuf_cap}")
        if len(t.sndbuf) > t.sndbuf_cap:
            bad.append(f"sndbuf {len(t.sndbuf)} > cap {t.sndbuf_cap}")
        if t.eff_mss <= 0 or t.cc.cwnd < t.eff_mss // 2:
            bad.append(f"eff_mss {t.eff_mss} / cwnd {t.cc.cwnd}")
        ofo = t.reasm.blocks()  # (first seq, data, fin), lowest first
        for a, b in zip(ofo, ofo[1:]):
            if seq_diff(b[0], a[0]) <= len(a[1]):
                bad.append("out-of-order blocks overlap or are not sorted")
                break
        if ofo and seq_diff(ofo[0][0], t.rcv_nxt) <= 0:
            bad.append("out-of-order block at or before RCV.NXT")
        return bad


class Core:
    """One host's stack in virtual time, driven with packet bytes."""

    def __init__(self, address: bytes, *, options: bool = True, seed: int = 0, iss: int = 0xFFFFFF00,
                 mtu: int = 1500):
        self._host = Host(address, mtu, make_config(options), rng=random.Random(seed), isn=FixedIsn(iss))

    # -- the packet interface
    def receive(self, packet: bytes, now: float) -> None:
        self._host.receive(packet, now)

    def take_output(self, now: float) -> list[bytes]:
        return [bytes(p) for p in self._host.take_output(now)]

    def next_deadline(self) -> float | None:
        return self._host.next_deadline()

    def on_timers(self, now: float) -> None:
        self._host.on_timers(now)

    # -- sockets
    def listen(self, port: int, backlog: int = 8) -> None:
        self._host.tcp.listen(self._host.address, port, backlog)

    def connect(self, local_port: int, peer: bytes, peer_port: int, now: float) -> Conn:
        tcb = self._host.tcp.connect((self._host.address, local_port), (peer, peer_port), now)
        self._touch(tcb, now)
        return Conn(self, tcb)

    def find(self, local_port: int, peer: bytes, peer_port: int) -> Conn | None:
        tcb = self._host.tcp.conns.get((self._host.address, local_port, peer, peer_port))
        return None if tcb is None else Conn(self, tcb)

    def accept(self, port: int) -> Conn | None:
        lst = self._host.tcp.listeners.get((self._host.address, port))
        tcb = lst.accept() if lst is not None else None
        return None if tcb is None else Conn(self, tcb)

    def _touch(self, tcb, now: float) -> None:
        self._host.tcp.touch(tcb, now)

    # -- counters
    def counters(self) -> dict[str, int]:
        """Every counter of the host and the TCP layer, flattened (``ip:``/``tcp:`` prefixes)."""
        out = {f"ip:{k}": v for k, v in self._host.stats.items()}
        out.update({f"tcp:{k}": v for k, v in self._host.tcp.stats.items()})
        for lst in self._host.tcp.listeners.values():
            out.update({f"listen:{k}": v for k, v in lst.stats.items()})
        # drops counted by any connection (a mutated segment may reach another one, e.g. a new
        # SYN-RECEIVED connection made by its first copy), not only the one under test
        out["conn:drops"] = sum(c.stats["drops"] for c in self._host.tcp.conns.values() if hasattr(c, "stats"))
        return out

    def connection_count(self) -> int:
        return len(self._host.tcp.conns)
