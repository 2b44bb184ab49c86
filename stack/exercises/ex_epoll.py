"""Exercise 9: epoll's ready-list callback (ep_poll_callback). Lab 4.

The reference is the stack's own ``stack.epoll.ep_poll_callback``, which ``epoll._ep_poll_callback``
calls whenever a registered socket's wait queue is woken: a student's part installed through the
seam decides what a real ``stack.epoll`` reports, checked over two in-memory stacks.
"""
from __future__ import annotations

import hashlib
import random
import select
import socket
import threading
import time
from contextlib import contextmanager
from types import SimpleNamespace

from ..epoll import ep_poll_callback
from .framework import Check, Exercise

EPOLLIN, EPOLLOUT = select.EPOLLIN, select.EPOLLOUT
EPOLLERR, EPOLLHUP = select.EPOLLERR, select.EPOLLHUP
EPOLLET, EPOLLONESHOT = select.EPOLLET, select.EPOLLONESHOT


def reference():
    return SimpleNamespace(ep_poll_callback=ep_poll_callback)


def replacements(part) -> dict:
    return {"epoll.ep_poll_callback": part.ep_poll_callback}


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

The checks call your function alone, then install it in the stack's epoll (stack/epoll.py)
and run level-triggered, edge-triggered and one-shot readiness and an echo server over two
in-memory stacks.

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


# ---------------------------------------------------------------- the part inside stack.epoll
class _Guard:
    """The part as the stack calls it: it runs in the stack's thread too, so an exception is kept
    (the wake-up then reports nothing) and raised again in the check's thread by ``reraise``."""

    def __init__(self, fn) -> None:
        self.fn, self.exc = fn, None

    def __call__(self, item, key, ready, rdllist):
        try:
            return self.fn(item, key, ready, rdllist)
        except BaseException as exc:  # noqa: BLE001 -- the student's, shown by reraise
            if self.exc is None:
                self.exc = exc
            if threading.current_thread() is threading.main_thread():
                raise
            return False

    def reraise(self) -> None:
        if self.exc is not None:
            raise self.exc


@contextmanager
def _stacks(part, o):
    """Two started stacks joined by an in-memory link, the part installed in stack.epoll; closed after."""
    from ..link.memory import SocketPairLink
    from ..runtime.stack import Stack
    from .seams import swapped
    guard = _Guard(part.ep_poll_callback)
    with swapped({} if o["part_is_reference"] else {"epoll.ep_poll_callback": guard}):
        la, lb = SocketPairLink.pair()
        a = b = None
        try:
            a = Stack(la, "192.0.2.1").start()
            b = Stack(lb, "192.0.2.2").start()
            yield a, b, guard
        finally:
            for x in (a, b, la, lb):
                if x is not None:
                    x.close()
    guard.reraise()


def _pair(a, b, port):
    lst = b.socket()
    lst.bind(("", port))
    lst.listen(4)
    lst.settimeout(3)
    c = a.socket()
    c.settimeout(3)
    c.connect(("192.0.2.2", port))
    s, _ = lst.accept()
    s.settimeout(3)
    lst.close()
    return c, s


def _poll(ep, names, guard, timeout: float):
    """One epoll_wait, its answer as sorted (name, events) pairs."""
    got = sorted((names.get(id(sock), "?"), _names(ev)) for sock, ev in ep.poll_sockets(timeout))
    guard.reraise()
    return got


def _until(cond, limit: float = 2.0) -> bool:
    end = time.monotonic() + limit
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.005)
    return True


def check_level_and_edge_through_epoll(part, t, o):
    """epoll(7) through the stack: a level-triggered reader is reported until drained; an
    edge-triggered one once per arrival, and not again when only write space (EPOLLOUT) wakes its socket."""
    from ..epoll import epoll
    with _stacks(part, o) as (a, b, guard):
        c1, lt = _pair(a, b, 7901)
        c2, et = _pair(a, b, 7902)
        ep = epoll(b)
        names = {id(lt): "lt", id(et): "et"}
        ep.register(lt, EPOLLIN)
        ep.register(et, EPOLLIN | EPOLLET)
        t.note("epoll on host b: lt registered EPOLLIN, et registered EPOLLIN|EPOLLET")
        t.expect("poll(0) before any data", _poll(ep, names, guard, 0), [])
        c1.sendall(b"ping")
        c2.sendall(b"ping")
        t.note("the peers send 'ping' to lt and to et")
        seen = set()
        end = time.monotonic() + 2
        while len(seen) < 2 and time.monotonic() < end:
            seen.update(_poll(ep, names, guard, 0.05))
        t.expect("poll() until both reported", sorted(seen), [("et", "IN"), ("lt", "IN")])
        t.expect("poll(0) again, nothing read (level-triggered stays)", _poll(ep, names, guard, 0),
                 [("lt", "IN")])
        et.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sent = et.send(bytes(65536))
        t.note("et, with a 2 KiB send buffer, sends what fits of 64 KiB: the buffer is full")
        t.expect("et.send(64 KiB) stopped short", sent < 65536, True)
        got = 0
        while got < sent:
            got += len(c2.recv(65536))
        t.note("the peer reads it all; its ACK frees the buffer and wakes et's wait queue about EPOLLOUT only")
        conn = et._conn
        _until(lambda: conn.snd_una == conn.snd_nxt)
        time.sleep(0.02)  # the wake-up is delivered after the ACK is processed
        t.expect("poll(0.1) after the ACK", _poll(ep, names, guard, 0.1), [("lt", "IN")])
        t.expect("lt.recv(100)", lt.recv(100), b"ping")
        t.expect("poll(0) after lt was drained", _poll(ep, names, guard, 0), [])
        c2.sendall(b"more")
        t.note("the peer sends 'more' to et: a new arrival, a new edge")
        t.expect("poll(1)", _poll(ep, names, guard, 1), [("et", "IN")])
        ep.close()


