"""Exercise 6: Reno's congestion window (RFC 5681 3.1 and 3.2). Lab 2.

Textbook RFC 5681 (no byte counting of RFC 3465, no cwnd-limited test): the stack's own
``stack/tcp/congestion/reno.py`` adds both. Wired: ``adapt`` turns the student's class into a
congestion-control algorithm (the hooks of ``stack/tcp/congestion/base.py``), installed in the
registry as ``student`` while the part is installed; the checks run connections with
``TcpConfig(congestion="student")``, so loss recovery drives the student's window. The reference
graded through the stack is this module's textbook ``Reno`` behind the same adapter.
"""
from __future__ import annotations

from types import SimpleNamespace

from ..tcp.congestion import CongestionControl, rfc5681_initial_window
from ..tcp.config import TcpConfig
from .framework import Check, Exercise
from .scenarios import Peer, transfer


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


class StudentCongestion(CongestionControl):
    """Congestion-control hooks -> the exercise's Reno (``student_class``); cwnd and ssthresh are the student's.

    on_ack_sample(rs)            -> on_ack(rs.delivered, rs.in_flight)
    on_congestion_event          -> on_dupack(FlightSize), three times: loss recovery reports the
                                    third duplicate ACK (or SACK's loss) as one event, with the first two
    on_dupack_in_recovery        -> on_dupack(FlightSize)
    on_exit_recovery             -> on_ack(SMSS, FlightSize)  (Reno: the first new ACK ends recovery)
    on_rto                       -> on_rto(FlightSize)
    """

    name = "student"
    partial_ack_recovery = False  # RFC 5681 3.2 step 6: Reno leaves recovery on the first new ACK
    student_class = Reno

    def __init__(self, mss: int, now: float, initial_window: int | None = None) -> None:
        self.r = self.student_class(mss)
        self.mss = mss
        self.initial_window_segments = None   # the student's initial window (RFC 5681 3.1) stands
        self.initial_window = rfc5681_initial_window(mss)
        self.in_recovery = False
        self._flight = 0
        self._untouched = True

    cwnd = property(lambda self: self.r.cwnd, lambda self, v: setattr(self.r, "cwnd", v))
    ssthresh = property(lambda self: self.r.ssthresh, lambda self, v: setattr(self.r, "ssthresh", v))

    def on_packet_sent(self, now: float, seq: int, length: int, in_flight: int) -> None:
        self._flight = in_flight

    def on_ack_sample(self, rs) -> None:
        self._untouched = False
        self._flight = rs.in_flight
        self.r.on_ack(rs.delivered, rs.in_flight)

    def on_congestion_event(self, now: float, in_flight: int, *, sack: bool = False) -> None:
        self._untouched = False
        self.in_recovery = True
        for _ in range(3):
            if self.r.on_dupack(in_flight):
                break

    def on_dupack_in_recovery(self) -> None:
        self.r.on_dupack(self._flight)

    def on_partial_ack(self, acked: int) -> None:
        self.r.on_ack(acked, self._flight)

    def on_exit_recovery(self, now: float, in_flight: int) -> None:
        self.in_recovery = False
        self._flight = in_flight
        self.r.on_ack(self.mss, in_flight)

    def on_rto(self, now: float, in_flight: int, *, during_recovery: bool = False) -> None:
        self._untouched = False
        self.in_recovery = False
        self.r.on_rto(in_flight)

    def set_mss(self, mss: int) -> None:
        """The SMSS was negotiated: before any event the student's window starts again at the new SMSS."""
        if self._untouched:
            self.r = self.student_class(mss)
        else:
            self.r.mss = mss
        self.mss = mss
        self.initial_window = rfc5681_initial_window(mss)


def adapt(cls):
    """The student's Reno as a congestion-control algorithm named 'student'."""
    return type(f"Student{cls.__name__}", (StudentCongestion,), {"student_class": cls})


def replacements(part) -> dict:
    return {"reno.Reno": adapt(part.Reno)}


STUDENT = TcpConfig(congestion="student")


