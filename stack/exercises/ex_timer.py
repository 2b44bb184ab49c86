"""Exercise 5: the retransmission timer with backoff and Karn's rule (RFC 6298 3 and 5). Lab 2.

Wired: every connection times its retransmissions through one object built from the name
``RetransmissionTimer`` in ``stack.tcp.connection`` (the seam ``stack.tcp.rtt:RetransmissionTimer``)
and arms its RTO from its ``deadline``. ``adapt`` gives the student's class (this module's
interface: ``on_send`` / ``on_ack`` / ``on_expire``, ``deadline``) what the connection needs
beyond it -- the handshake's RTT sample, and the timer moves that are not RFC 6298 5's (the persist
timer stops it, a tail loss probe or a fast retransmission restarts it) -- without changing the stack.
"""
from __future__ import annotations

from types import SimpleNamespace

from ..tcp.config import TcpConfig
from ..tcp import rtt as _R
from ..tcp.rtt import RetransmissionTimer as _CoreTimer
from ..tcp.rtt import RttEstimator, RttSampler
from .framework import Check, Exercise
from .scenarios import Peer, transfer

_REF_CLASS = _R.RetransmissionTimer  # the stack's own, captured before any installation


def reference():
    return SimpleNamespace(RetransmissionTimer=_REF_CLASS)


class _SampleTap:
    """The estimator as the student's timer sees it: every sample it gives is noted on the way."""

    def __init__(self, rtt) -> None:
        self.__dict__["_rtt"] = rtt
        self.__dict__["taken"] = None

    def sample(self, rtt: float) -> None:
        self.__dict__["taken"] = rtt
        self._rtt.sample(rtt)

    def __getattr__(self, name):
        return getattr(self._rtt, name)

    def __setattr__(self, name, value):
        setattr(self._rtt, name, value)


class CoreTimer:
    """The connection's interface (stack/tcp/rtt.py ``RetransmissionTimer``) over a class with the exercise's.

    on_send / on_ack / on_expire and ``deadline`` are the student's; the handshake is timed here with
    the stack's own sampler (the exercise's interface has no SYN), and ``start`` / ``restart`` / ``stop``
    set the student's ``deadline`` as the connection's other timers require.
    """

    student_class = _REF_CLASS

    def __init__(self, rtt) -> None:
        self.rtt = rtt
        self._tap = _SampleTap(rtt)
        self.t = self.student_class(self._tap)
        self.sampler = RttSampler(rtt)  # the handshake's send time (the core's on_syn_sent/on_syn_acked)

    @property
    def deadline(self):
        return self.t.deadline

    def on_send(self, seq: int, end: int, now: float, retransmission: bool = False) -> None:
        self.t.on_send(seq, end, now, retransmission)

    def on_ack(self, ack: int, now: float, all_acked: bool, tsecr=None, ts_now: int = 0):
        self._tap.__dict__["taken"] = None
        self.t.on_ack(ack, now, all_acked)
        return self._tap.taken

    def on_expire(self, now: float, snd_una=None, ts_now: int = 0) -> None:
        self.t.on_expire(now)

    def start(self, now: float):
        if self.t.deadline is None:
            self.t.deadline = now + self.rtt.current_rto()
        return self.t.deadline

    def restart(self, now: float):
        self.t.deadline = now + self.rtt.current_rto()
        return self.t.deadline

    def stop(self) -> None:
        self.t.deadline = None

    # the handshake's sample is the core's, over this adapter's sampler and start() (the class as
    # imported, before any seam swaps the name)
    on_syn_sent = _CoreTimer.on_syn_sent
    on_syn_acked = _CoreTimer.on_syn_acked
    syn_sent_at = _CoreTimer.syn_sent_at


def adapt(cls):
    """The student's class behind the connection's retransmission-timer interface."""
    return type(f"Student{cls.__name__}", (CoreTimer,), {"student_class": cls})


def replacements(part) -> dict:
    return {"timer.RetransmissionTimer": adapt(part.RetransmissionTimer)}


