"""Signal propagation at initialization: per-layer statistics and the input-output Jacobian's spectrum.

Given params, an apply function with the probe contract of
``initjax.schemes.probe`` (``apply_fn(params, x, perturb=None) -> (outputs,
[(path, pre_activation), ...])``) and a batch:

* :func:`layer_statistics`: per layer, in forward order, the mean and variance
  of its pre-activation outputs over the batch and units (Glorot & Bengio 2010,
  Fig. 6), and the variance of the back-propagated gradient of the loss with
  respect to them (Fig. 7), obtained by differentiating through zero
  perturbations added to each layer's output;
* :func:`jacobian_singular_values`: singular values of the Jacobian of the
  network's outputs with respect to one example's input (Saxe et al. 2013;
  Pennington et al. 2017: dynamical isometry when they concentrate near 1);
* :func:`guessing_bias`: how unevenly the untrained network's predicted classes
  fall over the inputs (initial guessing bias: Francazi et al. 2024, Bassi et al.
  2025), from its outputs alone.

Everything is a pure function of its inputs: jit it, vmap it over seeds.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax


def mean_cross_entropy(outputs: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
    """Softmax cross-entropy of `(batch, classes)` logits, or sigmoid of `(batch, 1)`, averaged."""
    if outputs.shape[-1] == 1:
        return optax.sigmoid_binary_cross_entropy(outputs[..., 0], labels.astype(outputs.dtype)).mean()
    return optax.softmax_cross_entropy_with_integer_labels(outputs, labels).mean()


def layer_statistics(params, apply_fn: Callable, batch: jnp.ndarray, labels: jnp.ndarray,
                     loss_fn: Callable = mean_cross_entropy) -> dict[str, jnp.ndarray]:
    """Forward and backward statistics of every layer with a kernel.

    Args:
      params: the network's parameters.
      apply_fn: see the module docstring.
      batch: `(n, *input_shape)`.
      labels: `(n,)` integer classes for ``loss_fn``.
      loss_fn: ``loss_fn(outputs, labels) -> scalar``; the gradient statistics
        are of this loss's gradient (mean over the batch, as in training).

    Returns:
      ``{"mean", "variance", "gradient_variance"}``, each `(n_layers,)` in forward
      order, and ``"width"`` `(n_layers,)`: output units of each layer. Layer
      paths are :func:`layer_paths`.
    """
    _, layers = apply_fn(params, batch)
    zeros = {path: jnp.zeros_like(out) for path, out in layers}

    def loss(perturb):
        outputs, _ = apply_fn(params, batch, perturb)
        return loss_fn(outputs, labels)

    grads = jax.grad(loss)(zeros)
    return {
        "mean": jnp.stack([out.mean() for _, out in layers]),
        "variance": jnp.stack([out.var() for _, out in layers]),
        # scaled by the batch size: the per-example gradient, as if the loss were summed
        "gradient_variance": jnp.stack([(grads[path] * batch.shape[0]).var() for path, _ in layers]),
        "width": jnp.array([out.shape[-1] for _, out in layers]),
    }


def layer_paths(params, apply_fn: Callable, batch: jnp.ndarray) -> list[str]:
    """``"block_0/branch_in"``-style names of the layers, in the order of :func:`layer_statistics`."""
    return ["/".join(path) for path, _ in apply_fn(params, batch[:1])[1]]


def jacobian_singular_values(params, apply_fn: Callable, examples: jnp.ndarray) -> jnp.ndarray:
    """Singular values of d outputs / d input for each example.

    Args:
      examples: `(k, *input_shape)`.

    Returns:
      `(k, min(n_outputs, n_inputs))`, each row sorted in decreasing order.
    """

    def one(x):
        jac = jax.jacrev(lambda v: apply_fn(params, v[None])[0][0])(x)
        return jnp.linalg.svd(jac.reshape(jac.shape[0], -1), compute_uv=False)

    return jax.vmap(one)(examples)


def guessing_bias(outputs: jnp.ndarray) -> dict[str, jnp.ndarray]:
    """The initial guessing bias of a network's outputs on a batch of inputs (Francazi et al. 2024, "Initial
    guessing bias: how untrained networks favor some classes", ICML; Bassi et al. 2025, arXiv:2505.12096): the
    share of inputs it assigns to each class.

    Args:
      outputs: `(..., n_classes)` logits, every leading axis an input (examples, sequence positions); `(..., 1)`: one
        logit, its sign picking one of two classes.

    Returns:
      ``shares`` `(n_classes,)` the fraction of inputs predicted in each class; ``max_share`` the largest (``1 /
      n_classes`` for a network that spreads its guesses evenly, 1 for one that puts every input in one class);
      ``entropy`` the entropy of the shares over ``log n_classes`` (1 even, 0 one class).
    """
    flat = outputs.reshape(-1, outputs.shape[-1])
    n_classes = max(flat.shape[-1], 2)
    guesses = (flat[:, 0] > 0).astype(jnp.int32) if flat.shape[-1] == 1 else jnp.argmax(flat, axis=-1)
    shares = jnp.bincount(guesses, length=n_classes) / flat.shape[0]
    entropy = 0.0 - jnp.sum(jnp.where(shares > 0, shares * jnp.log(jnp.where(shares > 0, shares, 1.0)), 0.0))
    return {"shares": shares, "max_share": shares.max(), "entropy": entropy / jnp.log(n_classes)}
