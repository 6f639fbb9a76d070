"""One report page: the sections in order, the figures saved beside it, the HTML."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sim.compare import format_seeds
from sim.dataset import Dataset
from sim.report.cells import _fmt_value
from sim.report.parts import _DPI, _MAX_PANELS, SECTIONS, TITLES, Progress, _Image, _Section, _Skip
from sim.report.pick import Choice
from sim.report.sections.isolation import IsolationSections, has_isolation
from sim.report.sections.messages import MessagesSections
from sim.report.sections.rates import RatesSections
from sim.report.sections.summary import SummarySections
from sim.report.sections.timeline import TimelineSections


class _Page(SummarySections, RatesSections, IsolationSections, MessagesSections, TimelineSections):
    """Builds the sections of one report into ``folder``."""

    def __init__(self, dataset: Dataset, folder: Path, choice: Choice, progress: Progress) -> None:
        self.ds = dataset
        self.folder = folder
        self.choice = choice
        self.progress = progress
        self.sections: list[_Section] = []
        self.left_out: list[tuple[str, str, str]] = []  # id, title, why
        self.txns = dataset.transactions
        self.protocols = [p for p in dataset.protocols if p in set(self.txns["protocol"])] or dataset.protocols
        self.empty_twopc: list[str] = []  # 2PC time columns that were zero throughout, so not drawn

    def build(self) -> None:
        builders: dict[str, Callable[[], _Section]] = {
            "summary": self._summary,
            "comparison": self._comparison,
            "rates": self._rates,
            "isolation": self._isolation,
            "latency": self._latency,
            "consistency": self._consistency,
            "messages": self._messages,
            "timeline": self._timeline,
            "swimlane": self._swimlane,
        }
        for sid in SECTIONS:
            if sid == "isolation" and not has_isolation(self.ds.summary):
                continue  # (runs without records with values: not a section left out, one that does not apply)
            self.progress(TITLES[sid].lower())
            try:
                if self.txns.empty and sid != "summary":
                    raise _Skip("no transactions")
                section = builders[sid]()
            except _Skip as skip:
                self.left_out.append((sid, TITLES[sid], str(skip)))
                continue
            self.sections.append(section)

    # ------------------------------------------------------------ header
    def facts(self) -> list[tuple[str, str]]:
        ds = self.ds
        facts = [
            ("input", f"{'sweep dataset' if ds.kind == 'sweep' else 'result folder'} {ds.path}"),
            ("protocols", ", ".join(self.protocols) or "-"),
            ("seeds", format_seeds(ds.seeds) if len(ds.summary) else "-"),
            ("runs", str(len(ds.summary))),
            ("transactions", f"{len(self.txns):,}"),
        ]
        if ds.kind == "sweep":
            points = ds.summary.drop_duplicates("point") if "point" in ds.summary.columns else ds.summary
            facts.append(("grid points", str(len(points))))
            for axis in ds.axes:
                values = list(dict.fromkeys(ds.summary[axis]))
                facts.append((f"swept {axis}", ", ".join(_fmt_value(v) for v in values)))
        config = ds.meta.get("config") or {}
        if ds.kind == "sweep" and ds.meta.get("description"):
            facts.insert(0, ("question", str(ds.meta["description"])))
        elif isinstance(config, dict) and config.get("description"):
            facts.insert(0, ("question", str(config["description"])))
        facts.append(("traced", "yes" if ds.traced else "no (the swimlane replays its run with tracing)"))
        versions = ds.meta.get("versions")
        written_by = ds.meta.get("sagasim") or (versions.get("sagasim") if isinstance(versions, dict) else None)
        if written_by:
            facts.append(("written by", f"sagasim {written_by}"))
        return facts

    # ------------------------------------------------------------ helpers
    def _panels(self) -> tuple[list[tuple[str, pd.DataFrame]], str]:
        """Distribution plots: one panel for a result; for a sweep, one per
        value of its first parameter (at most four, spread over its values)."""
        ds = self.ds
        if ds.kind != "sweep" or not ds.axes or ds.axes[0] not in self.txns.columns:
            return [("", self.txns)], ""
        axis = ds.axes[0]
        values = list(dict.fromkeys(self.txns[axis]))
        pick = sorted({round(float(i)) for i in np.linspace(0, len(values) - 1, min(len(values), _MAX_PANELS))})
        panels = [(f"{axis} = {_fmt_value(values[i])}", self.txns[self.txns[axis] == values[i]]) for i in pick]
        pooled = ", ".join([*ds.axes[1:], "seeds"])
        shown = f"; {len(pick)} of its {len(values)} values shown" if len(pick) < len(values) else ""
        return panels, f"One panel per value of {axis} (pooled over {pooled}){shown}."

    def _figure(self, rows: int, cols: int, *, width: float, height: float) -> tuple[Figure, Any]:
        """Panels one above the other share their x axis, so values compare at a glance."""
        fig = Figure(figsize=(width, height * rows), dpi=_DPI, layout="constrained")
        return fig, fig.subplots(rows, cols, squeeze=False, sharex="col" if rows > 1 else "none")

    def _save(self, fig: Figure, name: str, alt: str) -> _Image:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=_DPI)
        # Plots use few colours: a 256-colour palette makes each PNG, and the
        # page that embeds them, about three times smaller; the octree method
        # keeps the few pure colours (protocols, outcomes) exact. (Pillow
        # comes with matplotlib.)
        from PIL import Image

        small = io.BytesIO()
        palette = Image.open(buffer).convert("RGB").quantize(256, Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
        palette.save(small, "PNG", optimize=True)
        data = small.getvalue()
        (self.folder / name).write_bytes(data)
        return _Image(name, alt, "data:image/png;base64," + base64.b64encode(data).decode("ascii"))


# ====================================================================== HTML


def _render(page: _Page) -> str:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("sim", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    template = env.get_template("report.html.j2")
    try:
        version = metadata.version("sagasim")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return template.render(
        title=f"sagasim report: {page.ds.name}",
        name=page.ds.name,
        facts=page.facts(),
        sections=page.sections,
        left_out=page.left_out,
        version=version,
    )
