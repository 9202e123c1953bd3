"""Reproductions: claims are judged by their stated criteria on the runs, and the command writes the verdicts."""

import re

import numpy as np
import pandas as pd
import pytest

from bench import cli, data, reproductions
from bench.experiments import presets
from bench.reproductions.reproduction import epochs_to, reproduce

GAUSS = "variance_scaling(distribution='normal')"
saxe_claims = reproductions.get("saxe2013").evaluate
postln_claims = reproductions.get("postln-init").evaluate
mup_claims = reproductions.get("mup-transfer").evaluate


def _saxe_results(epochs_to_threshold: dict) -> pd.DataFrame:
    """Runs whose train loss drops below 0.3 exactly at the given epoch, 3 seeds each."""
    rows = []
    for (init, depth), reach in epochs_to_threshold.items():
        for seed in range(3):
            for epoch in range(12):
                rows.append({"dataset": f"digits-depth{depth}", "model": "m", "arm": init, "seed": seed,
                             "epoch": epoch, "train_loss": 0.2 if epoch >= reach else 1.0, "diverged": False})
    return pd.DataFrame(rows)


def test_epochs_to_threshold_by_hand():
    results = _saxe_results({("orthogonal", 2): 4, (GAUSS, 2): 20})
    np.testing.assert_array_equal(epochs_to(results, "digits-depth2", "orthogonal", "train_loss", 0.3), 4)
    assert np.isinf(epochs_to(results, "digits-depth2", GAUSS, "train_loss", 0.3)).all()  # never


def test_saxe_claims_follow_their_criteria():
    flat = {("orthogonal", d): 5 for d in (2, 8, 32)} | {(GAUSS, 2): 5, (GAUSS, 8): 8, (GAUSS, 32): 11}
    held = saxe_claims(_saxe_results(flat), None)
    assert [f.held for f in held] == [True, True]
    faster = {("orthogonal", 2): 10, ("orthogonal", 8): 4, ("orthogonal", 32): 1,
              (GAUSS, 2): 10, (GAUSS, 8): 4, (GAUSS, 32): 1}
    assert [f.held for f in saxe_claims(_saxe_results(faster), None)] == [False, False]


@pytest.mark.slow  # a subprocess run or several: the second CI step
def test_reproduce_command_writes_the_verdicts(tmp_path, capsys):
    out = tmp_path / "saxe"
    smoke = ["reproduce", "saxe2013", "--smoke", "--out", str(out), "--no-progress", "--format", "md,csv"]
    assert cli.main(smoke) == 0
    text = (out / "reproduction.md").read_text()
    assert text.startswith("# Reproduction: Saxe, McClelland & Ganguli 2013")
    assert text.count("## Claim") == 2 and "claims held here" in text and (out / "report.md").is_file()
    drawn = {p.name for p in (out / "figures").iterdir()}  # the reproduction's own figures, not the report's
    assert drawn and all(f"figures/{name}" in text for name in drawn), drawn
    assert "claims held" in capsys.readouterr().out
    assert cli.main(["reproduce", "saxe2014", "--out", str(out)]) == 2


def _postln_results(losses: dict, diverged=()) -> pd.DataFrame:
    """Final-epoch rows of postln-init: ``losses[(task, init, lr)]`` = per-seed test losses; ``diverged``: keys whose
    seed 0 diverged (its loss NaN)."""
    rows = []
    for (task, init, lr), values in losses.items():
        for seed, value in enumerate(values):
            gone = (task, init, lr) in diverged and seed == 0
            rows.append({"dataset": task, "model": "m", "arm": f"{init} lr={lr:g}", "initializer": init, "lr": lr,
                         "seed": seed, "epoch": 8, "test_loss": np.nan if gone else value, "diverged": gone})
    return pd.DataFrame(rows)


