"""Reports of a small real run: markdown, LaTeX, figures, and re-rendering without training."""

import dataclasses
import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from bench import cli
from bench.analysis import outcomes
from bench.experiments import presets
from bench.reporting.analysed import analyse, finished_arms, finished_initializers, settings_of
from bench.reporting.describe import describe_run
from bench.reporting.files import load
from bench.reporting.text import tex_escape


def test_markdown_has_every_section_and_its_figures_exist(run_dir):
    text = (run_dir / "report.md").read_text()
    for heading in ["## synthetic: MLP 20-64-64-1 relu", "## digits: MLP 64-64-64-10 relu",
                    "### Comparisons with the best", "### Learning curves", "### How many seeds?", "| environment |",
                    "## Across tasks (2)", "Friedman statistic", "### Speed: epochs to test accuracy",
                    "### Area under the learning curve: test accuracy"]:
        assert heading in text, heading
    links = [line[line.index("(") + 1:-1] for line in text.splitlines() if line.startswith("![")]
    assert len(links) == 12 and sum("forest" in link for link in links) == 2
    assert sum("time_to_target" in link for link in links) == 2
    for link in links:
        assert (run_dir / link).stat().st_size > 5_000  # a real picture, not an empty file
        assert (run_dir / link).with_suffix(".pdf").exists()


def test_results_files_agree(run_dir):
    csv = pd.read_csv(run_dir / "results.csv")
    assert len(csv) == 2 * 3 * 5 * 4
    pytest.importorskip("pyarrow")
    parquet = pd.read_parquet(run_dir / "results.parquet")
    np.testing.assert_allclose(parquet.test_loss, csv.test_loss, rtol=1e-8)


def test_latex_is_booktabs_with_the_best_in_bold_and_escaped_names(run_dir):
    tex = (run_dir / "report.tex").read_text()
    # per task a summary, the time to target and the areas; and where a pair's curves separate, where
    tables = 6 + tex.count("curves separate: the epochs")
    assert tex.count(r"\toprule") == tables and tex.count(r"\bottomrule") == tables
    assert tex.count(r"\textbf{") == 2  # one best per summary
    assert tex.count(" & best & ") == 6 and "Verdicts: best" in tex  # summary, time, area; verdicts in captions
    assert tex.count("epochs to test accuracy") == 2
    assert "normal(stddev=0.1)" in tex and r"he\_normal" in tex and "he_normal" not in tex.replace(r"he\_normal", "")
    assert tex.count(r"$\Delta$ best (pp)") == 2  # the unit of the column that is not a fraction, in its header


def test_latex_has_a_figure_environment_of_every_figure_drawn_saying_what_its_intervals_include(run_dir):
    tex = (run_dir / "report.tex").read_text()
    assert r"\providecommand{\initjaxfigures}{figures/}" in tex  # a paper may point it elsewhere first
    stems = re.findall(r"\\includegraphics\[width=\\linewidth\]\{\\initjaxfigures (.+?)\}", tex)
    drawn = {p.stem for p in (run_dir / "figures").iterdir()}
    assert sorted(stems) == sorted(drawn) and len(drawn) >= 10  # 4 per task and 2 across tasks, each once
    assert tex.count(r"\begin{figure}") == tex.count(r"\end{figure}") == len(stems)
    labels = re.findall(r"\\label\{(fig:[^}]+)\}", tex)
    assert len(set(labels)) == len(stems)
    curves = tex.split("digits-curves-test_accuracy}")[1].split(r"\end{figure}")[0]
    assert "over seeds, the test set held fixed" in curves and "95\\%" in curves


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no LaTeX engine (pdflatex) on this machine")
def test_latex_compiles(run_dir, tmp_path):
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\\usepackage{booktabs}\\usepackage{graphicx}\\usepackage[utf8]{inputenc}"
                   f"\\newcommand{{\\initjaxfigures}}{{{run_dir / 'figures'}/}}\\begin{{document}}"
                   f"\\input{{{run_dir / 'report.tex'}}}\\end{{document}}")
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", doc.name], cwd=tmp_path, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-2000:]


