"""Reproductions: claims are judged by their stated criteria on the runs, and the command writes the verdicts."""

import numpy as np
import pandas as pd
import pytest

from bench import cli, reproduce

GAUSS = "variance_scaling(distribution='normal')"


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
    np.testing.assert_array_equal(reproduce._epochs_to(results, "digits-depth2", "orthogonal", "train_loss", 0.3), 4)
    assert np.isinf(reproduce._epochs_to(results, "digits-depth2", GAUSS, "train_loss", 0.3)).all()  # never


def test_saxe_claims_follow_their_criteria():
    flat = {("orthogonal", d): 5 for d in (2, 8, 32)} | {(GAUSS, 2): 5, (GAUSS, 8): 8, (GAUSS, 32): 11}
    held = reproduce._saxe2013(_saxe_results(flat), None)
    assert [f.held for f in held] == [True, True]
    faster = {("orthogonal", 2): 10, ("orthogonal", 8): 4, ("orthogonal", 32): 1,
              (GAUSS, 2): 10, (GAUSS, 8): 4, (GAUSS, 32): 1}
    assert [f.held for f in reproduce._saxe2013(_saxe_results(faster), None)] == [False, False]


@pytest.mark.slow  # a subprocess run or several: the second CI step
def test_reproduce_command_writes_the_verdicts(tmp_path, capsys):
    out = tmp_path / "saxe"
    assert cli.main(["reproduce", "saxe2013", "--smoke", "--out", str(out), "--no-progress"]) == 0
    text = (out / "reproduction.md").read_text()
    assert text.startswith("# Reproduction: Saxe, McClelland & Ganguli 2013")
    assert text.count("## Claim") == 2 and "claims held here" in text and (out / "report.md").is_file()
    assert "claims held" in capsys.readouterr().out
    assert cli.main(["reproduce", "saxe2014", "--out", str(out)]) == 2
