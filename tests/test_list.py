"""`sagasim list`: one line per scenario file with its question; invalid files and a missing folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.scenario import load_scenario

from conftest import sagasim

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"

VALID = """\
# Question: does a one-step saga commit?
#
# What it shows: nothing much.
# Expected: every order committed.
name = "tiny"
description = "{description}"

[participants.payment]

[transactions.order]
steps = [{{ name = "charge", participant = "payment", kind = "pivot" }}]
"""


def test_lists_every_scenario_file_sorted_with_its_description(capsys) -> None:
    code, out, err = sagasim(capsys, "list", SCENARIOS)
    assert code == 0
    assert err == ""
    files = sorted(SCENARIOS.glob("*.toml"))
    lines = out.splitlines()
    assert len(lines) == len(files) >= 14
    width = max(len(p.name) for p in files)
    for path, line in zip(files, lines, strict=True):
        description = load_scenario(path).description
        assert line == f"{path.name:<{width}}  {description}"


def test_default_directory_is_scenarios(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    code, out, _ = sagasim(capsys, "list")
    assert code == 0
    assert "happy-path.toml" in out and "retry-storm.toml" in out


def test_falls_back_to_the_header_question(capsys, tmp_path: Path) -> None:
    (tmp_path / "tiny.toml").write_text(VALID.format(description=""))
    code, out, _ = sagasim(capsys, "list", tmp_path)
    assert code == 0
    assert out == "tiny.toml  does a one-step saga commit?\n"


def test_invalid_file_is_listed_with_its_first_problem_and_exit_status_2(capsys, tmp_path: Path) -> None:
    (tmp_path / "b-good.toml").write_text(VALID.format(description="One step."))
    (tmp_path / "a-typo.toml").write_text(
        VALID.format(description="x").replace("[participants.payment]", "[participants.payment]\nworkrs = 3")
    )
    (tmp_path / "c-broken.toml").write_text("name = \n")
    (tmp_path / "notes.txt").write_text("not a scenario")
    code, out, _ = sagasim(capsys, "list", tmp_path)
    assert code == 2
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == ["a-typo.toml", "b-good.toml", "c-broken.toml"]
    assert lines[0].startswith("a-typo.toml    invalid: participants.payment.workrs: unknown key 'workrs'")
    assert "did you mean 'workers'?" in lines[0]
    assert lines[1] == "b-good.toml    One step."
    assert lines[2].startswith("c-broken.toml  invalid: is not valid TOML")


def test_missing_directory_is_one_message_and_exit_status_2(capsys, tmp_path: Path) -> None:
    code, out, err = sagasim(capsys, "list", tmp_path / "nowhere")
    assert code == 2
    assert out == ""
    assert err.strip() == f"error: {tmp_path / 'nowhere'}: no such directory"


def test_a_file_instead_of_a_directory_is_refused(capsys, tmp_path: Path) -> None:
    code, _, err = sagasim(capsys, "list", SCENARIOS / "happy-path.toml")
    assert code == 2
    assert "not a directory" in err


def test_help_shows_an_example(capsys) -> None:
    code, out, _ = sagasim(capsys, "list", "--help")
    assert code == 0
    assert "sagasim list my-scenarios/" in out
    assert "Exit status" in out