def _postln_losses(**changes) -> dict:
    """Every claim of postln-init holds by a margin: each cell a level plus a per-seed wobble of +-0.01."""
    wobble = np.array([0.01, -0.01, 0.005, -0.005, 0.0, 0.002])
    level = {("pre-LN", "glorot_uniform", 0.001): 2.5, ("pre-LN", "glorot_uniform", 0.01): 2.1,
             ("post-LN", "glorot_uniform", 0.001): 2.5, ("post-LN", "glorot_uniform", 0.01): 2.77,
             ("post-LN", "deepnorm", 0.001): 2.5, ("post-LN", "deepnorm", 0.01): 2.1,
             ("no-LN", "glorot_uniform", 0.001): 2.6, ("no-LN", "glorot_uniform", 0.01): 2.7,
             ("no-LN", "t_fixup", 0.001): 2.5, ("no-LN", "t_fixup", 0.01): 2.13}
    level |= changes.get("level", {})
    return {key: value + wobble for key, value in level.items()}


def test_postln_claims_follow_their_criteria():
    assert [f.held for f in postln_claims(_postln_results(_postln_losses()), None)] == [True] * 4
    # a diverged run counts as the uniform guess, ln 16 = 2.77: post-LN Xavier diverging at 1e-2 still "trains
    # poorly", while a T-Fixup run that diverges breaks its claim
    gone = _postln_results(_postln_losses(), diverged={("post-LN", "glorot_uniform", 0.01), ("no-LN", "t_fixup", 0.01)})
    assert [f.held for f in postln_claims(gone, None)] == [True, True, True, False]
    np.testing.assert_allclose(reproductions.claims("postln-init").final_test_losses(
        gone, "post-LN", "glorot_uniform", 0.01).iloc[0], np.log(16))
    assert "(1 diverged)" in postln_claims(gone, None)[0].measured
    # each claim fails on its own when its criterion does
    fails = {0: {("post-LN", "glorot_uniform", 0.01): 2.45},  # the large rate no longer hurts post-LN Xavier
             1: {("pre-LN", "glorot_uniform", 0.01): 2.52},  # ... nor helps pre-LN
             2: {("post-LN", "deepnorm", 0.01): 2.6},  # DeepNorm is worse at the large rate than at the small
             3: {("no-LN", "t_fixup", 0.01): 2.2}}  # T-Fixup beats Xavier but is 0.1 nats behind pre-LN
    for claim, level in fails.items():
        held = [f.held for f in postln_claims(_postln_results(_postln_losses(level=level)), None)]
        assert held == [n != claim for n in range(4)], claim


def test_postln_preset_matches_the_constants_its_claims_use():
    POSTLN = reproductions.claims("postln-init")  # noqa: N806
    experiment = presets.get("postln-init")
    assert experiment.grid.lr == (POSTLN.POSTLN_LOW, POSTLN.POSTLN_HIGH)
    assert [t.name for t in experiment.tasks] == ["pre-LN", "post-LN", "no-LN"]
    assert {t.model_args["norm"] for t in experiment.tasks} == {"pre", "post", "none"}
    assert {data.load(t.dataset).n_classes for t in experiment.tasks} == {POSTLN.POSTLN_VOCAB}


def _transfer_results(optima: dict, noise=0.004, preset="mup-transfer") -> pd.DataFrame:
    """Final rows of a transfer preset: per task a parabola in log2 lr with its optimum at ``optima[task]``, 8 seeds
    (noise small enough that each shape model of ``bench.analysis.transfer`` places the optimum within half a factor
    2)."""
    rng = np.random.default_rng(0)
    lrs = presets.get(preset).grid.lr
    rows = []
    for task, (optimum, level) in optima.items():
        for seed in range(8):
            offset = rng.normal(0, 0.01)
            for lr in lrs:
                loss = level + 0.02 * (np.log2(lr) - optimum) ** 2 + offset + rng.normal(0, noise)
                rows.append({"dataset": task, "model": "m", "arm": f"lecun_normal lr={lr:g}", "lr": lr, "seed": seed,
                             "epoch": 8, "train_loss": loss, "diverged": False})
    return pd.DataFrame(rows)


