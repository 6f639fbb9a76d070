"""The user-facing docs and scenario files are part of the product: their
examples run here, and console output is compared with what the docs show."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from sim.scenario import load_scenario, scenario_from_dict
from sim.sweep import sweep_from_dict
from sim.testing import assert_expected, run_scenario

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SCENARIO_FILES = sorted((ROOT / "scenarios").glob("*.toml"))
SAGASIM = str(Path(sys.executable).parent / "sagasim")


def blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", path.read_text(), flags=re.S | re.M)


def examples(language: str) -> list[tuple[str, str]]:
    return [(f"{p.name}#{i}", b) for p in DOCS for i, b in enumerate(blocks(p, language))]


def params(language: str) -> list[Any]:
    return [pytest.param(where, block, id=where) for where, block in examples(language)]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A scratch folder that sees the repository's scenarios, like a user's checkout."""
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios")
    (tmp_path / "sweeps").symlink_to(ROOT / "sweeps")
    return tmp_path


def console_sessions(block: str) -> list[tuple[str, str]]:
    """``$ command`` lines and the output shown under each."""
    sessions: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            sessions.append((line[2:], []))
        elif sessions:
            sessions[-1][1].append(line)
    return [(cmd, "\n".join(out).strip("\n")) for cmd, out in sessions]


@pytest.mark.parametrize(("where", "block"), params("console"))
def test_console_examples_print_what_the_docs_show(where: str, block: str, workdir: Path) -> None:
    for command, shown in console_sessions(block):
        argv = shlex.split(command)
        assert argv[0] == "sagasim", f"{where}: examples use the sagasim command"
        if not shown and argv[1] == "run":
            # An example without output: check that its scenario and flags are
            # valid without spending a full run on it.
            argv = ["sagasim", "validate", *argv[2:]]
        done = subprocess.run(
            [SAGASIM, *argv[1:]],
            cwd=workdir,
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "100"},
        )
        # The stderr line `results written to DIR` is left out of the long examples, unless they show it.
        keep_written = "results written to" in shown
        printed = "\n".join(
            line
            for line in (done.stdout + done.stderr).splitlines()
            if keep_written or not line.startswith("results written to")
        ).strip("\n")
        assert "Traceback" not in printed
        if shown:
            assert printed == shown, f"{where}: `{command}` printed something else"
        else:
            assert done.returncode == 0, f"{where}: `{command}` failed:\n{printed}"


@pytest.mark.parametrize(("where", "block"), params("python"))
def test_python_examples_run(where: str, block: str, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workdir)
    exec(compile(block, where, "exec"), {"__name__": "__doc_example__"})


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def test_toml_examples_in_the_docs_are_valid() -> None:
    found = [(where, block) for where, block in examples("toml") if not where.startswith(SWEEP_DOC.name)]
    complete = [tomllib.loads(b) for _, b in found if re.search(r"^name = ", b, re.M)]
    assert complete, "docs/scenarios.md shows a complete scenario"
    for data in complete:
        scenario_from_dict(data, source="docs example")
    for where, block in found:
        fragment = tomllib.loads(block)
        # Fragments are shown on their own; they must fit the complete example.
        scenario_from_dict(_merge(complete[0], fragment), source=where)


SWEEP_DOC = ROOT / "docs" / "sweeps.md"


def test_sweep_file_examples_in_the_docs_are_valid() -> None:
    found = blocks(SWEEP_DOC, "toml")
    complete = [tomllib.loads(b) for b in found if re.search(r"^scenario = ", b, re.M)]
    assert complete, "docs/sweeps.md shows a complete sweep file"
    for i, block in enumerate(found):
        # Fragments are shown on their own; they must fit the complete example.
        data = _merge(complete[0], tomllib.loads(block))
        sweep = sweep_from_dict(data, base=ROOT / "sweeps", source=f"{SWEEP_DOC.name}#{i}")
        assert sweep.points


# ------------------------------------------------------------------ scenario files

HEADER = ("# Question:", "# What it shows:", "# Expected:")


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: p.name)
def test_scenario_files_validate_and_say_what_they_show(path: Path) -> None:
    scenario = load_scenario(path)
    text = path.read_text()
    assert text.startswith("# Question:"), f"{path.name} starts with the question it answers"
    header = text.split("\nname =")[0]
    assert all(line.startswith("#") for line in header.splitlines()), f"{path.name}: the header is one comment"
    positions = [header.find(heading) for heading in HEADER]
    for heading, at in zip(HEADER, positions, strict=True):
        assert at >= 0, f"{path.name} header lacks {heading!r}"
    assert positions == sorted(positions), f"{path.name}: header parts in the order {HEADER}"
    assert scenario.description
    assert "\n" not in scenario.description, f"{path.name}: the description is one line (sagasim list shows it)"
    assert scenario.name == path.stem, f"{path.name}: name = {scenario.name!r} should match the file name"
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", scenario.name), f"{path.name}: name in kebab-case"


