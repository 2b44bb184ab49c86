"""Loss recovery pinned packet by packet: the exact segments a sender emits on duplicate ACKs,
SACK information, timeouts and zero-window probes.

Each test pins one rule that a one-line bug could break while the transfer still completes
(the simulator only notices it is slower): limited transmit (RFC 3042), RFC 6675 IsLost for
entering recovery and for choosing holes, go-back-N after an RTO (RFC 5681 3.1), resending an
unanswered persist octet, and the RTO restart after a fast retransmission of the head.

The sender is the stack (ISS 1000, MSS 1460, no timestamps: segments carry exactly 1460 octets);
the test plays the receiver. ``S(i)`` is the first sequence number of data segment ``i``.
"""
from harness import ISS, TcpHarness

MSS = 1460


def S(i: int) -> int:
    """First sequence number of the stack's data segment ``i`` (0-based)."""
    return ISS + 1 + i * MSS


def sender(segments: int, *, sack: bool = False, rtt: float = 0.0, congestion: str = "newreno", **cfg):
    """ESTABLISHED (passive open), the app writes ``segments`` full segments; the initial window
    (10 segments, pinned) goes out at once. Returns the harness."""
    opts = None
    if sack:
        opts = [("MSS", 1460), ("SAckOK", b"")]
    cfg.setdefault("initial_window", 10)  # IW pinned: the numbers below are about recovery, not the default window
    h = TcpHarness(sack=sack, congestion=congestion, **cfg)
    h.listen_and_establish(rtt=rtt, syn_options=opts)
    h.app_send((bytes(range(256)) * (segments * MSS // 256 + 1))[:segments * MSS])
    sent = h.drain()
    assert [e.tcp.seq for e in sent] == [S(i) for i in range(min(segments, 10))]
    assert all(len(e.payload) == MSS for e in sent)
    return h


def dupack(h: TcpHarness, sack=None):
    """A duplicate ACK from the receiver (ACK = SND.UNA = S(0)), optionally with SACK blocks."""
    opts = [("SAck", tuple(x for block in sack for x in block))] if sack else None
    h.send(h.seg("A", ack=S(0), options=opts))


def seqs(h: TcpHarness) -> list[tuple[int, int]]:
    """Drain what the stack emitted: (seq, payload length) of each segment."""
    return [(e.tcp.seq, len(e.payload)) for e in h.drain()]


# ------------------------------------------------------------------ RFC 3042 limited transmit
def test_limited_transmit_sends_one_new_segment_on_each_of_the_first_two_dupacks():
    """RFC 3042 2: the first and second duplicate ACKs each release one new full segment (cwnd + 2*SMSS
    at most), SND.NXT onwards; the third triggers the fast retransmission of SND.UNA (RFC 5681 3.2)."""
    h = sender(20)
    dupack(h)
    assert seqs(h) == [(S(10), MSS)]
    dupack(h)
    assert seqs(h) == [(S(11), MSS)]
    dupack(h)
    assert seqs(h) == [(S(0), MSS)]
    assert h.conn.recovery.in_recovery


# ------------------------------------------------------------------ RFC 6675 IsLost, entering recovery
def test_islost_more_than_dupthresh_minus_one_smss_sacked_above_enters_recovery_on_first_dupack():
    """RFC 6675 4 IsLost(SND.UNA): more than (DupThresh - 1) * SMSS = 2920 octets SACKed above it
    -> lost: recovery starts on the first duplicate ACK with the retransmission of SND.UNA."""
    h = sender(20, sack=True)
    dupack(h, sack=[(S(1), S(3) + 1)])  # 2921 octets SACKed
    assert seqs(h) == [(S(0), MSS)]
    assert h.conn.recovery.in_recovery


def test_islost_exactly_dupthresh_minus_one_smss_sacked_is_not_yet_lost():
    """RFC 6675 4: exactly 2 * SMSS SACKed above (not more) and one block -> not lost: limited transmit."""
    h = sender(20, sack=True)
    dupack(h, sack=[(S(1), S(3))])
    assert seqs(h) == [(S(10), MSS)]
    assert not h.conn.recovery.in_recovery


def test_islost_dupthresh_sacked_blocks_above_is_lost():
    """RFC 6675 4: DupThresh (3) discontiguous SACKed sequences above -> lost, however few octets."""
    h = sender(20, sack=True)
    dupack(h, sack=[(S(7), S(7) + 100), (S(5), S(5) + 100), (S(3), S(3) + 100)])
    assert seqs(h) == [(S(0), MSS)]
    assert h.conn.recovery.in_recovery


# ------------------------------------------------------------------ RFC 6675 NextSeg: which holes are lost
def test_next_hole_lost_by_sacked_octets_above_is_resent_within_pipe():
    """RFC 6675 5 / NextSeg() rule 1: segments 0 and 4 lost; 1-3 SACKed and 2*SMSS+1 octets above
    segment 4 (IsLost(S(4)) by octets, one block only). The head goes first, then hole 4,
    then nothing: pipe (RFC 6675 SetPipe) has reached cwnd = ssthresh = 7300."""
    h = sender(20, sack=True)
    dupack(h, sack=[(S(1), S(4)), (S(5), S(7) + 1)])
    assert seqs(h) == [(S(0), MSS), (S(4), MSS)]


def test_next_hole_not_lost_with_only_dupthresh_minus_one_smss_above_is_not_resent():
    """The same with exactly 2*SMSS above segment 4: IsLost(S(4)) is false, only the head is resent,
    and pipe still leaves no room for new data."""
    h = sender(20, sack=True)
    dupack(h, sack=[(S(1), S(4)), (S(5), S(7))])
    assert seqs(h) == [(S(0), MSS)]


# ------------------------------------------------------------------ RFC 5681 3.1 / RFC 6582 4: go-back-N after RTO
def test_after_rto_the_next_ack_resends_from_snd_una_in_order():
    """RFC 5681 3.1: after the RTO (one segment resent, cwnd = 1 SMSS), SND.NXT is SND.UNA; when the
    resent segment is ACKed (cwnd 2 SMSS, RFC 3465 2.3 L = 1) segments 1 and 2 go again, in order,
    traced as retransmissions (why=rto), not new data beyond SND.MAX."""
    h = sender(5)
    h.advance(0.2)
    assert seqs(h) == [(S(0), MSS)]  # RFC 6298 5.4: the RTO (0.2 s, min_rto) resends the earliest segment
    h.send(h.seg("A", ack=S(1)))
    assert seqs(h) == [(S(1), MSS), (S(2), MSS)]
    h.send(h.seg("A", ack=S(3)))
    assert seqs(h) == [(S(3), MSS), (S(4), MSS)]


# ------------------------------------------------------------------ RFC 9293 3.8.6.1 persist
def test_unanswered_persist_octet_is_resent_with_the_data_when_the_window_opens():
    """RFC 9293 3.8.6.1: against a zero window the persist timer sends one octet; the peer does not take
    it (ACK stays at SND.UNA); when its window opens, that octet goes again at the head of the data.
    (The one-octet probe is the option ``zero_window_probe="octet"``; the default is Linux's empty probe.)"""
    h = TcpHarness(sack=False, zero_window_probe="octet")
    h.listen_and_establish(ack_window=0)
    data = bytes(range(100))
    h.app_send(data)
    h.expect_nothing()  # zero window: nothing may go
    h.run_next_timer()
    h.expect(flags="A", seq=ISS + 1, payload=data[:1])  # the persist probe: one octet
    h.expect_nothing()
    h.send(h.seg("A", ack=ISS + 1, window=65535))  # probe octet not taken; window opens
    h.expect(seq=ISS + 1, payload=data)
    h.expect_nothing()


# ------------------------------------------------------------------ RTO restart after fast retransmit of the head
def test_fast_retransmit_of_the_head_restarts_the_rto():
    """As Linux (RFC 6298 leaves it open): resending SND.UNA on the third duplicate ACK restarts the
    retransmission timer, so the RTO armed at t=0 for 0.2 s does not fire at 0.2 s while the fast
    retransmission (sent at 0.15 s) is on its way; it fires at 0.15 + 0.2 = 0.35 s."""
    h = sender(20)
    h.advance_to(0.15)
    for _ in range(3):
        dupack(h)
    assert seqs(h) == [(S(10), MSS), (S(11), MSS), (S(0), MSS)]
    h.advance_to(0.349)
    h.expect_nothing()
    h.advance_to(0.35)
    h.expect(seq=S(0), length=MSS, at=0.35)
    h.expect_nothing()
