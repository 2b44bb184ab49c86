"""Run a parsed packet script against a driver in virtual time and compare every outbound segment.

Inbound segments are built with scapy (a tool here, not the stack's hot path) from the script's
fields, so the stack is fed bytes that its own encoder never made; outbound packets are parsed
with scapy and their IP and TCP checksums checked against scapy's recomputation.

Sequence spaces follow packetdrill: inbound ``seq`` and outbound ``ack`` are relative to the
script's ISN (live = script + ``remote_isn``); outbound ``seq`` and inbound ``ack`` relative to
the stack's ISN, learned from the stack's SYN or SYN-ACK (before that, raw values: a RST
from a closed port shows the numbers on the wire).
SACK blocks follow the same rule. Outbound TS val is mapped like packetdrill: the first one
the script names is the baseline, later ones must advance by the elapsed ticks
(``--tcp_ts_tick_usecs``, default 1000 here); inbound TS ecr values the script took from an
outbound TS val are mapped back to the stack's real value.
"""
from __future__ import annotations

import errno as _errno
import os
from dataclasses import dataclass, field

from scapy.layers.inet import IP, TCP
from scapy.packet import Raw

from .driver import REMOTE_ADDR, LOCAL_ADDR, SyscallError, ValueMismatch
from .parse import Event, Option, Packet, Script, Syscall

MASK = 0xFFFFFFFF
REMOTE_ISN = 1_000_000            # the script's sequence 0 on the wire (packetdrill picks a random one)
ANY_TIME_LIMIT = 600.0            # '*': how far virtual time may run to find the segment
_FLAG_ORDER = "FSRP.UEW"          # packetdrill's print order
_TO_SCAPY = {"F": "F", "S": "S", "R": "R", "P": "P", ".": "A", "U": "U", "E": "E", "W": "C"}
_FROM_SCAPY = {v: k for k, v in _TO_SCAPY.items()}


class ScriptFailed(Exception):
    """The stack did not do what the script says; the message is the readable diff."""


@dataclass
class Result:
    path: str
    ok: bool
    message: str = ""
    log: list = field(default_factory=list)


def _usec(t: float) -> float:
    """Script times are whole microseconds, as in packetdrill (no float drift over many '+' steps)."""
    return round(t * 1e6) / 1e6


def _fmt_time(t: float) -> str:
    return f"{t:.3f}" if abs(t * 1000 - round(t * 1000)) < 1e-6 else f"{t:.6f}"


def flag_text(letters) -> str:
    return "".join(c for c in _FLAG_ORDER if c in letters) or "-"


