"""The packet-script runner (stack/pktscript): scripts must fail, with a readable diff, when
either the expectation or the stack's behaviour changes; bad scripts give one-line errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from stack.cli import main as cli_main
from stack.pktscript.driver import StackDriver, stack_config
from stack.pktscript.parse import ScriptError, parse_file, parse_script
from stack.pktscript.run import run_script

SCRIPTS = Path(__file__).parent / "scripts"


def run_text(text: str, path: str = "mutant.pkt", **config):
    script = parse_script(text, path)
    return run_script(script, StackDriver(**{**stack_config(script.options), **config}))


def mutate(name: str, old: str, new: str) -> tuple[str, int]:
    """The script's text with the last line equal to ``old`` replaced by ``new`` (None deletes it);
    returns the text and that line's number."""
    lines = (SCRIPTS / name).read_text().split("\n")
    hits = [i for i, line in enumerate(lines) if line == old]
    assert hits, f"{old!r} is not a line of {name}"
    if new is None:
        del lines[hits[-1]]
    else:
        lines[hits[-1]] = new
    return "\n".join(lines), hits[-1] + 1


def test_every_script_passes_as_written():
    """The baseline for the mutants below (tests/scripts also runs each as its own case)."""
    for path in sorted(SCRIPTS.glob("*.pkt")):
        result = run_script(parse_file(str(path)))
        assert result.ok, result.message
    assert len(list(SCRIPTS.glob("*.pkt"))) >= 40


# ------------------------------------------------------------------ a wrong expectation fails, with a diff
MUTANTS = [
    # (script, line, mutated line, what the diff must say)
    ("data-inbound-delayed-ack.pkt", "+.04  > . 1:1(0) ack 1001 win 32761", "+.04  > . 1:1(0) ack 1000 win 32761",
     "outbound segment differs: ack 1001 != 1000"),
    ("data-inbound-delayed-ack.pkt", "+.04  > . 1:1(0) ack 1001 win 32761", "+.03  > . 1:1(0) ack 1001 win 32761",
     "expected an outbound segment by 0.230, the stack sent nothing"),
    ("data-inbound-delayed-ack.pkt", "+.04  > . 1:1(0) ack 1001 win 32761", "+.05  > . 1:1(0) ack 1001 win 32761",
     "timing: segment sent at 0.240, the script expects it at 0.250"),
    ("close-active.pkt", "+0    > F. 1:1(0) ack 1", "+0    > . 1:1(0) ack 1", "flags F. != ."),
    ("fast-retransmit.pkt", "+0    > . 1:1461(1460) ack 1", None, "unexpected outbound segment before this event"),
    ("rst-challenge-ack.pkt", "+.1   < R 2:2(0) win 0", "+.1   < R 1:1(0) win 0",
     "expected an outbound segment by 0.200, the stack sent nothing"),
    ("zero-window-persist.pkt", "+.6   > . 0:0(0) ack 1", "+.6   > . 0:1(1) ack 1", "length 0 != 1"),
    ("handshake-passive.pkt", "+0    > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 7>",
     "+0    > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 8>", "option wscale 7 != wscale 8"),
    ("handshake-passive.pkt", "+0    > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 7>",
     "+0    > S. 0:0(0) ack 1 <mss 1460,sackOK,nop,wscale 7>", "options <mss,nop,nop,sackOK,nop,wscale> != "),
    ("handshake-passive-timestamps.pkt", "+.04  > . 1:1(0) ack 101 <nop,nop,TS val 1190 ecr 250>",
     "+.04  > . 1:1(0) ack 101 <nop,nop,TS val 1180 ecr 250>", "TS val 1190 != 1180"),
    ("data-out-of-order-sack.pkt", "+0    > . 1:1(0) ack 1 win 32768 <nop,nop,sack 1461:2921>",
     "+0    > . 1:1(0) ack 1 win 32768 <nop,nop,sack 1461:2920>", "option sack 1461:2921 != sack 1461:2920"),
    ("data-inbound-delayed-ack.pkt", "+0    read(4, ..., 10000) = 3920", "+0    read(4, ..., 10000) = 3921",
     "read() returned 3920, the script expects 3921"),
    ("rto-backoff.pkt", "+1.2  > P. 1:1001(1000) ack 1", "+1.0  > P. 1:1001(1000) ack 1",
     "the stack sent nothing"),
    ("window-update.pkt", "+0    > P. 2921:4001(1080) ack 1", "+0    > P. 2921:4001(1080) ack 1 win 1",
     "win 65535 != 1"),
]


