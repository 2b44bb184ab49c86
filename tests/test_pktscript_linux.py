"""``tunstack script --against linux``: the same script drives the Linux kernel over a TUN.

Each run forks a child that unshares a network namespace of its own (inside the test run's
private one), so nothing here touches the host's interfaces. Outbound lines use time ranges:
the machine is shared and the kernel answers in real time.
"""
from __future__ import annotations

import os

from stack.pktscript.linux import run_against_linux
from stack.pktscript.parse import parse_script

CLOSED_PORT = """
0      < S 0:0(0) win 65535 <mss 1460>
+0~+.5 > R. 0:0(0) ack 1 win 0
+.6    < P. 1:101(100) ack 500 win 65535
+0~+.5 > R 500:500(0) win 0
"""

PASSIVE_OPEN = """
0      socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0     setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0     bind(3, ..., ...) = 0
+0     listen(3, 1) = 0
+0     < S 0:0(0) win 65535 <mss 1000,sackOK,nop,nop,nop,wscale 7>
+0~+.5 > S. 0:0(0) ack 1 <...>
+.6    < . 1:1(0) ack 1 win 512
+0     accept(3, ..., ...) = 4
+0     write(4, ..., 100) = 100
+0~+.5 > P. 1:101(100) ack 1 <...>
+.6    < . 1:1(0) ack 101 win 512
+0     close(4) = 0
+0~+.5 > F. 101:101(0) ack 1 <...>
"""


def test_linux_answers_like_the_script(private_netns):
    for text in (CLOSED_PORT, PASSIVE_OPEN):
        result = run_against_linux(parse_script(text, "linux.pkt"), timeout=60)
        assert result.ok, result.message


def test_linux_difference_is_a_diff(private_netns):
    """The kernel's SYN,ACK window is not 1: the script fails with a diff, the child exits cleanly."""
    text = PASSIVE_OPEN.replace("+0~+.5 > S. 0:0(0) ack 1 <...>", "+0~+.5 > S. 0:0(0) ack 1 win 1 <...>")
    result = run_against_linux(parse_script(text, "linux.pkt"), timeout=60)
    assert not result.ok
    assert result.message.startswith("linux.pkt:7: outbound segment differs: win ") and "!= 1" in result.message
    assert "  actual: " in result.message


def test_linux_run_leaves_no_device_behind(private_netns):
    before = sorted(os.listdir("/sys/class/net"))
    run_against_linux(parse_script(CLOSED_PORT, "linux.pkt"), timeout=60)
    assert sorted(os.listdir("/sys/class/net")) == before
