"""The impairment spec language: ``ImpairSpec.parse("loss=5%,delay=20ms,drop=data:3")``.

Text in, frozen parameters out (and back: ``ImpairSpec.parse(s.to_string()) == s``). The
engine that applies a spec lives in ``stack/link/impair.py``, the argparse glue in
``stack/link/impair_cli.py``; units come from ``stack/units.py``. See docs/impairment.md.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from stack.units import (SIZE_UNITS, format_probability, format_rate, format_time,
                         parse_probability, parse_rate, parse_time, split_number)
from stack.wire.tcp import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG, TcpPeek

__all__ = ["DropRule", "ImpairSpec", "DEFAULT_QUEUE_PACKETS", "DEFAULT_REORDER_DELAY",
           "parse_queue", "parse_probability", "parse_rate", "parse_time"]

#: Queue limit (packets, counting the one being serialized) when ``rate`` is set and
#: ``queue`` is not.
DEFAULT_QUEUE_PACKETS = 100
#: Default hold for reordering (swap mode: longest wait for a packet to overtake).
DEFAULT_REORDER_DELAY = 0.010

# Letters accepted in a rule's /FLAGS filter (tcpdump's plus A for ACK and C for CWR).
_FLAG_LETTERS = {"S": SYN, "F": FIN, "R": RST, "P": PSH, "A": ACK, ".": ACK, "U": URG,
                 "E": ECE, "W": CWR, "C": CWR}
_PKT_UNITS = {"", "p", "pkt", "pkts", "packet", "packets"}

# ---------------------------------------------------------------------------------------
# Scripted drop rules
# ---------------------------------------------------------------------------------------

_KINDS = {
    # kind: (needs TCP, predicate on TcpPeek)
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


class RuleCounter:
    """Counter and pending repeats of one rule inside one Impairment."""

    __slots__ = ("rule", "label", "needs_tcp", "pred", "count", "repeats")

    def __init__(self, rule: DropRule):
        self.rule = rule
        self.label = str(rule)
        self.needs_tcp, self.pred = _KINDS[rule.kind]
        self.count = 0
        self.repeats: dict[Any, int] = {}

    def decide(self, packet: bytes, info: TcpPeek | None) -> bool:
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


def parse_queue(text: str) -> tuple[int | None, int | None]:
    """Queue limit: ``50`` / ``50p`` packets, or ``64kb`` / ``30000bytes`` bytes.
    Returns (packets, bytes), one of them None."""
    try:
        value, unit = split_number(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a queue size (write 50 for packets or 64kb "
                         f"for bytes)") from None
    u = unit.lower()
    if u in _PKT_UNITS:
        if value != int(value) or value < 1:
            raise ValueError(f"{text!r}: a queue holds at least 1 whole packet")
        return int(value), None
    scale = SIZE_UNITS.get(u)
    if scale is None:
        raise ValueError(f"{text!r}: unknown queue unit {unit!r} (packets: none or p; "
                         f"bytes: b, kb, mb, kib, mib)")
    n = int(value * scale)
    if n < 1:
        raise ValueError(f"{text!r}: queue must hold at least 1 byte")
    return None, n


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
        _fmtx_pct = lambda v: format_probability(v, True)  # noqa: E731
        _fmtx_time = lambda v: format_time(v, True)  # noqa: E731
        _fmtx_rate = lambda v: format_rate(v, True)  # noqa: E731
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
            parts.append(f"loss {format_probability(self.loss)}")
        if self.burst:
            mean = 1 / self.p_bad_to_good
            states = ("" if (self.loss_bad, self.loss_good) == (1.0, 0.0) else
                      f", loss {format_probability(self.loss_bad)} bad/{format_probability(self.loss_good)} good")
            parts.append(f"burst loss (Gilbert-Elliott {format_probability(self.p_good_to_bad)} good->bad, "
                         f"{format_probability(self.p_bad_to_good)} bad->good, mean burst {mean:.3g} pkts"
                         f"{states})")
        if self.drop:
            parts.append("drop " + " ".join(str(r) for r in self.drop))
        if self.delay or self.jitter:
            d = f"delay {format_time(self.delay)}" if self.delay else "jitter"
            if self.jitter:
                sym = "±" if self.jitter_dist == "uniform" else "σ"
                d += f" {sym}{format_time(self.jitter)}"
                if self.preserve_order:
                    d += " in order"
            parts.append(d)
        if self.reorder:
            how = (f"overtaken by next, hold ≤{format_time(self.reorder_delay)}"
                   if self.reorder_mode == "swap" else f"+{format_time(self.reorder_delay)}")
            parts.append(f"reorder {format_probability(self.reorder)} ({how})")
        if self.dup:
            parts.append(f"dup {format_probability(self.dup)}")
        if self.corrupt:
            parts.append(f"corrupt {format_probability(self.corrupt)}"
                         + (" (anywhere)" if self.corrupt_anywhere else ""))
        if self.rate:
            qp, qb = self.queue_limit
            q = f"{qp} pkts" if qb is None else f"{qb} bytes"
            parts.append(f"rate {format_rate(self.rate)} (queue {q})")
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
