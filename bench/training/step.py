"""One run: its state, how its model is called, one minibatch step, its evaluation.

Everything here is for a *single* model: parameter leaves have the model's own
shapes. ``bench.training.train`` batches these functions once (:func:`over_runs`: a vmap over
seeds, each with its own minibatch, inside a vmap over arms, which share the seed's
minibatch), scans the steps of an epoch and splits the runs into chunks.

A model is any ``flax.linen.Module``. Its variables other than ``params`` (BatchNorm's
``batch_stats``) are the run's ``model_state``, updated by every training step and
used, frozen, for evaluation. A module whose ``__call__`` takes ``train`` (or Flax's
``deterministic``) is called in training mode for steps, with a ``dropout`` key, and
in evaluation mode otherwise.
"""

from __future__ import annotations

import dataclasses
import inspect
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from bench.training import batching, conv_lowering
from initjax import schemes

MODE_ARGUMENTS = {"train": True, "deterministic": False}  # keyword -> its value in training mode


class RunState(NamedTuple):
    """What one run carries from step to step.

    Attributes:
      params: the model's ``params`` collection.
      opt_state: the optimizer's state.
      model_state: the model's other collections (``{"batch_stats": ...}``); ``{}`` for most models.
    """

    params: Any
    opt_state: Any
    model_state: Any


@dataclasses.dataclass(frozen=True)
class Forward:
    """How a module is called in training and in evaluation.

    Attributes:
      model: the module.
      mode: the ``__call__`` keyword that switches training mode (``"train"`` or
        ``"deterministic"``), or None when it has none.
      stateful: collections besides ``params`` that training updates (``("batch_stats",)``).
      stochastic: training-mode calls draw from a ``dropout`` key (a step then gets one).
      matmuls: the module's convolutions computed as products of patches (``bench.training.conv_lowering``).
    """

    model: nn.Module
    mode: str | None = None
    stateful: tuple[str, ...] = ()
    stochastic: bool = False
    matmuls: bool = False

    def apply(self, variables, x, **kwargs):
        """``model.apply(variables, x, **kwargs)``, its convolutions as products of patches with ``matmuls``."""
        if not self.matmuls:
            return self.model.apply(variables, x, **kwargs)
        rngs = kwargs.pop("rngs", {})
        return conv_lowering.lowered(lambda v, x, r: self.model.apply(v, x, rngs=r, **kwargs))(variables, x, rngs)

    def mode_kwargs(self, training: bool) -> dict:
        if self.mode is None:
            return {}
        return {self.mode: MODE_ARGUMENTS[self.mode] == training}

    def init(self, key, x) -> tuple[Any, Any]:
        """``(params, model_state)`` as the module's own initializers draw them, from inputs `(batch, ...)`."""
        variables = dict(self.model.init(key, x, **self.mode_kwargs(False)))
        params = variables.pop("params", {})
        return params, {name: variables[name] for name in self.stateful if name in variables}

    def train(self, params, model_state, x, key=None):
        """``(outputs, model_state)`` of a training-mode call (dropout on, batch statistics updated)."""
        rngs = {"dropout": key} if key is not None else {}
        kwargs = self.mode_kwargs(True)
        if not self.stateful:
            return self.apply({"params": params}, x, rngs=rngs, **kwargs), model_state
        outputs, updated = self.apply({"params": params, **model_state}, x, rngs=rngs,
                                      mutable=list(self.stateful), **kwargs)
        return outputs, {**model_state, **updated}

    def probe(self, input_shape) -> Callable:
        """``initjax.schemes.probe`` of the module in evaluation mode, with its initial model state."""
        _, model_state = self.init(jax.random.key(0), jnp.zeros((1, *input_shape), jnp.float32))
        return schemes.probe(self.model, model_state, **self.mode_kwargs(False))

    def __call__(self, params, model_state, x):
        """Outputs of an evaluation-mode call (no dropout, running statistics)."""
        return self.apply({"params": params, **model_state}, x, **self.mode_kwargs(False))


