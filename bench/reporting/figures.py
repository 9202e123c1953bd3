"""Figures for reports: learning curves, final-metric distributions, win matrix, forest plot.

Each function draws one figure of one dataset from the tidy results and returns the
matplotlib ``Figure``; :func:`save` writes it as PNG and/or PDF. The Agg backend is
used, so no display is needed.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from scipy import special  # noqa: E402

from bench.analysis.columns import final_epoch, higher_is_better  # noqa: E402
from bench.reporting.shown import initializers_of, shown  # noqa: E402
from bench.store import write_atomic  # noqa: E402

LABELS = {"test_accuracy": "test accuracy", "test_loss": "test loss", "train_accuracy": "train accuracy",
          "train_loss": "train loss", "val_accuracy": "validation accuracy", "val_loss": "validation loss",
          "test_r2": "test R²", "train_r2": "train R²", "val_r2": "validation R²"}


def _label(metric: str) -> str:
    return LABELS.get(metric, metric.replace("_", " "))


LINESTYLES = ("-", "--", ":", "-.")


def arm_styles(names) -> dict[str, tuple]:
    """One (colour, line style) per initializer, fixed by its place in the experiment's order.

    Ten tab10 colours, then the same colours dashed, dotted, ...: near-identical names
    (``normal(stddev=0.1)``, ``normal(stddev=0.01)``) stay apart, and an initializer keeps
    its colour in every figure of a report.
    """
    colors = plt.get_cmap("tab10")
    return {name: (colors(i % 10), LINESTYLES[(i // 10) % len(LINESTYLES)])
            for i, name in enumerate(dict.fromkeys(names))}


def _by_rank(final: pd.DataFrame, metric: str) -> list[str]:
    """Initializers ordered by their mean final ``metric``, best first."""
    means = final.groupby("arm", sort=False)[metric].mean()
    return list(means.sort_values(ascending=not higher_is_better(metric), kind="stable").index)


def _near_best(means: pd.Series, metric: str, fraction: float = 0.1) -> list[str]:
    """The initializers whose mean is within ``fraction`` of the best one's (where the differences are)."""
    best = means.max() if higher_is_better(metric) else means.min()
    return [n for n, m in means.items() if abs(m - best) <= fraction * abs(best)]


