"""Parse packet scripts in packetdrill's syntax into events (plain Python, no scapy).

One event per line: a time, then a packet or a system call::

    0     socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
    +0    < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>
    +0    > S. 0:0(0) ack 1 <mss 1460,sackOK,TS val 200 ecr 100,nop,wscale 9>
    +.1   < . 1:1(0) ack 1 win 65535
    *     > . 1:1(0) ack 1001
    +0    connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)

Times: ``N`` absolute, ``+N`` relative to the previous event, ``*`` any time (outbound only),
``A~B`` / ``+A~+B`` a range (outbound only). Comments: ``//`` to the end of the line, ``/* */``.
Option lines ``--name=value`` may precede the events. Everything packetdrill accepts that this
runner does not (UDP/ICMP packets, shell commands, python blocks, ``...`` end times) is a
parse error naming the line, never silently ignored.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_U32 = 0xFFFFFFFF


class ScriptError(Exception):
    """A bad script: ``file:line: message``."""

    def __init__(self, path: str, line: int, message: str):
        super().__init__(f"{path}:{line}: {message}")
        self.path, self.line, self.message = path, line, message


# ------------------------------------------------------------------ events
@dataclass
class Option:
    """One TCP option as the script spells it: kind name and its values."""
    kind: str                       # nop, eol, mss, wscale, sackOK, sack, TS
    value: object = None            # mss/wscale: int; sack: [(l, r)]; TS: (val, ecr)

    def __str__(self) -> str:
        if self.kind in ("mss", "wscale"):
            return f"{self.kind} {self.value}"
        if self.kind == "sack":
            return "sack " + " ".join(f"{l}:{r}" for l, r in self.value)
        if self.kind == "TS":
            return f"TS val {self.value[0]} ecr {self.value[1]}"
        return self.kind


@dataclass
class Packet:
    direction: str                  # "<" inbound (script -> stack), ">" outbound (stack -> script)
    flags: frozenset                # letters F S R P . U E W
    start: int
    end: int
    length: int
    ack: int | None = None          # None: no "ack N" given (the ACK number is 0)
    win: int | None = None          # None: outbound window not checked
    urg: int = 0
    options: list | None = field(default_factory=list)  # None: <...>, options not checked


@dataclass
class Syscall:
    name: str
    args: list                      # strings as written, "..." for packetdrill's ellipsis
    result: int
    errno: str | None = None        # "EINPROGRESS" etc.


@dataclass
class Event:
    line: int
    text: str                       # the line as written, for diffs
    time_kind: str                  # "abs", "rel", "any", "range-abs", "range-rel"
    time: float                     # seconds (start of a range)
    time_end: float | None
    action: Packet | Syscall


@dataclass
class Script:
    path: str
    events: list
    options: dict                   # --name=value lines


# ------------------------------------------------------------------ parsing
FLAG_LETTERS = set("FSRP.UEW")
_TIME = r"(?:\d+\.\d*|\.\d+|\d+)"
_TIME_RE = re.compile(rf"^(\*|\+?{_TIME}~\+?{_TIME}|\+{_TIME}|{_TIME})\s+(.*)$")
_SEQ_RE = re.compile(r"^(\d+):(\d+)\((\d+)\)$")
_SYSCALL_RE = re.compile(r"^([a-z_][a-z0-9_]*)\((.*)\)\s*=\s*(-?(?:0x[0-9a-fA-F]+|\d+))"
                         r"(?:\s+([A-Z][A-Z0-9_]*))?(?:\s*\((.*)\))?\s*$")
_OPTION_LINE_RE = re.compile(r"^--([a-z_][a-z0-9_]*)=(\S+)$")


def _strip_comments(text: str) -> list[str]:
    """Drop // and /* */ comments, keeping line numbers."""
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    return [re.sub(r"//.*$", "", line).strip() for line in text.split("\n")]


def parse_script(text: str, path: str = "<script>") -> Script:
    events, options = [], {}
    for lineno, line in enumerate(_strip_comments(text), 1):
        if not line:
            continue
        m = _OPTION_LINE_RE.match(line)
        if m:
            if events:
                raise ScriptError(path, lineno, "option lines (--name=value) must come before the events")
            options[m.group(1)] = m.group(2)
            continue
        events.append(_parse_event(line, lineno, path))
    if not events:
        raise ScriptError(path, 1, "no events: expected lines like '0 < S 0:0(0) win 65535'")
    return Script(path, events, options)


