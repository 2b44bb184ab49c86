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

Every packet the link drops is traced as an ``impair`` event with ``action`` ``drop`` or
``queue_drop`` (the ladder and the plots merge them, as the pcap never sees those packets).

This module is the engine. The spec language (``ImpairSpec.parse("loss=5%,...")``) lives in
``stack/link/impair_spec.py``, the command-line glue (``--impair``, ``--impair-in``,
``--impair-out``, ``--seed``) in ``stack/link/impair_cli.py``, which imports this module (so
this one does not re-export it: that would be an import cycle).
"""
from __future__ import annotations

import hashlib
import heapq
import random
from typing import Any

from stack.units import parse_probability, parse_rate, parse_time  # noqa: F401 (re-exported)
from stack.wire.tcp import flag_string, peek_ipv4_tcp as peek_tcp

from .impair_spec import DEFAULT_QUEUE_PACKETS, DropRule, ImpairSpec, RuleCounter, parse_queue  # noqa: F401

__all__ = [
    "DropRule", "ImpairSpec", "Impairment", "derive_seed",
    "DEFAULT_QUEUE_PACKETS", "STAT_KEYS", "peek_tcp",
]

STAT_KEYS = ("offered", "delivered", "dropped_loss", "dropped_burst", "dropped_rule",
             "dropped_queue", "duplicated", "corrupted", "reordered", "delayed")

def _ip_header_len(packet: bytes) -> int:
    """IPv4 header length, or 0 when the packet is not IPv4 (where corruption may start)."""
    if len(packet) >= 20 and packet[0] >> 4 == 4:
        return min((packet[0] & 0x0F) * 4, len(packet))
    return 0


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
        self._rules = [RuleCounter(r) for r in s.drop]
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
            fields_["flags"] = flag_string(info.flags)
            fields_["paylen"] = info.paylen
            fields_["sport"], fields_["dport"] = info.flow[1], info.flow[2]  # the ladder places drops
        fields_.update(extra)
        self.tracer.emit("impair", now, **fields_)
