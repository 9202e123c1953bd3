"""Reports: the summary tables printed to the terminal and written to ``report.md``.

Reports are rendered from the results table and its summary only; nothing here
trains or recomputes runs.
"""

from __future__ import annotations

import datetime
import platform
import subprocess
from pathlib import Path

import pandas as pd

from bench.store import write_atomic

METRIC_TITLES = {"test_accuracy": "test accuracy", "test_loss": "test loss"}


def environment() -> dict[str, str]:
    """Versions, backend and devices, for the report header."""
    import flax
    import jax
    import optax

    import initjax

    devices = jax.devices()
    return {
        "initjax": initjax.__version__,
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "python": platform.python_version(),
        "backend": jax.default_backend(),
        "devices": f"{len(devices)} x {devices[0].device_kind}",
        "git commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def git_commit() -> str:
    """The commit of the working tree this package runs from, with ``+dirty`` if changed."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def _interval(mean: float, low: float, high: float, digits: int) -> str:
    if pd.isna(mean):
        return "n/a"
    if pd.isna(low):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def summary_table(summary: pd.DataFrame, dataset: str, level: float = 0.95) -> pd.DataFrame:
    """Display table of one dataset, best mean test accuracy first.

    Columns: rank, initializer, ``test accuracy mean [95% CI]``,
    ``test loss mean [95% CI]``, diverged (``k/n``).
    """
    rows = summary[summary["dataset"] == dataset].sort_values("test_accuracy_mean", ascending=False)
    ci = f"mean [{level:.0%} CI]"
    table = pd.DataFrame(
        {
            "rank": range(1, len(rows) + 1),
            "initializer": rows["initializer"].to_numpy(),
            **{
                f"{title} {ci}": [
                    _interval(r[f"{metric}_mean"], r[f"{metric}_low"], r[f"{metric}_high"], 3)
                    for _, r in rows.iterrows()
                ]
                for metric, title in METRIC_TITLES.items()
            },
            "diverged": [f"{d}/{n}" for d, n in zip(rows["diverged"], rows["runs"])],
        }
    )
    return table


def console(summary: pd.DataFrame, tasks: dict[str, dict], level: float = 0.95) -> str:
    """The tables printed by ``python -m bench``, one per dataset."""
    blocks = []
    for dataset, info in tasks.items():
        table = summary_table(summary, dataset, level).to_markdown(index=False, tablefmt="simple")
        blocks.append(f"{dataset}: {info['model']}, {info['runs']} runs\n{table}")
    return "\n\n".join(blocks)


def render_markdown(meta: dict, summary: pd.DataFrame) -> str:
    """``report.md``: the experiment, its environment, and one summary table per dataset."""
    exp, env, stat = meta["experiment"], meta["environment"], meta["statistics"]
    train = exp["train"]
    header = {
        "preset": f"`{exp['name']}`",
        "initializers": ", ".join(f"`{name}`" for name in meta["initializers"]),
        "seeds": f"{exp['seeds']} per initializer, paired (seed i has the same data order and random stream for every initializer)",
        "training": f"{train['optimizer']}, lr {train['lr']:g}, batch {train['batch_size']}, {train['epochs']} epochs",
        "statistic": (
            f"mean over seeds at the last epoch, {stat['level']:.0%} {stat['method']} bootstrap CI "
            f"({stat['n_resamples']:,} resamples, seed {stat['seed']}); diverged runs counted, not averaged"
        ),
        "runs": f"{meta['runs']:,}",
        "wall time": f"{meta['wall_s']:.1f} s (compile {meta['compile_s']:.1f} s, initialization {meta['init_s']:.1f} s)",
        "environment": (
            f"initjax {env['initjax']}, jax {env['jax']}, flax {env['flax']}, optax {env['optax']}, "
            f"Python {env['python']}; backend {env['backend']}, {env['devices']}"
        ),
        "git commit": env["git commit"],
        "date": env["date"],
        "command": f"`{meta['command']}`",
    }
    lines = [f"# initjax report: {exp['name']}", "", exp["description"], ""]
    lines += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in header.items()]
    for dataset, info in meta["tasks"].items():
        table = summary_table(summary, dataset, stat["level"]).to_markdown(index=False)
        lines += [
            "",
            f"## {dataset}: {info['model']}",
            "",
            f"{info['runs']} runs; compile {info['compile_s']:.1f} s, training and evaluation "
            f"{info['train_s']:.1f} s ({info['seed_epochs_per_s']:,.0f} seed-epochs/s).",
            "",
            table,
        ]
    lines += ["", "Raw runs, one row per (dataset, model, initializer, seed, epoch): [results.csv](results.csv).", ""]
    return "\n".join(lines)


def write(out_dir: str | Path, results: pd.DataFrame, summary: pd.DataFrame, meta: dict) -> list[Path]:
    """Writes ``results.csv`` and ``report.md`` atomically into ``out_dir``."""
    out_dir = Path(out_dir)
    return [
        write_atomic(out_dir / "results.csv", results.to_csv(index=False, float_format="%.9g")),
        write_atomic(out_dir / "report.md", render_markdown(meta, summary)),
    ]
