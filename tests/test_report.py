"""Reports: the page and its sections, the swimlane and its messages, --txn,
atomic writes, and the command line."""

from __future__ import annotations

import base64
import io
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import matplotlib.colors
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image
from scipy import stats

import sim
import sim.metrics
import sim.palette
import sim.report as report_module
import sim.report.cells
import sim.report.page
import sim.report.parts
import sim.report.plots
import sim.report.sections.summary
import sim.report.sections.timeline
import sim.scenario
from sim.dataset import Dataset, load
from sim.errors import SagasimError
from sim.report import build_report, pick_transaction, plot_swimlane, replay_events
from sim.sweep import run_sweep, sweep_from_dict
from sim.swimlane import pair_messages

from conftest import crash_scenario, order_scenario, sagasim

ROOT = Path(__file__).resolve().parent.parent
FAILURE = "participants.payment.business_failure"
IDEMPOTENT = "participants.payment.idempotent"
# Inventory refuses 10%: the sagas then refund the charge, 2PC aborts.
SHORT = {"run.duration": 5.0, "run.drain": 5.0, "participants.inventory.business_failure": 0.1}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """What a test needs from the HTML: sections, images, references, text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.headings: list[str] = []
        self.images: list[str] = []
        self.references: list[tuple[str, str, str]] = []  # tag, attribute, value
        self.tags: set[str] = set()
        self.text: list[str] = []
        self.table_headers: list[list[str]] = []  # the <th> cells of each table
        self._in_heading = False
        self._in_th = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        values = {k: v or "" for k, v in attrs}
        if tag == "section":
            self.sections.append(values["id"])
        if tag == "img":
            self.images.append(values["src"])
        if tag == "h2":
            self._in_heading = True
            self.headings.append("")
        if tag == "table":
            self.table_headers.append([])
        if tag == "th":
            self._in_th = True
            self.table_headers[-1].append("")
        for name in ("src", "href", "data", "action"):
            if name in values:
                self.references.append((tag, name, values[name]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._in_heading = False
        if tag == "th":
            self._in_th = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_heading:
            self.headings[-1] += data
        if self._in_th:
            self.table_headers[-1][-1] += data

    @property
    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())


def read(index: Path) -> Page:
    return Page(index.read_text(encoding="utf-8"))


def assert_valid_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), path
    with Image.open(io.BytesIO(data)) as image:
        image.verify()
        assert image.size[0] > 200 and image.size[1] > 100


@pytest.fixture(scope="module")
def result_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Orchestration and 2PC on the test order saga, untraced."""
    result = sim.run(order_scenario(SHORT), protocol=["orchestration", "2pc"], seed=1)
    return result.save(tmp_path_factory.mktemp("result") / "two-protocols")


@pytest.fixture(scope="module")
def traced_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One traced orchestration run of the same scenario."""
    result = sim.run(order_scenario(SHORT), protocol="orchestration", seed=1, trace=True)
    return result.save(tmp_path_factory.mktemp("traced") / "one-run")


@pytest.fixture(scope="module")
def sweep_dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    spec = {
        "name": "report-sweep",
        "scenario": order_scenario(SHORT),
        "seeds": [1],
        "protocols": ["orchestration", "choreography"],
        "grid": {FAILURE: [0.0, 0.2]},
    }
    return run_sweep(sweep_from_dict(spec), tmp_path_factory.mktemp("sweep") / "out", workers=1)


@pytest.fixture(scope="module")
def result_report(result_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_report(result_dir, tmp_path_factory.mktemp("reports") / "result")


@pytest.fixture
def summary_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build only the summary: for tests of the folder, not of the plots."""
    monkeypatch.setattr(sim.report.page, "SECTIONS", ("summary",))


# ------------------------------------------------------------------ the page


def test_result_report_has_every_section_its_data_allows(result_report: Path) -> None:
    folder = result_report.parent
    assert result_report.name == "index.html"
    pngs = sorted(p.name for p in folder.glob("*.png"))
    assert pngs == [
        "comparison.png",
        "consistency.png",
        "latency.png",
        "messages.png",
        "swimlane.png",
        "timeline.png",
        "twopc.png",
    ]
    for png in pngs:
        assert_valid_png(folder / png)
    page = read(result_report)
    assert page.sections == ["summary", "comparison", "latency", "consistency", "messages", "timeline", "swimlane"]
    assert "rates against parameters: not a sweep" in page.all_text
    assert "orchestration" in page.all_text and "2pc" in page.all_text


