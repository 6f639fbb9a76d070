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
        printed = "\n".join(
            line for line in (done.stdout + done.stderr).splitlines() if not line.startswith("results written to")
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
    found = examples("toml")
    complete = [tomllib.loads(b) for _, b in found if re.search(r"^name = ", b, re.M)]
    assert complete, "docs/scenarios.md shows a complete scenario"
    for data in complete:
        scenario_from_dict(data, source="docs example")
    for where, block in found:
        fragment = tomllib.loads(block)
        # Fragments are shown on their own; they must fit the complete example.
        scenario_from_dict(_merge(complete[0], fragment), source=where)


# ------------------------------------------------------------------ scenario files

HEADER = ("# Question:", "# What it shows:", "# Expected:")


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: p.name)
def test_scenario_files_validate_and_say_what_they_show(path: Path) -> None:
    scenario = load_scenario(path)
    text = path.read_text()
    assert text.startswith("# Question:"), f"{path.name} starts with the question it answers"
    for heading in HEADER:
        assert heading in text.split("\nname =")[0], f"{path.name} header lacks {heading!r}"
    assert scenario.description


# Each file's documented expectation ([expect]) holds on one seed, with
# arrivals thinned 4x so the suite stays fast; faults and timings are as in
# the file.
@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: p.name)
def test_scenario_files_run_and_meet_their_expectation(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.expect.checks(), f"{path.name} has no [expect] table"
    mean = scenario.workload.interarrival.built.mean
    thin = {"workload.interarrival": {"dist": "exponential", "mean": 4 * mean}}
    result = run_scenario(path, seeds=scenario.run.seeds[0], overrides=thin)
    assert result.summary["transactions"].min() > 200
    assert_expected(result)


def test_naive_and_robust_share_saga_services_and_faults() -> None:
    naive = load_scenario(ROOT / "scenarios" / "naive-orchestrator.toml").effective()
    robust = load_scenario(ROOT / "scenarios" / "robust-orchestrator.toml").effective()
    for key in ("run", "workload", "network", "participants", "transactions", "faults"):
        assert naive[key] == robust[key], key
    assert naive["orchestrator"]["recovery"] is False
    assert naive["orchestrator"]["idempotency_keys"] is False
    assert naive["orchestrator"]["compensation_retry"]["attempts"] == 1
