"""One TCP connection: the RFC 9293 state machine, sans-I/O.

Inputs: ``segment_arrives(seg, now)``, the user calls (``send``, ``recv``,
``close``, ``shutdown``, ``abort``) and ``on_timer(now)``. Outputs: segments
appended to ``self.outq`` (the layer drains it), ``next_deadline()``, and
``notify(what)`` callbacks that the runtime turns into wake-ups.

Sequence variables carry their RFC 9293 3.3.1 names and live modulo 2**32.
The class is in three parts: this file (state, opens, user calls, timers), ``input.py``
(segment arrival, RFC 9293 3.10.7, and the receive side) and ``output.py`` (ACK generation,
windows, sending and retransmitting).
Loss recovery (which bytes to resend) lives in ``recovery.py``; how much may be
in flight lives in ``congestion/``; RTT and RTO in ``rtt.py``.
"""
from __future__ import annotations

import errno
from typing import Callable

from ..trace import NULL_TRACER, Tracer
from ..wire.tcp import ACK, RST, SYN, TcpSegment
from . import congestion
from .buffers import ByteQueue, SendQueue
from .config import TcpConfig
from .input import ConnectionInput
from .memory import GUARANTEED, TcpMemory
from .output import _CAN_SEND, ConnectionOutput
from .reassembly import Reassembler
from .recovery import LossRecovery, SendView
from .rtt import RetransmissionTimer, RttEstimator
from .seq import seq_add, seq_diff, seq_ge, seq_le, seq_lt
from .states import FIN_QUEUED, FIN_RECEIVED, FIN_SENT, ORPHANED, RCV_SHUT, Closing, State
from .timers import Timer, Timers

DEFAULT_MSS = 536  # RFC 9293 3.7.1: assume 536 when the peer sends no MSS option
CLOCK_SLACK = 1e-9  # float sums of virtual times: a deadline t0 + d compares equal to it within this
MIN_PMTU = 552     # the smallest path MTU a "fragmentation needed" may set (Linux ip_rt_min_pmtu)
SNDBUF_CWNDS = 4  # autotuned send buffer: this many congestion windows (see _sndbuf_expand)
ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED, ICMP_FRAG_NEEDED = 3, 11, 4
# Destination Unreachable code -> errno, as Linux's icmp_err_convert (RFC 1122 3.2.2.1 codes 0-15)
UNREACH_ERRNO = (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENOPROTOOPT, errno.ECONNREFUSED,
                 errno.EMSGSIZE, errno.EOPNOTSUPP, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENONET,
                 errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTUNREACH,
                 errno.EHOSTUNREACH, errno.EHOSTUNREACH, errno.EHOSTUNREACH)


