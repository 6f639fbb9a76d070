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

One earlier mutant is gone: the next copy of a partition settled at its
head's ack in a place of its own (``World.at``) rather than the ack's
(``World.at_due``). Since an ack is accounted for when it is sent
(:meth:`sim.world.broker.Broker.ack_at`), the settle it schedules takes the
very next event id after the ack's, so the two places order alike against
every other event; they differ only where a copy queues behind a head
whose ack was accounted for in an earlier event (``Broker._wait``), and no
generated choreography shows that (300 default and 60 late-ack ones,
checked with the mutant moved there). The reserved place stays: it is the
ack's place on the full path. And ``World.passed`` ordering by time alone
(``due.at <= now``) is no longer shown by them (1,000 default and 60
late-ack choreographies): with acks and dual writes' confirms accounted for
when they are sent, the probe's choreographies no longer tie a message
accounted for ahead with an event that asks whether it arrived. A unit test
checks that rule instead (``tests/test_world.py``,
``test_a_message_accounted_for_at_this_very_instant_has_passed_only_if_its_place_is_earlier``).
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
    #: probed on choreographies whose acks are all late (``--late-acks``)
    late_acks: bool = False
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
        "a dual write's confirm accounted for without an event, so its ack, sent when it arrives, never is",
        "sim/world/publisher.py",
        "                if entry.ack is None:\n",
        "                if entry.ack is None or at < deadline:\n",
        late_acks=True,
    ),
    Mutant(
        "a first delivery to a direct consumer drawing another copy's latency (a key off by one)",
        "sim/world/broker.py",
        "        latency = direct.latency.at(seq)\n",
        "        latency = direct.latency.at(seq + 1)\n",
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
        if mutant.late_acks:
            probe.append("--late-acks")
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
