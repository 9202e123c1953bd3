"""The initial state of every run of a task: each arm's parameters drawn per seed, crossed with the grid's cells,
with the optimizer state holding each arm's hyperparameters; and the checks that an arm fits the model before
anything is compiled."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from bench.errors import UserError
from bench.training import grid as grids
from bench.training import layouts, parameterized, speedups, step
from initjax import rules, schemes
from initjax.registry import first_line

SCHEME_BATCH = 256  # training examples a whole-network init scheme sees per seed


def arm_rules(arm) -> tuple[rules.Rule, ...]:
    """The per-tensor rules of an arm: a rule set as is; an initializer, or a scheme's ``base``, for every kernel."""
    if isinstance(arm, tuple):
        return arm
    return rules.compile_rules(arm.base if schemes.is_scheme(arm) else arm)


def init_params(model: nn.Module, arms: Sequence, init_keys, input_shape: Sequence[int],
                x_train: jnp.ndarray | None = None) -> dict:
    """Initial parameters of every (arm, seed), stacked.

    An arm is an initializer (every kernel), a rule set (``initjax.rules``: by
    parameter path) or a scheme (``initjax.schemes.Scheme``). The model's own
    initializers draw every parameter with the seed's key, once per seed; each arm's rules then
    redraw what they match (``initjax.rules.apply``). A scheme's ``base`` draws every
    kernel, then the scheme transforms the whole params with :data:`SCHEME_BATCH`
    training examples drawn for the seed (``x_train`` is needed then), seeing the
    model in evaluation mode (no dropout; BatchNorm at its initial running statistics).
    A model with a width parameterization then has every tensor multiplied by its init factor
    (``bench.training.parameterized``).

    Every arm of a seed is drawn in one body mapped over the seeds (``lax.map``), so all arms x seeds are one
    compiled loop, and a seed's numbers are those of the seed drawn alone. The body is traced once with each
    repeated operation computed once (``bench.training.dedupe``): the arms of a seed draw from the same keys, so
    most of their random bits are one draw, which XLA would otherwise compile and compute once per arm; and its
    independent hashes (the keys of every parameter, the draws of every parameter) are batched into one hash per
    depth (``bench.training.hashes``: on CPU each hash is a loop XLA compiles on its own). Not
    ``vmap``: on CPU, jaxlib 0.10 runs a batched QR (orthogonal init) through ``ParallelBatchMap`` on XLA's
    intra-op pool and blocks on it, and as many of those as the pool has threads, run concurrently by one
    program, deadlock it (every worker in ``BlockingCounter::Wait``; two orthogonal arms of a 3-layer MLP
    suffice on 2 cores). Mapped, every QR has a batch of one and runs inline.

    Returns:
      Params pytree with leaves `(n_arms, n_seeds, ...)`.
    """
    forward = step.forward_of(model, input_shape)
    sample = jnp.zeros((1, *input_shape), jnp.float32)
    apply_fn = forward.probe(input_shape) if any(schemes.is_scheme(arm) for arm in arms) else None
    by_arm = [arm_rules(arm) for arm in arms]
    factors = parameterized.init_factors(model, input_shape)  # None: the model has no width parameterization

    def one_seed(key):
        own = forward.init(key, sample)[0]  # the model's own draws, shared by every arm of the seed
        drawn = []
        for arm, by in zip(arms, by_arm):
            params = rules.apply(jax.random.fold_in(key, 4), own, by)
            if schemes.is_scheme(arm):
                n = x_train.shape[0]
                batch = x_train[
                    jax.random.choice(jax.random.fold_in(key, 2), n, (min(SCHEME_BATCH, n),), replace=False)
                ]
                params = arm(jax.random.fold_in(key, 3), params, apply_fn, batch)
            if factors is not None:
                params = jax.tree.map(lambda leaf, f: leaf * jnp.asarray(f, leaf.dtype), params, factors)
            drawn.append(params)
        return jax.tree.map(lambda *leaves: jnp.stack(leaves), *drawn)

    per_seed = jax.lax.map(speedups.seed_body(one_seed), init_keys)
    return jax.tree.map(lambda leaf: jnp.swapaxes(leaf, 0, 1), per_seed)


