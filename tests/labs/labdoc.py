"""Run a lab exactly as a student would, and check that it says what it shows.

A lab (``docs/labs/NN-name.md``) marks its blocks with HTML comments, which Markdown
viewers do not display::

    <!-- lab:run id=handshake -->
    ```python
    ...                      # copy-pasteable code; run in order, in one namespace
    ```

    <!-- lab:output id=handshake -->
    ```text
    ...                      # exactly what that block prints
    ```

    <!-- lab:shell id=tun -->
    ```sh
    ...                      # commands for the real thing (TUN); a test runs them
    ```

``Lab(name).run()`` executes every ``lab:run`` block in document order in one namespace
(as a student pasting them into one ``python3`` session would) and captures what each
prints; tests compare that with the ``lab:output`` blocks and assert the lab's prose
claims on the objects the blocks leave behind (``session.ns``). Every ``python`` block in
a lab must be marked, so no code a student is shown goes untested.

Authoring aid (never a way to make a failing test pass without reading the diff):
``python tests/labs/labdoc.py docs/labs/01-handshake.md`` prints each block's output;
``--write`` replaces the lab's output blocks with it.
"""
from __future__ import annotations

import contextlib
import io
import itertools
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LABS = REPO / "docs" / "labs"
# every lab exists in these languages: English in docs/labs/, each other one in docs/labs/<lang>/
LANGS = ("en", "zh")
# a translated page names the English file it translates and that file's sha256
SOURCE = re.compile(r"<!--\s*source:\s*(?P<name>[\w.-]+)\s+sha256=(?P<sha>[0-9a-f]{64})\s*-->")

# a fenced block: its body is every line up to the closing fence (possibly none)
_MARK = re.compile(r"<!--\s*lab:(?P<kind>run|output|shell)\s+id=(?P<id>[\w.-]+)\s*-->[ \t]*\n"
                   r"```(?P<lang>[\w-]*)\n(?P<body>.*?)^```[ \t]*$", re.S | re.M)
_FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```[ \t]*$", re.S | re.M)


@dataclass
class Block:
    kind: str        # run | output | shell
    id: str
    lang: str
    body: str
    start: int       # offset of the body in the file
    end: int


@dataclass
class Session:
    ns: dict
    out: dict[str, str] = field(default_factory=dict)


def _normalize(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def fences(text: str) -> list[tuple[str, str]]:
    """Every fenced block of a page in order, as (its lab: marker or "", the block with its
    fences): what a translation must keep byte for byte."""
    out = []
    for m in _FENCE.finditer(text):
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        out.append((before if before.startswith("<!-- lab:") else "", m.group(0)))
    return out


def lab_path(filename: str, lang: str = "en") -> Path:
    """docs/labs/<filename> in English, docs/labs/<lang>/<filename> in another language."""
    return LABS / filename if lang == "en" else LABS / lang / filename


class Lab:
    def __init__(self, filename: str, lang: str = "en"):
        self.lang = lang
        self.path = lab_path(filename, lang)
        self.text = self.path.read_text()
        self.blocks: list[Block] = []
        for m in _MARK.finditer(self.text):
            self.blocks.append(Block(m["kind"], m["id"], m["lang"], m["body"],
                                     m.start("body"), m.end("body")))
        ids = [(b.kind, b.id) for b in self.blocks]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"{filename}: duplicate block ids {sorted(dup)}")
        marked = {b.start for b in self.blocks}
        for m in _FENCE.finditer(self.text):
            if m["lang"] == "python" and m.start("body") not in marked:
                line = self.text.count("\n", 0, m.start()) + 1
                raise ValueError(f"{filename}:{line}: a python block without <!-- lab:run id=... -->")

    # ------------------------------------------------------------ lookup
    def _get(self, kind: str, id_: str) -> Block:
        for b in self.blocks:
            if b.kind == kind and b.id == id_:
                return b
        raise KeyError(f"{self.path.name}: no lab:{kind} block id={id_}")

    def code(self, id_: str) -> str:
        return self._get("run", id_).body

    def output(self, id_: str) -> str:
        """The text the lab says block ``id_`` prints (trailing spaces ignored)."""
        return _normalize(self._get("output", id_).body)

    def shell(self, id_: str) -> str:
        return self._get("shell", id_).body

    def run_ids(self) -> list[str]:
        return [b.id for b in self.blocks if b.kind == "run"]

    def output_ids(self) -> list[str]:
        return [b.id for b in self.blocks if b.kind == "output"]

    # ------------------------------------------------------------ running
    def run(self, ids: list[str] | None = None, edit=None) -> Session:
        """Execute the lab:run blocks in order in one namespace, capturing each one's stdout.

        ``ids``: only these blocks (still in document order), say to re-run one part alone.
        ``edit(id, code) -> code``: a test's change to a block (a probe inserted, say)."""
        session = Session(ns={"__name__": "__lab__"})
        for b in self.blocks:
            if b.kind != "run" or (ids is not None and b.id not in ids):
                continue
            buf = io.StringIO()
            body = edit(b.id, b.body) if edit else b.body
            code = compile(body, f"{self.path.name}[{b.id}]", "exec")
            with contextlib.redirect_stdout(buf):
                exec(code, session.ns)
            session.out[b.id] = _normalize(buf.getvalue())
        return session

    def write_outputs(self, session: Session) -> str:
        """The lab's text with every lab:output block replaced by what its block printed."""
        text, shift = self.text, 0
        for b in self.blocks:
            if b.kind == "output" and b.id in session.out:
                new = session.out[b.id] + "\n" if session.out[b.id] else ""
                text = text[:b.start + shift] + new + text[b.end + shift:]
                shift += len(new) - (b.end - b.start)
        return text


_TUN_SERIAL = itertools.count()


def unique_tun(prefix: str) -> str:
    """A TUN name for one run of a lab's commands: this process's and a serial number, so a run never
    reuses the name of a device another run has just removed (en and zh run back to back)."""
    return f"{prefix}{os.getpid() % 100000}{next(_TUN_SERIAL)}"[:15]


def run_shell(script: str, tmp_path: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run a lab's shell commands with bash -e (for tests: already root in a private netns).

    ``tunstack`` is this interpreter's ``python -m stack`` (an executable, as the venv's is,
    so ``kill %1`` reaches the server itself); background jobs are killed on exit.
    """
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    wrapper = bindir / "tunstack"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m stack "$@"\n')
    wrapper.chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ.get('PATH', '')}",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    script = "set -e\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + script
    return subprocess.run(["bash", "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def main(argv: list[str]) -> int:
    write = "--write" in argv
    paths = [a for a in argv if not a.startswith("--")]
    sys.path.insert(0, str(REPO))
    for p in paths:
        lang = Path(p).resolve().parent.name
        lab = Lab(Path(p).name, lang if lang in LANGS else "en")
        session = lab.run()
        if write:
            lab.path.write_text(lab.write_outputs(session))
            print(f"wrote {lab.path}")
        else:
            for id_, out in session.out.items():
                print(f"===== {id_}\n{out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
