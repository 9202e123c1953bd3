"""Report sections on small hand-built tables: the renderers, the run record, and a new section added through the
public extension point (``bench.reporting.section``)."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.analysis import stats
from bench.errors import UserError
from bench.reporting import render, report
from bench.reporting.analysed import analyse
from bench.reporting.record import RunRecord, TaskRecord
from bench.reporting.section import Figure, Section, View
from bench.reporting.sections import SECTIONS

REPORTS = Path(__file__).resolve().parents[2] / "reports"
FAST = stats.Settings(draws=400, n_resamples=200)


def _results(tasks: dict[str, dict[str, float]], seeds: int = 6) -> pd.DataFrame:
    """Epochs 0-3 of a few initializers per task, accuracies rising to about the given final means."""
    rng = np.random.default_rng(0)
    rows = [{"dataset": task, "model": "m", "arm": arm, "seed": seed, "epoch": epoch,
             "test_loss": 1.0 - mean * epoch / 3, "test_accuracy": min(1.0, mean * epoch / 3 + 0.002 * rng.normal()),
             "diverged": False}
            for task, means in tasks.items() for arm, mean in means.items() for seed in range(seeds)
            for epoch in range(4)]
    return pd.DataFrame(rows)


def _record(results: pd.DataFrame) -> RunRecord:
    tasks = list(dict.fromkeys(results["dataset"]))
    arms = list(dict.fromkeys(results["arm"]))
    experiment = {"name": "toy", "description": "A toy.", "tasks": [{"dataset": t} for t in tasks],
                  "initializers": arms, "seeds": int(results["seed"].nunique()),
                  "train": {"optimizer": "adam", "lr": 1e-3, "batch_size": 32, "epochs": 3}, "seed": 0}
    return RunRecord(experiment=experiment, initializers=arms,
                     tasks={t: TaskRecord(model="m", runs=6 * len(arms), compile_s=1.0, train_s=2.0, init_s=0.1)
                            for t in tasks},
                     runs=6 * len(arms) * len(tasks), compile_s=1.0, init_s=0.1, wall_s=3.0,
                     environment={"initjax": "0", "jax": "0", "flax": "0", "optax": "0", "python": "3.11",
                                  "backend": "cpu", "devices": "1 x cpu", "git commit": "abc", "date": "today"},
                     command="python -m bench run toy")


@pytest.fixture(scope="module")
def toy():
    results = _results({"a": {"he": 0.95, "glorot": 0.90, "zeros": 0.10}, "b": {"he": 0.80, "glorot": 0.82,
                                                                                "zeros": 0.11}})
    return results, _record(results), analyse(results, "test_accuracy", settings=FAST)


def test_every_committed_run_record_reads_and_writes_back_field_for_field():
    for path in sorted(REPORTS.glob("*/run.json")):
        payload = {k: v for k, v in json.loads(path.read_text()).items() if k != "sha256"}
        assert list(RunRecord.from_json(payload).to_json().items()) == list(payload.items()), path


def test_a_record_with_an_unknown_or_a_missing_field_is_refused(toy):
    payload = toy[1].to_json()
    with pytest.raises(UserError, match=r"has the field 'colour', which this initjax does not know"):
        RunRecord.from_json({**payload, "colour": "red"})
    with pytest.raises(UserError, match=r"lacks 'tasks': damaged or edited"):
        RunRecord.from_json({k: v for k, v in payload.items() if k != "tasks"})


def test_the_markdown_gives_each_task_its_sections_in_order(toy):
    results, record, analysis = toy
    text = render.markdown(record, analysis)
    headings = [line for line in text.splitlines() if line.startswith("#")]
    task = ["### Comparisons with the best: test accuracy", "### Learning curves", "### How many seeds?"]
    assert headings == ["# initjax report: toy", "## a: m", *task, "## b: m", *task, "## Across tasks (2)"]
    summary_a = text.split("## a: m")[1].split("###")[0]
    ranks = [line.split("|")[2].strip() for line in summary_a.splitlines() if line.startswith("|  ")][1:]
    assert ranks == ["he", "glorot", "zeros"]  # best mean first
    assert text.endswith("[results.csv](results.csv).\n")


def test_a_task_whose_every_run_diverged_says_so_and_compares_nothing(toy):
    results, record, _ = toy
    results = results.copy()
    results.loc[(results["dataset"] == "b") & (results["epoch"] >= 2), ["diverged", "test_accuracy"]] = [True, np.nan]
    analysis = analyse(results, "test_accuracy", settings=FAST)
    text = render.markdown(record, analysis)
    b = text.split("## b: m")[1]
    assert "**Every run of this task diverged**" in b and "### Comparisons" not in b
    assert "### Comparisons" in text.split("## b: m")[0]  # task a still compares


def test_latex_and_console_render_one_table_per_task(toy):
    results, record, analysis = toy
    tex = render.latex(record, analysis)
    assert tex.count(r"\begin{table}") == 2
    assert f"tab:initjax-toy-a-{record.run_id()}" in tex and r"\textbf{" in tex
    console = render.console(record, analysis)
    assert console.startswith("a: m, 18 runs") and "\nVerdicts: best: highest mean" in console


def _spread(results: pd.DataFrame, analysis, record) -> dict[str, float]:
    """Per task: the range of the initializers' mean final metric."""
    final = results[results["epoch"] == results["epoch"].max()]
    means = final.groupby(["dataset", "arm"])[analysis.metric].mean()
    return {task: float(m.max() - m.min()) for task, m in means.groupby(level=0)}


