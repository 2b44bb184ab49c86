"""Seams: installing a part rebinds the reference wherever the stack holds it, uninstalling puts
it back, and with nothing installed the stack holds exactly its own objects (zero cost)."""
from __future__ import annotations

import pathlib
import sys

import pytest

from stack.exercises import seams

WIRED = [s for s in seams.SEAMS.values() if s.wired and s.key is None]
REGISTRY = [s for s in seams.SEAMS.values() if s.key is not None]


def _stack_globals_named(attr: str, home: str):
    """Stack globals called ``attr``, but for homonyms defined elsewhere in the stack (stack.ip's
    fragment ``Reassembler`` beside stack.tcp's): a wrapper bound under the name is still found."""
    seams.preload()
    for name, mod in list(sys.modules.items()):
        if mod is not None and name.startswith("stack.") and not name.startswith("stack.exercises"):
            if attr in vars(mod):
                where = getattr(vars(mod)[attr], "__module__", "") or ""
                if where != home and where.startswith("stack.") and not where.startswith("stack.exercises"):
                    continue
                yield name, vars(mod)[attr]


@pytest.mark.parametrize("seam", WIRED, ids=lambda s: s.name)
def test_nothing_installed_the_stack_holds_its_own_objects(seam):
    """Zero cost: every stack global of the seam's name is the reference object itself, defined in its
    home module (no wrapper, no indirection), and it is bound in the modules that use it."""
    ref = seam.reference
    assert getattr(sys.modules[seam.home], seam.attr) is ref
    assert ref.__module__ == seam.home and ref.__qualname__ == seam.attr
    holders = dict(_stack_globals_named(seam.attr, seam.home))
    assert holders and all(obj is ref for obj in holders.values()), holders
    users = [b for b in seams.bindings(ref) if b != f"{seam.home}:{seam.attr}"] or _callers_in_home(seam)
    assert users, "the home module and at least one user (another module, or code of the home that calls it)"


def _callers_in_home(seam) -> list[str]:
    """Functions and methods of the seam's home module whose code looks the seam's name up as a global
    (stack.epoll's epoll._ep_poll_callback calls ep_poll_callback: the module binding is the one to rebind)."""
    mod = sys.modules[seam.home]
    found = []
    for key, value in vars(mod).items():
        members = vars(value).items() if isinstance(value, type) and value.__module__ == seam.home else [(None, value)]
        for mkey, fn in members:
            code = getattr(fn, "__code__", None)
            if code is not None and seam.attr in code.co_names and fn is not seam.reference:
                found.append(f"{seam.home}:{key}" + (f".{mkey}" if mkey else ""))
    return found


def test_stack_never_imports_the_exercises():
    """No hook on the hot path: nothing in stack/ outside stack/exercises refers to the package,
    except the one-line CLI registration."""
    root = pathlib.Path(seams.__file__).resolve().parents[1]
    users = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                   if "exercises" not in p.parts and "exercises" in p.read_text())
    assert users == ["cli.py"], users


def test_install_rebinds_every_site_and_uninstall_restores():
    ref = seams.SEAMS["seq.seq_lt"].reference
    sites = seams.bindings(ref)

    def mine(a, b):
        return ref(a, b)

    with seams.swapped({"seq.seq_lt": mine}) as inst:
        assert seams.bindings(ref) == []
        assert sorted(seams.bindings(mine)) == sorted(sites)
        import stack.tcp.input as tcp_input
        assert tcp_input.seq_lt is mine
        assert inst.active
    assert sorted(seams.bindings(ref)) == sorted(sites)
    assert seams.bindings(mine) == []


def test_swapped_restores_after_an_exception():
    ref = seams.SEAMS["rtt.RttEstimator"].reference

    class Mine(ref):
        pass

    with pytest.raises(ZeroDivisionError):
        with seams.swapped({"rtt.RttEstimator": Mine}):
            import stack.tcp.connection as conn
            assert conn.RttEstimator is Mine
            1 / 0
    import stack.tcp.connection as conn
    assert conn.RttEstimator is ref


def test_class_attribute_bindings_are_rebound_too():
    """A reference held as a class attribute (or staticmethod) is reached as well."""
    import stack.tcp.seq as seqmod
    ref = seams.SEAMS["seq.seq_ge"].reference
    holder = type("Holder", (), {"cmp": ref, "scmp": staticmethod(ref), "__module__": "stack.tcp.seq"})
    seqmod._Holder = holder
    try:
        def mine(a, b):
            return True
        with seams.swapped({"seq.seq_ge": mine}):
            assert holder.cmp is mine and holder.scmp is mine
        assert holder.cmp is ref and holder.scmp is ref
    finally:
        del seqmod._Holder


def test_every_seam_is_wired_into_the_stack():
    """Every seam's home is a module of the stack, not of the exercises: the core calls each part."""
    for s in seams.SEAMS.values():
        assert s.wired and s.home.startswith("stack.") and not s.home.startswith("stack.exercises"), s


@pytest.mark.parametrize("seam", REGISTRY, ids=lambda s: s.name)
def test_registry_seam_adds_its_entry_only_while_installed(seam):
    """Zero cost: with nothing installed the registry holds only the stack's own entries; installing
    adds the part under its key (congestion algorithm 'student'), uninstalling removes it, even after
    an exception."""
    import importlib
    registry = getattr(importlib.import_module(seam.home), seam.attr)
    before = dict(registry)
    assert seam.key not in registry
    assert all(v.__module__.startswith("stack.") and not v.__module__.startswith("stack.exercises")
               for v in registry.values())

    class Part:
        pass

    with pytest.raises(ZeroDivisionError):
        with seams.swapped({seam.name: Part}):
            assert registry[seam.key] is Part
            1 / 0
    assert registry == before
