"""Learning-rate transfer: the interpolated argmin by hand, and the intervals' coverage and the verdicts' error
rates and power measured on simulated loss curves (null: the optimum does not move; shifted: it moves 4x)."""

import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from bench.analysis import transfer

GRID = np.arange(9.0)  # log2 learning rates, a factor 2 apart


def test_argmin_is_the_vertex_of_the_local_parabola():
    parabola = 0.3 * (GRID - 3.3) ** 2 + 1.0
    assert transfer.argmin_log2(GRID, parabola) == pytest.approx(3.3)
    # a curve that is not a parabola: the vertex of the three points around the best, by hand
    curve = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 1.5, 4.0, 6.0, 8.0])  # best at 4; neighbours 2.0 and 1.5
    y0, y1, y2 = 2.0, 1.0, 1.5
    expected = 4.0 + 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)  # the vertex of three equally spaced points
    assert transfer.argmin_log2(GRID, curve) == pytest.approx(expected)
    # the best at an end of the grid stays there; a diverged neighbour (inf, NaN) gives the grid point
    assert transfer.argmin_log2(GRID, GRID) == 0.0 and transfer.argmin_log2(GRID, -GRID) == 8.0
    assert transfer.argmin_log2(GRID, np.where(GRID == 4, np.nan, parabola)) == 3.0
    assert transfer.argmin_log2(GRID, np.where(GRID >= 4, np.inf, parabola)) == 3.0
    batch = np.stack([parabola, 0.3 * (GRID - 6.6) ** 2])  # curves in a batch, each its own
    np.testing.assert_allclose(transfer.argmin_log2(GRID, batch), [3.3, 6.6])


def test_a_rate_where_a_seed_diverged_is_never_the_best():
    losses = np.tile(0.3 * (GRID - 3.0) ** 2, (4, 1))
    losses[2, 3] = np.nan  # one seed diverged at the best rate
    assert transfer.best_log2_lr(GRID, losses) in (2.0, 4.0)


def _simulate(rng, n_seeds, optimum, noise, seed_sd=0.05, curvature=0.05):
    """Final losses `(n_seeds, 9)`: a parabola in log2 lr, a per-seed offset shared by every rate (paired), and
    noise per (seed, rate)."""
    return (curvature * (GRID - optimum) ** 2 + 1.0 + rng.normal(0, seed_sd, (n_seeds, 1))
            + rng.normal(0, noise, (n_seeds, len(GRID))))


def _two_sided(optimum, left, right):
    """A curve ``left (x - v)^2`` below its optimum ``v`` and ``right (x - v)^2`` above it."""
    d = GRID - optimum
    return 1.0 + np.where(d < 0, left, right) * d * d


def test_each_shape_model_finds_the_optimum_of_its_own_shape():
    """The parabola through three points is biased on a curve 3x steeper above its optimum (the review's case); the
    two-sided parabola is exact there, the spline on a cubic, and all three on a parabola."""
    asymmetric = _two_sided(3.3, 0.05, 0.15)
    assert transfer.argmin_two_sided(GRID, asymmetric) == pytest.approx(3.3, abs=0.01)
    assert abs(transfer.argmin_log2(GRID, asymmetric) - 3.3) > 0.15
    cubic = 0.02 * (GRID - 4.2) ** 2 + 0.004 * (GRID - 4.2) ** 3
    x = np.linspace(0, 8, 80001)
    truth = x[np.argmin(0.02 * (x - 4.2) ** 2 + 0.004 * (x - 4.2) ** 3 + 10 * (x > 6.5))]  # its local minimum
    assert transfer.argmin_spline(GRID, np.where(GRID > 6.5, np.inf, cubic)) == pytest.approx(truth, abs=0.02)
    for shape in transfer.SHAPES.values():
        assert shape(GRID, 0.3 * (GRID - 4.6) ** 2) == pytest.approx(4.6, abs=0.01)
        assert shape(GRID, GRID) == 0.0  # the best at the grid's end stays there


