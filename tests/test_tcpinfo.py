"""TCP_INFO bytes in Linux's struct tcp_info layout: the kernel is the oracle for the layout."""
import socket
import struct

import pytest

from stack import tcpinfo


@pytest.fixture
def kernel_tcp_info():
    with socket.create_server(("127.0.0.1", 0)) as lst:
        with socket.create_connection(lst.getsockname()) as cli:
            srv, _ = lst.accept()
            with srv:
                cli.sendall(b"x" * 50000)
                got = 0
                while got < 50000:
                    got += len(srv.recv(65536))
                yield cli.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 512)


def test_layout_matches_the_kernels(kernel_tcp_info):
    """Fields we decode from the kernel's own bytes hold what they must on a loopback connection."""
    assert len(kernel_tcp_info) >= tcpinfo.SIZE == 248
    d = tcpinfo.unpack(kernel_tcp_info)
    assert d["state"] == tcpinfo.LINUX_STATE["ESTABLISHED"]
    assert d["options"] & (tcpinfo.TCPI_OPT_TIMESTAMPS | tcpinfo.TCPI_OPT_SACK | tcpinfo.TCPI_OPT_WSCALE) == 7
    assert d["pmtu"] == 65536 or d["pmtu"] == 65535
    assert d["bytes_acked"] == 50001            # u64 at offset 120: SYN counts one
    assert d["bytes_received"] == 0             # the server sent nothing
    assert d["segs_out"] >= 2 and d["segs_in"] >= 2
    assert d["snd_wnd"] > 0 and d["rcv_wnd"] > 0  # the last fields line up too


def test_pack_unpack_round_trip():
    info = {"state": "ESTABLISHED", "mss": 1460, "srtt": 0.0123, "rttvar": 0.004, "rto": 0.2,
            "cwnd": 14600, "ssthresh": 2920, "unacked": 2921, "wscale": (7, 9), "ts": True, "sack": True,
            "retrans": 3, "retrans_bytes": 4380, "bytes_out": 100000, "bytes_in": 5, "segs_out": 70,
            "segs_in": 40, "snd_wnd": 65535, "rcv_wnd": 131072, "phase": "recovery"}
    d = tcpinfo.unpack(tcpinfo.pack(info))
    assert d["state"] == 1 and d["ca_state"] == 3
    assert d["snd_mss"] == 1460 and d["snd_cwnd"] == 10 and d["snd_ssthresh"] == 2 and d["unacked"] == 3
    assert d["rtt"] == 12300 and d["rttvar"] == 4000 and d["rto"] == 200000
    assert d["options"] == 7 and d["wscale"] == 7 | 9 << 4
    assert d["total_retrans"] == 3 and d["bytes_retrans"] == 4380 and d["bytes_sent"] == 104380
    assert d["snd_wnd"] == 65535 and d["rcv_wnd"] == 131072


def test_infinite_ssthresh_is_linuxs_constant():
    d = tcpinfo.unpack(tcpinfo.pack({"state": "SYN-SENT", "mss": 536, "ssthresh": float("inf")}))
    assert d["state"] == 2 and d["snd_ssthresh"] == 0x7FFFFFFF


def test_short_buffer_is_cut_like_linux():
    raw = tcpinfo.pack({"state": "LISTEN"}, buflen=8)
    assert len(raw) == 8 and raw[0] == 10
    assert tcpinfo.unpack(raw) == dict(zip([n for n, _ in tcpinfo.FIELDS[:8]], struct.unpack("8B", raw)))
