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
    RateSample,
    rfc5681_initial_window,
    rfc6928_initial_window,
)
from .cubic import Cubic
from .newreno import NewReno
from .reno import Reno

ALGORITHMS: dict[str, type[CongestionControl]] = {}  # the registry: name -> class
DEFAULT = "cubic"


def register(cls: type[CongestionControl]) -> type[CongestionControl]:
    """Make an algorithm available by its ``name`` (TcpConfig.congestion, TCP_CONGESTION, --cc).
    Adding one is a new file with a ``CongestionControl`` subclass and one ``register`` line."""
    if not (isinstance(cls, type) and issubclass(cls, CongestionControl)):
        raise TypeError(f"{cls!r} is not a CongestionControl subclass")
    ALGORITHMS[cls.name.lower()] = cls
    return cls


register(Reno)
register(NewReno)
register(Cubic)


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
    "RateSample",
    "Reno",
    "create",
    "register",
    "rfc5681_initial_window",
    "rfc6928_initial_window",
]
