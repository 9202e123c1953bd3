"""``python -m bench list``: every registry a run names: presets, initializers and schemes, parameterizations,
datasets, models, losses, optimizers, schedules and reproductions."""

from __future__ import annotations

import argparse

NAME = "list"
HELP = "presets, initializers, parameterizations, datasets, models, losses, optimizers, schedules, reproductions"
EXAMPLES = ("python -m bench list",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def listing() -> str:
    """What ``python -m bench list`` prints."""
    import initjax
    from bench import models, reproductions
    from bench.data import datasets, sequences, text
    from bench.experiments import presets
    from bench.models import losses
    from bench.training import recipes
    from initjax.parameterization import PARAMETERIZATIONS

    lines = ["presets:"]
    for name in presets.names():
        exp = presets.get(name)
        lines.append(f"  {name:<22} {exp.description}")
    lines.append("initializers (spec strings take arguments: normal(stddev=0.1)):")
    for name, entry in initjax.REGISTRY.items():
        flag = {True: " [truncated]", False: "", None: ""}[entry.truncated]
        lines.append(f"  {name:<22} {entry.summary}{flag if entry.alias_of is None else ''}")
    lines.append("datasets:")
    lines += [f"  {name:<22} {summary}" for name, (_, summary) in datasets.LOADERS.items()]
    lines.append('sequence generators (data = "markov(vocab=32, order=2)"; model transformer):')
    lines += [f"  {name:<22} {summary}" for name, (_, summary) in sequences.GENERATORS.items()]
    lines.append('text, character by character (data = "tiny_shakespeare"; model transformer):')
    lines += [f"  {name:<22} {summary}" for name, (_, summary) in text.TEXTS.items()]
    lines.append("models:")
    lines += [f"  {name:<22} {kind.summary}" for name, kind in models.MODELS.items()]
    lines.append(f"activations (--activation): {', '.join(models.ACTIVATIONS)}")
    lines.append('losses (a task\'s loss = "mean_squared_error"):')
    lines += [f"  {name:<22} {summary}" for name, (_, summary) in losses.LOSSES.items()]
    lines.append(f"optimizers: {', '.join(recipes.OPTIMIZERS)}")
    lines.append('schedules ([train] schedule = "warmup_cosine(warmup=0.1)"):')
    lines += [f"  {name:<22} {summary}" for name, summary in recipes.SCHEDULES.items()]
    lines.append('parameterizations (a task\'s model_args = { parameterization = "mup", base_width = 64 }):')
    lines += [f"  {name:<22} {p.reference}" for name, p in PARAMETERIZATIONS.items()]
    lines.append("reproductions (python -m bench reproduce NAME):")
    lines += [f"  {name:<22} {_headline(reproductions.folder(name) / 'experiment.toml')}"
              for name in reproductions.names()]
    return "\n".join(lines)


def _headline(experiment_file) -> str:
    """A reproduction's paper and what it reproduces: its experiment file's description up to the first colon (read
    as text, so listing imports none of the claims' analysis)."""
    import tomllib

    with open(experiment_file, "rb") as f:
        return tomllib.load(f).get("description", "").split(":")[0]


def main(args: argparse.Namespace, argv: list[str]) -> int:
    print(listing())
    return 0
