"""Runs trained elsewhere (``bench.experiments.external``, ``bench analyze``): the suite's own runs read back give
the suite's numbers, the intervals and differences match independent computations, and every bad table is refused
in one line before anything is written."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bench
from bench import cli
from bench.analysis import outcomes
from bench.errors import UserError
from bench.reporting.analysed import analyse, settings_of
from bench.reporting.files import load
from bench.reporting.sections import tuning
from bench.reporting.sections.summary import summary_table

KEYS = ["dataset", "arm"]
SUMMARY = ["runs", "diverged", "mean", "mean_low", "mean_high", "std", "iqm"]
VERDICTS = ["verdict", "vs", "diff", "low", "high", "to_best_low", "to_best_high", "p", "d_z", "win_rate"]


def _table(analysis) -> pd.DataFrame:
    rows = analysis.summary[analysis.summary["metric"] == analysis.metric][KEYS + SUMMARY]
    return rows.merge(analysis.comparisons[KEYS + VERDICTS], on=KEYS).sort_values(KEYS).reset_index(drop=True)


def test_the_suites_own_runs_read_back_give_the_suites_numbers(report_run):
    """The suite's run as a table of (task, model, arm, seed, epoch, accuracy) rows: the same summary and verdicts,
    number for number, as the suite's analysis of that run conditional on its test set, and the same summary table
    in the report."""
    results, _ = load(report_run.folder)
    own = analyse(results, "test_accuracy", None, True)
    table = results[["dataset", "model", "arm", "seed", "epoch", "test_accuracy"]]
    read = bench.analyze(table, arm="arm", seed="seed", metric="test_accuracy", task="dataset", model="model",
                         epoch="epoch", paired=True)
    pd.testing.assert_frame_equal(_table(own), _table(read.analysis))
    for task in ("synthetic", "digits"):  # the suite's table also shows the test loss, which was not read back
        shown = summary_table(own, task)
        shown = shown[[c for c in shown.columns if not c.startswith("test loss")]].reset_index(drop=True)
        pd.testing.assert_frame_equal(shown, summary_table(read.analysis, task).reset_index(drop=True))


def test_per_example_outcomes_read_back_give_the_suites_intervals_with_the_test_set(report_run, tmp_path):
    """The suite's run and its per-example outcomes (outcomes.npz) as two long tables, or the runs' table and an
    .npz of arrays: the same summary and verdicts, number for number, as the suite's report, whose intervals count
    the test set's sampling error."""
    results, _ = load(report_run.folder)
    stored = outcomes.load(report_run.folder, results)
    own = analyse(results, "test_accuracy", None, True, test_outcomes=stored)
    long = pd.DataFrame([{"dataset": task, "arm": arm, "seed": seed, "example": e,
                          "correct": int(item["correct"][i, j, e]), "loss": item["loss"][i, j, e]}
                         for task, item in stored.items() for i, arm in enumerate(item["names"])
                         for j, seed in enumerate(item["seeds"]) for e in range(item["correct"].shape[-1])])
    table = results[["dataset", "model", "arm", "seed", "epoch", "test_accuracy"]]
    read = bench.analyze(table, arm="arm", seed="seed", metric="test_accuracy", task="dataset", model="model",
                         epoch="epoch", paired=True, outcomes=long)
    assert own.test_examples == read.analysis.test_examples and own.test_examples
    pd.testing.assert_frame_equal(_table(own), _table(read.analysis))
    arrays = tmp_path / "outcomes.npz"  # the same as arrays, one correct and loss per task
    first = next(iter(stored.values()))
    np.savez(arrays, arms=np.array(first["names"]), seeds=np.array(first["seeds"]),
             **{f"{task}/{name}": np.asarray(item[name], float) for task, item in stored.items()
                for name in ("correct", "loss")})
    from_arrays = bench.analyze(table, arm="arm", seed="seed", metric="test_accuracy", task="dataset",
                                model="model", epoch="epoch", paired=True, outcomes=arrays)
    pd.testing.assert_frame_equal(_table(own), _table(from_arrays.analysis))
    np.savez(tmp_path / "short.npz", arms=np.array(first["names"][:2]), seeds=np.array(first["seeds"]),
             **{f"{task}/correct": item["correct"] for task, item in stored.items()})
    with pytest.raises(UserError, match=r"short.npz: synthetic/correct has shape \(3, 5, \d+\); give \(arms, seeds"):
        bench.analyze(table, arm="arm", seed="seed", metric="test_accuracy", task="dataset", model="model",
                      epoch="epoch", paired=True, outcomes=tmp_path / "short.npz")
    wrong = long.assign(correct=np.where((long["arm"] == "he_normal") & (long["example"] == 0), 1 - long["correct"],
                                         long["correct"]))
    with pytest.raises(UserError, match="the outcomes of arm 'he_normal', seed 0 give an accuracy of"):
        bench.analyze(table, arm="arm", seed="seed", metric="test_accuracy", task="dataset", model="model",
                      epoch="epoch", paired=True, outcomes=wrong)
    with pytest.raises(UserError, match="has no outcome of example 3; every run needs every example"):
        bench.analyze(table, arm="arm", seed="seed", metric="test_accuracy", task="dataset", model="model",
                      epoch="epoch", paired=True, outcomes=long[~((long["seed"] == 1) & (long["example"] == 3))])


