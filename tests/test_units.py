"""stack/units.py: the one home of unit parsing and of showing an infinite ssthresh."""
from __future__ import annotations

import pytest

from stack import units
from stack.cli import format_connections


@pytest.mark.parametrize("text,value", [("4M", 4_000_000), ("500k", 500_000), ("65536", 65536),
                                        ("1.5G", 1_500_000_000), ("64KiB", 65536), ("2MB", 2_000_000)])
def test_parse_size(text, value):
    assert units.parse_size(text) == value


@pytest.mark.parametrize("text", ["lots", "0", "-4k", "4Q", ""])
def test_parse_size_refuses_with_the_text(text):
    with pytest.raises(ValueError, match="size"):
        units.parse_size(text)


def test_the_impairment_spec_parses_with_the_same_units():
    from stack.link.impair import ImpairSpec
    s = ImpairSpec.parse("loss=5%,delay=20ms,rate=10mbit,queue=64kb")
    assert (s.loss, s.delay, s.rate, s.queue_bytes) == (units.parse_probability("5%"),
                                                       units.parse_time("20ms"),
                                                       units.parse_rate("10mbit"), 64_000)


def test_infinite_ssthresh_reads_inf_everywhere_it_is_shown():
    assert units.format_ssthresh(0x7FFFFFFF) == "inf" and units.format_ssthresh(None) == "inf"
    assert units.format_ssthresh(10136) == "10136"
    info = dict(state="ESTABLISHED", local="192.0.2.2:80", remote="192.0.2.1:4000", sndbuf=0,
                rcvbuf=0, srtt=None, cc="cubic", wscale=(7, 7), rto=1.0, mss=1460, cwnd=14600,
                ssthresh=0x7FFFFFFF, snd_wnd=1, rcv_wnd=1, unacked=0, retrans=0, segs_out=1,
                segs_in=1, ts=True, sack=True)
    text = format_connections([info])
    assert " ssthresh:inf " in text and "2147483647" not in text
    assert " ssthresh:5000 " in format_connections([dict(info, ssthresh=5000)])


def test_ss_view_shows_the_memory_budget_and_each_connections_buffers():
    """SIGUSR1's view: a header line with the budget (memory.py), skmem per connection like ss -m."""
    from stack.tcp.memory import TcpMemory
    mem = TcpMemory(96 << 20)
    mem.charge(70 << 20)
    info = dict(state="ESTABLISHED", local="192.0.2.2:7", remote="192.0.2.1:4000", sndbuf=100,
                rcvbuf=30, srtt=0.001, cc="cubic", wscale=(7, 7), rto=0.2, mss=1448, cwnd=14480,
                ssthresh=0x7FFFFFFF, snd_wnd=0, rcv_wnd=0, unacked=0, retrans=0, segs_out=1, segs_in=1,
                ts=True, sack=True, rcvbuf_cap=65536, sndbuf_cap=28960, ofo_bytes=1000)
    lines = format_connections([info], mem.summary()).splitlines()
    assert lines[1] == ("tcp memory: 70.0 MiB in use / limit 96.0 MiB (pressure; pressure above 64.0 MiB, "
                        "ends below 48.0 MiB; peak 70.0 MiB, pressure entered 1 times)")
    assert lines[-1].endswith(" sack skmem:(r30,rb65536,t100,tb28960,ofo1000)")

