"""Plot labels in another language: titles, axes, legends and notes, in Chinese for the Chinese labs.

The drawing code writes English; :func:`localize` rewrites every text of a finished figure
(before it is saved) from the table below and sets a font that has the glyphs. The language
is chosen by :func:`language` (a context manager; ``tunstack plot ... --lang zh`` and
``tools/figures.py`` use it), so the drawing functions keep their signatures.

Chinese needs a CJK font, found at run time through matplotlib's font manager (Noto Sans CJK,
Source Han Sans, WenQuanYi; Debian: fonts-noto-cjk or fonts-wqy-microhei). None installed:
:class:`PlotError` with the command that installs one.
"""
from __future__ import annotations

import contextlib
import contextvars
import re

from .data import PlotError

LANGS = ("en", "zh")
_LANG = contextvars.ContextVar("tunstack_plot_lang", default="en")

# CJK families, best first (matplotlib's names for them)
CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN",
                "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Droid Sans Fallback", "AR PL UMing CN")
CJK_FILES = re.compile(r"(?i)(notosanscjk|notoserifcjk|sourcehansans|wqy|droidsansfallback|uming|ukai)")
NO_CJK_FONT = "no CJK font installed: apt-get install fonts-noto-cjk (or fonts-wqy-microhei)"

# whole texts first, then patterns (applied in order); protocol names (cwnd, SRTT, SND.UNA, SACK) stay
ZH_EXACT = {
    "cwnd": "cwnd（拥塞窗口）",
    "ssthresh": "ssthresh（慢启动阈值）",
    "slow start": "慢启动",
    "congestion avoidance": "拥塞避免",
    "fast recovery": "快恢复",
    "outstanding (sent, not yet ACKed)": "在途（已发送、未确认）",
    "receiver's window": "接收方窗口",
    "retransmission after RTO": "超时（RTO）后重传",
    "SYN retransmission after RTO": "超时（RTO）后重传 SYN",
    "fast retransmit (3 dup ACKs)": "快重传（3 个重复 ACK）",
    "retransmission in SACK recovery": "SACK 恢复中的重传",
    "tail loss probe retransmission": "尾部丢失探测（TLP）重传",
    "tail loss probe (new data)": "尾部丢失探测（新数据）",
    "zero-window (persist) probe": "零窗口探测（坚持定时器）",
    "receiver advertised zero window": "接收方通告零窗口",
    "data segment dropped by the link": "链路丢弃的数据报文段",
    "data segment dropped: bottleneck queue full": "数据报文段被丢弃：瓶颈队列已满",
    "data segment corrupted by the link": "链路损坏的数据报文段",
    "RTT sample": "RTT 样本",
    "SRTT (smoothed RTT)": "SRTT（平滑 RTT）",
    "RTO (retransmission timeout)": "RTO（重传超时）",
    "no RTT samples or RTO values in the trace": "跟踪记录中没有 RTT 样本或 RTO 值",
    "time (ms)": "时间（ms）",
    "time (ms, log scale)": "时间（ms，对数刻度）",
    "Round-trip time and retransmission timeout": "往返时间与重传超时",
    "time since the connection's first event (s)": "自连接第一个事件起的时间（s）",
    "time since the connection's first packet (s)": "自连接第一个报文起的时间（s）",
    "sequence number, relative to the ISN (bytes)": "序列号，相对于 ISN（字节）",
    "sequence number, relative to the first one seen (bytes)": "序列号，相对于看到的第一个（字节）",
    "data segment (bar: first..last byte)": "数据报文段（竖条：首字节..末字节）",
    "retransmission (bytes sent before)": "重传（这些字节以前发过）",
    "sent past the offered window (RFC 9293 3.8.6: must not)": "超出通告窗口发送（RFC 9293 3.8.6：不允许）",
    "ACK: next byte the receiver expects": "确认号：接收方期待的下一个字节",
    "receive window edge (ACK + window)": "接收窗口右沿（确认号 + 窗口）",
    "SACK block (received out of order)": "SACK 块（乱序收到）",
    "zero window advertised": "通告了零窗口",
    "acknowledged": "已确认",
    "sent, not yet acknowledged": "已发送，未确认",
    "may send now (usable window)": "现在可以发送（可用窗口）",
    "may not send yet": "暂时不能发送",
    "SACKed (the receiver holds it)": "已被 SACK（接收方已收到）",
    "sequence number (relative to the ISN)": "序列号（相对于 ISN）",
    "SACK on": "SACK 开启",
    "no SACK": "没有 SACK",
    "window scale unknown (no SYNs in capture)": "窗口扩大因子未知（抓包中没有 SYN）",
    "none": "无",
    "sender": "发送方",
    "receiver": "接收方",
    "time (s), at the sender": "时间（s），在发送方一侧",
    "time (s), at the receiver": "时间（s），在接收方一侧",
}
ZH_PATTERNS = [
    (r"^window \(segments \(MSS\)\)$", "窗口（报文段，MSS）"),
    (r"^window \(bytes\)$", "窗口（字节）"),
    (r"^Congestion window: (.*)$", r"拥塞窗口：\1"),
    (r"^Time-sequence graph: (.*)$", r"时间-序列号图：\1"),
    (r"^Send window of (\S+) at t = (\S+) s: (\d+) octets in flight, (\d+) usable$",
     r"\1 在 t = \2 s 时的发送窗口：在途 \3 字节，可用 \4 字节"),
    (r"^SND\.WND = (\d+) octets \(offered by the receiver\)$", r"SND.WND = \1 字节（接收方通告）"),
    (r"^time \(s\), at the (.*)$", r"时间（s），在 \1 一侧"),
    (r" \(retransmission\)$", "（重传）"),
    (r"^red: retransmission · ×: dropped by the link · seq/ack relative to each ISN$",
     "红色：重传 · ×：被链路丢弃 · seq/ack 相对于各自的 ISN"),
    (r"^retransmissions: (.*) · MSS (\d+) · dotted lines: state changes$",
     r"重传：\1 · MSS \2 · 点线：状态变化"),
    # the facts line of the time-sequence graph, piece by piece
    (r"(\S+ \S+) of data in (\d+) segments", r"\2 个报文段共 \1 数据"),
    (r"(\d+) retransmitted", r"重传 \1 个"),
    (r"receiver's MSS option (\d+)", r"接收方 MSS 选项 \1"),
    (r"window scale (\d+)", r"窗口扩大因子 \1"),
]