def initial_state(model: nn.Module, optimizer: optax.GradientTransformation, arms: Sequence, init_keys,
                  input_shape: Sequence[int], x_train: jnp.ndarray | None = None,
                  grid: grids.Grid = grids.Grid(), layout: layouts.Layout | None = None) -> step.RunState:
    """The :class:`bench.training.step.RunState` of every (initializer, cell, seed) before training.

    Every initializer in ``arms`` is crossed with every cell of ``grid`` (initializer-major):
    leaves `(n_arms * n_cells, n_seeds, ...)`. The cells of one initializer start from the
    same draw (common random numbers), times their init scale where ``grid.init_scale_on``
    matches; their optimizer states hold their own hyperparameters (``optimizer`` built
    with the grid's optimizer factors injected). ``layout``: the model's training layout
    (``bench.training.layouts``), the parameters then held, and the optimizer state made, in it.
    """
    params = with_init_scales(init_params(model, arms, init_keys, input_shape, x_train), grid)
    if layout is not None:
        params = layout.runs(layout.inward)(params)
    forward = step.forward_of(model, input_shape)
    _, model_state = forward.init(jax.random.key(0), jnp.zeros((1, *input_shape), jnp.float32))
    runs = (len(arms) * len(grid.cells()), init_keys.shape[0])
    model_state = jax.tree.map(lambda leaf: jnp.broadcast_to(leaf, (*runs, *leaf.shape)), model_state)
    opt_state = set_hyperparameters(jax.vmap(jax.vmap(optimizer.init))(params), grid, len(arms))
    return step.RunState(params, opt_state, model_state)


def with_init_scales(params, grid: grids.Grid):
    """Params `(n_inits, n_seeds, ...)` crossed with the grid's cells: `(n_inits * n_cells, n_seeds, ...)`.

    Leaves that ``grid.init_scale_on`` matches are multiplied by each cell's init scale;
    the others are repeated as drawn.
    """
    cells = grid.cells()
    scales = np.array([cell.get("init_scale", 1.0) for cell in cells], np.float32)
    if len(cells) == 1 and scales[0] == 1.0:
        return params

    def crossed(path, leaf):
        factor = scales if rules.matches(grid.init_scale_on, rules.path_name(path)) else np.ones_like(scales)
        factor = jnp.asarray(factor, leaf.dtype).reshape(1, -1, *([1] * (leaf.ndim - 1)))
        scaled = leaf[:, None] * factor
        return scaled.reshape(-1, *leaf.shape[1:])

    return jax.tree_util.tree_map_with_path(crossed, params)


def grid_values(grid: grids.Grid, n_inits: int) -> dict[str, np.ndarray]:
    """Each optimizer factor of the grid per arm, `(n_inits * n_cells,)`, initializer-major."""
    cells = grid.cells()
    return {factor: np.tile(np.array([cell[factor] for cell in cells], np.float64), n_inits)
            for factor in grid.factors if factor in grids.OPTIMIZER_FACTORS}


def set_hyperparameters(opt_state, grid: grids.Grid, n_inits: int):
    """Optimizer states `(n_arms, n_seeds, ...)` of an injected recipe with each arm's grid values set."""
    values = grid_values(grid, n_inits)
    if not values:
        return opt_state
    hyperparams = dict(opt_state.hyperparams)
    for factor, per_arm in values.items():
        held = hyperparams[factor]
        hyperparams[factor] = jnp.broadcast_to(jnp.asarray(per_arm, held.dtype)[:, None], held.shape)
    return opt_state._replace(hyperparams=hyperparams)


