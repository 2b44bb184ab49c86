"""Where stack sockets differ from Linux today: ``"module::test"`` (or ``"module::test[params]"``) -> why.

conftest.py marks the stack run of each listed test ``xfail(strict=True)``: it must fail
(the difference is real) and turns into a failure (XPASS) once fixed, so the entry is then
removed here and from docs/api.md's table, which lists the same differences.
"""
C = "test_diff_connect::"
D = "test_diff_data::"
S = "test_diff_shutdown_bind::"

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
}