def forward_of(model: nn.Module, input_shape, matmuls: bool = False) -> Forward:
    """The :class:`Forward` of ``model`` on examples of ``input_shape`` (collections found by ``jax.eval_shape``);
    ``matmuls``: its convolutions as products of patches (``bench.training.conv_lowering``).

    Remembered per model object, input shape and ``matmuls``: a task's checks, programs and estimates each ask for
    it, and each time the model was traced again (a transformer's task traced it 13 times, a third of its
    tracing). Kept by the object, not by equal fields, so a model rebuilt after something outside its fields
    changed (a global a user's module reads) is traced again."""
    key = (id(model), tuple(int(d) for d in input_shape), bool(matmuls))
    with _forwards_lock:  # lanes of chunks may build their programs side by side
        kept = _forwards.get(key)
        if kept is not None and kept[0] is model:  # the model is held, so its id is not reused meanwhile
            _forwards.move_to_end(key)
            return kept[1]
    forward = _forward_of(model, key[1], matmuls)
    with _forwards_lock:
        _forwards[key] = (model, forward)
        while len(_forwards) > _FORWARDS_KEPT:
            _forwards.popitem(last=False)
    return forward


_FORWARDS_KEPT = 64
_forwards: OrderedDict[tuple, tuple[nn.Module, Forward]] = OrderedDict()  # a failure is raised, not remembered
_forwards_lock = threading.Lock()


def _forward_of(model: nn.Module, input_shape: tuple[int, ...], matmuls: bool) -> Forward:
    accepted = inspect.signature(type(model).__call__).parameters
    plain = Forward(model, next((name for name in MODE_ARGUMENTS if name in accepted), None))
    sample = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, **plain.mode_kwargs(False)), sample)
    stateful = tuple(name for name in variables if name not in ("params", "intermediates"))
    forward = dataclasses.replace(plain, stateful=stateful, matmuls=matmuls)
    if forward.mode is None:
        return forward
    try:  # a training-mode call without a dropout key fails exactly when the model draws from one
        jax.eval_shape(lambda v, x: forward.train(v["params"], {k: v[k] for k in stateful}, x), variables, sample)
    except flax.errors.InvalidRngError:
        return dataclasses.replace(forward, stochastic=True)
    return forward


def make_step(forward: Forward, loss_fn: Callable, optimizer: optax.GradientTransformation) -> Callable:
    """``step(state, x, y, weights, key) -> (state, loss)``: one optimizer update of one run.

    ``weights`` `(batch,)` are 1 for real examples and 0 for the padding of an
    epoch's last, partial minibatch; the loss is their weighted mean, so the update
    is that of the real examples alone. ``key`` is the step's dropout key (None for
    a model without a training mode).
    """

    def batch_loss(params, model_state, x, y, weights, key):
        outputs, model_state = forward.train(params, model_state, x, key)
        per_example, _ = loss_fn(outputs, y)
        return jnp.sum(weights * per_example) / jnp.sum(weights), model_state

    def step(state: RunState, x, y, weights, key=None):
        (loss, model_state), grads = jax.value_and_grad(batch_loss, has_aux=True)(
            state.params, state.model_state, x, y, weights, key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        return RunState(optax.apply_updates(state.params, updates), opt_state, model_state), loss

    return step


def make_sums(forward: Forward, loss_fn: Callable) -> Callable:
    """``sums(state, x, y, weights) -> (2,)``: summed loss and metric of one run over a chunk of a split."""

    def sums(state: RunState, x, y, weights):
        per_example, metric = loss_fn(forward(state.params, state.model_state, x), y)
        return jnp.stack([jnp.sum(weights * per_example), jnp.sum(weights * metric)])

    return sums


def make_per_example(forward: Forward, loss_fn: Callable) -> Callable:
    """``per_example(state, x, y) -> (loss, metric)``, each `(batch,)`: one run's outcome on every example."""

    def per_example(state: RunState, x, y):
        return loss_fn(forward(state.params, state.model_state, x), y)

    return per_example


def over_runs(fn: Callable, seed_axes: tuple, sequential: bool = False) -> Callable:
    """``fn(state, ...)`` of one run made a function of every (arm, seed).

    ``vmap(vmap(fn, seed_axes), arm_axes)``: ``seed_axes`` are the inner ``in_axes`` (0 for
    what differs per seed, None for what seeds share); the outer vmap maps the run state
    (first argument) per arm and shares everything else: arms see their seed's minibatch.
    ``sequential``: both maps are ``lax.map``, the runs one after the other inside the compiled program
    (``bench.training.batching``).
    """
    arm_axes = (0,) + (None,) * (len(seed_axes) - 1)
    return batching.mapped(batching.mapped(fn, seed_axes, sequential), arm_axes, sequential)


def dropout_key(data_key, epoch, step):
    """The dropout key of a step: from the run's data-order key, on a branch epoch orders never use (0)."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(data_key, 0), epoch), step)
