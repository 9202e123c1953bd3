"""He et al. 2015: deep ReLU networks train with He init where Xavier init stalls.

Checked on the runs of ``experiment.toml`` beside this file (``bench.reproductions``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.reproductions.reproduction import Finding, ci, final_values, time_to

PAPER = "He, Zhang, Ren & Sun 2015, Delving deep into rectifiers, ICCV"
NEEDS_DIAGNOSIS = False


def evaluate(results: pd.DataFrame, diagnosis) -> list[Finding]:
    xavier, he = "glorot_normal", "he_normal"
    acc = {(t, i): final_values(results, t, i, "train_accuracy") for t in ("mnist-depth22", "mnist-depth30")
           for i in (xavier, he)}
    fast = time_to(results, "mnist-depth22", "train_accuracy", 0.9)
    arms = fast.arms.set_index("arm")
    rmst = {i: f"{arms.at[i, 'rmst']:.2f} [{arms.at[i, 'rmst_low']:.2f}, {arms.at[i, 'rmst_high']:.2f}]"
            for i in (xavier, he)}
    return [
        Finding(
            "Fig. 3: at depth 30 the Xavier-initialized ReLU network stalls while the He-initialized one trains.",
            f"final training accuracy at depth 30: Xavier {ci(acc['mnist-depth30', xavier])}, "
            f"He {ci(acc['mnist-depth30', he])} (chance 0.1)",
            "Xavier mean < 0.2 and He mean > 0.9",
            bool(np.mean(acc["mnist-depth30", xavier]) < 0.2 and np.mean(acc["mnist-depth30", he]) > 0.9),
        ),
        Finding(
            "Fig. 2: at depth 22 both train, and He init gets there first.",
            f"final training accuracy at depth 22: Xavier {ci(acc['mnist-depth22', xavier])}, "
            f"He {ci(acc['mnist-depth22', he])}; epochs to 0.9 training accuracy (a run short of it censored at "
            f"epoch {fast.tau:g}), restricted mean: Xavier {rmst[xavier]} ({arms.at[xavier, 'reached']:.0%} got "
            f"there), He {rmst[he]} ({arms.at[he, 'reached']:.0%}); Xavier minus He "
            f"[{arms.at[xavier, 'to_best_low']:+.2f}, {arms.at[xavier, 'to_best_high']:+.2f}] epochs "
            "(simultaneous 95%, paired by seed)",
            "both means > 0.9 and He faster: Xavier's speed verdict *slower* (the interval of Xavier's restricted "
            "mean time minus He's above 0)",
            bool(np.mean(acc["mnist-depth22", xavier]) > 0.9 and np.mean(acc["mnist-depth22", he]) > 0.9
                 and arms.at[xavier, "verdict"] == "slower"),
        ),
    ]
