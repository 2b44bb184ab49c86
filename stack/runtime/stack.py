"""The runtime: one stack thread that plays the kernel's softirq, and the lock that guards state.

The protocol objects (``Host`` and below) do no I/O and read no clock. This module owns the
thread, the link's file descriptor, the clock and the wake-ups:

- the stack thread waits on the link fd and a wake-up pipe, reads a batch of packets until
  EAGAIN, hands each to the netstack, runs due timers, then PULLS the output once
  (``_transmit``: ``NetStack.take_output`` drains every connection with work) and delivers the
  wake-ups queued meanwhile;
- application threads call into the same objects under ``Stack.lock`` (as the kernel's
  process context does under the socket lock), through the narrow facade below (``call``,
  ``connect``, ``listen``, ...): each socket call ends in exactly one call into the runtime,
  which pulls that call's output, re-arms the loop's timer and delivers wake-ups;
- sockets sleep on per-socket wait queues (``threading.Condition`` over that lock). The
  protocol objects never wake them directly: ``deferred(fn)`` gives them a notifier that
  queues the wake-up, delivered after the segment (or timer, or call) has been processed,
  never in the middle of it.
"""
from __future__ import annotations

import errno
import functools
import itertools
import os
import random
import secrets
import select
import threading
import time

from ..link.tun import MAX_PACKET, VNET_HDR_LEN, TunLink
from ..netstack import NetStack
from ..tcp.config import TcpConfig
from ..tcp.isn import IsnGenerator
from ..tcp.states import State
from ..trace import NULL_TRACER, Tracer
from ..wire.ipv4 import aton
from .memtrim import MemoryTrimmer

# packets read (until EAGAIN) and processed before the output is pulled: a turn's fixed cost (the
# wake-up, the ACK and its write, the reader's wake-up, timers) spread over up to this many; a
# quarter of the TUN queue (netconf.TXQUEUELEN), about 5 ms of work at MTU 1500 (docs/benchmarks.md)
MAX_BATCH = 1024
# a connection in these states owes the peer nothing more: all our data and our FIN are acknowledged
_FINISHED = (State.CLOSED, State.TIME_WAIT, State.FIN_WAIT_2)


