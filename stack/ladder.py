"""ASCII ladder (sequence) diagrams of TCP conversations, from packets or a pcap file.

::

          time  client                                           server
      0.000000  |-- SYN seq=0 win=64240 len=0 ----------------------->|  mss=1460 sack_perm ts=41246/0 wscale=10
      0.000275  |<------------- SYN-ACK seq=0 ack=1 win=65535 len=0 --|  mss=1460 sack_perm ts=29998/41246 wscale=7
      0.000331  |-- ACK seq=1 ack=1 win=64512 len=0 ----------------->|
      0.004055  |-- PSH,ACK seq=1 ack=1 win=64512 len=73 ------------>|
      0.006769  |<-------- PSH,ACK seq=1 ack=74 win=4194304 len=186 --|

The left column is the host (the kernel's side of the TUN, ``local_label``), the right
column is our stack (``remote_label``): a packet whose source is ``stack_addr`` goes
right to left. Sequence and acknowledgment numbers are relative to each direction's
initial sequence number, as Wireshark shows them; ``win`` is the window in bytes (scaled
once both SYNs agreed on window scaling, else the raw field); ``len`` is the TCP payload
length; options are listed on SYNs.
Headers are parsed here with ``struct`` (no scapy), so this also works on huge captures.
"""
from __future__ import annotations

import argparse
import socket
import struct
import sys
from typing import Iterable

from stack.pcap import read_pcap

_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")
_FLAG_NAMES = [(0x02, "SYN"), (0x01, "FIN"), (0x04, "RST"), (0x08, "PSH"),
               (0x10, "ACK"), (0x20, "URG"), (0x40, "ECE"), (0x80, "CWR")]
_ICMP_NAMES = {0: "echo-reply", 3: "unreachable", 8: "echo-request", 11: "time-exceeded"}
ARROW_WIDTH = 52  # inner width of an arrow; longer labels stretch it


def _flags(bits: int) -> str:
    """``SYN``, ``SYN-ACK``, ``ACK``, ``PSH,ACK``, ``FIN,ACK``, ``RST`` ..."""
    if bits & 0x12 == 0x12 and not bits & 0x0D:
        return "SYN-ACK"
    return ",".join(name for bit, name in _FLAG_NAMES if bits & bit) or "none"


