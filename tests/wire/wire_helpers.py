"""Shared hypothesis strategies and scapy glue for the wire-layer tests (DESIGN.md, tests layer 1).

Imported by the ``test_wire_*`` modules in this folder (pytest puts the folder on sys.path).
scapy is the oracle here, never the engine.
"""
from __future__ import annotations

import random
import socket
import struct

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, IPOption, IPOption_EOL, IPOption_NOP
from scapy.packet import Raw
from scapy.utils import checksum as scapy_checksum

from stack.wire import ipv4, tcp

# ~200 examples each keeps the whole folder well under 30 s; no example database so the
# shared working tree is not written to.
WIRE = settings(max_examples=200, deadline=None, database=None,
                phases=[Phase.explicit, Phase.generate, Phase.shrink],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FUZZ = settings(WIRE, max_examples=400)

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
addrs = st.binary(min_size=4, max_size=4)


def _random_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _sized(n: int, fill: int) -> bytes:
    return bytes([fill]) * n


# Payloads 0..2000 bytes, odd and even: small shrinkable ones, large pseudo-random ones
# (fast to draw), and runs of 0x00 / 0xff (the checksum corner cases).
payloads = st.one_of(
    st.binary(max_size=64),
    st.builds(_random_bytes, st.integers(0, 2000), u32),
    st.builds(_sized, st.integers(0, 2000), st.sampled_from([0x00, 0xFF])),
)


def ntoa(addr: bytes) -> str:
    return socket.inet_ntoa(addr)


@st.composite
def ip_fields(draw):
    """Keyword arguments valid for both ``build_ipv4`` and (after conversion) scapy's ``IP``."""
    return dict(
        src=draw(addrs), dst=draw(addrs), ident=draw(u16), ttl=draw(u8), tos=draw(u8),
        df=draw(st.booleans()), mf=draw(st.booleans()),
        frag_offset=8 * draw(st.integers(0, ipv4.OFFSET_MASK)),
    )


def scapy_ip(f: dict, proto: int, **extra) -> IP:
    """The scapy IP layer with the same fields as ``build_ipv4(**f)``."""
    return IP(src=ntoa(f["src"]), dst=ntoa(f["dst"]), id=f["ident"], ttl=f["ttl"], tos=f["tos"],
              flags=(2 if f["df"] else 0) | (1 if f["mf"] else 0), frag=f["frag_offset"] // 8,
              proto=proto, **extra)


def build_ip(f: dict, proto: int, payload_len: int) -> bytes:
    return ipv4.build_ipv4(f["src"], f["dst"], proto, payload_len, ident=f["ident"], ttl=f["ttl"],
                           df=f["df"], tos=f["tos"], mf=f["mf"], frag_offset=f["frag_offset"])


# ---------------------------------------------------------------- TCP segments we build

def options_len(mss, wscale, sack_perm, tsval, nblocks) -> int:
    """Bytes ``encode_options`` needs, before padding (its documented Linux layout)."""
    n = 4 if mss is not None else 0
    n += 12 if tsval is not None else (4 if sack_perm else 0)
    n += 4 if wscale is not None else 0
    n += 4 + 8 * nblocks if nblocks else 0
    return n


@st.composite
def tcp_segments(draw, max_payload=True):
    """A ``TcpSegment`` with every header field random and any combination of options that fits
    in the 40 option bytes (so SACK gets 4 blocks only when the other options leave room)."""
    mss = draw(st.none() | u16)
    wscale = draw(st.none() | u8)
    sack_perm = draw(st.booleans())
    tsval = draw(st.none() | u32)
    tsecr = draw(st.none() | u32) if tsval is not None else None
    room = 40 - options_len(mss, wscale, sack_perm, tsval, 0)
    max_blocks = max(0, min(4, (room - 4) // 8))
    nblocks = draw(st.integers(0, max_blocks))
    sack = draw(st.lists(st.tuples(u32, u32), min_size=nblocks, max_size=nblocks)) if nblocks else None
    return tcp.TcpSegment(
        sport=draw(u16), dport=draw(u16), seq=draw(u32), ack=draw(u32), flags=draw(u8),
        window=draw(u16), urg=draw(u16), payload=draw(payloads if max_payload else st.binary(max_size=64)),
        mss=mss, wscale=wscale, sack_perm=sack_perm, sack=sack, tsval=tsval, tsecr=tsecr)


def scapy_options_from_bytes(opts: bytes) -> list:
    """Name, in scapy's vocabulary, each option of an encoded option block, in its order.

    Stops at EOL: scapy pads with zero octets (EOL) itself. Raises AssertionError on
    anything ``encode_options`` should never produce.
    """
    out, i = [], 0
    while i < len(opts):
        kind = opts[i]
        if kind == tcp.OPT_EOL:
            assert set(opts[i:]) == {0}, f"bytes after EOL padding: {opts.hex()}"
            assert len(opts) - i < 4, f"more than 3 padding octets: {opts.hex()}"
            break
        if kind == tcp.OPT_NOP:
            out.append(("NOP", None))
            i += 1
            continue
        length = opts[i + 1]
        body = opts[i + 2:i + length]
        if kind == tcp.OPT_MSS and length == 4:
            out.append(("MSS", struct.unpack("!H", body)[0]))
        elif kind == tcp.OPT_WSCALE and length == 3:
            out.append(("WScale", body[0]))
        elif kind == tcp.OPT_SACK_PERM and length == 2:
            out.append(("SAckOK", b""))
        elif kind == tcp.OPT_TS and length == 10:
            out.append(("Timestamp", struct.unpack("!II", body)))
        elif kind == tcp.OPT_SACK and length >= 10 and (length - 2) % 8 == 0:
            out.append(("SAck", struct.unpack(f"!{(length - 2) // 4}I", body)))
        else:
            raise AssertionError(f"unexpected option kind {kind} length {length} in {opts.hex()}")
        i += length
    return out


def options_as_fields(options: list) -> dict:
    """The option attributes of a TcpSegment implied by a scapy options list (last one wins,
    EOL ends the list, as in RFC 9293 3.1)."""
    f = dict(mss=None, wscale=None, sack_perm=False, sack=None, tsval=None, tsecr=None)
    for name, value in options:
        if name == "EOL":
            break
        if name == "MSS":
            f["mss"] = value
        elif name == "WScale":
            f["wscale"] = value
        elif name == "SAckOK":
            f["sack_perm"] = True
        elif name == "Timestamp":
            f["tsval"], f["tsecr"] = value
        elif name == "SAck":
            f["sack"] = [tuple(value[j:j + 2]) for j in range(0, len(value), 2)]
    return f


# ---------------------------------------------------------------- scapy-built packets

# Kinds our parser knows (0..5 and 8) must be well formed when scapy builds them; any
# other kind is "unknown" to us and is sent raw with a random body.
unknown_kinds = st.integers(6, 255).filter(lambda k: k != tcp.OPT_TS)


def _opt_size(opt) -> int:
    name, value = opt
    if name in ("NOP", "EOL"):
        return 1
    return {"MSS": 4, "WScale": 3, "SAckOK": 2, "Timestamp": 10}.get(name) or (
        2 + 4 * len(value) if name == "SAck" else 2 + len(value))


one_scapy_option = st.one_of(
    st.just(("NOP", None)),
    st.just(("EOL", None)),
    st.builds(lambda v: ("MSS", v), u16),
    st.builds(lambda v: ("WScale", v), u8),
    st.just(("SAckOK", b"")),
    st.builds(lambda a, b: ("Timestamp", (a, b)), u32, u32),
    st.lists(u32, min_size=2, max_size=8).filter(lambda l: len(l) % 2 == 0).map(lambda l: ("SAck", tuple(l))),
    st.tuples(unknown_kinds, st.binary(max_size=12)),
)


@st.composite
def scapy_option_lists(draw):
    """Random well-formed TCP option lists, any order, NOP/EOL anywhere, that fit in 40 bytes."""
    opts, used = [], 0
    for opt in draw(st.lists(one_scapy_option, max_size=12)):
        if used + _opt_size(opt) <= 40:
            opts.append(opt)
            used += _opt_size(opt)
    return opts


@st.composite
def ip_option_blocks(draw):
    """A list of scapy IPOption objects (NOP, EOL, and type/length/value options), <= 40 bytes."""
    opts, used = [], 0
    for kind, body in draw(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=6)), max_size=6)):
        size = 1 if kind in (0, 1) else 2 + len(body)
        if used + size <= 40:
            # Built from fields, not bytes: dissecting bytes picks scapy's per-kind classes
            # (LSRR, timestamp, MTU probe...), which cannot build short random bodies.
            opts.append(IPOption_EOL() if kind == 0 else IPOption_NOP() if kind == 1 else
                        IPOption(copy_flag=kind >> 7, optclass=(kind >> 5) & 3, option=kind & 31,
                                 value=body))
            used += size
    return opts