def _integer_epochs(ax) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def learning_curves(results: pd.DataFrame, dataset: str, metric: str, level: float = 0.95) -> plt.Figure:
    """Mean of ``metric`` per epoch with a ``level`` t-interval band, one line per initializer.

    The band is ``mean +- t_{n-1} s / sqrt(n)`` over the seeds that did not diverge, with the test set held fixed
    (the figure says so: the tables' intervals also count the test set's sampling error). The
    left panel shows every epoch and initializer; the right one zooms on epochs >= 1 of
    the initializers whose final mean is within 10% of the best, where the differences are,
    its range holding their bands, and its legend lists only those. Lines are in rank order (best first) with
    fixed styles.
    """
    task = results[results["dataset"] == dataset]
    styles = arm_styles(task["arm"])
    data = task[~task["diverged"].astype(bool)]
    fig, (full, zoom) = plt.subplots(1, 2, figsize=(10.5, 4.2), constrained_layout=True)
    curves, bands = {}, {}
    for name, group in data.groupby("arm", sort=False):
        per_epoch = group.groupby("epoch")[metric].agg(["mean", "std", "count"])
        dof = np.maximum(per_epoch["count"] - 1, 1)
        t = special.stdtrit(dof.to_numpy(), 0.5 + level / 2)  # Student's t quantile (scipy.stats.t.ppf's own)
        bands[name] = t * per_epoch["std"].fillna(0) / np.sqrt(per_epoch["count"])
        curves[name] = per_epoch["mean"]
    finals = pd.Series({n: c.iloc[-1] for n, c in curves.items()}, dtype=float)
    order, left_out = shown(finals.sort_values(ascending=not higher_is_better(metric), kind="stable").index,
                            initializers_of(task))
    finals = finals[order]
    close = _near_best(finals, metric) if len(finals) else []
    for ax, drawn in ((full, order), (zoom, [n for n in order if n in close])):
        for name in drawn:
            color, style = styles[name]
            mean, half = curves[name], bands[name]
            ax.plot(mean.index, mean, color=color, ls=style, label=name, lw=1.6)
            ax.fill_between(mean.index, mean - half, mean + half, color=color, alpha=0.2, lw=0)
    later = pd.concat([edge[edge.index >= 1] for n in close for edge in (curves[n] - bands[n], curves[n] + bands[n])]
                      ) if close else pd.Series(dtype=float)
    if len(later):  # the zoom holds the bands, not only the means
        pad = 0.05 * (later.max() - later.min() or abs(later.max()) or 1)
        zoom.set_ylim(later.min() - pad, later.max() + pad)
        if data["epoch"].max() > 1:
            zoom.set_xlim(1, data["epoch"].max())
    model = data["model"].iloc[0] if len(data) else ""
    full.set_title(f"{dataset}, {model}: mean, {level:.0%} CI band over seeds"
                   + (f"\n({left_out})" if left_out else ""), fontsize=10)
    fig.supxlabel(f"Bands: seed-to-seed {level:.0%} t intervals with the test set held fixed; the report's tables "
                  "also count the test set's sampling error, so their intervals are wider.", fontsize=8)
    zoom.set_title("zoom: epochs >= 1, initializers within 10% of the best", fontsize=10)
    for ax in (full, zoom):
        ax.set_xlabel("epoch (0 = at initialization)")
        ax.set_ylabel(_label(metric))
        ax.grid(alpha=0.3)
        _integer_epochs(ax)
    if order:
        full.legend(fontsize=7, ncols=2 if len(order) > 6 else 1)
    if close:
        zoom.legend(fontsize=7, ncols=2 if len(close) > 6 else 1)
    return fig


def final_distribution(results: pd.DataFrame, dataset: str, metric: str) -> plt.Figure:
    """Box plot with every seed's final ``metric`` as a dot, one column per initializer, best mean first.

    The median is a thick black line drawn over the dots (a coloured one vanished on dots of its colour).
    The left panel shows every initializer; when some are far from the best (``zeros``
    squashes the rest), the right panel zooms on those within 10% of the best, so that
    differences of half a point stay visible.
    """
    final = final_epoch(results)
    task = final[final["dataset"] == dataset]
    styles = arm_styles(task["arm"])
    data = task[~task["diverged"].astype(bool)]
    names, left_out = shown(_by_rank(data, metric), initializers_of(task))
    means = data.groupby("arm", sort=False)[metric].mean()[names]
    close = [n for n in names if n in _near_best(means, metric)]
    panels = [names] + ([close] if len(close) < len(names) else [])
    width = sum(max(3.2, 0.5 * len(p) + 1.2) for p in panels)  # about 2:1 at 8 initializers, never a strip
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 4.2), constrained_layout=True, squeeze=False,
                             width_ratios=[len(p) + 1 for p in panels])
    for ax, drawn in zip(axes[0], panels):
        values = [data.loc[data["arm"] == n, metric].to_numpy() for n in drawn]
        ax.boxplot(values, showfliers=False, widths=0.6, medianprops={"color": "black", "lw": 2.2, "zorder": 4})
        jitter = np.random.default_rng(0)  # fixed, so the figure is reproducible
        for i, (name, v) in enumerate(zip(drawn, values), start=1):
            ax.scatter(i + jitter.uniform(-0.18, 0.18, len(v)), v, s=9, alpha=0.6, color=styles[name][0], zorder=3)
        ax.set_xticks(range(1, len(drawn) + 1), drawn, rotation=30, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].set_ylabel(f"final {_label(metric)}")
    axes[0, 0].set_title(f"{dataset}: final {_label(metric)}\none dot per seed, best mean first"
                         + (f" ({left_out})" if left_out else ""), fontsize=10)
    if len(panels) > 1:
        axes[0, 1].set_title("zoom: within 10% of the best", fontsize=10)
    return fig