def parse_file(path: str) -> Script:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ScriptError(path, 0, f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ScriptError(path, 0, "not a UTF-8 text file") from None
    return parse_script(text, path)


def _parse_event(line: str, lineno: int, path: str) -> Event:
    def fail(msg: str):
        raise ScriptError(path, lineno, msg)

    m = _TIME_RE.match(line)
    if not m:
        if line.startswith("`"):
            fail("shell commands (`...`) are not supported")
        fail(f"expected a time ('0.100', '+0.2' or '*') then an event, got {line!r}")
    ttext, rest = m.group(1), m.group(2).strip()
    if ttext == "*":
        kind, t, t_end = "any", 0.0, None
    elif "~" in ttext:
        a, b = ttext.split("~")
        if a.startswith("+") != b.startswith("+"):
            fail("a time range is '0.1~0.2' or '+0.1~+0.2'")
        kind = "range-rel" if a.startswith("+") else "range-abs"
        t, t_end = float(a.lstrip("+")), float(b.lstrip("+"))
        if t_end < t:
            fail("time range is backwards")
    else:
        kind = "rel" if ttext.startswith("+") else "abs"
        t, t_end = float(ttext.lstrip("+")), None
    if rest.startswith(("<", ">")):
        action = _parse_packet(rest, fail)
        if kind in ("any", "range-abs", "range-rel") and action.direction != ">":
            fail("'*' and time ranges can only be used with outbound packets ('>')")
    elif rest.startswith("..."):
        fail("'...' end times (blocking system calls) are not supported")
    else:
        action = _parse_syscall(rest, fail)
        if kind != "abs" and kind != "rel":
            fail("'*' and time ranges can only be used with outbound packets ('>')")
    return Event(lineno, line, kind, t, t_end, action)


def _parse_packet(text: str, fail) -> Packet:
    direction, rest = text[0], text[1:].strip()
    opts_text = None
    if "<" in rest:
        i = rest.index("<")
        if not rest.endswith(">"):
            fail("an option list is '<opt,opt,...>' at the end of the line")
        rest, opts_text = rest[:i].strip(), rest[i + 1:-1].strip()
    words = rest.split()
    if len(words) < 2:
        fail("expected flags and 'start:end(len)', e.g. '< P. 1:1001(1000) ack 1 win 65535'")
    flags_text = words[0]
    if words[0] in ("udp", "icmp"):
        fail(f"{words[0]} packets are not supported (TCP only)")
    flags = "" if flags_text == "-" else flags_text
    if not flags or not set(flags) <= FLAG_LETTERS or len(set(flags)) != len(flags):
        if flags_text != "-":
            fail(f"bad TCP flags {flags_text!r}: letters from 'FSRP.UEW' (or '-' for none)")
    m = _SEQ_RE.match(words[1])
    if not m:
        fail(f"expected 'start:end(len)', got {words[1]!r}")
    start, end, length = (int(g) for g in m.groups())
    if start > MAX_U32 or end > MAX_U32:
        fail("sequence number out of range")
    if end != (start + length) & MAX_U32 and end != start + length:
        fail("inconsistent TCP sequence numbers and payload size")
    pkt = Packet(direction, frozenset(flags), start, end, length)
    i = 2
    while i < len(words):
        key = words[i]
        if key not in ("ack", "win", "urg") or i + 1 >= len(words) or not words[i + 1].isdigit():
            fail(f"expected 'ack N', 'win N', 'urg N' or '<options>', got {' '.join(words[i:])!r}")
        value = int(words[i + 1])
        if key == "ack":
            pkt.ack = value
        elif key == "win":
            if value > 0xFFFF:
                fail("TCP window value out of range")
            pkt.win = value
        else:
            pkt.urg = value
        i += 2
    if pkt.ack is not None and pkt.ack > MAX_U32:
        fail("TCP ack sequence number out of range")
    if direction == "<" and pkt.win is None:
        fail("window must be specified for inbound packets ('win N')")
    if opts_text is not None:
        if opts_text == "...":
            if direction == "<":
                fail("<...> for TCP options can only be used with outbound packets")
            pkt.options = None
        else:
            pkt.options = [_parse_option(o.strip(), fail) for o in opts_text.split(",")]
    return pkt


def _parse_option(text: str, fail) -> Option:
    words = text.split()
    if not words:
        fail("empty TCP option in '<...>'")
    name = words[0]
    if "*" in words:
        fail(f"'*' inside an option ({text!r}): packetdrill has none; write <...> to skip the option check, "
             "or --tcp_ts_tick_usecs=0 to skip the TS val check")
    try:
        if name in ("nop", "eol", "sackOK") and len(words) == 1:
            return Option(name)
        if name in ("mss", "wscale") and len(words) == 2:
            return Option(name, int(words[1]))
        if name == "sack" and len(words) >= 2:
            blocks = []
            for b in words[1:]:
                left, right = b.split(":")
                blocks.append((int(left), int(right)))
            return Option("sack", blocks)
        if name == "TS" and len(words) == 5 and words[1] == "val" and words[3] == "ecr":
            return Option("TS", (int(words[2]), int(words[4])))
    except ValueError:
        pass
    fail(f"bad TCP option {text!r}: expected nop, eol, mss N, wscale N, sackOK, sack L:R ..., TS val N ecr N")


def _split_args(text: str) -> list[str]:
    """Split on top-level commas ([..] and {..} nest)."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def _parse_syscall(text: str, fail) -> Syscall:
    m = _SYSCALL_RE.match(text)
    if not m:
        fail(f"expected a packet ('<' or '>') or a system call like 'write(4, ..., 1000) = 1000', got {text!r}")
    name, args, result, err = m.group(1), _split_args(m.group(2)), int(m.group(3), 0), m.group(4)
    if result == -1 and err is None:
        fail("a result of -1 needs an errno name, e.g. '= -1 EAGAIN (Resource temporarily unavailable)'")
    return Syscall(name, args, result, err)
