"""The three ways `bench perf` times an epoch train the same runs to the same parameters."""

import dataclasses

import jax
import numpy as np
import pytest

from bench.studies import notebook_job, perf


@pytest.mark.parametrize(("workload", "n_models", "chunk"), [("mnist", 3, None), ("synthetic", 24, 2),
                                                             ("transformer", 2, None), ("digits-cnn", 3, None)])
def test_loop_scan_and_vmap_give_the_same_runs(workload, n_models, chunk):
    """24 models = 8 initializers x 3 seeds in chunks of 2 seeds: the last chunk is padded. The conv net's suite
    program computes its convolutions as products of patches (``bench.training.batching``), the loops XLA's."""
    w = perf.WORKLOADS[workload]
    small = dataclasses.replace(w, n_examples=8 * w.batch_size)
    if w.kind == "transformer":  # one block of width 16, context 8: what is compared is the same, compiled quicker
        small = dataclasses.replace(w, n_examples=2 * w.batch_size, n_features=8, n_classes=8, hidden=(16,))
    if w.kind == "conv":  # SGD: Adam turns the rounding of a near-zero gradient into a step of the learning rate
        small = dataclasses.replace(small, optimizer="sgd", lr=0.01)
    s = perf.setup(small, n_models=n_models)
    results = {
        "loop": perf.loop_variant(s)(),
        "scan": perf.scan_variant(s)(),
        "vmap": perf.vmap_variant(s, chunk)().runs(),
    }
    assert len(results["vmap"]) == n_models
    # Adam turns the rounding of a near-zero gradient entry into a step of up to lr (1e-3): the transformer's
    # thousands of such entries (attention at init) get a looser absolute tolerance, still 30x below one step
    atol = 3e-5 if w.kind == "transformer" else 2e-6
    for i in range(n_models):
        for other in ("loop", "scan"):
            for a, b in zip(jax.tree.leaves(results["vmap"][i]), jax.tree.leaves(results[other][i])):
                np.testing.assert_allclose(a, b, rtol=2e-5, atol=atol)
    first = jax.tree.leaves(results["vmap"][0])
    assert not all(np.allclose(a, b) for a, b in zip(first, jax.tree.leaves(results["vmap"][1])))  # seeds differ


def test_flop_count_by_hand():
    s = perf.setup(perf.WORKLOADS["synthetic"], n_models=2)
    params = 20 * 64 + 64 + 64 * 64 + 64 + 64 * 1 + 1
    assert s.n_params == params
    assert s.flops_per_epoch == 6 * params * 32 * 25 * 2


def test_transformer_flops_count_every_predicted_token():
    w = perf.WORKLOADS["transformer"]
    s = perf.setup(w, n_models=1)
    d, v, t = 32, 32, 32
    block = (4 * d * d + 3 * d) + (8 * d * d + 5 * d) + 4 * d + 1  # attention (no key bias), MLP, 2 LayerNorms, alpha
    assert s.n_params == v * d + t * d + 2 * block + 2 * d + d * v + v
    assert s.flops_per_epoch == 6 * s.n_params * 32 * t * (w.n_examples // 32)


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


def test_alternated_times_each_run_once_a_round_in_changing_orders():
    calls: list[str] = []
    runs = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = perf.alternated(runs, rounds=8, repeats=2)
    assert calls[:3] == ["a", "b", "c"]  # warmed up once each, then 8 rounds of 2 calls each
    rounds = [calls[3 + 6 * r: 9 + 6 * r] for r in range(8)]
    assert all(sorted(r) == ["a", "a", "b", "b", "c", "c"] and r[0] == r[1] for r in rounds)
    assert len({tuple(r[::2]) for r in rounds}) > 1  # the order changes between rounds
    assert {name: len(t) for name, t in times.items()} == {"a": 8, "b": 8, "c": 8}


# ---------------------------------------------------------------- the torch peer (skipped without torch)


@pytest.mark.parametrize("name", ["zeros", "random_normal", "glorot_normal", "glorot_uniform", "he_normal",
                                  "he_uniform", "lecun_normal", "orthogonal"])
def test_the_torch_peer_draws_the_notebooks_initializers(name):
    """Each of the notebook's 8 in torch has initjax's standard deviation (a 400 x 300 kernel: 120,000 draws, so the
    sd is known to 0.3%); orthogonal's rows are orthonormal."""
    torch = pytest.importorskip("torch", reason="the torch peer needs the peers extra")
    import initjax
    from bench.studies import peers

    fan_out, fan_in = 300, 400
    weight = torch.empty(fan_out, fan_in)  # torch's Linear weight is (out, in); initjax's kernel (in, out)
    torch.manual_seed(0)
    peers.torch_init(name)(weight)
    theirs = weight.numpy()
    ours = np.asarray(initjax.get(name)(jax.random.key(0), (fan_in, fan_out)))
    if name == "zeros":
        assert not theirs.any() and not ours.any()
        return
    np.testing.assert_allclose(theirs.std(), ours.std(), rtol=0.02)
    if name == "orthogonal":
        np.testing.assert_allclose(theirs @ theirs.T, np.eye(fan_out), atol=1e-5)


def test_the_torch_peer_learns_what_initjax_learns():
    """The notebook job, small (8 initializers x 4 seeds, 3 epochs): both peers' 7 non-zero initializers reach the
    same mean test accuracy within 4 pp, and zeros (no gradient past the head) stays at chance in both."""
    pytest.importorskip("torch", reason="the torch peer needs the peers extra")
    from bench.data import datasets
    from bench.studies import peers

    theirs = peers.notebook_job(*peers.as_arrays(datasets.load("synthetic")), n_seeds=4, epochs=3)
    ours = notebook_job.notebook_job(n_seeds=4, epochs=3)
    assert theirs["test_accuracy"].shape == ours["test_accuracy"].shape == (8, 4)
    assert abs(theirs["test_accuracy"][1:].mean() - ours["test_accuracy"][1:].mean()) < 0.04
    assert ours["test_accuracy"][1:].mean() > 0.75
    assert abs(theirs["test_accuracy"][0].mean() - ours["test_accuracy"][0].mean()) < 0.1