def test_mup_transfer_claims_follow_their_criteria():
    paper = {"sp-64": (-6.0, 0.3), "sp-256": (-8.0, 0.25), "sp-1024": (-10.0, 0.2),
             "mup-64": (-6.0, 0.3), "mup-256": (-6.1, 0.25), "mup-1024": (-5.9, 0.2),
             "transformer-sp-32": (-8.0, 2.5), "transformer-sp-64": (-9.0, 2.3), "transformer-sp-128": (-10.0, 2.2),
             "transformer-mup-32": (-8.0, 2.5), "transformer-mup-64": (-8.2, 2.2),
             "transformer-mup-128": (-7.9, 2.0)}
    findings = mup_claims(_transfer_results(paper), None)
    assert [f.held for f in findings] == [True] * 6
    assert ["MLP" in f.claim for f in findings] == [True] * 3 + [False] * 3
    interval = re.search(r"width 1024: [0-9.e-]+ \[([0-9.e-]+), ([0-9.e-]+)\]", findings[0].measured)
    low, high = map(float, interval.groups())
    assert low < 2.0**-10 < high  # the optimum put there
    swapped = paper | {"sp-1024": (-6.0, 0.2), "mup-1024": (-9.0, 0.35)}  # SP transfers, muP does not, nor improves
    assert [f.held for f in mup_claims(_transfer_results(swapped), None)] == [False] * 3 + [True] * 3
    # each transformer claim fails on its own: SP stays, muP moves, the widest muP transformer is not the best
    for task, spec, claim in (("transformer-sp-128", (-8.1, 2.2), 3), ("transformer-mup-128", (-10.0, 2.0), 4),
                              ("transformer-mup-128", (-7.9, 2.3), 5)):
        held = [f.held for f in mup_claims(_transfer_results(paper | {task: spec}), None)]
        assert held == [n != claim for n in range(6)], task
    # the widest SP model's optimum beyond the grid's smallest rate: its argmin sits on the edge, no verdict
    beyond = paper | {"sp-1024": (-17.0, 0.2)}
    first = mup_claims(_transfer_results(beyond), None)[0]
    assert not first.held and "(at the grid's edge)" in first.measured


def test_mup_transfer_preset_pairs_every_width_under_both_parameterizations():
    names = pd.DataFrame({"dataset": [t.name for t in presets.get("mup-transfer").tasks]})
    tasks = reproductions.claims("mup-transfer").transfer_tasks(names)
    assert sorted(tasks.values()) == sorted([(f"MLP {p}", w) for p in ("mup", "sp") for w in (64, 256, 1024)]
                                            + [(f"transformer {p}", w) for p in ("mup", "sp") for w in (32, 64, 128)])
    assert {t.model: t.model_args["base_width"] for t in presets.get("mup-transfer").tasks} == {
        "mlp": 64, "transformer": 32}


def test_claims_are_checked_again_on_the_committed_runs_without_training(tmp_path, capsys):
    """``--from-results`` re-renders the report and the claims of a folder's runs; the runs are not touched, and a
    folder of another experiment is refused in one line."""
    import shutil
    from pathlib import Path

    committed = Path(__file__).parents[2] / "reports" / "he2015-depth"
    folder = tmp_path / "he"
    shutil.copytree(committed, folder)
    (folder / "reproduction.md").unlink()
    assert cli.main(["reproduce", "he2015-depth", "--from-results", "--out", str(folder)]) == 0
    assert (folder / "results.csv").read_bytes() == (committed / "results.csv").read_bytes()
    held = lambda text: re.findall(r"## Claim \d: (held|did not hold)", text)  # noqa: E731
    assert held((folder / "reproduction.md").read_text()) == held((committed / "reproduction.md").read_text())
    assert "--from-results" in (folder / "reproduction.md").read_text()
    capsys.readouterr()
    assert cli.main(["reproduce", "saxe2013", "--from-results", "--out", str(folder)]) == 2
    assert "holds a run of 'he2015-depth', not 'saxe2013'" in capsys.readouterr().err
    assert cli.main(["reproduce", "saxe2013", "--from-results", "--out", str(tmp_path / "none")]) == 2


