"""tunstack benchmark (scripts/bench): the stack against two baselines, measured in one run.

Targets, one after the other at each MTU (default 1500 and 65535), all at 192.0.2.2:

  ceiling   tools/ceiling.py: the fastest minimal Python responder on a TUN (with --offload:
            on a TUN with offloads too), not a TCP stack
  kernel    the kernel serving the same applications (the same http.server handler, echo and
            discard that `tunstack serve` runs, as plain Python on kernel sockets), over a
            veth pair into a namespace of its own
  stack     python -m stack serve (with --offload: serve --offload)

Phases (the same clients against every target):

  download     curl fetches a file (default 200 MB) over HTTP      MB/s
  upload       a kernel socket sends (default 200 MB) to discard    MB/s, link drops
  connections  sequential connect + HTTP/1.0 GET + close           conn/s, p50/p99 ms
  concurrency  N keep-alive HTTP/1.1 clients for a fixed time       req/s, errors, p50/p99 ms
  ping         ping -i 0.01 (RTT as ping reports it)                p50/p99 ms
  idle         the stack only: 10,000 connections held by its epoll echo server: RSS per
               connection, CPU while nothing happens
  ofo          once per run: the TCP core in virtual time, per-segment cost of the receive
               path with 10 / 100 / 1,000 out-of-order blocks queued
  send         once per run: the TCP core in virtual time, per-segment cost of the bulk send
               path (an ACK in, the data segments it lets out as datagrams), timestamps off/on

Each stack figure is also a ratio to the ceiling and to the kernel of the same run.
MB is 10**6 bytes. A table goes to stdout, everything to the JSON file.

Modules: config (flags), netns (namespaces, veth), servers (the targets' processes),
kernel_app (the kernel baseline's program), workloads (the clients), idle, ofo, send, measure
(CPU, RSS, link counters), profile (py-spy), report (rows, goals, medians, table),
runner (the run), cli (main).

Network safety: the whole run happens in a network namespace of its own (the harness
re-executes itself under ``unshare --net``; the namespace disappears with the last process
in it, also on a crash or Ctrl-C); the kernel baseline runs in a namespace nested in it;
every device is named after this run's pid; traffic goes only to 192.0.2.2 inside it;
every phase is bounded in count and time; every child is killed (by pid) when we stop.
"""
from .config import PHASES, SCHEMA, TARGETS, BenchError, parse_size  # noqa: F401
from .measure import http_response_done, percentile  # noqa: F401
from .profile import summarize_profile  # noqa: F401
from .report import GOALS, compute_rows, evaluate_goals, median_try, merge_tries  # noqa: F401
