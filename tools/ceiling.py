#!/usr/bin/env python3
"""ceiling: the fastest minimal Python TCP/ICMP responder we can write over a TUN.

It is the yardstick for tunstack's benchmarks (see tools/bench/): whatever it
reaches through this TUN on this machine, now, is the most a Python program doing
the same per-packet work can reach. It is deliberately *not* a TCP stack:

* ICMP echo: answered by swapping addresses and patching the checksum (RFC 1624).
* TCP: a SYN to a served port gets a SYN-ACK (MSS from the MTU, window scaling);
  every segment is acknowledged cumulatively, once per batch of reads; no
  checksum is verified (the kernel computed it), no options beyond MSS/WS,
  no SACK, no timestamps, no congestion control.
* ``--offload``: the TUN is opened with ``IFF_VNET_HDR`` and ``TUN_F_CSUM | TUN_F_TSO4``, as
  ``tunstack serve --offload`` opens it: data goes out as 64 KiB super-segments whose TCP
  checksum the kernel finishes and splits (TSO), and comes in as the kernel's merged ones.
* ``--discard PORT``: data is counted and thrown away (the upload ceiling).
* ``--http PORT``: ``GET /name`` answers with the file ``ROOT/name`` sent from
  an mmap as fast as the peer's window allows (the download ceiling); HTTP/1.1
  keeps the connection open, HTTP/1.0 (or ``Connection: close``) closes it.
  Loss recovery is go-back-N on three duplicate ACKs or 200 ms without progress.

Per packet it does the least Python can do: one ``readinto`` into a reused
buffer, one precompiled ``struct`` unpack, one dict lookup; outgoing headers are
one ``struct`` pack of IP+TCP with checksums summed from per-connection constants
(RFC 1071 residues; only length, seq, ack, flags, window and the payload vary).

Runs only inside a network namespace other than init's (network safety rule):
tools/bench creates one with ``unshare --net`` and starts this inside it.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import mmap
import os
import random
import select
import signal
import struct
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from stack.wire.errors import MalformedPacket  # noqa: E402
from stack.wire.tcp import parse_tcp  # noqa: E402  (one home for TCP option walking)
from stack.wire.vnet import PLAIN as VNET_PLAIN, VNET_HDR_LEN, gso_header  # noqa: E402

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUNSETOFFLOAD = 0x400454D0
TUN_F_CSUM, TUN_F_TSO4 = 0x01, 0x02
SUPER = 65535 - 40  # largest payload of one IPv4 super-segment

ACK, PSH, RST, SYN, FIN = 0x10, 0x08, 0x04, 0x02, 0x01
IPTCP = struct.Struct("!BBHHHBBH4s4sHHIIBBHHH")  # IPv4 (20) + TCP (20), no options
TCP_IN = struct.Struct("!HHIIBBH")  # sport dport seq ack offset flags window
M32 = 0xFFFFFFFF

# Checksum folding: int.from_bytes gives the payload as one big integer; fold its
# halves together (2**16 == 1 mod 0xffff, so any 16-bit-aligned split keeps the
# residue) down to 64 bits, then one small '%'. 2x faster than '%' on 64 KB.
_FOLDS = [(1 << k, (1 << (1 << k)) - 1) for k in range(19, 5, -1)]


def payload_sum(data) -> int:
    """RFC 1071 ones'-complement sum of ``data`` as a residue mod 0xffff."""
    n = len(data)
    x = int.from_bytes(data, "big")
    if n & 1:
        x <<= 8
        n += 1
    bits = n * 8
    if bits > 64:
        for shift, mask in _FOLDS:
            if bits > shift:
                x = (x >> shift) + (x & mask)
                bits = shift + 1
    return x % 0xFFFF


def word_sum(b: bytes) -> int:
    return int.from_bytes(b, "big") % 0xFFFF


