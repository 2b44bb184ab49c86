"""What an exercise is, how a check records its step trace, and how checks run with time limits.

A *check* is a named, deterministic scenario: it feeds inputs to the student's part (or
to the stack with the part swapped in) and compares each answer with what the RFC says.
Every input and answer goes into a ``Trace``; the first wrong answer ends the check, and
the trace -- the steps so far, what was expected, what came -- is what the student reads.
"""
from __future__ import annotations

import importlib.util
import os
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable

DEFAULT_E2E_BYTES = 4 << 20  # the end-to-end run: 4 MiB through 5 % loss each way


class CheckFailed(Exception):
    """A wrong answer: the trace holds the steps, the expected and the actual value."""


class CheckTimeout(BaseException):
    """The per-check time limit expired (a BaseException, so ``except Exception`` in student code cannot eat it)."""


class NotApplicable(Exception):
    """The check cannot run here (e.g. needs root); it is left out of the score, with the reason."""


def fmt(value) -> str:
    """Values as a student reads them: ints in decimal, floats to six significant digits."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (bytes, bytearray)):
        return repr(bytes(value)) if len(value) <= 24 else f"<{len(value)} bytes {bytes(value[:12])!r}...>"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(fmt(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    return repr(value)


def seqhex(value) -> str:
    """A sequence number as 0x%08x (how the wrap-around exercises show them)."""
    return f"0x{value:08x}" if isinstance(value, int) and not isinstance(value, bool) else fmt(value)


class Trace:
    """The steps of one check, in order."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._n = 0

    def note(self, text: str) -> None:
        """An input or an event (no answer to judge)."""
        self.lines.append(f"   {text}")

    def expect(self, what: str, got, expected, *, close: float | None = None, show=None) -> None:
        """Record ``what -> got``; raise CheckFailed when it is not ``expected`` (within ``close`` for
        floats). ``show`` formats the values (default ``fmt``)."""
        self._n += 1
        show = show or fmt
        ok = _same(got, expected, close)
        g = show(got) if isinstance(got, (int, float)) and not isinstance(got, bool) else fmt(got)
        if ok:
            self.lines.append(f"{self._n:2d}. {what} -> {g}  ok")
            return
        self.lines.append(f"{self._n:2d}. {what} -> {g}")
        self.lines.append(f"    expected {show(expected)}, got {g}")
        raise CheckFailed(f"{what}: expected {show(expected)}, got {g}")

    def fail(self, text: str) -> None:
        self.lines.append(f"    {text}")
        raise CheckFailed(text)


def _same(got, expected, close) -> bool:
    numeric = (int, float)
    if close is not None and isinstance(got, numeric) and isinstance(expected, numeric) \
            and not isinstance(got, bool):
        return abs(got - expected) <= close
    if isinstance(expected, bool):
        return isinstance(got, (bool, int)) and bool(got) == expected
    if isinstance(expected, list) and isinstance(got, (list, tuple)):
        def norm(seq):
            return [tuple(x) if isinstance(x, (list, tuple)) else x for x in seq]
        return norm(got) == norm(expected)
    return got == expected


@dataclass
class Check:
    """One graded scenario. ``kind``: unit (the part alone), packet (the part inside the core,
    exact segments in virtual time), e2e (a whole transfer through the simulator)."""
    name: str
    kind: str
    doc: str
    fn: Callable
    weight: int = 1
    timeout: float = 5.0


@dataclass
class Exercise:
    number: int
    slug: str
    title: str
    lab: str
    clauses: list[str]
    filename: str
    names: list[str]                 # what the student's file must define
    skeleton: str
    reference: Callable[[], object]  # -> the reference part (a namespace with ``names``)
    checks: list[Check]
    wired: bool = True               # False: the core does not call this part yet (see ``wiring``)
    wiring: str = ""                 # how the part enters the stack (or will, after the core merge)
    replacements: Callable | None = None  # part -> {seam name: object} for packet/e2e checks
    tcp_config: dict = field(default_factory=dict)  # TcpConfig fields for the stack running the part (real TUN)

    def check_named(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)


@dataclass
class CheckResult:
    name: str
    kind: str
    weight: int
    passed: bool
    seconds: float = 0.0
    trace: list[str] = field(default_factory=list)
    error: str = ""          # the student's exception with its traceback, or a time-limit message
    skipped: str = ""        # NotApplicable reason: not scored

    def as_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "weight": self.weight, "passed": self.passed,
                "seconds": round(self.seconds, 3), "trace": self.trace, "error": self.error,
                "skipped": self.skipped}


class LoadError(Exception):
    """The student's file cannot be loaded: one clear message, no stack-internal traceback."""


