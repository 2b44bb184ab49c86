"""A connection's timers as one object: one enum of what can be armed, one deadline each, the
next deadline, and one ``clear_all`` (used when the TCB is deleted and on entering TIME-WAIT).

Deadlines are absolute virtual times (seconds); nothing here reads a clock.

    >>> t = Timers()
    >>> t.rto = 1.5; t.delack = 0.04
    >>> t.next_deadline(), sorted(k.name for k in t.armed())
    (0.04, ['DELACK', 'RTO'])
    >>> t.clear_all(); t.next_deadline() is None
    True
"""
from __future__ import annotations

import enum
import functools
import operator


class Timer(enum.IntEnum):
    RTO = 0          # RFC 6298 retransmission timeout (armed from rtt.RetransmissionTimer.deadline)
    DELACK = 1       # RFC 9293 3.8.6.3 / RFC 5681 4.2 delayed ACK
    PERSIST = 2      # RFC 9293 3.8.6.1 zero-window probe
    TIME_WAIT = 3    # RFC 9293 3.10.7.4: 2 MSL
    FIN_WAIT_2 = 4   # orphaned FIN-WAIT-2 lifetime (Linux tcp_fin_timeout)
    KEEPALIVE = 5    # RFC 9293 3.8.4
    PTO = 6          # RFC 8985 7 tail loss probe


_ARMED = functools.partial(operator.is_not, None)  # t -> t is not None
_NAMES = ("rto", "delack", "persist", "time_wait", "fin_wait_2", "keepalive", "pto")  # by Timer value


class Timers:
    """One deadline attribute per ``Timer`` (plain attributes: read on every segment), None when
    not armed."""
    __slots__ = _NAMES

    def __init__(self) -> None:
        self.clear_all()

    def armed(self) -> set[Timer]:
        return {k for k in Timer if getattr(self, _NAMES[k]) is not None}

    def due(self, kind: Timer, now: float) -> bool:
        at = getattr(self, _NAMES[kind])
        return at is not None and now >= at

    def next_deadline(self) -> float | None:
        # the earliest armed deadline, in C (read twice per loop turn: the next sleep's length)
        return min(filter(_ARMED, (self.rto, self.delack, self.persist, self.time_wait, self.fin_wait_2,
                                   self.keepalive, self.pto)), default=None)

    def clear_all(self) -> None:
        self.rto = self.delack = self.persist = self.time_wait = None
        self.fin_wait_2 = self.keepalive = self.pto = None