@pytest.mark.parametrize("name,old,new,says", MUTANTS, ids=[f"{m[0]}:{m[3][:30]}" for m in MUTANTS])
def test_wrong_expectation_fails_with_a_diff(name, old, new, says):
    text, line = mutate(name, old, new)
    result = run_text(text, f"tests/scripts/{name}")
    assert not result.ok
    msg = result.message
    assert says in msg, msg
    first = msg.split("\n")[0]
    assert first.startswith(f"tests/scripts/{name}:"), first  # names the file and the line
    assert "  so far:" in msg                                  # the segments and calls so far
    if new is not None and "timing" not in says and "differs" in says:
        assert f"  script: {new}" in msg and "  actual: " in msg


def test_diff_shows_actual_segment_in_script_syntax():
    text, line = mutate("data-inbound-delayed-ack.pkt", "+.04  > . 1:1(0) ack 1001 win 32761",
                        "+.04  > . 1:1(0) ack 1000 win 32761")
    msg = run_text(text, "x.pkt").message
    assert msg.split("\n")[:3] == [
        f"x.pkt:{line}: outbound segment differs: ack 1001 != 1000",
        "  script: +.04  > . 1:1(0) ack 1000 win 32761",
        "  actual: 0.240 > . 1:1(0) ack 1001 win 32761",
    ]
    assert "    0.200 < P. 1:1001(1000) ack 1 win 512" in msg


# ------------------------------------------------------------------ a changed stack fails the scripts
@pytest.mark.parametrize("name,config", [
    ("data-inbound-delayed-ack.pkt", {"delack": 0.2}),
    ("rto-backoff.pkt", {"min_rto": 1.0}),
    ("handshake-syn-retransmit.pkt", {"initial_rto": 3.0}),
    ("rst-challenge-ack.pkt", {"challenge_ack_limit": 0}),
    ("handshake-passive.pkt", {"rcvbuf": 1 << 20}),
    ("time-wait-2msl.pkt", {"msl": 20.0}),
    ("fin-wait-2-orphan-timeout.pkt", {"fin_timeout": 30.0}),
    ("zero-window-persist.pkt", {"persist_max": 0.5}),
    ("nagle-and-nodelay.pkt", {"nodelay": True}),
    ("handshake-active.pkt", {"timestamps": False}),
    ("data-out-of-order-sack.pkt", {"sack": False}),
    ("fast-retransmit.pkt", {"initial_window": 3}),  # the script's --initial_window=10 is what it runs with
])
def test_changed_stack_behaviour_fails(name, config):
    script = parse_file(str(SCRIPTS / name))
    baseline = run_script(script, StackDriver(**stack_config(script.options)))
    assert baseline.ok, baseline.message
    result = run_script(script, StackDriver(**{**stack_config(script.options), **config}))
    assert not result.ok, f"{name} still passes with {config}"


# ------------------------------------------------------------------ bad scripts: file, line and what was expected
@pytest.mark.parametrize("text,says", [
    ("0 < X 0:0(0) win 1", "2: bad TCP flags 'X'"),
    ("0 < S 0:0 win 1", "2: expected 'start:end(len)', got '0:0'"),
    ("0 < S 0:5(4) win 1", "2: inconsistent TCP sequence numbers and payload size"),
    ("0 < S 0:0(0)", "2: window must be specified for inbound packets"),
    ("0 < S 0:0(0) win 1 <...>", "2: <...> for TCP options can only be used with outbound packets"),
    ("* < S 0:0(0) win 1", "2: '*' and time ranges can only be used with outbound packets"),
    ("0 < S 0:0(0) win 1 <mss>", "2: bad TCP option 'mss'"),
    ("0 < S 0:0(0) win 1 wnd 5", "2: expected 'ack N', 'win N', 'urg N' or '<options>'"),
    ("0 socket(..., SOCK_STREAM, IPPROTO_TCP)", "2: expected a packet ('<' or '>') or a system call"),
    ("0 close(3) = -1", "2: a result of -1 needs an errno name"),
    ("hello", "2: expected a time"),
    ("`sysctl -w x=1`", "2: shell commands (`...`) are not supported"),
    ("0 ...0.1 read(3, ..., 1) = 1", "'...' end times"),
    ("0 < udp (10)", "udp packets are not supported"),
    ("0 > . 1:1(0) ack 1 <nop,nop,TS val * ecr *>", "2: '*' inside an option ('TS val * ecr *'): packetdrill has none"),
    ("// only a comment", "1: no events"),
])
def test_parse_errors_name_file_line_and_expectation(text, says):
    with pytest.raises(ScriptError) as exc:
        parse_script("// first line\n" + text, "bad.pkt")
    assert str(exc.value).startswith("bad.pkt:") and says in str(exc.value), str(exc.value)


