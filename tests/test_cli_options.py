"""Options shared by several commands (--seed/--seeds), the progress text,
what `sagasim --help` imports, and packaging: the dask extra, py.typed."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import sim.cli
import sim.sweep
from sim.errors import SagasimError

from conftest import sagasim

ROOT = Path(__file__).resolve().parent.parent
HAPPY = ROOT / "scenarios" / "happy-path.toml"
SWEEP = ROOT / "sweeps" / "payment-failure.toml"
TINY = ["--set", "run.duration=2", "--set", "run.drain=2"]
COMMANDS = {"run": HAPPY, "compare": HAPPY, "sweep": SWEEP}


@pytest.fixture
def seeds_seen(monkeypatch: pytest.MonkeyPatch) -> list[list[int] | None]:
    """The seeds each command would run, caught where it starts the work (which then stops)."""
    seen: list[list[int] | None] = []

    def catch_run(scenario: Any, protocols: list[str], seeds: list[int], *args: Any) -> None:
        seen.append(list(seeds))
        raise SagasimError("stopped by the test")

    real_load_sweep = sim.sweep.load_sweep

    def catch_sweep(path: Any, **kwargs: Any) -> None:
        sweep = real_load_sweep(path, **kwargs)
        seen.append(list(sweep.seeds))
        raise SagasimError("stopped by the test")

    monkeypatch.setattr(sim.cli, "_run_with_progress", catch_run)
    monkeypatch.setattr(sim.sweep, "load_sweep", catch_sweep)
    return seen


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--seed", "3"], [3]),
        (["--seed", "3", "--seed", "1", "--seed", "3"], [3, 1]),
        (["--seeds", "1..3,7"], [1, 2, 3, 7]),
        (["-s", "4"], [4]),
        (["-s", "1..2", "-s", "5"], [1, 2, 5]),
        # Both: --seeds first, then --seed, each seed once.
        (["--seed", "9", "--seeds", "1..3", "--seed", "2"], [1, 2, 3, 9]),
    ],
)
def test_seed_and_seeds_mean_the_same_on_every_command(
    capsys: pytest.CaptureFixture[str], seeds_seen: list[Any], command: str, args: list[str], expected: list[int]
) -> None:
    code, _, err = sagasim(capsys, command, COMMANDS[command], *args, "--quiet")
    assert code == 2 and "stopped by the test" in err
    assert seeds_seen == [expected]


@pytest.mark.parametrize("command", COMMANDS)
def test_without_seed_options_the_file_decides(
    capsys: pytest.CaptureFixture[str], seeds_seen: list[Any], command: str
) -> None:
    sagasim(capsys, command, COMMANDS[command], "--quiet")
    # happy-path.toml: run.seeds = [1, 2, 3]; payment-failure.toml: seeds = "1..3".
    assert seeds_seen == [[1, 2, 3]]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seed", "1..3"], "Invalid value for '--seed': '1..3' is not a valid integer range"),
        (["--seed", "-1"], "Invalid value for '--seed'"),
        (["--seeds", "x"], "Invalid value for '--seeds': 'x': 'x' is not a whole number"),
        (["--seeds", "1", "--seeds", "5..1"], "Invalid value for '--seeds': '5..1': empty range (5 > 1)"),
        (["--seeds", "0..20000"], "'0..20000': 20,001 seeds, above the limit of 10,000 runs per command"),
    ],
)
def test_bad_seeds_are_one_message_naming_the_option(
    capsys: pytest.CaptureFixture[str], seeds_seen: list[Any], command: str, args: list[str], message: str
) -> None:
    code, out, err = sagasim(capsys, command, COMMANDS[command], *args, "--quiet")
    assert code == 2
    assert message in " ".join((out + err).split())
    assert seeds_seen == []  # refused before any work


def test_seed_options_have_one_help_text() -> None:
    helps: dict[str, dict[str, str]] = {}
    for name in COMMANDS:
        params = {p.name: p for p in sim.cli.cli.commands[name].params if isinstance(p, sim.cli.click.Option)}
        helps[name] = {
            "seed": str(params["seed"].help),
            "seeds": str(params["seeds"].help).rpartition(" Default: ")[0],
        }
        assert params["seed"].multiple and params["seeds"].multiple
        assert params["seeds"].opts == ["--seeds", "-s"]
    assert helps["run"] == helps["compare"] == helps["sweep"]


def test_a_run_with_both_options_records_its_seeds(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = sagasim(
        capsys, "run", HAPPY, "--seeds", "1..2", "--seed", "5", *TINY, "--out", tmp_path / "r", "--quiet"
    )
    assert code == 0, err
    assert json.loads((tmp_path / "r" / "run.json").read_text())["seeds"] == [1, 2, 5]


# ------------------------------------------------------------------ progress


def terminal(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """Make the CLI's stderr a terminal that writes into the returned buffer."""
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=160, highlight=False, emoji=False)
    monkeypatch.setattr(sim.cli, "_err", console)
    return buffer


def plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def test_run_progress_labels_elapsed_and_left(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    buffer = terminal(monkeypatch)
    code, _, _ = sagasim(capsys, "run", HAPPY, "--seed", "1", *TINY, "--out", tmp_path / "r")
    assert code == 0
    assert re.search(r"elapsed \d+:\d\d:\d\d left (\d+:\d\d:\d\d|-:--:--)", plain(buffer.getvalue()))


def test_sweep_progress_labels_elapsed_and_left(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    buffer = terminal(monkeypatch)
    argv = ["sweep", SWEEP, "--seed", "1", "-p", "orchestration", *TINY, "--workers", "1", "--out", tmp_path / "s"]
    code, _, _ = sagasim(capsys, *argv)
    assert code == 0
    shown = plain(buffer.getvalue())
    assert re.search(r"\d+/\d+ runs elapsed \d+:\d\d:\d\d left (\d+:\d\d:\d\d|-:--:--)", shown), shown[-400:]


# ------------------------------------------------------------------ start-up


HEAVY = ("pandas", "scipy", "pydantic", "numpy", "matplotlib", "pyarrow", "simpy", "dask")


def imported_by(code: str) -> list[str]:
    """The heavy packages a fresh interpreter has imported after ``code``."""
    probe = f"{code}\nimport sys\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    return eval(done.stdout.strip().splitlines()[-1])


def test_help_and_version_import_nothing_heavy() -> None:
    assert imported_by("import sim.cli") == []
    # And the commands themselves, as the console script runs them:
    for argv in (["--version"], ["--help"], ["run", "--help"], ["sweep", "--help"]):
        code = f"import sys; sys.argv = ['sagasim', *{argv!r}]\nimport sim.cli\ntry:\n    sim.cli.main()\nexcept SystemExit:\n    pass"
        assert imported_by(code) == [], argv


def test_import_sim_stays_light_and_keeps_its_api() -> None:
    assert imported_by("import sim") == []
    # What the docs use after a bare `import sim`, loaded on first use.
    loaded = imported_by(
        "import sim\nsim.run, sim.Result, sim.load_scenario, sim.compare.protocol_table, sim.dataset.load"
    )
    assert "pandas" in loaded
    import sim

    assert {"run", "Result", "Scenario", "compare", "explain"} <= set(dir(sim))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = sim.nothing  # type: ignore[attr-defined]


# ------------------------------------------------------------------ packaging


def test_scheduler_without_the_dask_extra_says_how_to_install_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # As if dask were not installed: importing it fails.
    for name in ("dask", "dask.distributed", "distributed"):
        monkeypatch.setitem(sys.modules, name, None)
    code, _, err = sagasim(
        capsys, "sweep", SWEEP, "--seed", "1", *TINY, "--scheduler", "tcp://127.0.0.1:1", "--out", tmp_path / "s"
    )
    assert code == 2
    assert "--scheduler tcp://127.0.0.1:1: running on a Dask cluster needs the dask extra" in " ".join(err.split())
    assert "pip install 'sagasim[dask]'" in err
    assert not (tmp_path / "s").exists()
    # Local sweeps do not need it.
    code, _, err = sagasim(
        capsys, "sweep", SWEEP, "--seed", "1", "-p", "2pc", *TINY, "-j", "1", "-o", tmp_path / "l", "-q"
    )
    assert code == 0, err


def test_package_metadata() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and (ROOT / project["license-files"][0]).is_file()
    assert not any(d.startswith("dask") for d in project["dependencies"])
    assert any(d.startswith("dask[distributed]") for d in project["optional-dependencies"]["dask"])
    # The suite runs a sweep on a local Dask cluster: the dev extra brings dask.
    assert any(d.startswith("dask[distributed]") for d in project["optional-dependencies"]["dev"])
    assert "Typing :: Typed" in project["classifiers"]
    assert (ROOT / "sim" / "py.typed").is_file()
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["sim"]
    assert "py.typed" in package_data
