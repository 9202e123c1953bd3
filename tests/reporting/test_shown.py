"""Figures of many arms: a grid's figures draw each initializer at its best grid point, at most MAX_SHOWN, and say so
in the title; the tables keep every arm."""

import numpy as np
import pandas as pd

from bench.reporting import figures
from bench.reporting.shown import MAX_SHOWN, initializers_of, shown


def _grid_results(n_initializers=8, lrs=(1e-3, 1e-2, 1e-1)):
    """Final accuracies of a grid: initializer i at learning rate lr has mean 0.9 - 0.01 i - |log10(lr) + 2| / 10,
    so each initializer's best point is lr = 1e-2 and the initializers rank in their order."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_initializers):
        for lr in lrs:
            mean = 0.9 - 0.01 * i - abs(np.log10(lr) + 2) / 10
            rows += [{"dataset": "toy", "model": "m", "arm": f"init{i} lr={lr:g}", "initializer": f"init{i}", "lr": lr,
                      "seed": seed, "epoch": epoch, "test_accuracy": mean * epoch / 2 + 0.001 * rng.normal(),
                      "diverged": False} for seed in range(4) for epoch in range(3)]
    return pd.DataFrame(rows)


def test_a_grid_is_drawn_as_each_initializer_at_its_best_point():
    results = _grid_results()
    order = [f"init{i} lr={lr:g}" for lr in (1e-2, 1e-3, 1e-1) for i in range(8)]  # what a ranking would give
    picked, note = shown(sorted(order, key=lambda a: (abs(np.log10(float(a.split("=")[1])) + 2), a)),
                         initializers_of(results))
    assert picked == [f"init{i} lr=0.01" for i in range(8)]
    assert note == "each initializer at its best grid point, 8 of 24 arms"
    curves = figures.learning_curves(results, "toy", "test_accuracy")
    assert [t.get_text() for t in curves.axes[0].get_legend().get_texts()] == picked
    assert "8 of 24 arms" in curves.axes[0].get_title()
    box = figures.final_distribution(results, "toy", "test_accuracy")
    assert [t.get_text() for t in box.axes[0].get_xticklabels()] == picked


def test_many_initializers_keep_the_best_few_and_few_keep_all():
    names = [f"i{k}" for k in range(MAX_SHOWN + 5)]
    picked, note = shown(names, {n: n for n in names})
    assert picked == names[:MAX_SHOWN] and note == f"the best {MAX_SHOWN} of {len(names)} arms"
    assert shown(names[:MAX_SHOWN], {}) == (names[:MAX_SHOWN], "")
    many = _grid_results(n_initializers=MAX_SHOWN + 2, lrs=(1e-2, 1e-1))
    picked, note = shown(sorted(many["arm"].unique(), key=lambda a: (a.endswith("0.1"), int(a[4:].split()[0]))),
                         initializers_of(many))
    assert picked == [f"init{i} lr=0.01" for i in range(MAX_SHOWN)]
    assert note == f"each initializer at its best grid point, {MAX_SHOWN + 2} of {2 * MAX_SHOWN + 4} arms; " \
                   f"the best {MAX_SHOWN}"