class Connection(ConnectionInput, ConnectionOutput):
    """A TCP connection between ``local`` and ``remote`` (each ``(addr_bytes, port)``)."""

    def __init__(self, local: tuple[bytes, int], remote: tuple[bytes, int], iss: int, now: float,
                 config: TcpConfig, mss_limit: int, tracer: Tracer = NULL_TRACER,
                 ts_offset: int = 0, challenge_ack: Callable[[float], bool] | None = None,
                 memory: TcpMemory | None = None):
        self.local, self.remote, self.config, self.tracer = local, remote, config, tracer
        self.state = State.CLOSED
        self.outq: list[TcpSegment] = []
        self.notify: Callable[[str], None] = _ignore
        self.error: int = 0                       # errno the socket reports (ECONNRESET, ...)
        self.nospace = False                      # a writer found the send buffer full (Linux SOCK_NOSPACE)
        self.soft_error: int = 0                  # last ICMP soft error, reported on timeout (sk_err_soft)
        self._challenge_ack_allowed = challenge_ack or (lambda now: True)
        self._init_sequence_variables(iss)
        # options
        self.mss_limit = mss_limit                # our MSS (from the MTU or the config)
        self.snd_mss = DEFAULT_MSS                # peer's MSS, RFC 9293 3.7.1 default 536
        self.ts_enabled = self.sack_enabled = False
        self.eff_mss = min(DEFAULT_MSS, mss_limit)
        self.ts_recent = 0
        self.ts_offset = ts_offset
        self.last_ack_sent = 0
        # buffers (buffers.py): sndbuf's first octet is the one at snd_una (after the SYN)
        self.sndbuf = SendQueue()
        self.rcvbuf = ByteQueue()
        self.reasm = Reassembler(config.ofo_max_segments)  # out-of-order data beyond rcv_nxt, SACK blocks
        self._closing = 0                         # states.Closing bits: FIN queued / sent / received, orphaned
        self.fin_seq = 0
        self.nodelay = config.nodelay
        self._init_buffers(config, memory)
        # ACK generation
        self.ack_now = False
        self.unacked_segs = 0
        self._init_timers_and_control(config, iss, now)
        self.listener = None                      # set for passive opens until accepted
        self.tso = False                          # may emit super-segments the link splits (TSO)
        self.ip_fields: tuple[int, int] | None = None  # (TTL, TOS) from IP_TTL/IP_TOS; None: 64, 0
        self.sk_reuse = False                     # the owning socket's SO_REUSEADDR: TIME-WAIT keeps it (Linux tw_reuse)
        self._pending_cc: str | None = None       # TCP_CONGESTION set during fast recovery
        self.resend_why = "rto"                   # why SND.NXT was last rewound: "rto" or "persist"
        self._scheduled: float | None = None      # the layer's timer-heap bookkeeping

    def _init_sequence_variables(self, iss: int) -> None:
        # RFC 9293 3.3.1 send sequence variables
        self.iss = iss
        self.snd_una = self.snd_nxt = iss
        self.snd_max = iss                        # highest sequence sent so far (snd_nxt rewinds on RTO)
        self.snd_wnd = 0
        self.snd_wl1 = self.snd_wl2 = 0
        self.max_snd_wnd = 0
        self.snd_wscale = 0                       # shift the peer applies to its window field
        # receive sequence variables
        self.irs = 0
        self.rcv_nxt = 0
        self.rcv_adv = 0                          # right edge we advertised: RCV.NXT + RCV.WND
        self.rcv_wscale = 0                       # shift we apply to our window field
        self.rcv_up = 0

    def _init_buffers(self, config: TcpConfig, memory: TcpMemory | None) -> None:
        """Buffer sizes (payload octets), autotuned unless fixed, and the stack's memory budget."""
        self.memory = memory or TcpMemory(config.mem_limit)  # shared by the layer's connections
        self.mem_charged = 0                      # what the layer last charged for this connection
        self.ofo_bytes = 0                        # octets in the out-of-order queue (an upper bound)
        self.rcvbuf_cap, self.rcvbuf_max, self.rcvbuf_locked = config.receive_buffer()  # locked: Linux SOCK_RCVBUF_LOCK
        self.sndbuf_cap, self.sndbuf_max, self.sndbuf_locked = config.send_buffer()
        # dynamic right-sizing (Linux tcp_rcv_space_adjust): octets the user read per RTT
        self.rcvq_space = self.rcvbuf_cap // 2    # the largest per-RTT read so far (Linux rcvq_space.space)
        self.rcvq_copied = 0
        self.rcvq_time: float | None = None

    def lock_rcvbuf(self, size: int) -> None:
        """SO_RCVBUF: a fixed receive buffer, no autotuning (Linux SOCK_RCVBUF_LOCK). Before the SYN
        it also sets the window scale."""
        self.rcvbuf_cap = self.rcvbuf_max = size
        self.rcvbuf_locked = True

    def lock_sndbuf(self, size: int) -> None:
        """SO_SNDBUF: a fixed send buffer, no autotuning (Linux SOCK_SNDBUF_LOCK)."""
        self.sndbuf_cap = self.sndbuf_max = size
        self.sndbuf_locked = True

    def mem_usage(self) -> int:
        """Octets this connection holds: send buffer, receive buffer, out-of-order queue."""
        return len(self.sndbuf) + len(self.rcvbuf) + self.ofo_bytes

    def _rcv_space_adjust(self, copied: int, now: float) -> None:
        """Dynamic right-sizing (Linux tcp_rcv_space_adjust): once per RTT, if the user read more than
        ever before in one RTT, let the buffer hold twice that (the window must cover two RTTs' worth
        for the sender to grow). Not while the budget is under pressure, nor when fixed."""
        if self.rcvbuf_locked:
            return
        self.rcvq_copied += copied
        if self.rcvq_time is None:
            self.rcvq_time = now
            return
        rtt = self.rtt.srtt
        if rtt is None or now - self.rcvq_time < rtt:
            return
        copied, self.rcvq_copied, self.rcvq_time = self.rcvq_copied, 0, now
        if copied <= self.rcvq_space:
            return
        self.rcvq_space = copied
        want = min(2 * copied + 16 * self.eff_mss, self.rcvbuf_max)
        if want > self.rcvbuf_cap and self.memory.may_grow():
            self._trace("rcvbuf_grow", now, old=self.rcvbuf_cap, new=want)
            self.rcvbuf_cap = want

    def _sndbuf_expand(self) -> None:
        """Linux tcp_sndbuf_expand: room for SNDBUF_CWNDS congestion windows of at least ten segments
        (Linux: 2 x max(cwnd, TCP_INIT_CWND) segments of truesize, about twice the payload), while
        not fixed and the budget is not under pressure."""
        if self.sndbuf_locked or not self.memory.may_grow():
            return
        want = min(SNDBUF_CWNDS * max(self.cc.cwnd, 10 * self.eff_mss), self.sndbuf_max)
        if want > self.sndbuf_cap:
            self.sndbuf_cap = want

    def _init_timers_and_control(self, config: TcpConfig, iss: int, now: float) -> None:
        self.timers = Timers()                    # every deadline (absolute virtual times), one clear-all
        self.persist_backoff = 0
        self.tlp_high: int | None = None          # SND.MAX when the probe went out (one probe per episode)
        self.keepalive_enabled = False
        self.keepalive_idle = config.keepalive_idle
        self.keepalive_interval = config.keepalive_interval
        self.keepalive_count = config.keepalive_count
        self.keepalive_probes = 0
        self.user_timeout = 0.0                   # TCP_USER_TIMEOUT (RFC 5482) in seconds; 0: off
        self._rtx_since: tuple[int, float] | None = None  # (episode's SND.MAX, its start): Linux retrans_stamp
        self._probes_since = 0.0                  # first zero-window probe of this episode (Linux icsk_probes_tstamp)
        self.retries = 0                          # consecutive RTO expirations
        self.last_recv_time = now
        self.last_send_time = now
        # RTT, congestion control, loss recovery
        self.rtt = RttEstimator(config.initial_rto, config.min_rto, config.max_rto)
        self.rtx = RetransmissionTimer(self.rtt)  # RFC 6298 5: the RTO's deadline, RTT samples, Karn's rule
        self.stats = {"segs_out": 0, "segs_in": 0, "bytes_out": 0, "bytes_in": 0, "retrans": 0,
                      "retrans_bytes": 0, "dupacks_in": 0, "challenge_acks": 0, "drops": 0,
                      "zero_window_probes": 0}
        cc = congestion.create(config.congestion, DEFAULT_MSS, now, config.initial_window)
        self.recovery = LossRecovery(iss, cc, self.stats)  # owns cc; never sees the connection
        self.recovery.trace, self.recovery.trace_cc = self._trace, self._trace_cc

    # ------------------------------------------------------------------ basics
    def _update_eff_mss(self) -> None:
        """RFC 9293 3.7.1 effective send MSS: peer MSS less the TCP options we put in every segment.
        Kept as a plain attribute (read several times per segment); call after options change."""
        self.eff_mss = min(self.snd_mss, self.mss_limit) - (12 if self.ts_enabled else 0)

    @property
    def cc(self) -> congestion.CongestionControl:
        """The congestion controller (loss recovery owns and drives it)."""
        return self.recovery.cc

    @cc.setter
    def cc(self, new: congestion.CongestionControl) -> None:
        self.recovery.cc = new

    def _send_view(self, rtt: float | None = None) -> SendView:
        """The numbers loss recovery works from, as they are now (``rtt``: this ACK's sample)."""
        return SendView(self.snd_una, self.snd_nxt, self.snd_max, self.eff_mss, self.sack_enabled,
                        self.snd_wnd, self.snd_wscale, self.timers.persist is not None, self.tlp_high,
                        self.rtt.srtt, rtt)

    def _retransmit_for_recovery(self, now: float):
        return lambda seq, why, limit: self.retransmit_range(seq, now, why, limit=limit)

    @property
    def closing(self) -> Closing:
        """How far each direction has closed (states.Closing), beside ``state``."""
        return Closing(self._closing)

    @property
    def fin_queued(self) -> bool:
        """The user closed or shut down writing: a FIN follows the data."""
        return bool(self._closing & FIN_QUEUED)

    @property
    def fin_sent(self) -> bool:
        return bool(self._closing & FIN_SENT)

    @property
    def rcv_closed(self) -> bool:
        """The peer's FIN arrived: EOF after the receive buffer drains."""
        return bool(self._closing & FIN_RECEIVED)

    @property
    def user_closed(self) -> bool:
        """close() was called: the connection is orphaned."""
        return bool(self._closing & ORPHANED)

    @property
    def flight_size(self) -> int:
        return seq_diff(self.snd_max, self.snd_una)

    @property
    def rcv_wnd(self) -> int:
        return max(0, seq_diff(self.rcv_adv, self.rcv_nxt))

    def _set_state(self, new: State, now: float, why: str = "") -> None:
        """The one place a state changes (traced, like smoltcp's set_state)."""
        old, self.state = self.state, new
        if new is State.ESTABLISHED:
            self._sndbuf_expand()  # Linux tcp_init_buffer_space: room for the first windows
        if self.tracer.enabled:
            self.tracer.emit("state", now, conn=self.name, old=old.name, new=new.name, why=why)
        self.notify("state")

    @property
    def name(self) -> str:
        import socket as _s
        return (f"{_s.inet_ntoa(self.local[0])}:{self.local[1]}-"
                f"{_s.inet_ntoa(self.remote[0])}:{self.remote[1]}")

    def _trace(self, ev: str, now: float, **fields) -> None:
        if self.tracer.enabled:
            self.tracer.emit(ev, now, conn=self.name, **fields)

    def _trace_cc(self, now: float, why: str) -> None:
        if self.tracer.enabled:
            self.tracer.emit("cc", now, conn=self.name, why=why, **self.cc.state_dict(),
                             srtt=self.rtt.srtt, rto=self.rtt.current_rto(), flight=self.flight_size)

    # ------------------------------------------------------------------ opens
    def open_active(self, now: float) -> None:
        """RFC 9293 3.10.1 OPEN call, active: send SYN, enter SYN-SENT."""
        self._set_state(State.SYN_SENT, now, "connect")
        self._send_syn(now)

    def open_passive(self, syn: TcpSegment, now: float) -> None:
        """RFC 9293 3.10.7.2 LISTEN, third check: SYN -> SYN-RECEIVED, send SYN,ACK."""
        self.irs = syn.seq
        self.rcv_nxt = seq_add(syn.seq, 1)
        self._learn_syn_options(syn)
        self.snd_wnd = syn.window  # RFC 7323 2.2: the window in a SYN is never scaled
        self.max_snd_wnd = self.snd_wnd
        self.snd_wl1, self.snd_wl2 = syn.seq, self.iss
        self.rcv_adv = seq_add(self.rcv_nxt, min(self._free_space(), 0xFFFF))  # the SYN,ACK's window
        self._set_state(State.SYN_RECEIVED, now, "passive open")
        self._send_syn(now)

    def _learn_syn_options(self, syn: TcpSegment) -> None:
        """RFC 9293 3.7.1 MSS; RFC 7323 1.3: wscale and timestamps only when both sides offer."""
        if syn.mss is not None:
            self.snd_mss = max(syn.mss, 64)
        if self.config.window_scaling and syn.wscale is not None:
            self.snd_wscale = min(syn.wscale, 14)  # RFC 7323 2.3: values above 14 are taken as 14
            self.rcv_wscale = _wscale_for(self.rcvbuf_max)  # for the largest the buffer may grow to
        else:
            self.snd_wscale = self.rcv_wscale = 0
        if self.config.timestamps and syn.tsval is not None:
            self.ts_enabled = True
            self.ts_recent = syn.tsval
        self.sack_enabled = self.config.sack and syn.sack_perm
        self._update_eff_mss()
        self.cc.set_mss(self.eff_mss)

    def _send_syn(self, now: float) -> None:
        """SYN or SYN,ACK with our options (RFC 9293 3.7.1, RFC 7323, RFC 2018)."""
        passive = self.state is State.SYN_RECEIVED
        seg = TcpSegment(self.local[1], self.remote[1], self.iss, self.rcv_nxt if passive else 0,
                         SYN | ACK if passive else SYN, min(self._free_space(), 0xFFFF))
        seg.mss = self.mss_limit
        if self.config.window_scaling and (not passive or self.rcv_wscale or self.snd_wscale):
            seg.wscale = self.rcv_wscale if passive else _wscale_for(self.rcvbuf_max)
        if self.config.sack and (not passive or self.sack_enabled):
            seg.sack_perm = True
        if self.config.timestamps and (not passive or self.ts_enabled):
            seg.tsval, seg.tsecr = self._ts_val(now), (self.ts_recent if passive else 0)
        self.snd_nxt = self.snd_max = seq_add(self.iss, 1)
        self.timers.rto = self.rtx.on_syn_sent(now, self.retries == 0)  # RFC 6298 5.1
        self._emit(seg, now)

    # ------------------------------------------------------------------ user calls
    def send(self, data, now: float) -> int:
        """RFC 9293 3.10.2 SEND: queue as much as the send buffer takes; return the count."""
        if self.state in (State.SYN_SENT, State.SYN_RECEIVED, State.ESTABLISHED, State.CLOSE_WAIT):
            if self.fin_queued:
                return -errno.EPIPE
            n = min(self.send_space(), len(data))
            if n < len(data):
                self.nospace = True  # tcp_sendmsg(): out of room, so the ACK that makes some wakes the writer
            if n > 0:
                self.sndbuf.append(data[:n] if n < len(data) else data)  # one copy, into the queue's blocks
                self._output(now)
            return n
        return -(self.error or errno.EPIPE)

    def send_space(self) -> int:
        """Free send-buffer room; none above the memory limit beyond the guaranteed few KiB (Linux
        sk_stream_memory_free / sk_wmem_schedule: send() blocks or fails with EAGAIN)."""
        room = self.sndbuf_cap - len(self.sndbuf)
        if self.memory.over_limit:
            room = min(room, GUARANTEED - len(self.sndbuf))
        return max(0, room)

    def stream_writeable(self) -> bool:
        """sk_stream_is_writeable() (include/net/sock.h): sk_stream_wspace() >= sk_stream_min_wspace(),
        i.e. free send-buffer space >= half of what is queued: POLLOUT while a third of the buffer is free;
        never while the TCP memory budget refuses new data (send_space() 0), or a timed send() would spin."""
        queued = len(self.sndbuf)
        return self.sndbuf_cap - queued >= queued >> 1 and self.send_space() > 0

    def _write_space(self) -> None:
        """An ACK freed send-buffer room (Linux tcp_check_space -> tcp_new_space -> sk_stream_write_space):
        a writer is woken only if one found the buffer full (``nospace``, SOCK_NOSPACE) and it is now
        writeable; otherwise nobody is told, so an edge-triggered EPOLLOUT is not reported again."""
        if self.nospace and self.stream_writeable():
            self.nospace = False
            self.notify("writable")

    def recv(self, n: int, now: float) -> bytes:
        """RFC 9293 3.10.3 RECEIVE: take up to n in-order octets; open the window if it grew enough."""
        data = self.rcvbuf.take(n)  # one copy at most
        if data:
            self._rcv_space_adjust(len(data), now)
            self._maybe_window_update(now)
        return data

    def recv_into(self, buffer: memoryview, now: float) -> int:
        """RECEIVE straight into the caller's buffer (socket.recv_into): one copy."""
        k = self.rcvbuf.take_into(buffer)
        if k:
            self._rcv_space_adjust(k, now)
            self._maybe_window_update(now)
        return k

    def readable_bytes(self) -> int:
        return len(self.rcvbuf)

    @property
    def at_eof(self) -> bool:
        return self.rcv_closed and not self.rcvbuf

    def shutdown_read(self, now: float) -> None:
        """shutdown(SHUT_RD): the user reads no more. Data still arrives and can be read (as on Linux)
        until our FIN is out too; then new data resets the connection (``_process_text``)."""
        self._closing |= RCV_SHUT

    def shutdown_write(self, now: float) -> None:
        """shutdown(SHUT_WR): queue a FIN after the data (RFC 9293 3.10.4 CLOSE, half-close)."""
        if self.state in (State.ESTABLISHED, State.SYN_RECEIVED):
            self._closing |= FIN_QUEUED
            if self.state is State.ESTABLISHED:
                self._set_state(State.FIN_WAIT_1, now, "shutdown")
            self._output(now)
        elif self.state is State.CLOSE_WAIT:
            self._closing |= FIN_QUEUED
            self._set_state(State.LAST_ACK, now, "shutdown")
            self._output(now)
        elif self.state is State.SYN_SENT:
            self._delete_tcb(now, "close in SYN-SENT")

    def close(self, now: float) -> None:
        """RFC 9293 3.10.4 CLOSE. Unread data -> RST (RFC 9293 3.6, RFC 2525 2.17); else FIN."""
        self._closing |= ORPHANED
        if self.state in (State.CLOSED, State.LISTEN):
            return
        if self.rcvbuf or (self.state is State.CLOSE_WAIT and self.reasm):
            self.abort(now, "close with unread data")
            return
        self.shutdown_write(now)
        if self.state is State.FIN_WAIT_2:
            self.timers.fin_wait_2 = now + self.config.fin_timeout

    def abort(self, now: float, why: str = "abort") -> None:
        """RFC 9293 3.10.5 ABORT: send RST in synchronized states, then CLOSED."""
        if self.state in (State.SYN_RECEIVED, State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2,
                          State.CLOSE_WAIT):
            # an acceptable sequence number (Linux tcp_acceptable_seq; RFC 9293 3.10.7.4 second check,
            # RFC 5961 3.2): SND.NXT may already lie beyond the peer's window
            self._emit(TcpSegment(self.local[1], self.remote[1], self._acceptable_seq(), 0, RST, 0), now)
        self._delete_tcb(now, why)

    def _delete_tcb(self, now: float, why: str, err: int = 0) -> None:
        """Enter CLOSED and forget everything (RFC 9293 'delete the TCB')."""
        if err:
            self.error = err
        self.timers.clear_all()
        self.ack_now = False
        if self.state is not State.CLOSED:
            self._set_state(State.CLOSED, now, why)

    # ------------------------------------------------------------------ ICMP errors
    def icmp_error(self, type_: int, code: int, seq: int, mtu: int, now: float) -> bool:
        """RFC 9293 3.9.1.3 (MUST-54): act on an ICMP error quoting our segment at ``seq``. False when
        the quoted SEQ is not in flight (RFC 5927 4.1: SND.UNA <= SEG.SEQ < SND.NXT): ignored."""
        if self.state in (State.CLOSED, State.LISTEN, State.TIME_WAIT) or not (
                seq_le(self.snd_una, seq) and seq_lt(seq, self.snd_max)):
            self._trace("drop", now, reason="icmp_bad_seq", seq=seq)
            return False
        if type_ == ICMP_DEST_UNREACH and code == ICMP_FRAG_NEEDED:
            self._pmtu_reduced(mtu, now)
            return True
        err = UNREACH_ERRNO[code] if type_ == ICMP_DEST_UNREACH and code < len(UNREACH_ERRNO) else errno.EHOSTUNREACH
        self._trace("icmp_error", now, type=type_, code=code, errno=errno.errorcode.get(err, err))
        if self.state is State.SYN_SENT:
            # as Linux (tcp_v4_err): a connect that draws an unreachable fails at once (ECONNREFUSED,
            # EHOSTUNREACH, ...); RFC 9293 SHLD-25 would keep codes 0, 1 and 5 soft even here
            self._delete_tcb(now, "ICMP error in SYN-SENT", err)
            self.notify("error")
            return True
        # RFC 9293 SHLD-25/26 with RFC 5461: in a synchronized state every error is soft: remembered,
        # and reported only if the connection times out (Linux sk_err_soft)
        self.soft_error = err
        return True

    def _pmtu_reduced(self, mtu: int, now: float) -> None:
        """RFC 1191 PMTUD: lower the MSS to the next-hop MTU (never raise it; at least MIN_PMTU) and
        resend what was in flight at the smaller size (as Linux tcp_simple_retransmit; cwnd unchanged)."""
        mss = max(mtu, MIN_PMTU) - 40
        if mss >= self.mss_limit:
            return
        self._trace("pmtu", now, mtu=mss + 40, old_mss=self.eff_mss)
        self.mss_limit = mss
        self._update_eff_mss()
        self.cc.set_mss(self.eff_mss)
        if self.state in _CAN_SEND and seq_lt(self.snd_una, self.snd_max):
            self.snd_nxt = self.snd_una  # everything in flight was sent too large: go again from SND.UNA
            self.resend_why = "pmtu"
            self._output(now)

    # ------------------------------------------------------------------ timers
    def next_deadline(self) -> float | None:
        return self.timers.next_deadline()

    def on_timer(self, now: float) -> None:
        """Run every timer that is due."""
        if self.timers.due(Timer.TIME_WAIT, now):
            self._delete_tcb(now, "2MSL timeout")
            return
        if self.timers.due(Timer.FIN_WAIT_2, now):
            self._delete_tcb(now, "FIN-WAIT-2 timeout")
            return
        if self.timers.due(Timer.PTO, now):
            self._on_pto(now)  # re-arms the RTO one RTO from now
        if self.timers.due(Timer.RTO, now):
            self._on_rto(now)
        if self.timers.due(Timer.PERSIST, now):
            self._on_persist(now)
        if self.timers.due(Timer.KEEPALIVE, now):
            self._on_keepalive(now)
        if self.timers.due(Timer.DELACK, now):
            self.timers.delack = None
            if self.state is not State.CLOSED:
                self._send_ack(now)

    def _on_rto(self, now: float) -> None:
        """RFC 6298 5.4-5.6: retransmit the earliest unacknowledged segment, back off, restart."""
        self.timers.rto = None
        self.retries += 1
        if self.snd_wnd == 0 and self.state.synchronized and now - self.last_recv_time <= 2 * self.config.max_rto:
            # the peer shrank its window to zero under data in flight: our retransmissions are
            # window probes now; it is alive while it answers (RFC 9293 3.8.6.1, MUST-35/37; Linux)
            self.retries = min(self.retries, 1)
        limit = {State.SYN_SENT: self.config.syn_retries,
                 State.SYN_RECEIVED: self.config.synack_retries}.get(self.state, self.config.retries2)
        if self._retransmissions_timed_out(now, limit):
            self._trace("timeout", now, retries=self.retries - 1)
            self._delete_tcb(now, "retransmission limit", self.soft_error or errno.ETIMEDOUT)  # Linux tcp_write_err
            self.notify("error")
            return
        # RFC 6298 5.5-5.6: back off, restart; Karn: nothing outstanding is timed, and an ACK that
        # echoes a timestamp from before this timeout answers an earlier copy (its ACK was lost)
        self.rtx.on_expire(now, self.snd_una, self._ts_val(now))
        self.timers.rto = self.rtx.deadline
        if self.state in (State.SYN_SENT, State.SYN_RECEIVED):
            self._trace("retransmit", now, seq=self.iss, len=0, why="rto_syn", rto=self.rtt.current_rto())
            self.stats["retrans"] += 1
            self._send_syn(now)
            return
        if self.snd_una == self.snd_max:
            self.timers.rto = self.rtx.stop()
            return
        self.recovery.on_rto(self._send_view(), now)
        self.snd_nxt = self.snd_una  # RFC 5681 3.1: go back to SND.UNA and resend in order
        self.resend_why = "rto"
        self.tlp_high = None
        self.timers.pto = None
        self._trace_cc(now, "rto")
        self.retransmit_range(self.snd_una, now, "rto")
        since = None if self._rtx_episode_over() else self._rtx_since[1]
        self.timers.rto = now + self._clamp_to_user_timeout(self.rtx.deadline - now, since, now)

    def _on_persist(self, now: float) -> None:
        """RFC 9293 3.8.6.1: probe the peer's window; back off; never give up while answered.

        A window too small for a segment (SWS avoidance) is probed with the data that fits. A zero
        window is probed as Linux does (tcp_write_wakeup -> tcp_xmit_probe_skb): an empty segment at
        SND.UNA-1, which is outside the peer's window, so that it answers with an ACK carrying its
        window; RFC 9293 3.8.6.1 allows this as well as one new octet, but a receiver that drops a
        segment ending beyond its window (Linux 6.18) drops the octet *and the ACK on it*, and
        SND.NXT would then lie past the peer's window. ``TcpConfig.zero_window_probe = "octet"``
        gives the RFC's one-octet probe (resent, not a new octet each time, until taken)."""
        self.timers.persist = None
        if self.state not in _CAN_SEND or not self.sndbuf:
            return
        if self._probes_timed_out(now):
            self._trace("timeout", now, why="user_timeout", probes=self.persist_backoff)
            self._delete_tcb(now, "user timeout", self.soft_error or errno.ETIMEDOUT)  # Linux tcp_probe_timer
            self.notify("error")
            return
        self.stats["zero_window_probes"] += 1
        if self.snd_wnd == 0 and self.config.zero_window_probe != "octet":
            seq = seq_add(self.snd_una, -1)
            self._trace("persist_probe", now, seq=seq, len=0, backoff=self.persist_backoff)
            self._emit(TcpSegment(self.local[1], self.remote[1], seq, 0, ACK, 0), now)
        else:
            self.snd_nxt = self.snd_una
            n = 1 if self.snd_wnd == 0 else min(len(self.sndbuf), self.snd_wnd, self.eff_mss)
            self._trace("persist_probe", now, seq=self.snd_nxt, len=n, backoff=self.persist_backoff)
            self._send_data(0, n, now, fin=False, probe=True)
        self.timers.rto = self.rtx.stop()  # the probe is timed by the persist timer, not the RTO
        self.persist_backoff += 1
        self.timers.persist = now + self._clamp_to_user_timeout(self._persist_interval(), self._probes_since, now)

    def _on_keepalive(self, now: float) -> None:
        """RFC 9293 3.8.4: after idle, probe with SEG.SEQ = SND.NXT-1; ETIMEDOUT after keepalive_count."""
        if self.state is not State.ESTABLISHED:
            self.timers.keepalive = None
            return
        if self.snd_una != self.snd_max or self.sndbuf:
            self.timers.keepalive = now + self.keepalive_idle  # MUST-26: no probe while data is outstanding
            return
        if self._keepalive_timed_out(now):
            self._delete_tcb(now, "keepalive timeout", self.soft_error or errno.ETIMEDOUT)
            self.notify("error")
            return
        self.keepalive_probes += 1
        self._trace("keepalive_probe", now, n=self.keepalive_probes)
        self._emit(TcpSegment(self.local[1], self.remote[1], seq_add(self.snd_nxt, -1), 0, ACK, 0), now)
        self.timers.keepalive = now + self.keepalive_interval

    # ------------------------------------------------------------------ TCP_USER_TIMEOUT (RFC 5482)
    def _retransmissions_timed_out(self, now: float, limit: int) -> bool:
        """Give up on this RTO expiry? R2 (RFC 9293 3.8.3): more than ``limit`` retransmissions; with
        TCP_USER_TIMEOUT in a synchronized state (RFC 5482 3, as Linux retransmits_timed_out(), which
        leaves the handshake to the SYN retries): data unacknowledged for at least the timeout, counted
        from the first transmission of the octet at SND.UNA when the episode's first expiry came (Linux
        retrans_stamp). The episode lasts while retransmitted data is unacknowledged (up to SND.MAX
        of its last expiry); its first expiry only retransmits."""
        if not (self.user_timeout and self.state.synchronized):
            return self.retries > limit
        if self._rtx_episode_over():
            times = self.rtx.sampler.sent_times  # oldest unacknowledged new data first, until a retransmission
            self._rtx_since = (self.snd_max, times[0][1] if times else now - self.rtt.current_rto())
            return False
        self._rtx_since = (self.snd_max, self._rtx_since[1])
        return now - self._rtx_since[1] >= self.user_timeout - CLOCK_SLACK

    def _rtx_episode_over(self) -> bool:
        return self._rtx_since is None or seq_ge(self.snd_una, self._rtx_since[0])

    def _probes_timed_out(self, now: float) -> bool:
        """Zero-window probing for at least TCP_USER_TIMEOUT, even if every probe is answered (Linux
        tcp_probe_timer, icsk_probes_tstamp): the first expiry of an episode starts the clock."""
        if self.persist_backoff == 0:
            self._probes_since = now
            return False
        return bool(self.user_timeout) and now - self._probes_since >= self.user_timeout - CLOCK_SLACK

    def _keepalive_timed_out(self, now: float) -> bool:
        """Keepalive gives up after TCP_KEEPCNT unanswered probes; with TCP_USER_TIMEOUT instead once
        nothing was received for the timeout and a probe went out (Linux tcp_keepalive_timer)."""
        if self.user_timeout:
            return self.keepalive_probes > 0 and now - self.last_recv_time >= self.user_timeout - CLOCK_SLACK
        return self.keepalive_probes >= self.keepalive_count

    def _clamp_to_user_timeout(self, interval: float, since: float | None, now: float) -> float:
        """A retransmission or probe timer, whose episode began at ``since``, fires no later than the user
        timeout expires (Linux tcp_clamp_rto_to_user_timeout / tcp_clamp_probe0_to_user_timeout); at once
        if it has passed."""
        if not self.user_timeout or since is None:
            return interval
        remaining = self.user_timeout - (now - since)
        return min(interval, remaining) if remaining > CLOCK_SLACK else 0.001  # Linux: one jiffy

    def set_keepalive(self, on: bool, now: float) -> None:
        self.keepalive_enabled = on
        self.keepalive_probes = 0
        self.timers.keepalive = now + self.keepalive_idle if on and self.state is State.ESTABLISHED else None

    def set_congestion(self, name: str, now: float) -> None:
        """TCP_CONGESTION: switch algorithm, keeping cwnd and ssthresh; deferred until fast recovery ends."""
        self._pending_cc = None
        if name == self.cc.name:
            return
        if self.recovery.in_recovery:
            self._pending_cc = name
            return
        new = congestion.create(name, self.eff_mss, now, self.config.initial_window)
        if self.state not in (State.CLOSED, State.SYN_SENT):
            new.inherit(self.cc)  # keep cwnd and ssthresh (and keep them across a later set_mss)
        self.cc = new
        self._trace_cc(now, "set_congestion")

    def info(self) -> dict:
        """What ``ss -ti`` shows: state, windows, cwnd, RTT, counters."""
        return {"state": self.state.name, "local": self.name.split("-")[0], "remote": self.name.split("-")[1],
                "snd_una": self.snd_una, "snd_nxt": self.snd_nxt, "snd_wnd": self.snd_wnd,
                "rcv_nxt": self.rcv_nxt, "rcv_wnd": self.rcv_wnd, "mss": self.eff_mss,
                "srtt": self.rtt.srtt, "rttvar": self.rtt.rttvar, "rto": self.rtt.current_rto(),
                "cc": self.cc.name, **self.cc.state_dict(), "unacked": self.flight_size,
                "sndbuf": len(self.sndbuf), "rcvbuf": len(self.rcvbuf), "sndbuf_cap": self.sndbuf_cap,
                "rcvbuf_cap": self.rcvbuf_cap, "ofo_bytes": self.ofo_bytes, "wscale": (self.snd_wscale, self.rcv_wscale),
                "ts": self.ts_enabled, "sack": self.sack_enabled, **self.stats}


def _wscale_for(buf: int) -> int:
    """The smallest shift that lets the window field cover the buffer (RFC 7323 2.3, at most 14)."""
    shift = 0
    while (0xFFFF << shift) < buf and shift < 14:
        shift += 1
    return shift


def _ignore(_what: str) -> None:
    pass
