"""Notebooks run top to bottom in a Jupyter kernel (nbclient), as a planner runs them, so they never rot.

Each notebook is executed in a fresh ``python3`` kernel of this interpreter (the kernelspec that
ipykernel installs in the venv launches ``python``, which jupyter_client maps to ``sys.executable``);
a cell that raises (including a failed ``assert`` on the plan's invariants) fails the test.
"""

import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
WALKTHROUGH = NOTEBOOK_DIR / "planner_walkthrough.ipynb"

PROBE = "import sys\nprint(sys.executable)\nprint(sys.prefix)"


def _execute(nb: nbformat.NotebookNode, cwd: Path) -> nbformat.NotebookNode:
    """Run every code cell in a fresh kernel started in ``cwd``; raises CellExecutionError on a failing cell."""
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    return client.execute()


def _probe_lines(cell: nbformat.NotebookNode) -> list[str]:
    return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream").splitlines()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path, monkeypatch):
    # anything a notebook writes to tempfile's folder lands in pytest's tmp_path, not in /tmp
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    nb = nbformat.read(path, as_version=4)
    probe = nbformat.v4.new_code_cell(PROBE)
    nb.cells.insert(0, probe)
    _execute(nb, NOTEBOOK_DIR)
    # the kernel is this interpreter (the venv's), not some other Python on the PATH
    assert _probe_lines(probe) == [sys.executable, sys.prefix]
    for i, cell in enumerate(nb.cells):
        outputs = cell.get("outputs", [])
        # no cell printed a warning (a deprecation in the library or its use shows up here)
        for out in outputs:
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                assert "Warning" not in out["text"], f"{path.name} cell {i} warned:\n{out['text']}"
        # a cell that draws a figure shows it (a library switching matplotlib's backend would hide it)
        if cell.cell_type == "code" and "plt.subplots(" in cell.source:
            assert any("image/png" in out.get("data", {}) for out in outputs), f"{path.name} cell {i} shows no figure"


def test_walkthrough_finds_the_repository_from_its_root(tmp_path, monkeypatch):
    # the setup cell locates the repository by walking up to pyproject.toml, so it also runs from the root
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    nb = nbformat.read(WALKTHROUGH, as_version=4)
    setup = next(c for c in nb.cells if c.cell_type == "code")
    check = nbformat.v4.new_code_cell("print(ROOT)\nprint(SAMPLE.is_dir())\nshutil.rmtree(OUT)")
    nb.cells = [setup, check]
    _execute(nb, ROOT)
    assert _probe_lines(check) == [str(ROOT), "True"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_saved_without_outputs(path):
    # outputs (plots, the embedded map) would bloat the repository and change on every run
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name} cell {i} holds outputs"


def test_there_is_a_notebook():
    assert NOTEBOOKS
    assert {"quickstart.ipynb", "planner_walkthrough.ipynb"} <= {p.name for p in NOTEBOOKS}