def check_oneshot_through_epoll(part, t, o):
    """epoll_ctl(2) EPOLLONESHOT through the stack: after one report the entry stays off the ready
    list whatever arrives, until EPOLL_CTL_MOD re-arms it."""
    from ..epoll import epoll
    with _stacks(part, o) as (a, b, guard):
        c, s = _pair(a, b, 7903)
        ep = epoll(b)
        names = {id(s): "s"}
        ep.register(s, EPOLLIN | EPOLLONESHOT)
        t.note("epoll on host b: s registered EPOLLIN|EPOLLONESHOT; the peer sends 'x'")
        c.sendall(b"x")
        t.expect("poll(1)", _poll(ep, names, guard, 1), [("s", "IN")])
        c.sendall(b"y")
        t.note("the peer sends 'y' (the entry fired: disabled)")
        conn = s._conn
        _until(lambda: len(conn.rcvbuf) >= 2)
        time.sleep(0.02)  # the wake-up is delivered after the segment is processed
        t.expect("items on the ready list after 'y' arrived", len(ep.rdllist), 0)
        t.expect("poll(0.1)", _poll(ep, names, guard, 0.1), [])
        ep.modify(s, EPOLLIN | EPOLLONESHOT)
        t.note("epoll_ctl(MOD, s, EPOLLIN|EPOLLONESHOT): re-armed, and still readable")
        t.expect("poll(0)", _poll(ep, names, guard, 0), [("s", "IN")])
        t.expect("s.recv(10)", s.recv(10), b"xy")
        ep.close()


def check_echo_server(part, t, o):
    """End to end: the one-thread, edge-triggered echo server of lab 4 (stack.apps.epoll_echo) on
    your callback serves four clients at once; every byte comes back, in order."""
    from ..apps.epoll_echo import EpollEchoServer
    nbytes = max(4096, min(o["e2e_bytes"], 1 << 20) // 4)
    with _stacks(part, o) as (a, b, guard):
        server = EpollEchoServer(b, 7904)
        th = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        th.start()
        t.note(f"4 clients each send {nbytes} bytes to the epoll echo server and read the echo")
        results = {}

        def client(i):
            data = random.Random(i).randbytes(nbytes)
            sock = a.socket()
            sock.settimeout(5)
            got = bytearray()
            try:
                sock.connect(("192.0.2.2", 7904))
                sender = threading.Thread(target=lambda: (sock.sendall(data), sock.shutdown(1)), daemon=True)
                sender.start()
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    got += chunk
                sender.join(5)
            except OSError as exc:
                results[i] = f"{len(got)} bytes back, then {exc!r}"
            else:
                ok = hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
                results[i] = "byte-exact" if ok else f"{len(got)} bytes back, not what was sent"
            finally:
                sock.close()

        clients = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(4)]
        try:
            for th_c in clients:
                th_c.start()
            for th_c in clients:
                th_c.join(20)
        finally:
            server.shutdown()
            th.join(5)
            server.server_close()
        guard.reraise()
        t.expect("each client's echo", [results.get(i, "no answer") for i in range(4)], ["byte-exact"] * 4)


EXERCISE = Exercise(
    number=9, slug="epoll", title="epoll's ready-list callback", lab="docs/labs/04-blocking-vs-epoll.md",
    clauses=["epoll(7)", "epoll_ctl(2) (EPOLLERR/EPOLLHUP, EPOLLONESHOT)", "Linux fs/eventpoll.c ep_poll_callback"],
    filename="epoll_callback.py", names=["ep_poll_callback"], skeleton=SKELETON, reference=reference,
    replacements=replacements,
    wiring="installed for ep_poll_callback in stack.epoll (epoll._ep_poll_callback, run on every wake-up "
           "of a registered socket's wait queue)",
    checks=[
        Check("ready_item_queued", "unit", check_ready_item_queued.__doc__, check_ready_item_queued),
        Check("queued_at_most_once", "unit", check_queued_once.__doc__, check_queued_once),
        Check("unwanted_key_ignored", "unit", check_unwanted_key_ignored.__doc__, check_unwanted_key_ignored),
        Check("not_ready_not_queued", "unit", check_not_ready.__doc__, check_not_ready),
        Check("err_hup_always", "unit", check_err_hup_always.__doc__, check_err_hup_always),
        Check("oneshot_disabled", "unit", check_oneshot_disabled.__doc__, check_oneshot_disabled),
        Check("level_and_edge_through_epoll", "packet", check_level_and_edge_through_epoll.__doc__,
              check_level_and_edge_through_epoll, timeout=10.0),
        Check("oneshot_through_epoll", "packet", check_oneshot_through_epoll.__doc__,
              check_oneshot_through_epoll, timeout=10.0),
        Check("echo_server", "e2e", check_echo_server.__doc__, check_echo_server, timeout=60.0),
    ],
)
