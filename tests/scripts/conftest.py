"""Each tests/scripts/*.pkt is one pytest case: the script runs against the stack in virtual time.

A failing script reports the runner's diff (line, expected line, actual segment, segments so far).
"""
from __future__ import annotations

import pytest

from stack.pktscript.parse import ScriptError, parse_file
from stack.pktscript.run import run_script


def pytest_collect_file(parent, file_path):
    if file_path.suffix == ".pkt":
        return PacketScriptFile.from_parent(parent, path=file_path)
    return None


class PacketScriptFile(pytest.File):
    def collect(self):
        yield PacketScriptItem.from_parent(self, name=self.path.stem)


class ScriptFailure(Exception):
    pass


class PacketScriptItem(pytest.Item):
    def runtest(self):
        try:
            script = parse_file(str(self.path))
        except ScriptError as exc:
            raise ScriptFailure(str(exc)) from None
        result = run_script(script)
        if not result.ok:
            raise ScriptFailure(result.message)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, ScriptFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"packet script {self.path.name}"
