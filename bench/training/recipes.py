"""Training recipes: an optax optimizer by name with keyword arguments, a schedule, weight decay, clipping.

Spelled as spec strings (``initjax.spec``: literal arguments only, never code)::

    optimizer = "adamw(b2=0.95)"      # any of OPTIMIZERS, with optax's keyword arguments
    schedule = "warmup_cosine(warmup=0.05)"
    weight_decay = 0.01               # adamw/lion: their own decoupled decay; others: an L2 term on the gradient
    clip = 1.0                        # clip by global norm first

The schedule multiplies the peak learning rate ``lr`` by a unit curve over the whole
run's steps (``epochs x steps per epoch``), so the same schedule serves every rate.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from bench.errors import UserError, unknown
from initjax.spec import parse_spec

OPTIMIZERS: dict[str, tuple[Callable, str]] = {
    "sgd": (optax.sgd, "plain SGD (optax.sgd)"),
    "momentum": (lambda learning_rate, momentum=0.9, **kw: optax.sgd(learning_rate, momentum=momentum, **kw),
                 "SGD with heavy-ball momentum 0.9"),
    "nesterov": (lambda learning_rate, momentum=0.9, **kw: optax.sgd(learning_rate, momentum=momentum, nesterov=True,
                                                                     **kw), "SGD with Nesterov momentum 0.9"),
    "adam": (optax.adam, "Adam (Kingma & Ba 2015)"),
    "adamw": (optax.adamw, "AdamW, decoupled weight decay (Loshchilov & Hutter 2019); weight_decay is its own"),
    "lion": (optax.lion, "Lion (Chen et al. 2023)"),
    "rmsprop": (optax.rmsprop, "RMSProp"),
}
# optimizers whose weight decay is an argument of their own (decoupled inside the update)
OWN_WEIGHT_DECAY = ("adamw", "lion")
# optimizers that divide by a running root mean square plus an epsilon (PerTensor.eps scales it)
EPSILON = ("adam", "adamw", "rmsprop")


@dataclasses.dataclass(frozen=True)
class PerTensor:
    """Per-tensor factors of a recipe's hyperparameters (a width or depth parameterization's:
    ``bench.training.parameterized.per_tensor``), each a pytree of floats shaped like the parameters, or None (1
    everywhere).

    Attributes:
      eps: multiplies the epsilon of the optimizers in :data:`EPSILON`: each gradient is divided by it ahead of
        the optimizer, since ``Adam(g / r, eps)`` takes the step of ``Adam(g, r eps)`` (the step is otherwise
        invariant to the gradient's scale; RMSProp's epsilon under its square root scales as ``r^2``). The
        clipping and an L2 term come first, on the gradient itself.
      weight_decay: multiplies decoupled weight decay (:data:`OWN_WEIGHT_DECAY`): the optimizer decays the
        parameters it is given, times it. An L2 term added to the gradient is not scaled.
    """

    eps: object = None
    weight_decay: object = None


def _gradients_over(factors) -> optax.GradientTransformation:
    """Each gradient over its factor (a factor of 1 leaves it as it is: no operation)."""

    def update(updates, state, params=None):
        return jax.tree.map(lambda g, f: g if f == 1.0 else g * jnp.asarray(1.0 / f, g.dtype), updates, factors), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def _decaying_scaled(core: optax.GradientTransformation, factors) -> optax.GradientTransformation:
    """``core`` (an optimizer with its own decoupled decay) given each parameter times its factor: its decay term
    ``wd x params`` becomes ``wd x factor x params``; nothing else of it reads the parameters."""

    def update(updates, state, params=None):
        scaled = None if params is None else jax.tree.map(lambda x, f: x if f == 1.0 else x * jnp.asarray(f, x.dtype),
                                                          params, factors)
        return core.update(updates, state, scaled)

    return optax.GradientTransformation(core.init, update)


# recipe fields a record (run.json, resume keys) leaves out at this value: records written before the field existed
# say the same, and their resume keys stay valid
LEFT_OUT = {"evals_per_epoch": 1}
MAX_LR = 1e6  # a learning rate above this is a typo (1e308 was accepted, and every run diverged)


def _parsed(spec, what: str):
    """``parse_spec`` with its error said as the suite's one line."""
    try:
        return parse_spec(spec)
    except (ValueError, TypeError) as error:
        raise UserError(f"{what} {spec!r}: {str(error).replace('initializer spec', 'spec')}") from None


