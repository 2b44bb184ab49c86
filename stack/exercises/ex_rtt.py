"""Exercise 4: the RTT estimator and the RTO (RFC 6298 2 and 5.5). Lab 2. Wired: every connection
builds its ``RttEstimator`` from the class installed in ``stack.tcp.connection``."""
from __future__ import annotations

from types import SimpleNamespace

from ..tcp import rtt as _R
from .framework import Check, Exercise
from .scenarios import Peer, transfer

_REF_CLASS = _R.RttEstimator  # captured before any installation


def reference():
    return SimpleNamespace(RttEstimator=_REF_CLASS)


class _Glue:
    """What the connection needs beyond the exercise's interface, written on the student's attributes."""

    latest_rtt = None

    def reset_backoff(self) -> None:
        self.backoff = 0

    def reset_for_data_after_syn_timeout(self) -> None:
        if self.rto < _R.RFC6298_SYN_FALLBACK_RTO:  # RFC 6298 5.7
            self.rto = min(_R.RFC6298_SYN_FALLBACK_RTO, self.max_rto)
        self.backoff = 0

    def state_dict(self) -> dict:
        return {"srtt": self.srtt, "rttvar": self.rttvar, "rto": self.rto, "backoff": self.backoff,
                "current_rto": self.current_rto(), "latest_rtt": self.latest_rtt}


def adapt(cls):
    """The student's class with the glue methods it does not define itself."""
    return type(f"Student{cls.__name__}", (cls, _Glue), {})


def replacements(part) -> dict:
    return {"rtt.RttEstimator": adapt(part.RttEstimator)}


SKELETON = '''"""Exercise 4 -- estimating the round-trip time and the retransmission timeout (RTO).

Read: RFC 6298 section 2 (the formulas, in order: 2.1 before any sample, 2.2 the first
      sample, 2.3 later samples -- note which variable is updated first -- 2.4 the floor,
      2.5 the ceiling) and section 5.5 (back off: double the RTO after a timeout).
      RFC 6298 section 5, the note after 5.7 (a new sample cancels the backoff).
Lab:  docs/labs/02-loss-and-retransmission.md, section 5 (the RTO and its backoff).

Units are seconds (floats). The stack keeps the floor at min_rto (0.2 s like Linux, not the
RFC's 1 s; see the docstring of stack/tcp/rtt.py). Karn's rule (never sample a
retransmitted segment) is the caller's job, not this class's.

Check your work:  tunstack exercise check 4 DIR
"""

ALPHA = 1 / 8
BETA = 1 / 4
K = 4


class RttEstimator:
    def __init__(self, initial_rto=1.0, min_rto=0.2, max_rto=120.0, granularity=0.001):
        self.min_rto = min_rto          # the floor (RFC 6298 2.4)
        self.max_rto = max_rto          # the ceiling (RFC 6298 2.5)
        self.granularity = granularity  # G, the clock granularity (RFC 6298 2)
        self.srtt = None                # no sample yet
        self.rttvar = None
        self.rto = initial_rto          # RFC 6298 2.1
        self.backoff = 0                # timeouts since the last sample

    def sample(self, rtt: float) -> None:
        """One RTT measurement R (seconds): update srtt, rttvar and rto (RFC 6298 2.2-2.5)."""
        # TODO 1: first sample (2.2) or a later one (2.3)?
        # TODO 2: rto = srtt + max(G, K * rttvar), clamped to [min_rto, max_rto].
        # TODO 3: a valid sample ends any backoff.
        raise NotImplementedError("sample")

    def current_rto(self) -> float:
        """The timeout to arm now: the rto, doubled once per backoff, never above max_rto."""
        # TODO (RFC 6298 5.5)
        raise NotImplementedError("current_rto")

    def on_timeout(self) -> None:
        """The retransmission timer expired: back off (RFC 6298 5.5)."""
        # TODO
        raise NotImplementedError("on_timeout")
'''


def _new(part, **kw):
    return part.RttEstimator(**({"initial_rto": 1.0, "min_rto": 0.2, "max_rto": 120.0, "granularity": 0.001} | kw))


def check_initial_rto(part, t, o):
    """RFC 6298 2.1: before any sample, RTO = the initial value (1 s); srtt is unset."""
    e = _new(part)
    t.note("e = RttEstimator(initial_rto=1.0, min_rto=0.2, max_rto=120.0, granularity=0.001)")
    t.expect("e.current_rto()", e.current_rto(), 1.0, close=1e-9)
    t.expect("e.srtt", e.srtt, None)