TOY_CLAIMS = """
import numpy as np
from bench.reproductions.reproduction import Finding, ci, final_values

PAPER = "Toy & Example 2026, A claim about zeros"
NEEDS_DIAGNOSIS = False


def evaluate(results, diagnosis):
    zeros = final_values(results, "digits", "zeros", "test_accuracy")
    he = final_values(results, "digits", "he_normal", "test_accuracy")
    return [Finding("He init beats zeros.", f"zeros {ci(zeros)}, he_normal {ci(he)}", "mean of he_normal above",
                    bool(np.mean(he) > np.mean(zeros)))]
"""


def test_a_new_reproduction_is_one_folder(tmp_path):
    """A folder with experiment.toml, claims.py and notes.md is found by name and checked on its runs."""
    folder = tmp_path / "reproductions" / "toy_claim"
    folder.mkdir(parents=True)
    (folder / "experiment.toml").write_text(
        'name = "toy-claim"\ndescription = "zeros against He"\ninitializers = ["zeros", "he_normal"]\nseeds = 3\n'
        '[train]\nepochs = 2\n[[tasks]]\ndata = "digits"\nmodel = "mlp"\nhidden = [16]\n')
    (folder / "claims.py").write_text(TOY_CLAIMS)
    (folder / "notes.md").write_text("Smaller than the paper.\n")
    root = tmp_path / "reproductions"
    assert reproductions.names(root) == ["toy-claim"]
    toy = reproductions.get("toy-claim", root)

    def run(experiment, out):  # what `bench reproduce` passes: train and report
        from bench.experiments.runner import run_experiment

        return run_experiment(experiment, out, progress=False, formats=("md", "csv"))

    findings, files = reproduce(toy, tmp_path / "out", run, "test")
    assert [f.held for f in findings] == [True]
    text = (tmp_path / "out" / "reproduction.md").read_text()
    assert text.startswith("# Reproduction: Toy & Example 2026") and "## Notes\n\nSmaller than the paper." in text
    assert "**1 of 1 claims held here.**" in text and tmp_path / "out" / "reproduction.md" in files


def _depth_runs(he_epochs: float, xavier_epochs: float, seeds: int = 8) -> pd.DataFrame:
    """He et al.'s two tasks, 6 epochs: each run's training accuracy rises from 0.1 to 0.95, crossing 0.9 near the
    given epoch (jittered by seed); at depth 30 Xavier stays at chance."""
    rng = np.random.default_rng(0)
    rows = []
    for task in ("mnist-depth22", "mnist-depth30"):
        for arm, cross in (("glorot_normal", xavier_epochs), ("he_normal", he_epochs)):
            for seed in range(seeds):
                at = cross + rng.uniform(-0.4, 0.4)
                for epoch in range(7):
                    value = 0.1 if task == "mnist-depth30" and arm == "glorot_normal" else (
                        0.1 + 0.85 * min(1.0, epoch / at * 0.8 / 0.85) if epoch < at else 0.95)
                    rows.append({"dataset": task, "model": "m", "arm": arm, "initializer": arm, "seed": seed,
                                 "epoch": epoch, "train_accuracy": value, "diverged": False})
    return pd.DataFrame(rows)


def test_he2015s_speed_claim_holds_on_a_faster_he_and_fails_on_equal_speeds():
    """Claim 2 (depth 22: both train, He gets there first) by the report's time-to-target verdicts: He crossing 0.9
    at epoch 2 and Xavier at 4 holds; both at 3 does not (neither is *slower*)."""
    from bench.reproductions.he2015_depth import claims

    faster = claims.evaluate(_depth_runs(2.0, 4.0), None)
    assert [f.held for f in faster] == [True, True], faster[1].measured
    assert "Xavier minus He [+" in faster[1].measured
    same = claims.evaluate(_depth_runs(3.0, 3.0), None)
    assert not same[1].held and same[0].held


