"""Where stack sockets differ from Linux today: ``"module::test"`` (or ``"module::test[params]"``) -> why.

conftest.py marks the stack run of each listed test ``xfail(strict=True)``: it must fail
(the difference is real) and turns into a failure (XPASS) once fixed, so the entry is then
removed here and from docs/api.md's table, which lists the same differences.
"""
C = "test_diff_connect::"
D = "test_diff_data::"
S = "test_diff_shutdown_bind::"
O = "test_diff_options::"
R = "test_diff_readiness::"
EVENTFD = "fileno() is an eventfd: it can only be readable (POLLIN) and is always writable"
UNKNOWN_READS_0 = "the option is not in a table: an unknown option reads back as 0 (or what was stored)"

STACK_DIFFERENCES: dict[str, str] = {
    # connect()
    C + "test_connect_after_refused_can_succeed_on_same_socket":
        "a blocking connect's ECONNREFUSED is reported again by the next connect() instead of starting a new attempt",
    C + "test_timeout_mode_connect_when_connected_returns_zero_once_then_eisconn":
        "no SS_CONNECTING/SS_CONNECTED distinction: the first connect() after a completed one is EISCONN, not 0",
    C + "test_timeout_mode_connect_again_after_refused_is_econnaborted":
        "no SS_CONNECTING state: connect() after a failed timed connect reports ECONNREFUSED again, not ECONNABORTED",
    C + "test_connect_on_listening_socket": "connect() on a listening socket is EINVAL (Linux: EISCONN)",
    C + "test_nonblocking_connect_twice_is_ealready":
        "connect_ex() maps every BlockingIOError to EINPROGRESS, so a second one gives EINPROGRESS, not EALREADY",
    C + "test_pending_connect_is_not_writable":
        "fileno() is always writable: a pending connect shows writable at once (writable readiness not wired)",
    C + "test_pending_connect_send_is_eagain": "send() during SYN-SENT on a non-blocking socket is EPIPE (Linux: EAGAIN)",
    C + "test_connect_ex_with_timeout_returns_eagain":
        "connect_ex() with a timeout that expires returns EINVAL (CPython on Linux: EAGAIN/EWOULDBLOCK)",
    C + "test_nonblocking_connect_then_connect_again_succeeds_once_then_eisconn":
        "connect() after a non-blocking connect completed is EISCONN at once (Linux: 0 once, then EISCONN)",
    # send/recv
    D + "test_msg_waitall_waits_for_all": "MSG_WAITALL is ignored: recv returns what is there (a short read)",
    D + "test_send_on_unconnected_socket_is_epipe": "send() on an unconnected socket is ENOTCONN (Linux: EPIPE)",
    D + "test_send_on_listening_socket_is_epipe": "send() on a listening socket is ENOTCONN (Linux: EPIPE)",
    D + "test_send_after_reset_is_econnreset_then_epipe":
        "after an RST every send() is ECONNRESET (Linux: ECONNRESET once, then EPIPE)",
    D + "test_so_error_after_reset_then_send_is_epipe":
        "reading SO_ERROR does not consume the reset for send(): send() is ECONNRESET again (Linux: EPIPE)",
    D + "test_send_buffer_full_is_not_writable":
        "fileno() is always writable: a full send buffer still selects writable (a sender spins)",
    D + "test_sendfile_sends_a_file": "no sendfile() method",
    D + "test_sendmsg_gathers_buffers": "no sendmsg() method",
    D + "test_recvmsg_returns_data_and_flags": "no recvmsg() method",
    D + "test_recvfrom_on_tcp_has_no_address": "no recvfrom() method",
    D + "test_sendto_on_connected_tcp_ignores_address": "no sendto() method",
    D + "test_dup_shares_the_connection": "no dup() method",
    # shutdown, bind
    S + "test_shutdown_invalid_how_is_einval": "shutdown(3) is accepted (Linux: EINVAL)",
    S + "test_shutdown_after_reset_is_enotconn": "shutdown() of a reset (CLOSED) connection succeeds (Linux: ENOTCONN)",
    S + "test_shutdown_listener_wr_is_noop": "shutdown() on a listening socket is ENOTCONN (Linux: SHUT_WR does nothing)",
    S + "test_shutdown_listener_rd_stops_listening":
        "shutdown(SHUT_RD) on a listening socket is ENOTCONN (Linux: stops listening, new SYNs get RST)",
    S + "test_bind_bound_port_both_reuseaddr_is_allowed":
        "SO_REUSEADDR is not applied: two bound (non-listening) sockets cannot share a port",
    S + "test_bind_port_in_time_wait_of_a_socket_without_reuseaddr_is_eaddrinuse":
        "bind() ignores TIME-WAIT connections: a port in TIME-WAIT can always be bound (Linux: EADDRINUSE)",
    S + "test_bind_port_in_time_wait_without_reuseaddr_is_eaddrinuse":
        "bind() ignores TIME-WAIT connections: a port in TIME-WAIT can always be bound (Linux: EADDRINUSE)",
    # the option table
    O + "test_default[stack-SO_TYPE]": UNKNOWN_READS_0 + " (Linux: SOCK_STREAM)",
    O + "test_default[stack-SO_DOMAIN]": UNKNOWN_READS_0 + " (Linux: AF_INET)",
    O + "test_default[stack-SO_PROTOCOL]": UNKNOWN_READS_0 + " (Linux: IPPROTO_TCP)",
    O + "test_default[stack-SO_RCVLOWAT]": UNKNOWN_READS_0 + " (Linux: 1)",
    O + "test_default[stack-SO_SNDLOWAT]": UNKNOWN_READS_0 + " (Linux: 1)",
    O + "test_default[stack-TCP_KEEPIDLE]": "keepalive defaults are not read back: 0 (Linux: 7200)",
    O + "test_default[stack-TCP_KEEPINTVL]": "keepalive defaults are not read back: 0 (Linux: 75)",
    O + "test_default[stack-TCP_KEEPCNT]": "keepalive defaults are not read back: 0 (Linux: 9)",
    O + "test_default[stack-TCP_MAXSEG]": UNKNOWN_READS_0 + " (Linux: 536 before a connection)",
    O + "test_set_then_read_back[stack-SO_REUSEADDR_any_nonzero]":
        "boolean options read back the int stored (5), Linux normalizes to 1",
    O + "test_set_then_read_back[stack-TCP_NODELAY_any_nonzero]":
        "boolean options read back the int stored (7), Linux normalizes to 1",
    O + "test_so_rcvbuf_reads_back_doubled": "SO_RCVBUF reads back the value set (Linux doubles it for bookkeeping)",
    O + "test_so_sndbuf_reads_back_doubled": "SO_SNDBUF reads back the value set (Linux doubles it for bookkeeping)",
    O + "test_so_acceptconn_after_listen": UNKNOWN_READS_0 + " (Linux: 1 on a listening socket)",
    O + "test_tcp_maxseg_too_small_is_einval": "values are not validated: TCP_MAXSEG 10 is accepted (Linux: EINVAL)",
    O + "test_tcp_user_timeout_negative_is_einval": "values are not validated: TCP_USER_TIMEOUT -1 is accepted",
    O + "test_so_sndlowat_cannot_be_set": "SO_SNDLOWAT is accepted (Linux: ENOPROTOOPT, it is read-only)",
    O + "test_unknown_sol_socket_option_is_enoprotoopt": "unknown options are accepted (Linux: ENOPROTOOPT)",
    O + "test_unknown_tcp_option_is_enoprotoopt": "unknown options are accepted (Linux: ENOPROTOOPT)",
    O + "test_unknown_level_is_enoprotoopt": "unknown levels are accepted (Linux: ENOPROTOOPT)",
    O + "test_tcp_congestion_with_buflen_is_bytes_of_that_length":
        "getsockopt() ignores buflen: TCP_CONGESTION is the bare name, not buflen bytes NUL-padded",
    O + "test_so_linger_default_is_off": "getsockopt() ignores buflen: SO_LINGER reads as int 0, not struct linger",
    O + "test_so_linger_set_and_read_back": "SO_LINGER with a struct linger raises ValueError",
    O + "test_so_linger_zero_close_resets_peer": "SO_LINGER is not supported, so linger 0 cannot make close() reset",
    O + "test_tcp_info_is_linux_struct_with_state_established": "TCP_INFO is not Linux's struct tcp_info (reads 0)",
    O + "test_tcp_info_state_close_on_fresh_socket": "TCP_INFO is not Linux's struct tcp_info (reads 0)",
    O + "test_tcp_info_state_listen": "TCP_INFO is not Linux's struct tcp_info (reads 0)",
    O + "test_getsockopt_with_buflen_returns_bytes": "getsockopt() ignores buflen: an int, not bytes",
    O + "test_setsockopt_bytes_value": "setsockopt() with a bytes value raises (int() of bytes) instead of decoding",
    O + "test_accepted_socket_inherits_rcvbuf":
        "SO_RCVBUF set on a listener is not inherited by accepted sockets (they get the stack default)",
    # readiness
    R + "test_peer_fin_is_readable_with_rdhup": EVENTFD + "; no POLLRDHUP for the peer's FIN",
    R + "test_both_directions_closed_is_hup": EVENTFD + "; no POLLHUP when both directions are closed",
    R + "test_shut_rd_is_readable": EVENTFD + "; no POLLRDHUP after shutdown(SHUT_RD)",
    R + "test_reset_is_err_hup_in_out": EVENTFD + "; no POLLERR|POLLHUP after a reset",
    R + "test_refused_connect_is_err_hup": EVENTFD + "; no POLLERR|POLLHUP after a refused connect",
    R + "test_fresh_socket_is_hup_and_writable": EVENTFD + "; no POLLHUP on a fresh (CLOSE) socket",
    R + "test_listener_without_pending_is_nothing": EVENTFD + ": a listener selects writable",
    R + "test_listener_with_pending_is_readable_only": EVENTFD + ": a listener selects writable",
    R + "test_full_send_buffer_is_not_writable_then_writable_after_peer_reads": EVENTFD,
    R + "test_full_send_buffer_poll_has_no_pollout": EVENTFD,
    R + "test_epoll_edge_triggered_one_event_per_arrival":
        "an arrival while already readable does not wake the fd, so edge-triggered epoll misses it (Linux: "
        "every sk_data_ready is an event)",
    R + "test_selectors_pending_connect_not_writable[stack-SelectSelector]": EVENTFD,
    R + "test_selectors_pending_connect_not_writable[stack-PollSelector]": EVENTFD,
    R + "test_selectors_pending_connect_not_writable[stack-EpollSelector]": EVENTFD,
    R + "test_asyncio_sock_connect_waits_for_the_handshake":
        "asyncio's sock_connect returns at once (the fd is writable during SYN-SENT)",
    # UDP
    "test_diff_udp::*": "no UDP sockets: SOCK_DGRAM is EPROTONOSUPPORT (the IP layer handles UDP; the socket "
                        "layer does not expose it yet)",
}
