"""The exercises in course order (the order of the labs they belong to)."""
from __future__ import annotations

import importlib

from .framework import Exercise

MODULES = ("ex_checksum", "ex_seq", "ex_reassembler", "ex_rtt", "ex_timer", "ex_reno", "ex_acceptable",
           "ex_window", "ex_epoll")


def exercises() -> list[Exercise]:
    out = [importlib.import_module(f"{__package__}.{m}").EXERCISE for m in MODULES]
    return sorted(out, key=lambda e: e.number)


def find(key: str) -> Exercise:
    """An exercise by number ('2') or slug ('seq'); KeyError with the choices otherwise."""
    for ex in exercises():
        if key == str(ex.number) or key == ex.slug:
            return ex
    raise KeyError(key)
