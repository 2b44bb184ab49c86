"""Seeded link impairment, sans-I/O: loss, bursts, scripted drops, delay, jitter,
reordering, duplication, corruption and a rate-limited bottleneck with a drop-tail queue.

One ``Impairment`` sits on one direction of a link ("in": link -> stack, "out": stack ->
link). It does no I/O and reads no clock: the caller passes ``now`` (real seconds in the
runtime, virtual seconds in the simulator) and drives it the way it drives a TCP
connection::

    imp.offer(packet, now)          # a packet enters the impaired link
    for p in imp.poll(now): ...     # packets due at or before now, in delivery order
    imp.next_deadline()             # when poll will next have something (None: empty)

Every random decision comes from ``random.Random`` streams derived from one seed, one
stream per feature, so the same seed replays the same losses, and turning on (say)
duplication does not move which packets the loss stream drops.

A packet goes through the stages in this order (docs/impairment.md draws it):

    scripted rules -> random loss -> Gilbert-Elliott burst loss -> duplication
      -> (per copy) corruption -> bottleneck queue + serialization
      -> propagation delay + jitter -> reordering -> delivery

``ImpairSpec.parse("loss=5%,delay=20ms,...")`` builds the parameters from the compact
text the CLI takes (``--impair``, ``--impair-in``, ``--impair-out``, ``--seed``).
"""
from __future__ import annotations

import argparse
import hashlib
import heapq
import random
import re
import struct
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "DropRule", "ImpairSpec", "Impairment", "add_impairment_arguments",
    "impairments_from_args", "derive_seed", "parse_spec_arg", "SPEC_HELP",
    "DEFAULT_QUEUE_PACKETS", "STAT_KEYS",
]

#: Queue limit (packets, counting the one being serialized) when ``rate`` is set and
#: ``queue`` is not.
DEFAULT_QUEUE_PACKETS = 100
#: Default hold for reordering (swap mode: longest wait for a packet to overtake).
DEFAULT_REORDER_DELAY = 0.010

STAT_KEYS = ("offered", "delivered", "dropped_loss", "dropped_burst", "dropped_rule",
             "dropped_queue", "duplicated", "corrupted", "reordered", "delayed")

# ---------------------------------------------------------------------------------------
# Minimal IPv4 + TCP header peek (struct only; the wire layer owns full parsing).
# ---------------------------------------------------------------------------------------

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
_FLAG_NAMES = ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ACK, "."), (URG, "U"),
               (ECE, "E"), (CWR, "W"))
# Letters accepted in a rule's /FLAGS filter (tcpdump's plus A for ACK and C for CWR).
_FLAG_LETTERS = {"S": SYN, "F": FIN, "R": RST, "P": PSH, "A": ACK, ".": ACK, "U": URG,
                 "E": ECE, "W": CWR, "C": CWR}

_IP_HEAD = struct.Struct("!BxHxxHxB")      # ver/ihl, total length, flags/frag, protocol
_TCP_HEAD = struct.Struct("!HHIxxxxBB")     # sport, dport, seq, data offset, flags
_IPPROTO_TCP = 6


def _flag_string(flags: int) -> str:
    return "".join(name for bit, name in _FLAG_NAMES if flags & bit) or "none"


class _TcpInfo:
    """What the rules and the tracer need from a TCP segment."""

    __slots__ = ("flow", "seq", "flags", "paylen")

    def __init__(self, flow, seq, flags, paylen):
        self.flow, self.seq, self.flags, self.paylen = flow, seq, flags, paylen


def peek_tcp(packet: bytes) -> _TcpInfo | None:
    """Return TCP facts of an IPv4 packet, or None when it is not an (unfragmented or
    first-fragment) IPv4 TCP segment with a sane header. Never raises."""
    if len(packet) < 20:
        return None
    vihl, total, frag, proto = _IP_HEAD.unpack_from(packet)
    if vihl >> 4 != 4 or proto != _IPPROTO_TCP or frag & 0x1FFF:
        return None
    ihl = (vihl & 0x0F) * 4
    total = min(total, len(packet))
    if ihl < 20 or total < ihl + 20:
        return None
    sport, dport, seq, off, flags = _TCP_HEAD.unpack_from(packet, ihl)
    doff = (off >> 4) * 4
    if doff < 20 or ihl + doff > total:
        return None
    return _TcpInfo((bytes(packet[12:20]), sport, dport), seq, flags, total - ihl - doff)


def _ip_header_len(packet: bytes) -> int:
    """IPv4 header length, or 0 when the packet is not IPv4."""
    if len(packet) >= 20 and packet[0] >> 4 == 4:
        return min((packet[0] & 0x0F) * 4, len(packet))
    return 0


# ---------------------------------------------------------------------------------------
# Scripted drop rules
# ---------------------------------------------------------------------------------------

_KINDS = {
    # kind: (needs TCP, predicate on _TcpInfo)
    "pkt": (False, None),
    "tcp": (True, lambda i: True),
    "data": (True, lambda i: i.paylen > 0),
    "ack": (True, lambda i: i.paylen == 0 and i.flags & ACK and not i.flags & (SYN | FIN | RST)),
    "syn": (True, lambda i: i.flags & SYN and not i.flags & ACK),
    "synack": (True, lambda i: i.flags & SYN and i.flags & ACK),
    "fin": (True, lambda i: i.flags & FIN),
    "rst": (True, lambda i: i.flags & RST),
}
_KIND_ALIASES = {"packet": "pkt", "any": "pkt", "seg": "tcp", "syn-ack": "synack",
                 "syn_ack": "synack", "sa": "synack"}

