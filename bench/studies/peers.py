"""The peer a PyTorch user would pick to train many models at once: ``torch.func`` under ``torch.compile``.

PyTorch's own recipe for model ensembling (the ``torch.func`` tutorial "Model ensembling"):
the models' parameters stacked (``torch.func.stack_module_state``), one model's forward
called functionally (``torch.func.functional_call``) and batched over models (``torch.vmap``),
the whole loss compiled (``torch.compile``, TorchInductor). The optimizer is ``torch.optim.Adam``
or ``SGD`` over the stacked tensors: both act elementwise, so one optimizer over the stack is
one optimizer per model, and the loss is the sum over models of each model's mean loss, so each
model's gradient is its own.

:func:`notebook_job` trains the initializer notebook's job this way (the synthetic MLP
20-64-64-1, 8 initializers x ``n_seeds`` seeds, Adam, batch 32, evaluated on the training and test
splits after every epoch) and times it whole; ``bench.studies.notebook_job.notebook_jobs`` runs it beside
initjax's own. Needs ``torch`` (the ``peers`` extra); :func:`available` says whether it is there.

Reference: PyTorch tutorials, "Model ensembling" (torch.func) and "Introduction to torch.compile".
"""

from __future__ import annotations

import importlib.util
import math
import time

import numpy as np

# The initializer notebook's 8 (bench's default preset), as torch.nn.init draws them: Keras' defaults where torch
# names them differently (random_normal: std 0.05; he/lecun normal: truncated at 2 sd, as Keras does).
INITIALIZERS = ("zeros", "random_normal", "glorot_normal", "glorot_uniform", "he_normal", "he_uniform",
                "lecun_normal", "orthogonal")


def available() -> bool:
    """True when ``torch`` can be imported (``pip install -e '.[peers]'``)."""
    return importlib.util.find_spec("torch") is not None


def torch_init(name: str):
    """``init(weight)`` for a torch ``Linear`` weight `(fan_out, fan_in)`, in place, for one of :data:`INITIALIZERS`."""
    import torch
    from torch.nn import init

    def truncated(weight, std):
        return init.trunc_normal_(weight, std=std / 0.87962566103423978, a=-2 * std / 0.87962566103423978,
                                  b=2 * std / 0.87962566103423978)

    fan_in = lambda w: w.shape[1]  # noqa: E731
    table = {
        "zeros": init.zeros_,
        "random_normal": lambda w: init.normal_(w, std=0.05),
        "glorot_normal": lambda w: truncated(w, math.sqrt(2 / sum(w.shape))),
        "glorot_uniform": init.xavier_uniform_,
        "he_normal": lambda w: truncated(w, math.sqrt(2 / fan_in(w))),
        "he_uniform": lambda w: init.kaiming_uniform_(w, nonlinearity="relu"),
        "lecun_normal": lambda w: truncated(w, math.sqrt(1 / fan_in(w))),
        "orthogonal": init.orthogonal_,
    }
    return lambda weight: table[name](weight) if weight.ndim == 2 else torch.nn.init.zeros_(weight)


def mlp(n_features: int, hidden: tuple[int, ...], n_outputs: int):
    """The suite's MLP in torch: Linear + ReLU per hidden width, a Linear head (logits)."""
    import torch

    layers, width = [], n_features
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, n_outputs))