SKELETON = '''"""Exercise 6 -- Reno's congestion window: slow start, congestion avoidance, fast recovery.

Read: RFC 5681 section 3.1 (IW, slow start equation (2), congestion avoidance equation (3),
      ssthresh after a loss equation (4), the loss window after a timeout) and section 3.2
      (fast retransmit / fast recovery, steps 1-6). FlightSize is defined in section 2.
Lab:  docs/labs/02-loss-and-retransmission.md, section 4 (Reno, NewReno, SACK).

All sizes are bytes. In congestion avoidance use equation (3): cwnd += SMSS*SMSS/cwnd
(integer division, at least 1 byte) per ACK.

Inside the stack your class is the congestion algorithm "student": loss recovery counts the
duplicate ACKs and resends, your cwnd decides how much may be in flight.

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


ISS, IRS, SMSS = 1000, 9000, 536  # SMSS 536: the peer's SYN carries no MSS option; IW = 4 segments


def _sender(t, writes: int):
    """The stack accepts a connection running congestion control 'student' (no SACK, no timestamps);
    the application writes ``writes`` segments. Offsets in the steps count from ISS + 1."""
    p = Peer(t, iss=ISS, config=TcpConfig(window_scaling=False, timestamps=False, sack=False, congestion="student"))
    lst = p.listen()
    p.send("S", IRS)
    p.send("A", IRS + 1, ISS + 1)
    conn = lst.accept()
    p.take()
    if conn is None:
        t.fail("the handshake did not complete")
    _write(t, p, conn, writes)
    return p, conn


def _write(t, p, conn, segments: int) -> None:
    t.note(f"the application writes {segments} segments of {SMSS} bytes")
    conn.send(b"x" * (SMSS * segments), p.now)
    p.host.tcp.touch(conn, p.now)
    p._collect()


def _ack(p, segments: int, at: float, note: str = "") -> None:
    p.send("A", IRS + 1, ISS + 1 + SMSS * segments, at=at, note=note)


def _sent(t, p, conn, what: str, offsets: list) -> None:
    """The data segments sent since the last look, by offset; cwnd and ssthresh as notes."""
    got = [(s.seq - ISS - 1) % 2**32 // SMSS for _, s, _ in p.take() if s.payload]
    t.note(f"cwnd {conn.cc.cwnd}, ssthresh {conn.cc.ssthresh}")
    t.expect(f"{what}: segments sent (offsets in segments of {SMSS} bytes)", got, offsets)


def check_fast_recovery_through_stack(part, t, o):
    """RFC 5681 3.1-3.2 through the stack: slow start (one more segment per ACK), the third duplicate
    ACK (ssthresh = FlightSize/2: the sender is application-limited, so not cwnd/2; cwnd = ssthresh +
    3*SMSS), inflation by each further duplicate ACK, deflation to ssthresh by the new ACK. FlightSize
    is 6 segments when the loss is found: ssthresh 3 segments (1608), cwnd 6."""
    from .seams import swapped
    with swapped(replacements(part)):
        p, conn = _sender(t, 10)
        _sent(t, p, conn, "initial window (RFC 5681 3.1: 4 segments at SMSS 536)", [0, 1, 2, 3])
        for k, more in ((1, [4, 5]), (2, [6, 7]), (3, [8, 9]), (4, [])):
            _ack(p, k, 0.1, f"  (ACK of segment {k - 1})")
            _sent(t, p, conn, f"after the ACK of segment {k - 1}", more)
        for k in (1, 2, 3):
            _ack(p, 4, 0.2, f"  (duplicate ACK {k}: segment 4 lost)")
            _sent(t, p, conn, f"after duplicate ACK {k}", [4] if k == 3 else [])
        _write(t, p, conn, 10)
        _sent(t, p, conn, "new data while 6 segments are in flight (cwnd = 1608 + 3*536)", [])
        _ack(p, 4, 0.21, "  (duplicate ACK 4)")
        _sent(t, p, conn, "after duplicate ACK 4 (cwnd inflated by one SMSS)", [10])
        _ack(p, 10, 0.3, "  (the retransmission arrived: ACK of all ten)")
        _sent(t, p, conn, "after the new ACK (cwnd deflated to ssthresh, 3 segments; 1 in flight)", [11, 12])


def check_second_loss_through_stack(part, t, o):
    """RFC 5681 3.2 through the stack: each loss is a new count of duplicate ACKs (an ACK of new data
    ends the last one). First loss with 8 segments in flight (ssthresh 2144); after it, a second loss
    with 6 in flight: its third duplicate ACK sets ssthresh 1608 and cwnd 1608 + 3*536 = 3216, and the
    fourth inflates cwnd by one segment, which lets one new segment go."""
    from .seams import swapped
    with swapped(replacements(part)):
        p, conn = _sender(t, 12)
        _sent(t, p, conn, "initial window", [0, 1, 2, 3])
        for k in (1, 2, 3, 4):
            _ack(p, k, 0.1, f"  (ACK of segment {k - 1})")
            _sent(t, p, conn, f"after the ACK of segment {k - 1}", [2 * k + 2, 2 * k + 3])
        for k in (1, 2, 3):
            _ack(p, 4, 0.2, f"  (duplicate ACK {k}: segment 4 lost)")
            _sent(t, p, conn, f"after duplicate ACK {k}", [4] if k == 3 else [])
        _ack(p, 12, 0.3, "  (ACK of all twelve: the first loss is repaired)")
        _sent(t, p, conn, "after the new ACK (cwnd = ssthresh = 2144, nothing left to send)", [])
        _write(t, p, conn, 20)
        _sent(t, p, conn, "new data", [12, 13, 14, 15])
        for k in (13, 14):
            _ack(p, k, 0.4, f"  (ACK of segment {k - 1})")
            _sent(t, p, conn, f"after the ACK of segment {k - 1} (congestion avoidance)", [k + 3])
        for k in (1, 2, 3, 4):
            _ack(p, 14, 0.5, f"  (duplicate ACK {k} of the second loss: segment 14 lost)")
            want = {1: [18], 2: [19], 3: [14], 4: [20]}[k]  # RFC 3042 limited transmit on the first two
            _sent(t, p, conn, f"after duplicate ACK {k} of the second loss", want)


def check_rto_through_stack(part, t, o):
    """RFC 5681 3.1 through the stack: after a retransmission timeout cwnd is one segment (the loss
    window): the timeout resends one segment, and its ACK lets exactly two go (slow start again)."""
    from .seams import swapped
    with swapped(replacements(part)):
        p, conn = _sender(t, 20)
        _sent(t, p, conn, "initial window", [0, 1, 2, 3])
        p.advance_to(p.host.next_deadline())
        _sent(t, p, conn, "at the retransmission timeout", [0])
        _ack(p, 1, p.now + 0.05, "  (ACK of the retransmitted segment 0)")
        _sent(t, p, conn, "after its ACK (cwnd 2 segments; go back N: 1 and 2 again)", [1, 2])


def check_transfer_under_loss(part, t, o):
    """End to end: a byte-exact transfer through 5 % loss each way with your Reno as the sender's
    congestion control (loss recovery with SACK around it)."""
    from .seams import swapped
    with swapped(replacements(part)):
        transfer(t, o["e2e_bytes"], config=STUDENT)


def check_real_tun_curl(part, t, o):
    """End to end over a real TUN (root only): curl downloads from the stack running your Reno, through
    5 % loss each way; the kernel is the receiver."""
    from .tun_e2e import real_curl_check
    real_curl_check(EXERCISE, part, t, o)


EXERCISE = Exercise(
    number=6, slug="reno", title="Reno's congestion window", lab="docs/labs/02-loss-and-retransmission.md",
    clauses=["RFC 5681 2 (FlightSize)", "RFC 5681 3.1 (2)-(4)", "RFC 5681 3.2 steps 1-6"],
    filename="reno.py", names=["Reno"], skeleton=SKELETON, reference=reference,
    replacements=replacements, tcp_config={"congestion": "student"},
    wiring="registered as the congestion algorithm 'student' (stack.tcp.congestion.ALGORITHMS) behind an "
           "adapter from the congestion-control hooks; the checks' connections run it",
    checks=[
        Check("initial_window", "unit", check_initial_window.__doc__, check_initial_window),
        Check("slow_start", "unit", check_slow_start.__doc__, check_slow_start),
        Check("congestion_avoidance", "unit", check_congestion_avoidance.__doc__, check_congestion_avoidance),
        Check("third_dupack", "unit", check_third_dupack.__doc__, check_third_dupack),
        Check("recovery_inflate_deflate", "unit", check_recovery_inflate_deflate.__doc__,
              check_recovery_inflate_deflate),
        Check("rto_loss_window", "unit", check_rto.__doc__, check_rto),
        Check("fast_recovery_through_stack", "packet", check_fast_recovery_through_stack.__doc__,
              check_fast_recovery_through_stack),
        Check("second_loss_through_stack", "packet", check_second_loss_through_stack.__doc__,
              check_second_loss_through_stack),
        Check("rto_through_stack", "packet", check_rto_through_stack.__doc__, check_rto_through_stack),
        Check("transfer_5pct_loss", "e2e", check_transfer_under_loss.__doc__, check_transfer_under_loss,
              weight=2, timeout=120.0),
        Check("real_tun_curl", "e2e", check_real_tun_curl.__doc__, check_real_tun_curl, weight=2,
              timeout=150.0),
    ],
)