def test_report_command_rerenders_without_training(run_dir, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    before = (copy / "results.csv").read_bytes()
    assert (
        cli.main(["report", str(copy), "--format", "md,tex", "--metric", "test_loss", "--baseline", "he_normal"]) == 0
    )
    text = (copy / "report.md").read_text()
    assert "### Comparisons with the best: test loss" in text
    table = text.split("### Comparisons with the best")[1].split("\n\n")[1].splitlines()[2:]
    vs = {row.split("|")[1].strip(): row.split("|")[4].strip() for row in table}
    assert len(vs) == 3 and vs["glorot_uniform"] == vs["normal(stddev=0.1)"] == "he_normal"  # vs the baseline
    assert vs["he_normal"] != "he_normal"  # the baseline itself against the best of the others
    assert (copy / "results.csv").read_bytes() == before
    assert "synthetic" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["report", "/nonexistent/run"], "/nonexistent/run is not a folder of results"),
        (["report", "{run}/figures"], "results.csv not found"),
        (["report", "{run}", "--metric", "f1"], "unknown metric 'f1'"),
        (["report", "{run}", "--baseline", "zeros"], "baseline 'zeros' is not among"),
        (["report", "{run}", "--format", "docx"], "unknown report format 'docx'"),
        (["report", "{run}", "--margin", "-0.1"], "--margin must be >= 0"),
        (["calibrate", "{run}", "--reps", "2"], "--reps must be from 10 to 100,000"),
        (["calibrate", "{run}", "--metric", "f1"], "unknown metric 'f1'"),
    ],
)
def test_report_command_errors(run_dir, args, message, capsys):
    assert cli.main([a.format(run=run_dir) for a in args]) == 2
    assert message in capsys.readouterr().err


def test_newer_or_damaged_run_files_are_refused_by_name(run_dir, tmp_path, capsys):
    import json

    from bench import store

    for name, mangle, message in [
        ("newer", lambda m: {**m, "format": 99}, "has results format 99"),  # a newer initjax's, checksum and all
        ("edited", lambda m: {**m, "runs": m["runs"] + 1}, "was edited or is damaged (its checksum does not match"),
        ("unsigned", lambda m: {k: v for k, v in m.items() if k != "sha256"}, "has no checksum"),
        ("damaged", None, "run.json is damaged"),
    ]:
        copy = tmp_path / name
        shutil.copytree(run_dir, copy)
        meta = json.loads((copy / "run.json").read_text())
        if name == "newer":
            store.write_json_verified(copy / "run.json", mangle(meta))
        else:
            (copy / "run.json").write_text(json.dumps(mangle(meta)) if mangle else '{"format": 1, "experi')
        assert cli.main(["report", str(copy)]) == 2
        err = capsys.readouterr().err
        assert message in err and str(copy / "run.json") in err and err.count("\n") == 1