class Conn:
    """One TCP connection: just enough state to ack, send and close."""

    __slots__ = (
        "key", "sport", "dport", "http", "rcv_nxt", "iss", "una", "nxt", "end",
        "fin_queued", "peer_fin", "wnd", "wscale", "mss", "pieces", "reqbuf",
        "need_ack", "dupacks", "progress_at", "ck", "established", "closing", "ooo",
    )

    def __init__(self, key, sport, dport, http, irs, iss, mss, wscale, ck):
        self.key = key
        self.sport = sport
        self.dport = dport
        self.http = http
        self.rcv_nxt = (irs + 1) & M32
        self.iss = iss
        self.una = 0  # offsets relative to iss + 1 (the first data byte)
        self.nxt = 0
        self.end = 0  # offset one past the last byte queued to send
        self.fin_queued = False
        self.peer_fin = False
        self.wnd = 0
        self.wscale = wscale
        self.mss = mss
        self.pieces = []  # [(start_offset, memoryview)], in offset order
        self.reqbuf = b""
        self.need_ack = False
        self.dupacks = 0
        self.progress_at = 0.0
        self.ck = ck  # checksum residue of pseudo-header addresses/proto + ports
        self.established = False
        self.closing = False
        self.ooo = []  # [[seq, end]] received beyond a hole (discard port only), in arrival order

    def out_of_order(self, seq: int, plen: int) -> None:
        """Remember a segment beyond rcv_nxt so a retransmission filling the hole acks it all."""
        if (seq - self.rcv_nxt) & M32 >= 0x40000000:
            return  # old duplicate (or absurdly far): nothing to remember
        end = (seq + plen) & M32
        ooo = self.ooo
        if ooo and ooo[-1][1] == seq:
            ooo[-1][1] = end
        elif len(ooo) < 1024:
            ooo.append([seq, end])

    def drain(self) -> None:
        """Advance rcv_nxt over remembered segments that now touch it."""
        moved = True
        while moved and self.ooo:
            moved = False
            nxt = self.rcv_nxt
            keep = []
            for iv in self.ooo:
                if (nxt - iv[0]) & M32 < 0x40000000:  # starts at or before rcv_nxt
                    if (iv[1] - nxt) & M32 < 0x40000000 and iv[1] != nxt:
                        nxt = iv[1]
                        moved = True
                else:
                    keep.append(iv)
            self.rcv_nxt = nxt
            self.ooo = keep

    def queue(self, data) -> None:
        mv = memoryview(data)
        if len(mv):
            self.pieces.append((self.end, mv))
            self.end += len(mv)

    def chunk(self, off: int, n: int):
        """Bytes [off, off+n) of the outgoing stream."""
        for start, mv in self.pieces:
            stop = start + len(mv)
            if off < stop:
                if off + n <= stop:
                    return mv[off - start: off - start + n]
                break
        out = bytearray()
        for start, mv in self.pieces:  # spans pieces: rare, copy
            stop = start + len(mv)
            if stop <= off or start >= off + n:
                continue
            out += mv[max(off, start) - start: min(off + n, stop) - start]
        return bytes(out)