SKELETON = '''"""Exercise 5 -- the retransmission timer: when to start, restart, stop and back off; Karn's rule.

Read: RFC 6298 section 5 (5.1-5.6: managing the timer), section 3 (Karn's algorithm:
      never take an RTT sample from a retransmitted segment) and section 2 (what a sample is).
Lab:  docs/labs/02-loss-and-retransmission.md, section 5 (the RTO and its backoff).

``rtt`` is the stack's RttEstimator (exercise 4): rtt.sample(r), rtt.current_rto(),
rtt.on_timeout(). The caller retransmits; this object only decides when, and which RTTs count.

RTT samples, as the stack and Linux take them: time every segment sent for the first time;
an ACK gives ONE sample, from the newest segment it covers; a retransmission starting at
``seq`` makes the timing of every segment ending after ``seq`` useless (Karn).

Inside the stack every connection builds its timer from your class: it calls on_send for
every data segment (retransmission=True for a resend), on_ack for every ACK of new data and
on_expire when your deadline passes, and retransmits at your deadline.

Check your work:  tunstack exercise check 5 DIR
"""


class RetransmissionTimer:
    def __init__(self, rtt):
        self.rtt = rtt
        self.deadline = None   # when the timer expires (seconds), or None when it is not running
        # TODO: what you need to remember to take RTT samples

    def on_send(self, seq: int, end: int, now: float, retransmission: bool = False) -> None:
        """Segment [seq, end) was sent at ``now`` (``retransmission``: it was sent before)."""
        # TODO: RFC 6298 5.1; remember when a first transmission was sent (and see Karn).
        raise NotImplementedError("on_send")

    def on_ack(self, ack: int, now: float, all_acked: bool) -> None:
        """An ACK acknowledged new data up to ``ack``; ``all_acked``: nothing is outstanding now."""
        # TODO: one RTT sample from the newest timed segment the ACK covers; RFC 6298 5.2 / 5.3.
        raise NotImplementedError("on_ack")

    def on_expire(self, now: float) -> None:
        """The timer expired at ``now`` (the caller retransmits the earliest unacknowledged segment)."""
        # TODO: RFC 6298 5.5 and 5.6
        raise NotImplementedError("on_expire")
'''


def _new(part):
    return part.RetransmissionTimer(RttEstimator(1.0, 0.2, 120.0, 0.001))


def check_start_on_send(part, t, o):
    """RFC 6298 5.1: the first send starts the timer at now + RTO; later sends do not restart it."""
    tm = _new(part)
    t.note("tm = RetransmissionTimer(RttEstimator())   # RTO 1 s")
    tm.on_send(1000, 2000, 0.0)
    t.note("tm.on_send(1000, 2000, now=0.0)")
    t.expect("tm.deadline", tm.deadline, 1.0, close=1e-9)
    tm.on_send(2000, 3000, 0.4)
    t.note("tm.on_send(2000, 3000, now=0.4)")
    t.expect("tm.deadline (still running: not restarted)", tm.deadline, 1.0, close=1e-9)


def check_stop_and_restart(part, t, o):
    """RFC 6298 5.2 / 5.3: a partial ACK restarts the timer; the ACK of everything stops it."""
    tm = _new(part)
    tm.on_send(1000, 2000, 0.0)
    tm.on_send(2000, 3000, 0.0)
    t.note("tm.on_send(1000, 2000, 0.0); tm.on_send(2000, 3000, 0.0)")
    tm.on_ack(2000, 0.1, all_acked=False)
    t.note("tm.on_ack(2000, now=0.1, all_acked=False)   # sample 0.1 s: RTO = 0.1 + 4*0.05 = 0.3")
    t.expect("tm.deadline (restarted: 0.1 + 0.3)", tm.deadline, 0.4, close=1e-9)
    tm.on_ack(3000, 0.2, all_acked=True)
    t.note("tm.on_ack(3000, now=0.2, all_acked=True)")
    t.expect("tm.deadline (stopped)", tm.deadline, None)


