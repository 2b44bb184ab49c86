"""The servers of stack/apps and the --wsgi loader, without a TUN."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stack.cli import CliError, load_wsgi_app

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def app_dir(tmp_path, monkeypatch):
    (tmp_path / "goodapp.py").write_text("def application(environ, start_response):\n    return []\n"
                                         "class holder:\n    app = application\nnot_callable = 42\n")
    (tmp_path / "brokenapp.py").write_text("import no_such_dependency_xyz\n")
    (tmp_path / "raisingapp.py").write_text("raise RuntimeError('config missing')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("goodapp", "brokenapp", "raisingapp"):
        sys.modules.pop(name, None)
    return tmp_path


def test_loads_module_attribute_and_dotted_attribute(app_dir):
    assert load_wsgi_app("goodapp:application").__name__ == "application"
    assert load_wsgi_app("goodapp:holder.app").__name__ == "application"


@pytest.mark.parametrize("spec, words", [
    ("goodapp", "MODULE:APP"),
    (":application", "MODULE:APP"),
    ("no_such_module_xyz:app", "no module named 'no_such_module_xyz'"),
    ("goodapp:missing", "has no attribute 'missing'"),
    ("goodapp:not_callable", "is not a callable WSGI application (its type is int)"),
    ("brokenapp:app", "importing 'brokenapp' failed: ModuleNotFoundError"),
    ("raisingapp:app", "importing 'raisingapp' failed: RuntimeError: config missing"),
])
def test_bad_specs_are_one_clear_error(app_dir, spec, words):
    with pytest.raises(CliError) as ei:
        load_wsgi_app(spec)
    assert words in str(ei.value) and "\n" not in str(ei.value)


@pytest.mark.parametrize("spec", ["no_such_module_xyz:app", "goodapp:missing", "goodapp:not_callable"])
def test_serve_with_a_bad_wsgi_app_says_one_line_and_creates_nothing(app_dir, spec, private_netns):
    """The app is loaded before the TUN device is made: one line on stderr, exit 1."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "stack", "serve", "--tun", f"tsw{os.getpid()}", "--wsgi", spec],
                       cwd=app_dir, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"tunstack: --wsgi {spec}: "), r.stderr
    assert not os.path.exists(f"/sys/class/net/tsw{os.getpid()}")
