"""HTML reports: a result folder or a sweep dataset as one self-contained page.

:func:`build_report` loads its input through :func:`sim.dataset.load` and
writes a folder with ``index.html`` (every image embedded as a base64 data
URI, no external CSS or JavaScript, so it opens offline and can be mailed)
and the PNGs beside it. Sections, each shown when the data allows it:

- ``summary``: the share of arrivals rejected (coordinator down) and outcome
  rates with 95% Wilson intervals per protocol (and per grid point of a
  sweep), latency and time-to-consistency percentiles, messages per
  transaction (:func:`sim.compare.protocol_table`);
- ``comparison``: the paired differences between protocols
  (:func:`sim.compare.paired_differences`) and each seed's difference;
- ``rates``: outcome rates against each swept parameter, with 95% bands (a
  dashed upper bound where the count is 0);
- ``isolation``: with records with values only, the isolation anomaly rate
  against the swept parameters, one line per countermeasure (or another
  axis), per protocol, and what each costs (committed share, waits, latency);
- ``latency``: latency CDFs per protocol, and for a sweep p50 and p99 against
  each swept parameter;
- ``consistency``: time to consistency as survival curves;
- ``messages``: messages per transaction as bars, and lock and blocked time
  for 2PC (panels that would be all zero left out);
- ``timeline``: arrivals by outcome, rejected arrivals and throughput over
  simulated time, with the fault windows shaded;
- ``swimlane``: one transaction, message by message
  (:func:`sim.swimlane.plot_swimlane`, also importable from here).

Colours come from :mod:`sim.palette`, one per protocol. The page says
which sections (and panels) were left out and why. The folder is written
into a hidden sibling and renamed into place when complete, like a result
folder, so an interrupted build never leaves a report that looks finished.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from sim.dataset import Dataset, load
from sim.errors import SagasimError
from sim.files import staged_folder
from sim.report.page import _Page, _render
from sim.report.parts import SECTIONS, Progress
from sim.report.pick import Choice, pick_transaction, replay_events
from sim.swimlane import plot_swimlane

__all__ = ["SECTIONS", "Choice", "build_report", "pick_transaction", "plot_swimlane", "replay_events"]


# ====================================================================== API


def build_report(
    source: str | Path | Dataset,
    out: str | Path,
    *,
    txn: str | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Write the HTML report of a result folder or a sweep dataset; returns
    the path of its ``index.html``.

    ``source`` is a folder written by ``sagasim run``, ``compare`` or
    ``sweep``, or a loaded :class:`~sim.dataset.Dataset`. ``out`` is the
    report folder to write; it must not exist unless ``overwrite``, and even
    then only a previous report (a folder with ``index.html``) or an empty
    folder is replaced, never a result. ``txn`` picks the transaction of the
    swimlane: ``"TXN_ID"`` when the dataset holds one run, else
    ``"RUN_ID:TXN_ID"``; default: the worst one (see :func:`pick_transaction`).
    ``progress(stage)`` is called as each stage starts.

    Raises :class:`~sim.errors.SagasimError` for bad input (an unreadable or
    damaged folder, a bad ``txn``, a target that exists or where no folder
    can be made).
    """
    dataset = source if isinstance(source, Dataset) else load(source)
    target = Path(out)
    _check_target(target, overwrite)
    choice = pick_transaction(dataset, txn)  # a bad --txn fails before any work
    with ExitStack() as stack:
        try:
            staging = stack.enter_context(staged_folder(target))
        except OSError as exc:
            raise SagasimError(f"{target}: cannot write the report there: {_why_not(target, exc)}") from None
        page = _Page(dataset, staging, choice, progress or (lambda _stage: None))
        page.build()
        (staging / "index.html").write_text(_render(page), encoding="utf-8")
    return target / "index.html"


def _why_not(target: Path, exc: OSError) -> str:
    """Why a folder cannot be made at ``target``, in words: a file in its way, else the system's reason."""
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                return f"{parent} is a file, not a folder"
            break
    return f"cannot make a folder in {target.parent} ({exc.strerror or exc})"


def _check_target(target: Path, overwrite: bool) -> None:
    if not target.exists():
        return
    if not overwrite:
        raise SagasimError(f"{target}: already exists; choose another --out, or pass --overwrite to replace it")
    if not target.is_dir():
        raise SagasimError(f"{target}: exists and is not a folder; will not replace it")
    # --overwrite replaces a previous report (or an empty folder), never a
    # result folder or a web page of the user's given by mistake.
    if any(target.iterdir()) and not _is_report(target / "index.html"):
        raise SagasimError(
            f"{target}: exists and is not a report (no index.html written by sagasim); will not replace it"
        )


#: What the head of every report page says (templates/report.html.j2).
_GENERATOR = b'<meta name="generator" content="sagasim '


def _is_report(index: Path) -> bool:
    """Whether ``index`` is a report page sagasim wrote (its head names sagasim as the generator)."""
    try:
        with open(index, "rb") as fh:
            return _GENERATOR in fh.read(4096)
    except OSError:
        return False
