"""``python -m bench reproduce NAME``: a classic paper's claims, checked with confidence intervals.

A reproduction runs its preset (``bench.experiments.presets``: resumable, so an interrupted
reproduction continues), measures initialization diagnostics where the claim is
about signal propagation (``bench.studies.diagnose``), then evaluates each claim of the
paper on the measured runs: the claim, our numbers with 95% Student t CIs over
seeds, the criterion, and whether it held. ``<out>/reproduction.md`` holds the
verdicts next to the usual ``report.md``.

Our set-ups are smaller than the papers' (2 CPU cores): each preset's
description says how; a claim that does not hold here may still hold at the
paper's scale, and the report says so rather than tuning until it holds.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from bench.analysis import stats, transfer
from bench.experiments import presets
from bench.reporting.figures import plt, save
from bench.store import write_atomic
from bench.studies import diagnose
from initjax import mean_field


@dataclasses.dataclass(frozen=True)
class Finding:
    """One claim checked: what the paper says, what we measured, the criterion, the verdict."""

    claim: str
    measured: str
    criterion: str
    held: bool


@dataclasses.dataclass(frozen=True)
class Reproduction:
    """A paper, its preset, and how its claims are checked.

    Attributes:
      name: the preset's name too.
      paper: citation.
      needs_diagnosis: run ``bench.studies.diagnose`` (signal propagation at init) first.
      evaluate: ``evaluate(results, diagnosis) -> [Finding, ...]``.
      notes: what differs from the paper and what it means for the verdicts.
      figures: ``figures(results, folder) -> [path, ...]``, the reproduction's own figures.
    """

    name: str
    paper: str
    needs_diagnosis: bool
    evaluate: Callable[[pd.DataFrame, diagnose.Diagnosis | None], list[Finding]]
    notes: str = ""
    figures: Callable[[pd.DataFrame, Path], list[Path]] | None = None


def _ci(values) -> str:
    """``mean [low, high]`` with a 95% Student t CI.

    The report's per-initializer interval; BCa under-covers at 8 seeds."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return "n/a (no finite value)"
    if len(values) < 3 or np.ptp(values) == 0:
        return f"{values.mean():.4g} (n={len(values)})"
    low, high = stats.t_interval(values)
    return f"{values.mean():.4g} [{low:.4g}, {high:.4g}]"


def _times(values) -> str:
    """Epochs to a threshold: the CI over the runs that reached it, and how many never did."""
    values = np.asarray(values, np.float64)
    never = int(np.isinf(values).sum())
    if never == len(values):
        return f"never within the epochs ({never} of {never} runs)"
    return _ci(values[np.isfinite(values)]) + (f", {never} of {len(values)} runs never" if never else "")


def _final(results: pd.DataFrame, task: str, init: str, metric: str) -> np.ndarray:
    final = stats.final_epoch(results)
    rows = final[(final["dataset"] == task) & (final["arm"] == init) & ~final["diverged"].astype(bool)]
    return rows.sort_values("seed")[metric].to_numpy(np.float64)


def _epochs_to(results: pd.DataFrame, task: str, init: str, metric: str, threshold: float) -> np.ndarray:
    """Per seed, the first epoch at or past ``threshold`` (inf where never; diverged runs count as never)."""
    rows = results[(results["dataset"] == task) & (results["arm"] == init)]
    up = stats.higher_is_better(metric)
    out = []
    for _, run in rows.groupby("seed", sort=True):
        run = run.sort_values("epoch")
        ok = ~run["diverged"].astype(bool) & ((run[metric] >= threshold) if up else (run[metric] <= threshold))
        out.append(float(run["epoch"][ok].iloc[0]) if ok.any() else np.inf)
    return np.asarray(out)


def _ratio(diagnosis: diagnose.Diagnosis, init: str, column: str, top: int, bottom: int) -> np.ndarray:
    """Per seed, ``column`` at layer ``top`` over ``column`` at layer ``bottom`` (depths counted from 1)."""
    layers = diagnosis.layers[diagnosis.layers["arm"] == init].pivot(index="seed", columns="depth",
                                                                             values=column)
    return (layers[top] / layers[bottom]).to_numpy(np.float64)