def test_a_grid_read_back_gives_the_suites_tuned_comparison_sensitivity_and_ranking(grid_run):
    """The suite's learning-rate grid as a table of (initializer, lr, seed, epoch, val and test accuracy) rows: the
    same arms, summary, verdicts, tuned comparison, sensitivity and ranking verdict, number for number, as the suite's
    analysis of that run (conditional on its test set); without the validation column nothing is tuned, and the
    report says why."""
    results, record = load(grid_run.folder)
    own = analyse(results, "test_accuracy", None, True, reference=record.reference())
    table = results[["dataset", "model", "initializer", "lr", "seed", "epoch", "val_accuracy", "test_accuracy"]]
    table = table.rename(columns={"lr": "learning_rate"})
    read = bench.analyze(table, arm="initializer", seed="seed", metric="test_accuracy", task="dataset",
                         model="model", epoch="epoch", paired=True, factors=["learning_rate"],
                         validation="val_accuracy", reference={"lr": 1e-3})
    assert read.record.arms == record.arms and read.record.reference() == {"lr": 1e-3}
    pd.testing.assert_frame_equal(_table(own), _table(read.analysis))
    (key, mine), (other_key, theirs) = next(iter(own.tuning.items())), next(iter(read.analysis.tuning.items()))
    assert key == other_key and theirs.ranking is not None
    pd.testing.assert_frame_equal(tuning.heatmap_table(mine, "test_accuracy"),
                                  tuning.heatmap_table(theirs, "test_accuracy"))
    for table_of in (tuning.tuned_table, tuning.sensitivity_table):
        pd.testing.assert_frame_equal(table_of(mine, "test_accuracy", 0.95), table_of(theirs, "test_accuracy", 0.95))
    assert tuning.ranking_sentences(mine, "test_accuracy") == tuning.ranking_sentences(theirs, "test_accuracy")
    untuned = bench.analyze(table.drop(columns="val_accuracy"), arm="initializer", seed="seed",
                            metric="test_accuracy", task="dataset", model="model", epoch="epoch", paired=True,
                            factors=["learning_rate=lr"])
    assert untuned.analysis.tuning == {} and len(untuned.record.arms) == 4
    without = bench.analyze(table, arm="initializer", seed="seed", metric="test_accuracy", task="dataset",
                            model="model", epoch="epoch", paired=True, factors=["learning_rate"],
                            validation="val_accuracy")
    assert next(iter(without.analysis.tuning.values())).ranking is None  # no recipe value: not checked


