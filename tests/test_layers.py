"""The import graph of ``stack/`` points down the layers declared in docs/architecture.md, without cycles.

Every module of the package is parsed (ast, not imported): every ``import`` and ``from ... import``
counts, at module level, inside functions and under ``if TYPE_CHECKING:`` alike. An edge is allowed
when it stays inside one layer group (``stack.tcp.layer`` -> ``stack.tcp.connection``) or goes to a
strictly lower level. Peers on one level (``stack.ip`` and ``stack.tcp``) may not import each other.
"""
from __future__ import annotations

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"

# Known exceptions, each with the issue that removes it. The test below fails once an entry is no
# longer true, so the list can only shrink.
KNOWN: set[tuple[str, str]] = set()  # recovery -> connection went with issue 13 item 2


# ------------------------------------------------------------------ the declared layers
def declared_layers(text: str) -> dict[str, tuple[int, str]]:
    """``{module prefix: (level, group)}`` from the table between <!-- layers --> and <!-- /layers -->."""
    block = text.split("<!-- layers -->", 1)[1].split("<!-- /layers -->", 1)[0]
    layers: dict[str, tuple[int, str]] = {}
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].isdigit():
            continue
        level = int(cells[0])
        for prefix in re.findall(r"`([\w.]+)`", cells[2]):
            layers[prefix] = (level, prefix)
    return layers


def place(module: str, layers: dict[str, tuple[int, str]]) -> tuple[int, str] | None:
    """The layer of ``module``: its longest declared prefix (``stack`` alone matches only itself)."""
    best = None
    for prefix, where in layers.items():
        if module == prefix or (prefix != "stack" and module.startswith(prefix + ".")):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, where)
    return best[1] if best else None


# ------------------------------------------------------------------ the graph
def modules_of(root: pathlib.Path) -> dict[str, pathlib.Path]:
    """Dotted name -> file for every module of the package at ``root`` (``root.name`` is the package)."""
    mods = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _targets(module: str, path: pathlib.Path, node: ast.AST, mods: dict) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    base = node.module or ""
    if node.level:
        parts = package.split(".")
        parts = parts[:len(parts) - node.level + 1]
        base = ".".join(parts + ([node.module] if node.module else []))
    # ``from pkg import name``: the submodule pkg.name if there is one, else pkg itself
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]


