"""A task's width parameterization (``initjax.parameterization``) applied to its runs.

A built-in model given ``parameterization = "mup"`` and ``base_width = 64`` in its ``model_args``
is compared with the same model at the base width: the tensors whose shapes differ get their
role and width multiplier ``m`` (``initjax.parameterization.roles``). Then

* every arm's draw is multiplied, tensor by tensor, by the parameterization's init factor
  (:func:`init_factors`, applied by ``bench.training.train.init_params``), and
* every update is multiplied by the tensor's learning-rate factor, after the recipe's optimizer
  (:func:`optimizer`), and Adam's epsilon and decoupled weight decay by the tensor's factors inside it
  (:func:`per_tensor`; :func:`recipe` builds the whole).

Under ``depth_mup`` or ``completep`` (with ``base_depth``), a ResMLP's or pre-LN/no-LN transformer's tensors also
take a depth role from their path (:func:`depth_roles`): each block's branch output (the transformer's ``attn/out``
and ``mlp/out``, the ResMLP's ``branch_out`` and stream bias ``b3``), the rest of its branch, or outside the blocks;
the factors multiply the width ones.

Forward multipliers (NTK's ``1/sqrt(fan_in)``, muP's attention ``1/d``, Depth-muP's ``1/sqrt(L)`` on branches)
are folded into the tensors, their learning rates, epsilons and decays, so the model's forward pass is unchanged,
the steps are the explicit multipliers' and any arm, grid and chunking works as for any other task. The arms'
draws are taken as the standard parameterization's: ``Var ~ 1/fan_in`` on hidden and output tensors (LeCun, He);
Glorot's input layer and GPT-2's constant 0.02 are not fan-in draws.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import linen as nn

from bench.errors import UserError, unknown
from bench.training import recipes
from initjax import parameterization as param

# how each optimizer's step scales with its gradient: linearly (SGD family) or not at all (Adam family)
FAMILIES = {"sgd": "sgd", "momentum": "sgd", "nesterov": "sgd", "adam": "adam", "adamw": "adam", "lion": "adam",
            "rmsprop": "adam"}
QUERY = "attn/query/"  # the transformer's query projection (kernel and bias), where attention's 1/d is folded
BRANCH_OUTPUTS = ("attn/out/", "mlp/out/", "branch_out/", "b3/")  # a block's last layer and its bias to the stream
FIXED = ("residual_alpha/",)  # constants of a block, not in its branch (no gradient)


def _path(path) -> str:
    return "/".join(str(getattr(k, "key", k)) for k in path) + "/"


def of(model: nn.Module) -> param.Parameterization | None:
    """The model's parameterization (None: none asked for)."""
    name = getattr(model, "parameterization", None)
    return None if name is None else param.get(name)


def family(optimizer: str) -> str:
    """``"sgd"`` or ``"adam"``: how the optimizer's step scales with the gradient."""
    name = optimizer.split("(", 1)[0].strip()
    if name not in FAMILIES:
        raise unknown("optimizer (for a parameterization)", name, FAMILIES)
    return FAMILIES[name]


def base_model(model: nn.Module) -> nn.Module:
    """The same model at its ``base_width``: every hidden width (MLP), the block width (ResMLP,
    Transformer; the number of heads kept, so the head width scales too)."""
    base = model.base_width
    if hasattr(model, "hidden"):
        return model.clone(hidden=tuple(base for _ in model.hidden))
    return model.clone(width=base)


def _shapes(model: nn.Module, input_shape) -> dict:
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    return jax.eval_shape(lambda x: model.init(jax.random.key(0), x)["params"], x)


def roles(model: nn.Module, input_shape) -> dict:
    """Per parameter, ``(role, m)`` against the base model (``initjax.parameterization.roles``)."""
    return param.roles(_shapes(model, input_shape), _shapes(base_model(model), input_shape))


def _head_ratio(model: nn.Module) -> float:
    return model.width / model.base_width if hasattr(model, "heads") else 1.0


def _with_query(factors: dict, power: float, model: nn.Module, p: param.Parameterization) -> dict:
    """``factors`` with attention's logit factor, to the ``power``, folded into the query tensors."""
    c = param.attention_factor(p, _head_ratio(model)) ** power
    if c == 1.0:
        return factors
    return jax.tree_util.tree_map_with_path(lambda path, f: f * c if QUERY in _path(path) else f, factors)


