"""Give memory back to the operating system once the connection table has drained.

After a burst of connections (100,000 sequential ones leave up to ``max_time_wait`` TIME-WAIT
records for 2 MSL), the objects are freed but the process keeps the memory: CPython's small-object
allocator (pymalloc) returns an arena (1 MiB in 3.11) only when every block in it is free, and glibc's
``free`` keeps freed chunks in its heaps. So the runtime's housekeeping calls ``observe(live, now)``
with the table's size (connections + TIME-WAIT records); when the table has shrunk a lot since the
last trim, ``trim()``:

0. ``compact()`` (the caller's: ``TcpLayer.compact``): tables sized to what they hold, since a dict
   keeps room for its largest size;
1. ``sys._clear_type_cache()``: CPython 3.11's method cache holds a reference to each attribute
   name it cached; names built at run time (``'do_' + command`` in ``http.server``) would stay
   alive, scattered over the arenas the connections used;
2. ``gc.collect()``: what the applications freed inside reference cycles goes now, not at the next
   full collection, which an idle server may never reach (the stack's own connections hold no cycle:
   ``tests/tcp/test_drained_table.py``);
3. ``malloc_trim(0)`` (glibc, through ctypes): returns the free pages of every malloc heap
   (a no-op where glibc is absent).

Only glibc's heaps can give back what lies between live objects: pymalloc frees an arena only when it
is entirely empty, and after a burst a few long-lived objects (a counter, a float, a closure made at
the end of the burst) sit in most arenas the burst used (measured 65 s after 100,000 sequential
connections, with the trim: 38.6 -> 50.5 MiB with pymalloc, 39.1 -> 42.6 MiB with
``PYTHONMALLOC=malloc``, 39.2 -> 39.9 MiB with glibc's per-thread cache off as well;
docs/robustness.md, *sequential*). So ``tunstack serve --allocator malloc`` runs with
``PYTHONMALLOC=malloc`` and no tcache unless the user chose an allocator: ``use_libc_malloc()``
re-executes the interpreter once with them set.

Rate-limited and cheap to ask: ``observe`` is a few comparisons; a trim runs at most once per
``min_interval`` seconds, and only after at least ``min_drop`` entries (and ``1 - ratio`` of the
peak) went away. A trim held back by the interval is owed: ``next_deadline()`` tells the runtime
when to wake up for it (an idle server has no other reason to). Never called from the sans-I/O
core: the runtime owns the process's memory.
"""
from __future__ import annotations

import ctypes
import gc
import os
import sys


def _malloc_trim():
    """glibc's ``malloc_trim`` (int malloc_trim(size_t pad)), or None where the C library lacks it."""
    try:
        fn = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


#: glibc's per-thread cache off (``tcache_count=0``): see ``use_libc_malloc``
NO_TCACHE = "glibc.malloc.tcache_count=0"


def use_libc_malloc() -> None:
    """Re-execute this process (same pid, same command line) with ``PYTHONMALLOC=malloc``, so that freed
    small objects live in glibc's heaps, which ``malloc_trim`` can give back page by page. Nothing
    happens when ``PYTHONMALLOC`` is set already (``PYTHONMALLOC=pymalloc`` keeps CPython's allocator)
    or without glibc. Call it first thing: the new process starts over.

    glibc's per-thread cache (tcache) goes too (``GLIBC_TUNABLES``, unless it names ``tcache_count``
    already): each thread keeps up to 7 freed chunks of every size class for itself, and
    ``malloc_trim`` never sees them. After a burst, the stack thread's and every handler thread's cache
    hold chunks from all over the heap the burst used, one page pinned each (measured: 2.5 of the
    3.7 MiB still resident 65 s after 100,000 sequential connections; docs/robustness.md, *sequential*)."""
    if os.environ.get("PYTHONMALLOC") or _malloc_trim() is None or not sys.executable:
        return
    os.environ["PYTHONMALLOC"] = "malloc"
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if "tcache_count" not in tunables:
        os.environ["GLIBC_TUNABLES"] = f"{tunables}:{NO_TCACHE}" if tunables else NO_TCACHE
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


class MemoryTrimmer:
    """Decides when the table has drained enough to trim, and trims (``trim`` may be replaced in tests)."""

    def __init__(self, compact=None, min_drop: int = 256, ratio: float = 0.25, min_interval: float = 2.0):
        self.compact = compact            # called first: the tables give up their room (TcpLayer.compact)
        self.min_drop = min_drop          # entries that must have gone since the peak
        self.ratio = ratio                # ... leaving at most this fraction of the peak
        self.min_interval = min_interval  # seconds between two trims
        self.peak = 0                     # the table's largest size since the last trim
        self.last: float | None = None    # when the last trim ran
        self.trims = 0
        self.due: float | None = None     # a trim waits for min_interval to pass
        self.owed_final = False           # trimmed part way down a drain: trim again once the table is empty
        self._libc_trim = _malloc_trim()

    def observe(self, live: int, now: float) -> bool:
        """The table holds ``live`` entries at ``now``: trim if it drained enough. True if it trimmed."""
        self.due = None
        if live >= self.peak:
            self.peak = live
            return False
        final = live == 0 and self.owed_final  # a drain that was trimmed on its way ends with one more
        if not final and (self.peak - live < self.min_drop or live > self.peak * self.ratio):
            return False
        if self.last is not None and now - self.last < self.min_interval:
            self.due = self.last + self.min_interval  # drained, but trimmed lately: wake up then
            return False
        self.peak, self.last = live, now
        self.owed_final = live > 0        # the table's last entries free their pages at empty
        self.trims += 1
        self.trim()
        return True

    def next_deadline(self) -> float | None:
        """When a trim held back by ``min_interval`` may run (the runtime wakes up for it), or None."""
        return self.due

    def trim(self) -> None:
        if self.compact is not None:
            self.compact()
        sys._clear_type_cache()
        gc.collect()
        if self._libc_trim is not None:
            self._libc_trim(0)
