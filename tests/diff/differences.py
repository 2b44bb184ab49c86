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
    D + "test_send_msg_oob_is_urgent_data":
        "urgent data cannot be sent: send(MSG_OOB) raises EOPNOTSUPP instead of sending its last octet with URG",
    # UDP
    "test_diff_udp::test_refused_poll_is_err_and_out":
        "a UDP socket's pending ICMP error shows on fileno() as POLLIN, not POLLERR (a ReadinessFd's POLLERR "
        "comes with POLLHUP, which would be final); select() sees the same, stack.epoll sees POLLERR",
}