def _spread_markdown(view: View) -> list[str]:
    return [f"Spread of the means: {view.analysis.sections['spread'][view.task]:.4f}.", "", *view.image("spread")]


SPREAD = Section(
    "spread", "task", compute=_spread, markdown=_spread_markdown,
    figures=(Figure("spread", "late",
                    lambda results, analysis, task: ("bench.reporting.figures:final_distribution",
                                                     (results[results["dataset"] == task], task, analysis.metric)),
                    inline=True),),
)


def test_a_new_section_with_its_statistic_and_figure_is_one_definition_and_one_entry(toy, tmp_path):
    results, record, _ = toy
    sections = [*SECTIONS[:-1], SPREAD, SECTIONS[-1]]
    analysis, files = report.write(tmp_path, results, record, ["md", "png"], statistic="mean", sections=sections)
    final = results[results["epoch"] == 3]
    for task in ("a", "b"):
        means = [final[(final["dataset"] == task) & (final["arm"] == arm)]["test_accuracy"].to_numpy().mean()
                 for arm in ("he", "glorot", "zeros")]
        assert analysis.sections["spread"][task] == pytest.approx(max(means) - min(means))
    text = (tmp_path / "report.md").read_text()
    assert text.count("Spread of the means: ") == 2  # once per task, after its own sections
    assert text.index("Spread of the means: ") > text.index("### How many seeds?")
    assert "![b-spread-test_accuracy](figures/b-spread-test_accuracy.png)" in text
    assert (tmp_path / "figures" / "b-spread-test_accuracy.png").is_file()
    assert tmp_path / "figures" / "b-spread-test_accuracy.png" in files


def test_a_conv_nets_throughput_counts_xlas_flops_and_an_mlps_six_per_parameter():
    from bench.experiments.tasks import _rates
    from bench.reporting.describe import throughput

    mlp = _rates(seed_epochs=10, n_train=1000, flops_per_example=6.0 * 5000, seconds=2.0)
    assert mlp["train_gflops"] == pytest.approx(10 * 1000 * 6 * 5000 / 2.0 / 1e9)
    conv = _rates(seed_epochs=10, n_train=1000, flops_per_example=2.6e7, seconds=2.0)
    assert conv["train_gflops"] == pytest.approx(10 * 1000 * 2.6e7 / 2.0 / 1e9)
    base = dict(model="m", runs=4, compile_s=1.0, train_s=2.0, init_s=0.1, n_params=5000)
    assert throughput(TaskRecord(**base, **mlp)).endswith("GFLOP/s of training at 6 x 5,000 params per example).")
    line = throughput(TaskRecord(**base, **conv, flops_per_example=2.6e7))
    assert line.endswith("130 GFLOP/s of training at 26 MFLOP per example (XLA's count)).")
    record = TaskRecord(**base, **conv, flops_per_example=2.6e7)
    assert TaskRecord.from_json(record.to_json(), "t") == record  # written and read back