def _as_if_run(folder, results):
    """Writes ``results`` as a run would have (its checksum in run.json, and run.json's own): other runs, not an
    edit."""
    import hashlib

    from bench import store

    text = results.to_csv(index=False)
    (folder / "results.csv").write_text(text)
    meta = store.read_json_verified(folder / "run.json", "")
    store.write_json_verified(folder / "run.json",
                              {**meta, "results_sha256": hashlib.sha256(text.encode()).hexdigest()})


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda text: text[: text.rstrip("\n").rindex("\n") + 1],
            r"lacks row dataset=digits, arm=normal\(stddev=0.1\), "
            r"seed=4, epoch=3 \(119 rows; run.json describes 120\)",
        ),
        (
            lambda text: text.replace("glorot_uniform", "glorot_unifrom", 1),
            "has the arm 'glorot_unifrom', which run.json does not list",
        ),
        (lambda text: text.replace(",3,", ",2,", 1), "has the row .* twice"),
        (lambda text: text.replace("synthetic", "synth", 1), "has the task 'synth'"),
    ],
)
def test_a_results_table_that_does_not_match_its_run_is_refused(run_dir, tmp_path, capsys, edit, message):
    copy = tmp_path / "edited"
    shutil.copytree(run_dir, copy)
    text = (copy / "results.csv").read_text()
    (copy / "results.csv").write_text(edit(text))
    assert cli.main(["report", str(copy)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "results.csv" in err
    assert re.search(message, err), err
    _as_if_run(copy, pd.read_csv(copy / "results.csv"))  # even with a matching checksum: the structure is checked
    assert cli.main(["report", str(copy)]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_an_edited_number_is_caught_by_the_checksum(run_dir, tmp_path, capsys):
    copy = tmp_path / "edited"
    shutil.copytree(run_dir, copy)
    results = pd.read_csv(copy / "results.csv", dtype=str, keep_default_na=False)
    results.loc[len(results) - 1, "test_accuracy"] = "0.99"
    results.to_csv(copy / "results.csv", index=False)
    assert cli.main(["report", str(copy)]) == 2
    assert "results.csv was changed after the run wrote it" in capsys.readouterr().err


def test_tex_escape():
    assert tex_escape("a_b%c&d#e$f{g}") == r"a\_b\%c\&d\#e\$f\{g\}"


def test_rerendering_gives_byte_identical_files(run_dir, tmp_path):
    copy = tmp_path / "again"
    shutil.copytree(run_dir, copy)
    assert cli.main(["report", str(copy)]) == 0
    # the first task's figures of its runs alone were drawn while the second trained (report.draw_early)
    for name in ["report.md", "report.tex", "results.csv", "figures/synthetic-curves-test_accuracy.pdf",
                 "figures/synthetic-final-test_accuracy.png", "figures/synthetic-wins-test_accuracy.png",
                 "figures/digits-wins-test_accuracy.png", "figures/digits-forest-test_accuracy.png"]:
        assert (copy / name).read_bytes() == (run_dir / name).read_bytes(), name


def test_results_written_before_the_arm_column_read_back_and_render_the_same_report(run_dir, tmp_path, report_run):
    """results.csv of older runs named arms in ``initializer``: loaded, ``arm`` is that column."""
    import hashlib

    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    table = pd.read_csv(old / "results.csv").drop(columns=["arm"]).to_csv(index=False)
    (old / "results.csv").write_text(table)
    meta = json.loads((old / "run.json").read_text())
    meta["results_sha256"] = hashlib.sha256(table.encode()).hexdigest()
    meta["format"] = 1  # written before run.json carried a checksum of its own
    del meta["sha256"]
    (old / "run.json").write_text(json.dumps(meta))
    results, _ = load(old)
    assert list(results.columns[3:5]) == ["arm", "initializer"] and (results["arm"] == results["initializer"]).all()
    assert cli.main(["report", str(old), "--format", "md"]) == 0  # (the figures are another test's)
    assert (old / "report.md").read_text() == (run_dir / "report.md").read_text()
    assert report_run.outcome.summary.columns[2:4].tolist() == ["arm", "initializer"]


def test_the_runs_own_statistics_equal_those_from_its_files_bit_for_bit(run_dir, report_run):
    """The run analyses exactly what it stores (per-example losses as float16 in outcomes.npz), so a report
    rendered by the run and one re-rendered from its files agree in every digit, not just the printed ones."""
    live = report_run.outcome.analysis
    results, record = load(run_dir)
    again = analyse(results, live.metric, None, live.paired, settings_of(record),
                           outcomes.load(run_dir, results))
    assert not live.settings.fixed_test_set and set(again.summary["metric"]) >= {"test_loss", "test_accuracy"}
    pd.testing.assert_frame_equal(again.summary, live.summary, check_exact=True)
    pd.testing.assert_frame_equal(again.comparisons, live.comparisons, check_exact=True)


def test_results_are_read_back_exactly_whatever_pandas_parser_is_the_default(run_dir, monkeypatch):
    """Accuracies k/n written with full precision come back bit for bit; pandas' 'legacy' parser would not."""
    columns = ["test_accuracy", "test_loss", "train_loss"]
    text = pd.read_csv(run_dir / "results.csv", dtype=str)[columns]
    exact = np.vectorize(float)(text.to_numpy())  # Python's float is correctly rounded
    original = pd.read_csv

    def one_ulp_off(*args, **kwargs):  # a parser like pandas 2.x's default, which is off by 1 ulp on some values
        table = original(*args, **kwargs)
        # the float columns by name: on pandas 3.0.6 select_dtypes("float") found none of them
        for c in [c for c in columns if c in table and pd.api.types.is_float_dtype(table[c])]:
            table[c] = np.nextafter(table[c].to_numpy(float), np.inf)
        return table

    monkeypatch.setattr(pd, "read_csv", one_ulp_off)
    assert (pd.read_csv(run_dir / "results.csv")[columns].to_numpy() != exact).all()  # the hazard
    loaded, _ = load(run_dir)
    np.testing.assert_array_equal(loaded[columns].to_numpy(), exact)


def test_calibrate_writes_its_line_into_the_report_and_drops_it_when_stale(run_dir, tmp_path, capsys):
    copy = tmp_path / "calibrated"
    shutil.copytree(run_dir, copy)
    assert cli.main(["calibrate", str(copy), "--seeds", "4,5", "--reps", "10"]) == 0
    out = capsys.readouterr().out
    assert "family-wise error of the verdicts under the null" in out and (copy / "calibration.json").is_file()
    text = (copy / "report.md").read_text()
    assert "| calibration | synthetic (10 resamples a cell)" in text and "![" in text  # figures still linked
    assert "its sampling error is in the intervals of test metrics" in text  # outcomes.npz still used
    assert cli.main(["report", str(copy), "--format", "md", "--fixed-test-set"]) == 0
    assert "conditional on the test set (`--fixed-test-set`)" in (copy / "report.md").read_text()
    assert "was made from other runs, settings or code" in (copy / "report.md").read_text()  # another procedure
    results = pd.read_csv(copy / "results.csv")
    final_row = results.index[results.epoch == results.epoch.max()][0]
    results.loc[final_row, "test_accuracy"] = 0.5  # other runs: the calibration no longer describes them
    _as_if_run(copy, results)
    (copy / "outcomes.npz").unlink()  # (whose per-example outcomes are not these)
    assert cli.main(["report", str(copy), "--format", "md"]) == 0
    assert "was made from other runs, settings or code" in (copy / "report.md").read_text()


def test_a_report_written_elsewhere_keeps_the_calibration_line_its_runs_have(run_dir, tmp_path):
    """`bench report DIR --out OTHER` carries DIR's calibration.json: OTHER's report says what DIR's says, and
    other settings make it the "rerun calibrate" line there as they do in place."""
    calibrated = tmp_path / "calibrated"
    shutil.copytree(run_dir, calibrated)
    assert cli.main(["calibrate", str(calibrated), "--seeds", "4", "--reps", "10"]) == 0

    def calibration_row(folder):
        return [line for line in (folder / "report.md").read_text().splitlines() if line.startswith("| calibration")]

    assert len(calibration_row(calibrated)) == 1 and "10 resamples a cell" in calibration_row(calibrated)[0]
    assert cli.main(["report", str(calibrated), "--out", str(tmp_path / "other"), "--format", "md"]) == 0
    assert calibration_row(tmp_path / "other") == calibration_row(calibrated)
    assert cli.main(["report", str(calibrated), "--out", str(tmp_path / "wider"), "--format", "md",
                     "--margin", "0.02"]) == 0
    assert "was made from other runs, settings or code" in calibration_row(tmp_path / "wider")[0]
    assert cli.main(["report", str(run_dir), "--out", str(tmp_path / "plain"), "--format", "md"]) == 0
    assert calibration_row(tmp_path / "plain") == [] and not (tmp_path / "plain" / "calibration.json").exists()


def test_a_calibration_goes_stale_when_the_procedures_code_changes(run_dir, tmp_path, monkeypatch):
    """calibration.json measured one version of the verdicts' code; after an edit it no longer describes them."""
    from bench.analysis import calibrate

    copy = tmp_path / "calibrated"
    shutil.copytree(run_dir, copy)
    assert cli.main(["calibrate", str(copy), "--seeds", "4", "--reps", "10"]) == 0
    assert "| calibration | synthetic (10 resamples a cell)" in (copy / "report.md").read_text()
    real = calibrate.files_digest
    monkeypatch.setattr(calibrate, "files_digest", lambda files: real(files[:-1]))  # as if one module changed
    assert cli.main(["report", str(copy), "--format", "md"]) == 0
    assert "was made from other runs, settings or code" in (copy / "report.md").read_text()


def test_rerendering_keeps_divergence_epochs_integers(run_dir, tmp_path):
    """A run marked diverged from epoch 2: re-rendered twice, results.csv keeps '2' (not '2.0') and is stable."""
    copy = tmp_path / "diverged"
    shutil.copytree(run_dir, copy)
    results = pd.read_csv(copy / "results.csv")
    run = (results.dataset == "digits") & (results.initializer == "he_normal") & (results.seed == 0)
    results.loc[run & (results.epoch >= 2), "diverged"] = True
    results["diverged_epoch"] = pd.array([2 if r else None for r in run], dtype="Int64")
    _as_if_run(copy, results)
    assert cli.main(["report", str(copy), "--format", "md,csv"]) == 0
    first = (copy / "results.csv").read_bytes()
    assert cli.main(["report", str(copy), "--format", "md,csv"]) == 0
    assert (copy / "results.csv").read_bytes() == first
    assert b",True,2\n" in first and b",2.0\n" not in first
    assert "`he_normal` 1 of 5 (from epoch 2, median 2)" in (copy / "report.md").read_text()


def _toy_results(means):
    """Final-epoch-3 results of a few initializers, 6 seeds each, accuracies around the given means."""
    rng = np.random.default_rng(0)
    rows = [{"dataset": "toy", "model": "m", "arm": name, "seed": seed, "epoch": epoch,
             "test_accuracy": min(1.0, mean * epoch / 3 + 0.002 * rng.normal()), "diverged": False}
            for name, mean in means.items() for seed in range(6) for epoch in range(4)]
    return pd.DataFrame(rows)


def test_figures_rank_zoom_and_label_only_what_they_draw():
    from bench.reporting import figures

    results = _toy_results({"zeros": 0.10, "b": 0.91, "a": 0.95, "c": 0.93})
    box = figures.final_distribution(results, "toy", "test_accuracy")
    full, zoom = box.axes
    assert [t.get_text() for t in full.get_xticklabels()] == ["a", "c", "b", "zeros"]  # best mean first
    assert [t.get_text() for t in zoom.get_xticklabels()] == ["a", "c", "b"]  # zeros left out of the zoom
    assert zoom.get_ylim()[1] - zoom.get_ylim()[0] < 0.2  # half a point is visible there
    curves = figures.learning_curves(results, "toy", "test_accuracy")
    left, right = curves.axes
    assert [t.get_text() for t in right.get_legend().get_texts()] == ["a", "c", "b"]
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["a", "c", "b", "zeros"]
    assert all(float(tick).is_integer() for tick in left.get_xticks())
    styles = figures.arm_styles([f"normal(stddev=0.{i})" for i in range(12)])
    assert len(set(styles.values())) == 12  # no two alike past ten
    single = figures.final_distribution(_toy_results({"a": 0.95, "b": 0.94}), "toy", "test_accuracy")
    assert len(single.axes) == 1  # nothing far from the best: no zoom panel
    width, height = box.get_size_inches()
    assert width / height < 2.5  # not a strip


def test_the_zoom_of_the_learning_curves_holds_their_bands():
    from bench.reporting import figures

    results = _toy_results({"zeros": 0.10, "b": 0.91, "a": 0.95, "c": 0.93})
    zoom = figures.learning_curves(results, "toy", "test_accuracy").axes[1]
    low, high = zoom.get_ylim()
    for band in zoom.collections:  # fill_between: every vertex of every band inside the axis
        ys = np.concatenate([path.vertices[:, 1] for path in band.get_paths()])
        xs = np.concatenate([path.vertices[:, 0] for path in band.get_paths()])
        assert (ys[xs >= 1] >= low).all() and (ys[xs >= 1] <= high).all()


def test_the_win_matrix_is_in_order_of_wins():
    import pandas as pd

    from bench.reporting import figures

    names = ["c", "a", "b"]
    share = {("a", "b"): 0.9, ("a", "c"): 0.8, ("b", "c"): 0.6}
    matrix = pd.DataFrame(np.nan, index=names, columns=names)
    for (x, y), value in share.items():
        matrix.loc[x, y], matrix.loc[y, x] = value, 1 - value
    ax = figures.win_matrix(matrix, "toy", "test_accuracy").axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert ax.images[0].get_array()[0, 1] == 0.9  # a over b, where a's row meets b's column


def test_the_performance_profile_is_exact_and_zooms_where_the_runs_that_trained_differ():
    from bench.analysis import aggregate
    from bench.reporting import figures

    results = pd.concat([_toy_results({"zeros": 0.10, "b": 0.91, "a": 0.95, "c": 0.93}).assign(dataset=task)
                         for task in ("t1", "t2")])
    profile = aggregate.performance_profile(results, "test_accuracy")
    names, _, scores = aggregate.normalized_scores(results, "test_accuracy")
    pooled = np.concatenate(scores)
    for i, name in enumerate(names):  # at every score a run reached, the share strictly above it, by hand
        for t in pooled[:, i]:
            assert profile.loc[t, name] == pytest.approx(np.mean(pooled[:, i] > t))
    fig = figures.performance_profile(profile, "test_accuracy")
    assert len(fig.axes) == 2
    trained = pooled[:, [names.index(n) for n in "abc"]]
    low, high = fig.axes[1].get_xlim()
    assert low <= trained.min() < low + 0.1 and high == pytest.approx(profile.index.max())


def test_time_to_target_figure_steps_at_every_time_a_run_reached_the_target():
    """With evaluations within epochs the Kaplan-Meier curve steps at quarter epochs, at the share counted by hand."""
    from bench.reporting import figures

    runs = pd.DataFrame({"arm": ["a"] * 4 + ["b"] * 4,
                         "time": [0.25, 1.5, 1.5, np.nan, 2.75, np.nan, np.nan, np.nan]})
    runs["restricted"] = runs["time"].fillna(3.0)
    fig = figures.time_to_target(runs, "toy", "test_accuracy", 0.9, 0, 3.0)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    for arm, times in (("a", [0.25, 1.5, 1.5, np.nan]), ("b", [2.75, np.nan, np.nan, np.nan])):
        x, y = lines[arm].get_xdata(), lines[arm].get_ydata()
        for at in (0.25, 1.5, 2.75, 3.0):
            assert y[np.flatnonzero(x <= at)[-1]] == pytest.approx(np.mean(np.array(times) <= at))
    assert "censored at epoch 3;" in fig.axes[0].get_title()


def test_a_figure_is_laid_out_once_and_drawn_once_per_format(tmp_path, monkeypatch):
    """The PDF keeps the PNG's layout: the bytes matplotlib's own placeholder engine gives, one draw fewer."""
    import io

    from matplotlib.figure import Figure

    from bench.reporting import figures

    results = _toy_results({"zeros": 0.10, "b": 0.91, "a": 0.95})
    reference = figures.final_distribution(results, "toy", "test_accuracy")
    reference.savefig(io.BytesIO(), dpi=150, format="png")
    reference.set_layout_engine("none")
    pdf = io.BytesIO()
    reference.savefig(pdf, dpi=150, format="pdf", metadata={"CreationDate": None})
    draws = []
    drawn = Figure.draw
    monkeypatch.setattr(Figure, "draw", lambda fig, renderer: draws.append(1) or drawn(fig, renderer))
    both = tmp_path / "both"
    figures.save(figures.final_distribution(results, "toy", "test_accuracy"), both, ("png", "pdf"))
    assert len(draws) == 3  # the PNG's layout and its picture, then the PDF's picture alone
    assert both.with_suffix(".pdf").read_bytes() == pdf.getvalue()


def test_the_header_describes_the_runs_done_not_the_presets_text(run_dir):
    text = (run_dir / "report.md").read_text()
    intro = text.split("\n\n")[1]
    assert intro.startswith("Runs: 3 initializers x 5 seeds; adam lr 0.001, batch 32, 3 epochs; tasks: synthetic, "
                            "digits. This is the `default` preset with initializers, seeds, train changed")
    shipped = presets.get("default")
    record = presets.shipped("default")
    assert describe_run(shipped.record(), record) == shipped.description
    older = json.loads(json.dumps(dataclasses.asdict(shipped), default=str))  # a run.json before task records
    assert describe_run(older, record) == shipped.description
    assert describe_run(shipped.record()).startswith("Runs: 8 initializers x 32 seeds")  # of no preset


def test_the_calibration_hashes_every_module_of_its_procedure():
    """calibrate.PROCEDURE is calibrate.py and every bench.analysis module it imports, transitively."""
    import ast
    from pathlib import Path

    from bench.analysis import calibrate

    folder = Path(calibrate.__file__).parent
    seen, todo = set(), ["calibrate"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in ast.walk(ast.parse((folder / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "bench.analysis":
                todo += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bench.analysis."):
                todo.append(node.module.rsplit(".", 1)[1])
    assert seen == set(calibrate.PROCEDURE)


def test_the_figures_drawn_before_the_statistics_count_finished_runs_as_the_comparisons_do():
    results = _toy_results({"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6})
    last = results["epoch"] == 3
    results.loc[results["arm"] == "b", "diverged"] = True  # every run of b
    results.loc[(results["arm"] == "c") & (results["seed"] < 5) & last, "diverged"] = True  # all but one of c
    results.loc[(results["arm"] == "d") & last, "test_accuracy"] = np.nan  # d: no finite final metric
    analysis = analyse(results, "test_accuracy")
    assert finished_arms(results, "test_accuracy", "toy") == finished_initializers(analysis, "toy") == 2
    results["diverged"] = True
    assert finished_arms(results, "test_accuracy", "toy") == 0


def test_a_report_refused_for_its_options_draws_no_figure(run_dir, tmp_path, capsys):
    out = tmp_path / "refused"
    assert cli.main(["report", str(run_dir), "--out", str(out), "--baseline", "zeros"]) == 2
    assert "baseline 'zeros' is not among" in capsys.readouterr().err
    assert not list(out.rglob("*.png")) and not list(out.rglob("*.pdf"))


def test_a_report_can_compare_trimmed_means_and_says_so(run_dir, tmp_path):
    out = tmp_path / "trimmed"
    assert cli.main(["report", str(run_dir), "--out", str(out), "--format", "md", "--statistic", "trimmed"]) == 0
    text = (out / "report.md").read_text()
    assert "20% trimmed means of the paired differences (Yuen's standard errors)" in text
    assert "trimmed means of the paired" not in (run_dir / "report.md").read_text()


def test_the_record_times_the_draws_apart_from_the_first_evaluation(run_dir):
    """``draw_s`` is the part of ``init_s`` spent drawing the initial states (the rest evaluates them at epoch 0),
    per task and in total, and the header says both; a record from before it was measured keeps its old line."""
    from bench.reporting.record import RunRecord
    from bench.reporting.sections import header

    record = json.loads((run_dir / "run.json").read_text())
    for name, task in record["tasks"].items():
        assert 0 < task["draw_s"] <= task["init_s"], name
    assert record["draw_s"] == pytest.approx(sum(task["draw_s"] for task in record["tasks"].values()))
    first = record["init_s"] - record["draw_s"]
    assert f"initialization {record['draw_s']:.1f} s, first evaluation {first:.1f} s)" in (
        run_dir / "report.md").read_text()
    older = RunRecord.from_json({k: v for k, v in record.items() if k not in ("sha256", "draw_s")})
    assert older.draw_s is None
    assert header.wall_time(older).endswith(f"initialization and first evaluation {record['init_s']:.1f} s)")