def test_images_are_embedded_and_nothing_is_fetched(result_report: Path) -> None:
    page = read(result_report)
    folder = result_report.parent
    assert len(page.images) == len(list(folder.glob("*.png")))
    embedded = set()
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        embedded.add(base64.b64decode(src.removeprefix("data:image/png;base64,")))
    assert embedded == {p.read_bytes() for p in folder.glob("*.png")}
    # Only in-page links: no stylesheet, script or remote resource.
    assert not page.tags & {"script", "iframe", "object", "embed"}
    # The one link is the page's empty icon (so a browser asks no server for /favicon.ico).
    assert [r for r in page.references if r[0] == "link"] == [("link", "href", "data:,")]
    for tag, name, value in page.references:
        assert value.startswith(("data:", "#")), (tag, name, value)
    assert "http://" not in result_report.read_text() and "https://" not in result_report.read_text()


def test_summary_table_matches_protocol_table(result_report: Path, result_dir: Path) -> None:
    from sim.compare import protocol_table

    table = protocol_table(load(result_dir)).set_index("protocol")
    text = read(result_report).all_text
    for protocol in ("orchestration", "2pc"):
        n = int(table.loc[protocol, "transactions"])
        assert f"{protocol} 1 {n:,}" in text  # protocol, seeds, transactions
    rate = table.loc["2pc", "aborted_rate"]
    assert 0 < rate < 1
    assert f"{rate:.2%} [" in text  # the 2PC aborted rate with its interval


def test_time_to_consistency_leaves_out_and_counts_the_transactions_that_never_became_consistent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A short retry storm: many orders stuck, most with nothing applied.
    monkeypatch.setattr(sim.report.page, "SECTIONS", ("summary", "consistency"))
    storm = sim.run(
        ROOT / "scenarios" / "retry-storm.toml", seed=1, overrides={"run.duration": 30.0, "run.drain": 10.0}
    )
    txns = storm.transactions
    never = int(txns["outcome"].isin(["stuck", "inconsistent"]).sum())
    assert never > 100 and (txns.loc[txns["outcome"] == "stuck", "steps_applied"] == 0).sum() > 100
    page = read(build_report(storm.save(tmp_path / "storm"), tmp_path / "report"))
    assert page.table_headers[0][-3:-1] == ["consistency p99", "never consistent"]
    text = page.all_text
    assert f"orchestration 1 {len(txns):,}" in text
    assert f" {never:,} " in text  # the summary's never consistent count
    # the survival curves' table: the share that never became consistent
    share = sim.metrics.format_rate(never / len(txns))
    assert f"orchestration {len(txns):,} {share}" in text


def test_sweep_report_plots_rates_against_the_axis(sweep_dataset: Dataset, tmp_path: Path) -> None:
    index = build_report(sweep_dataset, tmp_path / "sweep")
    page = read(index)
    assert page.sections == [
        "summary",
        "comparison",
        "rates",
        "latency",
        "consistency",
        "messages",
        "timeline",
        "swimlane",
    ]
    for png in ("rates.png", "latency-against.png", "messages-against.png", "comparison.png"):
        assert_valid_png(index.parent / png)
    assert not (index.parent / "twopc.png").exists()
    assert "No two-phase commit or Paxos Commit run" in page.all_text
    assert page.table_headers[0][:3] == [FAILURE, "protocol", "seeds"]  # the axis is a column of the summary
    assert f"One panel per value of {FAILURE}" in page.all_text
    assert "Left out" not in page.all_text


