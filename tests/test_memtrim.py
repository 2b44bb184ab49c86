"""stack/runtime/memtrim.py: when the runtime gives memory back (the decision, in given times; no clock read)."""
from stack.runtime.memtrim import MemoryTrimmer


def trimmer(**kw) -> tuple[MemoryTrimmer, list]:
    t = MemoryTrimmer(**kw)
    calls: list = []
    t.trim = lambda: calls.append(t.peak)
    return t, calls


def test_trims_once_the_table_drained_to_a_quarter_of_its_peak():
    t, calls = trimmer(min_drop=256, ratio=0.25, min_interval=10.0)
    for n in range(0, 16001, 1000):
        assert not t.observe(n, 1.0)          # growing: never
    assert t.peak == 16000
    assert not t.observe(4001, 2.0)           # just above a quarter
    assert t.observe(4000, 3.0)               # a quarter: trim
    assert calls == [4000] and t.trims == 1 and t.last == 3.0
    assert not t.observe(3000, 3.5)           # the peak is now 4000: 3000 is three quarters of it


def test_at_most_one_trim_per_min_interval():
    t, calls = trimmer(min_drop=256, ratio=0.25, min_interval=10.0)
    t.observe(8000, 0.0)
    assert t.observe(1000, 1.0)
    assert t.next_deadline() is None
    assert not t.observe(0, 5.0)              # drained again, but 4 s after the last trim
    assert t.next_deadline() == 11.0          # owed: the runtime wakes up for it
    assert not t.observe(0, 10.9)
    assert t.observe(0, 11.0)                 # 10 s after: the rest goes
    assert t.next_deadline() is None
    assert len(calls) == 2


def test_small_drops_never_trim():
    t, calls = trimmer(min_drop=256, ratio=0.25, min_interval=10.0)
    for i in range(100):                      # a quiet server: 0..200 connections, over and over
        t.observe(200, i * 20.0)
        assert not t.observe(0, i * 20.0 + 10)
    assert calls == []


def test_trim_runs_where_glibc_is_absent():
    t = MemoryTrimmer()
    t._libc_trim = None                       # musl, macOS: nothing to call, the rest still runs
    t.trim()
    t2 = MemoryTrimmer()
    t2.trim()                                 # glibc here (or not): never raises


CHILD = ("import os, sys; print('started', flush=True); from stack.runtime.memtrim import use_libc_malloc; "
         "use_libc_malloc(); print(os.environ.get('PYTHONMALLOC'), sys.argv[1:])")


TUNABLES_CHILD = ("import os; from stack.runtime.memtrim import use_libc_malloc; use_libc_malloc(); "
                  "print(os.environ.get('PYTHONMALLOC'), os.environ.get('GLIBC_TUNABLES'))")


def _run_child(child=CHILD, **env):
    import os
    import subprocess
    import sys
    from pathlib import Path
    full = {k: v for k, v in os.environ.items() if k not in ("PYTHONMALLOC", "GLIBC_TUNABLES")}
    full.update(env, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return subprocess.run([sys.executable, "-c", child, "x", "--y"], env=full, capture_output=True, text=True,
                          timeout=60).stdout.splitlines()


def test_a_server_re_executes_itself_once_with_libc_malloc():
    from stack.runtime.memtrim import _malloc_trim
    out = _run_child()
    if _malloc_trim() is None:   # no glibc: nothing to gain, the process goes on as it is
        assert out == ["started", "None ['x', '--y']"]
    else:                        # the same command line again, once, with the allocator set
        assert out == ["started", "started", "malloc ['x', '--y']"]


def test_an_allocator_the_user_chose_is_kept():
    assert _run_child(PYTHONMALLOC="pymalloc") == ["started", "pymalloc ['x', '--y']"]


def test_the_re_executed_server_runs_without_glibcs_thread_cache():
    """tcache chunks are invisible to malloc_trim: the new process runs with the cache off, and a
    GLIBC_TUNABLES of the user's is kept (extended, or left as it is if it sets tcache_count itself)."""
    from stack.runtime.memtrim import _malloc_trim
    if _malloc_trim() is None:
        assert _run_child(TUNABLES_CHILD) == ["None None"]
        return
    assert _run_child(TUNABLES_CHILD) == ["malloc glibc.malloc.tcache_count=0"]
    assert _run_child(TUNABLES_CHILD, GLIBC_TUNABLES="glibc.malloc.arena_max=2") == [
        "malloc glibc.malloc.arena_max=2:glibc.malloc.tcache_count=0"]
    assert _run_child(TUNABLES_CHILD, GLIBC_TUNABLES="glibc.malloc.tcache_count=3") == [
        "malloc glibc.malloc.tcache_count=3"]
    assert _run_child(TUNABLES_CHILD, PYTHONMALLOC="pymalloc") == ["pymalloc None"]


def test_a_drain_trimmed_on_its_way_ends_with_a_trim_at_empty():
    """The last quarter of a drain frees fewer than min_drop entries; their pages are given back once
    the table is empty (one more trim), and a quiet table at 0 does not trim again."""
    t, calls = trimmer(min_drop=256, ratio=0.25, min_interval=2.0)
    t.observe(16384, 0.0)
    assert t.observe(4000, 10.0) and t.observe(900, 20.0) and t.observe(200, 30.0)
    assert t.observe(0, 40.0)          # 200 gone (< min_drop): the final trim
    assert not t.observe(0, 50.0)      # and only one
    assert len(calls) == 4
