"""Command-line glue of the impairment layer: ``--impair``, ``--impair-in``,
``--impair-out`` and ``--seed`` for argparse, and the two ``Impairment`` objects they build."""
from __future__ import annotations

import argparse

from .impair import Impairment, derive_seed
from .impair_spec import ImpairSpec

__all__ = ["SPEC_HELP", "parse_spec_arg", "add_impairment_arguments", "impairments_from_args"]

SPEC_HELP = """\
SPEC is a comma-separated list of KEY=VALUE items, e.g.
'loss=2%,delay=20ms,jitter=5ms,drop=data:3'. Keys: loss=P (5% or 0.05);
burst=P_GOOD_TO_BAD/P_BAD_TO_GOOD (Gilbert-Elliott, e.g. 1%/30%);
drop=KIND:N (scripted drop of the Nth packet of KIND: data, syn, synack, ack,
fin, rst, tcp, pkt; e.g. data:3, synack:1, syn:1,2, data:5-7, data:3x2 for the
3rd data segment and its first retransmission; several with '+');
delay=T (20ms, 500us); jitter=T[/normal]; preserve_order; reorder=P[/delay/T];
dup=P; corrupt=P[/any]; rate=R (10mbit, 512kbit, 1gbit, 125kbyte);
queue=N packets or 64kb bytes (drop-tail, with rate). See docs/impairment.md."""


def parse_spec_arg(text: str) -> ImpairSpec:
    """argparse ``type=``: an ImpairSpec, or a clean ``argparse`` error."""
    try:
        return ImpairSpec.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _seed_arg(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed {text!r} is not an integer") from None


def add_impairment_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add ``--impair``, ``--impair-in``, ``--impair-out`` and ``--seed`` to ``parser``
    (``--seed`` is left alone when the parser already has one)."""
    group = parser.add_argument_group(
        "impairment (seeded, per direction; 'in' = link to stack, 'out' = stack to link)",
        SPEC_HELP)
    none = ImpairSpec()                 # shows as "none" where defaults are printed
    group.add_argument("--impair", metavar="SPEC", type=parse_spec_arg, default=none,
                       help="impair both directions, e.g. 'loss=2%%,delay=20ms'")
    group.add_argument("--impair-in", metavar="SPEC", type=parse_spec_arg, default=none,
                       help="impair packets arriving at the stack (added on top of --impair)")
    group.add_argument("--impair-out", metavar="SPEC", type=parse_spec_arg, default=none,
                       help="impair packets the stack sends (added on top of --impair)")
    if "--seed" not in parser._option_string_actions:
        # SUPPRESS: without --seed the namespace has no ``seed``, so nothing else that
        # reads args.seed (say, the stack's ISN secret) is pinned by our default; the
        # impairment itself then uses seed 0 and stays reproducible.
        group.add_argument("--seed", metavar="N", type=_seed_arg, default=argparse.SUPPRESS,
                           help="seed for the impairment random streams (0 when not given): "
                                "the same seed replays the same losses; each direction "
                                "derives its own sub-seed")
    return group


def impairments_from_args(args: argparse.Namespace, tracer=None) -> tuple[Impairment, Impairment]:
    """(inbound, outbound) Impairment from parsed arguments; per-direction sub-seeds."""
    both = getattr(args, "impair", None) or ImpairSpec()
    seed = getattr(args, "seed", None) or 0
    result = []
    for direction in ("in", "out"):
        extra = getattr(args, f"impair_{direction}", None)
        spec = both.overlay(extra) if extra is not None else both
        result.append(Impairment(spec, derive_seed(seed, direction), direction, tracer))
    return result[0], result[1]