def _depth_series(optima: dict[str, dict[int, float]], seeds: int = 8) -> tuple[pd.DataFrame, RunRecord]:
    """Epochs 0-1 of ResMLPs of width 16 at each depth under each parameterization, trained over 8 learning rates a
    factor 2 apart: the final training loss a parabola in log2 lr around ``optima[p][depth]``, per-seed offsets."""
    rng = np.random.default_rng(2)
    rows, tasks = [], []
    for p, by_depth in optima.items():
        for depth, optimum in by_depth.items():
            name = f"{p}-{depth}"
            tasks.append({"name": name, "label": name, "dataset": "digits", "model": "resmlp", "hidden": [16] * depth,
                          "model_args": {"parameterization": p, "base_width": 16, "base_depth": 2}})
            for seed in range(seeds):
                offset = rng.normal(0, 0.01)
                for log2_lr in range(-12, -4):
                    final = 0.5 + 0.04 * (log2_lr - optimum) ** 2 + offset + rng.normal(0, 0.004)
                    for epoch, loss in ((0, 2.3), (1, final)):
                        rows.append({"dataset": name, "model": "m", "arm": f"lecun_normal lr={2.0 ** log2_lr:g}",
                                     "initializer": "lecun_normal", "lr": 2.0 ** log2_lr, "seed": seed,
                                     "epoch": epoch, "train_loss": loss, "test_loss": loss,
                                     "test_accuracy": 1 - loss / 3, "diverged": False})
    results = pd.DataFrame(rows)
    record = _record(results)
    return results, record.replace(experiment={**record.experiment, "tasks": tasks})


def _hand_transfer(verdict: str, undecided: bool = False):
    """A two-depth family drawn by hand: loss curves over 4 rates, each depth's best rate with its interval."""
    from bench.analysis import transfer

    lrs = np.arange(-9.0, -5.0)
    return transfer.Transfer(
        sizes=(2, 8), tasks={2: "a-2", 8: "a-8"}, best={2: (-7.0, -7.5, -6.5), 8: (-8.0, -8.5, -7.5)},
        best_loss={2: 0.1, 8: 0.2}, n_seeds=8, log2_lrs=lrs, axis="depth",
        shift={"estimate": -1.0, "low": -1.5, "high": -0.5, "verdict": verdict, "undecided": undecided},
        curves={2: 0.1 + (lrs + 7) ** 2, 8: 0.2 + (lrs + 8) ** 2})


@pytest.mark.parametrize("families, shape", [(1, (1, 1)), (4, (1, 4)), (5, (2, 3)), (6, (2, 3))])
def test_the_transfer_figure_puts_families_in_rows_of_three_past_four(families, shape):
    """One panel per family in one row up to four, else rows of three (the rest left blank); a verdict the resamples
    cannot settle keeps the report's § in its panel's title."""
    from bench.reporting import figures

    found = {f"f{i}": _hand_transfer("moves", undecided=i == 1) for i in range(families)}
    fig = figures.transfer(found, "train_loss")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    rows, cols = shape
    assert len(fig.axes) == rows * cols and len(visible) == families
    assert [ax.get_title() for ax in visible][:2] == ["f0: moves", "f1: moves (§)"][:families]


def test_a_depth_series_gets_its_own_transfer_section_and_figure():
    from bench.analysis import transfer
    from bench.reporting import figures
    from bench.reporting.sections import depth_transfer

    results, record = _depth_series({"mup": {2: -6.0, 8: -8.0}, "completep": {2: -7.0, 8: -7.1}})
    analysis = analyse(results, "train_loss", settings=FAST)
    assert analysis.transfer == {}  # no width series
    found = analysis.sections["depth_transfer"] = depth_transfer.SECTION.compute(results, analysis, record)
    assert list(found) == ["mup", "completep"]
    # the same numbers as the analysis asked along depth directly (its bootstrap is seeded)
    expected = transfer.analyze(results, transfer.families(record.experiment["tasks"], "depth"), axis="depth")
    assert [t.shift for t in found.values()] == [t.shift for t in expected.values()]
    assert found["mup"].shift["verdict"] == "moves" and found["completep"].shift["verdict"] == "stays"
    assert found["mup"].best[8][0] == pytest.approx(-8.0, abs=0.2)
    text = render.markdown(record, analysis)
    section = text[text.index("## Learning-rate transfer across depths"):]
    assert "## Learning-rate transfer across widths" not in text
    shift = 2 ** found["mup"].shift["estimate"]
    assert re.search(rf"\| +8 \| mup-8 +\| [0-9.e-]+ \[[0-9.e-]+, [0-9.e-]+\] +\| +[0-9.]+ \| x{shift:.3g} \[", section)
    assert "| shift from the shallowest [95% CI]" in section and "from the shallowest to the deepest model" in section
    assert r"\caption{Learning-rate transfer across depths." in render.latex(record, analysis)
    console = render.console(record, analysis)
    assert "learning-rate transfer over depth, completep: best lr" in console and "at depth 8" in console
    figure, = depth_transfer.SECTION.figures
    assert figure.kind == "depth-transfer" and figure.has_content(results, analysis, None)
    name, arguments = figure.draw(results, analysis, None)
    drawn = getattr(figures, name)(*arguments)
    assert [t.get_text() for t in drawn.axes[0].get_legend().get_texts()] == ["depth 2", "depth 8"]