def test_unsupported_or_blocking_call_is_a_script_error():
    r = run_text("0 frobnicate(3) = 0")
    assert not r.ok and "unsupported system call 'frobnicate'" in r.message
    r = run_text("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 bind(3, ..., ...) = 0\n"
                 "+0 listen(3, 1) = 0\n+0 accept(3, ..., ...) = 4")
    assert not r.ok and "accept would block on a blocking socket" in r.message


def test_options_and_time_ranges():
    """``<...>`` skips the option check, ``*`` matches any time, ``A~B`` a window of time."""
    head = ("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0\n"
            "+0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)\n+0 > S 0:0(0) <...>\n")
    assert run_text(head + "* > S 0:0(0) <...>\n").ok                   # the retransmission at 1 s
    assert run_text(head + "0.9~1.1 > S 0:0(0) <...>\n").ok
    assert not run_text(head + "0.5~0.9 > S 0:0(0) <...>\n").ok
    r = run_text(head + "+1 > S 0:0(0)\n")                              # no option list: none expected
    assert not r.ok and "options <mss,sackOK,TS,nop,wscale> != <>" in r.message
    syn = "+0 > S 0:0(0) <mss 1460,sackOK,TS val 7 ecr 0,nop,wscale 7>\n"
    assert run_text(head.replace("+0 > S 0:0(0) <...>\n", syn) + "+1 > S 0:0(0) <mss 1460,sackOK,TS val 1007 ecr 0,nop,wscale 7>\n").ok
    wrong = head.replace("+0 > S 0:0(0) <...>\n", syn) + "+1 > S 0:0(0) <mss 1460,sackOK,TS val 1000 ecr 0,nop,wscale 7>\n"
    assert "TS val 1007 != 1000" in run_text(wrong).message         # one tick per millisecond
    assert run_text("--tcp_ts_tick_usecs=0\n" + wrong).ok            # packetdrill's default: TS val unchecked


def test_extra_segment_after_the_last_event_fails():
    text = (SCRIPTS / "data-outbound.pkt").read_text().replace("+.1   < . 1:1(0) ack 3011 win 65535\n", "")
    r = run_text(text + "+1 write(4, ..., 1) = 1\n")  # the 10-byte write is never ACKed: its RTO fires
    assert not r.ok and "unexpected outbound segment" in r.message


# ------------------------------------------------------------------ the command line
def test_cli_pass_fail_and_exit_status(tmp_path, capsys):
    good = str(SCRIPTS / "handshake-passive.pkt")
    assert cli_main(["script", good]) == 0
    assert f"PASS {good}" in capsys.readouterr().out
    bad = tmp_path / "bad.pkt"
    bad.write_text(mutate("close-active.pkt", "+0    > F. 1:1(0) ack 1", "+0    > . 1:1(0) ack 1")[0])
    assert cli_main(["script", good, str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL {bad}:" in out and "flags F. != ." in out and "1 passed, 1 failed" in out


def test_cli_parse_error_is_one_line(tmp_path, capsys):
    bad = tmp_path / "typo.pkt"
    bad.write_text("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 < S 0:0(0) win 65535 <mss 1460, sackOK, wscale>\n")
    assert cli_main(["script", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bad}:2: bad TCP option 'wscale'" in err and "Traceback" not in err
    assert cli_main(["script", str(tmp_path / "missing.pkt")]) == 1
    assert "missing.pkt:0: cannot read" in capsys.readouterr().err


def test_cli_verbose_prints_every_event(capsys):
    assert cli_main(["script", "--verbose", str(SCRIPTS / "close-passive.pkt")]) == 0
    out = capsys.readouterr().out
    assert "    0.200 > . 1:1(0) ack 2 win 65535" in out and "    0.200 read(4, ..., 100) = 0" in out
