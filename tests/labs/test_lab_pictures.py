"""The pictures the labs embed exist, are made by tools/figures.py (so tests/test_figures.py keeps
them current), and each translated lab embeds the same pictures as its English twin."""
from __future__ import annotations

import re
import sys

import pytest

from labdoc import LABS, LANGS, lab_path

sys.path.insert(0, str(LABS.parents[1] / "tools"))
import figures  # noqa: E402

IMAGE = re.compile(r"!\[[^\]]+\]\(([^)\s]+\.png)\)")
PAGES = sorted(p.name for p in LABS.glob("[0-9][0-9]-*.md"))
MADE = {f.name for f in figures.FIGURES}


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("name", PAGES)
def test_every_embedded_picture_is_made_by_the_figures_script(name, lang):
    path = lab_path(name, lang)
    for ref in IMAGE.findall(path.read_text()):
        target = (path.parent / ref).resolve()
        assert target.exists(), f"{path.name} ({lang}): {ref} does not exist"
        assert target.parent == (LABS.parents[0] / "img").resolve() and target.stem in MADE, (
            f"{path.name} ({lang}): {ref} is not drawn by tools/figures.py")


@pytest.mark.parametrize("name", PAGES)
def test_twins_embed_the_same_pictures(name):
    names = lambda lang: [re.sub(r"-zh\.png$", ".png", ref.rsplit("/", 1)[-1])
                          for ref in IMAGE.findall(lab_path(name, lang).read_text())]
    for lang in LANGS:
        assert names(lang) == names("en"), f"{lang}/{name} embeds {names(lang)}, the English {names('en')}"


@pytest.mark.parametrize("name", PAGES)
def test_chinese_labs_embed_the_chinese_labelled_pictures(name):
    """Where tools/figures.py draws a picture with Chinese labels (NAME-zh), the Chinese lab embeds that one."""
    for ref in IMAGE.findall(lab_path(name, "zh").read_text()):
        stem = ref.rsplit("/", 1)[-1][:-4]
        assert stem.endswith("-zh") or stem + "-zh" not in MADE, f"zh/{name}: embeds {ref}, not {stem}-zh.png"


@pytest.mark.parametrize("name, pictures", [("02-loss-and-retransmission.md", ["ladder-loss.png", "timeseq-zoom.png"]),
                                            ("03-flow-control.md", ["window.png"]),
                                            ("06-congestion.md", ["lab6-cwnd.png"])])
def test_the_labs_show_their_pictures(name, pictures):
    refs = [ref.rsplit("/", 1)[-1] for ref in IMAGE.findall(lab_path(name).read_text())]
    assert refs == pictures
