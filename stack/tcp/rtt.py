"""Retransmission timeout per RFC 6298: SRTT, RTTVAR, RTO and exponential backoff.

Sans-I/O like the rest of ``stack.tcp``: the estimator reads no clock. The
connection measures an RTT (``now - time_sent``) and hands it to ``sample``; it
asks ``current_rto()`` whenever it (re)arms the retransmission timer.

What this class does NOT do, because it is the caller's job:

* **Karn's rule** (RFC 6298 3): never pass an RTT measured on a segment that was
  retransmitted, since its ACK is ambiguous (it may answer either copy). The only
  exception is an RTT taken from the TCP timestamp option (RFC 7323 4), which
  identifies the copy. The second half of Karn's algorithm, keeping the backed-off
  RTO until a valid sample arrives, is built in: ``sample`` resets the backoff.
* **Timer management** (RFC 6298 5.1-5.6): when to start, restart and stop the timer.

Karn's rule and where samples come from are ``RttSampler``'s job, below; the timer itself and
the one interface the connection times its retransmissions through is ``RetransmissionTimer``.

Choice of ``min_rto`` (RFC 6298 2.4 says the RTO SHOULD be rounded up to 1 s):
we default to 0.2 s, Linux's ``TCP_RTO_MIN``. Our links are a TUN device inside a
namespace or an in-memory link, with RTTs of microseconds to a few milliseconds;
a 1 s floor would make every tail loss (one that fast retransmit cannot repair)
stall a transfer for a second and dwarf everything a lab wants to show. 200 ms
also matches the kernel peer we talk to, so traces compare like with like. The
floor exists to stay above the peer's delayed-ACK timer (RFC 9293 3.8.6.3 allows
up to 0.5 s; Linux uses 40-200 ms): with a floor below that, an idle-ish receiver
causes spurious timeouts. Pass ``min_rto=1.0`` for the RFC's conservative value.

Note that Linux does not follow the formula below exactly (it floors RTTVAR at
``rto_min / 4`` rather than clamping the result); we follow the RFC.
"""
from __future__ import annotations

from collections import deque

from .seq import HALF, MASK, seq_ge, seq_gt

RFC6298_ALPHA = 1 / 8  # RFC 6298 2.3: alpha = 1/8
RFC6298_BETA = 1 / 4  # RFC 6298 2.3: beta = 1/4
RFC6298_K = 4  # RFC 6298 2: K = 4
RFC6298_SYN_FALLBACK_RTO = 3.0  # RFC 6298 5.7: RTO after a SYN timeout, once data flows
MAX_BACKOFF_EXPONENT = 64  # beyond 2**64 any positive RTO is past max_rto; avoids float overflow


class RttEstimator:
    """Smoothed RTT and retransmission timeout (RFC 6298).

    Attributes (seconds): ``srtt`` and ``rttvar`` are None until the first sample;
    ``rto`` is the current RTO before backoff, already clamped to
    ``[min_rto, max_rto]``; ``backoff`` counts the doublings applied by timeouts
    since the last valid sample; ``latest_rtt`` is the last sample given.
    """

    def __init__(
        self,
        initial_rto: float = 1.0,
        min_rto: float = 0.2,
        max_rto: float = 120.0,
        granularity: float = 0.001,
    ) -> None:
        if not 0 <= min_rto <= max_rto:
            raise ValueError(f"need 0 <= min_rto <= max_rto, got {min_rto}, {max_rto}")
        if not min_rto <= initial_rto <= max_rto:
            raise ValueError(f"initial_rto {initial_rto} outside [{min_rto}, {max_rto}]")
        if granularity < 0:
            raise ValueError(f"granularity must be >= 0, got {granularity}")
        self.min_rto = min_rto
        self.max_rto = max_rto  # RFC 6298 2.5: a maximum MAY be placed (at least 60 s); Linux: 120 s
        self.granularity = granularity  # RFC 6298 2: G, the clock granularity
        self.srtt: float | None = None
        self.rttvar: float | None = None
        self.rto: float = initial_rto  # RFC 6298 2.1: RTO = 1 s until the first measurement
        self.backoff: int = 0
        self.latest_rtt: float | None = None

    def sample(self, rtt: float) -> None:
        """Feed one RTT measurement R (seconds); resets the backoff (Karn)."""
        if rtt < 0:
            raise ValueError(f"negative RTT sample {rtt}")
        self.latest_rtt = rtt
        if self.srtt is None or self.rttvar is None:
            self._first_sample(rtt)
        else:
            self._subsequent_sample(rtt)
        self.rto = self._clamp(self.srtt + max(self.granularity, RFC6298_K * self.rttvar))  # RFC 6298 2.2/2.3
        self.backoff = 0  # RFC 6298 5, note after 5.7: a new sample collapses the backed-off RTO

    def _first_sample(self, r: float) -> None:
        self.srtt = r  # RFC 6298 2.2: SRTT <- R
        self.rttvar = r / 2  # RFC 6298 2.2: RTTVAR <- R/2

    def _subsequent_sample(self, r: float) -> None:
        # RFC 6298 2.3: RTTVAR first, using the SRTT from before this sample
        self.rttvar = (1 - RFC6298_BETA) * self.rttvar + RFC6298_BETA * abs(self.srtt - r)
        self.srtt = (1 - RFC6298_ALPHA) * self.srtt + RFC6298_ALPHA * r

    def _clamp(self, rto: float) -> float:
        # RFC 6298 2.4 (floor; ours is min_rto, see module docstring) and 2.5 (ceiling)
        return min(max(rto, self.min_rto), self.max_rto)

    def current_rto(self) -> float:
        """The timeout to arm now: rto * 2**backoff, capped at max_rto (RFC 6298 5.5)."""
        return min(self.rto * 2.0 ** min(self.backoff, MAX_BACKOFF_EXPONENT), self.max_rto)

    def on_timeout(self) -> None:
        """The retransmission timer expired: back off the timer (RFC 6298 5.5)."""
        self.backoff += 1

    def reset_backoff(self) -> None:
        self.backoff = 0

    def reset_for_data_after_syn_timeout(self) -> None:
        """RFC 6298 5.7: the SYN (or SYN-ACK) timed out at least once; data now begins.

        The caller invokes this when the handshake completes after a SYN
        retransmission. If the RTO in use is below 3 s it is re-initialized to 3 s
        (capped at ``max_rto``). The backoff accumulated on the SYN is dropped.
        """
        if self.rto < RFC6298_SYN_FALLBACK_RTO:
            self.rto = min(RFC6298_SYN_FALLBACK_RTO, self.max_rto)
        self.backoff = 0

    def state_dict(self) -> dict:
        """Values for trace events and ``ss -ti``-like views."""
        return {
            "srtt": self.srtt,
            "rttvar": self.rttvar,
            "rto": self.rto,
            "backoff": self.backoff,
            "current_rto": self.current_rto(),
            "latest_rtt": self.latest_rtt,
        }

    def __repr__(self) -> str:
        return f"RttEstimator(srtt={self.srtt}, rttvar={self.rttvar}, rto={self.rto}, backoff={self.backoff})"


