"""A model's training layout: its parameters held, while they train, in the layout its own layers compute in.

Everything that draws, rules or inspects parameters reads them in Flax's layout (kernels ``(in, out)``, convolution
kernels ``(*spatial, in, out)``): fans, initializers, rules by path, schemes, parameterizations. A model whose layers
compute in another layout (Equinox's ``Linear`` is ``weight @ x`` with ``weight`` ``(out, in)``) would otherwise
transpose every kernel in every step's forward pass and every gradient in its backward pass (an Equinox MLP of
MNIST size ran at 0.89x the linen MLP's speed that way, 1.27-1.45x without). Such a model offers
``training_layout() -> (model, inward, outward)``: the same model reading its kernels in its own layout, and the
maps between the two (:class:`Layout`). The trainer then maps a run's parameters once, before its optimizer state is
made, trains and evaluates in the model's layout, and maps the final parameters back (:mod:`bench.training.train`).

The trained numbers are the same only where the optimizer's update does not depend on a kernel's orientation: an
elementwise optimizer (SGD, momentum, Adam, weight decay, clipping by the global norm) transposes with its
parameters, while one that treats a kernel as a matrix may not (Muon's scale depends on which axis is longer).
:func:`of` therefore checks, on the model's own shapes, that two updates in the two layouts agree, and trains in
Flax's layout where they do not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax


class Layout(NamedTuple):
    """How a model trains in its own layout.

    Attributes:
      model: the same module, reading its parameters in its own layout.
      inward: one run's parameters, Flax layout -> the model's.
      outward: one run's parameters, the model's layout -> Flax's.
    """

    model: nn.Module
    inward: Callable
    outward: Callable

    def runs(self, way: Callable) -> Callable:
        """``way`` (``inward`` or ``outward``) of parameters with leading `(n_arms, n_seeds)` axes."""
        return jax.vmap(jax.vmap(way))


def of(model: nn.Module, optimizer: optax.GradientTransformation, input_shape) -> Layout | None:
    """The model's training layout, where it has one and ``optimizer`` updates alike in both layouts; else None
    (the model then trains in Flax's layout, mapping its kernels in each call)."""
    offered = getattr(model, "training_layout", None)
    if offered is None:
        return None
    layout = Layout(*offered())
    sample = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x)["params"], sample)
    return layout if updates_alike(layout, optimizer, shapes) else None


def updates_alike(layout: Layout, optimizer: optax.GradientTransformation, shapes) -> bool:
    """Whether two updates of ``optimizer`` from random parameters and gradients of ``shapes`` (Flax layout) give the
    same parameters in both layouts (rtol 1e-5): the optimizer then treats each element as its own."""
    leaves, treedef = jax.tree.flatten(shapes)
    rng = np.random.default_rng(0)

    def random():
        return jax.tree.unflatten(treedef, [rng.standard_normal(s.shape).astype(s.dtype) for s in leaves])

    params, grads = random(), [random(), random()]

    def trained(params, grads, way: Callable):
        params = way(params)
        state = optimizer.init(params)
        for g in grads:
            updates, state = optimizer.update(way(g), state, params)
            params = optax.apply_updates(params, updates)
        return params

    try:
        flax_way = jax.jit(lambda p, g: trained(p, g, lambda tree: tree))(params, grads)
        own_way = jax.jit(lambda p, g: layout.outward(trained(p, g, layout.inward)))(params, grads)
    except Exception:  # an optimizer that cannot take the other layout at all (shape-keyed state): Flax's
        return False
    return all(np.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(jax.tree.leaves(flax_way),
                                                                           jax.tree.leaves(own_way)))
