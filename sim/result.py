"""A result: the tables of one or more runs, and writing them to a folder.

A result folder holds ``transactions.parquet``, ``summary.parquet``,
``faults.parquet``, ``events.parquet`` (when traced) and ``run.json``. It is
written into a temporary sibling folder and renamed into place only when every
file is complete, so an interrupted write never leaves a folder that looks
like a finished result.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from sim.errors import SagasimError
from sim.files import staged_folder
from sim.metrics import events_frame, faults_frame, summary_frame, transactions_frame
from sim.runner import RunOutput
from sim.scenario import Scenario
from sim.schema import SCHEMA_VERSION, write_parquet

#: The file that marks a complete result folder (written last).
RESULT_MARKER = "run.json"

_PACKAGES = ("sagasim", "simpy", "numpy", "pandas", "pyarrow", "pydantic", "click", "rich")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@dataclass
class Result:
    """The tables of a set of runs of one scenario.

    ``transactions`` has one row per transaction, ``summary`` one row per
    (scenario, protocol, seed); ``events`` is empty unless traced.
    """

    scenario: Scenario
    runs: list[RunOutput]
    overrides: dict[str, Any] = field(default_factory=dict)
    wall_time: float = 0.0
    #: the scenario file the runs came from, when known
    source: str | None = None
    _cache: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    @property
    def transactions(self) -> pd.DataFrame:
        if "transactions" not in self._cache:
            self._cache["transactions"] = transactions_frame([r.transactions for r in self.runs])
        return self._cache["transactions"]

    @property
    def summary(self) -> pd.DataFrame:
        if "summary" not in self._cache:
            self._cache["summary"] = summary_frame([r.summary for r in self.runs])
        return self._cache["summary"]

    @property
    def events(self) -> pd.DataFrame:
        if "events" not in self._cache:
            frame = events_frame([e for r in self.runs for e in r.events])
            frame.insert(0, "run_id", [r.run_id for r in self.runs for _ in r.events])
            self._cache["events"] = frame
        return self._cache["events"]

    @property
    def faults(self) -> pd.DataFrame:
        if "faults" not in self._cache:
            frame = faults_frame([f for r in self.runs for f in r.faults])
            frame.insert(0, "run_id", [r.run_id for r in self.runs for _ in r.faults])
            self._cache["faults"] = frame
        return self._cache["faults"]

    @property
    def traced(self) -> bool:
        return any(r.events for r in self.runs)

    def metadata(self) -> dict[str, Any]:
        """What ``run.json`` holds: enough to reproduce every run."""
        return {
            "schema": SCHEMA_VERSION,
            "sagasim": package_versions()["sagasim"],
            "scenario": self.scenario.name,
            "config": self.scenario.effective(),
            "overrides": self.overrides,
            "runs": [
                {
                    "run_id": r.run_id,
                    "protocol": r.protocol,
                    "seed": r.seed,
                    "transactions": int(r.summary["transactions"]),
                    # rows in transactions.parquet ([run] keep): all unless chosen
                    "kept": len(r.transactions["txn_id"]),
                    "wall_time": r.wall_time,
                    "random_streams": r.streams,
                }
                for r in self.runs
            ],
            "seeds": sorted({r.seed for r in self.runs}),
            "protocols": list(dict.fromkeys(r.protocol for r in self.runs)),
            "wall_time": self.wall_time,
            "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": sys.argv,
            "versions": package_versions(),
        }

    def save(self, folder: str | Path, *, overwrite: bool = False) -> Path:
        """Write the result folder atomically; returns its path.

        An existing ``folder`` is replaced only with ``overwrite``, and only
        when sagasim wrote it: a result folder (it holds ``run.json``) or an
        empty folder. Anything else raises :class:`~sim.errors.SagasimError`
        and is left untouched: nothing the user owns is ever deleted.
        """
        target = Path(folder)
        check_replaceable(target, overwrite)
        with staged_folder(target) as staging:
            write_parquet(self.transactions, staging / "transactions.parquet")
            write_parquet(self.summary, staging / "summary.parquet")
            write_parquet(self.faults, staging / "faults.parquet")
            if self.traced:
                write_parquet(self.events, staging / "events.parquet")
            # run.json last: its presence marks the folder complete.
            with open(staging / RESULT_MARKER, "w", encoding="utf-8") as fh:
                json.dump(self.metadata(), fh, indent=2, default=str)
                fh.flush()
                os.fsync(fh.fileno())
        return target


def check_replaceable(target: Path, overwrite: bool) -> None:
    """Refuse to write a result over ``target`` unless it is absent, or
    ``overwrite`` and it is an empty folder or a previous result."""
    if not target.exists():
        return
    if not overwrite:
        raise SagasimError(
            f"{target}: already exists; choose another folder, or pass overwrite=True to replace a previous result"
        )
    if not target.is_dir():
        raise SagasimError(f"{target}: exists and is not a folder; will not replace it")
    if any(target.iterdir()) and not (target / RESULT_MARKER).is_file():
        raise SagasimError(
            f"{target}: exists and is not a result folder (no {RESULT_MARKER}); will not replace it, "
            "choose another folder"
        )