def check_first_sample(part, t, o):
    """RFC 6298 2.2: SRTT <- R, RTTVAR <- R/2, RTO <- SRTT + max(G, K*RTTVAR)."""
    e = _new(part)
    e.sample(0.5)
    t.note("e.sample(0.5)")
    t.expect("e.srtt", e.srtt, 0.5, close=1e-9)
    t.expect("e.rttvar", e.rttvar, 0.25, close=1e-9)
    t.expect("e.current_rto()", e.current_rto(), 1.5, close=1e-9)


def check_second_sample_order(part, t, o):
    """RFC 6298 2.3: RTTVAR is updated first, with the OLD SRTT; then SRTT."""
    e = _new(part)
    e.sample(0.5)
    t.note("e.sample(0.5)   # srtt 0.5, rttvar 0.25")
    e.sample(1.3)
    t.note("e.sample(1.3)")
    t.expect("e.rttvar  (3/4*0.25 + 1/4*|0.5-1.3|)", e.rttvar, 0.3875, close=1e-9)
    t.expect("e.srtt    (7/8*0.5 + 1/8*1.3)", e.srtt, 0.6, close=1e-9)
    t.expect("e.current_rto()  (0.6 + 4*0.3875)", e.current_rto(), 2.15, close=1e-9)


def check_sequence_of_samples(part, t, o):
    """RFC 6298 2.3: ten samples in a row, compared with the reference after each."""
    e, ref = _new(part), _REF_CLASS(1.0, 0.2, 120.0, 0.001)
    for r in (0.10, 0.12, 0.30, 0.11, 0.09, 0.50, 0.10, 0.10, 0.10, 0.20):
        e.sample(r)
        ref.sample(r)
        t.note(f"e.sample({r})")
        t.expect("e.current_rto()", e.current_rto(), ref.current_rto(), close=1e-9)


def check_min_rto_floor(part, t, o):
    """RFC 6298 2.4: the RTO never falls below the floor (min_rto, here 0.2 s)."""
    e = _new(part)
    for _ in range(20):
        e.sample(0.001)
    t.note("e.sample(0.001) twenty times")
    t.expect("e.current_rto()", e.current_rto(), 0.2, close=1e-9)


def check_granularity(part, t, o):
    """RFC 6298 2.3: RTO = SRTT + max(G, K*RTTVAR): with RTTVAR ~ 0 the clock granularity G counts."""
    e = _new(part, min_rto=0.0, granularity=0.5)
    for _ in range(80):
        e.sample(1.0)
    t.note("e = RttEstimator(min_rto=0.0, granularity=0.5); e.sample(1.0) eighty times")
    t.expect("e.current_rto()  (SRTT 1.0 + G 0.5)", e.current_rto(), 1.5, close=1e-6)


def check_backoff_doubles(part, t, o):
    """RFC 6298 5.5: each timeout doubles the RTO."""
    e = _new(part)
    e.sample(0.5)
    t.note("e.sample(0.5)   # rto 1.5")
    for want in (3.0, 6.0, 12.0):
        e.on_timeout()
        t.note("e.on_timeout()")
        t.expect("e.current_rto()", e.current_rto(), want, close=1e-9)


def check_max_rto_ceiling(part, t, o):
    """RFC 6298 2.5 / 5.5: the backed-off RTO stops at max_rto (here 120 s)."""
    e = _new(part)
    for _ in range(10):
        e.on_timeout()
    t.note("e.on_timeout() ten times from RTO 1 s")
    t.expect("e.current_rto()", e.current_rto(), 120.0, close=1e-9)
    e2 = _new(part)
    e2.sample(100.0)
    t.note("e2.sample(100.0)")
    t.expect("e2.current_rto()", e2.current_rto(), 120.0, close=1e-9)


def check_sample_resets_backoff(part, t, o):
    """RFC 6298 5 (after 5.7) / Karn: a new valid sample ends the backoff."""
    e = _new(part)
    e.sample(0.5)
    e.on_timeout()
    e.on_timeout()
    t.note("e.sample(0.5); e.on_timeout(); e.on_timeout()   # 1.5 s doubled twice: 6 s")
    e.sample(0.5)
    t.note("e.sample(0.5)")
    t.expect("e.current_rto()  (3/4*0.25 + 0 -> rttvar 0.1875; 0.5 + 0.75)", e.current_rto(), 1.25, close=1e-9)