@st.composite
def scapy_ip_layers(draw, proto: int, fragments: bool = False):
    """A scapy IP layer with every field random: flags incl. the reserved bit, options, etc.
    Without ``fragments`` the offset is 0 (scapy only dissects a first fragment's transport
    header)."""
    f = draw(ip_fields())
    layer = scapy_ip(f, proto)
    layer.flags = draw(st.integers(0, 7))
    if not fragments:
        layer.frag = 0
    opts = draw(st.none() | ip_option_blocks())
    if opts:
        layer.options = opts
    return layer


# ICMP types whose first 8 octets are type, code, checksum and 4 'rest' octets in scapy's
# model too (scapy puts three timestamps in 13/14, an address mask in 17/18 and a domain
# name part in 37/38 inside the header).
icmp_plain_types = st.integers(0, 255).filter(lambda t: t not in (13, 14, 17, 18, 37, 38))


def with_payload(layer, payload: bytes):
    return layer / Raw(payload) if payload else layer


def kernel_finish(segment: bytes, csum_offset: int = 16) -> bytes:
    """What Linux does with CHECKSUM_PARTIAL (skb_checksum_help): sum from csum_start with the
    field as it is (the pseudo-header sum), fold, invert, store."""
    value = scapy_checksum(segment)
    return segment[:csum_offset] + value.to_bytes(2, "big") + segment[csum_offset + 2:]
