"""Golden digests: one fingerprint per (scenario file, protocol), so a change
that must not move any result can prove it did not.

Every scenario file runs as every protocol, seed 1, traced, for 30 s of
arrivals and a 30 s drain (a scenario whose faults start later runs as
written). Each table of the run (transactions, events, faults, and the
summary without its wall time) is written as CSV and hashed.

``tests/test_golden.py`` compares a fresh computation with the committed
``digests.json``. When a change moves results on purpose, regenerate the file
and say so in the commit::

    .venv/bin/python -m tests.golden.digests --update
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import pandas as pd

import sim
from sim.errors import ScenarioError
from sim.scenario import PROTOCOLS, Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[2]
FILE = Path(__file__).with_name("digests.json")
SHORT = {"run.duration": 30.0, "run.drain": 30.0}


def _scenario(path: Path) -> Scenario:
    try:
        return load_scenario(path, SHORT)
    except ScenarioError:  # a fault after 30 s: run the file as written
        return load_scenario(path)


def _digest(frame: pd.DataFrame) -> str:
    return hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()[:16]


def compute() -> dict[str, dict[str, str]]:
    """``{"scenario/protocol": {table: digest}}`` for every scenario file."""
    out: dict[str, dict[str, str]] = {}
    for path in sorted((ROOT / "scenarios").glob("*.toml")):
        scenario = _scenario(path)
        for protocol in PROTOCOLS:
            result = sim.run(scenario, protocol=protocol, seed=1, trace=True)
            out[f"{path.stem}/{protocol}"] = {
                "transactions": _digest(result.transactions),
                "events": _digest(result.events),
                "faults": _digest(result.faults),
                "summary": _digest(result.summary.drop(columns=["wall_time"])),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--update", action="store_true", help=f"rewrite {FILE.name}")
    args = parser.parse_args()
    digests = compute()
    if args.update:
        FILE.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")
        print(f"wrote {len(digests)} digests to {FILE}")
    else:
        print(json.dumps(digests, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