def _unit_schedule(spec: str, total_steps: int) -> Callable:
    """A schedule with peak 1 over ``total_steps`` steps."""
    parsed = _parsed(spec, "schedule")
    kw = dict(parsed.kwargs)
    if parsed.args:
        raise UserError(f"schedule {spec!r}: give its arguments by name, e.g. warmup_cosine(warmup=0.05)")
    name = parsed.name
    try:
        if name == "constant" and not kw:
            return optax.constant_schedule(1.0)
        if name == "warmup_cosine":
            warmup = max(1, int(round(float(kw.pop("warmup", 0.05)) * total_steps)))
            end = float(kw.pop("end", 0.0))
            if kw or warmup >= total_steps:
                raise TypeError
            return optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup, total_steps, end_value=end)
        if name == "cosine":
            end = float(kw.pop("end", 0.0))
            if kw:
                raise TypeError
            return optax.cosine_decay_schedule(1.0, total_steps, alpha=end)
        if name == "step":
            every, factor = float(kw.pop("every", 0.33)), float(kw.pop("factor", 0.1))
            if kw or not 0 < every <= 1:
                raise TypeError
            step = max(1, int(round(every * total_steps)))
            return optax.piecewise_constant_schedule(1.0, {k: factor for k in range(step, total_steps, step)})
    except (TypeError, ValueError):
        raise UserError(f"schedule {spec!r} has arguments it does not take, or out of range: constant, "
                        "warmup_cosine(warmup=FRACTION, end=LR_FRACTION), cosine(end=LR_FRACTION), "
                        "step(every=FRACTION, factor=F)") from None
    raise unknown("schedule", name, SCHEDULES)


SCHEDULES = {
    "constant": "the peak learning rate throughout",
    "warmup_cosine": "linear warmup over a fraction of the steps (warmup=0.05), then cosine decay to end x lr",
    "cosine": "cosine decay from lr to end x lr (end=0)",
    "step": "multiply by factor (0.1) every fraction (every=0.33) of the steps",
}


# the optimizer argument a grid's ``momentum`` factor sets: heavy-ball momentum, or Adam's first-moment decay
MOMENTUM_ARGUMENT = {"sgd": "momentum", "momentum": "momentum", "nesterov": "momentum", "rmsprop": "momentum",
                     "adam": "b1", "adamw": "b1", "lion": "b1"}
INJECTABLE = ("lr", "weight_decay", "momentum")  # hyperparameters a grid may vary (``bench.training.grid``)


def check(optimizer: str, schedule: str = "constant", injected: tuple[str, ...] = ()) -> None:
    """Raises UserError on an unknown optimizer or schedule, or arguments they do not take (tried on a tiny tree)."""
    transform = build(optimizer, 1e-3, schedule, 0.0, None, total_steps=100, injected=injected)
    try:  # an injected recipe is only built here; traced, not run (op by op, each op compiled a program of its own)
        jax.eval_shape(transform.init, {"w": jax.ShapeDtypeStruct((2,), jnp.float32)})
    except TypeError as error:
        raise UserError(f"optimizer {optimizer!r}: {error}") from None


def decayed(params):
    """Which parameters weight decay applies to: every one but the constants a model holds fixed
    (``bench.models.transformer.FIXED``: DeepNorm's residual multipliers, which have no gradient either)."""
    from bench.models.transformer import FIXED

    return jax.tree_util.tree_map_with_path(lambda path, _: getattr(path[-1], "key", None) != FIXED, params)