def test_a_grid_of_scores_is_tuned_on_its_validation_column(tmp_path, capsys):
    """A sweep of a higher-is-better score over a learning rate, from the command line: each initializer tuned on
    its validation score, the better initializer found best, the ranking checked at the recipe's value."""
    rng = np.random.default_rng(3)
    rows = [{"init": init, "config/lr": lr, "run": seed, "bleu": mean + 0.2 * rng.normal(),
             "val_bleu": mean + 0.2 * rng.normal()}
            for init, shift in (("good", 2.0), ("plain", 0.0)) for lr in (1e-4, 1e-3, 1e-2) for seed in range(6)
            for mean in [30 + shift - 3 * abs(np.log10(lr) + 3)]]
    path = tmp_path / "sweep.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    out = tmp_path / "report"
    assert cli.main(["analyze", str(path), "--arm", "init", "--seed", "run", "--metric", "bleu",
                     "--higher-is-better", "--margin", "0.5", "--factor", "config/lr", "--validation", "val_bleu",
                     "--reference", "lr=0.001", "--paired", "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "| grid | lr 0.0001, 0.001, 0.01, crossed with every arm (the recipe's: lr 0.001) |" in report
    assert "**The ranking at lr=0.001 holds when each initializer is tuned.**" in report
    results, record = load(out)
    item = next(iter(analyse(results, "bleu_score", None, True, settings_of(record),
                             reference=record.reference()).tuning.values()))
    assert item.tuned.names == ["good", "plain"] and item.tuned.verdicts == ["best", "worse"]
    assert [item.cube.cells[c] for c in item.tuned.chosen] == [(1e-3,), (1e-3,)]
    assert "Learning curves" not in report and not list((out / "figures").glob("*curves*"))  # final values alone
    assert cli.main(["analyze", str(path), "--arm", "init", "--seed", "run", "--metric", "bleu",
                     "--higher-is-better", "--margin", "0.5", "--factor", "config/lr=lr", "--paired", "--out",
                     str(tmp_path / "untuned"), "--format", "md"]) == 0
    assert tuning.UNTUNED in (tmp_path / "untuned" / "report.md").read_text()
    capsys.readouterr()


def _scores(n_seeds=6, arms=("a", "b", "c"), seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame([{"init": arm, "run": 100 + s, "bleu": 20 + i + rng.normal()}
                         for i, arm in enumerate(arms) for s in range(n_seeds)])


def test_intervals_and_differences_against_independent_computations():
    """Per-arm means with Student t intervals as scipy computes them; each paired difference to the arm it is
    compared with as the mean of the seed-by-seed differences, by hand; unpaired, Welch's standard error."""
    table = _scores()
    paired = bench.analyze(table, arm="init", seed="run", metric="bleu", higher_is_better=True, margin=0.5,
                           paired=True)
    for arm, values in table.groupby("init")["bleu"]:
        row = paired.analysis.summary.set_index("arm").loc[arm]
        low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
        assert (row["mean_low"], row["mean_high"]) == pytest.approx((low, high), rel=1e-12)
    by_run = table.pivot(index="run", columns="init", values="bleu")
    for row in paired.analysis.comparisons.itertuples():
        assert row.diff == pytest.approx((by_run[row.arm] - by_run[row.vs]).mean(), rel=1e-12)
        assert row.n == 6
    assert paired.analysis.comparisons.set_index("arm").loc["c", "verdict"] == "best"
    unpaired = bench.analyze(table, arm="init", seed="run", metric="bleu", higher_is_better=True, margin=0.5)
    welch = stats.ttest_ind(by_run["c"], by_run["b"], equal_var=False)
    row = unpaired.analysis.comparisons.set_index("arm").loc["b"]
    assert row["vs"] == "c" and row["diff"] == pytest.approx((by_run["b"] - by_run["c"]).mean(), rel=1e-12)
    assert row["d_z"] != paired.analysis.comparisons.set_index("arm").loc["b", "d_z"] or welch.pvalue < 1


def test_unpaired_arms_may_have_their_own_seeds_and_counts():
    """Runs not shared between arms: each arm its own seeds and count. Each arm's mean is its own runs' (against
    numpy), each pair's interval at its own Welch degrees of freedom (two arms: scipy's Welch interval at 30 and 12
    runs), and the report says how many runs each arm has."""
    rng = np.random.default_rng(5)
    table = pd.concat([pd.DataFrame({"init": "wide", "run": np.arange(30), "bleu": rng.normal(20, 1, 30)}),
                       pd.DataFrame({"init": "narrow", "run": 1000 + 7 * np.arange(12),
                                     "bleu": rng.normal(21, 2, 12)})])
    outcome = bench.analyze(table, **ARGS)
    means = outcome.summary.set_index("arm")["mean"]
    assert means["wide"] == pytest.approx(table[table["init"] == "wide"]["bleu"].mean())
    assert means["narrow"] == pytest.approx(table[table["init"] == "narrow"]["bleu"].mean())
    welch = stats.ttest_ind(table[table["init"] == "narrow"]["bleu"], table[table["init"] == "wide"]["bleu"],
                            equal_var=False).confidence_interval(0.95)
    row = outcome.analysis.comparisons.set_index("arm").loc["narrow"]
    assert (row["low"], row["high"]) == (pytest.approx(welch.low, rel=0.02), pytest.approx(welch.high, rel=0.02))
    assert outcome.record.experiment["source"]["runs_per_arm"] == {"narrow": 12, "wide": 30}
    assert outcome.record.runs == 42
    with pytest.raises(UserError, match="arm .wide. has no run of seed 1000, which other arms ran"):
        bench.analyze(table, **{**ARGS, "paired": True})


def test_a_nan_run_is_diverged_when_said_and_scored_as_the_worst():
    table = _scores()
    table.loc[(table["init"] == "c") & (table["run"] == 103), "bleu"] = np.nan
    with pytest.raises(UserError, match=r"row 16: bleu \(nan\) is NaN or infinite; if that run diverged, say "
                                        "nan_diverged=True"):
        bench.analyze(table, arm="init", seed="run", metric="bleu", higher_is_better=True, margin=0.5)
    outcome = bench.analyze(table, arm="init", seed="run", metric="bleu", higher_is_better=True, margin=0.5,
                            nan_diverged=True)
    summary = outcome.analysis.summary.set_index("arm")
    assert summary.loc["c", "diverged"] == 1 and summary.loc["a", "diverged"] == 0
    assert outcome.results.query("arm == 'c' and seed == 3")["diverged"].all()


def test_rliable_style_scores_are_the_same_as_their_table():
    rng = np.random.default_rng(1)
    scores = {"a": rng.normal(size=(5, 3)), "b": rng.normal(0.5, size=(5, 3))}
    got = bench.analyze_scores(scores, higher_is_better=True, margin=0.1, tasks=["x", "y", "z"], paired=True)
    table = pd.DataFrame([{"arm": arm, "seed": i, "task": t, "score": values[i, j]} for arm, values in scores.items()
                          for i in range(5) for j, t in enumerate("xyz")])
    want = bench.analyze(table, arm="arm", seed="seed", metric="score", task="task", higher_is_better=True,
                         margin=0.1, paired=True)
    pd.testing.assert_frame_equal(_table(got.analysis), _table(want.analysis))
    with pytest.raises(UserError, match="different task counts"):
        bench.analyze_scores({"a": np.zeros((3, 2)), "b": np.zeros((3, 3))}, margin=0.1)


def test_the_command_writes_a_report_that_bench_report_rerenders_unpaired(tmp_path, capsys):
    csv = tmp_path / "mine.csv"
    table = _scores(n_seeds=4)
    table["epoch_n"] = 3
    pd.concat([table.assign(epoch_n=1, bleu=table["bleu"] - 5), table]).to_csv(csv, index=False)
    out = tmp_path / "report"
    assert cli.main(["analyze", str(csv), "--arm", "init", "--seed", "run", "--metric", "bleu", "--epoch", "epoch_n",
                     "--higher-is-better", "--margin", "0.5", "--out", str(out), "--format", "md,csv"]) == 2
    assert "no run has epoch 2 of epoch_n (1..3)" in capsys.readouterr().err
    assert not out.exists()
    assert cli.main(["analyze", str(csv), "--arm", "init", "--seed", "run", "--metric", "bleu", "--out", str(out)]) == 2
    assert "say which way the metric 'bleu' is better: --higher-is-better or --lower-is-better" in \
        capsys.readouterr().err  # the library's message in the command's flags
    pd.concat([table.assign(epoch_n=e, bleu=table["bleu"] - 3 + e) for e in (1, 2, 3)]).to_csv(csv, index=False)
    assert cli.main(["analyze", str(csv), "--arm", "init", "--seed", "run", "--metric", "bleu", "--epoch", "epoch_n",
                     "--higher-is-better", "--margin", "0.5", "--out", str(out), "--format", "md,csv"]) == 0
    report = (out / "report.md").read_text()
    assert "unpaired (Welch differences" in report and "read from" in report and "mine.csv" in report
    results, record = load(out)
    assert record.external and not record.paired() and record.first_epoch() == 1
    assert sorted(results["epoch"].unique()) == [1, 2, 3] and record.experiment["source"]["seeds"] == [100, 101,
                                                                                                       102, 103]
    first = _table(bench.experiments.external.analyze(csv, arm="init", seed="run", metric="bleu", epoch="epoch_n",
                                                       higher_is_better=True, margin=0.5).analysis)
    assert cli.main(["report", str(out), "--format", "md"]) == 0
    assert "unpaired (Welch differences" in (out / "report.md").read_text()
    assert cli.main(["calibrate", str(out), "--seeds", "3", "--reps", "10"]) == 0  # the unpaired procedure's
    assert "| calibration | mine (10 resamples a cell)" in (out / "report.md").read_text()
    assert first["verdict"].tolist() == load_verdicts(out)


def load_verdicts(folder) -> list:
    """The verdicts of the report in ``folder``, re-analysed from its files as ``bench report`` reads them."""
    results, record = load(folder)
    return _table(analyse(results, "bleu_score", None, record.paired(), settings_of(record)))["verdict"].tolist()


def _bad(table: pd.DataFrame, **changes) -> pd.DataFrame:
    table = table.copy()
    for column, value in changes.items():
        table[column] = value
    return table


GOOD = _scores(n_seeds=3)
ARGS = dict(arm="init", seed="run", metric="bleu", higher_is_better=True, margin=0.5)
BAD = {
    "no arm column": (GOOD.drop(columns="init"), {}, "has no column 'init' (the arm)"),
    "no seed column": (GOOD.drop(columns="run"), {}, "has no column 'run' (the seed)"),
    "no metric column": (GOOD.drop(columns="bleu"), {}, "has no column 'bleu' (the metric)"),
    "no task column": (GOOD, {"task": "dataset"}, "has no column 'dataset' (the task)"),
    "no epoch column": (GOOD, {"epoch": "step"}, "has no column 'step' (the epoch)"),
    "one column two roles": (GOOD, {"seed": "init"}, "the column 'init' is named as both the arm and the seed"),
    "text metric": (_bad(GOOD, bleu=["x"] + list(GOOD["bleu"][1:])), {}, "row 1: bleu ('x') is not a number"),
    "nan metric": (_bad(GOOD, bleu=[np.nan] + list(GOOD["bleu"][1:])), {}, "row 1: bleu (nan) is NaN or infinite"),
    "inf metric": (_bad(GOOD, bleu=list(GOOD["bleu"][:-1]) + [np.inf]), {}, "row 9: bleu (inf) is NaN or infinite"),
    "missing arm": (_bad(GOOD, init=[None] + list(GOOD["init"][1:])), {}, "row 1: init has no arm"),
    "blank arm": (_bad(GOOD, init=[" "] + list(GOOD["init"][1:])), {}, "row 1: init has no arm"),
    "missing seed": (_bad(GOOD, run=[np.nan] + list(GOOD["run"][1:])), {}, "row 1: run has no seed"),
    "duplicate run": (_bad(GOOD, run=[100, 100] + list(GOOD["run"][2:])), {}, "rows 1 and 2 are the same run"),
    "one arm": (GOOD[GOOD["init"] == "a"], {}, "names one arm ('a'); a comparison needs two or more"),
    "one seed": (GOOD[GOOD["run"] == 100], {}, "arm 'a' has 1 run; every arm needs 2 seeds or more"),
    "paired seeds not shared": (_bad(GOOD, run=list(GOOD["run"][:-1]) + [999]), {"paired": True},
                                "arm 'a' has no run of seed 999, which other arms ran"),
    "one run of an unpaired arm": (GOOD.iloc[:-2], {}, "arm 'c' has 1 run; every arm needs 2 seeds or more"),
    "task without an arm": (_bad(GOOD, task=["t1"] * 3 + ["t2"] * 6), {"task": "task"},
                            "task 't1' has no run of arm 'b'; every task needs every arm"),
    "negative epoch": (_bad(GOOD, ep=-1), {"epoch": "ep"}, "row 1: ep (-1) is not an epoch"),
    "fractional epoch": (_bad(GOOD, ep=1.5), {"epoch": "ep"}, "row 1: ep (1.5) is not an epoch"),
    "a run short of an epoch": (pd.concat([GOOD.assign(ep=0), GOOD.assign(ep=1).iloc[1:]]), {"epoch": "ep"},
                                "the run of arm 'a', seed 100 lacks epoch 1"),
    "direction not said": (GOOD, {"higher_is_better": None}, "say which way the metric 'bleu' is better"),
    "direction against the name": (GOOD.rename(columns={"bleu": "val_loss"}), {"metric": "val_loss"},
                                   "'val_loss' is named as lower-is-better but was said to be higher-is-better"),
    "accuracy in percent": (GOOD.rename(columns={"bleu": "top1_accuracy"}),
                            {"metric": "top1_accuracy", "margin": None}, "is not an accuracy in [0, 1]"),
    "negative loss": (_bad(GOOD, bleu=-GOOD["bleu"]).rename(columns={"bleu": "nll_loss"}),
                      {"metric": "nll_loss", "higher_is_better": None}, "is outside what a loss can be"),
    "no margin for a score": (GOOD, {"margin": None}, "give the equivalence margin of 'bleu' in its own units"),
    "two models a task": (_bad(GOOD, net=["m1"] + ["m2"] * 8), {"model": "net"},
                          "has the models 'm1' and 'm2' in net; one model a task"),
    "empty": (GOOD.iloc[:0], {}, "holds no runs"),
    "a factor not tuned over": (GOOD.assign(width=64), {"factors": ["width"]},
                                "the grid's factors are a learning rate, weight decay, momentum or init scale"),
    "two columns one factor": (GOOD.assign(lr=0.1, eta=0.1), {"factors": ["lr", "eta"]},
                               "the columns 'lr' and 'eta' are both the lr factor"),
    "text factor value": (_bad(GOOD, lr=["fast"] + [0.1] * 8), {"factors": ["lr"]},
                          "row 1: lr ('fast') is not a number (a value of the lr factor)"),
    "a cell missing": (GOOD.assign(lr=[0.1] * 3 + [0.01] * 3 + [0.1] * 3), {"factors": ["lr"]},
                       "arm 'a' has no run at lr=0.01, which other arms ran; every arm needs every cell"),
    "reference off the grid": (GOOD.assign(lr=0.1), {"factors": ["lr"], "reference": {"lr": 0.3}},
                               "not a value of the grid's lr (0.1)"),
    "reference without a grid": (GOOD, {"reference": {"lr": 0.1}}, "is a grid's recipe value; give the grid's columns"),
    "validation NaN alone": (_bad(GOOD, val=[np.nan] + [1.0] * 8), {"validation": "val", "nan_diverged": True},
                             "row 1: val (nan) is NaN or infinite where bleu is a number"),
    "no validation column": (GOOD, {"validation": "val"}, "has no column 'val' (the validation)"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_a_bad_table_is_refused_in_one_line_and_nothing_written(tmp_path, case):
    table, changes, message = BAD[case]
    out = tmp_path / "report"
    with pytest.raises(UserError) as error:
        bench.analyze(table, **{**ARGS, **changes}, out=out)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not out.exists()


@pytest.mark.parametrize(("name", "content", "message"), [
    ("runs.txt", "a,b\n", "read from a .csv, .parquet or .jsonl file"),
    ("absent.csv", None, "does not exist"),
    ("broken.jsonl", "{not json\n", "cannot be read as jsonl"),
])
def test_a_bad_file_is_refused_in_one_line(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message):
        bench.analyze(path, **ARGS)


def test_rows_are_numbered_as_the_file_shows_them(tmp_path):
    """A CSV's first run is on line 2 (under its header); the error names the line a user opens."""
    path = tmp_path / "runs.csv"
    _bad(GOOD, bleu=list(GOOD["bleu"][:4]) + ["oops"] + list(GOOD["bleu"][5:])).to_csv(path, index=False)
    with pytest.raises(UserError, match=r"runs.csv, row 6: bleu \('oops'\) is not a number"):
        bench.analyze(path, **ARGS)
    jsonl = tmp_path / "runs.jsonl"
    GOOD.to_json(jsonl, orient="records", lines=True)
    assert bench.analyze(jsonl, **ARGS).analysis.comparisons["n"].tolist() == [3, 3, 3]


def _write_tensorboard(folder, table: pd.DataFrame) -> None:
    """``table`` (init, run, epoch, acc) as TensorBoard scalars, one run folder ``{init}/seed{run}`` each."""
    import time

    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    for (init, run), rows in table.groupby(["init", "run"]):
        writer = EventFileWriter(str(folder / init / f"seed{run}"))
        for row in rows.itertuples():
            value = Summary.Value(tag="test/accuracy", simple_value=row.acc)
            writer.add_event(Event(step=row.epoch, wall_time=time.time(), summary=Summary(value=[value])))
        writer.close()


def test_a_tensorboard_folder_gives_the_report_of_the_same_table(tmp_path, capsys):
    pytest.importorskip("tbparse", reason="TensorBoard logs are read by tbparse: pip install -e '.[tensorboard]'")
    rng = np.random.default_rng(2)
    table = pd.DataFrame([{"init": init, "run": run, "epoch": epoch, "acc": np.float32(base + 0.02 * epoch
                                                                                       + rng.normal(0, 0.01))}
                          for init, base in [("he", 0.8), ("glorot", 0.82), ("zeros", 0.5)]
                          for run in range(4) for epoch in (1, 2, 3)])
    _write_tensorboard(tmp_path / "logs", table)
    out = tmp_path / "report"
    args = ["analyze", str(tmp_path / "logs"), "--arm", "arm", "--seed", "seed", "--epoch", "step",
            "--metric", "test/accuracy", "--out", str(out), "--format", "md,csv"]
    assert cli.main(args) == 2
    assert "needs --layout" in capsys.readouterr().err
    assert cli.main([*args, "--layout", "{arm}/run{seed}"]) == 2
    assert "does not match --layout '{arm}/run{seed}'" in capsys.readouterr().err
    assert cli.main([*args, "--layout", "{arm}/seed{seed}"]) == 0
    results, record = load(out)
    assert "test_accuracy" in results and record.first_epoch() == 1
    table = table.sort_values("init", kind="stable")  # arms in the order the folders are read (the draws follow it)
    from_table = bench.analyze(table.rename(columns={"acc": "test_accuracy"}), arm="init", seed="run",
                               epoch="epoch", metric="test_accuracy", name="logs")
    read = analyse(results, "test_accuracy", None, record.paired(), settings_of(record))
    pd.testing.assert_frame_equal(_table(read), _table(from_table.analysis))