def win_matrix(matrix: pd.DataFrame, dataset: str, metric: str, paired: bool = True, left_out: str = "") -> plt.Figure:
    """Heat map of the share of seeds on which the row initializer beats the column one (ties half).

    Rows and columns are in the order of the rows' mean share (most wins first), so that the ranking reads down
    the diagonal. ``matrix``: ``bench.analysis.compare.win_matrix`` of the dataset (computed by the caller: the
    figure workers import no statistics), reduced to the arms :func:`bench.reporting.shown.shown` keeps, which
    ``left_out`` says."""
    order = list(matrix.mean(axis=1, skipna=True).sort_values(ascending=False, kind="stable").index)
    matrix = matrix.loc[order, order]  # most wins first, down the rows and across the columns
    n = len(matrix)
    fig, ax = plt.subplots(figsize=(0.6 * n + 2.6, 0.6 * n + 1.8), constrained_layout=True)
    image = ax.imshow(matrix.to_numpy(), vmin=0, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(n), matrix.columns, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(n), matrix.index, fontsize=8)
    for r in range(n):
        for c in range(n):
            value = matrix.iat[r, c]
            if np.isfinite(value) and r != c:
                ax.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if abs(value - 0.5) > 0.3 else "black")
    ax.set_xlabel("initializer Y (most wins first)")
    ax.set_ylabel("initializer X (most wins first)")
    relation = "better than" if paired else "P(a run of X better than one of Y)"
    title = (f"{dataset}: share of seeds where X's final {_label(metric)} is {relation} Y's" if paired
             else f"{dataset}: {relation}, final {_label(metric)}")
    ax.set_title(title + (f"\n({left_out})" if left_out else ""), fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def forest(comparisons: pd.DataFrame, dataset: str, level: float = 0.95) -> plt.Figure:
    """Each initializer's difference to the best of the others with its simultaneous interval.

    One row per initializer (best first): the MCB interval of ``theta_i - max_{j != i} theta_j``
    in the better direction (accuracy in points), coloured by verdict, with the
    equivalence margin dashed. ``comparisons``: ``bench.analysis.compare.compare`` rows.
    """
    rows = comparisons[(comparisons["dataset"] == dataset) & comparisons["to_best_low"].notna()]
    accuracy = rows["metric"].iloc[0].endswith("accuracy") if len(rows) else True
    scale = 100 if accuracy else 1
    colors = {"best": "tab:green", "equivalent": "tab:blue", "worse": "tab:red", "inconclusive": "tab:gray"}
    fig, (full, zoom) = plt.subplots(1, 2, figsize=(10.5, 0.42 * len(rows) + 1.6), constrained_layout=True,
                                     sharey=True)
    y = np.arange(len(rows))[::-1]
    better = (1 if higher_is_better(rows["metric"].iloc[0]) else -1) * rows["mean"].to_numpy() if len(rows) else []
    point = [b - np.max(np.delete(better, i)) for i, b in enumerate(better)] if len(rows) > 1 else [0.0] * len(rows)
    for ax in (full, zoom):
        for yi, (_, r), p in zip(y, rows.iterrows(), point):
            color = colors.get(r["verdict"], "black")
            ax.plot([scale * r["to_best_low"], scale * r["to_best_high"]], [yi, yi], color=color, lw=2.2)
            ax.plot([scale * p], [yi], "o", color=color, ms=4)
        margin = scale * rows["margin"].iloc[0] if len(rows) else 0
        ax.axvline(0, color="black", lw=0.8)
        ax.axvline(-margin, color="black", lw=0.8, ls="--")
        ax.grid(axis="x", alpha=0.3)
    fig.supxlabel(f"difference to the best of the others ({'pp of ' if accuracy else ''}"
                  f"{_label(rows['metric'].iloc[0]) if len(rows) else ''}; better > 0)", fontsize=9)
    full.set_yticks(y, [f"{n} ({v})" for n, v in zip(rows["arm"], rows["verdict"])], fontsize=8)
    near = rows[rows["verdict"] != "worse"]
    if len(near):
        low = min(scale * near["to_best_low"].min(), -2 * scale * rows["margin"].iloc[0])
        high = max(scale * near["to_best_high"].max(), scale * rows["margin"].iloc[0])
        pad = 0.08 * (high - low)
        zoom.set_xlim(low - pad, high + pad)
    full.set_title(f"{dataset}: {level:.0%} simultaneous intervals (Hsu's MCB); dashed: margin", fontsize=10)
    zoom.set_title("zoom: initializers not called worse", fontsize=10)
    return fig


def performance_profile(profile: pd.DataFrame, metric: str, drawn: list[str] | None = None,
                        left_out: str = "") -> plt.Figure:
    """Share of runs above each normalized-score threshold, one line per initializer (Agarwal et al. 2021).

    Where the initializers that trained crowd near 1 (the usual case: 90% of a [0, 1] axis stayed empty), a
    second panel zooms on the thresholds their runs span, from their lowest score to the highest. ``drawn``: the
    columns to draw, in the legend's order (all by default; each keeps the style of its place in ``profile``, as in
    the other figures); ``left_out``: which the caller left out (:func:`bench.reporting.shown.shown`), for the
    title."""
    styles = arm_styles(profile.columns)
    profile = profile[list(profile.columns) if drawn is None else drawn]
    half = profile.index[profile.index <= 0.5].max()
    trained = [n for n in profile.columns if profile.at[half, n] >= 0.5]  # most runs above 0.5: they learnt
    low = min((profile.index[(profile[n] < 1).to_numpy()].min() for n in trained if (profile[n] < 1).any()),
              default=0.0)
    panels = 2 if low >= 0.3 else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.4 * panels - 1.2 * (panels - 1), 4.2), constrained_layout=True,
                             squeeze=False)
    for ax in axes[0]:
        for name in profile.columns:
            color, style = styles[name]
            ax.step(profile.index, profile[name], where="post", color=color, lw=1.6, ls=style, label=name)
        ax.set_ylabel("share of runs above")
        ax.grid(alpha=0.3)
    if panels == 2:
        high = profile.index.max()
        axes[0, 1].set_xlim(low - 0.05 * (high - low), high)
        axes[0, 1].set_title(f"zoom: thresholds from {low:.3f}, where the runs that trained differ", fontsize=10)
    fig.supxlabel(f"normalized final {_label(metric)} (0 = untrained, 1 = best mean of the task)", fontsize=10)
    axes[0, 0].set_title("performance profile over tasks and seeds" + (f"\n({left_out})" if left_out else ""),
                         fontsize=10)
    axes[0, 0].legend(fontsize=8)
    return fig