_RULE_RE = re.compile(r"^(?P<kind>[A-Za-z_-]+)(?:/(?P<flags>[A-Za-z.]+))?:(?P<idx>[0-9,\- ]+)"
                      r"(?:x(?P<times>\d+))?$")


@dataclass(frozen=True)
class DropRule:
    """Drop the Nth packet of a kind, counted per direction from the start.

    ``kind``: pkt (any packet), tcp (any TCP segment), data (TCP segment with payload),
    ack (pure ACK), syn (SYN without ACK), synack, fin (FIN set), rst (RST set).
    ``flags``: extra TCP flags that must all be set (0: no filter).
    ``ranges``: 1-based inclusive (first, last) index ranges into that kind's count.
    ``times``: how many transmissions of the chosen segment to drop: the first drop
    plus ``times - 1`` later segments of the same flow with the same sequence number
    and kind (its retransmissions). For a non-TCP packet, identical bytes.
    """

    kind: str
    ranges: tuple[tuple[int, int], ...]
    flags: int = 0
    times: int = 1

    def selects(self, n: int) -> bool:
        return any(lo <= n <= hi for lo, hi in self.ranges)

    def __str__(self) -> str:
        kind = self.kind
        if self.flags:
            kind += "/" + "".join(ch for ch, bit in (("S", SYN), ("F", FIN), ("R", RST),
                                                     ("P", PSH), ("A", ACK), ("U", URG),
                                                     ("E", ECE), ("C", CWR)) if self.flags & bit)
        idx = ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.ranges)
        return f"{kind}:{idx}" + (f"x{self.times}" if self.times != 1 else "")

    @classmethod
    def parse(cls, text: str) -> "DropRule":
        """``KIND[/FLAGS]:N[,N|,N-M ...][xTIMES]``, e.g. ``data:3``, ``syn:1,2``,
        ``data:5-7``, ``synack:1x2``, ``tcp/FA:1``."""
        t = text.strip()
        m = _RULE_RE.match(t)
        if not m:
            raise ValueError(f"drop rule {text!r} is not KIND:N (e.g. data:3, synack:1, "
                             f"syn:1,2, pkt:5, data:4x2)")
        kind = m["kind"].lower()
        kind = _KIND_ALIASES.get(kind, kind)
        if kind not in _KINDS:
            raise ValueError(f"drop rule {text!r}: unknown kind {m['kind']!r} "
                             f"(one of {', '.join(_KINDS)})")
        flags = 0
        for ch in m["flags"] or "":
            bit = _FLAG_LETTERS.get(ch.upper())
            if bit is None:
                raise ValueError(f"drop rule {text!r}: unknown TCP flag {ch!r} "
                                 f"(use S F R P A U E C)")
            flags |= bit
        if flags and kind == "pkt":
            kind = "tcp"
        ranges = []
        for part in m["idx"].replace(" ", "").split(","):
            if not part:
                raise ValueError(f"drop rule {text!r}: empty index")
            lo, dash, hi = part.partition("-")
            if not lo.isdigit() or (dash and not hi.isdigit()):
                raise ValueError(f"drop rule {text!r}: bad index {part!r} (N or N-M)")
            a, b = int(lo), int(hi) if dash else int(lo)
            if a < 1 or b < a:
                raise ValueError(f"drop rule {text!r}: index {part!r} must count from 1 "
                                 f"(the first is 1) and ranges go up")
            ranges.append((a, b))
        times = int(m["times"]) if m["times"] else 1
        if times < 1:
            raise ValueError(f"drop rule {text!r}: x{times} must be at least 1")
        return cls(kind, tuple(ranges), flags, times)


class _RuleState:
    """Counter and pending repeats of one rule inside one Impairment."""

    __slots__ = ("rule", "label", "needs_tcp", "pred", "count", "repeats")

    def __init__(self, rule: DropRule):
        self.rule = rule
        self.label = str(rule)
        self.needs_tcp, self.pred = _KINDS[rule.kind]
        self.count = 0
        self.repeats: dict[Any, int] = {}

    def decide(self, packet: bytes, info: _TcpInfo | None) -> bool:
        if self.needs_tcp:
            if info is None or not self.pred(info):
                return False
        if self.rule.flags and (info is None or info.flags & self.rule.flags != self.rule.flags):
            return False
        self.count += 1
        key = (info.flow, info.seq) if info is not None else bytes(packet)
        left = self.repeats.get(key)
        if left:
            if left == 1:
                del self.repeats[key]
            else:
                self.repeats[key] = left - 1
            return True
        if self.rule.selects(self.count):
            if self.rule.times > 1:
                self.repeats[key] = self.rule.times - 1
            return True
        return False


# ---------------------------------------------------------------------------------------
# Unit parsing
# ---------------------------------------------------------------------------------------

_NUM = r"([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)"
_TIME_UNITS = {"s": 1.0, "sec": 1.0, "ms": 1e-3, "msec": 1e-3, "us": 1e-6, "usec": 1e-6,
               "µs": 1e-6, "ns": 1e-9}
# Rates in bits per second per unit. *bit = bits/s; *byte = bytes/s (as are the
# case-sensitive B, kB, KB, MB, GB, optionally with /s).
_RATE_UNITS = {"bit": 1, "bits": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9,
               "byte": 8, "bytes": 8, "kbyte": 8e3, "kbytes": 8e3, "mbyte": 8e6,
               "mbytes": 8e6, "gbyte": 8e9, "gbytes": 8e9}
