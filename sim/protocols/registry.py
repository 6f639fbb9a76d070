"""The protocol registry: what the rest of sagasim knows of each protocol.

A protocol is a package under ``sim/protocols/`` whose ``__init__.py``
defines ``PROTOCOL``, one :class:`ProtocolInfo`. This module finds those
packages (it names none of them), so adding a protocol is adding a package:
scenario validation, sweeps, the runner, the checker's choice, the report,
compare and the swimlane read what is registered here.

This module and every package's ``__init__.py`` stay light (no pandas,
pydantic, simpy or numpy): the command line lists the protocols in its help
text at start-up. The heavy parts (the builder, the checker) are named as
``"module:attribute"`` and imported on first use.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

__all__ = ["ProtocolInfo", "all_nodes", "compared", "get", "names", "protocols", "reexport", "reserved_nodes"]


@dataclass(frozen=True)
class ProtocolInfo:
    """One protocol's registration.

    ``specs`` are the scenario's tables that configure the protocol, each
    ``(section, "module:Class")``: the table's name in a scenario file and
    its pydantic spec (a :class:`sim.specs.SpecModel`, usually in the
    package's ``spec.py``), which :mod:`sim.scenario` adds to the scenario as
    a field with every setting defaulted; ``nodes`` are the nodes it adds
    beyond the participants (fault targets, reserved node names), and
    ``node_names``, when given, ``"module:function"`` of the nodes it adds in
    one scenario (taking the :class:`sim.scenario.Scenario`: a protocol whose
    nodes depend on its settings); ``build`` is
    ``"module:function"`` taking the run's :class:`sim.runner.Model` and
    returning its :class:`~sim.protocols.base.TransactionProtocol`;
    ``checker`` is ``"module:class"`` of the checker judging its transactions.
    ``transaction_columns`` and ``summary_columns`` are the columns it adds to
    ``transactions.parquet`` and ``summary.parquet``. ``anomalies`` are the
    anomaly codes its checker gives beyond the common ones
    (:data:`sim.checker.ANOMALIES`): its summary counts each
    (``anomaly_<code>``) and gives its share of the transactions
    (``anomaly_<code>_share``); other protocols' summaries have neither.
    ``compared`` are the transaction columns whose mean the comparisons show.
    """

    name: str
    #: Place in every list of protocols (help text, tables, charts): smaller first.
    order: int
    label: str
    colour: str
    specs: tuple[tuple[str, str], ...]
    nodes: tuple[str, ...]
    build: str
    checker: str
    transaction_columns: tuple[str, ...] = ()
    summary_columns: tuple[str, ...] = ()
    anomalies: tuple[str, ...] = ()
    #: Transaction columns (seconds) whose mean ``sagasim compare`` and the
    #: report's summary show per protocol, each ``(column, label)``: the
    #: compare table's column is ``<column>_mean``, its row "<label> (mean)".
    compared: tuple[tuple[str, str], ...] = ()
    #: Whether a transaction can end ``aborted`` (rolled back before any effect).
    aborts: bool = False
    #: Whether its transactions have no coordinator (a chain of events: the
    #: tracker reads where it ended).
    coordinator_free: bool = False
    #: ``"module:function"`` giving its nodes in one scenario, when they
    #: depend on the scenario's settings (``nodes`` when empty).
    node_names: str = ""

    @property
    def sections(self) -> tuple[str, ...]:
        """The scenario tables that configure the protocol."""
        return tuple(section for section, _ in self.specs)

    def spec_classes(self) -> dict[str, Any]:
        """Each section's pydantic spec class (imported on first use)."""
        return {section: _resolve(ref) for section, ref in self.specs}

    def nodes_in(self, scenario: Any) -> tuple[str, ...]:
        """The nodes it adds beyond the participants in ``scenario`` (a
        :class:`sim.scenario.Scenario`): ``node_names``'s answer, else ``nodes``."""
        if not self.node_names:
            return self.nodes
        return tuple(_resolve(self.node_names)(scenario))

    def builder(self) -> Callable[[Any], Any]:
        """The function that builds the protocol on a run's model."""
        return _resolve(self.build)

    def checker_class(self) -> Callable[[Any], Any]:
        """The checker's class: called with the transaction's steps."""
        return _resolve(self.checker)


def reexport(package: str) -> Callable[[str], Any]:
    """A ``__getattr__`` for a protocol package's ``__init__.py``: its code's
    names (in its module ``protocol``), imported on first use, so that
    ``from sim.protocols.<name> import X`` works and listing protocols stays light."""

    def __getattr__(attr: str) -> Any:
        protocol = importlib.import_module(f"{package}.protocol")
        if attr == "protocol":
            return protocol
        try:
            return getattr(protocol, attr)
        except AttributeError:
            raise AttributeError(f"module {package!r} has no attribute {attr!r}") from None

    return __getattr__


def _resolve(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


@cache
def protocols() -> tuple[ProtocolInfo, ...]:
    """Every registered protocol, in their ``order``."""
    import sim.protocols as package

    found = []
    for module in pkgutil.iter_modules(package.__path__):
        if module.ispkg:
            info = getattr(importlib.import_module(f"{package.__name__}.{module.name}"), "PROTOCOL", None)
            if isinstance(info, ProtocolInfo):
                found.append(info)
    return tuple(sorted(found, key=lambda p: (p.order, p.name)))


def names() -> tuple[str, ...]:
    """The registered protocols' names, in order."""
    return tuple(p.name for p in protocols())


def get(name: str) -> ProtocolInfo:
    """The registration of ``name``; :class:`KeyError` naming the allowed ones if none."""
    for p in protocols():
        if p.name == name:
            return p
    raise KeyError(f"unknown protocol {name!r}; allowed: {', '.join(names())}")


def all_nodes() -> dict[str, tuple[str, ...]]:
    """Per protocol, the nodes it adds beyond the participants."""
    return {p.name: p.nodes for p in protocols()}


def compared() -> tuple[tuple[str, str], ...]:
    """Every protocol's compared columns (see :class:`ProtocolInfo`), in the
    registry's order, each once."""
    seen: dict[str, str] = {}
    for p in protocols():
        for column, label in p.compared:
            seen.setdefault(column, label)
    return tuple(seen.items())


def reserved_nodes() -> tuple[str, ...]:
    """Node names participants may not take: every protocol's, and the harness's ``client``."""
    seen: dict[str, None] = {}
    for p in protocols():
        seen.update(dict.fromkeys(p.nodes))
    return (*seen, "client")