def test_the_interval_is_the_union_of_the_shape_models_and_covers_an_asymmetric_optimum():
    rng = np.random.default_rng(11)
    curves = {64: _two_sided(3.3, 0.05, 0.15) + rng.normal(0, 0.002, (16, 9)),
              256: 0.05 * (GRID - 3.3) ** 2 + 1 + rng.normal(0, 0.002, (16, 9))}
    boot = transfer.bootstrap(GRID, curves, n_resamples=500)
    estimate, low, high = transfer.best(boot, 64, 16)
    parts = [transfer.interval(boot[64][s], 16) for s in transfer.SHAPES]
    assert (low, high) == (min(p[0] for p in parts), max(p[1] for p in parts)) and low <= 3.3 <= high
    assert estimate == pytest.approx(np.median(list(boot["estimate"][64].values())))
    moved = transfer.shift(boot, 64, 256, 16)
    assert moved["verdict"] == "stays" and moved["low"] < 0 < moved["high"]  # the shape differs, the optimum not


def test_the_plain_percentile_interval_would_under_cover_and_verdicts_need_eight_seeds():
    """Why the interval is expanded: with 4 seeds the bootstrap distribution is too narrow."""
    rng = np.random.default_rng(7)
    plain = expanded = 0
    for r in range(200):
        boot = transfer.bootstrap(GRID, {64: _simulate(rng, 4, 3.3, 0.03)}, n_resamples=1000, seed=r,
                                  shapes=("parabola",))
        low, high = np.quantile(boot[64]["parabola"], [0.025, 0.975])
        plain += low <= 3.3 <= high
        low, high = transfer.interval(boot[64]["parabola"], 4)
        expanded += low <= 3.3 <= high
    assert plain / 200 < 0.9 and expanded > plain
    boot = transfer.bootstrap(GRID, {64: _simulate(rng, 4, 3.3, 0.03), 128: _simulate(rng, 4, 3.3, 0.03)})
    assert transfer.shift(boot, 64, 128, 4)["verdict"] == "too few seeds"
    with pytest.raises(ValueError, match="same seeds"):
        transfer.bootstrap(GRID, {64: _simulate(rng, 4, 3.3, 0.03), 128: _simulate(rng, 5, 3.3, 0.03)})


def test_an_optimum_on_the_grids_edge_is_seen():
    inside = np.tile(0.3 * (GRID - 3.3) ** 2, (4, 1))
    below = np.tile(0.3 * (GRID + 2.0) ** 2, (4, 1))  # the best rate lies below the grid
    assert not transfer.on_edge(GRID, inside) and transfer.on_edge(GRID, below)
    assert transfer.on_edge(GRID, np.tile(-GRID, (4, 1)))


def test_verdicts_by_hand():
    assert transfer.verdict((0.2, 1.4)) == "moves" and transfer.verdict((-2.0, -0.1)) == "moves"
    assert transfer.verdict((-0.5, 0.9)) == "stays" and transfer.verdict((-0.5, 1.2)) == "inconclusive"
    assert transfer.verdict((0.1, 0.4)) == "stays"  # it moves, by less than the tolerance: equivalence is asked first


def _record(name, p, hidden, data="digits", model="mlp"):
    args = {"parameterization": p, "base_width": 8} if p else {}
    return {"name": name, "label": name, "dataset": data, "model": model, "hidden": hidden, "activation": "relu",
            "model_args": args, "subset": None, "loss": None}


def test_families_are_width_series_under_one_parameterization():
    records = [_record("sp-8", "sp", [8, 8]), _record("sp-32", "sp", [32, 32]), _record("mup-8", "mup", [8, 8]),
               _record("mup-32", "mup", [32, 32]), _record("plain-32", None, [32, 32]),
               _record("ragged", "sp", [32, 16]), _record("sp-deep", "sp", [32, 32, 32]),
               _record("lm-8", "sp", [8], data="markov(vocab=4)", model="transformer"),
               _record("lm-16", "sp", [16], data="markov(vocab=4)", model="transformer")]
    found = transfer.families(records)
    # no parameterization, uneven widths, or a depth seen at one width only: not a width series
    assert set(found) == {"sp-8", "sp-32", "mup-8", "mup-32", "lm-8", "lm-16"}
    assert found["mup-8"] == ("mup", 8) and found["mup-32"] == ("mup", 32)
    # two families under SP: named by their model, depth and data
    assert found["sp-32"] == ("sp (mlp x2, digits)", 32) and found["lm-16"] == ("sp (transformer x1, markov)", 16)