def current() -> str:
    return _LANG.get()


@contextlib.contextmanager
def language(lang: str):
    """Draw in ``lang`` ("en" or "zh") inside the block; raises PlotError for "zh" without a CJK font."""
    if lang not in LANGS:
        raise PlotError(f"unknown language {lang!r}; choose one of: {', '.join(LANGS)}")
    if lang == "zh":
        cjk_font()
    token = _LANG.set(lang)
    try:
        yield
    finally:
        _LANG.reset(token)


def cjk_font() -> str:
    """The family name of an installed CJK font, best first; PlotError if there is none."""
    from matplotlib import font_manager
    for attempt in range(2):
        installed = {f.name for f in font_manager.fontManager.ttflist}
        for family in CJK_FAMILIES:
            if family in installed:
                return family
        if attempt == 0:  # installed after matplotlib cached its font list: look on disk once
            for path in font_manager.findSystemFonts():
                if CJK_FILES.search(path.rsplit("/", 1)[-1]):
                    try:
                        font_manager.fontManager.addfont(path)
                    except (OSError, RuntimeError, ValueError):
                        continue
    raise PlotError(NO_CJK_FONT)


def translate(text: str, lang: str) -> str:
    if lang == "en" or not text:
        return text
    if text in ZH_EXACT:
        return ZH_EXACT[text]
    if " · " in text and not text.startswith(("retransmissions:", "red:")):
        return " · ".join(translate(part, lang) for part in text.split(" · "))
    for pattern, repl in ZH_PATTERNS:
        text = re.sub(pattern, repl, text)
    return text


def localize(fig, lang: str | None = None) -> None:
    """Rewrite every text of ``fig`` into ``lang`` (default: the current language) with a CJK font."""
    lang = current() if lang is None else lang
    if lang == "en":
        return
    from matplotlib.text import Text
    family = [cjk_font(), "DejaVu Sans"]
    for artist in fig.findobj(Text):
        text = artist.get_text()
        if text:
            artist.set_text(translate(text, lang))
        artist.set_fontfamily(family)
