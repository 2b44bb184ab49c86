"""A connection's timers are one object (stack/tcp/timers.py): one enum, one clear-all used both
when the TCB is deleted and on entering TIME-WAIT."""
from harness import TcpHarness
from stack.tcp.states import State
from stack.tcp.timers import Timer, Timers


def test_next_deadline_is_the_earliest_armed_and_clear_all_disarms_everything():
    t = Timers()
    assert t.next_deadline() is None and t.armed() == set()
    t.rto, t.keepalive, t.pto = 3.0, 7200.0, 1.0
    assert t.next_deadline() == 1.0 and t.armed() == {Timer.RTO, Timer.KEEPALIVE, Timer.PTO}
    assert t.due(Timer.PTO, 1.0) and not t.due(Timer.RTO, 2.9) and not t.due(Timer.DELACK, 99.0)
    t.clear_all()
    assert t.next_deadline() is None and t.armed() == set()


def test_time_wait_leaves_only_the_2msl_timer_armed():
    """RFC 9293 3.10.7.4: in TIME-WAIT only the 2 MSL timer runs (a pending delayed ACK, keep-alive,
    RTO or probe timer is cleared with everything else)."""
    h = TcpHarness()
    h.fin_wait_2()
    h.call(h.conn.set_keepalive, True)
    h.send(h.seg("PA", load=b"late data"))  # arms the delayed ACK
    h.p_nxt += 9
    assert Timer.DELACK in h.conn.timers.armed()
    h.send(h.seg("FA"))
    h.p_nxt += 1
    h.expect(flags="A", ack=h.p_nxt)
    assert h.conn.state is State.TIME_WAIT
    assert h.conn.timers.armed() == {Timer.TIME_WAIT}
    assert h.conn.next_deadline() == h.now + 2 * h.config.msl


def test_deleting_the_tcb_disarms_every_timer():
    h = TcpHarness()
    conn = h.established()
    h.call(conn.set_keepalive, True)
    h.app_send(b"x" * 100)
    assert {Timer.RTO, Timer.KEEPALIVE} <= conn.timers.armed()
    h.call(conn.abort)
    assert conn.state is State.CLOSED and conn.timers.armed() == set() and conn.next_deadline() is None


def test_a_timer_restarted_later_is_the_stacks_next_deadline_not_its_first_arming():
    """RFC 6298 5.3: an ACK of new data restarts the RTO (and RFC 8985 7.2 the PTO) later; the stack's
    next deadline is the restarted one, so the driver sleeps until then instead of waking up at the
    first arming to find nothing due (the layer's lazy re-arming, done before the wake-up)."""
    h = TcpHarness()
    conn = h.established()
    h.app_send(b"a" * 100)
    h.expect(flags="PA")
    first = conn.next_deadline()
    assert h.host.next_deadline() == first
    h.advance((first - h.now) / 2)
    h.app_send(b"b" * 100)  # held back by Nagle (RFC 896) until the first 100 bytes are acknowledged
    h.send(h.seg("A", ack=h.l_nxt + 100))  # their ACK: the timers restart from now
    h.expect(flags="PA", payload=b"b" * 100)
    restarted = conn.next_deadline()
    assert restarted > first and h.host.next_deadline() == restarted


def test_the_turns_timer_check_is_a_lower_bound_of_the_next_deadline():
    """The runtime walks the timers (``next_deadline``, ``on_timers``) only when ``NetStack.timers_due``
    says the earliest heap entry is due: it is never False at or after the next deadline, and it is
    False before the earliest entry. After an ACK restarted the RTO later, the heap still holds the
    first arming (lazy): the check says "maybe" there, the exact walk moves the entry."""
    h = TcpHarness()
    conn = h.established()
    h.app_send(b"a" * 100)
    h.expect(flags="PA")
    first = conn.next_deadline()
    assert not h.host.timers_due(first - 0.001) and h.host.timers_due(first)
    h.advance((first - h.now) / 2)
    h.app_send(b"b" * 100)
    h.send(h.seg("A", ack=h.l_nxt + 100))  # restarts the timers from now
    h.expect(flags="PA", payload=b"b" * 100)
    restarted = conn.next_deadline()
    assert h.host.timers_due(first)  # the stale entry: a lower bound, not the deadline
    assert h.host.next_deadline() == restarted  # the exact walk reschedules the entry
    assert not h.host.timers_due(first) and not h.host.timers_due(restarted - 0.001)
    assert h.host.timers_due(restarted)
