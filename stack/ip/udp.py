"""UDP (RFC 768) for sockets, sans-I/O: the bind table, receive queues, ICMP errors, as Linux does it.

``UdpLayer`` sits on the IP layer (the netstack registers ``datagram_arrives`` as the handler of
protocol 17 and ``icmp_error_arrives`` as UDP's ICMP error handler). Each socket owns one
``UdpEndpoint``: its local and (once connected) remote address, its receive queue bounded in
bytes like ``SO_RCVBUF`` and its pending error (Linux's ``sk_err``). An arriving datagram goes
to the best-matching endpoint (``lookup``: a connected, address-bound socket beats a wildcard
one, as Linux's ``compute_score``), to a raw port handler (``IpLayer.udp_handlers``), or is
answered with ICMP port unreachable (rate-limited). Wake-ups go through ``endpoint.notify``, which
the runtime queues and delivers after processing. Drops are counted in the IP layer's ``stats``.
"""
from __future__ import annotations

import errno
import random
from collections import deque

from ..wire import icmp as icmpw
from ..wire.udp import parse_udp
from .layer import IpLayer

EPHEMERAL = (32768, 60999)      # Linux's default ip_local_port_range
MAX_PAYLOAD = 65507             # 65535 - 20 (IPv4 header) - 8 (UDP header)
RMEM_DEFAULT = 212992           # Linux net.core.rmem_default / wmem_default: SO_RCVBUF before any setsockopt
WMEM_DEFAULT = 212992
TRUESIZE_OVERHEAD = 576         # SKB_TRUESIZE(0) on x86-64: what each queued datagram costs beyond its bytes
WILDCARD = bytes(4)

# RFC 1122 3.2.2.1 / Linux icmp_err_convert[]: destination unreachable code -> (errno, hard error)
UNREACH_ERRORS = {
    0: (errno.ENETUNREACH, False), 1: (errno.EHOSTUNREACH, False), 2: (errno.ENOPROTOOPT, True),
    3: (errno.ECONNREFUSED, True), 4: (errno.EMSGSIZE, False), 5: (errno.EOPNOTSUPP, False),
    6: (errno.ENETUNREACH, True), 7: (errno.EHOSTDOWN, True), 8: (errno.ENONET, True),
    9: (errno.ENETUNREACH, True), 10: (errno.EHOSTUNREACH, True), 11: (errno.ENETUNREACH, False),
    12: (errno.EHOSTUNREACH, False), 13: (errno.EHOSTUNREACH, True), 14: (errno.EHOSTUNREACH, True),
    15: (errno.EHOSTUNREACH, True),
}


def _oserror(code: int, what: str) -> OSError:
    return OSError(code, what)


class UdpEndpoint:
    """One UDP socket's protocol state (Linux's ``struct udp_sock`` minus the socket)."""

    __slots__ = ("local", "remote", "rcvq", "rcvq_bytes", "rcvbuf", "error", "reuse", "notify", "drops", "locks",
                 "ip_fields")

    def __init__(self, rcvbuf: int = RMEM_DEFAULT):
        self.local: tuple[bytes, int] | None = None    # (addr, port) once bound
        self.remote: tuple[bytes, int] | None = None   # the default peer once connected
        self.rcvq: deque = deque()                     # (src addr, src port, payload) in arrival order
        self.rcvq_bytes = 0                            # charged like sk_rmem_alloc (truesize)
        self.rcvbuf = rcvbuf
        self.error = 0                                 # sk_err: reported once by the next call
        self.reuse = False                             # SO_REUSEADDR
        self.notify = lambda what="": None
        self.drops = 0
        self.locks = (False, False)                    # bind() chose (the address, the port): SOCK_BIND*_LOCK
        self.ip_fields: tuple[int, int] | None = None  # (TTL, TOS) from IP_TTL/IP_TOS; None: 64, 0

    @property
    def connected(self) -> bool:
        return self.remote is not None

    def take_error(self) -> int:
        """sock_error(): the pending error, cleared as it is read."""
        err, self.error = self.error, 0
        return err

    def pop(self) -> tuple[bytes, int, bytes]:
        src, sport, payload = self.rcvq.popleft()
        self.rcvq_bytes -= len(payload) + TRUESIZE_OVERHEAD
        return src, sport, payload


