"""An in-memory point-to-point link: two ends of a ``socketpair``.

``a, b = SocketPairLink.pair()`` gives two links with the TunLink API: a packet written
to ``a`` is read from ``b`` and vice versa. ``SOCK_SEQPACKET`` keeps packet boundaries
and order, and has a real fd, so a stack's event loop waits on it exactly as on a TUN.
Two real-time stacks in one process can talk over it with no root and no kernel routing.

Like a real link it has an MTU: a packet longer than ``mtu`` is dropped and counted
(``stats["tx_drop_toobig"]``), and a full queue drops (``tx_drop_full``) instead of
blocking.
"""
from __future__ import annotations

import errno
import itertools
import socket

from stack.link.tun import MAX_PACKET, FdLink

_names = itertools.count()
SOCKET_BUFFER = 1 << 20  # ask for 1 MiB each way (the kernel caps it at wmem_max)


class SocketPairLink(FdLink):
    """One end of an in-memory link; build a connected pair with :meth:`pair`."""

    def __init__(self, sock: socket.socket, mtu: int = 1500, name: str | None = None):
        super().__init__(name or f"mem{next(_names)}", mtu)
        sock.setblocking(False)
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
            except OSError:
                pass
        self._sock = sock
        self._fd = sock.fileno()

    @classmethod
    def pair(cls, mtu: int = 1500) -> tuple["SocketPairLink", "SocketPairLink"]:
        """Two connected ends: what ``a`` writes, ``b`` reads, and the other way."""
        sa, sb = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        n = next(_names)
        return cls(sa, mtu, f"mem{n}a"), cls(sb, mtu, f"mem{n}b")

    def _recv(self) -> bytes:
        return self._sock.recv(MAX_PACKET)

    def _send(self, packet: bytes) -> None:
        if len(packet) > self.mtu:
            raise OSError(errno.EMSGSIZE, "packet longer than the link MTU")  # -> drop
        self._sock.send(packet, socket.MSG_NOSIGNAL)

    def close(self) -> None:
        """Close this end; the peer then reads EOF (``read_batch`` returns [])."""
        if self._fd >= 0:
            self._fd = -1
            self._sock.close()