def check_rtt_sample(part, t, o):
    """RFC 6298 2 / 3: the ACK covering the timed segment gives one sample (now - time sent)."""
    tm = _new(part)
    tm.on_send(1000, 2000, 5.0)
    t.note("tm.on_send(1000, 2000, now=5.0)")
    tm.on_ack(2000, 5.25, all_acked=True)
    t.note("tm.on_ack(2000, now=5.25, all_acked=True)")
    t.expect("tm.rtt.srtt", tm.rtt.srtt, 0.25, close=1e-9)


def check_sample_from_newest(part, t, o):
    """RFC 6298 2 / 3, as the stack and Linux sample: an ACK covering several segments gives one
    sample, timed from the newest of them."""
    tm = _new(part)
    for seq, at in ((1000, 0.0), (2000, 0.01), (3000, 0.02)):
        tm.on_send(seq, seq + 1000, at)
        t.note(f"tm.on_send({seq}, {seq + 1000}, now={at})")
    tm.on_ack(4000, 0.12, all_acked=True)
    t.note("tm.on_ack(4000, now=0.12, all_acked=True)")
    t.expect("tm.rtt.srtt (0.12 - 0.02: the newest segment covered)", tm.rtt.srtt, 0.1, close=1e-9)
    tm.on_send(4000, 5000, 1.0)
    tm.on_ack(5000, 1.3, all_acked=True)
    t.note("tm.on_send(4000, 5000, now=1.0); tm.on_ack(5000, now=1.3, all_acked=True)")
    t.expect("tm.rtt.latest_rtt (a second sample: 0.3)", tm.rtt.latest_rtt, 0.3, close=1e-9)


def check_backoff_on_expiry(part, t, o):
    """RFC 6298 5.5 / 5.6: on expiry the RTO doubles and the timer restarts with it."""
    tm = _new(part)
    tm.on_send(1000, 2000, 0.0)
    t.note("tm.on_send(1000, 2000, now=0.0)   # deadline 1.0")
    tm.on_expire(1.0)
    tm.on_send(1000, 2000, 1.0, retransmission=True)
    t.note("tm.on_expire(1.0); tm.on_send(1000, 2000, 1.0, retransmission=True)")
    t.expect("tm.deadline (1.0 + 2 s)", tm.deadline, 3.0, close=1e-9)
    tm.on_expire(3.0)
    tm.on_send(1000, 2000, 3.0, retransmission=True)
    t.note("tm.on_expire(3.0); tm.on_send(1000, 2000, 3.0, retransmission=True)")
    t.expect("tm.deadline (3.0 + 4 s)", tm.deadline, 7.0, close=1e-9)


def check_karn(part, t, o):
    """RFC 6298 3 (Karn): no RTT sample from a retransmitted segment; the backed-off RTO stays."""
    tm = _new(part)
    tm.on_send(1000, 2000, 0.0)
    tm.on_expire(1.0)
    tm.on_send(1000, 2000, 1.0, retransmission=True)
    t.note("tm.on_send(1000, 2000, 0.0); tm.on_expire(1.0); tm.on_send(1000, 2000, 1.0, retransmission=True)")
    tm.on_ack(2000, 1.05, all_acked=True)
    t.note("tm.on_ack(2000, now=1.05, all_acked=True)   # answers the first copy or the second?")
    t.expect("tm.rtt.srtt (no sample taken)", tm.rtt.srtt, None)
    tm.on_send(2000, 3000, 2.0)
    t.note("tm.on_send(2000, 3000, now=2.0)")
    t.expect("tm.deadline (the backed-off RTO, 2 s, still applies)", tm.deadline, 4.0, close=1e-9)
    tm.on_ack(3000, 2.1, all_acked=True)
    t.note("tm.on_ack(3000, now=2.1, all_acked=True)   # a fresh segment: a valid sample")
    t.expect("tm.rtt.srtt", tm.rtt.srtt, 0.1, close=1e-9)


