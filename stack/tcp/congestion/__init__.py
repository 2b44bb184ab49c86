"""Congestion control: one interface (``base.CongestionControl``), three algorithms.

    >>> from stack.tcp import congestion
    >>> cc = congestion.create("newreno", mss=1460, now=0.0)
    >>> cc.cwnd, cc.partial_ack_recovery
    (14600, True)

``DEFAULT`` is "cubic", as in Linux, Windows and macOS: the kernel peers in our labs
run CUBIC, so a default tunstack connection behaves like theirs. Choose "newreno"
for the simplest window to read and reason about, "reno" to see why NewReno exists.
See docs/congestion.md.
"""
from __future__ import annotations

from .base import (
    INFINITE_SSTHRESH,
    CongestionControl,
    rfc5681_initial_window,
    rfc6928_initial_window,
)
from .cubic import Cubic
from .newreno import NewReno
from .reno import Reno

ALGORITHMS: dict[str, type[CongestionControl]] = {"reno": Reno, "newreno": NewReno, "cubic": Cubic}
DEFAULT = "cubic"


def create(name: str, mss: int, now: float, initial_window: int | None = None, **options) -> CongestionControl:
    """A new controller by registry name; ``options`` go to the class (e.g. Cubic's
    ``fast_convergence``). Raises ValueError for an unknown name."""
    cls = ALGORITHMS.get(name.lower()) if isinstance(name, str) else None
    if cls is None:
        choices = ", ".join(sorted(ALGORITHMS))
        raise ValueError(f"unknown congestion control {name!r}; choose one of: {choices}")
    return cls(mss, now, initial_window, **options)


__all__ = [
    "ALGORITHMS",
    "DEFAULT",
    "INFINITE_SSTHRESH",
    "CongestionControl",
    "Cubic",
    "NewReno",
    "Reno",
    "create",
    "rfc5681_initial_window",
    "rfc6928_initial_window",
]
