"""The protocol registry (issue 16, point 1) and the protocol-neutral world
(point 2): only a protocol's own package names it, and ``sim/world`` imports
no protocol."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from sim.names import PROTOCOLS
from sim.palette import PROTOCOL_COLOURS
from sim.protocols import registry
from sim.runner import Model
from sim.scenario import PROTOCOL_ALL_NODES, RESERVED_NODES, ScenarioError, scenario_from_dict

from conftest import order_dict, order_scenario

SIM = Path(__file__).resolve().parent.parent / "sim"
#: A protocol's name as a string literal: what only its own package may write
#: (built from the registry: a new protocol needs no edit here).
NAMED = re.compile("[\"'](" + "|".join(re.escape(n) for n in registry.names()) + ")[\"']")
#: How errors list the registered protocols.
ALLOWED = ", ".join(registry.names())


def _sources(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def test_only_a_protocols_package_names_it() -> None:
    outside = [p for p in _sources(SIM) if SIM / "protocols" not in p.parents]
    assert len(outside) > 20  # the scan reads the package, not an empty folder
    found = [
        f"{p.relative_to(SIM.parent)}:{n}: {line.strip()}"
        for p in outside
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if NAMED.search(line)
    ]
    assert found == []


def test_the_scan_finds_a_name() -> None:
    # The pattern of the test above matches the spellings it is meant to forbid.
    assert NAMED.search('if protocol == "2pc":') and NAMED.search("x = 'choreography'")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_the_world_imports_no_protocol() -> None:
    files = _sources(SIM / "world")
    assert len(files) > 10
    bad = {str(p.relative_to(SIM.parent)): m for p in files for m in _imports(p) if m.startswith("sim.protocols")}
    assert bad == {}
    # ... and the check sees imports under TYPE_CHECKING too.
    assert "sim.protocols.base" in _imports(SIM / "runner.py") or "sim.protocols" in _imports(SIM / "runner.py")


def test_every_protocol_is_registered_once_in_order() -> None:
    assert registry.names() == PROTOCOLS
    assert PROTOCOLS[:3] == ("orchestration", "2pc", "choreography")  # the first three, in their order
    orders = [p.order for p in registry.protocols()]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)
    assert len(set(p.name for p in registry.protocols())) == len(registry.protocols())
    assert {p.name: p.colour for p in registry.protocols()} == PROTOCOL_COLOURS
    assert len(set(PROTOCOL_COLOURS.values())) == len(PROTOCOLS)  # one colour each
    assert {p.name: p.nodes for p in registry.protocols()} == PROTOCOL_ALL_NODES
    assert {
        "orchestration": ("orchestrator",),
        "2pc": ("coordinator",),
        "choreography": ("broker", "tracker"),
    }.items() <= (PROTOCOL_ALL_NODES.items())
    assert (*dict.fromkeys(n for p in registry.protocols() for n in p.nodes), "client") == RESERVED_NODES
    with pytest.raises(KeyError, match=f"allowed: {ALLOWED}"):
        registry.get("xa")


def test_an_unknown_protocol_is_refused_with_the_registered_ones() -> None:
    raw = order_dict()
    raw["run"]["protocols"] = ["xa"]
    with pytest.raises(
        ScenarioError,
        match=re.escape(f'run.protocols[0] = "xa": not allowed (allowed: {ALLOWED})'),
    ):
        scenario_from_dict(raw, source="test")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_protocols_columns_are_registered(protocol: str) -> None:
    """Each run's summary and transaction columns are the runner's plus the
    ones its registration declares: none missing, none undeclared."""
    info = registry.get(protocol)
    out = Model(order_scenario({"run.duration": 2.0, "run.drain": 2.0}), protocol, 1).run()
    assert set(info.summary_columns) <= set(out.summary)
    others = {c for p in registry.protocols() if p is not info for c in p.summary_columns} - set(info.summary_columns)
    assert not others & set(out.summary)
    extra = set(out.transactions) - {c for p in registry.protocols() for c in p.transaction_columns}
    assert set(info.transaction_columns) <= set(out.transactions)
    assert not (set(out.transactions) - extra - set(info.transaction_columns))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_registered_checker_judges(protocol: str) -> None:
    model = Model(order_scenario({"run.duration": 1.0}), protocol, 1)
    assert type(model.checker) is registry.get(protocol).checker_class()


def test_each_protocols_sections_are_scenario_tables_from_its_package() -> None:
    """A protocol's spec lives in its own package and becomes a table of
    every scenario, defaulted, validated like the others."""
    import sim.scenario

    fields = sim.scenario.Scenario.model_fields
    scenario = order_scenario()
    for p in registry.protocols():
        for section, spec in p.spec_classes().items():
            assert spec.__module__.startswith("sim.protocols."), (p.name, section)
            assert fields[section].annotation is spec
            assert isinstance(getattr(scenario, section), spec)  # defaulted when the file leaves it out
    section = registry.protocols()[0].sections[0]
    with pytest.raises(ScenarioError, match=rf"{section}\.no_such_setting"):
        scenario_from_dict({**order_dict(), section: {"no_such_setting": 1}})


def test_two_protocols_cannot_take_one_section(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    import sim.scenario

    first, *rest = registry.protocols()
    clash = dataclasses.replace(rest[0], specs=first.specs)
    monkeypatch.setattr(registry, "protocols", lambda: (first, clash, *rest[1:]))
    with pytest.raises(RuntimeError, match="already taken"):
        sim.scenario._fields()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_protocols_own_anomalies_are_counted_in_its_summary_only(protocol: str) -> None:
    """Each code a protocol registers beyond the common ones is a count and
    a share in its summary, and in no other protocol's."""
    from sim.checker import ANOMALIES

    info = registry.get(protocol)
    out = Model(order_scenario({"run.duration": 2.0, "run.drain": 2.0}), protocol, 1).run()
    for code in ANOMALIES:
        assert f"anomaly_{code}" in out.summary
    for p in registry.protocols():
        for code in p.anomalies:
            assert code not in ANOMALIES
            present = {f"anomaly_{code}", f"anomaly_{code}_share"} & set(out.summary)
            assert present == ({f"anomaly_{code}", f"anomaly_{code}_share"} if p is info else set())
    if info.anomalies:
        assert out.summary[f"anomaly_{info.anomalies[0]}_share"] == 0.0  # a fault-free run: none