# ---------------------------------------------------------------- Glorot & Bengio 2010

def _glorot2010(results: pd.DataFrame, diagnosis: diagnose.Diagnosis) -> list[Finding]:
    standard, normalized, task = "torch_default", "glorot_uniform", "mnist"
    last_hidden = int(diagnosis.layers["depth"].max()) - 1  # layer 5 of 5 hidden; the head is 6
    act = {i: _ratio(diagnosis, i, "variance", last_hidden, 1) for i in (standard, normalized)}
    grad = {i: _ratio(diagnosis, i, "gradient_variance", 1, last_hidden) for i in (standard, normalized)}
    err = {i: 1 - _final(results, task, i, "test_accuracy") for i in (standard, normalized)}
    paired = err[standard] - err[normalized]
    return [
        Finding(
            "Fig. 6: with the standard init U[-1/sqrt(n), 1/sqrt(n)] the activations shrink from layer to layer; "
            "with the normalized init their variance is kept across layers.",
            f"pre-activation variance of hidden layer {last_hidden} / layer 1 at init: standard {_ci(act[standard])}, "
            f"normalized {_ci(act[normalized])}",
            "standard ratio < 0.1 and normalized ratio in [0.25, 4]",
            bool(np.mean(act[standard]) < 0.1 and 0.25 <= np.mean(act[normalized]) <= 4),
        ),
        Finding(
            "Fig. 7: with the standard init the back-propagated gradients shrink towards the input; the normalized "
            "init keeps their variance across layers.",
            f"gradient variance at layer 1 / layer {last_hidden}: standard {_ci(grad[standard])}, "
            f"normalized {_ci(grad[normalized])}",
            "normalized ratio closer to 1 (in log distance) than standard's, for the seed means",
            bool(abs(np.log(np.mean(grad[normalized]))) < abs(np.log(np.mean(grad[standard])))),
        ),
        Finding(
            "Table 1: the normalized init reaches a lower MNIST test error than the standard one (tanh).",
            f"test error after training: standard {_ci(err[standard])}, normalized {_ci(err[normalized])}; "
            f"paired difference (standard - normalized) {_ci(paired)}",
            "the 95% CI of the paired difference lies above 0",
            bool(len(paired) >= 3 and stats.t_interval(paired)[0] > 0),
        ),
    ]


# ---------------------------------------------------------------- He et al. 2015

def _he2015(results: pd.DataFrame, diagnosis) -> list[Finding]:
    xavier, he = "glorot_normal", "he_normal"
    acc = {(t, i): _final(results, t, i, "train_accuracy") for t in ("mnist-depth22", "mnist-depth30")
           for i in (xavier, he)}
    first = {i: _epochs_to(results, "mnist-depth22", i, "train_accuracy", 0.9) for i in (xavier, he)}
    return [
        Finding(
            "Fig. 3: at depth 30 the Xavier-initialized ReLU network stalls while the He-initialized one trains.",
            f"final training accuracy at depth 30: Xavier {_ci(acc['mnist-depth30', xavier])}, "
            f"He {_ci(acc['mnist-depth30', he])} (chance 0.1)",
            "Xavier mean < 0.2 and He mean > 0.9",
            bool(np.mean(acc["mnist-depth30", xavier]) < 0.2 and np.mean(acc["mnist-depth30", he]) > 0.9),
        ),
        Finding(
            "Fig. 2: at depth 22 both train, and He init gets there first.",
            f"final training accuracy at depth 22: Xavier {_ci(acc['mnist-depth22', xavier])}, "
            f"He {_ci(acc['mnist-depth22', he])}; epochs to 0.9 training accuracy: Xavier "
            f"{_times(first[xavier])}, He {_times(first[he])}",
            "both means > 0.9 and He's median epochs to 0.9 < Xavier's",
            bool(np.mean(acc["mnist-depth22", xavier]) > 0.9 and np.mean(acc["mnist-depth22", he]) > 0.9
                 and np.median(first[he]) < np.median(first[xavier])),
        ),
    ]