_RATE_BYTE_UNITS_CS = {"B": 8, "kB": 8e3, "KB": 8e3, "MB": 8e6, "GB": 8e9}
_SIZE_UNITS = {"b": 1, "byte": 1, "bytes": 1, "k": 1000, "kb": 1000, "kbyte": 1000,
               "kbytes": 1000, "kib": 1024, "m": 10**6, "mb": 10**6, "mbyte": 10**6,
               "mbytes": 10**6, "mib": 1 << 20}
_PKT_UNITS = {"", "p", "pkt", "pkts", "packet", "packets"}


def _split_num(text: str) -> tuple[float, str]:
    m = re.fullmatch(_NUM + r"\s*([a-zA-Zµ%/]*)", text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a number with a unit")
    return float(m.group(1)), m.group(2)


def parse_probability(text: str) -> float:
    """``5%`` -> 0.05, ``0.05`` -> 0.05. Must lie in [0, 1]."""
    try:
        value, unit = _split_num(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a probability (write 5% or 0.05)") from None
    if unit == "%":
        value /= 100.0
    elif unit:
        raise ValueError(f"{text!r}: a probability takes % or nothing, not {unit!r}")
    elif value > 1:
        raise ValueError(f"{text!r}: probability must be between 0 and 1 (write {text}% "
                         f"for percent)")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{text!r}: probability must be between 0% and 100%")
    return value


def parse_time(text: str) -> float:
    """``20ms`` -> 0.02, ``500us``, ``1.5s``; ``0`` needs no unit. Never negative."""
    t = text.strip()
    if t.startswith("-"):
        raise ValueError(f"{text!r}: a time cannot be negative")
    try:
        value, unit = _split_num(t)
    except ValueError:
        raise ValueError(f"{text!r} is not a time (write 20ms, 500us or 1s)") from None
    if not unit:
        if value == 0:
            return 0.0
        raise ValueError(f"{text!r}: give a unit (s, ms, us)")
    scale = _TIME_UNITS.get(unit.lower() if unit != "µs" else unit)
    if scale is None:
        raise ValueError(f"{text!r}: unknown time unit {unit!r} (s, ms, us)")
    return value * scale


def parse_rate(text: str) -> float:
    """Rate in bits per second: ``10mbit``, ``512kbit``, ``1gbit``, ``8000bit``; bytes
    per second as ``125kbyte``, ``1.25mbyte``, ``1MB/s``, ``64kB/s``. ``10mbps`` is
    refused as ambiguous (tc(8) reads it as bytes, most people as bits)."""
    t = text.strip()
    if t.startswith("-"):
        raise ValueError(f"{text!r}: a rate cannot be negative")
    try:
        value, unit = _split_num(t)
    except ValueError:
        raise ValueError(f"{text!r} is not a rate (write 10mbit, 512kbit or 1gbit)") from None
    u = unit[:-2] if unit.endswith("/s") else unit
    scale = _RATE_BYTE_UNITS_CS.get(u) or _RATE_UNITS.get(u.lower())
    if scale is None:
        if u.lower().endswith("bps") or u.lower() in ("kb", "mb", "gb"):
            raise ValueError(f"{text!r} is ambiguous: write {value:g}{u.lower()[0]}bit for "
                             f"bits/s or {value:g}{u.lower()[0]}byte for bytes/s")
        raise ValueError(f"{text!r}: unknown rate unit {unit or '(none)'!r} "
                         f"(bit, kbit, mbit, gbit; byte, kbyte, mbyte for bytes/s)")
    if value <= 0:
        raise ValueError(f"{text!r}: rate must be positive")
    return value * scale


def parse_queue(text: str) -> tuple[int | None, int | None]:
    """Queue limit: ``50`` / ``50p`` packets, or ``64kb`` / ``30000bytes`` bytes.
    Returns (packets, bytes), one of them None."""
    try:
        value, unit = _split_num(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a queue size (write 50 for packets or 64kb "
                         f"for bytes)") from None
    u = unit.lower()
    if u in _PKT_UNITS:
        if value != int(value) or value < 1:
            raise ValueError(f"{text!r}: a queue holds at least 1 whole packet")
        return int(value), None
    scale = _SIZE_UNITS.get(u)
    if scale is None:
        raise ValueError(f"{text!r}: unknown queue unit {unit!r} (packets: none or p; "
                         f"bytes: b, kb, mb, kib, mib)")
    n = int(value * scale)
    if n < 1:
        raise ValueError(f"{text!r}: queue must hold at least 1 byte")
    return None, n


def _fmt_pct(p: float, exact: bool = False) -> str:
    text = f"{p * 100:.{12 if exact else 4}g}%"
    if exact and parse_probability(text) != p:
        return repr(p)
    return text


def _fmt_time(s: float, exact: bool = False) -> str:
    if s == 0:
        return "0"
    digits = 12 if exact else 4
    if s >= 1:
        text = f"{s:.{digits}g}s"
    elif s >= 1e-3:
        text = f"{s * 1e3:.{digits}g}ms"
    else:
        text = f"{s * 1e6:.{digits}g}us"
    if exact and parse_time(text) != s:
        return f"{s!r}s"
    return text


def _fmt_rate(bits: float, exact: bool = False) -> str:
    digits = 12 if exact else 4
    text = f"{bits:.{digits}g}bit"
    for unit, scale in (("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3)):
        if bits >= scale:
            text = f"{bits / scale:.{digits}g}{unit}"
            break
    if exact and parse_rate(text) != bits:
        return f"{bits!r}bit"
    return text


# ---------------------------------------------------------------------------------------
# The specification
# ---------------------------------------------------------------------------------------

_BOOL = {"1": True, "yes": True, "true": True, "on": True,
         "0": False, "no": False, "false": False, "off": False}


@dataclass(frozen=True)
class ImpairSpec:
    """All impairment parameters of one direction. The defaults impair nothing.

    Probabilities are fractions (0.05 = 5 %), times are seconds, ``rate`` is bits/s.
    """

    loss: float = 0.0                 # independent random loss
    p_good_to_bad: float = 0.0        # Gilbert-Elliott burst loss (off while 0 and loss_good 0)
    p_bad_to_good: float = 1.0
    loss_bad: float = 1.0
    loss_good: float = 0.0
    drop: tuple[DropRule, ...] = ()   # scripted drops
    delay: float = 0.0                # constant one-way propagation delay
    jitter: float = 0.0               # +- jitter (uniform) or standard deviation (normal)
    jitter_dist: str = "uniform"      # "uniform" | "normal"
    preserve_order: bool = False      # jitter never reorders when True
    reorder: float = 0.0              # probability a packet is held back
    reorder_mode: str = "swap"        # "swap": overtaken by the next packet; "delay": extra delay
    reorder_delay: float = DEFAULT_REORDER_DELAY  # swap: longest hold; delay: the extra delay
    dup: float = 0.0                  # probability of one extra copy
    corrupt: float = 0.0              # probability of one flipped bit
    corrupt_anywhere: bool = False    # False: only past the IPv4 header (checksums catch it)
    rate: float = 0.0                 # bottleneck rate in bits/s (0: no bottleneck)
    queue_packets: int | None = None  # drop-tail limit in packets (incl. the one on the wire)
    queue_bytes: int | None = None    # ... or in bytes
    explicit: frozenset = field(default=frozenset(), compare=False, repr=False)

    # -- derived ------------------------------------------------------------------------

    @property
    def burst(self) -> bool:
        return self.p_good_to_bad > 0 or self.loss_good > 0

    @property
    def is_null(self) -> bool:
        """True when this spec changes nothing (the zero-cost pass-through path)."""
        return not (self.loss or self.burst or self.drop or self.delay or self.jitter
                    or self.reorder or self.dup or self.corrupt or self.rate)

    @property
    def timed(self) -> bool:
        """True when packets can be held back (a heap is needed)."""
        return bool(self.delay or self.jitter or self.reorder or self.rate)

    @property
    def queue_limit(self) -> tuple[int | None, int | None]:
        """Effective (packets, bytes) limit of the bottleneck queue."""
        if self.queue_packets is None and self.queue_bytes is None:
            return DEFAULT_QUEUE_PACKETS, None
        return self.queue_packets, self.queue_bytes

    def validate(self) -> "ImpairSpec":
        for name in ("loss", "p_good_to_bad", "p_bad_to_good", "loss_bad", "loss_good",
                     "reorder", "dup", "corrupt"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name}={v!r}: probability must be between 0 and 1")
        if self.burst and self.p_bad_to_good <= 0:
            raise ValueError("burst: the bad->good probability must be above 0, or the "
                             "link never recovers")
        for name in ("delay", "jitter", "reorder_delay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: a time cannot be negative")
        if self.jitter_dist not in ("uniform", "normal"):
            raise ValueError(f"jitter distribution {self.jitter_dist!r}: uniform or normal")
        if self.reorder_mode not in ("swap", "delay"):
            raise ValueError(f"reorder mode {self.reorder_mode!r}: swap or delay")
        if self.rate < 0:
            raise ValueError("rate: cannot be negative")
        if (self.queue_packets is not None or self.queue_bytes is not None) and not self.rate:
            raise ValueError("queue needs a rate (a queue only forms behind a rate limit): "
                             "add e.g. rate=10mbit")
        return self

    # -- text ---------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str | None) -> "ImpairSpec":
        """Parse ``"loss=5%,delay=20ms,jitter=5ms,reorder=1%,dup=1%,corrupt=0.5%,
        rate=10mbit,queue=50,burst=0.01/0.3,drop=data:3"``. ``""`` or ``none``: no
        impairment. Raises ValueError naming the bad part. See docs/impairment.md."""
        if text is None:
            return cls()
        items = _split_items(text)
        kw: dict[str, Any] = {}
        drops: list[DropRule] = []
        for item in items:
            key, eq, value = item.partition("=")
            key = key.strip().lower().replace("-", "_")
            value = value.strip()
            handler = _KEYS.get(_KEY_ALIASES.get(key, key))
            if handler is None:
                raise ValueError(f"bad impairment {item!r}: unknown key {key!r} "
                                 f"(known: {', '.join(_KEYS)})")
            if not eq and key not in _FLAG_KEYS:
                raise ValueError(f"bad impairment {item!r}: write {key}=VALUE")
            try:
                handler(value if eq else "1", kw, drops)
            except ValueError as e:
                raise ValueError(f"bad impairment {item!r}: {e}") from None
        kw["drop"] = tuple(drops)
        explicit = frozenset(kw) - ({"drop"} if not drops else set())
        try:
            return cls(**kw, explicit=explicit).validate()
        except ValueError as e:
            raise ValueError(f"bad impairment {text!r}: {e}") from None

    def overlay(self, other: "ImpairSpec") -> "ImpairSpec":
        """This spec with the parameters ``other`` set explicitly taken from ``other``;
        drop rules add up. Used for ``--impair`` + ``--impair-in``/``--impair-out``."""
        changes = {name: getattr(other, name) for name in other.explicit if name != "drop"}
        changes["drop"] = self.drop + other.drop
        return replace(self, **changes, explicit=self.explicit | other.explicit).validate()

    def to_string(self) -> str:
        """Canonical spec text: ``ImpairSpec.parse(s.to_string()) == s``."""
        _fmtx_pct = lambda v: _fmt_pct(v, True)  # noqa: E731
        _fmtx_time = lambda v: _fmt_time(v, True)  # noqa: E731
        _fmtx_rate = lambda v: _fmt_rate(v, True)  # noqa: E731
        if self.is_null and not self.preserve_order:
            return "none"
        parts = []
        if self.loss:
            parts.append(f"loss={_fmtx_pct(self.loss)}")
        if self.burst:
            parts.append(f"burst={_fmtx_pct(self.p_good_to_bad)}/{_fmtx_pct(self.p_bad_to_good)}"
                         f"/{_fmtx_pct(self.loss_bad)}/{_fmtx_pct(self.loss_good)}")
        for rule in self.drop:
            parts.append(f"drop={rule}")
        if self.delay:
            parts.append(f"delay={_fmtx_time(self.delay)}")
        if self.jitter:
            parts.append(f"jitter={_fmtx_time(self.jitter)}/{self.jitter_dist}")
        if self.preserve_order:
            parts.append("preserve_order")
        if self.reorder:
            parts.append(f"reorder={_fmtx_pct(self.reorder)}/{self.reorder_mode}"
                         f"/{_fmtx_time(self.reorder_delay)}")
        if self.dup:
            parts.append(f"dup={_fmtx_pct(self.dup)}")
        if self.corrupt:
            parts.append(f"corrupt={_fmtx_pct(self.corrupt)}"
                         + ("/any" if self.corrupt_anywhere else ""))
        if self.rate:
            parts.append(f"rate={_fmtx_rate(self.rate)}")
            if self.queue_bytes is not None:
                parts.append(f"queue={self.queue_bytes}b")
            elif self.queue_packets is not None:
                parts.append(f"queue={self.queue_packets}")
        return ",".join(parts)

    def describe(self) -> str:
        """Short human summary, e.g. ``loss 5%, delay 20ms ±5ms, rate 10mbit (queue 50 pkts)``."""
        if self.is_null:
            return "none"
        parts = []
        if self.loss:
            parts.append(f"loss {_fmt_pct(self.loss)}")
        if self.burst:
            mean = 1 / self.p_bad_to_good
            states = ("" if (self.loss_bad, self.loss_good) == (1.0, 0.0) else
                      f", loss {_fmt_pct(self.loss_bad)} bad/{_fmt_pct(self.loss_good)} good")
            parts.append(f"burst loss (Gilbert-Elliott {_fmt_pct(self.p_good_to_bad)} good->bad, "
                         f"{_fmt_pct(self.p_bad_to_good)} bad->good, mean burst {mean:.3g} pkts"
                         f"{states})")
        if self.drop:
            parts.append("drop " + " ".join(str(r) for r in self.drop))
        if self.delay or self.jitter:
            d = f"delay {_fmt_time(self.delay)}" if self.delay else "jitter"
            if self.jitter:
                sym = "±" if self.jitter_dist == "uniform" else "σ"
                d += f" {sym}{_fmt_time(self.jitter)}"
                if self.preserve_order:
                    d += " in order"
            parts.append(d)
        if self.reorder:
            how = (f"overtaken by next, hold ≤{_fmt_time(self.reorder_delay)}"
                   if self.reorder_mode == "swap" else f"+{_fmt_time(self.reorder_delay)}")
            parts.append(f"reorder {_fmt_pct(self.reorder)} ({how})")
        if self.dup:
            parts.append(f"dup {_fmt_pct(self.dup)}")
        if self.corrupt:
            parts.append(f"corrupt {_fmt_pct(self.corrupt)}"
                         + (" (anywhere)" if self.corrupt_anywhere else ""))
        if self.rate:
            qp, qb = self.queue_limit
            q = f"{qp} pkts" if qb is None else f"{qb} bytes"
            parts.append(f"rate {_fmt_rate(self.rate)} (queue {q})")
        return ", ".join(parts)

    def __str__(self) -> str:
        return self.to_string()


def _split_items(text: str) -> list[str]:
    """Split on commas; a bare index list after ``drop=`` (``syn:1,2``) continues it."""
    items: list[str] = []
    for raw in text.split(","):
        tok = raw.strip()
        if not tok:
            continue
        if (items and "=" not in tok and re.fullmatch(r"[0-9][0-9\-]*(x[0-9]+)?", tok)
                and items[-1].split("=", 1)[0].strip().lower() == "drop"):
            items[-1] += "," + tok
            continue
        items.append(tok)
    if len(items) == 1 and items[0].lower() in ("none", "off", "0"):
        return []
    return items


def _opts(value: str) -> list[str]:
    return [p.strip() for p in value.split("/")]


def _k_loss(v, kw, drops):
    kw["loss"] = parse_probability(v)


def _k_burst(v, kw, drops):
    parts = _opts(v)
    if not 2 <= len(parts) <= 4:
        raise ValueError("burst takes P_GOOD_TO_BAD/P_BAD_TO_GOOD[/LOSS_BAD[/LOSS_GOOD]], "
                         "e.g. burst=1%/30%")
    names = ("p_good_to_bad", "p_bad_to_good", "loss_bad", "loss_good")
    for name, p in zip(names, parts):
        kw[name] = parse_probability(p)
    if kw["p_bad_to_good"] <= 0:
        raise ValueError("bad->good probability must be above 0 or the link never recovers")


def _k_drop(v, kw, drops):
    for part in re.split(r"[;+]", v):
        if part.strip():
            drops.append(DropRule.parse(part))
    if not v.strip():
        raise ValueError("drop needs a rule, e.g. drop=data:3")


def _k_delay(v, kw, drops):
    kw["delay"] = parse_time(v)


def _k_jitter(v, kw, drops):
    parts = _opts(v)
    kw["jitter"] = parse_time(parts[0])
    for opt in parts[1:]:
        if opt.lower() not in ("uniform", "normal"):
            raise ValueError(f"jitter option {opt!r}: uniform or normal")
        kw["jitter_dist"] = opt.lower()


def _k_dist(v, kw, drops):
    if v.lower() not in ("uniform", "normal"):
        raise ValueError(f"{v!r}: uniform or normal")
    kw["jitter_dist"] = v.lower()


def _k_preserve(v, kw, drops):
    b = _BOOL.get(v.lower())
    if b is None:
        raise ValueError(f"{v!r} is not yes/no")
    kw["preserve_order"] = b


def _k_reorder(v, kw, drops):
    parts = _opts(v)
    kw["reorder"] = parse_probability(parts[0])
    mode = None
    for opt in parts[1:]:
        if opt.lower() in ("swap", "delay"):
            mode = opt.lower()
        else:
            kw["reorder_delay"] = parse_time(opt)
            mode = mode or "delay"
    if mode:
        kw["reorder_mode"] = mode


def _k_reorder_delay(v, kw, drops):
    kw["reorder_delay"] = parse_time(v)


def _k_reorder_mode(v, kw, drops):
    if v.lower() not in ("swap", "delay"):
        raise ValueError(f"{v!r}: swap or delay")
    kw["reorder_mode"] = v.lower()


def _k_dup(v, kw, drops):
    kw["dup"] = parse_probability(v)


def _k_corrupt(v, kw, drops):
    parts = _opts(v)
    kw["corrupt"] = parse_probability(parts[0])
    for opt in parts[1:]:
        if opt.lower() in ("any", "anywhere", "all"):
            kw["corrupt_anywhere"] = True
        elif opt.lower() in ("payload", "l4"):
            kw["corrupt_anywhere"] = False
        else:
            raise ValueError(f"corrupt option {opt!r}: any (whole packet) or payload "
                             f"(past the IP header, the default)")


def _k_rate(v, kw, drops):
    kw["rate"] = parse_rate(v)


def _k_queue(v, kw, drops):
    kw["queue_packets"], kw["queue_bytes"] = parse_queue(v)


_KEYS = {
    "loss": _k_loss, "burst": _k_burst, "drop": _k_drop, "delay": _k_delay,
    "jitter": _k_jitter, "jitter_dist": _k_dist, "preserve_order": _k_preserve,
    "reorder": _k_reorder, "reorder_delay": _k_reorder_delay, "reorder_mode": _k_reorder_mode,
    "dup": _k_dup, "corrupt": _k_corrupt, "rate": _k_rate, "queue": _k_queue,
}
_KEY_ALIASES = {"duplicate": "dup", "corruption": "corrupt", "limit": "queue",
                "gemodel": "burst", "ge": "burst", "inorder": "preserve_order",
                "in_order": "preserve_order", "latency": "delay", "bandwidth": "rate"}
_FLAG_KEYS = {"preserve_order", "inorder", "in_order"}


# ---------------------------------------------------------------------------------------
# The impairment engine
# ---------------------------------------------------------------------------------------

def _stream(seed: int, name: str) -> random.Random:
    # str seeds hash with SHA-512 inside random (version 2): stable across runs and
    # independent of PYTHONHASHSEED.
    return random.Random(f"tunstack-impair:{seed}:{name}")


def derive_seed(seed: int, label: str) -> int:
    """A sub-seed for one direction (``"in"``/``"out"``) of one run seed."""
    digest = hashlib.sha256(f"{seed}/{label}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


class Impairment:
    """Impairs one direction of a link. See the module docstring for the stage order."""

    def __init__(self, spec: ImpairSpec | str | None = None, seed: int = 0,
                 direction: str = "out", tracer=None):
        if spec is None or isinstance(spec, str):
            spec = ImpairSpec.parse(spec)
        self.spec = spec
        self.seed = seed
        self.direction = direction
        self.tracer = tracer
        self.stats: dict[str, int] = dict.fromkeys(STAT_KEYS, 0)
        self.is_null = spec.is_null
        self._timed = spec.timed
        self._ready: list[bytes] = []       # untimed path: due now
        self._ready_since = 0.0
        self._heap: list[list] = []         # timed path: [due, order, packet | None]
        self._order = 0
        self._alive = 0
        # one random stream per feature (only for the features in use)
        s = spec
        self._rng_loss = _stream(seed, "loss") if s.loss else None
        self._rng_burst = _stream(seed, "burst") if s.burst else None
        self._rng_dup = _stream(seed, "dup") if s.dup else None
        self._rng_corrupt = _stream(seed, "corrupt") if s.corrupt else None
        self._rng_jitter = _stream(seed, "jitter") if s.jitter else None
        self._rng_reorder = _stream(seed, "reorder") if s.reorder else None
        self._bad = False                   # Gilbert-Elliott state
        self._rules = [_RuleState(r) for r in s.drop]
        # bottleneck: finish times and sizes of packets in the queue (incl. on the wire)
        self._q_finish: list[float] = []
        self._q_sizes: list[int] = []
        self._q_head = 0
        self._q_bytes = 0
        self._busy_until = float("-inf")
        self._q_pkts, self._q_bytes_limit = s.queue_limit
        self._last_due = float("-inf")      # for preserve_order
        self._held: list[tuple[list, float]] = []  # swap-mode reorder: (entry, natural due)
        self._last_ser = 0.0                # serialization time of the last enqueued packet

    # -- public -------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (f"Impairment({self.direction}: {self.spec.describe()}, seed={self.seed}, "
                f"pending={self.pending})")

    @property
    def pending(self) -> int:
        """Packets accepted and not yet delivered."""
        return len(self._ready) + self._alive

    def offer(self, packet: bytes, now: float) -> None:
        """A packet enters the impaired link at time ``now``."""
        stats = self.stats
        stats["offered"] += 1
        if self.is_null:
            if not self._ready:
                self._ready_since = now
            self._ready.append(packet)
            return
        tracing = self.tracer is not None and self.tracer.enabled
        info = peek_tcp(packet) if (self._rules or tracing) else None
        reason = None
        if self._rules:
            for rs in self._rules:          # every rule counts every packet it matches
                if rs.decide(packet, info) and reason is None:
                    reason = ("dropped_rule", "rule " + rs.label)
        # Draw for every offered packet so the k-th decision belongs to the k-th packet.
        if self._rng_loss is not None:
            if self._rng_loss.random() < self.spec.loss and reason is None:
                reason = ("dropped_loss", "loss")
        if self._rng_burst is not None:
            if self._burst_step() and reason is None:
                reason = ("dropped_burst", "burst")
        if reason is not None:
            stats[reason[0]] += 1
            if tracing:
                self._trace(now, "drop", reason[1], packet, info)
            return
        self._transmit(packet, now, info)
        if self._rng_dup is not None and self._rng_dup.random() < self.spec.dup:
            stats["duplicated"] += 1
            if tracing:
                self._trace(now, "dup", "dup", packet, info)
            self._transmit(packet, now, info)

    def poll(self, now: float) -> list[bytes]:
        """Packets due at or before ``now``, in delivery order (each returned once)."""
        if self._ready:
            out = self._ready
            self._ready = []
        else:
            out = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            pkt = entry[2]
            if pkt is not None:
                entry[2] = None             # delivered: a held entry must not come back
                out.append(pkt)
        if self._timed:
            self._alive -= len(out)
        self.stats["delivered"] += len(out)
        return out

    def next_deadline(self) -> float | None:
        """Time at which ``poll`` will next return something; None when nothing is held."""
        if self._ready:
            return self._ready_since
        heap = self._heap
        while heap and heap[0][2] is None:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    # -- stages -------------------------------------------------------------------------

    def _burst_step(self) -> bool:
        """Gilbert-Elliott: lose with the current state's probability, then move."""
        s, r = self.spec, self._rng_burst.random
        lost = r() < (s.loss_bad if self._bad else s.loss_good)
        if self._bad:
            if r() < s.p_bad_to_good:
                self._bad = False
        elif r() < s.p_good_to_bad:
            self._bad = True
        return lost

    def _corrupt(self, packet: bytes, now: float, info) -> bytes:
        start = 0 if self.spec.corrupt_anywhere else _ip_header_len(packet)
        if start >= len(packet):
            start = 0                       # nothing past the header: flip in the header
        if not packet:
            return packet
        bit = self._rng_corrupt.randrange((len(packet) - start) * 8)
        buf = bytearray(packet)
        offset = start + (bit >> 3)
        buf[offset] ^= 0x80 >> (bit & 7)
        self.stats["corrupted"] += 1
        if self.tracer is not None and self.tracer.enabled:
            self._trace(now, "corrupt", "bitflip", packet, info, offset=offset, bit=bit & 7)
        return bytes(buf)

    def _transmit(self, packet: bytes, now: float, info) -> None:
        """One copy: corruption, bottleneck, delay/jitter, reordering, then the heap."""
        s = self.spec
        if self._rng_corrupt is not None and self._rng_corrupt.random() < s.corrupt:
            packet = self._corrupt(packet, now, info)
        if not self._timed:
            if not self._ready:
                self._ready_since = now
            self._ready.append(packet)
            return
        t = now
        if s.rate:
            t = self._enqueue(packet, now, info)
            if t is None:
                return
        due = t + s.delay
        if self._rng_jitter is not None:
            if s.jitter_dist == "uniform":
                due += self._rng_jitter.uniform(-s.jitter, s.jitter)
            else:
                due += self._rng_jitter.gauss(0.0, s.jitter)
            if due < t:                     # never a negative propagation delay
                due = t
        if s.preserve_order:
            if due < self._last_due:
                due = self._last_due
        if self._rng_reorder is not None and self._rng_reorder.random() < s.reorder:
            self._hold(packet, now, due, info)
            return
        if due > self._last_due:
            self._last_due = due
        self._push(due, packet)
        if self._held:
            self._release_held(due)
        if due > now:
            self.stats["delayed"] += 1
            if self.tracer is not None and self.tracer.enabled:
                self._trace(now, "delay", self._delay_reason(now, t), packet, info,
                            delay=round(due - now, 9), queue_wait=round(t - now, 9))

    def _delay_reason(self, now: float, t: float) -> str:
        s = self.spec
        why = []
        if s.rate:
            why.append("queue" if t - now > self._last_ser + 1e-12 else "serialize")
        if s.delay:
            why.append("delay")
        if s.jitter:
            why.append("jitter")
        return "+".join(why)

    def _enqueue(self, packet: bytes, now: float, info) -> float | None:
        """Bottleneck: drop-tail queue then serialization at ``rate``. Returns the time
        the last bit leaves the bottleneck, or None when the queue was full."""
        fin, sizes = self._q_finish, self._q_sizes
        h = self._q_head
        while h < len(fin) and fin[h] <= now:   # those have left the bottleneck
            self._q_bytes -= sizes[h]
            h += 1
        if h > 64 and h * 2 > len(fin):
            del fin[:h], sizes[:h]
            h = 0
        self._q_head = h
        n = len(fin) - h
        size = len(packet)
        if ((self._q_pkts is not None and n >= self._q_pkts)
                or (self._q_bytes_limit is not None and self._q_bytes + size > self._q_bytes_limit)):
            self.stats["dropped_queue"] += 1
            if self.tracer is not None and self.tracer.enabled:
                self._trace(now, "queue_drop", "queue_full", packet, info, queue=n,
                            queue_bytes=self._q_bytes)
            return None
        ser = size * 8.0 / self.spec.rate
        self._last_ser = ser
        start = self._busy_until if self._busy_until > now else now
        finish = start + ser
        self._busy_until = finish
        fin.append(finish)
        sizes.append(size)
        self._q_bytes += size
        return finish

    def _push(self, due: float, packet: bytes) -> list:
        self._order += 1
        entry = [due, self._order, packet]
        heapq.heappush(self._heap, entry)
        self._alive += 1
        return entry

    def _hold(self, packet: bytes, now: float, due: float, info) -> None:
        """Reordering: hold the packet back (delay mode) or let the next one overtake it
        (swap mode, released right after it, at the latest after reorder_delay)."""
        s = self.spec
        self.stats["reordered"] += 1
        late = due + s.reorder_delay
        entry = self._push(late, packet)
        if s.reorder_mode == "swap":
            self._held.append((entry, due))
        if late > now:
            self.stats["delayed"] += 1
        if self.tracer is not None and self.tracer.enabled:
            self._trace(now, "reorder", s.reorder_mode, packet, info,
                        delay=round(late - now, 9))

    def _release_held(self, due: float) -> None:
        """Swap mode: held packets whose hold has not expired by ``due`` go right after
        the packet just scheduled at ``due``."""
        for entry, natural in self._held:
            if entry[2] is not None and entry[0] >= due:
                pkt = entry[2]
                entry[2] = None
                self._alive -= 1
                self._push(max(natural, due), pkt)
        self._held.clear()

    def _trace(self, now: float, action: str, reason: str, packet: bytes, info,
               **extra) -> None:
        fields_: dict[str, Any] = {"dir": self.direction, "action": action, "reason": reason,
                                   "len": len(packet)}
        if info is None:
            info = peek_tcp(packet)
        if info is not None:
            fields_["seq"] = info.seq
            fields_["flags"] = _flag_string(info.flags)
            fields_["paylen"] = info.paylen
        fields_.update(extra)
        self.tracer.emit("impair", now, **fields_)


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------

SPEC_HELP = """\
SPEC is a comma-separated list of KEY=VALUE items, e.g.
'loss=2%,delay=20ms,jitter=5ms,drop=data:3'. Keys: loss=P (5% or 0.05);
burst=P_GOOD_TO_BAD/P_BAD_TO_GOOD (Gilbert-Elliott, e.g. 1%/30%);
drop=KIND:N (scripted drop of the Nth packet of KIND: data, syn, synack, ack,
fin, rst, tcp, pkt; e.g. data:3, synack:1, syn:1,2, data:5-7, data:3x2 for the
3rd data segment and its first retransmission; several with '+');
delay=T (20ms, 500us); jitter=T[/normal]; preserve_order; reorder=P[/delay/T];
dup=P; corrupt=P[/any]; rate=R (10mbit, 512kbit, 1gbit, 125kbyte);
queue=N packets or 64kb bytes (drop-tail, with rate). See docs/impairment.md."""


def parse_spec_arg(text: str) -> ImpairSpec:
    """argparse ``type=``: an ImpairSpec, or a clean ``argparse`` error."""
    try:
        return ImpairSpec.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _seed_arg(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed {text!r} is not an integer") from None


def add_impairment_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add ``--impair``, ``--impair-in``, ``--impair-out`` and ``--seed`` to ``parser``
    (``--seed`` is left alone when the parser already has one)."""
    group = parser.add_argument_group(
        "impairment (seeded, per direction; 'in' = link to stack, 'out' = stack to link)",
        SPEC_HELP)
    none = ImpairSpec()                 # shows as "none" where defaults are printed
    group.add_argument("--impair", metavar="SPEC", type=parse_spec_arg, default=none,
                       help="impair both directions, e.g. 'loss=2%%,delay=20ms'")
    group.add_argument("--impair-in", metavar="SPEC", type=parse_spec_arg, default=none,
                       help="impair packets arriving at the stack (added on top of --impair)")
    group.add_argument("--impair-out", metavar="SPEC", type=parse_spec_arg, default=none,
                       help="impair packets the stack sends (added on top of --impair)")
    if "--seed" not in parser._option_string_actions:
        # SUPPRESS: without --seed the namespace has no ``seed``, so nothing else that
        # reads args.seed (say, the stack's ISN secret) is pinned by our default; the
        # impairment itself then uses seed 0 and stays reproducible.
        group.add_argument("--seed", metavar="N", type=_seed_arg, default=argparse.SUPPRESS,
                           help="seed for the impairment random streams (0 when not given): "
                                "the same seed replays the same losses; each direction "
                                "derives its own sub-seed")
    return group


def impairments_from_args(args: argparse.Namespace, tracer=None) -> tuple[Impairment, Impairment]:
    """(inbound, outbound) Impairment from parsed arguments; per-direction sub-seeds."""
    both = getattr(args, "impair", None) or ImpairSpec()
    seed = getattr(args, "seed", None) or 0
    result = []
    for direction in ("in", "out"):
        extra = getattr(args, f"impair_{direction}", None)
        spec = both.overlay(extra) if extra is not None else both
        result.append(Impairment(spec, derive_seed(seed, direction), direction, tracer))
    return result[0], result[1]