def test_scenario_files_make_a_library() -> None:
    assert len(SCENARIO_FILES) >= 12
    names = {p.stem for p in SCENARIO_FILES}
    for name in ("happy-path", "retry-storm", "near-capacity", "swarm", "participant-crash-under-load"):
        assert name in names


# Each file's documented expectation ([expect]) holds on the first seed it
# lists, run at full size: load-dependent scenarios (near capacity, retry
# storm, crashes under load) only show what they promise at their own load.
# Every file is sized so that one seed runs in about a second or less.
@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: p.name)
def test_scenario_files_run_and_meet_their_expectation(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.expect.checks(), f"{path.name} has no [expect] table"
    result = run_scenario(path, seeds=scenario.run.seeds[0])
    assert result.summary["transactions"].min() >= 1000, f"{path.name}: too few transactions to judge rates"
    assert_expected(result)


# Paired files run the same services, workload and faults and differ only in
# the design choice they compare; their headers say so.
PAIRS = {
    ("lost-replies-naive", "lost-replies"): ("orchestrator",),
    ("gray-failure-slow-shipping-naive", "gray-failure-slow-shipping"): ("orchestrator",),
    ("failing-compensations-naive", "failing-compensations"): ("orchestrator",),
    ("duplicates-not-idempotent", "duplicates-idempotent"): ("participants",),
    ("tcc-no-barrier", "tcc-barrier"): ("tcc",),
}


@pytest.mark.parametrize(("a", "b"), list(PAIRS), ids=lambda name: name)
def test_scenario_files_paired_variants_differ_only_in_the_design(a: str, b: str) -> None:
    left = load_scenario(ROOT / "scenarios" / f"{a}.toml").effective()
    right = load_scenario(ROOT / "scenarios" / f"{b}.toml").effective()
    differ = PAIRS[(a, b)]
    for key in (
        "run",
        "workload",
        "network",
        "participants",
        "transactions",
        "orchestrator",
        "tcc",
        "faults",
        "nemesis",
    ):
        if key not in differ:
            assert left[key] == right[key], f"{a} and {b} differ in [{key}]"
    for key in differ:
        assert left[key] != right[key]
    if differ == ("tcc",):
        assert {**left["tcc"], "barrier": True} == right["tcc"]
    if differ == ("participants",):
        for name, spec in left["participants"].items():
            assert {**spec, "idempotent": True} == right["participants"][name]


def test_naive_and_robust_share_saga_services_and_faults() -> None:
    naive = load_scenario(ROOT / "scenarios" / "naive-orchestrator.toml").effective()
    robust = load_scenario(ROOT / "scenarios" / "robust-orchestrator.toml").effective()
    for key in ("run", "workload", "network", "participants", "transactions", "faults"):
        assert naive[key] == robust[key], key
    assert naive["orchestrator"]["recovery"] is False
    assert naive["orchestrator"]["idempotency_keys"] is False
    assert naive["orchestrator"]["compensation_retry"]["attempts"] == 1


def test_scenario_doc_lists_every_top_level_table_and_protocol() -> None:
    from sim.scenario import PROTOCOLS, Scenario

    text = (ROOT / "docs" / "scenarios.md").read_text()
    top = text.split("## Top level", 1)[1].split("\n## ", 1)[0]
    for name in Scenario.model_fields:
        spelled = {"participants": "`[participants.NAME]`", "transactions": "`[transactions.NAME]`"}
        shown = spelled.get(name, f"`[[{name}]]`" if name == "faults" else f"`[{name}]`")
        if name in ("name", "description"):
            shown = f"`{name}`"
        assert f"| {shown} |" in top, f"docs/scenarios.md: the top-level table lacks {shown}"
        if name not in ("name", "description"):
            assert f"## {shown}" in text, f"docs/scenarios.md: no section {shown}"
    protocols_row = next(line for line in text.splitlines() if line.startswith("| `protocols` |"))
    for protocol in PROTOCOLS:
        assert f"`{protocol}`" in protocols_row


def test_results_doc_has_a_heading_per_file() -> None:
    text = (ROOT / "docs" / "results.md").read_text()
    for file in ("transactions.parquet", "summary.parquet", "faults.parquet", "events.parquet", "run.json"):
        assert re.search(rf"^## `{re.escape(file)}`", text, re.M), f"docs/results.md: no heading for {file}"
