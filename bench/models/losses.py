"""Losses by name, and the accuracy that goes with each.

A loss is ``loss(outputs, labels) -> (per_example_loss, per_example_metric)``, both
`(batch,)` float32, computed from the model's raw outputs (logits), where it is
numerically stable. The suite averages the first over minibatches and splits and
reports the second as the loss's metric (:data:`METRICS`): accuracy for
classification, R² for regression.

* ``softmax_cross_entropy``: outputs `(batch, n_classes)`, integer labels; correct when
  the argmax is the label.
* ``sigmoid_cross_entropy``: binary, outputs `(batch, 1)` (a logit), labels 0/1;
  correct when the logit's sign gives the label.
* ``mean_squared_error``: regression, outputs `(batch, d)`, float targets `(batch,)` or
  `(batch, d)`; the loss is the squared error averaged over the ``d`` outputs, and the
  metric beside it is the same squared error, which the suite turns into R² per split
  (:func:`r2`).
* ``one_hot_squared_error``: classification trained by squared error, outputs `(batch, n_classes)`, integer
  labels: the squared distance of the outputs to the label's one-hot vector averaged over the classes (the MSE
  of Haas et al. 2025, arXiv:2505.22491, against cross-entropy); correct when the argmax is the label.
* ``next_token_cross_entropy``: sequences, outputs `(batch, context, vocab)`, integer labels
  `(batch, context)` with ``-1`` at positions that do not count (a prompt, a context
  shorter than a generator's order); an example's loss is its mean over the counted
  positions (nats per token) and its metric the share of them predicted right (the
  generators count as many positions in every sequence, so means over examples are
  means over tokens).
* a callable ``loss(outputs, labels) -> per-example loss`` `(batch,)` (a Python
  object or a ``module:function`` spec): accuracy is the argmax's (one output: the
  sign's), so it is meaningful only for classification.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bench.errors import UserError, unknown
from bench.user_code import user_callable


def softmax_cross_entropy(outputs, labels):
    loss = optax.softmax_cross_entropy_with_integer_labels(outputs, labels)
    return loss, (jnp.argmax(outputs, axis=-1) == labels).astype(loss.dtype)


def sigmoid_cross_entropy(outputs, labels):
    z = outputs[..., 0]
    loss = optax.sigmoid_binary_cross_entropy(z, labels.astype(z.dtype))
    return loss, ((z > 0) == (labels == 1)).astype(loss.dtype)


def next_token_cross_entropy(outputs, labels):
    counted = labels >= 0
    per_token = optax.softmax_cross_entropy_with_integer_labels(outputs, jnp.maximum(labels, 0))
    right = (jnp.argmax(outputs, axis=-1) == labels).astype(per_token.dtype)
    n = jnp.maximum(jnp.sum(counted, axis=-1), 1).astype(per_token.dtype)
    return jnp.sum(jnp.where(counted, per_token, 0), axis=-1) / n, jnp.sum(jnp.where(counted, right, 0), axis=-1) / n


def mean_squared_error(outputs, targets):
    targets = targets.reshape(outputs.shape).astype(outputs.dtype)
    loss = jnp.mean(jnp.square(outputs - targets), axis=-1)
    return loss, loss


def one_hot_squared_error(outputs, labels):
    targets = jax.nn.one_hot(labels, outputs.shape[-1], dtype=outputs.dtype)
    loss = jnp.mean(jnp.square(outputs - targets), axis=-1)
    return loss, (jnp.argmax(outputs, axis=-1) == labels).astype(loss.dtype)


LOSSES: dict[str, tuple[Callable, str]] = {
    "softmax_cross_entropy": (softmax_cross_entropy, "categorical cross-entropy from logits `(batch, n_classes)`"),
    "sigmoid_cross_entropy": (sigmoid_cross_entropy, "binary cross-entropy from one logit `(batch, 1)`"),
    "mean_squared_error": (mean_squared_error, "regression: squared error averaged over the outputs `(batch, d)`"),
    "one_hot_squared_error": (one_hot_squared_error, "classification by squared error to the one-hot label, "
                              "averaged over the outputs `(batch, n_classes)`"),
    "next_token_cross_entropy": (next_token_cross_entropy, "sequences: cross-entropy per counted position "
                                 "(nats/token) from logits `(batch, context, vocab)`, labels -1 not counted"),
}
SEQUENCE = ("next_token_cross_entropy",)
REGRESSION = ("mean_squared_error",)
METRICS = {"accuracy": "share of correct predictions (classification)",
           "r2": "1 - MSE / variance of the split's targets (regression; several outputs: their mean of each)"}


def is_regression(loss) -> bool:
    """Whether a loss spec fits real-valued targets (its metric is R²) rather than classes."""
    return isinstance(loss, str) and loss in REGRESSION


def metric_of(loss) -> str:
    """The metric reported beside a loss: ``"r2"`` for regression, ``"accuracy"`` otherwise."""
    return "r2" if is_regression(loss) else "accuracy"


def r2(mean_squared_error: np.ndarray, target_variance: float) -> np.ndarray:
    """Coefficient of determination from a split's MSE and its targets' variance (``ddof=0``).

    With several outputs, both are means over the outputs, so this is scikit-learn's
    ``r2_score(multioutput="variance_weighted")``.
    """
    return 1.0 - np.asarray(mean_squared_error, np.float64) / target_variance


def default_for(n_classes: int) -> str:
    """The built-in models' loss: one sigmoid unit for two classes (Keras' ``Dense(1, 'sigmoid')``), else softmax."""
    return "sigmoid_cross_entropy" if n_classes == 2 else "softmax_cross_entropy"


def outputs_for(loss: str, n_classes: int, n_targets: int = 1) -> int | None:
    """The output width a named loss needs on ``n_classes`` classes or ``n_targets`` regression targets
    (None for a callable: any)."""
    return {"sigmoid_cross_entropy": 1, "softmax_cross_entropy": n_classes, "mean_squared_error": n_targets,
            "one_hot_squared_error": n_classes, "next_token_cross_entropy": n_classes}.get(loss)


def from_callable(per_example: Callable) -> Callable:
    """A user's ``loss(outputs, labels) -> (batch,)`` with the argmax (or sign) accuracy beside it."""

    def loss(outputs, labels):
        value = jnp.asarray(per_example(outputs, labels), jnp.float32)
        guess = jnp.argmax(outputs, axis=-1) if outputs.shape[-1] > 1 else (outputs[..., 0] > 0).astype(labels.dtype)
        return value, (guess == labels).astype(jnp.float32)

    loss.__name__ = getattr(per_example, "__name__", "loss")
    return loss


