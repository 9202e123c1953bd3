"""The Keras initializer notebook's MLP trained in plain PyTorch, then analysed by initjax.

Eight ``torch.nn.init`` initializers x 8 seeds of the notebook's MLP (20-64-64-1, ReLU, sigmoid output) on
``make_classification(1000 x 20)`` (the suite's ``synthetic`` task: the same data and split), Adam lr 1e-3,
batch 32, 10 epochs: a loop as a PyTorch user writes it, one run at a time. It writes

- ``runs.csv``: one row per run and epoch (``task, model, init, seed, epoch, test_accuracy, test_loss``; epoch 0
  is the untrained network);
- ``outcomes.csv``: every run's final per-example test outcomes (``init, seed, example, correct, loss``), so
  that the intervals count the test set's sampling error;
- with ``--tensorboard DIR``, the same curves as TensorBoard logs (``DIR/<init>/seed<seed>/``);

then runs the one command that turns them into initjax's report::

    python -m bench analyze runs.csv --arm init --seed seed --epoch epoch --task task --model model \\
        --metric test_accuracy --outcomes outcomes.csv --paired --out OUT/report

Seed ``s`` is a common random number of every initializer (the same shuffling of the training set, from its own
generator), hence ``--paired``. Needs torch (``pip install -e '.[peers]'``; the CPU build is enough)::

    python examples/pytorch_mlp.py --out runs/pytorch-mlp          # about a minute on 2 CPU cores
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split
from torch import nn

MODEL = "MLP 20-64-64-1 relu (PyTorch)"
KERAS_TRUNCATED = 0.87962566103423978  # std of a unit normal truncated at +-2: Keras' variance-scaling correction


def lecun_normal_(weight: torch.Tensor) -> torch.Tensor:
    """Keras' ``lecun_normal``: a normal of variance 1/fan_in truncated at two standard deviations."""
    std = math.sqrt(1.0 / weight.shape[1]) / KERAS_TRUNCATED
    return nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)


INITIALIZERS = {  # the notebook's eight, as torch.nn.init writes them (weights are (out, in): fan_in is shape[1])
    "zeros": nn.init.zeros_,
    "random_normal": lambda w: nn.init.normal_(w, std=0.05),  # Keras' RandomNormal default
    "glorot_normal": nn.init.xavier_normal_,
    "glorot_uniform": nn.init.xavier_uniform_,
    "he_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
    "he_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
    "lecun_normal": lecun_normal_,
    "orthogonal": nn.init.orthogonal_,
}


def notebook_data():
    """The notebook's task: 800 train / 200 test examples of ``make_classification`` (as the suite's synthetic)."""
    x, y = make_classification(n_samples=1000, n_features=20, n_classes=2, random_state=42)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=42)
    as_tensor = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return as_tensor(x_train), as_tensor(y_train), as_tensor(x_test), as_tensor(y_test)


def mlp(initializer) -> nn.Sequential:
    """20-64-64-1 with ReLU; the sigmoid is in the loss (``BCEWithLogitsLoss``). Biases start at zero (Keras')."""
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
    for layer in model:
        if isinstance(layer, nn.Linear):
            initializer(layer.weight)
            nn.init.zeros_(layer.bias)
    return model


@torch.no_grad()
def evaluate(model, x, y) -> tuple[np.ndarray, np.ndarray]:
    """Per-example ``(correct, loss)`` on ``(x, y)``."""
    logits = model(x).squeeze(-1)
    loss = nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
    return ((logits > 0).float() == y).numpy().astype(int), loss.numpy()


def train_run(name: str, seed: int, data, epochs: int, writer_root: Path | None):
    """One run: the curve (rows of ``runs.csv``) and the final per-example outcomes."""
    x_train, y_train, x_test, y_test = data
    torch.manual_seed(seed)  # the initial draw
    model = mlp(INITIALIZERS[name])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.Generator().manual_seed(seed)  # the data order: the same for every initializer (paired)
    writer = None
    if writer_root is not None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(writer_root / name / f"seed{seed}"))
    rows = []
    for epoch in range(epochs + 1):
        if epoch:
            model.train()
            for batch in torch.randperm(len(x_train), generator=order).split(32):
                optimizer.zero_grad()
                loss = nn.functional.binary_cross_entropy_with_logits(model(x_train[batch]).squeeze(-1),
                                                                      y_train[batch])
                loss.backward()
                optimizer.step()
        model.eval()
        correct, losses = evaluate(model, x_test, y_test)
        accuracy, mean_loss = float(correct.mean()), float(losses.mean())
        rows.append({"task": "synthetic", "model": MODEL, "init": name, "seed": seed, "epoch": epoch,
                     "test_accuracy": accuracy, "test_loss": mean_loss})
        if writer is not None:
            writer.add_scalar("test/accuracy", accuracy, epoch)
            writer.add_scalar("test/loss", mean_loss, epoch)
    if writer is not None:
        writer.close()
    outcomes = pd.DataFrame({"task": "synthetic", "init": name, "seed": seed, "example": np.arange(len(correct)),
                             "correct": correct, "loss": losses})
    return rows, outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/pytorch-mlp", help="folder for runs.csv, outcomes.csv and the report")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--initializers", default=",".join(INITIALIZERS), help="comma-separated, of the eight")
    parser.add_argument("--tensorboard", help="also log the curves to this folder, as TensorBoard events")
    parser.add_argument("--no-report", dest="report", action="store_false", help="write the tables only")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.tensorboard and Path(args.tensorboard).is_dir() and any(Path(args.tensorboard).iterdir()):
        parser.error(f"{args.tensorboard} already holds logs; give an empty folder (a second run's events would "
                     "repeat every step)")
    torch.set_num_threads(1)  # tiny matrices: threads cost more than they give
    data = notebook_data()
    rows, outcomes = [], []
    for name in args.initializers.split(","):
        for seed in range(args.seeds):
            curve, final = train_run(name, seed, data, args.epochs,
                                     Path(args.tensorboard) if args.tensorboard else None)
            rows += curve
            outcomes.append(final)
        print(f"{name}: {args.seeds} runs, mean final test accuracy "
              f"{np.mean([r['test_accuracy'] for r in rows if r['init'] == name and r['epoch'] == args.epochs]):.3f}",
              file=sys.stderr)
    pd.DataFrame(rows).to_csv(out / "runs.csv", index=False)
    pd.concat(outcomes).to_csv(out / "outcomes.csv", index=False)
    if not args.report:
        return 0
    command = [sys.executable, "-m", "bench", "analyze", str(out / "runs.csv"), "--arm", "init", "--seed", "seed",
               "--epoch", "epoch", "--task", "task", "--model", "model", "--metric", "test_accuracy",
               "--outcomes", str(out / "outcomes.csv"), "--paired", "--out", str(out / "report"), "--force"]
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())
