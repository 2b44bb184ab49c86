"""A Linux TUN device as a packet link, plus the small base every fd-backed link shares.

The kernel sees an ordinary IPv4 interface (say ``tun0``); every packet it routes there
is one ``read`` on our fd, and every ``write`` we make is a packet the kernel receives
on that interface. With ``IFF_NO_PI`` each read/write is exactly one raw IP packet, no
4-byte packet-information header.

Every link (this one, :class:`stack.link.memory.SocketPairLink`) has the same API::

    link.fileno()              # fd to wait on with select/poll/epoll
    link.mtu, link.name
    link.read_batch(64)        # non-blocking: up to 64 packets, [] if none waiting
    link.write(pkt)            # never raises for a full queue / down link: counts a drop
    link.write_batch(pkts)
    link.stats                 # Counter: rx_packets, tx_packets, tx_drop_<reason>, ...
    link.close()               # idempotent; a non-persistent TUN device vanishes with it
"""
from __future__ import annotations

import errno
import fcntl
import os
import struct
from collections import Counter

TUN_PATH = "/dev/net/tun"
TUNSETIFF = 0x400454CA  # _IOW('T', 202, int)
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUNSETOFFLOAD = 0x400454D0  # _IOW('T', 208, unsigned int)
TUN_F_CSUM = 0x01           # we accept packets whose checksum is unfinished
TUN_F_TSO4 = 0x02           # we accept IPv4 TCP super-segments (the kernel skips segmentation)
VNET_HDR_LEN = 10           # struct virtio_net_hdr (stack.wire.vnet)
IFNAMSIZ = 16
MAX_PACKET = 65535  # largest IPv4 datagram: reading with this never truncates

# errno of a write -> drop reason. These are conditions of the moment, not bugs in the
# caller's code, so a write never raises for them (a real NIC drops too).
_TX_DROP_REASONS = {
    errno.EAGAIN: "tx_drop_full",    # kernel queue full (non-blocking fd)
    errno.ENOBUFS: "tx_drop_full",
    errno.EIO: "tx_drop_down",       # TUN interface is administratively down
    errno.EPIPE: "tx_drop_down",     # socketpair peer closed
    errno.ECONNREFUSED: "tx_drop_down",
    errno.ECONNRESET: "tx_drop_down",
    errno.EINVAL: "tx_drop_invalid",  # TUN rejects a packet whose version nibble is not 4/6
    errno.EMSGSIZE: "tx_drop_toobig",
}


class LinkError(OSError):
    """A link could not be opened; the message says why and what to do."""


