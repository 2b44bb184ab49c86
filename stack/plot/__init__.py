"""Plots that show TCP at work: the time-sequence graph and cwnd/ssthresh with RTT/RTO.

Two graphs, each from a file the stack writes (see docs/plots.md)::

    tunstack plot timeseq run.pcap   -o timeseq.png      # from 'tunstack serve --pcap'
    tunstack plot cwnd    run.jsonl  -o cwnd.png         # from 'tunstack serve --trace'

* :func:`time_sequence` draws the classic time-sequence graph (Stevens, tcptrace) of one
  direction of one connection: every data segment is a vertical bar from its first to
  its last sequence number at the time it was sent (retransmissions in red), with the
  peer's cumulative ACK, the right edge of the window it offers (ACK + window) and its
  SACK blocks.
* :func:`cwnd_plot` draws cwnd and ssthresh from the trace's ``cc`` events, with a
  marker for every retransmission (by why: RTO, fast, SACK, TLP) and every state
  change, and under it the RTT samples, SRTT and RTO.

The data extraction (:func:`time_sequence_data`, :func:`cwnd_data`) is separate from the
drawing and returns plain dataclasses, so tests and labs can assert on what a plot shows.
matplotlib (the ``plot`` extra) is imported only when drawing, and only through its
object API (``Figure``), never ``pyplot``: no global state, no display needed.
"""
from .data import (INFINITE_SSTHRESH, LINK_LOSS, RETRANSMIT_KINDS, AckPoint, CcPoint,  # noqa: F401
                   CwndData, Mark, PlotError, RttPoint, Segment, TimeSeqData, conn_name,
                   cwnd_data, parse_conn, pcap_connections, read_trace, time_sequence_data,
                   trace_connections, WindowSnapshot, window_at)
from .pictures import ladder_picture, window_diagram  # noqa: F401
from .draw import OTHER_STYLE, PHASE_COLOUR, RETRANSMIT_STYLE, cwnd_plot, time_sequence  # noqa: F401
from .demo import DEMO_IMPAIR, DemoRun, record_demo  # noqa: F401
from .cli import build_parser, plot_main  # noqa: F401
from .i18n import LANGS, NO_CJK_FONT, cjk_font, language, localize  # noqa: F401

