"""Seams: the parts of the stack a student may replace, and how a replacement is swapped in.

A seam names one object of the stack (a function or a class) by its home module and
attribute, e.g. ``stack.tcp.seq:seq_lt``. The stack's own object is the reference.

**Zero cost when nothing is installed.** The stack never looks a seam up: there is no
registry call, no wrapper, no flag on the hot path; ``stack.*`` does not even import this
package. Installing a part *rebinds* the reference object wherever the loaded stack
holds it -- module globals (``from .seq import seq_lt`` made a binding in
``stack.tcp.connection``) and class attributes -- and uninstalling puts every binding
back. ``tests/exercises/test_seams.py`` checks that, with nothing installed, every
binding is the reference object itself (what ``scripts/bench`` then measures is the
untouched stack).

What rebinding cannot reach: references captured before installation inside other
objects (default arguments, closures, dicts, instances already built). A seam whose
reference is held that way is not a seam; ``bindings()`` lets a test see where each
reference is held, so such a capture shows up as a missing binding site.

A *registry* seam (``key`` set) adds an entry instead: installing it puts the part into the
dict ``home:attr`` under ``key`` (Reno as the congestion algorithm ``student`` in
``stack.tcp.congestion.ALGORITHMS``), uninstalling removes it again; with nothing installed the
registry holds only the stack's own algorithms.
"""
from __future__ import annotations

import importlib
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field

# Modules whose import makes every binding site of the seams below exist in sys.modules.
STACK_MODULES = (
    "stack.wire.checksum", "stack.wire.tcp", "stack.wire.ipv4", "stack.wire.icmp", "stack.wire.udp",
    "stack.tcp.seq", "stack.tcp.rtt", "stack.tcp.connection", "stack.tcp.input", "stack.tcp.output",
    "stack.tcp.reassembly", "stack.tcp.timers", "stack.tcp.window", "stack.tcp.layer", "stack.tcp.recovery",
    "stack.ip.layer", "stack.netstack", "stack.sim", "stack.epoll",
)


@dataclass(frozen=True)
class Seam:
    """One replaceable object: ``home:attr``; ``wired`` is False while the core does not call it yet.
    ``key``: a registry seam -- ``home:attr`` is a dict and the part is added under ``key``."""
    name: str
    home: str
    attr: str
    interface: str
    wired: bool = True
    key: str | None = None

    @property
    def reference(self):
        return _REFERENCES[self.name]


@dataclass
class Installation:
    """The bindings one ``install`` changed, so that ``uninstall`` can put them back exactly."""
    changed: list = field(default_factory=list)  # (namespace, key, old, new)
    entries: list = field(default_factory=list)  # (registry dict, key, old or _MISSING)
    active: bool = True

    def uninstall(self) -> None:
        if not self.active:
            return
        for namespace, key, old, _new in reversed(self.changed):
            setattr(namespace, key, old)
        for registry, key, old in reversed(self.entries):
            if old is _MISSING:
                registry.pop(key, None)
            else:
                registry[key] = old
        self.active = False


_MISSING = object()


SEAMS: dict[str, Seam] = {}
_REFERENCES: dict[str, object] = {}


def register(seam: Seam) -> Seam:
    """Add a seam; its home is imported now and its current object is recorded as the reference
    (a registry seam has none: the part is added beside the stack's own entries, replacing nothing)."""
    obj = getattr(importlib.import_module(seam.home), seam.attr)
    if seam.key is not None:
        obj = None
    SEAMS[seam.name] = seam
    _REFERENCES.setdefault(seam.name, obj)
    return seam


def preload() -> None:
    """Import the stack modules that hold seam bindings, so that installation reaches them all."""
    for name in STACK_MODULES:
        importlib.import_module(name)


def _stack_modules():
    for name, mod in list(sys.modules.items()):
        if mod is None or not (name == "stack" or name.startswith("stack.")):
            continue
        if name.startswith("stack.exercises"):
            continue  # the exercises' own references stay references
        yield name, mod


def bindings(obj) -> list[str]:
    """Every place in the loaded stack that holds ``obj``: ``module:name`` or ``module:Class.name``."""
    found = []
    for name, mod in _stack_modules():
        for key, value in list(vars(mod).items()):
            if value is obj:
                found.append(f"{name}:{key}")
            elif isinstance(value, type) and value.__module__ == name:
                for ckey, cvalue in list(vars(value).items()):
                    if cvalue is obj or (isinstance(cvalue, staticmethod) and cvalue.__func__ is obj):
                        found.append(f"{name}:{key}.{ckey}")
    return found