class RttSampler:
    """Where RTT samples come from (RFC 6298 3, RFC 7323 4), feeding an ``RttEstimator``.

    * Each new segment's send time is kept (``on_send``); an ACK that covers it gives
      ``now - time sent`` from the newest segment it covers that was sent once only (as Linux).
    * **Karn's rule** (RFC 6298 3): a retransmission forgets the send times of everything from
      its sequence number on (``on_retransmit``): their ACKs are ambiguous.
    * **Timestamp fallback** (RFC 7323 4.1): when retransmissions left no clean timing, the echo
      TSecr identifies the copy and gives the sample (1 ms resolution), but never an echo older
      than the last timeout (``on_timeout``): that one answers a copy sent before it.
    * The SYN (or SYN,ACK) is timed only if it was not retransmitted, else from its echo.

    TSvals are our 1 ms timestamp clock (the caller passes its current value as ``ts_now``).
    """

    def __init__(self, estimator: RttEstimator) -> None:
        self.estimator = estimator
        self.sent_times = deque()      # (end seq, time sent) of new data, oldest first
        self.ts_fallback = False       # a retransmission left no clean timing: use TSecr
        self.ts_at_rto = 0             # our TSval when the last RTO fired
        self.syn_sent_at = 0.0

    def on_syn_sent(self, now: float, first: bool) -> None:
        if first:
            self.syn_sent_at = now

    def on_send(self, end_seq: int, now: float) -> None:
        """First transmission of new data ending at ``end_seq``: time it."""
        self.sent_times.append((end_seq, now))

    def on_retransmit(self, seq: int) -> None:
        """Drop the send times of segments ending after ``seq``: their ACKs are now ambiguous."""
        times = self.sent_times
        while times and seq_gt(times[-1][0], seq):
            times.pop()
        self.ts_fallback = True

    def on_timeout(self, snd_una: int, ts_now: int) -> None:
        """The RTO fired: nothing outstanding can be timed by our clock, and an echo from before
        now answers an earlier copy (its ACK was lost): like Karn's rule, no sample from it."""
        self.on_retransmit(snd_una)
        self.ts_at_rto = ts_now

    def on_ack(self, ack: int, tsecr: int | None, ts_now: int, now: float) -> float | None:
        """An ACK of new data: the RTT sample it gives (seconds), or None."""
        sent_at = None
        times = self.sent_times
        while times and (ack - times[0][0]) & MASK <= HALF:  # seq_le(end, ack) inline: once per segment
            sent_at = times.popleft()[1]
        if sent_at is not None:
            self.ts_fallback = False
            return now - sent_at
        if self.ts_fallback and tsecr and seq_ge(tsecr, self.ts_at_rto):
            return ts_rtt(tsecr, ts_now)
        return None

    def on_syn_acked(self, retransmitted: bool, tsecr: int | None, ts_now: int, now: float) -> float | None:
        """Our SYN (SYN,ACK) is acknowledged: Karn: time it only if sent once; else from the echo."""
        if not retransmitted:
            return now - self.syn_sent_at
        if tsecr:
            return ts_rtt(tsecr, ts_now)  # RFC 7323: the echo names the copy
        return None


