"""How much work one command may start: refused up front, with the estimate
and the limit, when it is more than a machine can finish by accident.

Every limit can be raised on purpose (see ``docs/errors.md``): the per-run
limits in a scenario's ``[limits]`` table, the number of runs with
``--max-runs`` (``max_runs=`` in the Python API).
"""

from __future__ import annotations

from sim.errors import SagasimError

#: Runs (grid points x protocols x seeds) one command may start unless ``--max-runs`` raises it.
MAX_RUNS = 10_000


def check_runs(count: int, limit: int, made_of: str) -> None:
    """Refuse ``count`` runs above ``limit``; ``made_of`` says how they multiply up."""
    if limit < 1:
        raise SagasimError(f"--max-runs must be >= 1, got {limit}")
    if count > limit:
        raise SagasimError(
            f"{made_of} = {count:,} runs, above the limit of {limit:,} runs per command; "
            "use fewer seeds, protocols or grid values, or raise the limit on purpose with --max-runs"
        )