def build(optimizer: str, lr: float, schedule: str = "constant", weight_decay: float = 0.0,
          clip: float | None = None, total_steps: int = 1, injected: tuple[str, ...] = (),
          momentum: float | None = None, per_tensor: PerTensor | None = None) -> optax.GradientTransformation:
    """The optax transformation of a recipe.

    Args:
      optimizer: spec in :data:`OPTIMIZERS`, with keyword arguments (``"adamw(b2=0.95)"``).
      lr: peak learning rate.
      schedule: spec in :data:`SCHEDULES`, a unit curve multiplied by ``lr``.
      weight_decay: of every parameter but the fixed ones (:func:`decayed`); passed to the optimizer when it
        has its own, decoupled one
        (:data:`OWN_WEIGHT_DECAY`; 0 means none, not optax's default); otherwise
        ``weight_decay x params`` is added to the gradient before the step
        (``optax.add_decayed_weights``), an L2 penalty as in PyTorch's ``SGD``/``Adam(weight_decay=...)``.
      clip: clip gradients to this global norm first (None: no clipping).
      total_steps: steps of the whole run, the schedule's length.
      injected: names in :data:`INJECTABLE` whose values are leaves of the optimizer's
        state (``optax.inject_hyperparams``: ``state.hyperparams["lr"]``...), so runs of one
        program can each have their own; the others are constants of the program.
        Numbers are the same either way.
      momentum: the optimizer's :data:`MOMENTUM_ARGUMENT` (None: its spec's or optax's default).
      per_tensor: per-tensor factors of the epsilon and the decoupled decay (:class:`PerTensor`; None: none).

    Raises:
      UserError: unknown name, or arguments the optimizer does not take.
    """
    parsed = _parsed(optimizer, "optimizer")
    if parsed.name not in OPTIMIZERS:
        raise unknown("optimizer", parsed.name, OPTIMIZERS)
    if parsed.args:
        raise UserError(f"optimizer {optimizer!r}: give its arguments by name, e.g. adamw(b2=0.95)")
    unit = _unit_schedule(schedule, max(1, total_steps))
    spec_kwargs = dict(parsed.kwargs)
    own_decay = parsed.name in OWN_WEIGHT_DECAY
    beta = MOMENTUM_ARGUMENT[parsed.name]
    for name, argument in (("weight_decay", "weight_decay"), ("momentum", beta)):
        given = weight_decay if name == "weight_decay" else momentum
        if argument in spec_kwargs and (name in injected or given):
            raise UserError(f"optimizer {optimizer!r} sets {argument} and the recipe or grid sets "
                            f"{name.replace('_', ' ')} too; give it once")
    decay_term = "weight_decay" in injected or bool(weight_decay)  # a constant 0 adds no term to the program
    if own_decay and "weight_decay" not in spec_kwargs:
        spec_kwargs["weight_decay"] = 0.0  # optax's adamw/lion default (1e-4/1e-3) would decay at "0"
    scheduled = schedule != "constant"

    def recipe(lr, weight_decay, momentum):
        kwargs = dict(spec_kwargs)
        if own_decay and decay_term:
            kwargs["weight_decay"], kwargs["mask"] = weight_decay, decayed
        if momentum is not None:
            kwargs[beta] = momentum
        rate = (lambda step: lr * unit(step)) if scheduled else lr
        core = OPTIMIZERS[parsed.name][0](learning_rate=rate, **kwargs)
        if own_decay and decay_term and per_tensor is not None and per_tensor.weight_decay is not None:
            core = _decaying_scaled(core, per_tensor.weight_decay)
        parts = [] if clip is None else [optax.clip_by_global_norm(clip)]
        if decay_term and not own_decay:
            parts += [optax.add_decayed_weights(weight_decay, mask=decayed)]
        if parsed.name in EPSILON and per_tensor is not None and per_tensor.eps is not None:
            parts += [_gradients_over(per_tensor.eps)]
        parts += [core]
        return parts[0] if len(parts) == 1 else optax.chain(*parts)

    values = {"lr": lr, "weight_decay": weight_decay, "momentum": momentum}
    try:
        if not injected:
            return recipe(**values)
        if "momentum" in injected and values["momentum"] is None:
            values["momentum"] = 0.0  # a placeholder: each run's state holds its own value
        static = tuple(name for name in INJECTABLE if name not in injected)
        return optax.inject_hyperparams(recipe, static_args=static)(**values)
    except TypeError as error:
        raise UserError(f"optimizer {optimizer!r}: {error}; see optax.{parsed.name}") from None


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How every run of a task is trained (this module).

    Attributes:
      optimizer: spec of an optimizer in :data:`OPTIMIZERS`, with keyword
        arguments: ``"adam"``, ``"adamw(b2=0.95)"``.
      lr: peak learning rate, > 0.
      batch_size: minibatch size; the last minibatch of an epoch may be partial
        (it is masked, as Keras trains on it).
      epochs: number of passes over the training set.
      eval_batch_size: examples per evaluation chunk at most (bounds evaluation memory; fewer where a model's chunk
        would hold more than its training step, ``bench.training.memory.evaluation_chunk``).
      schedule: the learning rate's curve over the run (:data:`SCHEDULES`).
      weight_decay: >= 0; the optimizer's own decoupled decay or an L2 term.
      clip: clip gradients to this global norm (None: no clipping).
      evals_per_epoch: evaluations an epoch, at its end and at evenly spaced steps within it (the first step at or
        past each ``j / evals_per_epoch`` of the epoch), so time to a target is measured finer than an epoch; 1 to
        the epoch's steps (``bench.training.programs.evaluation_steps``).
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    batch_size: int = 32
    epochs: int = 10
    eval_batch_size: int = 2048
    schedule: str = "constant"
    weight_decay: float = 0.0
    clip: float | None = None
    evals_per_epoch: int = 1

    def validate(self, n_train: int | None) -> None:
        """Raises UserError on a value no training can use (the batch size against ``n_train`` when given)."""
        check(self.optimizer, self.schedule)
        if not (math.isfinite(self.lr) and 0 < self.lr <= MAX_LR):
            raise UserError(f"learning rate must be a number > 0 and at most {MAX_LR:g}, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise UserError(f"weight decay must be a finite number >= 0, got {self.weight_decay}")
        if self.clip is not None and not (math.isfinite(self.clip) and self.clip > 0):
            raise UserError(f"clip (a global gradient norm) must be a finite number > 0, got {self.clip}")
        if self.epochs < 1:
            raise UserError(f"epochs must be >= 1, got {self.epochs}")
        if n_train is None and not 1 <= self.batch_size <= 2**31 - 1:
            raise UserError(f"batch size must be an integer >= 1, got {self.batch_size}")
        if n_train is not None and not 1 <= self.batch_size <= n_train:
            raise UserError(
                f"batch size must be between 1 and the {n_train:,} training examples, got {self.batch_size}"
            )
        steps = None if n_train is None else -(-n_train // self.batch_size)
        if not 1 <= self.evals_per_epoch <= (steps or 2**31 - 1):
            raise UserError(f"evaluations per epoch must be an integer from 1 to the {steps or 'number of'} "
                            f"minibatch steps of an epoch, got {self.evals_per_epoch}")

    def optax(self, n_train: int, injected: tuple[str, ...] = (), per_tensor: PerTensor | None = None
              ) -> optax.GradientTransformation:
        """The optimizer of this recipe for a training set of ``n_train`` examples (the schedule's length).

        ``injected``: hyperparameters (:data:`INJECTABLE`) held in each run's
        optimizer state rather than in the program, for a grid (:func:`set_hyperparameters`); ``per_tensor``: the
        model's per-tensor factors (:class:`PerTensor`).
        """
        steps = -(-n_train // self.batch_size) * self.epochs
        return build(self.optimizer, self.lr, self.schedule, self.weight_decay, self.clip, steps, injected,
                     per_tensor=per_tensor)