class Ceiling:
    def __init__(self, fd, addr, peer, mtu, http_port, discard_port, root, window_shift, offload=False):
        self.fd = fd
        self.offload = offload
        self.prefix = VNET_PLAIN if offload else b""  # every packet on a vnet TUN starts with a header
        self.addr = addr
        self.peer = peer
        self.mtu = mtu
        self.http_port = http_port
        self.discard_port = discard_port
        self.root = root
        self.wshift = window_shift
        self.rwnd_field = 0xFFFF  # advertised window = 0xffff << wshift
        self.files = {}
        self.conns = {}
        self.senders = set()  # connections with data to send and window to send it
        self.inflight = set()  # connections with unacknowledged data (retransmission timer)
        self.dead = []  # closed connections, forgotten after this batch's output
        self.now = time.monotonic()
        self.rng = random.Random(os.getpid() ^ time.monotonic_ns())
        self.addr_sum = (word_sum(addr) + word_sum(peer) + 6) % 0xFFFF
        # IP header residue for everything but total length (version/IHL, DF, TTL 64, TCP, addresses)
        self.ip_base = (0x4500 + 0x4000 + (64 << 8 | 6) + word_sum(addr) + word_sum(peer)) % 0xFFFF
        self.stats = dict(packets_in=0, packets_out=0, bytes_in=0, bytes_out=0,
                          retransmits=0, out_of_order=0, connections=0, resets=0, echo=0)

    # ---- output -------------------------------------------------------------
    def header(self, c: Conn, seq: int, flags: int, plen: int, psum: int) -> bytes:
        tl = 40 + plen
        ack = c.rcv_nxt
        win = self.rwnd_field
        ip_ck = 0xFFFF - (self.ip_base + tl) % 0xFFFF
        tcp_ck = 0xFFFF - (c.ck + 20 + plen + seq + ack + 0x5000 + flags + win + psum) % 0xFFFF
        return IPTCP.pack(0x45, 0, tl, 0, 0x4000, 64, 6, ip_ck, self.addr, self.peer,
                          c.dport, c.sport, seq, ack, 0x50, flags, win, tcp_ck, 0)

    def header_partial(self, c: Conn, seq: int, flags: int, plen: int) -> bytes:
        """Like header(), but the TCP checksum field holds only the pseudo-header sum (NEEDS_CSUM)."""
        tl = 40 + plen
        ip_ck = 0xFFFF - (self.ip_base + tl) % 0xFFFF
        tcp_ck = (self.addr_sum + 20 + plen) % 0xFFFF
        return IPTCP.pack(0x45, 0, tl, 0, 0x4000, 64, 6, ip_ck, self.addr, self.peer,
                          c.dport, c.sport, seq, c.rcv_nxt, 0x50, flags, self.rwnd_field, tcp_ck, 0)

    def send_ack(self, c: Conn) -> None:
        seq = (c.iss + 1 + c.nxt) & M32
        os.write(self.fd, self.prefix + self.header(c, seq, ACK, 0, 0))
        c.need_ack = False
        self.stats["packets_out"] += 1

    def send_raw_tcp(self, sport, dport, seq, ack, flags, options=b"", window=0) -> None:
        """A one-off segment (SYN-ACK, RST) built the slow, general way."""
        hl = 20 + len(options)
        tl = 20 + hl
        ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, tl, 0, 0x4000, 64, 6, 0, self.addr, self.peer))
        struct.pack_into("!H", ip, 10, 0xFFFF - word_sum(bytes(ip)))
        tcp = bytearray(struct.pack("!HHIIBBHHH", dport, sport, seq, ack, (hl // 4) << 4, flags, window, 0, 0) + options)
        ck = 0xFFFF - (self.addr_sum + hl + word_sum(bytes(tcp))) % 0xFFFF
        struct.pack_into("!H", tcp, 16, ck)
        os.write(self.fd, self.prefix + bytes(ip + tcp))
        self.stats["packets_out"] += 1

    def send_synack(self, c: Conn) -> None:
        opts = struct.pack("!BBH", 2, 4, c.mss) + struct.pack("!BBBB", 1, 3, 3, self.wshift)
        self.send_raw_tcp(c.sport, c.dport, c.iss, c.rcv_nxt, SYN | ACK, opts, 0xFFFF)

    def push(self, c: Conn, now: float, burst: int = 64) -> None:
        """Send what the peer's window allows (at most ``burst`` segments)."""
        fd = self.fd
        writev = os.writev
        mss = c.mss
        seg_max = SUPER if self.offload else mss
        limit = c.una + c.wnd
        end = c.end
        base = c.iss + 1
        sent = 0
        if c.nxt == c.una:
            c.progress_at = now
        blocked = False
        while c.nxt < end:
            if sent >= burst:
                break
            nxt = c.nxt
            n = end - nxt
            if n > seg_max:
                n = seg_max
            room = limit - nxt
            if room < n:
                # avoid silly windows: wait for a full segment unless nothing is in flight
                if room <= 0 or (room < mss and nxt > c.una):
                    blocked = True
                    break
                n = room
            payload = c.chunk(nxt, n)
            flags = ACK | PSH if nxt + n == end else ACK
            if self.offload:  # the kernel finishes the checksum and splits at the MSS (TSO)
                hdr = self.header_partial(c, (base + nxt) & M32, flags, n)
                writev(fd, (gso_header(20, 20, mss, 40 + n), hdr, payload))
            else:
                hdr = self.header(c, (base + nxt) & M32, flags, n, payload_sum(payload))
                writev(fd, (hdr, payload))
            c.nxt = nxt + n
            sent += 1
            self.stats["bytes_out"] += n
        if c.fin_queued and c.nxt == end:
            os.write(fd, self.prefix + self.header(c, (base + end) & M32, FIN | ACK, 0, 0))
            c.nxt = end + 1
            sent += 1
        if sent:
            c.need_ack = False
            self.stats["packets_out"] += sent
        if c.nxt > c.una:
            self.inflight.add(c)
        if not blocked and (c.nxt < end or (c.fin_queued and c.nxt <= end)):
            self.senders.add(c)  # stopped by the burst cap: more next round
        else:
            self.senders.discard(c)

    # ---- input --------------------------------------------------------------
    def on_syn(self, pkt: memoryview, key, sport, dport, seq, hl, win) -> None:
        c = self.conns.get(key)
        if c is not None:
            if not c.established:
                self.send_synack(c)  # our SYN-ACK was lost or is late
            return
        if dport not in (self.http_port, self.discard_port):
            self.send_raw_tcp(sport, dport, 0, (seq + 1) & M32, RST | ACK)
            self.stats["resets"] += 1
            return
        try:
            syn = parse_tcp(pkt[20:])  # no addresses: the kernel made it, its checksum is not checked
        except MalformedPacket:
            return
        peer_mss = syn.mss or 536  # RFC 9293 3.7.1: 536 when the peer sends no MSS option
        wscale = None if syn.wscale is None else min(syn.wscale, 14)
        if wscale is None:  # RFC 7323: scaling only when both sides offer it
            wscale = 0
            self.rwnd_field = 0xFFFF
        mss = min(peer_mss, self.mtu - 40)
        ck = (self.addr_sum + sport + dport) % 0xFFFF
        c = Conn(key, sport, dport, dport == self.http_port, seq,
                 self.rng.getrandbits(32), mss, wscale, ck)
        c.wnd = win  # RFC 7323 2.2: the window in a SYN is never scaled
        self.conns[key] = c
        self.stats["connections"] += 1
        self.send_synack(c)

    def serve_request(self, c: Conn) -> None:
        """Answer every complete request in c.reqbuf (HTTP/1.x, GET only)."""
        while not c.fin_queued:
            head, sep, rest = c.reqbuf.partition(b"\r\n\r\n")
            if not sep:
                break
            c.reqbuf = rest
            lines = head.split(b"\r\n")
            parts = lines[0].split()
            version = parts[2] if len(parts) == 3 else b"HTTP/1.0"
            conn_hdr = b""
            for line in lines[1:]:
                if line[:11].lower() == b"connection:":
                    conn_hdr = line[11:].strip().lower()
            keep = (conn_hdr != b"close") if version == b"HTTP/1.1" else (conn_hdr == b"keep-alive")
            body = self.lookup(parts[1] if len(parts) >= 2 else b"/") if parts and parts[0] == b"GET" else None
            status = b"200 OK" if body is not None else b"404 Not Found"
            if body is None:
                body = b"not found\n"
            head = b"".join((version, b" ", status, b"\r\nContent-Length: ", str(len(body)).encode(),
                             b"\r\nContent-Type: application/octet-stream\r\nConnection: ",
                             b"keep-alive" if keep else b"close", b"\r\n\r\n"))
            if len(body) <= 65536:
                c.queue(head + bytes(body))
            else:
                c.queue(head)
                c.queue(body)
            if not keep:
                c.fin_queued = True
        if c.nxt < c.end or c.fin_queued:
            self.senders.add(c)

    def lookup(self, path: bytes):
        name = path.split(b"?", 1)[0].lstrip(b"/").decode("latin-1")
        if not name or ".." in name.split("/"):
            return None
        data = self.files.get(name)
        if data is None:
            full = os.path.join(self.root, name)
            try:
                with open(full, "rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    data = memoryview(mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ)) if size else memoryview(b"")
            except OSError:
                return None
            self.files[name] = data
        return data

    def on_ack(self, c: Conn, ack: int, win: int, plen: int) -> None:
        off = (ack - c.iss - 1) & M32
        if off > c.nxt:  # acks something not sent (or old, wrapped): ignore
            return
        wnd = win << c.wscale
        if off > c.una:
            c.una = off
            c.dupacks = 0
            c.progress_at = self.now
            pieces = c.pieces
            while pieces and pieces[0][0] + len(pieces[0][1]) <= off:
                pieces.pop(0)
            if off == c.nxt:
                self.inflight.discard(c)
                if c.peer_fin and c.fin_queued and off > c.end:
                    self.dead.append(c)
        elif off == c.una and c.nxt > c.una and plen == 0 and wnd == c.wnd:
            c.dupacks += 1
            if c.dupacks == 3:  # three duplicate acks: go back N
                c.nxt = c.una
                self.stats["retransmits"] += 1
        c.wnd = wnd
        if c.nxt < c.end or (c.fin_queued and c.nxt <= c.end):
            self.senders.add(c)

    # ---- main loop ----------------------------------------------------------
    def run(self) -> None:
        fd = self.fd
        buf = bytearray((65536 if self.offload else max(self.mtu, 1500)) + 64)
        mv = memoryview(buf)
        readv = os.readv
        vhdr = bytearray(VNET_HDR_LEN)
        bufs = [vhdr, buf] if self.offload else [buf]
        skip = VNET_HDR_LEN if self.offload else 0
        prefix = self.prefix
        unpack = TCP_IN.unpack_from
        conns = self.conns
        senders = self.senders
        inflight = self.inflight
        dead = self.dead
        acks = set()
        stats = self.stats
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        last_scan = 0.0
        while True:
            if not senders:
                poller.poll(50 if inflight else 1000)
            self.now = time.monotonic()
            npk = 0
            nbytes = 0
            while npk < 64 and nbytes < 262144:  # a batch, then flush acks and data
                try:
                    n = readv(fd, bufs) - skip
                except BlockingIOError:
                    break
                npk += 1
                nbytes += n
                if buf[0] != 0x45:
                    continue  # IPv6, or IPv4 with options: not ours to answer
                proto = buf[9]
                if proto == 6:
                    sport, dport, seq, ack, offb, flags, win = unpack(buf, 20)
                    key = sport << 16 | dport
                    hl = (offb >> 4) << 2
                    plen = n - 20 - hl
                    c = conns.get(key)
                    if flags & (SYN | RST | FIN) == 0 and c is not None and c.established:
                        # fast path: data and/or ack on an open connection
                        if plen:
                            if seq == c.rcv_nxt:
                                c.rcv_nxt = (seq + plen) & M32
                                if c.http:
                                    c.reqbuf += bytes(mv[20 + hl:n])
                                    self.serve_request(c)
                                elif c.ooo:
                                    c.drain()
                            elif not c.http:
                                c.out_of_order(seq, plen)
                                stats["out_of_order"] += 1
                            c.need_ack = True
                            acks.add(c)
                        if c.nxt:
                            self.on_ack(c, ack, win, plen)
                        else:
                            c.wnd = win << c.wscale
                        continue
                    self.on_tcp_slow(mv[:n], key, sport, dport, seq, ack, flags, win, hl, plen, c, acks)
                elif proto == 1 and buf[20] == 8:  # ICMP echo request -> reply (RFC 792)
                    out = bytearray(mv[:n])
                    out[12:16], out[16:20] = buf[16:20], buf[12:16]
                    out[20] = 0
                    ck = ((out[22] << 8) | out[23]) + 0x0800  # RFC 1624: type 8 -> 0
                    ck = (ck & 0xFFFF) + (ck >> 16)
                    out[22], out[23] = ck >> 8, ck & 0xFF
                    os.write(fd, prefix + out)
                    stats["echo"] += 1
                    stats["packets_out"] += 1
            stats["packets_in"] += npk
            stats["bytes_in"] += nbytes
            now = self.now
            for c in acks:
                if conns.get(c.key) is not c:
                    continue
                if c in senders:
                    self.push(c, now)
                if c.need_ack:
                    self.send_ack(c)
            acks.clear()
            for c in list(senders):
                self.push(c, now)
            if inflight and now - last_scan > 0.05:
                last_scan = now
                for c in list(inflight):
                    if now - c.progress_at > 0.2:  # retransmission timeout: go back N
                        c.nxt = c.una
                        c.progress_at = now
                        stats["retransmits"] += 1
                        self.push(c, now)
            if dead:
                for c in dead:
                    if conns.get(c.key) is c:
                        del conns[c.key]
                    senders.discard(c)
                    inflight.discard(c)
                dead.clear()

    def on_tcp_slow(self, pkt, key, sport, dport, seq, ack, flags, win, hl, plen, c, acks) -> None:
        if flags & RST:
            if c is not None:
                self.dead.append(c)
            return
        if flags & SYN:
            if not flags & ACK:
                self.on_syn(pkt, key, sport, dport, seq, hl, win)
            return
        if c is None:
            if flags & ACK:  # RFC 9293 3.10.7.1: no connection -> RST with seq = ack
                self.send_raw_tcp(sport, dport, ack, 0, RST)
                self.stats["resets"] += 1
            return
        if not c.established:
            if flags & ACK and ack == (c.iss + 1) & M32:
                c.established = True
            else:
                return
        if plen or flags & FIN:
            if seq == c.rcv_nxt:
                if plen:
                    c.rcv_nxt = (seq + plen) & M32
                    if c.http:
                        c.reqbuf += bytes(pkt[20 + hl:20 + hl + plen])
                        self.serve_request(c)
                if flags & FIN and not c.peer_fin:
                    c.rcv_nxt = (c.rcv_nxt + 1) & M32
                    c.peer_fin = True
                    if not c.fin_queued:
                        c.fin_queued = True  # peer closed: we close too (discard and HTTP alike)
                        self.senders.add(c)
            c.need_ack = True
            acks.add(c)
        if flags & ACK:
            self.on_ack(c, ack, win, plen)
        if c.peer_fin and c.fin_queued and c.una > c.end:
            self.dead.append(c)


def open_tun(name: str, offload: bool = False) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    flags = IFF_TUN | IFF_NO_PI | (IFF_VNET_HDR if offload else 0)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), flags))
        if offload:  # checksums and TSO both ways, as tunstack's TunLink(offload=True)
            fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4)
    except OSError:
        os.close(fd)
        raise
    return fd