IRS = 7000


def _connected(t):
    """The stack connects (no SACK, no timestamps); the SYN,ACK comes 300 ms later: SRTT 0.3,
    RTTVAR 0.15, RTO 0.3 + 4*0.15 = 0.9 s (the handshake's sample is the stack's own)."""
    p = Peer(t)
    conn = p.host.tcp.connect((p.host.address, 50000), (bytes([192, 0, 2, 1]), 80), 0.0)
    p.peer_port, p.port = 80, 50000
    p._collect()
    syn = p.take()
    if len(syn) != 1:
        t.fail(f"connect() sent {len(syn)} segments, not one SYN")
    iss = syn[0][1].seq
    p.send("SA", IRS, iss + 1, at=0.3)
    p.take()
    return p, conn, iss


def _write(t, p, conn, n: int, at: float, what: str) -> None:
    p.advance_to(at)
    t.note(f"t={at:.3f} the application writes {n} bytes ({what})")
    conn.send(b"x" * n, p.now)
    p.host.tcp.touch(conn, p.now)
    p._collect()


def _times(p, until: float) -> list:
    """(time, offset) of the data segments the stack sends up to ``until``."""
    p.advance_to(until)
    return [(round(at, 6), s.seq) for at, s, _ in p.take() if s.payload]


def _expect_sent(t, p, iss, until: float, what: str, want: list) -> None:
    got = [(at, (seq - iss - 1) % 2**32) for at, seq in _times(p, until)]
    t.expect(f"{what}: data segments sent as (time, offset)", got, want)


def check_backoff_through_stack(part, t, o):
    """RFC 6298 5.1 / 5.5 / 5.6 inside the stack: segment A, sent at t=0.3, starts the timer; B, sent at
    0.5, does not restart it: A is retransmitted at 0.3 + RTO = 1.2, then after 1.8 s (the RTO doubled)
    at 3.0, then after 3.6 s at 6.6."""
    from .seams import swapped
    with swapped({} if o["part_is_reference"] else replacements(part)):
        p, conn, iss = _connected(t)
        _write(t, p, conn, 536, 0.3, "segment A")
        _expect_sent(t, p, iss, 0.3, "at t=0.3", [(0.3, 0)])
        _write(t, p, conn, 536, 0.5, "segment B")
        _expect_sent(t, p, iss, 1.2 - 1e-6, "before t=1.2", [(0.5, 536)])
        _expect_sent(t, p, iss, 3.0 - 1e-6, "by t=3.0 (first timeout at 1.2)", [(1.2, 0)])
        _expect_sent(t, p, iss, 6.6 + 1e-6, "by t=6.6 (the RTO doubled each time)", [(3.0, 0), (6.6, 0)])


def check_start_restart_stop_through_stack(part, t, o):
    """RFC 6298 5.1-5.3 inside the stack: the timer started by segment A (t=0.3) is not restarted by
    segment B (t=0.5); the ACK of A (t=0.6, an RTT sample of 0.3 s: RTO 0.75) restarts it, so B goes
    again at 1.35 (and the RTO doubles to 1.5); the ACK of B at 1.4 stops it; segment C, written at
    2.0, starts it afresh: C goes again at 3.5."""
    from .seams import swapped
    with swapped({} if o["part_is_reference"] else replacements(part)):
        p, conn, iss = _connected(t)
        _write(t, p, conn, 536, 0.3, "segment A")
        _write(t, p, conn, 536, 0.5, "segment B")
        _expect_sent(t, p, iss, 0.6 - 1e-6, "A and B", [(0.3, 0), (0.5, 536)])
        p.send("A", IRS + 1, iss + 1 + 536, at=0.6, note="  (ACK of A)")
        _expect_sent(t, p, iss, 1.4 - 1e-6, "by t=1.4 (B's timeout: 0.6 + 0.75)", [(1.35, 536)])
        p.send("A", IRS + 1, iss + 1 + 1072, at=1.4, note="  (ACK of B: all acknowledged)")
        _write(t, p, conn, 536, 2.0, "segment C")
        _expect_sent(t, p, iss, 3.5 + 1e-6, "by t=3.5 (C's timeout: 2.0 + 1.5)", [(2.0, 1072), (3.5, 1072)])