def test_depth_transfer_claims_follow_their_criteria():
    """Three claims per model (ResMLP, then the transformer), each failing on its own; a model without runs has no
    claims checked."""
    depth_claims = reproductions.get("depth-transfer").evaluate
    paper = {f"{model}{p}-{d}": (optimum, 0.3) for model in ("", "transformer-") for d in (2, 4, 8, 16)
             for p, optimum in (("mup", -6.0 - np.log2(d / 2)), ("depth_mup", -6.0), ("completep", -6.2))}

    def held(optima, transformer=False):  # the claims on one model's runs only
        runs = {task: spec for task, spec in optima.items() if task.startswith("transformer-") == transformer}
        return [f.held for f in depth_claims(_transfer_results(runs, preset="depth-transfer"), None)]

    findings = depth_claims(_transfer_results(paper, preset="depth-transfer"), None)
    assert [f.held for f in findings] == [True] * 6
    assert "from depth 2 to 16 it moves by a factor 0.12" in findings[0].measured  # 2^-3 put there
    assert "muP alone" in findings[0].claim and "Depth-muP" in findings[1].claim and "CompleteP" in findings[2].claim
    assert "ResMLP deepens" in findings[0].claim and "transformer deepens" in findings[3].claim
    # each claim fails on its own: muP's optimum stays, or moves up; a depth rule's moves 4x
    assert held(paper | {"mup-16": (-6.1, 0.3)}) == [False, True, True]
    assert held(paper | {"mup-16": (-4.0, 0.3)}) == [False, True, True]
    assert held(paper | {"depth_mup-16": (-8.0, 0.3)}) == [True, False, True]
    assert held(paper | {"completep-16": (-4.2, 0.3)}) == [True, True, False]
    assert held(paper | {"transformer-mup-16": (-6.1, 0.3)}, transformer=True) == [False, True, True]
    assert held(paper | {"transformer-depth_mup-16": (-8.0, 0.3)}, transformer=True) == [True, False, True]
    assert held(paper | {"transformer-completep-16": (-4.2, 0.3)}, transformer=True) == [True, True, False]


def test_a_shift_the_resamples_cannot_settle_is_marked_as_the_report_marks_it():
    """The verdict of the outer Monte Carlo bounds (``undecided``) may disagree with the interval as printed (an
    interval within [1/2, 2] called inconclusive): the claim's measurement says so with the report's §."""
    import dataclasses

    from bench.analysis import transfer
    from bench.reproductions.reproduction import moved

    optima = {f"{p}-{d}": (-6.0, 0.3) for d in (2, 16) for p in ("mup", "depth_mup", "completep")}
    found = transfer.analyze(_transfer_results(optima, preset="depth-transfer"),
                             {f"{p}-{d}": (p, d) for p, d in (name.rsplit("-", 1) for name in optima)},
                             transfer.METRIC, axis="depth")["mup"]
    assert found.shift["verdict"] == "stays" and "§" not in moved(found)
    unsettled = dataclasses.replace(found, shift=found.shift | {"verdict": "inconclusive", "undecided": True})
    assert moved(unsettled).endswith("(inconclusive §: the verdict changes within the Monte Carlo error of the "
                                     "bootstrap's percentiles, so it is the one of their outer bounds, as the "
                                     "report's § says)")


def test_depth_transfer_preset_pairs_every_depth_under_each_rule():
    names = pd.DataFrame({"dataset": [t.name for t in presets.get("depth-transfer").tasks]})
    tasks = reproductions.claims("depth-transfer").transfer_tasks(names)
    assert sorted(tasks.values()) == sorted((f"{model} {p}", d) for model in ("ResMLP", "transformer")
                                            for p in ("mup", "depth_mup", "completep") for d in (2, 4, 8, 16))
    assert {(t.model, t.model_args["base_width"], t.model_args.get("base_depth"), len(set(t.hidden)))
            for t in presets.get("depth-transfer").tasks} == {
        ("resmlp", 64, None, 1), ("resmlp", 64, 2, 1), ("transformer", 32, None, 1), ("transformer", 32, 2, 1)}