class RetransmissionTimer:
    """RFC 6298 5: the retransmission timer, and the RTT samples that feed the estimator.

    The connection times its retransmissions through this one object and arms its RTO from
    ``deadline`` (absolute virtual time; None: stopped). ``on_send`` / ``on_ack`` / ``on_expire``
    are the interface of exercise 5 (ex_timer.py in the course package), which a student's class
    replaces through the seam ``stack.tcp.rtt:RetransmissionTimer``; the rest is what the
    connection needs beyond it: the handshake's sample, timestamps, and the timer moves that
    are not RFC 6298 5's (the persist timer stops it, a tail loss probe restarts it).
    """

    __slots__ = ("rtt", "sampler", "deadline")

    def __init__(self, rtt: RttEstimator) -> None:
        self.rtt = rtt
        self.sampler = RttSampler(rtt)  # send times, Karn's rule, timestamp fallback
        self.deadline: float | None = None

    def on_send(self, seq: int, end: int, now: float, retransmission: bool = False) -> None:
        """Segment [seq, end) left: time a first transmission, forget what a retransmission makes
        ambiguous (RFC 6298 3, Karn); RFC 6298 5.1: start the timer if it is not running."""
        if retransmission:
            self.sampler.on_retransmit(seq)
        else:
            self.sampler.on_send(end, now)
        if self.deadline is None:
            self.deadline = now + self.rtt.current_rto()

    def on_send_run(self, ends, now: float) -> None:
        """``on_send`` for new segments that left together at ``now`` ending at each of ``ends``
        (a bulk sender's train), in one step: the same send times, the same RFC 6298 5.1 start."""
        self.sampler.sent_times.extend([(end, now) for end in ends])
        if self.deadline is None:
            self.deadline = now + self.rtt.current_rto()

    def on_ack(self, ack: int, now: float, all_acked: bool, tsecr: int | None = None,
               ts_now: int = 0) -> float | None:
        """An ACK of new data up to ``ack``: the RTT sample it gives (already fed to the estimator), or
        None; then RFC 6298 5.2 (all acknowledged: stop) or 5.3 (restart)."""
        sample = self.sampler.on_ack(ack, tsecr, ts_now, now)
        if sample is not None and sample < 0:
            sample = None
        if sample is not None:
            self.rtt.sample(sample)
        self.deadline = None if all_acked else now + self.rtt.current_rto()
        return sample

    def on_expire(self, now: float, snd_una: int | None = None, ts_now: int = 0) -> None:
        """The timer expired: RFC 6298 5.5 back off, 5.6 restart with the new RTO. Karn: nothing
        outstanding is timed any more, nor is an echo from before now."""
        self.rtt.on_timeout()
        if snd_una is not None:
            self.sampler.on_timeout(snd_una, ts_now)
        self.deadline = now + self.rtt.current_rto()

    # ---------------------------------------------------------------- beyond exercise 5
    # start / restart / stop return the new deadline: the connection arms its RTO with it.
    def start(self, now: float) -> float:
        """RFC 6298 5.1 for a segment that is not timed (a FIN alone, a probe): start if not running."""
        if self.deadline is None:
            self.deadline = now + self.rtt.current_rto()
        return self.deadline

    def restart(self, now: float) -> float:
        """A tail loss probe or a resent head restarts the timer (RFC 8985 7.3; as Linux)."""
        self.deadline = now + self.rtt.current_rto()
        return self.deadline

    def stop(self) -> None:
        """The persist timer takes over (RFC 9293 3.8.6.1), or the SYN is acknowledged."""
        self.deadline = None
        return None

    def on_syn_sent(self, now: float, first: bool) -> float:
        self.sampler.on_syn_sent(now, first)
        return self.start(now)

    def on_syn_acked(self, retransmitted: bool, tsecr: int | None, ts_now: int, now: float) -> float | None:
        """Our SYN (SYN,ACK) is acknowledged: its sample (Karn; else the echo), fed to the estimator."""
        sample = self.sampler.on_syn_acked(retransmitted, tsecr, ts_now, now)
        if sample is None or sample < 0:
            return None
        self.rtt.sample(sample)
        return sample

    @property
    def syn_sent_at(self) -> float:
        return self.sampler.syn_sent_at

    @syn_sent_at.setter
    def syn_sent_at(self, when: float) -> None:
        self.sampler.syn_sent_at = when  # a SYN cookie's SYN,ACK: when it left, from the echo


def ts_rtt(tsecr: int, ts_now: int) -> float:
    """RFC 7323 4.1: RTT from a timestamp echo, our clock ticking in ms."""
    return ((ts_now - tsecr) & MASK) / 1000.0
