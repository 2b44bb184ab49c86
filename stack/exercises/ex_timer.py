"""Exercise 5: the retransmission timer with backoff and Karn's rule (RFC 6298 3 and 5). Lab 2.

Wired after the core merge: the timers become one object and RTT sampling moves wholly into
``stack/tcp/rtt.py``; this interface is what the connection will call.
"""
from __future__ import annotations

from collections import deque
from types import SimpleNamespace

from ..tcp.rtt import RttEstimator
from .framework import Check, Exercise

MASK = 0xFFFFFFFF


def _gt(a: int, b: int) -> bool:
    return a != b and (b - a) & MASK >= 0x80000000


def _le(a: int, b: int) -> bool:
    return not _gt(a, b)


class RetransmissionTimer:
    """RFC 6298 5 timer management plus the RTT sampling that feeds the estimator (reference).

    Sampling follows the stack (``Connection._take_rtt_sample``) and Linux: every segment sent
    once is timed; an ACK gives one sample, from the newest segment it covers; a retransmission
    from ``seq`` forgets the timing of every segment ending after ``seq`` (Karn).
    """

    def __init__(self, rtt: RttEstimator) -> None:
        self.rtt = rtt
        self.deadline: float | None = None
        self._sent: deque[tuple[int, float]] = deque()  # (end, time sent) of segments sent once, in order

    def on_send(self, seq: int, end: int, now: float, retransmission: bool = False) -> None:
        if self.deadline is None:
            self.deadline = now + self.rtt.current_rto()  # RFC 6298 5.1: start it if not running
        if retransmission:
            while self._sent and _gt(self._sent[-1][0], seq):
                self._sent.pop()  # RFC 6298 3 (Karn): an ACK of these may answer either copy
        else:
            self._sent.append((end, now))  # time every first transmission

    def on_ack(self, ack: int, now: float, all_acked: bool) -> None:
        sent_at = None
        while self._sent and _le(self._sent[0][0], ack):
            sent_at = self._sent.popleft()[1]
        if sent_at is not None:
            self.rtt.sample(now - sent_at)  # RFC 6298 2: one sample, from the newest segment covered
        if all_acked:
            self.deadline = None  # RFC 6298 5.2: all data acknowledged: stop the timer
        else:
            self.deadline = now + self.rtt.current_rto()  # RFC 6298 5.3: new data ACKed: restart

    def on_expire(self, now: float) -> None:
        self.rtt.on_timeout()  # RFC 6298 5.5: back off
        self.deadline = now + self.rtt.current_rto()  # RFC 6298 5.6: restart with the new RTO


def reference():
    return SimpleNamespace(RetransmissionTimer=RetransmissionTimer)


SKELETON = '''"""Exercise 5 -- the retransmission timer: when to start, restart, stop and back off; Karn's rule.

Read: RFC 6298 section 5 (5.1-5.6: managing the timer), section 3 (Karn's algorithm:
      never take an RTT sample from a retransmitted segment) and section 2 (what a sample is).
Lab:  docs/labs/02-loss-and-retransmission.md, section 5 (the RTO and its backoff).

``rtt`` is the stack's RttEstimator (exercise 4): rtt.sample(r), rtt.current_rto(),
rtt.on_timeout(). The caller retransmits; this object only decides when, and which RTTs count.

RTT samples, as the stack and Linux take them: time every segment sent for the first time;
an ACK gives ONE sample, from the newest segment it covers; a retransmission starting at
``seq`` makes the timing of every segment ending after ``seq`` useless (Karn).

Wired after the core merge: the graded scenarios run against your class now.

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


EXERCISE = Exercise(
    number=5, slug="timer", title="The retransmission timer, backoff and Karn's rule",
    lab="docs/labs/02-loss-and-retransmission.md",
    clauses=["RFC 6298 5.1-5.6", "RFC 6298 3 (Karn)", "RFC 6298 2"],
    filename="timer.py", names=["RetransmissionTimer"], skeleton=SKELETON, reference=reference, wired=False,
    wiring="after the core merge: the connection's timer object calls on_send/on_ack/on_expire and arms "
           "its RTO deadline from .deadline; then packet scenarios and the end-to-end run grade it inside the stack",
    checks=[
        Check("start_on_first_send", "unit", check_start_on_send.__doc__, check_start_on_send),
        Check("stop_and_restart", "unit", check_stop_and_restart.__doc__, check_stop_and_restart),
        Check("rtt_sample", "unit", check_rtt_sample.__doc__, check_rtt_sample),
        Check("sample_from_newest_segment", "unit", check_sample_from_newest.__doc__, check_sample_from_newest),
        Check("backoff_on_expiry", "unit", check_backoff_on_expiry.__doc__, check_backoff_on_expiry),
        Check("karn_no_sample_after_retransmission", "unit", check_karn.__doc__, check_karn),
    ],
)