def critical_difference(ranks: dict) -> plt.Figure:
    """Mean ranks over tasks on one axis with the exact critical difference (``bench.analysis.aggregate``), none
    where no gap can reach it."""
    names, mean_rank, cd = ranks["names"], ranks["mean_rank"], ranks["cd"]
    k = len(names)
    order = np.argsort(mean_rank, kind="stable")
    fig, ax = plt.subplots(figsize=(7.5, 0.35 * k + 1.6), constrained_layout=True)
    ax.set_xlim(0.5, k + 0.5)
    ax.set_ylim(-2.2, k)
    for row, i in enumerate(order):
        ax.plot([mean_rank[i]], [k - 1 - row], "o", color="tab:blue")
        left = mean_rank[i] > (k + 1) / 2  # labels on the side with room, inside the axes
        ax.text(mean_rank[i] + (-0.1 if left else 0.1), k - 1 - row, f"{names[i]} ({mean_rank[i]:.2f})",
                va="center", ha="right" if left else "left", fontsize=8)
    if cd is not None:
        ax.plot([1, 1 + cd], [-1, -1], color="black", lw=2)
        widest = f"; the widest gap possible is {k - 1}" if cd > 0.75 * (k - 1) else ""  # few tasks: say why so long
        ax.text(1 + cd / 2, -1.3, f"CD = {cd:.2f}{widest}", ha="center", va="top", fontsize=8)
        rule = "mean ranks at least CD apart differ (exact, 5%)"
    else:
        rule = "no two mean ranks can differ at 5% with so few tasks"
    ax.set_yticks([])
    ax.set_xlabel("mean rank over tasks (1 = best)")
    kind = "exact" if ranks.get("exact", True) else "permutation"
    ax.set_title(f"{ranks['tasks']} tasks: Friedman p = {ranks['p']:.3g} ({kind}); {rule}", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return fig


def sensitivity(item, dataset: str, metric: str) -> plt.Figure:
    """Final ``metric`` against the grid's main factor (log x for a learning rate), one line per initializer.

    Bands: each point's Student t interval; a marker at each initializer's interpolated best
    value with its bootstrap interval as a horizontal bar (``bench.analysis.sensitivity.Sensitivity``).
    Left: the whole range; right: zoomed on the top (4 tolerances below the best mean), where
    the tuned initializers differ.
    """
    s, names = item.sensitivity, item.cube.initializers
    sign = 1.0 if higher_is_better(metric) else -1.0
    styles = arm_styles(names)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    x = np.log10(s.values) if s.log else s.values
    for ax in axes:
        for i, name in enumerate(names):
            color, style = styles[name]
            means = sign * s.means[i]
            low = np.minimum(sign * s.low[i], sign * s.high[i])
            high = np.maximum(sign * s.low[i], sign * s.high[i])
            ax.plot(s.values, means, style, color=color, marker="o", markersize=3, label=name)
            ax.fill_between(s.values, low, high, color=color, alpha=0.12, linewidth=0)
            if np.isfinite(s.best[i]):
                peak = np.interp(np.log10(s.best[i]) if s.log else s.best[i], x, means)
                ax.errorbar([s.best[i]], [peak], xerr=[[s.best[i] - s.best_low[i]], [s.best_high[i] - s.best[i]]],
                            color=color, marker="D", markersize=5, capsize=3, linewidth=1)
        if s.log:
            ax.set_xscale("log")
        ax.set_xlabel(s.factor.replace("_", " ") + (" (log scale)" if s.log else ""))
        ax.grid(alpha=0.3)
    top = np.nanmax(s.means)
    if np.isfinite(top):
        edge = sorted((sign * (top - 4 * s.tolerance), sign * (top + s.tolerance)))
        axes[1].set_ylim(*edge)
    axes[0].set_ylabel(f"final {_label(metric)}")
    axes[0].set_title(f"{dataset}: sensitivity to {s.factor.replace('_', ' ')}", fontsize=9)
    axes[1].set_title("near the best (bands: 95% CI; diamonds: best value, bootstrap CI)", fontsize=9)
    axes[0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def transfer(found: dict, metric: str) -> plt.Figure:
    """Final ``metric`` against the learning rate, one curve per width or depth (the mean over the seeds that
    finished), one panel per family (``bench.analysis.transfer.analyze``; in rows of three past four families);
    each size's best rate with its interval on top, the verdict on its move in the title (§ where the resamples
    cannot settle it, as the report's table marks it)."""
    from bench.analysis.transfer import MIN_SEEDS

    cols = len(found) if len(found) <= 4 else 3
    rows = -(-len(found) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False, constrained_layout=True)
    for ax in axes.ravel()[len(found):]:
        ax.set_visible(False)
    for ax, (name, t) in zip(axes.ravel(), found.items()):
        for w in t.sizes:
            line, = ax.plot(2.0 ** t.log2_lrs, t.curves[w], marker="o", ms=3, label=f"{t.axis} {w}")
            est, low, high = t.best[w]
            spread = [[2 ** est - 2 ** low], [2 ** high - 2 ** est]] if t.n_seeds >= MIN_SEEDS else None
            ax.errorbar([2 ** est], [t.best_loss[w]], xerr=spread, color=line.get_color(), marker="v", capsize=3)
        ax.set_xscale("log", base=2)
        values = np.concatenate([c[np.isfinite(c)] for c in t.curves.values()])
        if values.size and values.min() > 0 and values.max() > 10 * values.min():  # losses over decades
            ax.set_yscale("log")
        ax.set_title(f"{name}: {t.shift['verdict']}" + (" (§)" if t.shift.get("undecided") else ""), fontsize=9)
        ax.set_xlabel("learning rate")
        ax.set_ylabel(f"final {_label(metric)}")
        ax.legend(fontsize=8)
    return fig


def time_to_target(runs: pd.DataFrame, dataset: str, metric: str, target: float, first: int, tau: int,
                   level: float = 0.95) -> plt.Figure:
    """The share of each initializer's runs at the target by each epoch (the Kaplan-Meier estimate: runs censored
    only at the end of training), a step curve with its pointwise Wilson band; fastest (lowest RMST) first. The
    curves step at every time a run reached the target (a fraction of an epoch with evaluations within epochs).

    Args:
      runs: ``bench.analysis.speed.TaskSpeed.runs``: ``arm, time`` (NaN: never), ``restricted``.
    """
    from scipy import stats as sps

    reached = runs["time"].to_numpy(np.float64)
    epochs = np.unique(np.concatenate([[first, tau], reached[np.isfinite(reached) & (reached <= tau)]]))
    order = runs.groupby("arm", sort=False)["restricted"].mean().sort_values(kind="stable").index
    names, left_out = shown(list(order), {name: name for name in order})
    styles = arm_styles(runs["arm"])  # the experiment's order: each initializer its colour in every figure
    fig, ax = plt.subplots(figsize=(6.4, 4.0), constrained_layout=True)
    for name in names:
        times = runs.loc[runs["arm"] == name, "time"].to_numpy(np.float64)
        hits = np.array([(times <= e).sum() for e in epochs])
        share = hits / len(times)
        bands = [sps.binomtest(int(h), len(times)).proportion_ci(level, method="wilson") for h in hits]
        color, line = styles[name]
        ax.step(epochs, share, where="post", color=color, ls=line, label=name, lw=1.6)
        ax.fill_between(epochs, [b.low for b in bands], [b.high for b in bands], step="post", color=color,
                        alpha=0.12)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("epoch")
    ax.set_ylabel("share of runs at the target")
    _integer_epochs(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    ax.set_title(f"{dataset}: epochs to {_label(metric)} {target:.4g}" + (f" ({left_out})" if left_out else "")
                 + f"\ncensored at epoch {tau:g}; {level:.0%} Wilson bands", fontsize=10)
    return fig


def save(fig: plt.Figure, path_stem: Path, formats: tuple[str, ...]) -> list[Path]:
    """Writes ``path_stem.png`` / ``.pdf`` for each of ``formats`` (atomically) and closes the figure.

    Raises:
      UserError: the folder cannot be written (full disk, read-only); no partial file is left.
    """
    written = []
    try:
        for fmt in formats:
            path = path_stem.parent / f"{path_stem.name}.{fmt}"  # not with_suffix: a stem may hold a dot
            buffer = io.BytesIO()
            # no creation date: the same runs give byte-identical figures
            fig.savefig(buffer, dpi=150, format=fmt, metadata={"CreationDate": None} if fmt == "pdf" else {})
            _keep_layout(fig)
            written.append(write_atomic(path, buffer.getvalue()))
    finally:
        plt.close(fig)
    return written


def _keep_layout(fig: plt.Figure) -> None:
    """Leaves ``fig`` laid out as its last draw did, with no layout engine: a next format is drawn once. (With
    the ``"none"`` engine, a placeholder, ``savefig`` still drew it twice, the first time only to run that engine:
    the default preset's ten figures took 3.5-3.9 CPU-s instead of 4.6-4.8, the same bytes.) None means no
    engine only where the rc settings ask for none, hence the context."""
    with matplotlib.rc_context({"figure.autolayout": False, "figure.constrained_layout.use": False}):
        fig.set_layout_engine(None)
