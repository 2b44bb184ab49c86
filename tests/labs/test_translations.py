"""Every lab page (and the labs README) has a twin in each other language, and the twins agree.

A clean clone has no useful history, so "the English changed without its translation" is
decided by content: each translated page records the sha256 of the English file it
translates (``<!-- source: 01-handshake.md sha256=... -->``), and every fenced block (code,
output, shell, sample output) must be byte-identical, in the same order, with the same
``lab:`` markers. The checks of the labs' own tests then run on both pages (see the ``lab``
fixture in each test_lab_NN.py).
"""
from __future__ import annotations

import hashlib
import re

import pytest

from labdoc import _FENCE, LABS, LANGS, SOURCE, fences, lab_path

PAGES = sorted(p.name for p in LABS.glob("[0-9][0-9]-*.md")) + ["README.md"]
OTHER = [lang for lang in LANGS if lang != "en"]
LINK_TEXT = {"zh": "中文"}


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("lang", OTHER)
@pytest.mark.parametrize("name", PAGES)
def test_translation_records_the_hash_of_the_english_it_translates(name, lang):
    path = lab_path(name, lang)
    assert path.exists(), f"docs/labs/{name} has no {lang} twin: write docs/labs/{lang}/{name}"
    m = SOURCE.search(path.read_text())
    assert m and m["name"] == name, f"{path}: no <!-- source: {name} sha256=... --> line"
    now = sha256(LABS / name)
    assert m["sha"] == now, (
        f"docs/labs/{name} changed since docs/labs/{lang}/{name} was translated: update the "
        f"translation to match, then set its source line to sha256={now}")


@pytest.mark.parametrize("lang", OTHER)
@pytest.mark.parametrize("name", PAGES)
def test_code_and_output_blocks_are_byte_identical(name, lang):
    en, other = fences((LABS / name).read_text()), fences(lab_path(name, lang).read_text())
    assert len(other) == len(en), f"{lang}/{name}: {len(other)} blocks, the English has {len(en)}"
    for i, (a, b) in enumerate(zip(en, other)):
        assert a == b, f"{lang}/{name}: block {i + 1} differs from the English:\n{b[1][:400]}"


@pytest.mark.parametrize("lang", OTHER)
@pytest.mark.parametrize("name", PAGES)
def test_twins_link_to_each_other(name, lang):
    en, other = (LABS / name).read_text(), lab_path(name, lang).read_text()
    assert f"]({lang}/{name})" in en and LINK_TEXT[lang] in en, f"docs/labs/{name}: no link to {lang}/{name}"
    assert f"](../{name})" in other and "English" in other, f"{lang}/{name}: no link back to ../{name}"


@pytest.mark.parametrize("lang", OTHER)
def test_project_readme_links_to_the_translated_labs(lang):
    readme = (LABS.parents[1] / "README.md").read_text()
    assert f"](docs/labs/{lang}/README.md)" in readme


def test_the_hash_check_fails_when_the_english_changes(tmp_path):
    """The check above can fail: a page whose English source gained one byte no longer matches."""
    page = tmp_path / "01-handshake.md"
    page.write_bytes((LABS / "01-handshake.md").read_bytes() + b"\n")
    recorded = SOURCE.search(lab_path("01-handshake.md", "zh").read_text())["sha"]
    assert sha256(page) != recorded


def _prose(text: str) -> str:
    """A page without its fenced blocks and HTML comments: what a translator rewrites."""
    return _FENCE.sub("", re.sub(r"<!--.*?-->", "", text, flags=re.S))


@pytest.mark.parametrize("lang", OTHER)
@pytest.mark.parametrize("name", PAGES)
def test_the_prose_quotes_the_same_numbers_and_code(name, lang):
    """The labs' tests check every number the prose quotes against the stack; a translation must
    quote the same numbers (1194239061, 0.225, 14480 ...) and the same inline code (`seq=5793`,
    `Connection._deliver` ...), so those checks hold for its prose too."""
    en, other = _prose((LABS / name).read_text()), _prose(lab_path(name, lang).read_text())
    numbers = lambda s: set(re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?!\w)", s))
    code = lambda s: set(re.findall(r"`([^`\n]+)`", s))
    assert numbers(other) == numbers(en), (
        f"{lang}/{name}: numbers only in the English {sorted(numbers(en) - numbers(other))}, "
        f"only in the translation {sorted(numbers(other) - numbers(en))}")
    assert code(other) == code(en), (
        f"{lang}/{name}: code only in the English {sorted(code(en) - code(other))}, "
        f"only in the translation {sorted(code(other) - code(en))}")