def check_scale_pattern(model: nn.Module, input_shape: Sequence[int], grid: grids.Grid) -> None:
    """Raises UserError when the grid scales initial parameters and its pattern matches none of the model's."""
    if not grid.init_scale:
        return
    forward = step.forward_of(model, input_shape)
    params = jax.eval_shape(lambda x: forward.init(jax.random.key(0), x)[0],
                            jax.ShapeDtypeStruct((1, *input_shape), jnp.float32))
    names = [rules.path_name(path) for path, _ in jax.tree.leaves_with_path(params)]
    if not any(rules.matches(grid.init_scale_on, name) for name in names):
        raise UserError(f"init_scale_on {grid.init_scale_on!r} matches no parameter of this model (its parameters: "
                        f"{', '.join(names)}); fix the pattern")


def check_on_model(model: nn.Module, arms: Mapping[str, object], input_shape: Sequence[int]) -> None:
    """Traces each arm's initializers on the parameters they draw (``jax.eval_shape``: nothing is computed).

    ``initjax.check`` tries a small kernel; this tries the model's real parameters
    (4-D conv kernels, wide layers), where a user initializer may still fail, and
    refuses a rule that draws no parameter (a typo in a path pattern).

    Raises:
      UserError: naming the arm and parameter that failed, gave the wrong shape or
        dtype, or the rule that matches nothing.
    """
    try:
        forward = step.forward_of(model, input_shape)
        params = jax.eval_shape(lambda x: forward.init(jax.random.key(0), x)[0],
                                jax.ShapeDtypeStruct((1, *input_shape), jnp.float32))
    except Exception as error:  # user models may raise anything; name it
        raise UserError(f"model {type(model).__name__} failed on inputs of shape {[1, *input_shape]}: "
                        f"{first_line(error)}") from None
    leaves = {rules.path_name(path): leaf for path, leaf in jax.tree.leaves_with_path(params)}
    for name, arm in arms.items():
        if schemes.is_scheme(arm):
            _check_scheme(name, arm, model, input_shape, params)
        by = arm_rules(arm)
        unused = rules.unmatched_rules(list(leaves), by)
        if unused:
            raise UserError(f"{name!r}: the rule {unused[0]!r} draws no parameter of this model (its parameters: "
                            f"{', '.join(leaves)}); fix the pattern")
        for where, index in rules.assign(list(leaves), by).items():
            kernel, init = leaves[where], by[index][1]
            try:
                got = jax.eval_shape(lambda k=kernel, f=init: f(jax.random.key(0), k.shape, k.dtype))
            except Exception as error:  # user code may raise anything; name it
                raise UserError(f"initializer {name!r} failed on the parameter {where} of shape "
                                f"{list(kernel.shape)}: {first_line(error)}") from None
            if not isinstance(got, jax.ShapeDtypeStruct):
                raise UserError(f"initializer {name!r} returned {type(got).__name__} for the parameter {where}; "
                                "it must follow init(key, shape, dtype) -> Array")
            if (got.shape, got.dtype) != (kernel.shape, kernel.dtype):
                raise UserError(f"initializer {name!r} gave {got.dtype}{list(got.shape)} for the parameter {where} "
                                f"of shape {list(kernel.shape)} {kernel.dtype}; it must follow "
                                "init(key, shape, dtype) -> Array")


def _check_scheme(name, scheme, model, input_shape, expected) -> None:
    """Traces a scheme on the model; raises UserError naming it if it fails or changes the params' structure."""
    batch = jax.ShapeDtypeStruct((SCHEME_BATCH, *input_shape), jnp.float32)
    by = arm_rules(scheme)

    forward = step.forward_of(model, input_shape)

    def traced(x):
        key = jax.random.key(0)
        return scheme(jax.random.key(1), rules.apply(key, forward.init(key, x[:1])[0], by),
                      forward.probe(input_shape), x)

    try:
        got = jax.eval_shape(traced, batch)
    except Exception as error:  # user or scheme code may raise anything; name it
        raise UserError(f"init scheme {name!r} failed on this model: {first_line(error)}") from None
    if jax.tree.structure(got) != jax.tree.structure(expected) or any(
            (a.shape, a.dtype) != (b.shape, b.dtype) for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected))):
        raise UserError(f"init scheme {name!r} returned parameters of another structure or shape than the model's")
