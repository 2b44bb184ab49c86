"""Exercise 6: Reno's congestion window (RFC 5681 3.1 and 3.2). Lab 2.

Textbook RFC 5681 (no byte counting of RFC 3465, no cwnd-limited test): the stack's own
``stack/tcp/congestion/reno.py`` adds both. Wired after the core merge, when congestion control
gets per-packet hooks; the graded scenarios run against the student's class now.
"""
from __future__ import annotations

from types import SimpleNamespace

from .framework import Check, Exercise


def initial_window(mss: int) -> int:
    """RFC 5681 3.1: IW by SMSS (2, 3 or 4 segments)."""
    if mss > 2190:
        return 2 * mss
    if mss > 1095:
        return 3 * mss
    return 4 * mss


class Reno:
    """cwnd and ssthresh in bytes (reference)."""

    def __init__(self, mss: int) -> None:
        self.mss = mss
        self.cwnd = initial_window(mss)  # RFC 5681 3.1: IW
        self.ssthresh = 2**31 - 1  # RFC 5681 3.1: "arbitrarily high"
        self.dupacks = 0
        self.in_recovery = False

    def on_ack(self, acked: int, flight_size: int) -> None:
        """An ACK of ``acked`` new bytes; ``flight_size`` is what is still outstanding after it."""
        self.dupacks = 0
        if self.in_recovery:
            self.cwnd = self.ssthresh  # RFC 5681 3.2 step 6: deflate the window
            self.in_recovery = False
            return
        if self.cwnd < self.ssthresh:
            self.cwnd += min(acked, self.mss)  # RFC 5681 3.1 (2): slow start
        else:
            self.cwnd += max(1, self.mss * self.mss // self.cwnd)  # RFC 5681 3.1 (3): congestion avoidance

    def on_dupack(self, flight_size: int) -> bool:
        """A duplicate ACK. Return True when the caller must fast-retransmit now (the third)."""
        if self.in_recovery:
            self.cwnd += self.mss  # RFC 5681 3.2 step 4: inflate by one segment per dupack
            return False
        self.dupacks += 1
        if self.dupacks < 3:
            return False
        self.ssthresh = max(flight_size // 2, 2 * self.mss)  # RFC 5681 3.2 step 2, equation (4)
        self.cwnd = self.ssthresh + 3 * self.mss  # RFC 5681 3.2 step 3
        self.in_recovery = True
        return True

    def on_rto(self, flight_size: int) -> None:
        """The retransmission timer expired."""
        self.ssthresh = max(flight_size // 2, 2 * self.mss)  # RFC 5681 3.1 equation (4)
        self.cwnd = self.mss  # RFC 5681 3.1: LW = 1 SMSS
        self.dupacks = 0
        self.in_recovery = False


def reference():
    return SimpleNamespace(Reno=Reno)


SKELETON = '''"""Exercise 6 -- Reno's congestion window: slow start, congestion avoidance, fast recovery.

Read: RFC 5681 section 3.1 (IW, slow start equation (2), congestion avoidance equation (3),
      ssthresh after a loss equation (4), the loss window after a timeout) and section 3.2
      (fast retransmit / fast recovery, steps 1-6). FlightSize is defined in section 2.
Lab:  docs/labs/02-loss-and-retransmission.md, section 4 (Reno, NewReno, SACK).

All sizes are bytes. In congestion avoidance use equation (3): cwnd += SMSS*SMSS/cwnd
(integer division, at least 1 byte) per ACK.

Wired after the core merge: the graded scenarios run against your class now.

Check your work:  tunstack exercise check 6 DIR
"""


class Reno:
    def __init__(self, mss: int):
        self.mss = mss
        self.cwnd = 0          # TODO: the initial window, RFC 5681 3.1
        self.ssthresh = 2**31 - 1
        self.dupacks = 0
        self.in_recovery = False

    def on_ack(self, acked: int, flight_size: int) -> None:
        """An ACK of ``acked`` new bytes (flight_size: bytes still outstanding after it)."""
        # TODO: leaving fast recovery (3.2 step 6)? slow start or congestion avoidance (3.1)?
        raise NotImplementedError("on_ack")

    def on_dupack(self, flight_size: int) -> bool:
        """A duplicate ACK; return True on the one that triggers fast retransmit."""
        # TODO: RFC 5681 3.2 steps 1-4
        raise NotImplementedError("on_dupack")

    def on_rto(self, flight_size: int) -> None:
        """The retransmission timer expired."""
        # TODO: RFC 5681 3.1 equation (4) and the loss window
        raise NotImplementedError("on_rto")
'''

MSS = 1000


def _new(part, t):
    r = part.Reno(MSS)
    t.note(f"r = Reno(mss={MSS})")
    return r


def check_initial_window(part, t, o):
    """RFC 5681 3.1: IW = 4 segments for SMSS <= 1095, 3 for <= 2190, else 2."""
    for mss, want in ((1000, 4000), (1460, 4380), (4000, 8000)):
        t.expect(f"Reno(mss={mss}).cwnd", part.Reno(mss).cwnd, want)


def check_slow_start(part, t, o):
    """RFC 5681 3.1 equation (2): cwnd += min(N, SMSS) per ACK while cwnd < ssthresh."""
    r = _new(part, t)
    r.on_ack(1000, 3000)
    t.expect("r.on_ack(1000, 3000); r.cwnd", r.cwnd, 5000)
    r.on_ack(3000, 2000)
    t.expect("r.on_ack(3000, 2000)   # a stretch ACK still adds one SMSS; r.cwnd", r.cwnd, 6000)


def check_congestion_avoidance(part, t, o):
    """RFC 5681 3.1 equation (3): at cwnd >= ssthresh, cwnd += SMSS*SMSS/cwnd per ACK (about 1 SMSS per RTT)."""
    r = _new(part, t)
    r.ssthresh = 4000
    t.note("r.ssthresh = 4000   # cwnd 4000: congestion avoidance")
    for want in (4250, 4485, 4707, 4919):
        r.on_ack(1000, 3000)
        t.expect("r.on_ack(1000, 3000); r.cwnd", r.cwnd, want)


def check_third_dupack(part, t, o):
    """RFC 5681 3.2 steps 2-3: the third dupack: ssthresh = max(FlightSize/2, 2*SMSS), cwnd = ssthresh + 3*SMSS."""
    r = _new(part, t)
    r.cwnd = 20000
    t.note("r.cwnd = 20000")
    t.expect("r.on_dupack(flight_size=12000)", r.on_dupack(12000), False)
    t.expect("r.on_dupack(flight_size=12000)", r.on_dupack(12000), False)
    t.expect("r.on_dupack(flight_size=12000)   # the third", r.on_dupack(12000), True)
    t.expect("r.ssthresh (FlightSize/2, not cwnd/2)", r.ssthresh, 6000)
    t.expect("r.cwnd", r.cwnd, 9000)


def check_recovery_inflate_deflate(part, t, o):
    """RFC 5681 3.2 steps 4 and 6: each further dupack inflates cwnd by SMSS; the new ACK deflates it to ssthresh."""
    r = _new(part, t)
    r.cwnd = 20000
    t.note("r.cwnd = 20000; three r.on_dupack(12000)   # ssthresh 6000, cwnd 9000")
    for _ in range(3):
        r.on_dupack(12000)
    t.expect("r.on_dupack(12000)   # a fourth", r.on_dupack(12000), False)
    t.expect("r.cwnd", r.cwnd, 10000)
    r.on_ack(12000, 0)
    t.expect("r.on_ack(12000, 0); r.cwnd (deflated)", r.cwnd, 6000)
    r.on_ack(1000, 0)
    t.expect("r.on_ack(1000, 0); r.cwnd (congestion avoidance: +1000*1000//6000)", r.cwnd, 6166)


def check_rto(part, t, o):
    """RFC 5681 3.1: after a timeout, ssthresh = max(FlightSize/2, 2*SMSS) and cwnd = 1 SMSS (LW)."""
    r = _new(part, t)
    r.cwnd = 30000
    t.note("r.cwnd = 30000")
    r.on_rto(3000)
    t.expect("r.on_rto(flight_size=3000); r.ssthresh (floor 2*SMSS)", r.ssthresh, 2000)
    t.expect("r.cwnd", r.cwnd, 1000)
    r.on_ack(1000, 0)
    t.expect("r.on_ack(1000, 0); r.cwnd (slow start again)", r.cwnd, 2000)


EXERCISE = Exercise(
    number=6, slug="reno", title="Reno's congestion window", lab="docs/labs/02-loss-and-retransmission.md",
    clauses=["RFC 5681 2 (FlightSize)", "RFC 5681 3.1 (2)-(4)", "RFC 5681 3.2 steps 1-6"],
    filename="reno.py", names=["Reno"], skeleton=SKELETON, reference=reference, wired=False,
    wiring="after the core merge: an adapter from the congestion-control hooks (ack, dupack, RTO) to "
           "on_ack/on_dupack/on_rto registered as a congestion algorithm ('--congestion student'); then "
           "the end-to-end run grades it inside the stack",
    checks=[
        Check("initial_window", "unit", check_initial_window.__doc__, check_initial_window),
        Check("slow_start", "unit", check_slow_start.__doc__, check_slow_start),
        Check("congestion_avoidance", "unit", check_congestion_avoidance.__doc__, check_congestion_avoidance),
        Check("third_dupack", "unit", check_third_dupack.__doc__, check_third_dupack),
        Check("recovery_inflate_deflate", "unit", check_recovery_inflate_deflate.__doc__,
              check_recovery_inflate_deflate),
        Check("rto_loss_window", "unit", check_rto.__doc__, check_rto),
    ],
)
