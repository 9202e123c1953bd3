"""The three ways `bench perf` times an epoch train the same runs to the same parameters."""

import jax
import numpy as np
import pytest

from bench.training import perf


@pytest.mark.parametrize(("workload", "n_models", "chunk"), [("synthetic", 3, None), ("mnist", 3, None),
                                                             ("synthetic", 24, 2)])
def test_loop_scan_and_vmap_give_the_same_runs(workload, n_models, chunk):
    """24 models = 8 initializers x 3 seeds in chunks of 2 seeds: the last chunk is padded."""
    w = perf.WORKLOADS[workload]
    small = perf.Workload(
        w.name, w.n_features, w.n_classes, w.hidden, w.optimizer, w.lr, w.batch_size, 8 * w.batch_size
    )
    s = perf.setup(small, n_models=n_models)
    results = {
        "loop": perf.loop_variant(s)(),
        "scan": perf.scan_variant(s)(),
        "vmap": perf.vmap_variant(s, chunk)().runs(),
    }
    assert len(results["vmap"]) == n_models
    for i in range(n_models):
        for other in ("loop", "scan"):
            for a, b in zip(jax.tree.leaves(results["vmap"][i]), jax.tree.leaves(results[other][i])):
                np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    first = jax.tree.leaves(results["vmap"][0])
    assert not all(np.allclose(a, b) for a, b in zip(first, jax.tree.leaves(results["vmap"][1])))  # seeds differ


def test_flop_count_by_hand():
    s = perf.setup(perf.WORKLOADS["synthetic"], n_models=2)
    params = 20 * 64 + 64 + 64 * 64 + 64 + 64 * 1 + 1
    assert s.n_params == params
    assert s.flops_per_epoch == 6 * params * 32 * 25 * 2


def test_perf_says_what_it_times_and_ctrl_c_prints_the_rows_finished(monkeypatch, capsys):
    from bench import cli

    def one_row_then_ctrl_c(workloads, sizes, rows=None, log=None, **kwargs):
        log("timing synthetic, 8 model(s), vmap")
        rows.append({"workload": "synthetic", "models": 8, "layout": "8 x 1", "variant": "vmap", "seconds": 0.5,
                     "seed_epochs_per_s": 16.0, "gflops": 2.0})
        raise KeyboardInterrupt

    monkeypatch.setattr(perf, "measure", one_row_then_ctrl_c)
    monkeypatch.setattr(perf, "matmul_peak", lambda: 4.0)
    assert cli.main(["perf", "--models", "8", "--workloads", "synthetic"]) == 130
    out, err = capsys.readouterr()
    assert "timing synthetic, 8 model(s), vmap" in err and "interrupted; 1 measurement(s) finished (above)" in err
    row = next(line for line in out.splitlines() if line.strip().startswith("8 "))
    assert "vmap" in row and "50%" in row  # 2 of the 4 GFLOP/s peak
    assert cli.main(["perf", "--models", str(10**9)]) == 2