# ---------------------------------------------------------------- Saxe et al. 2013

SAXE_THRESHOLD = 0.3


def _saxe2013(results: pd.DataFrame, diagnosis) -> list[Finding]:
    ortho, gauss = "orthogonal", "variance_scaling(distribution='normal')"
    depths = sorted(int(t.removeprefix("digits-depth")) for t in results["dataset"].unique())
    times = {(i, d): _epochs_to(results, f"digits-depth{d}", i, "train_loss", SAXE_THRESHOLD)
             for i in (ortho, gauss) for d in depths}
    lines = "; ".join(f"depth {d}: orthogonal {_times(times[ortho, d])}, Gaussian {_times(times[gauss, d])}"
                      for d in depths)
    shallow, deep = depths[0], depths[-1]
    median = {key: float(np.median(value)) for key, value in times.items()}
    ortho_growth = median[ortho, deep] / median[ortho, shallow]
    gap = [median[gauss, d] / median[ortho, d] for d in depths]
    gaps = ", ".join(f"depth {d}: {g:.2f}" for d, g in zip(depths, gap))
    return [
        Finding(
            "Sec. 4 / Fig. 6: with orthogonal init the learning time of a deep linear network is independent of depth.",
            f"epochs to a training loss of {SAXE_THRESHOLD} with one learning rate for every depth: {lines}. "
            f"Median at depth {deep} / depth {shallow} for orthogonal: {ortho_growth:.2f}",
            f"orthogonal's median epochs at depth {deep} / depth {shallow} within [2/3, 3/2]",
            bool(2 / 3 <= ortho_growth <= 1.5),
        ),
        Finding(
            "Fig. 6: scaled Gaussian init learns ever slower than orthogonal init as depth grows.",
            f"median epochs Gaussian / orthogonal: {gaps}",
            f"the ratio grows with depth (each depth >= the previous) and exceeds 2 at depth {deep}",
            bool(all(b >= a for a, b in zip(gap, gap[1:])) and gap[-1] > 2),
        ),
    ]


