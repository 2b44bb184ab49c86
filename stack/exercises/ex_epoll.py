"""Exercise 9: epoll's ready-list callback (ep_poll_callback). Lab 4.

The stack's ``epoll._ep_poll_callback`` does this on the epoll object; the reference here is the
same decision as a pure function. Wired after the epoll refactor: the method calls it.
"""
from __future__ import annotations

import select
from types import SimpleNamespace

from .framework import Check, Exercise

EPOLLIN, EPOLLOUT = select.EPOLLIN, select.EPOLLOUT
EPOLLERR, EPOLLHUP = select.EPOLLERR, select.EPOLLHUP
ALWAYS = EPOLLERR | EPOLLHUP  # epoll_ctl(2): always reported, never need asking for


def ep_poll_callback(item, key: int, ready: int, rdllist: list) -> bool:
    """The socket's wait queue was woken about ``key``: queue ``item`` if ready; True: wake epoll_wait."""
    if item.disabled:
        return False  # EPOLLONESHOT fired: nothing until epoll_ctl(MOD) re-arms it
    wanted = item.events | ALWAYS
    if key and not key & wanted:
        return False  # a wake-up about events nobody asked for (an ACK for a reader)
    if not ready & wanted:
        return False
    if not item.on_rdllist:  # at most once on the ready list
        item.on_rdllist = True
        rdllist.append(item)
    return True


def reference():
    return SimpleNamespace(ep_poll_callback=ep_poll_callback)


SKELETON = '''"""Exercise 9 -- epoll's callback: put a ready socket on the ready list.

Read: epoll(7) (the interest list and the ready list; level- and edge-triggered),
      epoll_ctl(2) (EPOLLERR and EPOLLHUP are always reported; EPOLLONESHOT), and in the
      kernel's fs/eventpoll.c the function ep_poll_callback.
Lab:  docs/labs/04-blocking-vs-epoll.md, section 5 (the callback and the ready list).

An epoll entry hangs a callback on its socket's wait queue. When the stack wakes that
queue (data arrived, send space freed, the peer closed...), the callback runs with ``key``
= the events the wake-up is about (0: unknown, anything) and ``ready`` = the socket's
events now. ``item`` has: .events (the interest mask), .on_rdllist (bool), .disabled
(True after an EPOLLONESHOT entry fired).

Wired after the epoll refactor: the graded scenarios run against your function now.

Check your work:  tunstack exercise check 9 DIR
"""
import select

EPOLLIN, EPOLLOUT = select.EPOLLIN, select.EPOLLOUT
EPOLLERR, EPOLLHUP = select.EPOLLERR, select.EPOLLHUP


def ep_poll_callback(item, key: int, ready: int, rdllist: list) -> bool:
    """Append ``item`` to ``rdllist`` when it has an event it wants; return True when the
    threads sleeping in epoll_wait should be woken."""
    # TODO 1: a disabled (one-shot, fired) entry reports nothing.
    # TODO 2: a wake-up about events the entry does not want is ignored (key == 0: any).
    # TODO 3: queue the item at most once; wake the waiters.
    raise NotImplementedError("ep_poll_callback")
'''


def _item(events: int, **kw):
    return SimpleNamespace(events=events, on_rdllist=False, disabled=False, **kw)


def _names(mask: int) -> str:
    names = [n for n, v in (("IN", EPOLLIN), ("OUT", EPOLLOUT), ("ERR", EPOLLERR), ("HUP", EPOLLHUP)) if mask & v]
    return "|".join(names) or "0"


def _call(t, part, item, key, ready, rdllist, want_wake, want_len):
    got = part.ep_poll_callback(item, key, ready, rdllist)
    what = f"ep_poll_callback(item<events={_names(item.events)}>, key={_names(key)}, ready={_names(ready)}, rdllist)"
    t.expect(what, got, want_wake)
    t.expect("len(rdllist)", len(rdllist), want_len)


def check_ready_item_queued(part, t, o):
    """epoll(7): a wake-up with a wanted event ready queues the entry and wakes epoll_wait."""
    rdl = []
    it = _item(EPOLLIN)
    _call(t, part, it, EPOLLIN, EPOLLIN, rdl, True, 1)
    t.expect("rdllist[0] is item", rdl[0] is it if rdl else None, True)
    t.expect("item.on_rdllist", it.on_rdllist, True)


def check_queued_once(part, t, o):
    """fs/eventpoll.c ep_poll_callback: an entry already on the ready list is not added twice."""
    rdl = []
    it = _item(EPOLLIN)
    _call(t, part, it, EPOLLIN, EPOLLIN, rdl, True, 1)
    _call(t, part, it, EPOLLIN, EPOLLIN, rdl, True, 1)


def check_unwanted_key_ignored(part, t, o):
    """fs/eventpoll.c: a wake-up about events the entry does not want (key) is ignored."""
    rdl = []
    it = _item(EPOLLIN)
    t.note("a reader's socket is woken because an ACK freed send space (key OUT), though data is also ready")
    _call(t, part, it, EPOLLOUT, EPOLLIN | EPOLLOUT, rdl, False, 0)
    _call(t, part, it, 0, EPOLLIN | EPOLLOUT, rdl, True, 1)


def check_not_ready(part, t, o):
    """epoll(7): woken, but the socket has none of the wanted events now: nothing to report."""
    rdl = []
    _call(t, part, _item(EPOLLIN), 0, EPOLLOUT, rdl, False, 0)


def check_err_hup_always(part, t, o):
    """epoll_ctl(2): EPOLLERR and EPOLLHUP are reported even when not asked for."""
    rdl = []
    _call(t, part, _item(EPOLLIN), EPOLLHUP, EPOLLHUP, rdl, True, 1)


def check_oneshot_disabled(part, t, o):
    """epoll_ctl(2) EPOLLONESHOT: after it fired, the entry is disabled until re-armed."""
    rdl = []
    it = _item(EPOLLIN)
    it.disabled = True
    t.note("item.disabled = True   # a one-shot entry that already fired")
    _call(t, part, it, EPOLLIN, EPOLLIN, rdl, False, 0)


EXERCISE = Exercise(
    number=9, slug="epoll", title="epoll's ready-list callback", lab="docs/labs/04-blocking-vs-epoll.md",
    clauses=["epoll(7)", "epoll_ctl(2) (EPOLLERR/EPOLLHUP, EPOLLONESHOT)", "Linux fs/eventpoll.c ep_poll_callback"],
    filename="epoll_callback.py", names=["ep_poll_callback"], skeleton=SKELETON, reference=reference, wired=False,
    wiring="after the epoll refactor: epoll._ep_poll_callback calls ep_poll_callback(item, key, "
           "sock.poll_events(), self.rdllist) and wakes its wait queue on True; then the lab 4 servers "
           "run end to end on it",
    checks=[
        Check("ready_item_queued", "unit", check_ready_item_queued.__doc__, check_ready_item_queued),
        Check("queued_at_most_once", "unit", check_queued_once.__doc__, check_queued_once),
        Check("unwanted_key_ignored", "unit", check_unwanted_key_ignored.__doc__, check_unwanted_key_ignored),
        Check("not_ready_not_queued", "unit", check_not_ready.__doc__, check_not_ready),
        Check("err_hup_always", "unit", check_err_hup_always.__doc__, check_err_hup_always),
        Check("oneshot_disabled", "unit", check_oneshot_disabled.__doc__, check_oneshot_disabled),
    ],
)
