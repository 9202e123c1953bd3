"""``python -m bench list``: list the presets, initializers, datasets, models and optimizers."""

from __future__ import annotations

import argparse

NAME = "list"
HELP = "presets, initializers, datasets, models, optimizers"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def listing() -> str:
    """What ``python -m bench list`` prints."""
    import initjax
    from bench import models
    from bench.data import datasets, sequences, text
    from bench.experiments import presets
    from bench.training import recipes

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
    lines.append(f"optimizers: {', '.join(recipes.OPTIMIZERS)}")
    return "\n".join(lines)


def main(args: argparse.Namespace, argv: list[str]) -> int:
    print(listing())
    return 0
