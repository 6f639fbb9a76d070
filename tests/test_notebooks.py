"""The notebooks in notebooks/ run top to bottom with small parameters, and are
stored without outputs (so a contributor cannot commit a stale result)."""

from __future__ import annotations

import ast
import base64
from pathlib import Path
from typing import Any

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))

# What each notebook's parameters cell gets replaced with in the tests: small
# runs, so that all of them execute in well under a minute on two cores. `OUT`
# (the folder results go to) is added for every notebook.
SMALL: dict[str, dict[str, Any]] = {
    "quickstart.ipynb": {"SEEDS": [1], "DURATION": 5.0, "DRAIN": 10.0},
    # Two seeds, so the paired intervals are computed; two workers, so the
    # sweep runs on local processes started from a kernel, as it does for users.
    "protocol-comparison.ipynb": {"SEEDS": [1, 2], "DURATION": 5.0, "DRAIN": 10.0, "WORKERS": 2},
    # The naive scenario at its own size: a traced run takes well under a second,
    # and its faults are timed for its full duration.
    "incident-deep-dive.ipynb": {"SEED": 1},
    # Enough arrivals for each anomaly to appear; the grid at two skews.
    "isolation.ipynb": {
        "SEED": 1,
        "DURATION": 4.0,
        "DRAIN": 10.0,
        "SKEWS": [0.0, 1.5],
        "PROTOCOLS": ["orchestration", "2pc"],
    },
}
CELL_TIMEOUT = 180  # seconds, per cell
#: Where the notebooks write by default (their ``OUT``: ../results/notebooks from notebooks/).
DEFAULT_OUT = ROOT / "results" / "notebooks"


def listing(folder: Path) -> dict[str, int]:
    """Every file and folder under ``folder`` with its modification time."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")} if folder.exists() else {}


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=nbformat.NO_CONVERT)


def parameters_cell(nb: nbformat.NotebookNode) -> int:
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"expected one cell tagged 'parameters', found {len(tagged)}"
    return tagged[0]


def test_the_notebooks_are_there() -> None:
    names = {p.name for p in NOTEBOOKS}
    assert names >= set(SMALL), f"missing: {sorted(set(SMALL) - names)}"
    assert names <= set(SMALL), f"give {sorted(names - set(SMALL))} small test parameters in SMALL"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = read(path)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.execution_count is None, f"{path.name} cell {i}: clear the outputs before committing"
            assert cell.outputs == [], f"{path.name} cell {i}: clear the outputs before committing"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_a_parameters_cell_first(path: Path) -> None:
    nb = read(path)
    index = parameters_cell(nb)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    assert code[0] == index, f"{path.name}: the parameters cell is the first code cell"
    tree = ast.parse(nb.cells[index].source)
    assigned = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets}
    assert all(isinstance(node, ast.Assign) for node in tree.body), "the parameters cell only assigns values"
    expected = {*SMALL.get(path.name, {}), "OUT"}
    assert expected <= assigned, f"{path.name}: the parameters cell lacks {sorted(expected - assigned)}"


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """A ``python3`` kernel spec that runs this interpreter (the venv's), whatever
    kernels the machine or the user has installed elsewhere."""
    folder = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(folder / "python3")
    return KernelSpecManager(kernel_dirs=[str(folder)])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path: Path, tmp_path: Path, kernel_specs: KernelSpecManager) -> None:
    run_notebook(path, SMALL.get(path.name, {}), tmp_path, kernel_specs)


def test_incident_notebook_follows_its_own_advice(tmp_path: Path, kernel_specs: KernelSpecManager) -> None:
    """Its "where to go from here": SCENARIO set to the robust scenario, where
    nothing ends inconsistent or stuck; it explains a compensated one instead."""
    path = NOTEBOOK_DIR / "incident-deep-dive.ipynb"
    robust = {**SMALL[path.name], "SCENARIO": "../scenarios/robust-orchestrator.toml"}
    nb = run_notebook(path, robust, tmp_path, kernel_specs)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "chosen: the first compensated transaction" in printed
    stories = [
        o["data"]["text/markdown"]
        for c in nb.cells
        for o in c.get("outputs", [])
        if "text/markdown" in o.get("data", {})
    ]
    assert any("the checker says **compensated**" in story for story in stories), stories


def run_notebook(
    path: Path, parameters: dict[str, Any], tmp_path: Path, kernel_specs: KernelSpecManager
) -> nbformat.NotebookNode:
    """Run ``path`` with ``parameters`` injected and check it ran clean; returns the executed notebook."""
    nb = read(path)
    index = parameters_cell(nb)
    out = tmp_path / "out"
    small = {**parameters, "OUT": str(out)}
    # Like papermill: a cell after the parameters cell overrides its values.
    injected = nbformat.v4.new_code_cell("\n".join(f"{name} = {value!r}" for name, value in small.items()))
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(index + 1, injected)
    manager = KernelManager(kernel_name="python3", kernel_spec_manager=kernel_specs)
    client = NotebookClient(
        nb,
        km=manager,
        timeout=CELL_TIMEOUT,
        allow_errors=True,  # run on and report every failing cell below, not just the first
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},  # run from notebooks/, as Jupyter does
    )
    before = listing(DEFAULT_OUT)
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    errors = [f"{o.ename}: {o.evalue}" for o in outputs if o.output_type == "error"]
    assert not errors, f"{path.name}: cells failed: {errors}"
    images = [o["data"]["image/png"] for o in outputs if "image/png" in o.get("data", {})]
    assert images, f"{path.name} drew no figure"
    assert all(base64.b64decode(image)[:8] == b"\x89PNG\r\n\x1a\n" for image in images)
    assert not (NOTEBOOK_DIR / "results").exists(), "a notebook wrote into notebooks/"
    # The injected OUT is where everything went: nothing new in the default folder.
    assert [p for p in out.rglob("*") if p.is_file()], f"{path.name} wrote nothing into the injected OUT"
    assert listing(DEFAULT_OUT) == before, f"{path.name} wrote into {DEFAULT_OUT}, not the injected OUT"
    return nb
