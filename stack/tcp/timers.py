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


class Timer(enum.IntEnum):
    RTO = 0          # RFC 6298 retransmission timeout
    DELACK = 1       # RFC 9293 3.8.6.3 / RFC 5681 4.2 delayed ACK
    PERSIST = 2      # RFC 9293 3.8.6.1 zero-window probe
    TIME_WAIT = 3    # RFC 9293 3.10.7.4: 2 MSL
    FIN_WAIT_2 = 4   # orphaned FIN-WAIT-2 lifetime (Linux tcp_fin_timeout)
    KEEPALIVE = 5    # RFC 9293 3.8.4
    PTO = 6          # RFC 8985 7 tail loss probe


def _deadline(kind: Timer) -> property:
    i = int(kind)

    def get(self) -> float | None:
        return self._at[i]

    def set_(self, at: float | None) -> None:
        self._at[i] = at

    return property(get, set_, doc=f"Deadline of the {kind.name} timer, None when not armed.")


class Timers:
    __slots__ = ("_at",)

    def __init__(self) -> None:
        self._at: list[float | None] = [None] * len(Timer)

    rto = _deadline(Timer.RTO)
    delack = _deadline(Timer.DELACK)
    persist = _deadline(Timer.PERSIST)
    time_wait = _deadline(Timer.TIME_WAIT)
    fin_wait_2 = _deadline(Timer.FIN_WAIT_2)
    keepalive = _deadline(Timer.KEEPALIVE)
    pto = _deadline(Timer.PTO)

    def armed(self) -> set[Timer]:
        return {k for k in Timer if self._at[k] is not None}

    def due(self, kind: Timer, now: float) -> bool:
        at = self._at[kind]
        return at is not None and now >= at

    def next_deadline(self) -> float | None:
        best = None
        for t in self._at:
            if t is not None and (best is None or t < best):
                best = t
        return best

    def clear_all(self) -> None:
        self._at = [None] * len(Timer)