def test_a_traced_result_draws_from_its_trace(
    traced_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_replay(*args: Any, **kwargs: Any) -> pd.DataFrame:
        raise AssertionError("a traced result needs no replay")

    monkeypatch.setattr(sim.report.sections.timeline, "replay_events", no_replay)
    monkeypatch.setattr(sim.report.page, "SECTIONS", ("swimlane",))
    page = read(build_report(traced_dir, tmp_path / "traced", txn="3"))
    assert page.sections == ["swimlane"]
    assert page.headings == ["One transaction: transaction 3 of test-order/orchestration/1"]
    assert "Events from the recorded trace" in page.all_text


def test_a_bool_axis_is_drawn_as_categories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = {
        "name": "bool-sweep",
        "scenario": order_scenario(SHORT),
        "seeds": [1],
        "protocols": ["orchestration"],
        "grid": {IDEMPOTENT: [True, False]},
    }
    dataset = run_sweep(sweep_from_dict(spec), tmp_path / "sweep", workers=1)
    figures: dict[str, Figure] = {}
    save = report_module._Page._save

    def keep(self: Any, fig: Figure, name: str, alt: str) -> Any:
        figures[name] = fig
        return save(self, fig, name, alt)

    monkeypatch.setattr(report_module._Page, "_save", keep)
    monkeypatch.setattr(sim.report.page, "SECTIONS", ("summary", "rates"))
    page = read(build_report(dataset, tmp_path / "report"))
    assert page.sections == ["summary", "rates"]
    assert f"swept {IDEMPOTENT} true, false" in page.all_text
    for ax in figures["rates.png"].axes:
        # Two named values side by side, not a number line from 0 to 1.
        assert [t.get_text() for t in ax.get_xticklabels()] == ["true", "false"]
        assert ax.get_xlim() == pytest.approx((-0.6, 1.6))
        assert not ax.get_lines() or all(line.get_linestyle() == "None" for line in ax.get_lines())


def test_rate_bands_are_the_wilson_intervals_of_metrics() -> None:
    hits = np.array([0, 1, 5, 50, 50, 0])
    n = np.array([50, 50, 50, 50, 1000, 0])
    low, high = sim.report.plots._wilson_arrays(hits, n)
    for i in range(len(n) - 1):
        # scipy's Wilson interval: an implementation independent of ours
        ci = stats.binomtest(int(hits[i]), int(n[i])).proportion_ci(method="wilson")
        assert (low[i], high[i]) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert np.isnan(low[-1]) and np.isnan(high[-1])


def test_summary_writes_a_dash_for_nan(result_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sim.compare import protocol_table

    def with_nan(dataset: Dataset) -> pd.DataFrame:
        table = protocol_table(dataset)
        numbers = [c for c in table.columns if c.endswith(("_rate", "_low", "_high", "_p50", "_p99", "_txn", "_mean"))]
        table.loc[0, numbers] = np.nan
        return table

    monkeypatch.setattr(sim.report.sections.summary, "protocol_table", with_nan)
    monkeypatch.setattr(sim.report.page, "SECTIONS", ("summary",))
    page = read(build_report(result_dir, tmp_path / "nan"))
    assert not re.search(r"\bnan\b", page.all_text, re.IGNORECASE)
    assert "orchestration 1 " in page.all_text and " - - - - - - - " in page.all_text


@pytest.mark.parametrize("top_level", [True, False])
def test_the_header_names_the_version_that_wrote_the_data(
    sweep_dataset: Dataset, tmp_path: Path, summary_only: None, top_level: bool
) -> None:
    meta = {k: v for k, v in sweep_dataset.meta.items() if k != "sagasim"}
    meta["versions"] = {**meta.get("versions", {}), "sagasim": "9.8.7"}
    if top_level:
        meta["sagasim"] = "9.8.7"
    dataset = Dataset(sweep_dataset.path, "sweep", meta, sweep_dataset.axes)
    assert "written by sagasim 9.8.7" in read(build_report(dataset, tmp_path / "r")).all_text


@pytest.fixture(scope="module")
def crash_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Orchestration and 2PC, two seeds, with the orchestrator and coordinator down for 2 s of 6."""
    result = sim.run(crash_scenario(), protocol=["orchestration", "2pc"], seed=[1, 2])
    return result.save(tmp_path_factory.mktemp("crash") / "crash")


class Kept:
    """The figures a report draws, by file name (``_Page._save`` wrapped)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.figures: dict[str, Figure] = {}
        save = report_module._Page._save

        def keep(page: Any, fig: Figure, name: str, alt: str) -> Any:
            self.figures[name] = fig
            return save(page, fig, name, alt)

        monkeypatch.setattr(report_module._Page, "_save", keep)


def test_rejected_arrivals_are_a_share_beside_the_outcomes(
    crash_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sim.report.page, "SECTIONS", ("summary",))
    summary = load(crash_dir).summary
    txns = load(crash_dir).transactions
    page = read(build_report(crash_dir, tmp_path / "r"))
    assert page.table_headers[0][:6] == [
        "protocol",
        "seeds",
        "arrivals",
        "rejected arrivals",
        "transactions",
        "committed",
    ]
    for protocol in ("orchestration", "2pc"):
        rejected = int(summary.loc[summary["protocol"] == protocol, "rejected"].sum())
        started = int((txns["protocol"] == protocol).sum())
        assert rejected > started / 4  # the crash is a third of the workload
        low, high = sim.metrics.wilson(rejected, rejected + started)
        share = f"{sim.metrics.format_rate(rejected / (rejected + started))} {sim.metrics.format_interval(low, high)}"
        assert f"{protocol} 2 {rejected + started:,} {share} {started:,}" in page.all_text
    total = int(summary["rejected"].sum())
    assert f"Here {total:,} of {total + len(txns):,} arrivals" in page.all_text


def test_rejected_arrivals_sit_in_the_gaps_of_the_transaction_ids() -> None:
    txns = pd.DataFrame({"txn_id": [0, 1, 4, 5], "started_at": [0.0, 1.0, 4.0, 5.0]})
    # ids 2 and 3 between the starts of 1 and 4; two more after the last one, before the end (10 s).
    times = sim.report.cells._rejected_times(txns, 4, 10.0)
    assert times == pytest.approx([2.0, 3.0, 5 + 5 / 3, 5 + 10 / 3])
    assert sim.report.cells._rejected_times(txns, 0, 10.0).size == 0
    assert sim.report.cells._rejected_times(txns.iloc[0:0], 2, 9.0) == pytest.approx([3.0, 6.0])


def test_the_timeline_bands_rejected_arrivals_inside_the_crash(
    crash_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = load(crash_dir)
    for run_id, txns in dataset.transactions.groupby("run_id"):
        rejected = int(dataset.summary.set_index("run_id").loc[run_id, "rejected"])
        times = sim.report.cells._rejected_times(txns, rejected, 6.0)
        assert times.size == rejected > 0
        # The coordinator is down from 1 s to 3 s: every rejected arrival falls there (to within an arrival gap).
        assert times.min() > 0.9 and times.max() < 3.1, run_id
    kept = Kept(monkeypatch)
    monkeypatch.setattr(sim.report.page, "SECTIONS", ("timeline",))
    page = read(build_report(crash_dir, tmp_path / "r"))
    legend = kept.figures["timeline.png"].legends[0]
    assert "arrivals rejected (coordinator down)" in [t.get_text() for t in legend.get_texts()]
    assert "hatched grey band" in page.all_text


def test_a_run_without_rejections_says_so(result_dir: Path, tmp_path: Path, summary_only: None) -> None:
    page = read(build_report(result_dir, tmp_path / "r"))
    assert "No arrival was rejected here." in page.all_text
    assert " 0% [0%, " in page.all_text


def test_comparison_embeds_the_paired_differences_and_the_seeds(
    crash_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sim.compare import format_points, paired_differences

    kept = Kept(monkeypatch)
    monkeypatch.setattr(sim.report.page, "SECTIONS", ("comparison",))
    page = read(build_report(crash_dir, tmp_path / "r"))
    assert page.sections == ["comparison"]
    assert page.table_headers[0] == ["A - B", "rate", "mean", "95% interval", "seeds", "w/b/s"]
    pairs = paired_differences(load(crash_dir).summary, ["orchestration", "2pc"], sim.report.parts._COMPARED)
    for row in pairs.itertuples():
        interval = (
            f"[{format_points(row.ci_low)}, {format_points(row.ci_high)}]" if row.ci_low == row.ci_low else row.note
        )
        name = str(row.metric).removesuffix("_rate")
        expected = f"orchestration - 2pc {name} {format_points(row.mean)} {interval} 2 {row.a_worse}/{row.a_better}/{row.equal}"
        assert expected in page.all_text
    # A panel per rate that was not 0 everywhere; a dot per seed in it, a diamond for the mean.
    drawn = [m for m in sim.report.parts._COMPARED if (load(crash_dir).summary[m] > 0).any()]
    axes = kept.figures["comparison.png"].axes
    assert [ax.get_xlabel().split(":")[0] for ax in axes] == [m.removesuffix("_rate") for m in drawn]
    dots = [line for line in axes[0].get_lines() if line.get_marker() == "o"]
    assert len(dots) == 1 and len(dots[0].get_xdata()) == 2  # two seeds


@pytest.mark.parametrize(
    ("metric", "low", "high", "red"),
    [
        ("inconsistent_rate", 0.01, 0.03, True),  # A has more inconsistent transactions on every reading
        ("inconsistent_rate", -0.03, -0.01, False),
        ("committed_rate", -0.03, -0.01, True),  # A commits fewer
        ("committed_rate", 0.01, 0.03, False),
        ("stuck_rate", -0.01, 0.02, False),  # the interval holds 0: no verdict
        ("stuck_rate", float("nan"), float("nan"), False),
    ],
)
def test_a_difference_is_red_only_when_the_seeds_show_a_worse(metric: str, low: float, high: float, red: bool) -> None:
    # A row as paired_differences(...).itertuples() gives it.
    pair = SimpleNamespace(
        protocol_a="a", protocol_b="b", metric=metric, mean=(low + high) / 2, ci_low=low, ci_high=high, seeds=3
    )
    pair.__dict__.update(a_worse=2, a_better=1, equal=0, note="")
    cells = sim.report.cells._pair_cells("", pair)
    assert cells[3][1] == ("num bad" if red else "num")


def test_one_protocol_has_nothing_to_pair(traced_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sim.report.page, "SECTIONS", ("comparison",))
    page = read(build_report(traced_dir, tmp_path / "r"))
    assert page.sections == []
    assert "paired differences: one protocol (orchestration): nothing to pair" in page.all_text


def test_a_zero_count_draws_its_upper_bound_as_a_line_not_a_band() -> None:
    fig = Figure()
    ax = fig.add_subplot()
    line = sim.report.plots._RateLine(np.array([0.0, 1.0, 2.0]), np.array([0.0, 5.0, 6.0]), np.array([100.0] * 3))
    sim.report.plots._draw_rates(ax, line, "#123456", "-", joined=True, hollow=False)
    bound = [ln for ln in ax.get_lines() if ln.get_marker() == "v"]
    assert len(bound) == 1
    upper = sim.metrics.wilson(0, 100)[1]
    assert bound[0].get_ydata()[0] == pytest.approx(upper) and np.isnan(bound[0].get_ydata()[1:]).all()
    # The filled band starts where the outcome was seen: no filled area over x = 0.
    filled = np.vstack([p.get_paths()[0].vertices for p in ax.collections])
    assert filled[:, 0].min() >= 1.0

    fig = Figure()
    ax = fig.add_subplot()
    sim.report.plots._draw_rates(ax, line, "#123456", "-", joined=False, hollow=False)
    tips = [ln for ln in ax.get_lines() if ln.get_marker() == "v"]
    assert list(tips[0].get_xdata()) == [0.0] and tips[0].get_ydata()[0] == pytest.approx(upper)


def test_rate_panels_with_nothing_in_them_are_left_out(
    sweep_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = Kept(monkeypatch)
    monkeypatch.setattr(sim.report.page, "SECTIONS", ("rates",))
    page = read(build_report(sweep_dataset, tmp_path / "r"))
    summary = sweep_dataset.summary
    happened = [o for o in sim.metrics.OUTCOMES if summary[o].sum() > 0]
    never = [o for o in ("inconsistent", "stuck") if summary[o].sum() == 0]
    assert never  # the test sweep has neither
    assert [ax.get_title() for ax in kept.figures["rates.png"].axes] == happened
    assert f"at any value: {', '.join(never)} (a panel of zeros)" in page.all_text
    assert "dashed line with a downward mark shows the 95% upper bound" in page.all_text


def test_messages_are_bars_and_empty_lock_panels_are_left_out(
    result_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = Kept(monkeypatch)
    monkeypatch.setattr(sim.report.page, "SECTIONS", ("messages",))
    page = read(build_report(result_dir, tmp_path / "r"))
    ax = kept.figures["messages.png"].axes[0]
    assert not ax.get_lines()  # no zig-zag line between counts
    txns = load(result_dir).transactions
    bars = sum(txns.loc[txns["protocol"] == p, "messages"].nunique() for p in ("orchestration", "2pc"))
    assert len(ax.patches) == bars
    # No keys, so no locks in this scenario: the lock panels are zero throughout and not drawn.
    twopc = txns[txns["protocol"] == "2pc"]
    names = {"lock_held": "locks held", "lock_wait": "lock wait", "blocked": "blocked in doubt"}
    zero = [c for c in names if (twopc[c] == 0).all()]
    assert zero == ["lock_held", "lock_wait"] and (twopc["blocked"] > 0).any()
    titles = [a.get_title(loc="left") for a in kept.figures["twopc.png"].axes]
    assert titles == ["blocked in doubt"]
    assert "zero for every two-phase commit transaction: locks held, lock wait." in page.all_text


def test_latency_and_messages_are_drawn_against_the_swept_setting(
    sweep_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = Kept(monkeypatch)
    monkeypatch.setattr(sim.report.page, "SECTIONS", ("latency", "messages"))
    build_report(sweep_dataset, tmp_path / "r")
    txns = sweep_dataset.transactions
    p99 = kept.figures["latency-against.png"].axes[1]
    for line in p99.get_lines():
        protocol = next(
            p for p in ("orchestration", "choreography") if line.get_color() == sim.palette.PROTOCOL_COLOURS[p]
        )
        expected = [
            txns[(txns["protocol"] == protocol) & (txns[FAILURE] == x)]["latency"].dropna().quantile(0.99)
            for x in line.get_xdata()
        ]
        assert list(line.get_ydata()) == pytest.approx(expected)
    assert sorted(line.get_xdata().tolist() for line in p99.get_lines()) == [[0.0, 0.2], [0.0, 0.2]]
    messages = kept.figures["messages-against.png"].axes[0]
    assert len(messages.get_lines()) == 2


def test_one_colour_per_protocol_from_the_palette(
    result_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sim.palette import PROTOCOL_COLOURS, protocol_colour

    kept = Kept(monkeypatch)
    monkeypatch.setattr(sim.report.page, "SECTIONS", ("latency", "messages"))
    build_report(result_dir, tmp_path / "r")
    for name in ("latency.png", "messages.png"):
        handles, labels = kept.figures[name].axes[0].get_legend_handles_labels()
        colours = {
            label: matplotlib.colors.to_hex(h.patches[0].get_facecolor() if name == "messages.png" else h.get_color())
            for h, label in zip(handles, labels, strict=True)
        }
        assert colours == {p: PROTOCOL_COLOURS[p] for p in ("orchestration", "2pc")}
    assert len(set(PROTOCOL_COLOURS.values())) == len(PROTOCOL_COLOURS) == len(sim.scenario.PROTOCOLS)
    assert protocol_colour("3pc", ["orchestration", "3pc", "saga2"]) != protocol_colour("saga2", ["3pc", "saga2"])
    # The notebooks take their colours from the same place.
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        text = notebook.read_text(encoding="utf-8")
        if "for protocol in" in text:  # a chart with a mark per protocol
            assert "PROTOCOL_COLOURS" in text, notebook.name


def test_images_are_drawn_at_150_dpi(result_report: Path) -> None:
    with Image.open(result_report.parent / "latency.png") as image:
        assert image.size[0] == 7.5 * 150  # the latency figure is 7.5 inches wide


@pytest.mark.parametrize("reasons", ["charge never refunded; stuck", ["charge never refunded", "stuck"]])
def test_reasons_read_as_a_string_or_a_list(result_dir: Path, reasons: Any) -> None:
    dataset = load(result_dir)
    txns = dataset.transactions.copy()
    txns["reasons"] = txns["reasons"].astype(object)
    txns.at[7, "outcome"] = "inconsistent"
    txns.at[7, "reasons"] = reasons
    dataset._cache["transactions"] = txns
    assert pick_transaction(dataset).why == "the worst transaction: inconsistent (charge never refunded; stuck)"


# ------------------------------------------------------------------ the transaction


def test_default_transaction_is_the_worst_else_a_compensated_one(result_dir: Path) -> None:
    dataset = load(result_dir)
    choice = pick_transaction(dataset)
    assert choice.row is not None and choice.row["outcome"] == "compensated"
    assert choice.row["compensations_applied"] > 0
    assert choice.why.startswith("the first compensated transaction that undid an effect")

    txns = dataset.transactions.copy()
    txns.loc[7, ["outcome", "reasons"]] = ["inconsistent", "charge never refunded"]
    dataset._cache["transactions"] = txns
    worst = pick_transaction(dataset)
    assert (worst.row["run_id"], worst.row["txn_id"]) == (txns.loc[7, "run_id"], txns.loc[7, "txn_id"])
    assert worst.why == "the worst transaction: inconsistent (charge never refunded)"


def test_txn_picks_the_named_transaction(result_dir: Path, traced_dir: Path) -> None:
    two = load(result_dir)
    choice = pick_transaction(two, "test-order/2pc/1:4")
    assert (choice.row["run_id"], choice.row["txn_id"]) == ("test-order/2pc/1", 4)
    one = load(traced_dir)
    assert pick_transaction(one, "4").row["txn_id"] == 4
    assert pick_transaction(one, "test-order/orchestration/1:4").row["txn_id"] == 4


@pytest.mark.parametrize(
    ("txn", "message"),
    [
        (
            "4",
            "--txn '4': this dataset holds 2 runs; spell it RUN_ID:TXN_ID with a run among test-order/orchestration/1, test-order/2pc/1",
        ),
        (
            "test-order/3pc/1:4",
            "--txn 'test-order/3pc/1:4': no run 'test-order/3pc/1'; runs: test-order/orchestration/1, test-order/2pc/1",
        ),
        (
            "test-order/2pc/1:four",
            "--txn 'test-order/2pc/1:four': 'four' is not a transaction id; expected RUN_ID:TXN_ID, e.g. test-order/2pc/1:0",
        ),
        ("test-order/2pc/1:-1", "'-1' is not a transaction id"),
        (
            "test-order/2pc/1:100000",
            "--txn 'test-order/2pc/1:100000': run test-order/2pc/1 has no transaction 100000; its ids: 0..",
        ),
    ],
)
def test_bad_txn_says_what_is_allowed(result_dir: Path, tmp_path: Path, txn: str, message: str) -> None:
    with pytest.raises(SagasimError) as caught:
        build_report(result_dir, tmp_path / "r", txn=txn)
    assert message in str(caught.value)
    assert not (tmp_path / "r").exists()


def test_bad_txn_on_a_single_run(traced_dir: Path) -> None:
    with pytest.raises(SagasimError, match=r"--txn 'x': 'x' is not a transaction id; expected TXN_ID, e.g. 0"):
        pick_transaction(load(traced_dir), "x")


# ------------------------------------------------------------------ the swimlane


def _order_events(protocol: str) -> pd.DataFrame:
    return sim.run(order_scenario(SHORT), protocol=protocol, seed=1, trace=True).events


def test_orchestration_messages_pair_commands_with_receipts() -> None:
    events = _order_events("orchestration")
    txn = events[(events["txn_id"] == 0)]
    messages = [(m.src, m.dst, m.label, m.how) for m in pair_messages(txn)]
    assert messages == [
        ("orchestrator", "payment", "charge", "traced"),
        ("payment", "orchestrator", "charge ok", "traced"),
        ("orchestrator", "inventory", "reserve", "traced"),
        ("inventory", "orchestrator", "reserve ok", "traced"),
        ("orchestrator", "shipping", "ship", "traced"),
        ("shipping", "orchestrator", "ship ok", "traced"),
    ]
    for m in pair_messages(txn):
        assert m.received - m.sent == pytest.approx(0.001)  # the test network's constant latency


def test_twopc_messages_include_votes_decisions_and_acks() -> None:
    events = _order_events("2pc")
    txn = events[(events["txn_id"] == 0)]
    messages = pair_messages(txn)
    kinds = sorted((m.src, m.dst, m.label, m.how) for m in messages)
    participants = ("inventory", "payment", "shipping")
    expected = [("coordinator", p, "prepare", "traced") for p in participants]
    expected += [("coordinator", p, "commit", "traced") for p in participants]
    expected += [(p, "coordinator", "vote yes", "traced") for p in participants]
    # Participants do not trace sending an acknowledgement: drawn from their previous event.
    expected += [(p, "coordinator", "ack", "send-inferred") for p in participants]
    assert kinds == sorted(expected)


def test_plot_swimlane_draws_lanes_and_refuses_a_missing_transaction(traced_dir: Path) -> None:
    dataset = load(traced_dir)
    txn = int(pick_transaction(dataset).row["txn_id"])
    fig = plot_swimlane(dataset.events, txn, dataset.faults)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["orchestrator", "payment", "inventory"]
    assert ax.get_title(loc="left") == f"transaction {txn} of test-order/orchestration/1"
    own = Figure()
    given = own.add_subplot()
    assert plot_swimlane(dataset.events, 0, ax=given) is own
    with pytest.raises(ValueError, match="no events of transaction 99999"):
        plot_swimlane(dataset.events, 99999)


def test_plot_swimlane_wants_one_run(result_dir: Path, traced_dir: Path) -> None:
    events = load(traced_dir).events
    doubled = pd.concat([events, events.assign(run_id="other/run/1")])
    with pytest.raises(ValueError, match=r"transaction 0 is in 2 runs .*keep one run"):
        plot_swimlane(doubled, 0)


def test_replay_gives_the_recorded_trace(traced_dir: Path) -> None:
    dataset = load(traced_dir)
    recorded = dataset.events[dataset.events["txn_id"] == 5].reset_index(drop=True)
    replayed = replay_events(dataset, "test-order/orchestration/1", 5)
    replayed = replayed[replayed["txn_id"] == 5].reset_index(drop=True)
    assert len(recorded) > 5
    pd.testing.assert_frame_equal(replayed, recorded)


# ------------------------------------------------------------------ the folder


def test_refuses_to_replace_a_folder_unless_asked(result_dir: Path, tmp_path: Path, summary_only: None) -> None:
    target = tmp_path / "rep"
    build_report(result_dir, target)
    (target / "stale.png").write_text("old")
    with pytest.raises(SagasimError, match="already exists; choose another --out, or pass --overwrite"):
        build_report(result_dir, target)
    assert (target / "stale.png").read_text() == "old"
    build_report(result_dir, target, overwrite=True)
    assert read(target / "index.html").sections == ["summary"]
    assert not (target / "stale.png").exists()
    # --overwrite replaces a report, never a result folder given by mistake.
    with pytest.raises(SagasimError, match="is not a report"):
        build_report(result_dir, result_dir, overwrite=True)
    assert (result_dir / "run.json").exists()
    # ... nor a web page of the user's: an index.html that sagasim did not write.
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<html><head><title>my site</title></head></html>")
    with pytest.raises(SagasimError, match=r"is not a report \(no index.html written by sagasim\)"):
        build_report(result_dir, site, overwrite=True)
    assert (site / "index.html").read_text().startswith("<html><head><title>my site")


def test_an_interrupted_build_leaves_no_report(
    result_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(sim.report.page, "SECTIONS", ("summary", "latency"))
    monkeypatch.setattr(report_module._Page, "_latency", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        build_report(result_dir, tmp_path / "new")
    assert list(tmp_path.iterdir()) == []  # no report, no staging folder

    old = tmp_path / "old"
    old.mkdir()
    previous = '<html><head><meta name="generator" content="sagasim 0.1.0"></head>previous report</html>'
    (old / "index.html").write_text(previous)
    with pytest.raises(RuntimeError):
        build_report(result_dir, old, overwrite=True)
    assert (old / "index.html").read_text() == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]


def test_a_dataset_without_transactions_says_why_sections_are_missing(result_dir: Path, tmp_path: Path) -> None:
    dataset = load(result_dir)
    dataset._cache["transactions"] = dataset.transactions.iloc[0:0]
    page = read(build_report(dataset, tmp_path / "empty"))
    assert page.sections == []
    assert "latency: no transactions" in page.all_text
    assert "one transaction: no transactions" in page.all_text


def test_a_target_that_cannot_be_made_is_one_message(result_dir: Path, tmp_path: Path, summary_only: None) -> None:
    afile = tmp_path / "afile"
    afile.write_text("hi")
    with pytest.raises(SagasimError) as caught:
        build_report(result_dir, afile / "sub")
    assert str(caught.value) == f"{afile / 'sub'}: cannot write the report there: {afile} is a file, not a folder"
    if Path("/proc/self").is_dir():  # Linux: no folder can be made in /proc, even by root
        with pytest.raises(
            SagasimError, match=r"^/proc/xx: cannot write the report there: cannot make a folder in /proc \("
        ):
            build_report(result_dir, "/proc/xx")


@pytest.mark.parametrize(
    ("fixture", "missing"),
    [("result_dir", "transactions.parquet"), ("result_dir", "summary.parquet"), ("sweep", "summary.parquet")],
)
def test_a_damaged_dataset_names_the_missing_file(
    request: pytest.FixtureRequest, tmp_path: Path, fixture: str, missing: str
) -> None:
    source = request.getfixturevalue("sweep_dataset").path if fixture == "sweep" else request.getfixturevalue(fixture)
    copy = Path(shutil.copytree(source, tmp_path / "copy"))
    (copy / missing).unlink()
    with pytest.raises(SagasimError, match=rf"^{re.escape(str(copy))}: damaged: {missing} is missing"):
        build_report(copy, tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_an_unreadable_table_is_a_damaged_dataset(result_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(result_dir, tmp_path / "copy"))
    (copy / "transactions.parquet").write_bytes(b"not parquet")
    with pytest.raises(SagasimError, match=r"transactions.parquet: damaged: cannot read it"):
        _ = load(copy).transactions


# ------------------------------------------------------------------ the command line


def test_cli_writes_the_report_and_prints_its_path(
    capsys: pytest.CaptureFixture[str], result_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sim.report.page, "SECTIONS", ("summary", "swimlane"))
    monkeypatch.chdir(tmp_path)
    code, out, err = sagasim(capsys, "report", result_dir, "--txn", "test-order/orchestration/1:2")
    assert code == 0, err
    index = Path("reports/test-order/index.html")
    assert out.strip() == str(index)
    assert read(index).sections == ["summary", "swimlane"]
    assert "transaction 2 of test-order/orchestration/1" in index.read_text()

    code, out, err = sagasim(capsys, "report", result_dir)
    assert code == 2
    assert "error: reports/test-order: already exists; choose another --out, or pass --overwrite" in err
    code, out, err = sagasim(capsys, "report", result_dir, "--overwrite", "-q", "-o", "reports/test-order")
    assert code == 0 and out.strip() == "reports/test-order/index.html"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere"], "error: nowhere: no such folder; expected a result folder (run.json) or a sweep (sweep.json)"),
        (["{result}", "--txn", "7"], "error: --txn '7': this dataset holds 2 runs; spell it RUN_ID:TXN_ID"),
        (["{result}", "--txn", "test-order/2pc/1:x"], "error: --txn 'test-order/2pc/1:x': 'x' is not a transaction id"),
        (["{scenarios}"], "not a result folder (no run.json) nor a sweep dataset (no sweep.json)"),
    ],
)
def test_cli_bad_input_is_one_message_and_exit_2(
    capsys: pytest.CaptureFixture[str], result_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    scenarios = Path(__file__).resolve().parent.parent / "scenarios"
    argv = [a.format(result=result_dir, scenarios=scenarios) for a in args]
    code, _, err = sagasim(capsys, "report", *argv, "-o", tmp_path / "r")
    assert code == 2
    assert message in " ".join(err.split())
    assert not (tmp_path / "r").exists()


def test_cli_help_explains_and_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = sagasim(capsys, "report", "--help")
    assert code == 0
    for words in ("RESULTS", "--txn", "RUN_ID:TXN_ID", "--overwrite", "Examples:", "index.html", "survival"):
        assert words in out


def test_cli_bad_out_is_one_message_and_exit_2(
    capsys: pytest.CaptureFixture[str], result_dir: Path, tmp_path: Path
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("hi")
    code, out, err = sagasim(capsys, "report", result_dir, "-q", "-o", afile / "sub")
    assert code == 2 and out == ""
    assert (
        " ".join(err.split())
        == f"error: {afile / 'sub'}: cannot write the report there: {afile} is a file, not a folder"
    )

    code, _, err = sagasim(capsys, "report", afile, "-o", tmp_path / "r")
    assert code == 2
    assert f"error: {afile}: is a file, not a folder; expected a result folder" in " ".join(err.split())
    assert "Traceback" not in err


def test_every_protocol_that_locks_has_its_lock_and_blocked_time(tmp_path: Path) -> None:
    # 2PC and Paxos Commit (both declare lock_held): a curve each, a row each.
    scenario = order_scenario({**SHORT, "workload.keys": {"population": 20, "skew": 1.0}})
    result = sim.run(scenario, protocol=["2pc", "paxos-commit"], seed=1)
    page = read(build_report(result.save(tmp_path / "locking"), tmp_path / "r"))
    table = next(h for h in page.table_headers if "share above 0" in h)
    assert table[:2] == ["protocol", "time"]
    assert "Two-phase commit and Paxos Commit: per transaction" in page.all_text
    assert "(a colour per protocol)" in page.all_text
    assert (tmp_path / "r" / "twopc.png").exists()
