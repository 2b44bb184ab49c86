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