def parse_tcp_options(opts: bytes) -> list[str]:
    """Options as short words: ``mss=1460 sack_perm ts=VAL/ECR wscale=7 sack=... nop``.

    NOPs and the end-of-list option are left out; an unknown kind shows as ``opt<kind>``.
    """
    out, i = [], 0
    while i < len(opts):
        kind = opts[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(opts) or opts[i + 1] < 2 or i + opts[i + 1] > len(opts):
            out.append("bad-options")
            break
        body = opts[i + 2:i + opts[i + 1]]
        if kind == 2 and len(body) == 2:
            out.append(f"mss={int.from_bytes(body, 'big')}")
        elif kind == 3 and len(body) == 1:
            out.append(f"wscale={body[0]}")
        elif kind == 4:
            out.append("sack_perm")
        elif kind == 5:
            edges = [int.from_bytes(body[j:j + 4], "big") for j in range(0, len(body) - 3, 4)]
            out.append("sack=" + ",".join(f"{a}-{b}" for a, b in zip(edges[::2], edges[1::2])))
        elif kind == 8 and len(body) == 8:
            val, ecr = struct.unpack("!II", body)
            out.append(f"ts={val}/{ecr}")
        else:
            out.append(f"opt{kind}")
        i += opts[i + 1]
    return out


class _Segment:
    """The fields of one IPv4 packet the ladder shows (TCP fields None for non-TCP)."""

    def __init__(self, packet: bytes):
        ver_ihl, _tos, total, _id, _frag, _ttl, self.proto, _ck, src, dst = \
            _IP.unpack_from(packet)
        if ver_ihl >> 4 != 4:
            raise ValueError("not IPv4")
        ihl = (ver_ihl & 0x0F) * 4
        end = min(total, len(packet)) if total >= ihl else len(packet)
        self.src, self.dst = socket.inet_ntoa(src), socket.inet_ntoa(dst)
        self.payload = packet[ihl:end]
        self.sport = self.dport = None
        if self.proto == 6:
            (self.sport, self.dport, self.seq, self.ack, off, self.bits, self.win,
             _ck, _urg) = _TCP.unpack_from(self.payload)
            hlen = (off >> 4) * 4
            self.options = parse_tcp_options(self.payload[20:hlen])
            self.length = len(self.payload) - hlen

    def flow(self) -> tuple:
        """A key equal for both directions of one connection."""
        a, b = (self.src, self.sport), (self.dst, self.dport)
        return (a, b) if a <= b else (b, a)


class _Flow:
    """Per-connection state, by source endpoint: each direction's ISN and window scale."""

    def __init__(self):
        self.isn: dict[tuple, int] = {}
        self.wscale: dict[tuple, int | None] = {}

    def relative(self, seg: _Segment) -> tuple[int, int | None]:
        """``(seq, ack)`` relative to the ISNs; ack is None when the ACK bit is off."""
        me, peer = (seg.src, seg.sport), (seg.dst, seg.dport)
        self.isn.setdefault(me, seg.seq)
        seq = (seg.seq - self.isn[me]) & 0xFFFFFFFF
        if not seg.bits & 0x10:
            return seq, None
        # Without the peer's SYN (capture started mid-stream) its first ACKed byte is 0.
        self.isn.setdefault(peer, seg.ack)
        return seq, (seg.ack - self.isn[peer]) & 0xFFFFFFFF

    def window(self, seg: _Segment) -> int:
        """The window in bytes. RFC 7323 2.2: scaling applies only when both SYNs carried
        wscale, and never to a SYN's own window; otherwise the raw field."""
        me, peer = (seg.src, seg.sport), (seg.dst, seg.dport)
        if seg.bits & 0x02:
            shifts = [o for o in seg.options if o.startswith("wscale=")]
            self.wscale[me] = min(int(shifts[0][7:]), 14) if shifts else None
            return seg.win
        if self.wscale.get(me) is not None and self.wscale.get(peer) is not None:
            return seg.win << self.wscale[me]
        return seg.win


def _label(seg: _Segment, flow: _Flow | None) -> str:
    """The text on an arrow: TCP flags, relative seq/ack, raw window, payload length."""
    if seg.proto == 17 and len(seg.payload) >= 8:
        sport, dport = struct.unpack_from("!HH", seg.payload)
        return f"UDP {sport}>{dport} len={len(seg.payload) - 8}"
    if seg.proto == 1 and len(seg.payload) >= 2:
        kind = _ICMP_NAMES.get(seg.payload[0], f"type={seg.payload[0]}")
        return f"ICMP {kind} code={seg.payload[1]}"
    if flow is None:
        return f"proto={seg.proto} len={len(seg.payload)}"
    seq, ack = flow.relative(seg)
    parts = [_flags(seg.bits), f"seq={seq}"]
    if ack is not None:
        parts.append(f"ack={ack}")
    parts += [f"win={flow.window(seg)}", f"len={seg.length}"]
    return " ".join(parts)


def _arrow(label: str, rightward: bool, width: int) -> str:
    body = f" {label} "
    fill = "-" * max(2, width - 2 - len(body))
    if rightward:
        return f"|--{body}{fill}>|"
    return f"|<{fill}{body}--|"


def render_ladder(packets: Iterable[tuple[float, bytes]], local_label: str = "client",
                  remote_label: str = "server", stack_addr: str = "192.0.2.2") -> str:
    """Render ``(t, ip_packet)`` pairs as an ASCII ladder; returns the text.

    The host (``local_label``) is the left column, the stack at ``stack_addr``
    (``remote_label``) the right one; with no packet from or to ``stack_addr``, the
    sender of the first packet stands on the left. When a capture holds more than one
    TCP connection, a header line marks each connection's first segment.
    """
    rows: list[tuple] = []  # (time, label, rightward, options) or (None, conn header)
    flows: dict[tuple, _Flow] = {}
    t0 = left_addr = None
    skipped = 0
    for t, packet in packets:
        try:
            seg = _Segment(packet)
        except (ValueError, struct.error):
            skipped += 1
            continue
        t0 = t if t0 is None else t0
        if stack_addr in (seg.src, seg.dst):
            rightward = seg.dst == stack_addr
        else:
            left_addr = left_addr or seg.src
            rightward = seg.src == left_addr
        flow, extra = None, ""
        if seg.sport is not None:
            key = seg.flow()
            if key not in flows:
                flows[key] = _Flow()
                rows.append((None, f"{seg.src}:{seg.sport} -> {seg.dst}:{seg.dport}"))
            flow = flows[key]
            if seg.bits & 0x02:
                extra = "  " + " ".join(seg.options)
        rows.append((f"{t - t0:10.6f}", _label(seg, flow), rightward, extra))
    width = max([ARROW_WIDTH] + [len(r[1]) + 8 for r in rows if r[0] is not None])
    half = (width + 3) // 2
    lines = [f"{'time':>10}  {local_label:<{half}}{remote_label:>{width + 3 - half}}"]
    for when, label, *rest in rows:
        if when is None:  # connection header: only worth a line when there are several
            if len(flows) > 1:
                lines.append(f"{'':10}  == {label} ==")
            continue
        rightward, extra = rest
        lines.append(f"{when}  {_arrow(label, rightward, width)}{extra}".rstrip())
    if skipped:
        lines.append(f"({skipped} non-IPv4 or malformed packet(s) not shown)")
    return "\n".join(lines) + "\n"


def ladder_main(argv: list[str] | None = None) -> int:
    """``tunstack ladder FILE.pcap``: print the ladder diagram of a capture."""
    ap = argparse.ArgumentParser(prog="tunstack ladder",
                                 description="Print an ASCII ladder diagram of the TCP "
                                 "segments in a pcap file (seq/ack relative to each ISN).")
    ap.add_argument("pcap", help="capture file (pcap, e.g. from serve --pcap)")
    ap.add_argument("--stack-addr", default="192.0.2.2",
                    help="address of our stack, drawn on the right (default %(default)s)")
    ap.add_argument("--local-label", default="client", help="left column title (host)")
    ap.add_argument("--remote-label", default="server", help="right column title (stack)")
    args = ap.parse_args(argv)
    try:
        text = render_ladder(read_pcap(args.pcap), args.local_label, args.remote_label,
                             args.stack_addr)
    except (OSError, ValueError) as e:
        print(f"tunstack ladder: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0
