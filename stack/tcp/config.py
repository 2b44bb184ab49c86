"""Per-stack TCP settings with their defaults and where each comes from."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TcpConfig:
    mss: int | None = None             # our MSS; None: derived from the MTU (MTU - 40)
    # Buffers hold payload only: Linux's sizes count bookkeeping too, so SO_RCVBUF/SO_SNDBUF read back
    # twice these. rcvbuf/sndbuf fix every connection's buffer (a stack-wide SO_RCVBUF/SO_SNDBUF: no
    # autotuning); None (the default) autotunes them: they start at *_initial and grow with use up to
    # *_max (docs/design-notes.md "Buffers and the memory budget").
    rcvbuf: int | None = None          # fixed receive buffer; None: autotuned (Linux tcp_moderate_rcvbuf)
    sndbuf: int | None = None          # fixed send buffer; None: autotuned (Linux tcp_sndbuf_expand)
    rcvbuf_initial: int = 64 << 10     # Linux tcp_rmem[1] 128 KiB: a 64 KiB window
    sndbuf_initial: int = 8 << 10      # Linux tcp_wmem[1] 16 KiB (grown to four congestion windows at once)
    rcvbuf_max: int = 6 << 20          # autotuning ceiling (Linux tcp_rmem[2]); the window scale is chosen from it
    sndbuf_max: int = 4 << 20          # autotuning ceiling (Linux tcp_wmem[2])
    mem_limit: int = 128 << 20         # all TCP buffers together (like tcp_mem): pressure at 2/3, low at 1/2
    window_scaling: bool = True        # RFC 7323 2
    timestamps: bool = True            # RFC 7323 3-5
    sack: bool = True                  # RFC 2018
    nodelay: bool = False              # Nagle on (RFC 896) unless TCP_NODELAY
    delack: float = 0.040              # delayed-ACK timeout; RFC 9293 3.8.6.3 MUST be < 0.5 s (issue: <= 200 ms)
    msl: float = 30.0                  # TIME_WAIT lasts 2*MSL (Linux: 60 s)
    fin_timeout: float = 60.0          # orphaned FIN_WAIT_2 lifetime (Linux tcp_fin_timeout)
    initial_rto: float = 1.0           # RFC 6298 2.1
    min_rto: float = 0.2               # RFC 6298 2.4 says 1 s; Linux uses 200 ms (see docs)
    max_rto: float = 120.0             # RFC 6298 2.5 allows an upper bound >= 60 s
    syn_retries: int = 7               # RFC 9293 MUST-23: at least 3 minutes (1+2+...+64+128 = 255 s)
    synack_retries: int = 5            # like Linux tcp_synack_retries
    retries2: int = 15                 # RFC 9293 3.8.3 R2; like Linux tcp_retries2
    congestion: str = "cubic"          # stack.tcp.congestion registry name
    initial_window: int | None = None  # segments; None: RFC 5681 3.1 (2-4); Linux uses 10 (RFC 6928)
    keepalive_idle: float = 7200.0     # RFC 9293 3.8.4 / RFC 1122: >= 2 hours by default
    keepalive_interval: float = 75.0
    keepalive_count: int = 9
    challenge_ack_limit: int = 1000    # RFC 5961 7: per second, per stack
    ofo_max_segments: int = 4096       # bound on the out-of-order queue
    syn_backlog: int = 4096            # like Linux tcp_max_syn_backlog: the SYN queue is min(backlog, this)
    syncookies: int = 1                # like Linux tcp_syncookies: 0 off, 1 once the SYN queue is full, 2 always
    somaxconn: int = 4096              # like Linux net.core.somaxconn: listen() backlogs are clamped to it
    max_connections: int = 65536       # full connections (TIME-WAIT records not counted); beyond: refused, counted
    max_time_wait: int = 16384         # like Linux tcp_max_tw_buckets: beyond it, TIME-WAIT is skipped
    persist_max: float = 60.0          # cap on persist-timer backoff
    zero_window_probe: str = "ack"     # "ack": empty segment at SND.UNA-1 (Linux); "octet": one new octet (RFC 9293 3.8.6.1)

    def receive_buffer(self) -> tuple[int, int, bool]:
        """(size at the start, largest, fixed) of a connection's receive buffer."""
        if self.rcvbuf is not None:
            return self.rcvbuf, self.rcvbuf, True
        return self.rcvbuf_initial, max(self.rcvbuf_initial, self.rcvbuf_max), False

    def send_buffer(self) -> tuple[int, int, bool]:
        """(size at the start, largest, fixed) of a connection's send buffer."""
        if self.sndbuf is not None:
            return self.sndbuf, self.sndbuf, True
        return self.sndbuf_initial, max(self.sndbuf_initial, self.sndbuf_max), False

    def window_scale_buffer(self) -> int:
        """The buffer the window scale is chosen for at SYN time: the largest it may grow to (Linux)."""
        return self.receive_buffer()[1]