class FdLink:
    """Shared machinery of a packet link over one non-blocking fd.

    Subclasses set ``_fd`` and may override :meth:`_recv` / :meth:`_send`.
    """

    _fd: int = -1

    def __init__(self, name: str, mtu: int):
        self.name = name
        self.mtu = mtu
        self.stats: Counter = Counter()

    def fileno(self) -> int:
        """The fd to wait on for readability (raises ValueError once closed)."""
        if self._fd < 0:
            raise ValueError(f"link {self.name} is closed")
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def _recv(self) -> bytes:
        return os.read(self._fd, MAX_PACKET)

    def _send(self, packet) -> None:
        if type(packet) is tuple:  # (headers, payload): one packet from two buffers, no joining copy
            os.writev(self._fd, packet)
        else:
            os.write(self._fd, packet)

    def read_batch(self, max_packets: int = 64) -> list[bytes]:
        """Read up to ``max_packets`` packets without blocking; [] if none are waiting."""
        packets: list[bytes] = []
        while len(packets) < max_packets:
            try:
                packet = self._recv()
            except BlockingIOError:
                break
            if not packet:  # EOF: a socketpair peer closed (TUN never returns 0)
                break
            packets.append(packet)
        self.stats["rx_packets"] += len(packets)
        return packets

    def read_iter(self, max_packets: int = 64):
        """``read_batch`` as an iterator: each packet is read when the consumer asks for the next one
        (and is processed while its bytes are still in the cache), until EAGAIN or ``max_packets``."""
        n = 0
        try:
            while n < max_packets:
                try:
                    packet = self._recv()
                except BlockingIOError:
                    return
                if not packet:  # EOF: a socketpair peer closed
                    return
                n += 1
                yield packet
        finally:
            self.stats["rx_packets"] += n

    def write(self, packet: bytes) -> None:
        """Send one packet; on a transient failure drop it and count why."""
        try:
            self._send(packet)
        except OSError as e:
            self._count_drop(e)
            return
        self.stats["tx_packets"] += 1

    def _count_drop(self, e: OSError) -> None:
        reason = _TX_DROP_REASONS.get(e.errno)
        if reason is None:  # EBADF after close, EFAULT...: a bug, say so
            raise e
        self.stats[reason] += 1
        self.stats["tx_dropped"] += 1

    def write_batch(self, packets) -> None:
        """Send each packet in order (the same drop rules as :meth:`write`)."""
        for packet in packets:
            self.write(packet)

    def close(self) -> None:
        """Close the fd; calling it again does nothing."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # a forgotten link must not leak its fd (and its device)
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd}"
        return f"<{type(self).__name__} {self.name} mtu={self.mtu} {state}>"


class TunLink(FdLink):
    """An IPv4 TUN device (``IFF_TUN | IFF_NO_PI``), opened non-blocking.

    ``TunLink("tun0")`` creates the device if it does not exist (non-persistent: it is
    removed when the fd closes). Configure the kernel side with
    :func:`stack.link.netconf.configure_host_side`. ``mtu`` is the stack's view of the
    link MTU; give the kernel the same number.
    """

    def __init__(self, name: str = "tun0", mtu: int = 1500, offload: bool = False):
        encoded = name.encode()
        if not 0 < len(encoded) < IFNAMSIZ:
            raise ValueError(f"interface name {name!r} must be 1..{IFNAMSIZ - 1} bytes")
        try:
            fd = os.open(TUN_PATH, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError as e:
            raise LinkError(e.errno, f"{TUN_PATH} does not exist: load the tun module "
                            "(modprobe tun) or give the container the device") from e
        except PermissionError as e:
            raise LinkError(e.errno, f"cannot open {TUN_PATH}: permission denied "
                            "(run as root / with CAP_NET_ADMIN)") from e
        ifr = struct.pack("16sH22x", encoded, IFF_TUN | IFF_NO_PI | (IFF_VNET_HDR if offload else 0))
        try:
            ifr = fcntl.ioctl(fd, TUNSETIFF, ifr)
        except OSError as e:
            os.close(fd)
            why = {errno.EPERM: "permission denied: needs CAP_NET_ADMIN (run as root)",
                   errno.EBUSY: "device busy: another process has it open",
                   errno.EINVAL: "a non-TUN device of that name exists"}.get(
                       e.errno, e.strerror)
            raise LinkError(e.errno, f"TUNSETIFF {name}: {why}") from e
        if offload:
            try:  # checksum offload and TSO both ways: every packet then starts with a virtio-net header
                fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4)
            except OSError as e:
                os.close(fd)
                raise LinkError(e.errno, f"TUNSETOFFLOAD {name}: {e.strerror}") from e
        super().__init__(ifr[:IFNAMSIZ].rstrip(b"\0").decode(), mtu)
        self._fd = fd
        self.offload = offload

    def _recv(self) -> bytes:
        return os.read(self._fd, MAX_PACKET + VNET_HDR_LEN)

    # The two loops below are FdLink's, with the per-packet method calls taken out: they run
    # once per packet of a bulk transfer.
    def read_batch(self, max_packets: int = 64) -> list[bytes]:
        """Read up to ``max_packets`` packets without blocking (until EAGAIN); [] if none are waiting."""
        packets: list[bytes] = []
        append, read, fd = packets.append, os.read, self._fd
        try:
            for _ in range(max_packets):
                append(read(fd, MAX_PACKET + VNET_HDR_LEN))  # a TUN read is one packet, never 0 bytes
        except BlockingIOError:
            pass
        self.stats["rx_packets"] += len(packets)
        return packets

    def read_iter(self, max_packets: int = 64):
        """FdLink.read_iter without the per-packet method call."""
        read, fd, n = os.read, self._fd, 0
        try:
            while n < max_packets:
                packet = read(fd, MAX_PACKET + VNET_HDR_LEN)  # a TUN read is one packet, never 0 bytes
                n += 1
                yield packet
        except BlockingIOError:
            pass
        finally:
            self.stats["rx_packets"] += n

    def write_batch(self, packets) -> None:
        """Send each packet in order (the same drop rules as :meth:`write`)."""
        write, writev, fd = os.write, os.writev, self._fd
        sent = 0
        for packet in packets:
            try:
                if type(packet) is tuple:  # (headers, payload): see FdLink._send
                    writev(fd, packet)
                else:
                    write(fd, packet)
            except OSError as e:
                self._count_drop(e)
                continue
            sent += 1
        self.stats["tx_packets"] += sent