def test_depth_families_are_series_of_block_counts_at_one_width():
    records = [_record(f"{p}-{d}", p, [16] * d, model="resmlp") for p in ("depth_mup", "completep") for d in (2, 4, 8)]
    records += [_record("mup-2", "mup", [16] * 2, model="resmlp"), _record("mup-wide", "mup", [32] * 4, model="resmlp"),
                _record("ragged", "completep", [16, 32], model="resmlp")]
    found = transfer.families(records, axis="depth")
    # one depth at a width (mup), uneven widths: not a depth series
    assert set(found) == {f"{p}-{d}" for p in ("depth_mup", "completep") for d in (2, 4, 8)}
    assert found["completep-8"] == ("completep", 8) and found["depth_mup-2"] == ("depth_mup", 2)
    # the same tasks hold no width series (each depth has one width), and an unknown axis is refused
    assert transfer.families(records) == {}
    with pytest.raises(ValueError, match="unknown axis 'heads'"):
        transfer.families(records, axis="heads")
    twin = [{**r, "name": r["name"] + "'", "dataset": "breast_cancer"} for r in records[:3]]
    named = transfer.families(records[:3] + twin, axis="depth")
    assert named["depth_mup-4"] == ("depth_mup (resmlp width 16, digits)", 4)
    by_loss = [{**r, "name": r["name"] + "'", "loss": "one_hot_squared_error"} for r in records[:3]]
    named = transfer.families(records[:3] + by_loss, axis="depth")  # differing in their loss only
    assert named["depth_mup-4'"] == ("depth_mup (resmlp width 16, digits, one_hot_squared_error)", 4)
    by_option = [{**r, "name": r["name"] + "'", "model_args": {**r["model_args"], "norm": "none"}} for r in records[:3]]
    named = transfer.families(records[:3] + by_option, axis="depth")  # differing in a model option only
    assert named["depth_mup-4"] == ("depth_mup (resmlp width 16, digits), norm=default", 4)
    assert named["depth_mup-4'"] == ("depth_mup (resmlp width 16, digits), norm=none", 4)
    same = [{**r, "name": r["name"] + "'", "activation": "tanh"} for r in records[:3]]  # apart, not in an option
    assert transfer.families(records[:3] + same, axis="depth")["depth_mup-4'"] == (
        "depth_mup (resmlp width 16, digits) #2", 4)


def _final_rows(optima: dict, initializers=("he_normal",), n_seeds=8):
    """Final rows of a width series: per (task, initializer) a parabola in log2 lr around its optimum."""
    rng = np.random.default_rng(1)
    rows = []
    for task, optimum in optima.items():
        for k, init in enumerate(initializers):
            for seed in range(n_seeds):
                offset = rng.normal(0, 0.01)
                for log2_lr in GRID - 12:
                    loss = 1.0 + 0.05 * (log2_lr - optimum - 2 * k) ** 2 + offset + rng.normal(0, 0.005)
                    rows.append({"dataset": task, "model": "m", "arm": f"{init} lr={2 ** log2_lr:g}",
                                 "initializer": init, "lr": 2.0 ** log2_lr, "seed": seed, "epoch": 3,
                                 "train_loss": loss, "diverged": False})
    return pd.DataFrame(rows)


def test_each_initializer_gets_its_own_optimum_and_one_setting_is_asked_for():
    tasks = {"sp-8": ("sp", 8), "sp-32": ("sp", 32)}
    results = _final_rows({"sp-8": -8.0, "sp-32": -10.0}, ("he_normal", "glorot_uniform"))
    found = transfer.analyze(results, tasks, n_resamples=300)
    assert set(found) == {"sp, he_normal", "sp, glorot_uniform"}
    # glorot's curves sit 2 octaves right of he's; both move by 2 octaves
    assert found["sp, he_normal"].best[8][0] == pytest.approx(-8.0, abs=0.15)
    assert found["sp, glorot_uniform"].best[32][0] == pytest.approx(-8.0, abs=0.15)
    assert all(t.shift["verdict"] == "moves" and t.shift["estimate"] == pytest.approx(-2.0, abs=0.2)
               for t in found.values())
    with pytest.raises(ValueError, match="several runs per seed"):
        transfer.curves_of(results, "sp-8", "train_loss")


