"""docs/labs/README.md and the shape every lab shares: listed, linked, runnable, answered.

The README's "details you may meet" are pinned here too: if the stack's behaviour changes,
these tests fail, and the README (and lab 3's wording) must be updated with it.
"""
from __future__ import annotations

import re

import pytest

from labdoc import LABS, LANGS, Lab, lab_path

LAB_FILES = sorted(p.name for p in LABS.glob("[0-9][0-9]-*.md"))
# the headings every lab has, in each language
GOAL = {"en": "**Goal.**", "zh": "**目标。**"}
QUESTIONS = {"en": "## Questions", "zh": "## 思考题"}
ANSWERS = {"en": "<summary>Answers</summary>", "zh": "<summary>答案</summary>"}


@pytest.mark.parametrize("lang", LANGS)
def test_readme_lists_every_lab_and_every_link_exists(lang):
    text = lab_path("README.md", lang).read_text()
    links = re.findall(r"\]\((\d\d-[\w-]+\.md)\)", text)
    assert links == LAB_FILES == ["01-handshake.md", "02-loss-and-retransmission.md",
                                  "03-flow-control.md", "04-blocking-vs-epoll.md", "05-http.md",
                                  "06-congestion.md", "07-io-models.md"]
    assert all(lab_path(name, lang).exists() for name in links)


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("name", LAB_FILES)
def test_every_lab_has_goal_code_output_questions_hidden_answers_and_its_test(name, lang):
    lab = Lab(name, lang)  # refuses a python block without a lab:run marker
    text = lab.text
    assert GOAL[lang] in text and QUESTIONS[lang] in text
    assert text.count("<details>") == 1 and ANSWERS[lang] in text
    assert text.index(QUESTIONS[lang]) < text.index("<details>")
    assert lab.run_ids() and lab.output_ids() and set(lab.output_ids()) <= set(lab.run_ids())
    assert lab.shell("tun").startswith("sudo unshare --net bash")
    number = name[:2]
    assert f"tests/labs/test_lab_{number}.py" in text
    assert (LABS.parents[1] / "tests" / "labs" / f"test_lab_{number}.py").exists()


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("name", LAB_FILES)
def test_questions_and_answers_match_in_number(name, lang):
    text = Lab(name, lang).text
    questions = text[text.index(QUESTIONS[lang]):text.index("<details>")]
    answers = text[text.index("<details>"):text.index("</details>")]
    count = lambda part: len(re.findall(r"^\d+\. ", part, re.M))
    assert count(questions) == count(answers) >= 5


@pytest.mark.parametrize("lang", LANGS)
def test_window_reopening_resend_is_traced_as_a_persist_retransmission(lang):
    """README (lab 3 part 4): after the empty probes the first segment after the window opens starts
    at SND.UNA and nothing is retransmitted; with zero_window_probe="octet" it starts with the probe
    byte and is traced as retransmit why=persist; no RTO fired in either."""
    octet = lambda id_, code: code.replace("config_a=TcpConfig(initial_window=10)",
                                           'config_a=TcpConfig(initial_window=10, zero_window_probe="octet")', 1)
    for edit, want in ((None, []), (octet, [(5.005, 14481, "persist")])):
        ns = Lab("03-flow-control.md", lang).run(["setup", "window", "fill", "update"], edit=edit).ns
        a, sink = ns["a"], ns["sink"]
        assert a.config.zero_window_probe == ("octet" if edit else "ack")
        rxt = [e for e in sink.of("retransmit") if e["conn"] == a.name]
        assert [(e["t"], (e["seq"] - a.iss) % 2**32, e["why"]) for e in rxt] == want
        assert not [e for e in sink.of("cc") if e["conn"] == a.name and e["why"] == "rto"]  # no RTO fired
        assert a.stats["retrans"] == len(want)


@pytest.mark.parametrize("lang", LANGS)
def test_timestamp_clock_rounds_to_the_millisecond(lang):
    """README (lab 1, lost SYN): TSval = round(now * 1000) + offset, so the ACK at 1.010 s carries
    the SYN's ...524 plus 10 even though 1.0 + 0.005 + 0.005 is 1.00999... in floating point."""
    assert int((1.0 + 0.005 + 0.005) * 1000) == 1009 and round((1.0 + 0.005 + 0.005) * 1000) == 1010
    out = Lab("01-handshake.md", lang).output("lostsyn").splitlines()
    assert "ts=2056373524/0" in out[1] and out[3].endswith("ts=2056373534/833066039")


ECHO = re.compile(r"^(True|False|\d+)$")  # what the interpreter echoes of sim.run(...), sim.send(...)


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("name", LAB_FILES)
def test_pasting_the_lab_into_an_interactive_python_prints_what_the_lab_shows(name, lang, tmp_path):
    """The labs say 'paste the blocks into one python3 session': do exactly that (a blank line after
    each block, as after pasting it) and compare the session's output, minus the echoed values of
    sim.run/sim.send, with the lab's output blocks."""
    import subprocess
    import sys

    from labdoc import REPO
    lab = Lab(name, lang)
    stdin = "".join(b.body.rstrip("\n") + "\n\n" for b in lab.blocks if b.kind == "run")
    res = subprocess.run([sys.executable, "-i", "-q"], input=stdin, capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert "Traceback" not in res.stderr and "Error" not in res.stderr, res.stderr[-3000:]
    got = [line.rstrip() for line in res.stdout.splitlines() if not ECHO.match(line.strip())]
    want = [line for id_ in lab.run_ids() if id_ in lab.output_ids() for line in lab.output(id_).splitlines()]
    got = [line for line in got if line]
    want = [line for line in want if line]
    assert got == want