def check_karn_through_stack(part, t, o):
    """RFC 6298 3 (Karn) and 5 (note after 5.7) inside the stack: the ACK of a retransmitted segment gives
    no RTT sample (it may answer either copy), so the backed-off RTO (1.8 s) times the next segment:
    written at 1.3, it goes again at 3.1 (a sample of 0.95 s would have made it 2.78)."""
    from .seams import swapped
    with swapped({} if o["part_is_reference"] else replacements(part)):
        p, conn, iss = _connected(t)
        _write(t, p, conn, 100, 0.3, "one segment")
        _expect_sent(t, p, iss, 1.25 - 1e-6, "by t=1.25", [(0.3, 0), (1.2, 0)])
        p.send("A", IRS + 1, iss + 1 + 100, at=1.25, note="  (ACK of the retransmitted segment)")
        _write(t, p, conn, 100, 1.3, "the next segment")
        _expect_sent(t, p, iss, 3.1 + 1e-6, "by t=3.1", [(1.3, 100), (3.1, 100)])


def check_transfer_under_loss(part, t, o):
    """End to end: a byte-exact transfer through 5 % loss each way with your timer deciding when the
    sender retransmits (and which RTT samples count)."""
    from .seams import swapped
    with swapped({} if o["part_is_reference"] else replacements(part)):
        transfer(t, o["e2e_bytes"])


def check_real_tun_curl(part, t, o):
    """End to end over a real TUN (root only): curl downloads from the stack with your timer in it,
    through 5 % loss each way; the kernel is the receiver."""
    from .tun_e2e import real_curl_check
    real_curl_check(EXERCISE, part, t, o)


EXERCISE = Exercise(
    number=5, slug="timer", title="The retransmission timer, backoff and Karn's rule",
    lab="docs/labs/02-loss-and-retransmission.md",
    clauses=["RFC 6298 5.1-5.6", "RFC 6298 3 (Karn)", "RFC 6298 2"],
    filename="timer.py", names=["RetransmissionTimer"], skeleton=SKELETON, reference=reference,
    replacements=replacements,
    wiring="installed for RetransmissionTimer in stack.tcp.rtt and stack.tcp.connection (behind an adapter): "
           "every connection opened while the part is installed times its retransmissions with your class",
    checks=[
        Check("start_on_first_send", "unit", check_start_on_send.__doc__, check_start_on_send),
        Check("stop_and_restart", "unit", check_stop_and_restart.__doc__, check_stop_and_restart),
        Check("rtt_sample", "unit", check_rtt_sample.__doc__, check_rtt_sample),
        Check("sample_from_newest_segment", "unit", check_sample_from_newest.__doc__, check_sample_from_newest),
        Check("backoff_on_expiry", "unit", check_backoff_on_expiry.__doc__, check_backoff_on_expiry),
        Check("karn_no_sample_after_retransmission", "unit", check_karn.__doc__, check_karn),
        Check("backoff_through_stack", "packet", check_backoff_through_stack.__doc__, check_backoff_through_stack),
        Check("start_restart_stop_through_stack", "packet", check_start_restart_stop_through_stack.__doc__,
              check_start_restart_stop_through_stack),
        Check("karn_through_stack", "packet", check_karn_through_stack.__doc__, check_karn_through_stack),
        Check("transfer_5pct_loss", "e2e", check_transfer_under_loss.__doc__, check_transfer_under_loss,
              weight=2, timeout=120.0),
        Check("real_tun_curl", "e2e", check_real_tun_curl.__doc__, check_real_tun_curl, weight=2,
              timeout=150.0),
    ],
)
