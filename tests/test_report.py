"""Reports: the page and its sections, the swimlane and its messages, --txn,
atomic writes, and the command line."""

from __future__ import annotations

import base64
import io
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image
from scipy import stats

import sim
import sim.report as report_module
from sim.dataset import Dataset, load
from sim.errors import SagasimError
from sim.report import build_report, pick_transaction, plot_swimlane, replay_events
from sim.sweep import run_sweep, sweep_from_dict
from sim.swimlane import pair_messages

from conftest import order_scenario, sagasim

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
    monkeypatch.setattr(report_module, "SECTIONS", ("summary",))


# ------------------------------------------------------------------ the page


def test_result_report_has_every_section_its_data_allows(result_report: Path) -> None:
    folder = result_report.parent
    assert result_report.name == "index.html"
    pngs = sorted(p.name for p in folder.glob("*.png"))
    assert pngs == ["consistency.png", "latency.png", "messages.png", "swimlane.png", "timeline.png", "twopc.png"]
    for png in pngs:
        assert_valid_png(folder / png)
    page = read(result_report)
    assert page.sections == ["summary", "latency", "consistency", "messages", "timeline", "swimlane"]
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
    assert not page.tags & {"script", "link", "iframe", "object", "embed"}
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
    monkeypatch.setattr(report_module, "SECTIONS", ("summary", "consistency"))
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
    share = report_module.format_rate(never / len(txns))
    assert f"orchestration {len(txns):,} {share}" in text


def test_sweep_report_plots_rates_against_the_axis(sweep_dataset: Dataset, tmp_path: Path) -> None:
    index = build_report(sweep_dataset, tmp_path / "sweep")
    page = read(index)
    assert page.sections == ["summary", "rates", "latency", "consistency", "messages", "timeline", "swimlane"]
    assert_valid_png(index.parent / "rates.png")
    assert not (index.parent / "twopc.png").exists()
    assert "No two-phase commit run" in page.all_text
    assert page.table_headers[0][:3] == [FAILURE, "protocol", "seeds"]  # the axis is a column of the summary
    assert f"One panel per value of {FAILURE}" in page.all_text
    assert "Left out" not in page.all_text


def test_a_traced_result_draws_from_its_trace(
    traced_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_replay(*args: Any, **kwargs: Any) -> pd.DataFrame:
        raise AssertionError("a traced result needs no replay")

    monkeypatch.setattr(report_module, "replay_events", no_replay)
    monkeypatch.setattr(report_module, "SECTIONS", ("swimlane",))
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
    monkeypatch.setattr(report_module, "SECTIONS", ("summary", "rates"))
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
    low, high = report_module._wilson_arrays(hits, n)
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

    monkeypatch.setattr(report_module, "protocol_table", with_nan)
    monkeypatch.setattr(report_module, "SECTIONS", ("summary",))
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

    monkeypatch.setattr(report_module, "SECTIONS", ("summary", "latency"))
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
    monkeypatch.setattr(report_module, "SECTIONS", ("summary", "swimlane"))
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
