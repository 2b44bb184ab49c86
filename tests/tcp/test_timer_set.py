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