def test_a_runs_report_shows_each_width_series_best_rates(tmp_path):
    from bench.experiments import experiment_file
    from bench.experiments.runner import run_experiment

    tasks = "".join(f'''
[[tasks]]
data = "digits"
subset = [240, 120]
label = "{p}-{w}"
hidden = [{w}, {w}]
model_args = {{ parameterization = "{p}", base_width = 8 }}
''' for p in ("mup",) for w in (8, 32))
    (tmp_path / "study.toml").write_text(f'''name = "widths"
seeds = 2
initializers = ["lecun_normal"]
[train]
lr = 0.01
batch_size = 60
epochs = 1
[grid]
lr = [0.003, 0.03, 0.3]
{tasks}''')
    outcome = run_experiment(experiment_file.load(tmp_path / "study.toml"), tmp_path / "run", progress=False)
    expected = transfer.analyze(outcome.results, {f"{p}-{w}": (p, w) for p in ("mup",) for w in (8, 32)})
    text = (tmp_path / "run" / "report.md").read_text()
    section = text[text.index("## Learning-rate transfer across widths"):]
    for p in ("mup",):
        t = expected[p]
        row = re.search(rf"\| {p}-32 +\| +([0-9.e-]+) +\| +([0-9.e-]+) +\| x([0-9.e-]+) +\| ([^|]+?) +\|", section)
        assert float(row[1]) == pytest.approx(2 ** t.best[32][0], rel=1e-2)
        assert float(row[2]) == pytest.approx(t.best_loss[32], rel=1e-3)
        assert float(row[3]) == pytest.approx(2 ** t.shift["estimate"], rel=1e-2)
        assert row[4] == "too few seeds (2 < 8)"  # and no interval at 2 seeds
    assert "](figures/across-tasks-transfer-train_loss.png)" in section
    assert (tmp_path / "run" / "figures" / "across-tasks-transfer-train_loss.png").is_file()
    assert "-transfer-" in (tmp_path / "run" / "report.tex").read_text()


def test_a_loss_falling_by_orders_of_magnitude_is_fitted_on_its_logarithm():
    """The mup-transfer MLPs' losses fall from 0.04 to 0.002 and back to 0.01 around the optimum: on that scale a
    spline rang; a curve that moves within a factor 10 keeps its scale."""
    steep = np.exp(0.8 * (GRID - 4.3) ** 2) * 0.002
    flat = 1.0 + 0.05 * (GRID - 4.3) ** 2
    np.testing.assert_allclose(transfer.on_fitting_scale(steep), np.log(steep))
    np.testing.assert_array_equal(transfer.on_fitting_scale(flat), flat)
    losses = np.tile(steep, (4, 1)) * np.exp(np.random.default_rng(0).normal(0, 0.05, (4, 9)))
    for shape in transfer.SHAPES:  # a parabola in log loss: every model finds its vertex
        assert transfer.best_log2_lr(GRID, losses, shape) == pytest.approx(4.3, abs=0.05)


def test_a_shift_verdict_on_the_edge_of_the_resamples_is_the_outer_ends_and_said_so():
    """Resampled shifts whose interval's upper percentile is the tolerance itself: from 2,000 resamples alone the
    verdict is *stays* under some resampling seeds and *inconclusive* under others; settled, it is *inconclusive*
    and undecided under every one, and a shift far inside the tolerance stays, decided."""
    tail = 1 - transfer.percentile_tail(16, 0.95)
    spread = transfer.TOLERANCE / sps.norm.ppf(tail)  # the shifts' true upper percentile sits on the tolerance
    plain = set()
    for seed in range(10):
        shifts = np.random.default_rng(seed).normal(0, spread, 2_000)
        boot = {64: {"parabola": np.zeros(2_000)}, 256: {"parabola": shifts},
                "estimate": {64: {"parabola": 0.0}, 256: {"parabola": 0.0}}}
        plain.add(transfer.shift(boot, 64, 256, 16)["verdict"])
        settled = transfer.shift(boot, 64, 256, 16, settle=True)
        assert (settled["verdict"], settled["undecided"]) == ("inconclusive", True), seed
        boot[256]["parabola"] = shifts / 3
        assert transfer.shift(boot, 64, 256, 16, settle=True)["verdict"] == "stays"
        assert not transfer.shift(boot, 64, 256, 16, settle=True)["undecided"]
    assert plain == {"stays", "inconclusive"}
