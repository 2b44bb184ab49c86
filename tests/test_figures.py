"""Every picture in docs/img is made by tools/figures.py from a seeded run, and is current.

PNG bytes depend on matplotlib/freetype versions, so the check regenerates the data each
picture plots (not the image) and compares its digest with the JSON committed beside it.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))

import figures  # noqa: E402

IMG = os.path.join(REPO, "docs", "img")


def test_every_picture_in_docs_is_made_by_the_script():
    pngs = sorted(f[:-4] for f in os.listdir(IMG) if f.endswith(".png"))
    assert pngs == sorted(f.name for f in figures.FIGURES)
    for name in pngs:
        doc = figures.committed(name)
        assert doc and doc["made_by"] == f"python3 tools/figures.py {name}"


@pytest.mark.timeout(120)
def test_committed_pictures_match_what_the_script_makes():
    assert figures.check() == []


@pytest.mark.timeout(120)
def test_a_stale_picture_is_caught(tmp_path):
    img = tmp_path / "img"
    shutil.copytree(IMG, img)
    doc = json.loads((img / "window.json").read_text())
    doc["data_sha256"] = "0" * 64                    # as if the stack had changed since
    (img / "window.json").write_text(json.dumps(doc))
    (img / "cwnd.png").unlink()
    problems = figures.check(["window", "cwnd", "ladder-loss"], img=str(img))
    assert len(problems) == 2
    assert problems[0].startswith("cwnd: docs/img/cwnd.png or .json is missing")
    assert problems[1].startswith("window: the picture no longer matches") and "tools/figures.py window" in problems[1]


def test_the_plots_page_quotes_the_pictures_figures():
    """docs/plots.md describes the demo run: its numbers come from the script's run."""
    text = open(os.path.join(REPO, "docs", "plots.md"), encoding="utf-8").read()
    ts, cw = figures.committed("timeseq")["summary"], figures.committed("cwnd")["summary"]
    assert f"{ts['segments']} data segments" in text or f"{ts['segments']} segments" in text
    assert f"{ts['retransmitted']} retransmitted" in text
    assert ("no RTO" in text) == (cw["rtos"] == 0)
    assert f"{cw['first_loss']:.2f} s" in text
    for old in ("737", "46 retransmitted", "0.42 s"):
        assert old not in text
    for name in ("ladder-loss", "window", "cwnd", "timeseq", "timeseq-zoom"):
        assert f"img/{name}.png" in text


def test_ladder_and_window_pictures_show_what_they_promise():
    lad, win = figures.committed("ladder-loss")["summary"], figures.committed("window")["summary"]
    assert lad["dropped"] == 1 and lad["retransmitted"] == 1 and lad["with_sack"] >= 3
    assert win["snd_una"] < win["sacked"][0][0] and win["snd_nxt"] <= win["snd_una"] + win["snd_wnd"]
    assert re.fullmatch(r"[0-9a-f]{64}", figures.committed("window")["data_sha256"])


def test_chinese_labelled_pictures_plot_the_same_data_as_their_english_twins():
    zh = [f for f in figures.FIGURES if f.lang == "zh"]
    assert {f.name for f in zh} == {"timeseq-zoom-zh", "ladder-loss-zh", "window-zh", "lab6-cwnd-zh"}
    for f in zh:
        doc, en = figures.committed(f.name), figures.committed(f.name[:-3])
        assert doc["lang"] == "zh" and en["lang"] == "en"
        assert doc["data_sha256"] == en["data_sha256"] and doc["summary"] == en["summary"]