class UdpLayer:
    def __init__(self, ip: IpLayer, rng: random.Random | None = None):
        self.ip = ip
        self.stats = ip.stats
        self.ports: dict[int, list[UdpEndpoint]] = {}   # port -> endpoints bound to it, oldest first
        self.handlers = ip.udp_handlers                 # raw port handlers (tools, tests): after sockets
        self._next_port = (rng or random.Random()).randint(*EPHEMERAL)

    # ------------------------------------------------------------ bind table
    def bind(self, ep: UdpEndpoint, addr: bytes, port: int) -> None:
        """bind(2): EINVAL when bound, EADDRNOTAVAIL for a foreign address, EADDRINUSE on a conflict
        (Linux udp_lib_lport_inuse: the same port with an overlapping address, unless both set SO_REUSEADDR)."""
        if ep.local is not None:
            raise _oserror(errno.EINVAL, "already bound")
        if addr not in (WILDCARD, self.ip.address):
            raise _oserror(errno.EADDRNOTAVAIL, "not an address of this stack")
        locks = (addr != WILDCARD, port != 0)
        if port == 0:
            port = self._ephemeral(addr)
        elif self._conflicts(ep, addr, port):
            raise _oserror(errno.EADDRINUSE, "Address already in use")
        ep.local, ep.locks = (addr, port), locks
        self.ports.setdefault(port, []).append(ep)

    def _conflicts(self, ep: UdpEndpoint, addr: bytes, port: int) -> bool:
        for other in self.ports.get(port, ()):
            a = other.local[0]
            if (a == addr or a == WILDCARD or addr == WILDCARD) and not (ep.reuse and other.reuse):
                return True
        return False

    def _ephemeral(self, addr: bytes) -> int:
        lo, hi = EPHEMERAL
        for _ in range(hi - lo + 1):
            port = self._next_port
            self._next_port = lo if port >= hi else port + 1
            if port not in self.ports:
                return port
        raise _oserror(errno.EAGAIN, "no free ephemeral UDP port")  # Linux udp_lib_get_port: EAGAIN

    def unbind(self, ep: UdpEndpoint) -> None:
        if ep.local is None:
            return
        port = ep.local[1]
        bound = self.ports.get(port, [])
        if ep in bound:
            bound.remove(ep)
        if not bound:
            self.ports.pop(port, None)

    def connect(self, ep: UdpEndpoint, remote: tuple[bytes, int]) -> None:
        """ip4_datagram_connect: autobind, fix the local address to the route's source, set the peer."""
        if ep.local is None:
            self.bind(ep, WILDCARD, 0)
        if ep.local[0] == WILDCARD:
            ep.local = (self.ip.address, ep.local[1])  # inet_rcv_saddr = fl4->saddr (rehash)
        ep.remote = remote

    def disconnect(self, ep: UdpEndpoint) -> None:
        """connect(AF_UNSPEC) (udp_disconnect): no peer; what bind() did not choose is forgotten:
        the local address goes back to the wildcard, an autobound port is released."""
        ep.remote = None
        if ep.local is None:
            return
        addr_locked, port_locked = ep.locks
        if not addr_locked:
            ep.local = (WILDCARD, ep.local[1])
        if not port_locked:
            self.unbind(ep)
            ep.local = None

    def lookup(self, dst: bytes, dport: int, src: bytes, sport: int) -> UdpEndpoint | None:
        """The endpoint for a datagram (Linux compute_score): local address and peer must match when set;
        a specific match scores higher; among equals the most recently bound wins."""
        best, best_score = None, -1
        for ep in self.ports.get(dport, ()):
            a = ep.local[0]
            if a != WILDCARD and a != dst:
                continue
            score = 4 if a != WILDCARD else 0
            if ep.remote is not None:
                if ep.remote != (src, sport):
                    continue
                score += 8
            if score >= best_score:
                best, best_score = ep, score
        return best

    # ------------------------------------------------------------ input
    def datagram_arrives(self, hdr, payload, now: float, trusted: bool = False) -> None:
        """RFC 768 / RFC 1122 4.1.3: checksum (0 = none in IPv4), demultiplex, queue or refuse."""
        dgram = parse_udp(payload, None, None) if trusted else parse_udp(payload, hdr.src, hdr.dst)
        self.stats["udp_in"] += 1
        ep = self.lookup(hdr.dst, dgram.dport, hdr.src, dgram.sport)
        if ep is not None:
            self.enqueue(ep, hdr.src, dgram.sport, dgram.payload, now)
            return
        handler = self.handlers.get(dgram.dport)
        if handler is not None:
            handler(hdr.src, dgram.sport, hdr.dst, dgram.dport, dgram.payload, now)
            return
        # RFC 1122 4.1.3.1: no one there -> ICMP port unreachable (rate-limited by the IP layer)
        self.ip.drop("udp_port_unreachable", now)
        self.ip.icmp_error(icmpw.DEST_UNREACH, icmpw.CODE_PORT_UNREACH, hdr, payload, now)

    def enqueue(self, ep: UdpEndpoint, src: bytes, sport: int, data: bytes, now: float) -> None:
        """__udp_enqueue_schedule_skb: drop when what is queued already exceeds SO_RCVBUF."""
        if ep.rcvq_bytes > ep.rcvbuf:
            ep.drops += 1
            self.ip.drop("udp_rcvbuf_full", now)
            return
        ep.rcvq.append((src, sport, data))
        ep.rcvq_bytes += len(data) + TRUESIZE_OVERHEAD
        self.stats["udp_delivered"] += 1
        ep.notify("readable")

    def icmp_error_arrives(self, type_: int, code: int, rest: int, src: bytes, dst: bytes, quoted: bytes,
                           now: float) -> None:
        """__udp4_lib_err: an ICMP error about a datagram we sent (src:sport -> dst:dport quoted).
        Only a hard error reaches a connected socket's sk_err; unconnected sockets ignore it."""
        if len(quoted) < 4:
            return
        sport, dport = int.from_bytes(quoted[0:2], "big"), int.from_bytes(quoted[2:4], "big")
        ep = self.lookup(src, sport, dst, dport)
        if ep is None or not ep.connected:
            self.stats["udp_icmp_error_ignored"] += 1
            return
        if type_ == icmpw.DEST_UNREACH and code in UNREACH_ERRORS:
            err, hard = UNREACH_ERRORS[code]
        else:
            err, hard = errno.EHOSTUNREACH, False  # time exceeded: a soft error
        if not hard:
            self.stats["udp_icmp_error_soft"] += 1
            return
        self.report_error(ep, err)

    def report_error(self, ep: UdpEndpoint, err: int) -> None:
        ep.error = err
        self.stats["udp_icmp_error_reported"] += 1
        ep.notify("error")

    # ------------------------------------------------------------ output
    def sendto(self, ep: UdpEndpoint, data, dst: tuple[bytes, int] | None, now: float) -> int:
        """udp_sendmsg: EMSGSIZE above 65,507 bytes; autobind; to our own address: straight to the input."""
        if len(data) > MAX_PAYLOAD:
            raise _oserror(errno.EMSGSIZE, "Message too long")
        if dst is None:
            dst = ep.remote
        if ep.local is None:
            self.bind(ep, WILDCARD, 0)
        addr, dport = dst
        sport = ep.local[1]
        self.stats["udp_out"] += 1
        if addr == self.ip.address:
            self._loopback(ep, addr, dport, bytes(data), now)
        else:
            self.ip.send_udp(sport, addr, dport, bytes(data), now, ep.ip_fields)
        return len(data)

    def _loopback(self, ep: UdpEndpoint, addr: bytes, dport: int, data: bytes, now: float) -> None:
        """A datagram to ourselves (the kernel's lo): delivered, or refused as ICMP would refuse it."""
        me = self.ip.address
        target = self.lookup(addr, dport, me, ep.local[1])
        if target is not None:
            self.enqueue(target, me, ep.local[1], data, now)
        elif ep.connected and ep.remote == (addr, dport):
            self.ip.drop("udp_port_unreachable", now)
            self.report_error(ep, errno.ECONNREFUSED)
        else:
            self.ip.drop("udp_port_unreachable", now)
