"""tunstack plot --lang zh: titles, axes and legends in Chinese with a CJK font found at run time;
a clear one-line error (exit 1) when no CJK font is installed."""
from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")

from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from stack.plot import NO_CJK_FONT, PlotError, language, localize, plot_main, record_demo  # noqa: E402
from stack.plot import i18n  # noqa: E402


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("lang")
    run = record_demo(d / "run.pcap", d / "run.jsonl", size=60_000, impair="rate=10mbit,drop=data:10")
    assert run.intact
    return d


def texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def test_localize_translates_titles_axes_and_legends_and_keeps_protocol_names():
    fig = Figure()
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], label="cwnd")
    ax.axvspan(0, 0.5, label="slow start")
    ax.set_xlabel("time since the connection's first event (s)")
    ax.set_ylabel("window (segments (MSS))")
    ax.set_title("Congestion window: 192.0.2.1:42068-192.0.2.2:80 (reno)")
    ax.legend()
    localize(fig, "en")
    assert "slow start" in texts(fig)                      # English: untouched
    assert _has_cjk(), "no CJK font installed: scripts/_bootstrap.sh installs fonts-wqy-microhei"
    localize(fig, "zh")
    got = texts(fig)
    assert {"慢启动", "cwnd（拥塞窗口）", "自连接第一个事件起的时间（s）", "窗口（报文段，MSS）",
            "拥塞窗口：192.0.2.1:42068-192.0.2.2:80 (reno)"} <= set(got)
    assert not any(t in got for t in ("slow start", "time since the connection's first event (s)"))
    family = fig.findobj(Text)[0].get_fontfamily()
    assert family[0] in i18n.CJK_FAMILIES


@pytest.mark.parametrize("kind", ["timeseq", "cwnd", "window", "ladder"])
def test_every_plot_kind_draws_in_chinese(kind, demo, tmp_path, capsys):
    assert _has_cjk(), "no CJK font installed: scripts/_bootstrap.sh installs fonts-wqy-microhei"
    src = demo / ("run.jsonl" if kind == "cwnd" else "run.pcap")
    extra = {"window": ["--at", "0.1"], "ladder": ["--from", "0", "--to", "0.08"]}.get(kind, [])
    out = tmp_path / f"{kind}.png"
    assert plot_main([kind, str(src), "-o", str(out), "--lang", "zh", *extra]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    en = tmp_path / f"{kind}-en.png"
    assert plot_main([kind, str(src), "-o", str(en), *extra]) == 0
    assert en.read_bytes() != out.read_bytes()              # the labels differ


def test_no_cjk_font_is_one_line_and_exit_status_1(demo, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(i18n, "CJK_FAMILIES", ("No Such CJK Font",))
    monkeypatch.setattr(i18n, "CJK_FILES", i18n.re.compile(r"^no-such-file$"))
    out = tmp_path / "x.png"
    assert plot_main(["cwnd", str(demo / "run.jsonl"), "-o", str(out), "--lang", "zh"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"tunstack plot: {NO_CJK_FONT}"] and "apt-get install fonts-noto-cjk" in err[0]
    assert not out.exists()
    with pytest.raises(PlotError, match="no CJK font installed"):
        with language("zh"):
            pass


def test_unknown_language_is_a_usage_error(demo, capsys):
    assert plot_main(["cwnd", str(demo / "run.jsonl"), "--lang", "fr"]) == 2
    assert "--lang" in capsys.readouterr().err


def _has_cjk() -> bool:
    try:
        i18n.cjk_font()
        return True
    except PlotError:
        return False