def import_graph(root: pathlib.Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, anywhere in its source."""
    mods = modules_of(root)
    pkg = root.name
    graph = {}
    for module, path in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(module, path, node, mods):
                    while target not in mods and "." in target:  # ``import stack.tcp.layer.X``-style
                        target = target.rpartition(".")[0]
                    if target in mods and (target == pkg or target.startswith(pkg + ".")) and target != module:
                        deps.add(target)
        graph[module] = deps
    return graph


# ------------------------------------------------------------------ the rules
def upward_imports(graph: dict[str, set[str]], layers: dict) -> list[str]:
    """Edges that go up or sideways, and modules no layer declares."""
    problems = []
    for module in sorted(graph):
        src = place(module, layers)
        if src is None:
            problems.append(f"{module}: in no layer of docs/architecture.md")
            continue
        for dep in sorted(graph[module]):
            dst = place(dep, layers)
            if dst is None or (module, dep) in KNOWN:
                continue  # reported as a module of its own
            if dst[1] != src[1] and dst[0] >= src[0]:
                how = "sideways" if dst[0] == src[0] else "upward"
                problems.append(f"{module} (level {src[0]}) imports {dep} (level {dst[0]}): {how}")
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan), known edges left out."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if (v, w) in KNOWN:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


# ------------------------------------------------------------------ the real package
@pytest.fixture(scope="module")
def layers():
    return declared_layers(DOC.read_text())


@pytest.fixture(scope="module")
def graph():
    return import_graph(ROOT / "stack")


def test_docs_declare_the_layers_in_order(layers):
    level = {prefix: lv for prefix, (lv, _) in layers.items()}
    assert level["stack.wire"] < level["stack.ip"] == level["stack.tcp"] < level["stack.netstack"]
    assert level["stack.netstack"] < level["stack.runtime"] < level["stack.socket"] == level["stack.epoll"]
    assert level["stack.socket"] < level["stack.apps"] < level["stack.cli"]


def test_no_upward_or_sideways_import(graph, layers):
    assert upward_imports(graph, layers) == []


def test_no_import_cycle(graph):
    assert cycles(graph) == []


def test_known_exceptions_are_still_real(graph):
    """Remove an entry from KNOWN once its edge is gone (so the list only shrinks)."""
    assert [edge for edge in sorted(KNOWN) if edge[1] not in graph.get(edge[0], ())] == []


def test_the_seams_of_issue_13(graph):
    assert not any(dep.startswith("stack.tcp") for mod, deps in graph.items() if mod.startswith("stack.ip")
                   for dep in deps)
    assert "stack.socket" not in graph["stack.runtime.stack"]


# ------------------------------------------------------------------ the check itself can fail
def test_a_tcp_module_importing_the_socket_layer_is_caught(graph, layers):
    bad = {mod: set(deps) for mod, deps in graph.items()}
    bad["stack.tcp.connection"].add("stack.socket")
    assert upward_imports(bad, layers) == [
        "stack.tcp.connection (level 1) imports stack.socket (level 4): upward"]
    assert cycles(bad) and any("stack.socket" in c and "stack.tcp.connection" in c for c in cycles(bad))


def test_ip_importing_tcp_is_sideways(graph, layers):
    bad = {mod: set(deps) for mod, deps in graph.items()}
    bad["stack.ip.layer"].add("stack.tcp.layer")
    assert upward_imports(bad, layers) == ["stack.ip.layer (level 1) imports stack.tcp.layer (level 1): sideways"]


def test_an_undeclared_module_is_reported(layers):
    assert upward_imports({"stack.newthing": set()}, layers) == ["stack.newthing: in no layer of docs/architecture.md"]


def test_function_level_and_relative_imports_are_parsed(tmp_path, layers):
    """A source tree with a function-level relative import of the socket layer inside a tcp module."""
    pkg = tmp_path / "stack"
    (pkg / "tcp").mkdir(parents=True)
    for name in ("__init__.py", "socket.py", "tcp/__init__.py", "tcp/states.py"):
        (pkg / name).write_text("")
    (pkg / "tcp" / "connection.py").write_text(
        "from .states import *\n\n"
        "def wake(self):\n"
        "    from ..socket import socket  # the kind of shortcut the test is there to stop\n"
        "    return socket\n")
    g = import_graph(pkg)
    assert g["stack.tcp.connection"] == {"stack.tcp.states", "stack.socket"}
    assert upward_imports(g, layers) == ["stack.tcp.connection (level 1) imports stack.socket (level 4): upward"]


def test_cycles_are_found_inside_one_layer():
    assert cycles({"stack.tcp.a": {"stack.tcp.b"}, "stack.tcp.b": {"stack.tcp.c"}, "stack.tcp.c": {"stack.tcp.a"},
                   "stack.tcp.d": {"stack.tcp.a"}}) == [["stack.tcp.a", "stack.tcp.b", "stack.tcp.c"]]


def attribute_uses(path: pathlib.Path, names: set[str]) -> list[str]:
    """``line: .name`` for every attribute access to one of ``names`` in the file."""
    tree = ast.parse(path.read_text())
    return [f"{node.lineno}: .{node.attr}" for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr in names]


@pytest.mark.parametrize("module", ["socket.py", "epoll.py"])
def test_sockets_use_only_the_runtime_facade(module):
    """Issue 13: sockets never reach into the netstack (``st.host.tcp``), and no call needs a
    ``touch`` + ``kick`` pair: a call ends in one facade call (``Stack.call``, ``connect``, ...)."""
    assert attribute_uses(ROOT / "stack" / module, {"host", "tcp", "touch", "kick", "after_user_call"}) == []


def test_the_facade_check_sees_a_shortcut(tmp_path):
    bad = tmp_path / "socket.py"
    bad.write_text("def send(self, conn, now):\n    self.stack.host.tcp.touch(conn, now)\n")
    assert attribute_uses(bad, {"host", "tcp", "touch"}) == ["2: .touch", "2: .tcp", "2: .host"]
