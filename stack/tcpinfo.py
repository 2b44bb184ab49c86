"""``getsockopt(IPPROTO_TCP, TCP_INFO)``: a connection's figures in Linux's ``struct tcp_info``.

The layout is ``include/uapi/linux/tcp.h`` field for field, so code written for Linux
(``struct.unpack`` of the kernel's bytes, ``ss``-like tools) decodes ours unchanged.
Times are microseconds as in Linux; fields we do not keep are zero, as Linux leaves
fields it does not track. ``pack`` reads the dict ``Connection.info()`` returns.
"""
from __future__ import annotations

import struct

# (name, struct code) in the kernel's order; the 8 leading u8 fields, then u32/u64 fields
FIELDS = (
    ("state", "B"), ("ca_state", "B"), ("retransmits", "B"), ("probes", "B"), ("backoff", "B"),
    ("options", "B"), ("wscale", "B"), ("flags", "B"),
    ("rto", "I"), ("ato", "I"), ("snd_mss", "I"), ("rcv_mss", "I"),
    ("unacked", "I"), ("sacked", "I"), ("lost", "I"), ("retrans", "I"), ("fackets", "I"),
    ("last_data_sent", "I"), ("last_ack_sent", "I"), ("last_data_recv", "I"), ("last_ack_recv", "I"),
    ("pmtu", "I"), ("rcv_ssthresh", "I"), ("rtt", "I"), ("rttvar", "I"), ("snd_ssthresh", "I"),
    ("snd_cwnd", "I"), ("advmss", "I"), ("reordering", "I"), ("rcv_rtt", "I"), ("rcv_space", "I"),
    ("total_retrans", "I"),
    ("pacing_rate", "Q"), ("max_pacing_rate", "Q"), ("bytes_acked", "Q"), ("bytes_received", "Q"),
    ("segs_out", "I"), ("segs_in", "I"), ("notsent_bytes", "I"), ("min_rtt", "I"),
    ("data_segs_in", "I"), ("data_segs_out", "I"), ("delivery_rate", "Q"),
    ("busy_time", "Q"), ("rwnd_limited", "Q"), ("sndbuf_limited", "Q"),
    ("delivered", "I"), ("delivered_ce", "I"), ("bytes_sent", "Q"), ("bytes_retrans", "Q"),
    ("dsack_dups", "I"), ("reord_seen", "I"), ("rcv_ooopack", "I"), ("snd_wnd", "I"), ("rcv_wnd", "I"),
    ("rehash", "I"), ("total_rto", "H"), ("total_rto_recoveries", "H"), ("total_rto_time", "I"),
)
TCP_INFO = struct.Struct("=" + "".join(code for _, code in FIELDS))  # the C layout has no padding
SIZE = TCP_INFO.size

# Linux's enum of TCP states (include/net/tcp_states.h) and tcp_ca_state
LINUX_STATE = {"ESTABLISHED": 1, "SYN_SENT": 2, "SYN_RECEIVED": 3, "FIN_WAIT_1": 4, "FIN_WAIT_2": 5,
               "TIME_WAIT": 6, "CLOSED": 7, "CLOSE_WAIT": 8, "LAST_ACK": 9, "LISTEN": 10, "CLOSING": 11}
CA_STATE = {"open": 0, "disorder": 1, "cwr": 2, "recovery": 3, "loss": 4}
TCPI_OPT_TIMESTAMPS, TCPI_OPT_SACK, TCPI_OPT_WSCALE = 1, 2, 4
_U32 = 0xFFFFFFFF
INFINITE_SSTHRESH = 0x7FFFFFFF


def _usec(seconds) -> int:
    return 0 if seconds is None else min(_U32, max(0, int(seconds * 1_000_000)))


def _u32(value) -> int:
    return min(_U32, max(0, int(value or 0)))


def _ssthresh(ssthresh, mss: int) -> int:
    """Segments; 'no threshold yet' is Linux's TCP_INFINITE_SSTHRESH (0x7fffffff)."""
    if ssthresh is None or not mss or ssthresh >= INFINITE_SSTHRESH * mss:
        return INFINITE_SSTHRESH
    return _u32(ssthresh // mss)


def _ca_state(info: dict) -> int:
    phase = str(info.get("phase", "")).lower()
    for name, value in CA_STATE.items():
        if name in phase:
            return value
    return 0


def _options(info: dict) -> tuple[int, int]:
    snd_ws, rcv_ws = info.get("wscale") or (0, 0)
    options = ((TCPI_OPT_TIMESTAMPS if info.get("ts") else 0) | (TCPI_OPT_SACK if info.get("sack") else 0)
               | (TCPI_OPT_WSCALE if info.get("wscale_ok", snd_ws or rcv_ws) else 0))
    return options, ((snd_ws or 0) & 0xF) | (((rcv_ws or 0) & 0xF) << 4)


def values(info: dict) -> dict:
    """The struct's fields from ``Connection.info()`` (state names as in ``stack.tcp.states``)."""
    mss = info.get("mss", 0)
    options, wscale = _options(info)
    state = str(info.get("state", "CLOSED")).replace("-", "_")
    return {
        "state": LINUX_STATE.get(state, 7), "ca_state": _ca_state(info),
        "retransmits": min(255, int(info.get("backoff_count", 0))), "options": options, "wscale": wscale,
        "rto": _usec(info.get("rto")), "snd_mss": _u32(mss), "rcv_mss": _u32(mss), "advmss": _u32(mss),
        "unacked": _u32(-(-info.get("unacked", 0) // mss) if mss else 0),
        "rtt": _usec(info.get("srtt")), "rttvar": _usec(info.get("rttvar")),
        "snd_ssthresh": _ssthresh(info.get("ssthresh"), mss),
        "snd_cwnd": _u32(-(-info.get("cwnd", 0) // mss) if mss else 0),
        "total_retrans": _u32(info.get("retrans")), "retrans": 0,
        "bytes_acked": int(info.get("bytes_out", 0)), "bytes_received": int(info.get("bytes_in", 0)),
        "bytes_sent": int(info.get("bytes_out", 0)) + int(info.get("retrans_bytes", 0)),
        "bytes_retrans": int(info.get("retrans_bytes", 0)),
        "segs_out": _u32(info.get("segs_out")), "segs_in": _u32(info.get("segs_in")),
        "notsent_bytes": _u32(info.get("notsent", 0)), "reordering": 3,
        "snd_wnd": _u32(info.get("snd_wnd")), "rcv_wnd": _u32(info.get("rcv_wnd")),
    }


def pack(info: dict, buflen: int = SIZE) -> bytes:
    """The bytes ``getsockopt(TCP_INFO, buflen)`` returns: the struct, cut to ``buflen`` as Linux does."""
    fields = values(info)
    raw = TCP_INFO.pack(*(fields.get(name, 0) for name, _ in FIELDS))
    return raw[:max(0, buflen)]


def unpack(raw: bytes) -> dict:
    """Decode Linux's (or our) ``struct tcp_info`` bytes; fields beyond ``raw`` are absent."""
    out, offset = {}, 0
    for name, code in FIELDS:
        size = struct.calcsize("=" + code)
        if offset + size > len(raw):
            break
        out[name] = struct.unpack_from("=" + code, raw, offset)[0]
        offset += size
    return out
