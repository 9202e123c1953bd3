"""The tutorial notebook (``docs/tutorial.md``, paired with ``docs/tutorial.ipynb`` by jupytext) executes as written,
on its small setting, in a Jupyter kernel: it never rots. The two files say the same."""

import os
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext", reason="the tutorial test needs jupytext (pip install -e '.[test]')")
nbclient = pytest.importorskip("nbclient", reason="the tutorial test needs nbclient (pip install -e '.[test]')")
pytest.importorskip("ipykernel", reason="the tutorial test needs ipykernel (pip install -e '.[test]')")

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _sources(notebook) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def test_the_notebook_and_its_markdown_page_hold_the_same_cells():
    """An edit to one without ``jupytext --sync docs/tutorial.md`` fails here."""
    assert _sources(jupytext.read(DOCS / "tutorial.ipynb")) == _sources(jupytext.read(DOCS / "tutorial.md"))


@pytest.mark.slow  # a kernel and two small studies: the second CI step
def test_the_tutorial_runs_as_written_and_shows_verdicts_a_grid_and_the_report(tmp_path, monkeypatch):
    monkeypatch.setenv("INITJAX_TUTORIAL_SMALL", "1")  # the kernel inherits the environment, INITJAX_CACHE too
    notebook = jupytext.read(DOCS / "tutorial.md")
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"], "the tutorial warned"
    tables = [o["data"]["text/plain"] for o in outputs if o.output_type == "execute_result"]
    assert len(tables) == 2 and "verdict" in tables[0] and "zero-head" in tables[0]
    assert "lr" in tables[1] and tables[1].count("\n") == 6  # the six best (initializer, rate) arms
    assert (tmp_path / "runs" / "tutorial" / "report.md").is_file()
    assert (tmp_path / "runs" / "tutorial" / "figures" / "mine-curves-test_accuracy.png").is_file()
    shown = [o for o in outputs if o.output_type == "display_data"]
    assert [sorted(o["data"]) for o in shown] == [["text/markdown", "text/plain"], ["image/png", "text/plain"]]
    summary = shown[0]["data"]["text/markdown"]  # the task's summary table, from report.md
    assert "test accuracy mean [95% CI]" in summary and "zero-head lr=" in summary
    assert os.environ["INITJAX_CACHE"] and list(Path(os.environ["INITJAX_CACHE"]).glob("mine-*"))  # cached runs
