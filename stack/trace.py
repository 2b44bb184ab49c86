"""Trace events: one home for everything the stack wants to tell an observer.

A Tracer receives events as (name, fields). Sinks: JSON lines to a file, an
in-memory list (tests, labs), or nothing (the default, costing one attribute
check on the hot path: callers test ``tracer.enabled`` before building fields).
"""
from __future__ import annotations

import json
import threading
from typing import Any, Callable, TextIO


class Tracer:
    """Collects trace events. ``enabled`` is False for the null tracer."""

    enabled = True

    def __init__(self, sink: Callable[[dict], None] | None = None):
        self._sinks: list[Callable[[dict], None]] = [sink] if sink else []

    def add_sink(self, sink: Callable[[dict], None]) -> None:
        self._sinks.append(sink)

    def emit(self, ev: str, t: float, **fields: Any) -> None:
        record = {"t": round(t, 6), "ev": ev, **fields}
        for sink in self._sinks:
            sink(record)


class NullTracer(Tracer):
    enabled = False

    def __init__(self):
        super().__init__()

    def emit(self, ev: str, t: float, **fields: Any) -> None:  # pragma: no cover - never called on purpose
        pass


NULL_TRACER = NullTracer()


class ListSink:
    """Keeps events in memory: ``sink.events`` (tests and labs read it)."""

    def __init__(self):
        self.events: list[dict] = []

    def __call__(self, record: dict) -> None:
        self.events.append(record)

    def of(self, ev: str) -> list[dict]:
        return [e for e in self.events if e["ev"] == ev]


class JsonLinesSink:
    """Writes one JSON object per line; thread-safe; flushes on close."""

    def __init__(self, stream: TextIO):
        self._stream = stream
        self._lock = threading.Lock()

    def __call__(self, record: dict) -> None:
        line = json.dumps(record, separators=(",", ":"), default=str)
        with self._lock:
            self._stream.write(line + "\n")

    def close(self) -> None:
        with self._lock:
            self._stream.flush()
            self._stream.close()


def read_events(path) -> tuple[list[dict], int]:
    """The events of a JSON-lines trace file and the number of lines that were not events
    (for observers: the plots and the ladder). A partly written last line (a trace still
    being written) is skipped like any other bad line. ValueError with a one-line message
    when the file is missing, unreadable, or holds no event at all."""
    import os
    name = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"no such file: {name!r}")
    if os.path.isdir(path):
        raise ValueError(f"{name!r} is a directory, not a file")
    events, bad = [], 0
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    ev = json.loads(line)
                except ValueError:
                    bad += 1
                    if bad > 20 and not events:
                        break
                    continue
                if isinstance(ev, dict) and "ev" in ev and isinstance(ev.get("t"), (int, float)):
                    events.append(ev)
                else:
                    bad += 1
    except UnicodeDecodeError:
        events = []
    except OSError as exc:
        raise ValueError(f"cannot read {name!r}: {exc.strerror}") from None
    if not events:
        raise ValueError(f"{name!r} is not a JSON-lines trace "
                         f"(write one with 'tunstack serve --trace FILE')")
    return events, bad
