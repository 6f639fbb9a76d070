"""The report's building blocks: section ids and titles, constants, and the
records a section is made of (images, tables, the section itself)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sim.compare import PAIRED_METRICS
from sim.palette import OUTCOME_COLOURS
from sim.protocols import registry

#: Section ids, in page order.
SECTIONS: tuple[str, ...] = (
    "summary",
    "comparison",
    "rates",
    "isolation",
    "latency",
    "consistency",
    "messages",
    "timeline",
    "swimlane",
)
TITLES: dict[str, str] = {
    "summary": "Summary",
    "comparison": "Which protocol is better: paired differences",
    "rates": "Outcome rates against parameters",
    "isolation": "Isolation anomalies between transactions",
    "latency": "Latency",
    "consistency": "Time to consistency",
    "messages": "Messages, locks and blocking",
    "timeline": "Timeline",
    "swimlane": "One transaction",
}
#: Kept importable under this name; the colours live in :mod:`sim.palette`.
OUTCOME_COLORS: dict[str, str] = OUTCOME_COLOURS
#: Distribution panels of a sweep: at most this many values of its first axis.
_MAX_PANELS = 4
#: Curves are drawn through this many quantiles, whatever the number of transactions.
_CURVE_POINTS = 512
#: Sharp on a high-density screen and in print; text sizes are chosen for it.
_DPI = 150
#: The protocols whose transactions can end aborted, and those whose
#: per-transaction lock and blocking columns the report draws (every
#: protocol that declares ``lock_held`` in the registry), in order.
_ABORTING = frozenset(p.name for p in registry.protocols() if p.aborts)
_LOCKING: tuple[str, ...] = tuple(p.name for p in registry.protocols() if "lock_held" in p.transaction_columns)


def _labels(names: Sequence[str], joiner: str = " and ") -> str:
    """The registry's labels of ``names``, joined (``a``, ``a and b``, ``a, b and c``)."""
    labels = [registry.get(n).label if n in registry.names() else n for n in names]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + joiner + labels[-1]


#: The rates the comparison pairs: those sagasim compare prints, after the committed share.
_COMPARED: tuple[str, ...] = ("committed_rate", *PAIRED_METRICS)
#: The edge of the hatched band of rejected arrivals.
_REJECTED = "#616161"
Progress = Callable[[str], None]


@dataclass
class _Image:
    file: str
    alt: str
    data_uri: str


@dataclass
class _Table:
    caption: str
    header: list[str]
    rows: list[list[tuple[str, str]]]  # (text, css class) per cell


@dataclass
class _Section:
    id: str
    title: str
    paragraphs: list[str] = field(default_factory=list)
    images: list[_Image] = field(default_factory=list)
    tables: list[_Table] = field(default_factory=list)


class _Skip(Exception):
    """A section the data does not allow; the message says why."""