class Runner:
    def __init__(self, script: Script, driver, verbose: bool = False, echo=None):
        self.script, self.driver, self.verbose, self.echo = script, driver, verbose, echo
        opts = script.options
        self.tolerance = float(opts.get("tolerance_usecs", getattr(driver, "tolerance_usecs", 0))) / 1e6
        self.ts_tick = float(opts.get("tcp_ts_tick_usecs", getattr(driver, "ts_tick_usecs", 1000))) / 1e6
        self.local_isn = 0                # until the stack's SYN or SYN-ACK names its ISN (packetdrill)
        self.remote_isn = REMOTE_ISN
        self.ts_first = None              # (script val, actual val) baseline, as packetdrill
        self.ts_map: dict[int, int] = {}  # script TS val -> actual TS val of outbound segments
        self.log: list[str] = []          # the segments and calls so far, in script syntax

    # ------------------------------------------------------------ top level
    def run(self) -> Result:
        try:
            self._run()
        except ScriptFailed as exc:
            return Result(self.script.path, False, str(exc), self.log)
        return Result(self.script.path, True, "", self.log)

    def _run(self) -> None:
        t_prev = 0.0
        for ev in self.script.events:
            if isinstance(ev.action, Packet) and ev.action.direction == ">":
                t_prev = self._outbound(ev, t_prev)
                continue
            t = _usec(ev.time if ev.time_kind == "abs" else t_prev + ev.time)
            self._no_output_before(ev, t)
            self.driver.advance_to(t)
            if isinstance(ev.action, Packet):
                self._inbound(ev, t)
            else:
                self._syscall(ev, t)
            t_prev = t
        self._no_output_before(None, t_prev)

    def _say(self, line: str) -> None:
        self.log.append(line)
        if self.verbose and self.echo:
            self.echo("    " + line)

    # ------------------------------------------------------------ failures
    def _fail(self, ev: Event | None, what: str, actual: str | None = None) -> None:
        where = f"{self.script.path}:{ev.line}" if ev else self.script.path
        lines = [f"{where}: {what}"]
        if ev is not None:
            lines.append(f"  script: {ev.text}")
        if actual is not None:
            lines.append(f"  actual: {actual}")
        lines.append("  so far:" if self.log else "  so far: (nothing)")
        lines += ["    " + s for s in self.log[-20:]]
        raise ScriptFailed("\n".join(lines))

    def _no_output_before(self, ev: Event | None, t: float) -> None:
        """Nothing may leave the stack before ``t`` that the script did not expect."""
        self.driver.advance_until_output(t)
        if self.driver.out:
            at, raw = self.driver.out[0]
            text = self._describe(raw, at)
            what = "unexpected outbound segment" + (" before this event" if ev else " after the last event")
            self._fail(ev, what, text)

    # ------------------------------------------------------------ inbound
    def _inbound(self, ev: Event, t: float) -> None:
        p: Packet = ev.action
        lport, rport = self.driver.flow
        ack = ((p.ack + self.local_isn) & MASK) if p.ack is not None else 0
        tcp = TCP(sport=rport, dport=lport, seq=(p.start + self.remote_isn) & MASK, ack=ack,
                  flags="".join(_TO_SCAPY[c] for c in p.flags), window=p.win, urgptr=p.urg,
                  options=[self._scapy_option(o, p) for o in p.options])
        pkt = IP(src=REMOTE_ADDR, dst=LOCAL_ADDR) / tcp
        if p.length:
            pkt = pkt / Raw(bytes(p.length))
        self.driver.inject(bytes(pkt))
        self._say(f"{_fmt_time(t)} < {self._script_form(p)}")

    def _scapy_option(self, o: Option, p: Packet):
        if o.kind == "nop":
            return ("NOP", None)
        if o.kind == "eol":
            return ("EOL", None)
        if o.kind == "mss":
            return ("MSS", o.value)
        if o.kind == "wscale":
            return ("WScale", o.value)
        if o.kind == "sackOK":
            return ("SAckOK", b"")
        if o.kind == "sack":
            flat = []
            for left, right in o.value:
                flat += [(left + self.local_isn) & MASK, (right + self.local_isn) & MASK]
            return ("SAck", tuple(flat))
        val, ecr = o.value
        if "." in p.flags and ecr:
            ecr = self._map_ecr(ecr)
        return ("Timestamp", (val, ecr))

    def _map_ecr(self, ecr: int) -> int:
        """packetdrill: an ecr that names an outbound TS val maps to its real value; else interpolate."""
        if ecr in self.ts_map:
            return self.ts_map[ecr]
        if self.ts_first is not None:
            return (ecr - self.ts_first[0] + self.ts_first[1]) & MASK
        return ecr

    @staticmethod
    def _script_form(p: Packet) -> str:
        s = f"{flag_text(p.flags)} {p.start}:{p.end}({p.length})"
        if p.ack is not None:
            s += f" ack {p.ack}"
        if p.win is not None:
            s += f" win {p.win}"
        if p.options is None:
            s += " <...>"
        elif p.options:
            s += " <" + ",".join(str(o) for o in p.options) + ">"
        return s

    # ------------------------------------------------------------ outbound
    def _outbound(self, ev: Event, t_prev: float) -> float:
        p: Packet = ev.action
        tol = self.tolerance + 1e-9
        if ev.time_kind == "any":
            early, late = t_prev - tol, max(t_prev, self.driver.now) + ANY_TIME_LIMIT
            expected_t = None
        else:
            base = t_prev if ev.time_kind in ("rel", "range-rel") else 0.0
            start = _usec(base + ev.time)
            end = _usec(base + ev.time_end) if ev.time_end is not None else start
            early, late, expected_t = start - tol, end + tol, start
        if not self.driver.out:
            self.driver.advance_until_output(late)
        if not self.driver.out:
            self.driver.advance_to(max(self.driver.now, late))
            self._fail(ev, f"expected an outbound segment by {_fmt_time(late)}, the stack sent nothing")
        at, raw = self.driver.out.popleft()
        ip = self._parse_out(ev, raw, at)
        text = self._describe_ip(ip, at)
        if at < early:
            self._fail(ev, f"timing: segment sent at {_fmt_time(at)}, the script expects it at "
                           f"{_fmt_time(expected_t if expected_t is not None else early)}", text)
        diffs = self._compare(p, ip)
        if diffs:
            self._fail(ev, "outbound segment differs: " + "; ".join(diffs), text)
        self._say(text)
        return at if ev.time_kind in ("any", "range-abs", "range-rel") else expected_t

    def _parse_out(self, ev: Event, raw: bytes, at: float):
        ip = IP(raw)
        fresh = IP(raw)
        del fresh.chksum
        if IP(bytes(fresh)).chksum != ip.chksum:
            self._fail(ev, "bad outbound IPv4 header checksum", repr(ip))
        if TCP not in ip:
            self._fail(ev, f"outbound packet is not TCP: {ip.summary()}")
        fresh = IP(raw)
        del fresh[TCP].chksum
        if IP(bytes(fresh))[TCP].chksum != ip[TCP].chksum:
            self._fail(ev, "bad outbound TCP checksum", self._describe_ip(ip, at))
        tcp = ip[TCP]
        if "S" in str(tcp.flags):
            self.local_isn = tcp.seq  # packetdrill: the stack's SYN or SYN-ACK names its ISN
        return ip

    def _actual_options(self, tcp) -> list[Option]:
        out = []
        for name, value in tcp.options:
            if name == "NOP":
                out.append(Option("nop"))
            elif name == "EOL":
                out.append(Option("eol"))
            elif name == "MSS":
                out.append(Option("mss", value))
            elif name == "WScale":
                out.append(Option("wscale", value))
            elif name == "SAckOK":
                out.append(Option("sackOK"))
            elif name == "SAck":
                out.append(Option("sack", [((value[i] - self.remote_isn) & MASK, (value[i + 1] - self.remote_isn) & MASK)
                                           for i in range(0, len(value), 2)]))
            elif name == "Timestamp":
                out.append(Option("TS", tuple(value)))
            else:
                out.append(Option(str(name)))
        while out and out[-1].kind == "eol" and len(out) > 1:
            out.pop()  # padding
        return out

    def _compare(self, p: Packet, ip) -> list[str]:
        tcp = ip[TCP]
        diffs = []
        lport, rport = self.driver.flow
        if (ip.src, ip.dst) != (LOCAL_ADDR, REMOTE_ADDR) or (tcp.sport, tcp.dport) != (lport, rport):
            diffs.append(f"addresses {ip.src}:{tcp.sport} > {ip.dst}:{tcp.dport}, expected "
                         f"{LOCAL_ADDR}:{lport} > {REMOTE_ADDR}:{rport}")
        flags = self._flags_of(tcp)
        if flags != p.flags:
            diffs.append(f"flags {flag_text(flags)} != {flag_text(p.flags)}")
        seq = (tcp.seq - self.local_isn) & MASK
        length = len(bytes(tcp.payload))
        if seq != p.start:
            diffs.append(f"seq {seq} != {p.start}")
        if length != p.length:
            diffs.append(f"length {length} != {p.length}")
        want_ack = ((p.ack + self.remote_isn) & MASK) if p.ack is not None else 0
        if tcp.ack != want_ack:
            got = (tcp.ack - self.remote_isn) & MASK if "." in flags else tcp.ack
            diffs.append(f"ack {got} != {p.ack if p.ack is not None else 0}")
        if p.win is not None and tcp.window != p.win:
            diffs.append(f"win {tcp.window} != {p.win}")
        if tcp.urgptr != p.urg:
            diffs.append(f"urg {tcp.urgptr} != {p.urg}")
        if p.options is not None:
            diffs += self._compare_options(p.options, self._actual_options(tcp))
        return diffs

    def _compare_options(self, want: list[Option], got: list[Option]) -> list[str]:
        if [o.kind for o in want] != [o.kind for o in got]:
            return [f"options <{','.join(o.kind for o in got)}> != <{','.join(o.kind for o in want)}>"]
        diffs = []
        for w, g in zip(want, got):
            if w.kind == "TS":
                diffs += self._compare_ts(w.value, g.value)
            elif w.value != g.value:
                diffs.append(f"option {g} != {w}")
        return diffs

    def _compare_ts(self, want: tuple, got: tuple) -> list[str]:
        (s_val, s_ecr), (a_val, a_ecr) = want, got
        self.ts_map[s_val] = a_val
        if self.ts_first is None:
            self.ts_first = (s_val, a_val)
        mapped = (self.ts_first[0] + (a_val - self.ts_first[1])) & MASK
        diffs = []
        delta = (mapped - s_val + (1 << 31)) % (1 << 32) - (1 << 31)
        if self.ts_tick and abs(delta) * self.ts_tick > self.tolerance + 1e-9:
            diffs.append(f"TS val {mapped} != {s_val}")
        if a_ecr != s_ecr:  # the stack echoes the script's own inbound TS val (stricter than packetdrill)
            diffs.append(f"TS ecr {a_ecr} != {s_ecr}")
        return diffs

    @staticmethod
    def _flags_of(tcp) -> frozenset:
        return frozenset(_FROM_SCAPY[c] for c in str(tcp.flags) if c in _FROM_SCAPY)

    def _describe(self, raw: bytes, at: float) -> str:
        return self._describe_ip(IP(raw), at)

    def _describe_ip(self, ip, at: float) -> str:
        """An outbound segment in script syntax (script sequence space, every field shown)."""
        tcp = ip[TCP]
        flags = self._flags_of(tcp)
        n = len(bytes(tcp.payload))
        seq = (tcp.seq - self.local_isn) & MASK
        s = f"{_fmt_time(at)} > {flag_text(flags)} {seq}:{(seq + n) & MASK}({n})"
        if "." in flags:
            s += f" ack {(tcp.ack - self.remote_isn) & MASK}"
        elif tcp.ack:
            s += f" ack {tcp.ack}(raw)"
        s += f" win {tcp.window}"
        opts = self._actual_options(tcp)
        if opts:
            shown = []
            for o in opts:
                if o.kind == "TS" and self.ts_first is not None:
                    val = (self.ts_first[0] + (o.value[0] - self.ts_first[1])) & MASK
                    shown.append(str(Option("TS", (val, o.value[1]))))
                else:
                    shown.append(str(o))
            s += " <" + ",".join(shown) + ">"
        return s

    # ------------------------------------------------------------ system calls
    def _syscall(self, ev: Event, t: float) -> None:
        c: Syscall = ev.action
        try:
            result, err = self.driver.syscall(c.name, c.args)
        except SyscallError as exc:
            self._fail(ev, f"bad system call: {exc}")
        except ValueMismatch as exc:
            self._fail(ev, f"{c.name}() value differs: {exc}")
        actual = f"{result}" + (f" {err} ({_strerror(err)})" if err else "")
        self._say(f"{_fmt_time(t)} {c.name}({', '.join(c.args)}) = {actual}")
        if result != c.result or (c.errno or None) != (err if result == -1 else None):
            want = f"{c.result}" + (f" {c.errno}" if c.errno else "")
            self._fail(ev, f"{c.name}() returned {actual}, the script expects {want}")


def _strerror(name: str) -> str:
    code = getattr(_errno, name, None)
    return os.strerror(code) if code is not None else name


def run_script(script: Script, driver=None, verbose: bool = False, echo=None) -> Result:
    if driver is None:
        from .driver import StackDriver, stack_config
        driver = StackDriver(**stack_config(script.options))
    return Runner(script, driver, verbose, echo).run()