def depth_role(path: str) -> str:
    """A parameter's depth role (``initjax.parameterization.DEPTH_ROLES``) from its path, ``"/"``-joined and
    ending in ``"/"``: inside a ``block_i`` a branch output or the rest of the branch, else outside."""
    if not path.startswith("block_") or any(path.endswith(name) for name in FIXED):
        return "outside"
    inside = path.split("/", 1)[1]
    return "branch_output" if any(inside.startswith(name) for name in BRANCH_OUTPUTS) else "branch"


def depth_roles(model: nn.Module, input_shape) -> dict:
    """Per parameter, its depth role (:func:`depth_role`)."""
    return jax.tree_util.tree_map_with_path(lambda path, _: depth_role(_path(path)), _shapes(model, input_shape))


def _depth_ratio(model: nn.Module) -> float:
    return model.depth / model.base_depth if getattr(model, "base_depth", None) is not None else 1.0


def _times(a: dict, b: dict) -> dict:
    return jax.tree.map(lambda x, y: x * y, a, b)


def init_factors(model: nn.Module, input_shape) -> dict | None:
    """Per parameter, what multiplies an arm's draw (None without a parameterization)."""
    p = of(model)
    if p is None:
        return None
    width = _with_query(param.init_factors(p, roles(model, input_shape)), 1.0, model, p)
    return _times(width, param.depth_init_factors(p, depth_roles(model, input_shape), _depth_ratio(model)))


def lr_factors(model: nn.Module, input_shape, optimizer: str) -> dict | None:
    """Per parameter, what multiplies the learning rate (None without a parameterization)."""
    p = of(model)
    if p is None:
        return None
    kind = family(optimizer)
    if p.depth is not None and not p.depth.has_rule(kind):
        raise UserError(f"{p.name} has no learning-rate rule for {optimizer.split('(', 1)[0].strip()} (its paper "
                        "gives AdamW's): train it with adam or adamw")
    width = _with_query(param.lr_factors(p, roles(model, input_shape), kind), param.fold_power(kind), model, p)
    return _times(width, param.depth_lr_factors(p, depth_roles(model, input_shape), _depth_ratio(model), kind))


def _width_and_depth(model: nn.Module, input_shape, p: param.Parameterization, width_fn, depth_fn) -> dict:
    """Per parameter, width factors (``width_fn(p, roles)``, the query's over attention's folded multiplier) times
    depth factors (``depth_fn(p, depth roles, m_L)``)."""
    width = _with_query(width_fn(p, roles(model, input_shape)), -1.0, model, p)
    return _times(width, depth_fn(p, depth_roles(model, input_shape), _depth_ratio(model)))


def per_tensor(model: nn.Module, input_shape, optimizer: str) -> recipes.PerTensor | None:
    """Per parameter, what multiplies Adam's epsilon and decoupled weight decay (``initjax.parameterization``'s
    ``eps_factors``, ``decay_factors`` and their depth rules, the folded multipliers' inverses included), or None
    without a parameterization or where every factor is 1."""
    p = of(model)
    if p is None:
        return None
    eps = _width_and_depth(model, input_shape, p, param.eps_factors, param.depth_eps_factors)
    decay = _width_and_depth(model, input_shape, p, param.decay_factors, param.depth_decay_factors)

    def ones(tree):
        return all(f == 1.0 for f in jax.tree.leaves(tree))

    if ones(eps) and ones(decay):
        return None
    return recipes.PerTensor(eps=None if ones(eps) else eps, weight_decay=None if ones(decay) else decay)


def optimizer(base: optax.GradientTransformation, model: nn.Module, input_shape,
              optimizer_spec: str) -> optax.GradientTransformation:
    """``base`` with every update multiplied by the model's learning-rate factors (``base`` itself without a
    parameterization). The state is ``base``'s own, so a grid's injected hyperparameters stay where
    ``bench.training.train.set_hyperparameters`` looks for them."""
    factors = lr_factors(model, input_shape, optimizer_spec)
    if factors is None:
        return base

    def update(updates, state, params=None):
        updates, state = base.update(updates, state, params)
        return jax.tree.map(lambda u, f: u * jnp.asarray(f, u.dtype), updates, factors), state

    return optax.GradientTransformation(base.init, update)


def recipe(config: recipes.TrainConfig, model: nn.Module, input_shape, n_train: int, injected: tuple[str, ...] = ()
           ) -> optax.GradientTransformation:
    """The recipe's optimizer for ``model`` (``config.optax``): the parameterization's per-tensor epsilon and decay
    inside it (:func:`per_tensor`), its learning-rate factors after it (:func:`optimizer`)."""
    base = config.optax(n_train, injected, per_tensor(model, input_shape, config.optimizer))
    return optimizer(base, model, input_shape, config.optimizer)