def get(spec: str | Callable) -> Callable:
    """The loss for a name in :data:`LOSSES`, a ``module:function`` spec or a callable.

    Raises:
      UserError: unknown name (with the known ones), or a spec that does not import.
    """
    if callable(spec):
        return from_callable(spec)
    if spec in LOSSES:
        return LOSSES[spec][0]
    if isinstance(spec, str) and ":" in spec:
        return from_callable(user_callable(spec, "loss", "loss(outputs, labels) -> per-example loss"))
    raise unknown("loss", spec, LOSSES)


def check_shape(name: str, outputs_shape: tuple, loss: str | Callable, n_classes: int, n_targets: int = 1) -> None:
    """Raises UserError when a model's outputs do not fit the loss (e.g. 1 unit for a 10-class softmax)."""
    want = outputs_for(loss, n_classes, n_targets) if isinstance(loss, str) else None
    rank = 3 if loss in SEQUENCE else 2
    if len(outputs_shape) != rank or (want is not None and outputs_shape[-1] != want):
        what = f"{n_targets} target(s)" if is_regression(loss) else f"{n_classes} classes"
        needs = f"(batch, context, {want})" if rank == 3 else f"(batch, {want or 'k'})"
        raise UserError(f"model {name} gives outputs of shape {list(outputs_shape)} per batch; the loss {loss} on "
                        f"{what} needs {needs}: set the model's output width")
