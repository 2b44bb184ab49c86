"""Unit parsing and formatting shared by the tools and the impairment spec: one home.

``parse_probability("5%")`` -> 0.05, ``parse_time("20ms")`` -> 0.02, ``parse_rate("10mbit")``
-> 1e7 bits/s, ``parse_size("4M")`` -> 4000000 bytes. Each raises ``ValueError`` with a
one-line message naming the bad text; ``format_*`` turn a value back into text
(``exact=True``: text that parses back to the same float).
"""
from __future__ import annotations

import re

__all__ = ["parse_probability", "parse_time", "parse_rate", "parse_size", "split_number",
           "format_probability", "format_time", "format_rate", "format_ssthresh",
           "INFINITE_SSTHRESH", "SIZE_UNITS"]

_NUM = r"([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)"
_TIME_UNITS = {"s": 1.0, "sec": 1.0, "ms": 1e-3, "msec": 1e-3, "us": 1e-6, "usec": 1e-6,
               "µs": 1e-6, "ns": 1e-9}
# Rates in bits per second per unit. *bit = bits/s; *byte = bytes/s (as are the
# case-sensitive B, kB, KB, MB, GB, optionally with /s).
_RATE_UNITS = {"bit": 1, "bits": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9,
               "byte": 8, "bytes": 8, "kbyte": 8e3, "kbytes": 8e3, "mbyte": 8e6,
               "mbytes": 8e6, "gbyte": 8e9, "gbytes": 8e9}
_RATE_BYTE_UNITS_CS = {"B": 8, "kB": 8e3, "KB": 8e3, "MB": 8e6, "GB": 8e9}
# Sizes in bytes per unit (case-insensitive; k, m, g are powers of 1000).
SIZE_UNITS = {"": 1, "b": 1, "byte": 1, "bytes": 1, "k": 1000, "kb": 1000, "kbyte": 1000,
              "kbytes": 1000, "kib": 1024, "m": 10**6, "mb": 10**6, "mbyte": 10**6,
              "mbytes": 10**6, "mib": 1 << 20, "g": 10**9, "gb": 10**9, "gib": 1 << 30}


def split_number(text: str) -> tuple[float, str]:
    """``"20ms"`` -> (20.0, "ms"); ValueError when it is not a number and a unit."""
    m = re.fullmatch(_NUM + r"\s*([a-zA-Zµ%/]*)", text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a number with a unit")
    return float(m.group(1)), m.group(2)


def parse_probability(text: str) -> float:
    """``5%`` -> 0.05, ``0.05`` -> 0.05. Must lie in [0, 1]."""
    try:
        value, unit = split_number(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a probability (write 5% or 0.05)") from None
    if unit == "%":
        value /= 100.0
    elif unit:
        raise ValueError(f"{text!r}: a probability takes % or nothing, not {unit!r}")
    elif value > 1:
        raise ValueError(f"{text!r}: probability must be between 0 and 1 (write {text}% "
                         f"for percent)")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{text!r}: probability must be between 0% and 100%")
    return value


def parse_time(text: str) -> float:
    """``20ms`` -> 0.02, ``500us``, ``1.5s``; ``0`` needs no unit. Never negative."""
    t = text.strip()
    if t.startswith("-"):
        raise ValueError(f"{text!r}: a time cannot be negative")
    try:
        value, unit = split_number(t)
    except ValueError:
        raise ValueError(f"{text!r} is not a time (write 20ms, 500us or 1s)") from None
    if not unit:
        if value == 0:
            return 0.0
        raise ValueError(f"{text!r}: give a unit (s, ms, us)")
    scale = _TIME_UNITS.get(unit.lower() if unit != "µs" else unit)
    if scale is None:
        raise ValueError(f"{text!r}: unknown time unit {unit!r} (s, ms, us)")
    return value * scale


def parse_rate(text: str) -> float:
    """Rate in bits per second: ``10mbit``, ``512kbit``, ``1gbit``, ``8000bit``; bytes
    per second as ``125kbyte``, ``1.25mbyte``, ``1MB/s``, ``64kB/s``. ``10mbps`` is
    refused as ambiguous (tc(8) reads it as bytes, most people as bits)."""
    t = text.strip()
    if t.startswith("-"):
        raise ValueError(f"{text!r}: a rate cannot be negative")
    try:
        value, unit = split_number(t)
    except ValueError:
        raise ValueError(f"{text!r} is not a rate (write 10mbit, 512kbit or 1gbit)") from None
    u = unit[:-2] if unit.endswith("/s") else unit
    scale = _RATE_BYTE_UNITS_CS.get(u) or _RATE_UNITS.get(u.lower())
    if scale is None:
        if u.lower().endswith("bps") or u.lower() in ("kb", "mb", "gb"):
            raise ValueError(f"{text!r} is ambiguous: write {value:g}{u.lower()[0]}bit for "
                             f"bits/s or {value:g}{u.lower()[0]}byte for bytes/s")
        raise ValueError(f"{text!r}: unknown rate unit {unit or '(none)'!r} "
                         f"(bit, kbit, mbit, gbit; byte, kbyte, mbyte for bytes/s)")
    if value <= 0:
        raise ValueError(f"{text!r}: rate must be positive")
    return value * scale


def format_probability(p: float, exact: bool = False) -> str:
    text = f"{p * 100:.{12 if exact else 4}g}%"
    if exact and parse_probability(text) != p:
        return repr(p)
    return text


def format_time(s: float, exact: bool = False) -> str:
    if s == 0:
        return "0"
    digits = 12 if exact else 4
    if s >= 1:
        text = f"{s:.{digits}g}s"
    elif s >= 1e-3:
        text = f"{s * 1e3:.{digits}g}ms"
    else:
        text = f"{s * 1e6:.{digits}g}us"
    if exact and parse_time(text) != s:
        return f"{s!r}s"
    return text


def format_rate(bits: float, exact: bool = False) -> str:
    digits = 12 if exact else 4
    text = f"{bits:.{digits}g}bit"
    for unit, scale in (("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3)):
        if bits >= scale:
            text = f"{bits / scale:.{digits}g}{unit}"
            break
    if exact and parse_rate(text) != bits:
        return f"{bits!r}bit"
    return text


def parse_size(text: str) -> int:
    """Bytes: ``4M`` -> 4000000, ``500k``, ``1.5G``, ``65536``, ``64kB``; k, M, G are
    powers of 1000 (as scripts/bench and tools/compare_cc.py always took them), ``KiB``
    and ``MiB`` powers of 1024. Must be positive."""
    t = text.strip()
    try:
        value, unit = split_number(t)
    except ValueError:
        raise ValueError(f"{text!r} is not a size (write 4M, 500k or 65536)") from None
    scale = SIZE_UNITS.get(unit.lower())
    if scale is None:
        raise ValueError(f"{text!r}: unknown size unit {unit!r} (k, M, G, KiB, MiB)")
    n = int(value * scale)
    if n <= 0:
        raise ValueError(f"{text!r}: size must be positive")
    return n


#: What congestion control reports as ssthresh before the first loss (RFC 5681 3.1: "it
#: SHOULD be set arbitrarily high"); shown as ``inf``.
INFINITE_SSTHRESH = 0x7FFFFFFF


def format_ssthresh(value) -> str:
    """``ssthresh`` for people: ``inf`` while it is still "arbitrarily high", else octets."""
    if value is None or value >= INFINITE_SSTHRESH:
        return "inf"
    return str(value)
