"""The report's building blocks: section ids and titles, constants, and the
records a section is made of (images, tables, the section itself)."""

from __future__ import annotations

from collections.abc import Callable
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
#: The protocols whose transactions can end aborted, and the one whose
#: per-transaction lock and blocking columns the report draws (the owner of
#: ``lock_held`` in the registry: two-phase commit).
_ABORTING = frozenset(p.name for p in registry.protocols() if p.aborts)
_LOCKING = next(p.name for p in registry.protocols() if "lock_held" in p.transaction_columns)
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