def load_part(ex: Exercise, path: str):
    """Import the student's file and return a namespace of the names the exercise needs."""
    if not os.path.isfile(path):
        raise LoadError(f"{path}: no such file (write it with 'tunstack exercise start {ex.number} DIR')")
    spec = importlib.util.spec_from_file_location(f"student_{ex.slug}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        line = (exc.text or "").rstrip("\n")
        caret = " " * max((exc.offset or 1) - 1, 0) + "^"
        raise LoadError(f"{path}:{exc.lineno}: SyntaxError: {exc.msg}\n    {line.strip()}\n    "
                        f"{caret[len(line) - len(line.lstrip()):] if line else ''}") from None
    except BaseException as exc:  # noqa: BLE001 -- anything at import time is the student's to see
        raise LoadError(f"{path}: importing it raised an exception:\n{student_traceback(exc, path)}") from None
    missing = [n for n in ex.names if not hasattr(module, n)]
    if missing:
        raise LoadError(f"{path}: defines no {', '.join(missing)} (the skeleton from "
                        f"'tunstack exercise start {ex.number} DIR' shows the names)")
    return SimpleNamespace(**{n: getattr(module, n) for n in ex.names}, __file__=path)


def student_traceback(exc: BaseException, path: str | None) -> str:
    """The exception with the frames in the student's file (and the last frame, where it surfaced)."""
    frames = traceback.extract_tb(exc.__traceback__)
    keep = [f for f in frames if path and os.path.abspath(f.filename) == os.path.abspath(path)]
    if frames and (not keep or keep[-1] is not frames[-1]):
        keep.append(frames[-1])
    mine = any(path and os.path.abspath(f.filename) == os.path.abspath(path) for f in frames)
    out = ["Traceback (frames in your file, then where it surfaced):" if mine else
           "Traceback (where it surfaced; none of its frames is in your file):"]
    out += [line.rstrip("\n") for line in traceback.format_list(keep)]
    out += [line.rstrip("\n") for line in traceback.format_exception_only(type(exc), exc)]
    return "\n".join(out)


class _Alarm:
    """Whether a check's time limit is armed. The timer re-fires every ``REFIRE`` s after the limit:
    a CheckTimeout raised while the interpreter runs a ``__del__`` or a gc callback is printed and
    dropped there, and a one-shot alarm would then leave an endless loop running for ever."""
    armed = False


REFIRE = 0.1


def _on_alarm(signum, frame):
    if _Alarm.armed:  # a late signal after the check ended does nothing
        raise CheckTimeout()


def run_check(ex: Exercise, check: Check, part, options: dict, path: str | None = None) -> CheckResult:
    """Run one check under its time limit; never raises for anything the student's code does."""
    limit = check_limit(check, options.get("time_limit"))
    t = Trace()
    res = CheckResult(check.name, check.kind, check.weight, False)
    start = time.perf_counter()
    timed = _main_thread()  # SIGALRM works in the main thread only (the checker's child runs there)
    if timed:  # keep whatever alarm was set before (pytest-timeout's, say) and re-arm it after
        old_handler = signal.signal(signal.SIGALRM, _on_alarm)
        old_delay, _ = signal.getitimer(signal.ITIMER_REAL)
        _Alarm.armed = True
        signal.setitimer(signal.ITIMER_REAL, limit, REFIRE)
    try:
        try:
            check.fn(part, t, options)
        finally:
            _Alarm.armed = False  # first, before any call: from here on an alarm raises nothing
        res.passed = True
    except CheckFailed:
        pass
    except NotApplicable as exc:
        res.skipped = str(exc)
    except CheckTimeout:
        t.lines.append(f"    time limit: the check did not finish in {limit:g} s "
                       f"(an endless loop, or far too slow)")
    except Exception as exc:  # noqa: BLE001 -- the student's bug, shown with its traceback
        res.error = student_traceback(exc, path)
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old_handler if old_handler is not None else signal.SIG_DFL)
            if old_delay:
                signal.setitimer(signal.ITIMER_REAL, max(old_delay - (time.perf_counter() - start), 0.001))
    res.seconds = time.perf_counter() - start
    res.trace = t.lines
    return res


def check_limit(check: Check, cap: float | None) -> float:
    """A check's time limit, lowered to ``cap`` when one is given (tests of the checker itself)."""
    return check.timeout if cap is None else min(check.timeout, cap)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def run_checks(ex: Exercise, part, *, only=None, options=None, path=None):
    """Yield a CheckResult per check (in order); ``only`` limits to the named checks."""
    options = dict(options or {})
    options.setdefault("e2e_bytes", DEFAULT_E2E_BYTES)
    options.setdefault("part_is_reference", path is None)
    options.setdefault("student_path", path)
    for check in ex.checks:
        if only and check.name not in only:
            continue
        yield run_check(ex, check, part, options, path)
