"""One colour per protocol and per outcome, for every chart sagasim draws.

The report (:mod:`sim.report`), the swimlane and the notebooks read these, so
a protocol looks the same wherever it is plotted. A protocol's colour is in
its registration (:mod:`sim.protocols.registry`).
"""

from __future__ import annotations

from collections.abc import Sequence

from sim.protocols import registry

__all__ = ["OUTCOME_COLOURS", "PROTOCOL_COLOURS", "protocol_colour"]

#: The protocols sagasim knows, each its own colour (from the registry).
PROTOCOL_COLOURS: dict[str, str] = {p.name: p.colour for p in registry.protocols()}
#: Outcomes of a transaction: good ones green and blue, bad ones red and orange.
OUTCOME_COLOURS: dict[str, str] = {
    "committed": "#2e7d32",
    "compensated": "#1565c0",
    "aborted": "#8d6e63",
    "inconsistent": "#c62828",
    "stuck": "#ef6c00",
}
# Protocols added later (or names from an old result) get these, in order of appearance;
# none of them is a protocol's or a bad outcome's colour.
_EXTRA = ("#2ca02c", "#8c564b", "#e377c2", "#17becf")
_UNKNOWN = "#7f7f7f"


def protocol_colour(protocol: str, order: Sequence[str] = ()) -> str:
    """The colour of ``protocol``: its own, else one of a few spare colours by
    its place in ``order`` (the protocols of the chart), else grey."""
    if protocol in PROTOCOL_COLOURS:
        return PROTOCOL_COLOURS[protocol]
    others = [p for p in order if p not in PROTOCOL_COLOURS]
    if protocol in others:
        return _EXTRA[others.index(protocol) % len(_EXTRA)]
    return _UNKNOWN