def _saxe_figure(results: pd.DataFrame, folder: Path) -> list[Path]:
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    depths = sorted(int(t.removeprefix("digits-depth")) for t in results["dataset"].unique())
    for init in results["arm"].unique():
        times = [_epochs_to(results, f"digits-depth{d}", init, "train_loss", SAXE_THRESHOLD) for d in depths]
        reached = [(d, t[np.isfinite(t)]) for d, t in zip(depths, times) if np.isfinite(t).any()]  # drawn if reached
        if not reached:
            continue
        xs, ts = zip(*reached)
        mid = np.array([np.median(t) for t in ts])
        ax.errorbar(xs, mid, yerr=[mid - [t.min() for t in ts], [t.max() for t in ts] - mid], marker="o", capsize=3,
                    label=init)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("depth (weight layers)")
    ax.set_ylabel(f"epochs to training loss {SAXE_THRESHOLD} (median, min-max of runs that reach it)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    else:
        ax.set_title("no run reached the threshold")
    return save(fig, folder / "learning-time-vs-depth", ("png",))


# ---------------------------------------------------------------- Schoenholz et al. 2017

def _sigma_w2(init: str) -> float:
    return float(re.search(r"sigma_w2=([0-9.]+)", init).group(1))


def _trainability(results: pd.DataFrame) -> pd.DataFrame:
    """Per (sigma_w2, depth): mean final training accuracy, trainable (> 0.5), and 6 xi_c."""
    rows = []
    for task in results["dataset"].unique():
        depth = int(task.rsplit("depth", 1)[1])
        for init in results["arm"].unique():
            acc = _final(results, task, init, "train_accuracy")
            w2 = _sigma_w2(init)
            limit = 6 * mean_field.xi_c(w2, presets.SCHOENHOLZ_SIGMA_B2)
            rows.append({"sigma_w2": w2, "depth": depth, "accuracy": acc.mean() if len(acc) else 0.0,
                         "trainable": bool(len(acc) and acc.mean() > 0.5), "six_xi_c": limit,
                         "predicted": depth <= limit})
    return pd.DataFrame(rows)


def _schoenholz2017(results: pd.DataFrame, diagnosis) -> list[Finding]:
    table = _trainability(results)
    agree = table["trainable"] == table["predicted"]
    misses = "; ".join(f"sigma_w2 {r.sigma_w2:g} depth {r.depth}: accuracy {r.accuracy:.2f}, 6 xi_c {r.six_xi_c:.0f}"
                       for r in table[~agree].itertuples()) or "none"
    critical = table[table["sigma_w2"] == 1.8]
    return [
        Finding(
            "Fig. 5: a network trains if and only if its depth is below about 6 xi_c, the mean-field depth scale of "
            "correlations, over the (sigma_w^2, depth) plane.",
            f"{int(agree.sum())} of {len(table)} (sigma_w2, depth) cells agree with depth <= 6 xi_c; disagreements: "
            f"{misses}",
            "at least 80% of the cells agree",
            bool(agree.mean() >= 0.8),
        ),
        Finding(
            "Sec. 4: at the order-to-chaos transition (sigma_w^2 ~ 1.76 for sigma_b^2 = 0.05) the deepest networks "
            "train.",
            "mean final training accuracy at sigma_w2 = 1.8: " + ", ".join(
                f"depth {r.depth}: {r.accuracy:.3f}" for r in critical.sort_values("depth").itertuples()),
            "trainable (> 0.5) at every depth",
            bool(len(critical) and critical["trainable"].all()),
        ),
    ]


def _schoenholz_figure(results: pd.DataFrame, folder: Path) -> list[Path]:
    table = _trainability(results)
    grid = table.pivot(index="depth", columns="sigma_w2", values="accuracy")
    fig, ax = plt.subplots(figsize=(6.5, 4.2), constrained_layout=True)
    mesh = ax.pcolormesh(np.arange(len(grid.columns) + 1), np.arange(len(grid.index) + 1), grid.values,
                         vmin=0, vmax=1, cmap="viridis")
    fig.colorbar(mesh, ax=ax, label="final training accuracy (mean over seeds)")
    ws = np.linspace(min(grid.columns), max(grid.columns), 200)
    limit = [6 * mean_field.xi_c(w, presets.SCHOENHOLZ_SIGMA_B2) for w in ws]
    # map sigma_w2 and depth onto the cell grid (cells are evenly spaced, values are not)
    x = np.interp(ws, grid.columns, np.arange(len(grid.columns))) + 0.5
    y = np.interp(np.clip(limit, grid.index[0], grid.index[-1] * 2), list(grid.index) + [grid.index[-1] * 2],
                  list(np.arange(len(grid.index))) + [len(grid.index)]) + 0.5
    ax.plot(x, y, "w--", label="6 xi_c (mean field)")
    ax.set_xticks(np.arange(len(grid.columns)) + 0.5, [f"{w:g}" for w in grid.columns])
    ax.set_yticks(np.arange(len(grid.index)) + 0.5, grid.index)
    ax.set_xlabel("sigma_w^2")
    ax.set_ylabel("depth")
    ax.set_ylim(0, len(grid.index))
    ax.legend(loc="upper right", fontsize=8)
    return save(fig, folder / "trainability", ("png",))


# ---------------------------------------------------------------- post-LN without warm-up (transformers)

POSTLN_VOCAB = 16  # the vocabulary of postln-init.toml's language: a diverged run counts as the uniform guess
POSTLN_LOW, POSTLN_HIGH = 0.001, 0.01  # its two Adam learning rates, constant (no warm-up)


def _final_cell(results: pd.DataFrame, task: str, init: str, lr: float) -> pd.DataFrame:
    """The final rows of one (task, initializer, learning rate) of a grid."""
    final = stats.final_epoch(results)
    return final[(final["dataset"] == task) & (final["initializer"] == init) & np.isclose(final["lr"], lr)]


def _test_losses(results: pd.DataFrame, task: str, init: str, lr: float) -> pd.Series:
    """Per seed, the final test loss of one (task, initializer, learning rate); a diverged run counts as
    ``ln POSTLN_VOCAB``, the loss of the uniform guess (a lower bound on what a diverged model scores)."""
    rows = _final_cell(results, task, init, lr)
    loss = rows["test_loss"].where(stats.finished(rows, "test_loss"), np.log(POSTLN_VOCAB))
    return pd.Series(loss.to_numpy(np.float64), index=rows["seed"].to_numpy()).sort_index()


def _paired(a: pd.Series, b: pd.Series) -> np.ndarray:
    """``a - b`` per seed, over the seeds both have."""
    return (a - b).dropna().to_numpy(np.float64)


def _ci_above_zero(differences: np.ndarray) -> bool:
    return bool(len(differences) >= 3 and stats.t_interval(differences)[0] > 0)


def _diverged(results: pd.DataFrame, task: str, init: str, lr: float) -> int:
    rows = _final_cell(results, task, init, lr)
    return int((~stats.finished(rows, "test_loss")).sum())


def _postln(results: pd.DataFrame, diagnosis) -> list[Finding]:
    xavier, deepnorm, tfixup = "glorot_uniform", "deepnorm", "t_fixup"
    low, high = POSTLN_LOW, POSTLN_HIGH
    loss = {(t, i, lr): _test_losses(results, t, i, lr) for t in ("pre-LN", "post-LN", "no-LN")
            for i in (xavier, deepnorm, tfixup) for lr in (low, high)}

    def line(task, init):
        return f"{init} on {task}: lr {low:g} {_ci(loss[task, init, low])}, lr {high:g} {_ci(loss[task, init, high])}"

    def diverged(task, init, lr):
        n = _diverged(results, task, init, lr)
        return f" ({n} diverged)" if n else ""

    post_up = _paired(loss["post-LN", xavier, high], loss["post-LN", xavier, low])
    pre_down = _paired(loss["pre-LN", xavier, low], loss["pre-LN", xavier, high])
    deep_gain = _paired(loss["post-LN", xavier, high], loss["post-LN", deepnorm, high])
    fixup_gain = _paired(loss["no-LN", xavier, high], loss["no-LN", tfixup, high])
    pre_best = min(loss["pre-LN", xavier, lr].mean() for lr in (low, high))
    fixup_diverged = _diverged(results, "no-LN", tfixup, high)
    return [
        Finding(
            "Xiong et al. 2020, Sec. 3 (and Liu et al. 2020): a post-LN transformer with the standard Xavier init, "
            "trained by Adam without warm-up, trains poorly at a large learning rate.",
            f"final test loss (nats/token), {line('post-LN', xavier)}{diverged('post-LN', xavier, high)}; paired "
            f"difference (lr {high:g} - lr {low:g}) {_ci(post_up)}",
            "the 95% CI of the paired difference lies above 0 (the larger rate is worse)",
            _ci_above_zero(post_up),
        ),
        Finding(
            "Xiong et al. 2020, Sec. 4: the pre-LN transformer needs no warm-up: with Xavier init it trains at the "
            "large learning rate.",
            f"{line('pre-LN', xavier)}{diverged('pre-LN', xavier, high)}; paired difference "
            f"(lr {low:g} - lr {high:g}) {_ci(pre_down)}",
            "the 95% CI of the paired difference lies above 0 (the larger rate is better)",
            _ci_above_zero(pre_down),
        ),
        Finding(
            "Wang et al. 2022 (DeepNet): DeepNorm's init and residual scaling let post-LN train without warm-up at a "
            "rate where Xavier post-LN fails.",
            f"{line('post-LN', deepnorm)}{diverged('post-LN', deepnorm, high)}; paired difference at lr {high:g} "
            f"(Xavier - DeepNorm) {_ci(deep_gain)}",
            f"the 95% CI of the paired difference lies above 0 and DeepNorm's mean at lr {high:g} is below its mean "
            f"at lr {low:g}",
            _ci_above_zero(deep_gain)
            and loss["post-LN", deepnorm, high].mean() < loss["post-LN", deepnorm, low].mean(),
        ),
        Finding(
            "Huang et al. 2020 (T-Fixup): with T-Fixup a transformer trains without LayerNorm and without warm-up, "
            "as well as a normalized one.",
            f"{line('no-LN', tfixup)}{diverged('no-LN', tfixup, high)}, {line('no-LN', xavier)}"
            f"{diverged('no-LN', xavier, high)}; paired difference at lr {high:g} (Xavier - T-Fixup) "
            f"{_ci(fixup_gain)}; pre-LN Xavier's better mean {pre_best:.4g}",
            f"no T-Fixup run diverges at lr {high:g}, the 95% CI of the paired difference lies above 0, and T-Fixup's "
            f"mean at lr {high:g} is within 0.05 nats of pre-LN Xavier's better mean",
            fixup_diverged == 0 and _ci_above_zero(fixup_gain)
            and loss["no-LN", tfixup, high].mean() <= pre_best + 0.05,
        ),
    ]


# ---------------------------------------------------------------- Yang et al. 2021 (muP transfer)


MODELS = {"mlp": "MLP", "transformer": "transformer"}  # the preset's model kinds, as the claims name them


def _transfer_tasks(results: pd.DataFrame) -> dict:
    """Task name -> (family, width), the family ``"<model> <parameterization>"``, from the preset's tasks that are in
    ``results``."""
    tasks = {t.name: (f"{MODELS[t.model]} {t.model_args['parameterization']}", int(t.hidden[0]))
             for t in presets.get("mup-transfer").tasks}
    return {name: spec for name, spec in tasks.items() if name in set(results["dataset"])}


def _best_lrs(t: transfer.Transfer) -> str:
    return ", ".join(f"width {w}: {2 ** t.best[w][0]:.3g} [{2 ** t.best[w][1]:.3g}, {2 ** t.best[w][2]:.3g}]"
                     for w in t.widths)


def _moved(t: transfer.Transfer) -> str:
    s = t.shift
    return (f"from width {t.widths[0]} to {t.widths[-1]} it moves by a factor {2 ** s['estimate']:.3g} "
            f"[{2 ** s['low']:.3g}, {2 ** s['high']:.3g}] ({s['verdict']})")


def _transfer_findings(model: str, sp: transfer.Transfer, mup: transfer.Transfer) -> list[Finding]:
    """The three claims of Fig. 1 for one model: SP's optimum moves, muP's stays, and under muP wider is better."""
    losses = [mup.best_loss[w] for w in mup.widths]
    return [
        Finding(
            f"Fig. 1 (left): under the standard parameterization the best learning rate of Adam shifts as the "
            f"{model} widens.",
            f"best learning rate (argmin of the mean final training loss located by three shape models, their "
            f"median; the union of their expanded percentile bootstrap intervals over seeds): {_best_lrs(sp)}; "
            f"{_moved(sp)}",
            "the shift's 95% interval excludes 1 (verdict 'moves')",
            sp.shift["verdict"] == "moves",
        ),
        Finding(
            f"Fig. 1 (right): under muP the best learning rate stays put as the {model} widens.",
            f"{_best_lrs(mup)}; {_moved(mup)}",
            "the shift's 95% interval lies within [1/2, 2] (verdict 'stays')",
            mup.shift["verdict"] == "stays",
        ),
        Finding(
            f"Fig. 1 (right): under muP wider is better: at its best learning rate a wider {model} reaches a lower "
            "training loss.",
            "mean final training loss at the best grid rate: " + ", ".join(
                f"width {w}: {mup.best_loss[w]:.4g}" for w in mup.widths),
            "it decreases with every step in width",
            bool(all(b < a for a, b in zip(losses, losses[1:]))),
        ),
    ]


def _mup_transfer(results: pd.DataFrame, diagnosis) -> list[Finding]:
    found = transfer.analyze(results, _transfer_tasks(results), transfer.METRIC)
    return [finding for model in MODELS.values() if f"{model} sp" in found
            for finding in _transfer_findings(model, found[f"{model} sp"], found[f"{model} mup"])]


def _transfer_figure(results: pd.DataFrame, folder: Path) -> list[Path]:
    tasks = _transfer_tasks(results)
    from bench.reporting import figures

    found = transfer.analyze(results, tasks, transfer.METRIC)
    return figures.save(figures.transfer(found, transfer.METRIC), folder / "loss-vs-lr", ("png",))


REPRODUCTIONS: dict[str, Reproduction] = {
    "glorot2010": Reproduction("glorot2010", "Glorot & Bengio 2010, Understanding the difficulty of training deep "
                               "feedforward neural networks, AISTATS", True, _glorot2010),
    "he2015-depth": Reproduction(
        "he2015-depth", "He, Zhang, Ren & Sun 2015, Delving deep into rectifiers, ICCV", False, _he2015,
        notes="The criteria were fixed before the runs. The paper's networks are conv nets trained for many epochs "
              "on ImageNet; ours are ReLU MLPs trained for 6 epochs on 10,000 MNIST images, which is a harsher "
              "test of speed: a network that trains slowly does not reach the 0.9 bar. Read the measured "
              "accuracies next to the verdicts: the direction of the paper's result (He ahead of Xavier, Xavier "
              "near chance at depth 30) is what the numbers show."),
    "saxe2013": Reproduction(
        "saxe2013", "Saxe, McClelland & Ganguli 2013, Exact solutions to the nonlinear dynamics of learning in deep "
        "linear neural networks, arXiv:1312.6120", False, _saxe2013,
        figures=_saxe_figure,
        notes="We train every depth with one learning rate (0.01). With it, orthogonal deep linear networks learn "
              "faster the deeper they are: every layer takes a step, so the end-to-end map moves roughly depth "
              "times as far per update. Comparing depths at a depth-scaled learning rate is the check that would "
              "match the paper's set-up more closely; the preset does not do it yet."),
    "schoenholz2017": Reproduction(
        "schoenholz2017", "Schoenholz, Gilmer, Ganguli & Sohl-Dickstein 2017, Deep information propagation, ICLR",
        False, _schoenholz2017, figures=_schoenholz_figure,
        notes="Our networks are trained for 4 epochs of 5,000 images (the paper: far longer on all of MNIST and "
              "CIFAR-10), so 'trainable' here means 'learns quickly'; the boundary 6 xi_c is computed by "
              "initjax.mean_field for sigma_b^2 = 0.05 (critical sigma_w^2 = 1.761)."),
    "postln-init": Reproduction(
        "postln-init", "Xiong et al. 2020, On layer normalization in the transformer architecture, ICML; Huang, Perez, "
        "Ba & Volkovs 2020, Improving transformer optimization through better initialization (T-Fixup), ICML; Wang "
        "et al. 2022, DeepNet: scaling transformers to 1,000 layers", False, _postln,
        notes="The papers train 6- to 1,000-layer encoder-decoders on machine translation for many epochs; ours is a "
              "4-block decoder-only language model of width 32 trained for 8 epochs on a generated order-2 Markov "
              "language (optimum 1.84 nats/token, uniform guess ln 16 = 2.77), with the decoder-only forms of "
              "DeepNorm and T-Fixup in initjax/transformer.py. Warm-up itself, the papers' remedy for post-LN, is not "
              "an arm: the schedule is one per experiment, so 'post-LN with warm-up trains' is not checked here. "
              "The two learning rates were picked from a 2-seed pilot of Xavier, GPT-2 and DeepNorm on pre- and "
              "post-LN at 1e-3, 3e-3 and 1e-2 (seeds 0 and 1, which are also two of the 6 here; the no-LN task and "
              "T-Fixup were not in it): at 1e-2 post-LN Xavier stayed at the uniform guess. The criteria were fixed "
              "after the pilot and before this preset ran. A diverged run counts as the uniform guess's loss, a "
              "lower bound on its own."),
    "mup-transfer": Reproduction(
        "mup-transfer", "Yang et al. 2021, Tensor Programs V: tuning large neural networks via zero-shot "
        "hyperparameter transfer, NeurIPS (arXiv:2203.03466)", False, _mup_transfer, figures=_transfer_figure,
        notes="The paper's MLPs and transformers reach width 8192 on CIFAR-10 and WikiText-2; ours are MLPs 64 to "
              "1024 wide on digits (1,437 training images) and transformers 32 to 128 wide trained for 128 steps on "
              "a generated language (loss still far above its optimum: the claims concern the loss after a fixed "
              "budget, as the paper's figure does), so the widths span a factor 16 and 4, a shift the paper "
              "shows over 64-128x. muP is applied as initjax.parameterization's table (Tensor Programs V, Table 3, "
              "Adam; attention logits q.k/d) with the multipliers folded into init and learning rates; at the base "
              "width both parameterizations are the same model. The best learning rate is where the seeds' mean "
              "curve is lowest between the grid's points, by three shape models (a parabola through the best "
              "point and its neighbours, a two-sided parabola through five, a cubic spline; log2 scale): their "
              "median, with the union of their intervals, which resample seeds (bench.analysis.transfer, whose "
              "coverage is measured on simulated symmetric and asymmetric curves). The MLP claims were fixed "
              "before the MLP runs; the transformer claims, the same three, "
              "after a pilot of 2 seeds (seeds 0 and 1, 6 rates, widths 32 and 128) that chose the data size and "
              "before these runs."),
}


def render(reproduction: Reproduction, experiment: presets.Experiment, findings: list[Finding], command: str) -> str:
    """``reproduction.md``: the paper, our set-up, then each claim with its verdict."""
    held = sum(f.held for f in findings)
    lines = [f"# Reproduction: {reproduction.paper}", "", f"Set-up: {experiment.description}", "",
             f"Command: `{command}`. Full statistics of the runs: [report.md](report.md)"
             + (", signal propagation at init: [diagnostics/diagnostics.md](diagnostics/diagnostics.md)"
                if reproduction.needs_diagnosis else "") + ".", "",
             f"**{held} of {len(findings)} claims held here.**", ""]
    for n, f in enumerate(findings, 1):
        lines += [f"## Claim {n}: {'held' if f.held else 'did not hold'}", "", f"- Paper: {f.claim}",
                  f"- Measured (mean [95% Student t CI] over seeds): {f.measured}.", f"- Criterion: {f.criterion}.",
                  ""]
    if reproduction.notes:
        lines += ["## Notes", "", reproduction.notes, ""]
    return "\n".join(lines)


def reproduce(name: str, out: str | Path, run: Callable, command: str, data_dir=None,
              smoke: bool = False) -> tuple[list[Finding], list[Path]]:
    """Runs (or resumes) the preset with ``run(experiment, out)``, diagnoses if needed, writes ``reproduction.md``."""
    reproduction = REPRODUCTIONS[name]
    experiment = presets.get(name)
    if smoke:
        experiment = presets.smoke(experiment)
    outcome = run(experiment, out)
    diagnosis = None
    files = list(outcome.files)
    if reproduction.needs_diagnosis:
        diagnosis = diagnose.diagnose(experiment, seeds=experiment.seeds, data_dir=data_dir)
        files += diagnose.write(diagnosis, Path(out) / "diagnostics", experiment, command)
    findings = reproduction.evaluate(outcome.results, diagnosis)
    figures = []
    if reproduction.figures is not None:
        (Path(out) / "figures").mkdir(parents=True, exist_ok=True)
        figures = reproduction.figures(outcome.results, Path(out) / "figures")
        files += figures
    text = render(reproduction, experiment, findings, command)
    text += "".join(f"\n![{p.stem}](figures/{p.name})\n" for p in figures)
    files.append(write_atomic(Path(out) / "reproduction.md", text))
    return findings, files