def _haas_results(stable_up_to: dict, on_line: dict | None = None) -> pd.DataFrame:
    """Final rows of haas2025: per task (``ce-64``, ...) every seed trains to accuracy 0.95 up to the rate
    ``2 ** stable_up_to[task]``; above it cross-entropy runs stay finite at accuracy 0.15 and squared-error runs
    diverge; ``on_line[(task, log2 lr)] = (accuracy, diverged seeds)`` overrides a cell."""
    lrs = presets.get("haas2025").grid.lr
    rows = []
    for task, top in stable_up_to.items():
        for lr in lrs:
            accuracy, n_diverged = (0.95, 0) if np.log2(lr) <= top else (0.15, 0 if task.startswith("ce") else 8)
            accuracy, n_diverged = (on_line or {}).get((task, round(np.log2(lr))), (accuracy, n_diverged))
            for seed in range(8):
                diverged = seed < n_diverged
                rows.append({"dataset": task, "model": "m", "arm": f"he_normal lr={lr:g}", "lr": lr, "seed": seed,
                             "epoch": 3, "train_accuracy": np.nan if diverged else accuracy + 0.001 * seed,
                             "diverged": diverged})
    return pd.DataFrame(rows)


def test_haas_claims_follow_their_criteria():
    haas_claims = reproductions.get("haas2025").evaluate
    paper = {"ce-64": 1, "ce-256": 1, "ce-1024": 1, "ce-4096": 1,
             "mse-64": -1, "mse-256": -3, "mse-1024": -5, "mse-4096": -7}

    def held(stable_up_to, on_line=None):
        return [f.held for f in haas_claims(_haas_results(stable_up_to, on_line), None)]

    findings = haas_claims(_haas_results(paper), None)
    assert [f.held for f in findings] == [True] * 4
    assert "exponent against width 0.00 [0.00, 0.00]" in findings[0].measured
    assert "width 4096: 0.0078" in findings[1].measured and "exponent against width -1.00" in findings[1].measured
    assert "width 4096 at lr 0.0625: 0.9535 [" in findings[2].measured
    assert "8 of 8 diverged; diverged share at width 4096: 1.00 [0.68, 1.00]" in findings[3].measured
    # each claim fails on its own: cross-entropy's stable rate falls at -0.65, squared error's at -0.65, the widest
    # cross-entropy model on the line trains to 0.8 only, 3 of 8 of the widest squared-error runs diverge there
    assert held(paper | {"ce-256": 0, "ce-1024": -1, "ce-4096": -3}) == [False, True, True, True]
    assert held(paper | {"mse-256": -2, "mse-1024": -3, "mse-4096": -5}) == [True, False, True, True]
    assert held(paper, {("ce-4096", -4): (0.8, 0)}) == [True, True, False, True]
    assert held(paper, {("mse-4096", -4): (0.95, 3)}) == [True, True, True, False]
    # a diverged run makes a rate unstable, whatever the others reach; no stable rate at a width: no exponent
    assert held(paper, {("ce-64", 1): (0.95, 1)})[0] is True  # 2^1 unstable at width 64: the exponent rises
    assert held(paper | {"mse-4096": -20}) == [True, False, True, True]


def test_haas_preset_pairs_each_width_under_both_losses():
    claims = reproductions.claims("haas2025")
    tasks = {t.name: (t.loss, t.hidden, t.model_args) for t in presets.get("haas2025").tasks}
    assert tasks == {f"{short}-{w}": (loss, (w,), {"parameterization": "sp", "base_width": 64})
                     for short, loss in (("ce", "softmax_cross_entropy"), ("mse", "one_hot_squared_error"))
                     for w in claims.WIDTHS}
    lrs = np.log2(presets.get("haas2025").grid.lr)
    assert all(np.isclose(lrs, np.log2(claims.LINE * (64 / w) ** 0.5)).any() for w in claims.WIDTHS)  # on the grid


def _bassi_inputs(share: dict, accuracy: dict):
    """A diagnosis whose untrained networks put ``share[w]`` (+- 0.02 over 8 seeds) of their inputs in one class, and
    runs whose training accuracy after epoch 1 is ``accuracy[w]`` (+- 0.01), per sigma_w^2 ``w``."""
    from bench.studies.diagnose import Diagnosis

    spread = np.linspace(-1, 1, 8)
    arm = "mean_field(sigma_b2=0.05, sigma_w2={:g})".format
    guessing = pd.DataFrame([{"dataset": "digits-depth16", "arm": arm(w), "seed": s, "max_share": share[w] + 0.02 * d,
                              "entropy": 0.5} for w in share for s, d in enumerate(spread)])
    rows = [{"dataset": "digits-depth16", "model": "m", "arm": arm(w), "seed": s, "epoch": e, "diverged": False,
             "train_accuracy": (0.1 if e == 0 else accuracy[w] + 0.01 * d)}
            for w in accuracy for s, d in enumerate(spread) for e in (0, 1, 2)]
    return pd.DataFrame(rows), Diagnosis(pd.DataFrame(), pd.DataFrame(), guessing=guessing)