def in_private_netns() -> bool:
    """True when this process is in a private network namespace made for a benchmark.

    Not init's namespace (when /proc/1 is readable), not the outer namespace that
    tools/bench recorded (TSBENCH_OUTER_NETNS) before `unshare --net`, and with no
    interface but lo and benchmark TUNs (tsb*).
    """
    import socket
    me = os.readlink("/proc/self/ns/net")
    try:
        if me == os.readlink("/proc/1/ns/net"):
            return False
    except OSError:
        pass
    outer = os.environ.get("TSBENCH_OUTER_NETNS")
    if outer and me == outer:
        return False
    # and in any case: nothing here but loopback and benchmark TUNs
    return all(name == "lo" or name.startswith("tsb") for _, name in socket.if_nameindex())


def configure(name: str, host_addr: str, mtu: int) -> None:
    try:
        with open(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "w") as f:
            f.write("1")  # no router solicitations or MLD noise on the benchmark link
    except OSError:
        pass
    for cmd in (["ip", "link", "set", "dev", name, "mtu", str(mtu)],
                ["ip", "addr", "add", host_addr, "dev", name],
                ["ip", "link", "set", "dev", name, "up"]):
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(f"ceiling: {' '.join(cmd)} failed: {r.stderr.strip()}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="ceiling",
        description="Minimal fast Python TCP/ICMP responder on a TUN: the benchmark ceiling. "
                    "Same flags as `python -m stack serve`. Must run inside a private network namespace.")
    p.add_argument("--tun", required=True, help="TUN device name to create (e.g. tsb1234a)")
    p.add_argument("--addr", default="192.0.2.2", help="our address, answered on the TUN (default 192.0.2.2)")
    p.add_argument("--host-addr", default="192.0.2.1/24", help="address/prefix given to the kernel side (default 192.0.2.1/24)")
    p.add_argument("--mtu", type=int, default=1500, help="TUN MTU, 68..65535 (default 1500); MSS = MTU - 40")
    p.add_argument("--http", type=int, default=80, metavar="PORT", help="HTTP port serving files from --root (default 80)")
    p.add_argument("--root", default=".", help="directory served over HTTP (default .)")
    p.add_argument("--discard", type=int, default=9, metavar="PORT", help="discard port (default 9)")
    p.add_argument("--offload", action="store_true",
                   help="TUN offloads (IFF_VNET_HDR, checksum + TSO), as `tunstack serve --offload`")
    p.add_argument("--window-shift", type=int, default=9, help="our window scale; window = 65535 << shift (default 9 = 32 MB)")
    a = p.parse_args(argv)
    if not 68 <= a.mtu <= 65535:
        p.error("--mtu must be within 68..65535")
    if not 0 <= a.window_shift <= 14:
        p.error("--window-shift must be within 0..14")
    if os.geteuid() != 0:
        print("ceiling: needs root (CAP_NET_ADMIN) to create a TUN", file=sys.stderr)
        return 2
    if not in_private_netns():
        print("ceiling: refusing to run outside a private benchmark network namespace; "
              "run it via scripts/bench or under `unshare --net`", file=sys.stderr)
        return 2
    host_ip = a.host_addr.split("/")[0]
    try:
        addr = bytes(map(int, a.addr.split(".")))
        peer = bytes(map(int, host_ip.split(".")))
        assert len(addr) == 4 and len(peer) == 4
    except (ValueError, AssertionError):
        p.error("--addr and --host-addr must be IPv4 addresses")
    try:
        fd = open_tun(a.tun, a.offload)
    except OSError as e:
        print(f"ceiling: cannot create TUN {a.tun!r}: {e}", file=sys.stderr)
        return 2
    configure(a.tun, a.host_addr, a.mtu)
    srv = Ceiling(fd, addr, peer, a.mtu, a.http, a.discard, a.root, a.window_shift, a.offload)

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"ceiling: serving {a.addr} on {a.tun} mtu {a.mtu}{' offload' if a.offload else ''} (http {a.http} from {a.root}, discard {a.discard})", flush=True)
    try:
        srv.run()
    except KeyboardInterrupt:
        pass
    print("ceiling: stats " + json.dumps(srv.stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