def install(replacements: dict) -> Installation:
    """Rebind each seam's reference object to its replacement everywhere the stack holds it.

    ``replacements`` maps a seam (or its name) to the object to put in its place.
    """
    preload()
    inst = Installation()
    targets = {}
    for seam, new in replacements.items():
        seam = SEAMS[seam] if isinstance(seam, str) else seam
        if seam.key is not None:
            registry = getattr(importlib.import_module(seam.home), seam.attr)
            inst.entries.append((registry, seam.key, registry.get(seam.key, _MISSING)))
            registry[seam.key] = new
            continue
        targets[id(seam.reference)] = (seam.reference, new)
    try:
        for name, mod in _stack_modules():
            for key, value in list(vars(mod).items()):
                hit = targets.get(id(value))
                if hit is not None and hit[0] is value:
                    inst.changed.append((mod, key, value, hit[1]))
                    setattr(mod, key, hit[1])
                elif isinstance(value, type) and value.__module__ == name:
                    _install_in_class(value, targets, inst)
    except BaseException:
        inst.uninstall()
        raise
    return inst


def _install_in_class(cls, targets, inst: Installation) -> None:
    for key, value in list(vars(cls).items()):
        ref = value.__func__ if isinstance(value, staticmethod) else value
        hit = targets.get(id(ref))
        if hit is not None and hit[0] is ref:
            new = staticmethod(hit[1]) if isinstance(value, staticmethod) else hit[1]
            inst.changed.append((cls, key, value, new))
            setattr(cls, key, new)


@contextmanager
def swapped(replacements: dict):
    """``with swapped({"seq.seq_lt": mine}): ...`` -- installed inside, the reference outside."""
    inst = install(replacements)
    try:
        yield inst
    finally:
        inst.uninstall()


def _register_all() -> None:
    register(Seam("checksum.ones_sum", "stack.wire.checksum", "ones_sum",
                  "ones_sum(data) -> int: ones'-complement sum of 16-bit words, as a residue mod 0xffff "
                  "(the student writes checksum(data) -> int; the exercise adapts it)"))
    for attr in ("seq_lt", "seq_le", "seq_gt", "seq_ge"):
        register(Seam(f"seq.{attr}", "stack.tcp.seq", attr, f"{attr}(a, b) -> bool, modulo 2**32"))
    register(Seam("rtt.RttEstimator", "stack.tcp.rtt", "RttEstimator",
                  "class with sample(rtt), current_rto(), on_timeout(), attributes srtt, rttvar, rto, backoff"))
    register(Seam("acceptability.acceptable", "stack.tcp.seq", "acceptable",
                  "acceptable(seg_seq, seg_len, rcv_nxt, rcv_wnd) -> bool"))
    register(Seam("window.usable_window", "stack.tcp.window", "usable_window",
                  "usable_window(snd_una, snd_nxt, snd_wnd, cwnd) -> int"))
    register(Seam("epoll.ep_poll_callback", "stack.epoll", "ep_poll_callback",
                  "ep_poll_callback(item, key, ready, rdllist) -> bool"))
    register(Seam("reassembly.Reassembler", "stack.tcp.reassembly", "Reassembler",
                  "class(max_blocks) with store, pop_ready, insert, sack_blocks(limit), clear, queue, pruned, "
                  "len, blocks (the student writes insert(seq, data, fin) -> bytes, sack_blocks(), rcv_nxt; "
                  "the exercise adapts it)"))
    register(Seam("reno.Reno", "stack.tcp.congestion", "ALGORITHMS",
                  "a CongestionControl class registered as 'student' (the student writes Reno(mss): on_ack, "
                  "on_dupack, on_rto; cwnd, ssthresh; the exercise adapts it)", key="student"))
    register(Seam("timer.RetransmissionTimer", "stack.tcp.rtt", "RetransmissionTimer",
                  "class(rtt) with on_send, on_ack, on_expire, deadline (the exercise's interface), and start, "
                  "restart, stop, on_syn_sent, on_syn_acked, syn_sent_at (the exercise adapts a student's class)"))


_register_all()