class Ensemble:
    """``n_models`` MLP classifiers stacked and trained together, PyTorch's way (module docstring).

    Args:
      n_features, hidden, n_classes: the MLP (2 classes: one logit and binary cross-entropy, as the suite's sigmoid
        head; more: softmax cross-entropy).
      inits: the initializer of each model (:data:`INITIALIZERS`); seeds: each model's ``torch.manual_seed``.
      optimizer: ``"adam"`` or ``"sgd"``; lr: its learning rate.
    """

    def __init__(self, n_features: int, hidden: tuple[int, ...], n_classes: int, inits, seeds, optimizer: str = "adam",
                 lr: float = 1e-3):
        import torch
        import torch.nn.functional as F  # noqa: N812

        n_outputs = 1 if n_classes == 2 else n_classes
        models = []
        for name, seed in zip(inits, seeds):
            torch.manual_seed(seed)
            model = mlp(n_features, hidden, n_outputs)
            with torch.no_grad():
                for parameter in model.parameters():
                    torch_init(name)(parameter)
            models.append(model)
        self.params, self.buffers = torch.func.stack_module_state(models)
        self.n_models = len(models)
        base = mlp(n_features, hidden, n_outputs).to("meta")

        def logits_of(params, buffers, x):
            return torch.func.functional_call(base, (params, buffers), (x,))

        def per_example(logits, y):  # loss and correctness, (..., batch)
            if n_outputs == 1:
                logits = logits.squeeze(-1)
                target = y.float()
                return (F.binary_cross_entropy_with_logits(logits, target, reduction="none"),
                        ((logits > 0).float() == target).float())
            return (F.cross_entropy(logits.transpose(1, -1), y, reduction="none"),
                    (logits.argmax(-1) == y).float())

        batched = torch.vmap(logits_of)  # params (M, ...), x (M, B, F)
        shared = torch.vmap(logits_of, in_dims=(0, 0, None))  # every model on the same inputs

        @torch.compile
        def train_loss(params, buffers, x, y):
            return per_example(batched(params, buffers, x), y)[0].mean(dim=1).sum()

        @torch.compile
        def evaluate(params, buffers, x, y):
            loss, correct = per_example(shared(params, buffers, x), y.expand(self.n_models, -1))
            return loss.mean(dim=1), correct.mean(dim=1)

        self._train_loss, self._evaluate = train_loss, evaluate
        optimizers = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}
        self.optimizer = optimizers[optimizer](self.params.values(), lr=lr)

    def train_epoch(self, x, y, order) -> None:
        """One epoch: ``order`` `(n_models, steps, batch)` example indices of each model's minibatches."""
        for step in range(order.shape[1]):
            idx = order[:, step]
            self.optimizer.zero_grad(set_to_none=True)
            self._train_loss(self.params, self.buffers, x[idx], y[idx]).backward()
            self.optimizer.step()

    def evaluate(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Mean loss and accuracy of every model on ``(x, y)``, each `(n_models,)`."""
        import torch

        with torch.no_grad():
            loss, accuracy = self._evaluate(self.params, self.buffers, x, y)
        return loss.numpy().copy(), accuracy.numpy().copy()


def notebook_job(x_train, y_train, x_test, y_test, n_seeds: int = 32, epochs: int = 10, batch_size: int = 32,
                 lr: float = 1e-3, hidden: tuple[int, ...] = (64, 64), initializers=INITIALIZERS) -> dict:
    """Trains ``len(initializers) x n_seeds`` binary classifiers as one stacked, compiled torch program, evaluating
    every model on the training and test splits after every epoch, as the suite does.

    Seed ``s`` of every initializer sees the same data order (as in the suite). The last
    minibatch of an epoch must be whole (``len(x_train) % batch_size == 0``: the notebook's 800 / 32).

    Returns:
      ``init_s`` (building and stacking the models), ``first_step_s`` (the first training step:
      TorchInductor compiles the forward and backward there), ``first_eval_s`` (likewise for the
      evaluation), ``total_s`` (from the first model built to the last evaluation read back),
      ``runs``, ``test_accuracy`` `(n_inits, n_seeds)` after the last epoch.
    """
    import torch

    n = x_train.shape[0]
    if n % batch_size:
        raise ValueError(f"the torch peer takes whole minibatches: {n} examples, batch {batch_size}")
    start = time.perf_counter()
    ensemble = Ensemble(x_train.shape[1], hidden, 2, [name for name in initializers for _ in range(n_seeds)],
                        [seed for _ in initializers for seed in range(n_seeds)], "adam", lr)
    init_s = time.perf_counter() - start
    x_tr, y_tr = torch.as_tensor(x_train), torch.as_tensor(y_train, dtype=torch.long)
    x_te, y_te = torch.as_tensor(x_test), torch.as_tensor(y_test, dtype=torch.long)
    generators = [torch.Generator().manual_seed(seed) for seed in range(n_seeds)]
    first_step_s = first_eval_s = 0.0
    for epoch in range(epochs):
        order = torch.stack([torch.randperm(n, generator=g) for g in generators])  # (seeds, n)
        order = order.repeat(len(initializers), 1).view(ensemble.n_models, n // batch_size, batch_size)
        tick = time.perf_counter()
        if epoch == 0:  # the first step compiles
            ensemble.train_epoch(x_tr, y_tr, order[:, :1])
            first_step_s = time.perf_counter() - tick
            ensemble.train_epoch(x_tr, y_tr, order[:, 1:])
        else:
            ensemble.train_epoch(x_tr, y_tr, order)
        tick = time.perf_counter()
        ensemble.evaluate(x_tr, y_tr)
        _, accuracy = ensemble.evaluate(x_te, y_te)
        if epoch == 0:
            first_eval_s = time.perf_counter() - tick
    total_s = time.perf_counter() - start
    return {"init_s": init_s, "first_step_s": first_step_s, "first_eval_s": first_eval_s, "total_s": total_s,
            "runs": ensemble.n_models, "test_accuracy": accuracy.reshape(len(initializers), n_seeds)}


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def describe() -> str:
    """``torch 2.x (n threads)``, or why the peer is skipped."""
    if not available():
        return "torch not installed (pip install -e '.[peers]')"
    import torch

    return f"torch {torch.__version__} ({_torch_threads()} threads)"


def as_arrays(dataset) -> tuple[np.ndarray, ...]:
    """A bench ``Dataset``'s train and test arrays as float32 inputs and labels."""
    return (np.asarray(dataset.x_train, np.float32), np.asarray(dataset.y_train), np.asarray(dataset.x_test,
            np.float32), np.asarray(dataset.y_test))