def test_bassi_claims_follow_their_criteria():
    bassi_claims = reproductions.get("bassi2026").evaluate
    share = {0.6: 1.0, 1.2: 0.72, 1.76: 0.45, 2.5: 0.3, 4.0: 0.22, 8.0: 0.17}
    accuracy = {0.6: 0.1, 1.2: 0.85, 1.76: 0.93, 2.5: 0.92, 4.0: 0.74, 8.0: 0.37}

    def held(shares, accuracies):
        return [f.held for f in bassi_claims(*_bassi_inputs(shares, accuracies))]

    findings = bassi_claims(*_bassi_inputs(share, accuracy))
    assert [f.held for f in findings] == [True] * 3
    assert findings[0].measured.startswith("largest class share of the untrained network at sigma_w^2 = 1.76")
    assert "0.6: 1, 1.2: 0.72, 1.76: 0.45" in findings[1].measured and "paired by seed: 0.56 [" in findings[2].measured
    # each claim fails on its own: a neutral edge (its interval reaching 0.2), a bias that rises in the chaotic
    # phase, a most-neutral initialization that trains as fast as the edge
    assert held(share | {1.76: 0.205, 2.5: 0.19, 4.0: 0.18}, accuracy) == [False, True, True]
    assert held(share | {8.0: 0.25}, accuracy) == [True, False, True]
    assert held(share, accuracy | {8.0: 0.93}) == [True, True, False]


def test_lingle_claims_follow_their_criteria():
    lingle_claims = reproductions.get("lingle2025").evaluate
    paper = {f"{variant}-{w}": (optimum, 2.5 - 0.1 * np.log2(w / 32)) for w in (32, 64, 128)
             for variant, optimum in (("baseline", -8.0), ("gains", -8.0 - np.log2(w / 32)),
                                      ("sqrt-attention", -8.0 - np.log2(w / 32)))}

    def held(optima):
        return [f.held for f in lingle_claims(_transfer_results(optima, preset="lingle2025"), None)]

    findings = lingle_claims(_transfer_results(paper, preset="lingle2025"), None)
    assert [f.held for f in findings] == [True] * 3
    assert "non-parametric" in findings[0].claim and "gains" in findings[1].claim and "1/sqrt(d)" in findings[2].claim
    assert "from width 32 to 128 it moves by a factor 0.2" in findings[1].measured  # 2^-2 put there
    # each claim fails on its own: the baseline's optimum moves 4x, a variant's stays
    assert held(paper | {"baseline-128": (-10.0, 2.3)}) == [False, True, True]
    assert held(paper | {"gains-64": (-8.0, 2.4), "gains-128": (-8.1, 2.3)}) == [True, False, True]
    assert held(paper | {"sqrt-attention-64": (-8.0, 2.4), "sqrt-attention-128": (-7.9, 2.3)}) == [True, True, False]


def test_lingle_preset_pairs_every_width_under_each_variant():
    experiment = presets.get("lingle2025")
    names = pd.DataFrame({"dataset": [t.name for t in experiment.tasks]})
    tasks = reproductions.claims("lingle2025").transfer_tasks(names)
    assert sorted(tasks.values()) == sorted((v, w) for v in ("baseline", "gains", "sqrt-attention")
                                            for w in (32, 64, 128))
    options = {name.rsplit("-", 1)[0]: (t.model_args["norm_gains"], t.model_args["parameterization"],
                                        t.model_args["base_width"], t.model_args["heads"])
               for name, t in zip(names["dataset"], experiment.tasks)}
    assert options == {"baseline": (False, "mup", 32, 4), "gains": (True, "mup", 32, 4),
                       "sqrt-attention": (False, "mup(attention=0.5)", 32, 4)}
