"""A model as two pure functions, for code in no module library (or in one the suite does not adapt).

The protocol: ``init(key, x) -> params``, a dict of string keys (nested dicts or arrays below them) drawn for a
minibatch ``x`` `(batch, ...)`; ``apply(params, x, [train=...], [key=...]) -> outputs`` `(batch, outputs)`, logits
for the loss. ``apply`` gets ``train`` (True for training steps) and ``key`` (the run's dropout key in training, a
fixed one in evaluation) where it takes them. Kernels are in Flax's layout (``(in, out)``, conv ``HWIO``), which is
what the initializers' fans assume; parameters are named by their dict paths for the rules (``hidden_0/kernel``).

:class:`FunctionsModel` is the linen module the suite trains: its ``params`` are those the functions draw and use.
Whole-network schemes and diagnostics do not see layers inside ``apply`` (they refuse such a model rather than leave
it as drawn).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping

import flax.linen as nn
import jax

from bench.errors import UserError


@dataclasses.dataclass(frozen=True)
class Functions:
    """A model as ``init(key, x) -> params`` and ``apply(params, x, [train], [key]) -> outputs`` (module docstring).

    Attributes:
      init: draws the parameters for a minibatch's shapes.
      apply: the forward pass of a minibatch.
      name: the model's name in results tables.
    """

    init: Callable
    apply: Callable
    name: str = "functions"


class FunctionsModel(nn.Module):
    """:class:`Functions` as a linen module.

    Attributes:
      functions: the pair.
      output_activation: the head's activation the loss applies, as the built-in models name it; None: the task
        names its loss.
    """

    functions: Functions
    output_activation: str | None = None

    @nn.compact
    def __call__(self, x, train: bool = False):
        shapes = jax.eval_shape(self.functions.init, jax.random.key(0), x[:1])
        if not isinstance(shapes, Mapping) or not all(isinstance(k, str) for k in shapes):
            raise UserError(f"model {self.functions.name}: init(key, x) gave a {type(shapes).__name__}; give a dict "
                            "of parameters with string keys")
        drawn = {}

        def draw(key):  # the functions' own draws, made once on initialization
            if not drawn:
                drawn.update(self.functions.init(key, x[:1]))
            return drawn

        params = {name: self.param(name, lambda key, name=name: draw(key)[name]) for name in shapes}
        accepted = inspect.signature(self.functions.apply).parameters
        kwargs = {"train": train} if "train" in accepted else {}
        if "key" in accepted:
            kwargs["key"] = self.make_rng("dropout") if train else jax.random.key(0)
        return self.functions.apply(params, x, **kwargs)


def is_functions(spec) -> bool:
    """A :class:`Functions`, or any object that is not a module but has callable ``init`` and ``apply``."""
    return isinstance(spec, Functions) or (
        not isinstance(spec, type | nn.Module) and callable(getattr(spec, "init", None))
        and callable(getattr(spec, "apply", None)))


def wrap(spec, what: str) -> FunctionsModel:
    """The :class:`FunctionsModel` of ``spec`` (a :class:`Functions` or an object with ``init`` and ``apply``)."""
    functions = spec if isinstance(spec, Functions) else Functions(spec.init, spec.apply, what)
    return FunctionsModel(functions)