class Stack:
    """A running stack on a link: ``with Stack(link=..., address="192.0.2.2") as st: s = st.socket()``."""

    socket_type = None  # the class Stack.socket() makes: registered by stack/socket.py (never imported here)
    socket_types: dict = {}  # other socket types by SOCK_* (SOCK_DGRAM: stack/udpsocket.py registers itself)

    def __init__(self, link, address: str = "192.0.2.2", *, mtu: int | None = None,
                 tcp_config: TcpConfig | None = None, tracer: Tracer | None = None, seed: int | None = None,
                 impair_in=None, impair_out=None, pcap=None, isn=None, clock=time.monotonic):
        self.link = link
        self.address = aton(address)
        self.address_str = address
        self.mtu = mtu or getattr(link, "mtu", 1500)
        self.tracer = tracer or NULL_TRACER
        self.clock = clock
        self.rng = random.Random(seed)
        if isn is None and seed is None:
            isn = IsnGenerator(secret=secrets.token_bytes(16))  # RFC 6528: an unguessable key
        self.host = NetStack(self.address, self.mtu, tcp_config, self.tracer, self.rng, isn)
        self.offload = bool(getattr(link, "offload", False))
        if self.offload:
            if impair_in is not None or impair_out is not None:
                raise ValueError("impairment needs plain packets: use it without TUN offload")
            self.host.set_offload(True)
        self._skip = 10 if self.offload else 0  # the virtio-net header is not part of a pcap
        self.lock = threading.RLock()
        self.impair_in, self.impair_out = impair_in, impair_out
        self.pcap = pcap
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._sleep_until = 0.0
        self._running = False
        self._thread: threading.Thread | None = None
        self.loop_error: BaseException | None = None
        self._wakeups: dict = {}  # (callback, what) -> None: queued wake-ups, in order, no duplicates
        self.closing = False  # set by abort_all: errors sleepers see from now on are the stack's own resets
        self.memtrim = MemoryTrimmer(self.host.tcp.compact)  # memory back once the table drained (memtrim.py)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> "Stack":
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="tunstack", daemon=True)
        self._thread.start()
        return self

    def __enter__(self) -> "Stack":
        return self.start() if not self._running else self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self, linger: float = 0.0) -> None:
        """Stop the stack thread. With ``linger``, first give open connections that long to finish
        (``drain``); whatever is still unfinished then is reset (``abort_all``)."""
        if linger:
            self.drain(linger)
        self.abort_all()
        self._running = False
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._wake_r = self._wake_w = -1

    def drain(self, timeout: float, cancel: threading.Event | None = None) -> int:
        """Wait up to ``timeout`` s (or until ``cancel`` is set) for every connection to finish:
        all its data and its FIN sent and acknowledged (``unfinished``). Returns how many are
        still unfinished. The stack keeps running meanwhile; nothing is reset here."""
        deadline = self.clock() + timeout
        while True:
            left = len(self.unfinished())
            if not left or self.clock() >= deadline or (cancel is not None and cancel.is_set()):
                return left
            if cancel is not None:
                cancel.wait(0.02)
            else:
                time.sleep(0.02)

    def unfinished(self) -> list:
        """Connections that still owe or are owed something: any state but CLOSED, TIME-WAIT and
        FIN-WAIT-2 (our FIN acknowledged: every byte we had to send has arrived)."""
        with self.lock:
            return [c for c in self.host.tcp.conns.values() if c.state not in _FINISHED]

    def abort_all(self, why: str = "stack closing") -> int:
        """Reset every unfinished connection (RFC 9293 3.10.5 ABORT), close every listener, and
        wake whoever sleeps on them with ECONNABORTED, as Linux's tcp_abort() does: the stack
        made this reset itself, so sleepers are not told that the peer reset them (ECONNRESET).
        Sets ``closing``. Returns how many connections were reset."""
        with self.lock:
            self.closing = True
            if self._wake_w < 0:
                return 0
            now = self.clock()
            tcp = self.host.tcp
            reset = 0
            for conn in list(tcp.conns.values()):
                if conn.state not in _FINISHED:
                    conn.abort(now, why)
                    conn.error = conn.error or errno.ECONNABORTED  # what sleepers on it are told
                    conn.notify("error")
                    tcp.after_user_call(conn, now)
                    reset += 1
            for lst in list(tcp.listeners.values()):
                lst.closed = True
                lst.notify("closed")
            self._transmit(now)
            return reset

    def socket(self, family=None, type=None, proto=0):
        """A socket on this stack (``stack.socket.socket``)."""
        if Stack.socket_type is None:
            raise RuntimeError("no socket type registered: import stack.socket first")
        return Stack.socket_types.get(type, Stack.socket_type)(self, family, type, proto)

    def now(self) -> float:
        return self.clock()

    # ------------------------------------------------------------ the socket facade (lock held)
    @property
    def tcp_config(self) -> TcpConfig:
        return self.host.tcp.config

    def call(self, conn, fn, *args):
        """Run one user call on ``conn`` (``fn(*args, now)``), then end it: the connection's output
        is sent, the loop's timer re-armed, the wake-ups delivered. Returns what ``fn`` returned."""
        now = self.clock()
        try:
            return fn(*args, now)
        finally:
            self.host.tcp.after_user_call(conn, now)
            self._end_call(now)

    def connect(self, local: tuple[bytes, int], remote: tuple[bytes, int], setup=None):
        """Active open (RFC 9293 3.10.1); ``setup(conn)`` sets options before the SYN goes out."""
        now = self.clock()
        conn = self.host.tcp.connect(local, remote, now, setup)
        self._end_call(now)
        return conn

    def listen(self, addr: bytes, port: int, backlog: int, reserved: bool = False):
        return self.host.tcp.listen(addr, port, backlog, reserved)

    def unlisten(self, lst) -> None:
        """Close a listening socket (resets the connections not yet accepted)."""
        now = self.clock()
        self.host.tcp.unlisten(lst, now)
        self._end_call(now)

    def bind(self, local: tuple[bytes, int]) -> None:
        self.host.tcp.bind(local)

    def unbind(self, local: tuple[bytes, int]) -> None:
        self.host.tcp.unbind(local)

    def port_in_use(self, addr: bytes, port: int) -> bool:
        return self.host.tcp.port_in_use(addr, port)

    def connections_on(self, port: int) -> list:
        """The connections (any state, TIME-WAIT included) whose local port is ``port``: bind()'s rules."""
        return [c for c in self.host.tcp.conns.values() if c.local[1] == port]

    def allocate_port(self, addr: bytes, remote: tuple[bytes, int]) -> int:
        return self.host.tcp.allocate_port(addr, remote)

    def udp_call(self, fn, *args):
        """One user call into the UDP layer (``fn(*args, now)`` on ``self.host.udp``), ended like every call."""
        now = self.clock()
        try:
            return fn(*args, now)
        finally:
            self._end_call(now)

    @property
    def udp(self):
        """The UDP layer (stack/ip/udp.py): its bind table calls need no clock (lock held)."""
        return self.host.udp

    def deferred(self, wake):
        """A notifier for the protocol objects (``conn.notify``, ``listener.notify``): it queues
        ``wake(what)``, delivered once the current segment, timer or call has been processed."""
        queue = self._wakeups

        def notify(what: str = "") -> None:
            queue[(wake, what)] = None
        return notify

    def _end_call(self, now: float) -> None:
        """The one ending of every user call: send its output, re-arm the loop's timer, deliver wake-ups."""
        self._transmit(now)
        deadline = self.host.next_deadline()
        if deadline is not None and deadline < self._sleep_until:
            self._wake()

    def _transmit(self, now: float) -> None:
        """Pull the output (every connection with work) and write it; then deliver the wake-ups."""
        self._write(self.host.take_output(now), now)
        self._deliver_wakeups()

    def _deliver_wakeups(self) -> None:
        for _ in range(16):  # a wake-up may queue another; bounded all the same
            if not self._wakeups:
                return
            pending = list(self._wakeups)
            self._wakeups.clear()
            for wake, what in pending:
                wake(what)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    # ------------------------------------------------------------ the loop
    def _loop(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # surfaced to the CLI and tests, never silently lost
            self.loop_error = exc
            if self.tracer.enabled:
                self.tracer.emit("stack_error", self.clock(), error=repr(exc))
            raise

    def _run(self) -> None:
        link = self.link
        link_fd = link.fileno()
        host, clock, lock, wake_r = self.host, self.clock, self.lock, self._wake_r
        read_one, write_one, direct = self._first_io()
        answer_ping, link_stats, timers_due = host.answer_ping, link.stats, host.timers_due
        memtrim, conns = self.memtrim, host.tcp.conns  # both fixed for the stack's life
        poller = select.poll()
        poller.register(link_fd, select.POLLIN)
        poller.register(wake_r, select.POLLIN)
        with lock:
            timeout = self._poll_timeout()
        while self._running:
            events = poller.poll(timeout)
            if not self._running:
                break
            for fd, _ in events:
                if fd == wake_r:
                    try:
                        os.read(wake_r, 4096)
                    except BlockingIOError:
                        pass
            try:  # the loop alone reads the link: the first packet needs no lock
                first = read_one()
            except BlockingIOError:
                first = None
            with lock:  # one turn, one lock hold: read, timers, output, and the next sleep's length
                got = first is not None
                plain = self.pcap is None and self.impair_in is None and self.impair_out is None
                if got and plain:
                    reply = answer_ping(first)  # a lone ping: answered before the clock, the batch, TCP
                    if reply is not None:
                        try:
                            write_one(reply)
                        except OSError:  # the TUN's own write: once more through the link, which counts a drop
                            link.write(reply)
                        else:
                            if direct:
                                link_stats["tx_packets"] += 1
                        host.ping_answered()  # counted once written: counters cost time when caches are cold
                        first = None
                now = clock()
                if got:
                    if direct:
                        link_stats["rx_packets"] += 1
                    self._read_packets(now, first, plain, read_one, direct)
                if not plain:
                    self._deliver_impaired_in(now)
                if timers_due(now):  # a lower bound first: the exact deadline costs a walk of the timers
                    deadline = host.next_deadline()
                    if deadline is not None and deadline <= now:
                        host.on_timers(now)
                self._transmit(now)
                memtrim.observe(len(conns), now)  # housekeeping: trim once the table drained
                timeout = self._poll_timeout()

    def _first_io(self):
        """How the loop reads a turn's first packet (raising BlockingIOError if none is waiting) and
        writes a ping's reply, and whether both bypass the link's counters (the loop then counts).
        A TUN device: ``os.read`` and ``os.write`` themselves, one packet per call (with offloads the
        virtio-net header is part of it, as in ``TunLink.read_batch``), the least code between the
        wake-up and a ping's reply (docs/benchmarks.md, *Ping*); any other link: its
        ``read_batch(1)`` and ``write``."""
        link = self.link
        if type(link) is TunLink:
            fd = link.fileno()
            return (functools.partial(os.read, fd, MAX_PACKET + VNET_HDR_LEN), functools.partial(os.write, fd),
                    True)

        def read_one():
            got = link.read_batch(1)
            if not got:
                raise BlockingIOError
            return got[0]
        return read_one, link.write, False

    def _poll_timeout(self) -> int:
        """Milliseconds until the next timer (host, impairment, or an owed memory trim), -1 for none."""
        deadline = self.host.next_deadline()
        trim = self.memtrim.next_deadline()
        if trim is not None and (deadline is None or trim < deadline):
            deadline = trim
        if self.impair_in is not None or self.impair_out is not None:
            for imp in (self.impair_in, self.impair_out):
                other = imp.next_deadline() if imp is not None else None
                if other is not None and (deadline is None or other < deadline):
                    deadline = other
        if deadline is None:
            self._sleep_until = float("inf")
            return -1
        self._sleep_until = deadline
        return max(0, int((deadline - self.clock()) * 1000) + 1)

    def _read_packets(self, now: float, first, plain: bool, read_one, direct: bool) -> None:
        """The softirq's read: the loop read the turn's ``first`` packet (None: it was a ping, answered
        already: ``NetStack.answer_ping``); the rest are read until EAGAIN, at most MAX_BATCH in
        all (the output and the ACKs they owe are pulled once, after the batch: ``_transmit``). On
        the plain path the rest go to ``NetStack.receive_batch`` as they are read, which merges what
        it can (GRO).

        The first packet is processed alone, and what the IP layer answered to it (an ICMP error,
        a ping under pcap or impairment) is written at once. TCP's output waits for the whole batch.
        The second is read as the first was (``read_one``, counted here if ``direct``): the usual
        turn ends with its EAGAIN (a slow reader's window update comes alone), before any batch is set up."""
        link, host = self.link, self.host
        if first is not None:
            if plain:
                host.receive(first, now)  # the plain path (nothing to record or to impair)
                if host.ip.outq:
                    link.write_batch(host.take_ip_output())
            else:
                self._receive([first], now)
                if host.ip.outq:
                    self._write(host.take_ip_output(), now)
        if plain:  # each packet processed as soon as it is read (still in the cache); GRO over the turn
            try:
                second = read_one()
            except BlockingIOError:
                return
            if direct:
                link.stats["rx_packets"] += 1
            host.receive_batch(itertools.chain((second,), link.read_iter(MAX_BATCH - 2)), now)
            return
        rest = link.read_batch(MAX_BATCH - 1)
        if rest:
            self._receive(rest, now)

    def _receive(self, batch: list, now: float) -> None:
        host, pcap, imp = self.host, self.pcap, self.impair_in
        if pcap is None and imp is None:  # the plain path: nothing to record or to impair
            receive = host.receive
            for packet in batch:
                receive(packet, now)
            return
        for packet in batch:
            if pcap is not None:
                pcap.write(packet[self._skip:], time.time())
            if imp is not None:
                imp.offer(packet, now)
            else:
                host.receive(packet, now)

    def _deliver_impaired_in(self, now: float) -> None:
        if self.impair_in is not None:
            for packet in self.impair_in.poll(now):
                self.host.receive(packet, now)

    def _write(self, packets: list, now: float) -> None:
        """Send packets through the outbound impairment (if any), which may also release older ones."""
        if self.impair_out is not None:
            for packet in packets:
                self.impair_out.offer(packet, now)
            packets = self.impair_out.poll(now)
        if not packets:
            return
        if self.pcap is not None:
            wall = time.time()
            for packet in packets:
                if type(packet) is tuple:  # (headers, payload) from an offloaded segment
                    packet = bytes(packet[0]) + bytes(packet[1])
                self.pcap.write(packet[self._skip:], wall)
        self.link.write_batch(packets)

    # ------------------------------------------------------------ observability
    def connections(self) -> list[dict]:
        """An ``ss -ti``-like snapshot of every connection."""
        with self.lock:
            return [c.info() for c in self.host.tcp.conns.values()]

    def stats(self) -> dict:
        with self.lock:
            out = dict(self.host.stats)
            out.update({"tcp:" + k: v for k, v in self.host.tcp.stats.items()})
            return out
