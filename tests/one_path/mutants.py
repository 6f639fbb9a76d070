"""One-character mutants of the tie rules of the path without events, and
a runner that checks the differential test catches each (issue 16, point 4).

Each mutant flips one comparison at an instant where two things tie (an
ack or a confirm exactly at its deadline, two events at one instant). The
path with every message an event does not read these lines, so a mutant
makes the two paths differ only where the generated choreographies make
the instants tie exactly: that is what the dyadic grid of
:mod:`tests.one_path.probe` is for. :func:`caught` copies the ``sim``
package into a scratch folder, applies one mutant and runs the probe on it
in a fresh interpreter, stopping at the first choreography whose paths
differ. Run them all with::

    .venv/bin/python -m tests.one_path.mutants
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[2]


class Mutant(NamedTuple):
    """One comparison flipped in one file of ``sim``."""

    name: str
    #: the file, relative to the repository
    path: str
    #: the line as it is (it must occur exactly once in the file)
    original: str
    #: the line with the comparison flipped
    mutated: str
    #: shown only with random latencies (``probe --random``)
    random: bool = False


MUTANTS = (
    Mutant(
        "the lean take's late ack (>= to >)",
        "sim/world/broker.py",
        "        if acked >= deadline:\n",
        "        if acked > deadline:\n",
    ),
    Mutant(
        "the publisher's confirm deadline (< to <=)",
        "sim/world/publisher.py",
        "            if at < deadline:\n",
        "            if at <= deadline:\n",
    ),
    Mutant(
        "the broker's ack at its deadline (< to <=)",
        "sim/world/broker.py",
        "        if copy.acked < self.world.env._now:",
        "        if copy.acked <= self.world.env._now:",
    ),
    Mutant(
        "a publish timeout at the instant of its confirm ordered among the others, not first",
        "sim/world/publisher.py",
        "DeadlineQueue(self.world, timeout, self._live, self._expired, owner=node, first=True)",
        "DeadlineQueue(self.world, timeout, self._live, self._expired, owner=node, first=False)",
    ),
    Mutant(
        "the next copy of a partition goes at its head's ack in a place of its own, not the ack's",
        "sim/world/broker.py",
        "            self.world.at_due(Due(copy.acked, copy.ack_eid), self._acked, (copy, copy.acked))",
        "            self.world.at(copy.acked - self.world.env._now, self._acked, (copy, copy.acked))",
    ),
    Mutant(
        "a confirm accounted for at this very instant, ordered by time alone",
        "sim/world/core.py",
        "        return due < (self.env._now, self.eid_now)\n",
        "        return due[0] <= self.env._now\n",
    ),
    Mutant(
        "a first delivery to a direct consumer drawing another copy's latency (a key off by one)",
        "sim/world/broker.py",
        "        latency = lane[seq >> LANE_SHIFT][seq & LANE_MASK]\n",
        "        latency = lane[(seq + 1) >> LANE_SHIFT][(seq + 1) & LANE_MASK]\n",
        random=True,
    ),
)


def mutate(mutant: Mutant, into: Path) -> Path:
    """A copy of the ``sim`` package under ``into`` with ``mutant`` applied;
    returns the folder to run from."""
    shutil.copytree(ROOT / "sim", into / "sim", ignore=shutil.ignore_patterns("__pycache__"))
    target = into / mutant.path
    text = target.read_text()
    if text.count(mutant.original) != 1:
        raise ValueError(f"{mutant.path}: the line of the mutant {mutant.name!r} is not there exactly once")
    target.write_text(text.replace(mutant.original, mutant.mutated))
    return into


def caught(mutant: Mutant, examples: int) -> bool:
    """Whether the probe finds a choreography on which the mutated path
    without events differs from the path with every message an event."""
    with tempfile.TemporaryDirectory(prefix="sagasim-mutant-") as scratch:
        path = mutate(mutant, Path(scratch))
        # Run from the scratch folder: ``-m`` puts the working folder first
        # on the path, so ``sim`` is the mutated copy and ``tests`` the repository's.
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        probe = [sys.executable, "-m", "tests.one_path.probe", "--examples", str(examples), "--first"]
        if mutant.random:
            probe.append("--random")
        check = "import sim; print(sim.__file__)"
        where = subprocess.run([sys.executable, "-c", check], cwd=path, env=env, capture_output=True, text=True)
        if not where.stdout.startswith(str(path)):
            raise RuntimeError(f"the mutant's copy of sim is not the one imported: {where.stdout}{where.stderr}")
        done = subprocess.run(probe, cwd=path, env=env, capture_output=True, text=True, check=False)
        # The probe says how many differ on its last line; anything else (a
        # traceback) is the mutant breaking the run, not the paths differing.
        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
        if done.returncode not in (0, 1) or not last.endswith("differ between the two paths"):
            raise RuntimeError(f"the probe failed on the mutant {mutant.name!r}:\n{done.stderr}")
        return done.returncode == 1


def main() -> int:
    examples = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    missed = 0
    for mutant in MUTANTS:
        found = caught(mutant, examples)
        missed += not found
        print(f"{'caught' if found else 'MISSED'}: {mutant.name} ({mutant.path})")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