def check_rto_through_stack(part, t, o):
    """RFC 6298 2.2 / 5.1 / 5.5 inside the stack: data sent after a 300 ms handshake RTT is
    retransmitted at exactly RTO = 0.3 + 4*0.15 = 0.9 s, then again 1.8 s later."""
    from .seams import swapped
    with swapped({} if o["part_is_reference"] else replacements(part)):
        p = Peer(t)
        conn = p.host.tcp.connect((p.host.address, 50000), (bytes([192, 0, 2, 1]), 80), 0.0)
        p.peer_port, p.port = 80, 50000
        p._collect()
        syn = p.take()
        t.expect("segments sent by connect()", len(syn), 1)
        iss = syn[0][1].seq
        p.send("SA", 7000, iss + 1, at=0.3)       # RTT sample 0.3 s
        p.take()
        conn.send(b"x" * 100, p.now)
        p.host.tcp.touch(conn, p.now)
        p._collect()
        t.expect("data segments sent at t=0.3", len(p.take()), 1)
        p.advance_to(1.2 - 1e-6)
        t.expect("segments before t=1.2 (RTO 0.9 s after 0.3)", len(p.take()), 0)
        p.advance_to(1.2 + 1e-6)
        out = p.take()
        t.expect("retransmissions at t=1.2", len(out), 1)
        t.expect("time of the retransmission", out[0][0], 1.2, close=1e-6)
        p.advance_to(3.0 + 1e-6)
        out = p.take()
        t.expect("second retransmission at t=3.0 (backed off: 1.8 s)", [round(x[0], 6) for x in out], [3.0])


def check_transfer_under_loss(part, t, o):
    """End to end: a byte-exact transfer through 5 % loss each way with your estimator's RTO."""
    from .seams import swapped
    with swapped({} if o["part_is_reference"] else replacements(part)):
        transfer(t, o["e2e_bytes"])


def check_real_tun_curl(part, t, o):
    """End to end over a real TUN (root only): curl downloads from the stack with your part in it, through
    5 % loss each way; the kernel is the peer and drops what it finds wrong."""
    from .tun_e2e import real_curl_check
    real_curl_check(EXERCISE, part, t, o)


EXERCISE = Exercise(
    number=4, slug="rtt", title="RTT estimator and RTO", lab="docs/labs/02-loss-and-retransmission.md",
    clauses=["RFC 6298 2.1-2.5", "RFC 6298 5.5", "RFC 6298 5 (note after 5.7)"],
    filename="rtt.py", names=["RttEstimator"], skeleton=SKELETON, reference=reference,
    replacements=replacements,
    wiring="installed for RttEstimator in stack.tcp.rtt and stack.tcp.connection: every connection "
           "opened while the part is installed builds its estimator from your class",
    checks=[
        Check("initial_rto", "unit", check_initial_rto.__doc__, check_initial_rto),
        Check("first_sample", "unit", check_first_sample.__doc__, check_first_sample),
        Check("rttvar_before_srtt", "unit", check_second_sample_order.__doc__, check_second_sample_order),
        Check("sequence_of_samples", "unit", check_sequence_of_samples.__doc__, check_sequence_of_samples),
        Check("min_rto_floor", "unit", check_min_rto_floor.__doc__, check_min_rto_floor),
        Check("clock_granularity", "unit", check_granularity.__doc__, check_granularity),
        Check("backoff_doubles", "unit", check_backoff_doubles.__doc__, check_backoff_doubles),
        Check("max_rto_ceiling", "unit", check_max_rto_ceiling.__doc__, check_max_rto_ceiling),
        Check("sample_resets_backoff", "unit", check_sample_resets_backoff.__doc__, check_sample_resets_backoff),
        Check("rto_through_stack", "packet", check_rto_through_stack.__doc__, check_rto_through_stack),
        Check("transfer_5pct_loss", "e2e", check_transfer_under_loss.__doc__, check_transfer_under_loss,
              weight=2, timeout=120.0),
        Check("real_tun_curl", "e2e", check_real_tun_curl.__doc__, check_real_tun_curl, weight=2,
              timeout=150.0),
    ],
)
