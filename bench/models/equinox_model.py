"""An Equinox model, trained as the suite trains a linen one.

:class:`EquinoxModel` is a linen module around a factory of the user's ``eqx.Module`` (``factory(key)``). Its
floating-point array leaves are the linen ``params``, named by their attribute paths (``layers/0/bias``), with one
convention mapped so that every initializer, rule and scheme reads them as Flax's: the weight of an ``eqx.nn.Linear``
or ``eqx.nn.Conv`` is stored the Flax way and named ``kernel`` (Equinox's ``Linear`` weight is ``(out, in)``, its
``Conv`` weight ``(out, in, *spatial)``; the linen view holds ``(in, out)`` and ``(*spatial, in, out)``, so fans,
He and Glorot variances are right); any other leaf (an ``Embedding``'s weight) keeps its name and layout. While it
trains, the model holds those weights in Equinox's own layout instead (:meth:`EquinoxModel.training_layout`, see
``bench.training.layouts``), so that no step transposes them. A call rebuilds the module (``eqx.combine``, while the
program is traced), sets its inference mode (``eqx.nn.inference_mode``: dropout off in evaluation) and maps it over
the batch (Equinox modules take one example), giving each example its own key from the run's dropout key where the
module's ``__call__`` takes ``key`` and it holds an ``eqx.nn.Dropout``.

Not taken (refused in one line): a module with state (``eqx.nn.BatchNorm``, ``eqx.nn.State``). Whole-network
schemes and diagnostics do not see Equinox layers (they refuse such a model rather than leave it as drawn).

Reference: Equinox's documentation, "Filtering" (``eqx.partition``/``eqx.combine``) and ``eqx.nn.inference_mode``.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from bench.errors import UserError
from bench.models import widths
from initjax.paths import path_name

INPUT_FIELDS = ("in_size", "in_features", "in_channels")  # set from the data when the factory leaves them out
OUTPUT_FIELDS = ("out_size", "out_features")


def equinox():
    """The ``equinox`` module, or one line naming the extra."""
    try:
        import equinox as eqx
    except ImportError:
        raise UserError("Equinox models need equinox: pip install -e '.[equinox]'") from None
    return eqx


def is_available() -> bool:
    """Whether equinox is installed."""
    try:
        import equinox  # noqa: F401
    except ImportError:
        return False
    return True


def is_equinox(spec) -> bool:
    """Whether ``spec`` is an ``eqx.Module`` class or instance (False where equinox is not installed)."""
    try:
        import equinox as eqx
    except ImportError:
        return False
    return isinstance(spec, eqx.Module) or (isinstance(spec, type) and issubclass(spec, eqx.Module))


def _is_float(leaf) -> bool:
    return isinstance(leaf, jax.Array | jax.ShapeDtypeStruct) and jnp.issubdtype(leaf.dtype, jnp.inexact)


def _names(path) -> tuple[str, ...]:
    """The names along a key path (``initjax.paths.path_name``'s), none for the root."""
    return tuple(path_name(path).split("/")) if path else ()


def _kernel_paths(template, eqx) -> set[tuple[str, ...]]:
    """The paths of the weights of the module's ``eqx.nn.Linear`` and ``eqx.nn.Conv`` layers (``(out, in, ...)``):
    the leaves held in Flax's layout and named ``kernel``; an ``Embedding``'s or a user's own ``weight`` is not."""
    layers = (eqx.nn.Linear, eqx.nn.Conv)
    found = jax.tree_util.tree_flatten_with_path(template, is_leaf=lambda m: isinstance(m, layers))[0]
    return {(*_names(path), "weight") for path, layer in found if isinstance(layer, layers)}


def to_flax(w):
    """``(out, in, *spatial)`` -> ``(*spatial, in, out)``."""
    return jnp.transpose(w, (*range(2, w.ndim), 1, 0))


def from_flax(w):
    """``(*spatial, in, out)`` -> ``(out, in, *spatial)``."""
    return jnp.transpose(w, (w.ndim - 1, w.ndim - 2, *range(w.ndim - 2)))


class EquinoxModel(nn.Module):
    """An Equinox model as a linen module (see the module docstring).

    Attributes:
      factory: ``factory(key) -> eqx.Module``, the user's class or function with its arguments bound.
      label: the model's name in results tables.
      output_activation: the head's activation the loss applies, as the built-in models name it; None: the task
        names its loss.
      own_layout: the params collection holds Linear and Conv weights in Equinox's layout (the model as it trains,
        :meth:`training_layout`); False: in Flax's, as everything that draws or reads parameters sees them.
    """

    factory: Callable
    label: str = "Equinox model"
    output_activation: str | None = None
    own_layout: bool = False

    @nn.compact
    def __call__(self, x, train: bool = False):
        eqx = equinox()
        shape = _Structure.of(self.factory, eqx)
        called = _same if self.own_layout else from_flax  # a held kernel -> Equinox's layout
        drawn = []

        def draw(key):  # the module's own draws, made once on initialization
            if not drawn:
                leaves = jax.tree.leaves(eqx.partition(self.factory(key), _is_float)[0])
                drawn.extend(shape.held(leaves, self.own_layout))
            return drawn

        tops = list(dict.fromkeys(v[0] for v in shape.view))
        params = {top: self.param(top, lambda key, top=top: _nest(
            [(v[1:], leaf) for v, leaf in zip(shape.view, draw(key)) if v[0] == top])) for top in tops}
        leaves = [_at(params[v[0]], v[1:]) for v in shape.view]
        leaves = [called(leaf) if n in shape.kernels else leaf for n, leaf in zip(shape.names, leaves)]
        model = eqx.nn.inference_mode(eqx.combine(jax.tree.unflatten(shape.treedef, leaves), shape.static),
                                      value=not train)
        # mapped with the batch as the last axis: (out, in) weights times (in, batch) activations need no transpose
        # between layers (with the batch first, XLA transposed every layer's output: 0.8x linen's speed)
        last = jnp.moveaxis(x, 0, -1)
        if _draws(model, eqx):
            base = self.make_rng("dropout") if train else jax.random.key(0)
            keys = jax.random.split(base, x.shape[0])
            outputs = jax.vmap(lambda example, key: model(example, key=key), in_axes=(-1, 0), out_axes=-1)(last, keys)
        else:
            outputs = jax.vmap(model, in_axes=-1, out_axes=-1)(last)
        return jnp.moveaxis(outputs, -1, 0)

    def training_layout(self) -> tuple[nn.Module, Callable, Callable]:
        """``(model, inward, outward)``: this model holding its Linear and Conv weights in Equinox's layout while it
        trains, and one run's parameters mapped from Flax's layout to it and back (``bench.training.layouts``: no
        transpose in any step)."""
        kernels = set(_Structure.of(self.factory, equinox()).kernel_views())

        def mapped(way):
            return lambda params: jax.tree_util.tree_map_with_path(
                lambda path, leaf: way(leaf) if _names(path) in kernels else leaf, params)

        return self.clone(own_layout=True), mapped(from_flax), mapped(to_flax)


@dataclasses.dataclass(frozen=True)
class _Structure:
    """An Equinox module's floating-point leaves as the linen view names them.

    Attributes:
      treedef, static: the leaves' tree and the module's other fields (``eqx.partition``).
      names: each leaf's attribute path (``("layers", "0", "weight")``).
      kernels: the paths of Linear and Conv weights (held in Flax's layout in the view).
      view: each leaf's name in the linen view (a kernel's ``weight`` named ``kernel``).
    """

    treedef: Any
    static: Any
    names: list
    kernels: set
    view: list

    @classmethod
    def of(cls, factory: Callable, eqx) -> _Structure:
        template = eqx.filter_eval_shape(factory, jax.random.key(0))
        arrays, static = eqx.partition(template, _is_float)
        paths, treedef = jax.tree_util.tree_flatten_with_path(arrays)
        names = [_names(path) for path, _ in paths]
        kernels = _kernel_paths(template, eqx)
        view = [(*n[:-1], "kernel") if n in kernels else n for n in names]
        return cls(treedef, static, names, kernels, view)

    def kernel_views(self) -> list:
        """The view's paths of the kernels."""
        return [v for n, v in zip(self.names, self.view) if n in self.kernels]

    def held(self, leaves: list, own_layout: bool) -> list:
        """The module's own leaves as the params collection holds them (kernels in Flax's layout unless
        ``own_layout``)."""
        return [to_flax(v) if n in self.kernels and not own_layout else v for n, v in zip(self.names, leaves)]


def _same(leaf):
    return leaf


def _draws(model, eqx) -> bool:
    """Whether a call needs keys: its ``__call__`` takes ``key`` and it holds an ``eqx.nn.Dropout`` (``eqx.nn.MLP``
    takes a key it never uses; a key per example per step costs a tenth of a small MLP's step)."""
    if "key" not in inspect.signature(model.__call__).parameters:
        return False
    return any(isinstance(m, eqx.nn.Dropout) for m in jax.tree.leaves(model, is_leaf=lambda m: isinstance(
        m, eqx.nn.Dropout)))


def _nest(items) -> dict | jax.Array:
    """A nested dict of ``(path, leaf)`` pairs (a leaf alone where the path is empty)."""
    if len(items) == 1 and not items[0][0]:
        return items[0][1]
    tree: dict = {}
    for path, leaf in items:
        node = tree
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = leaf
    return tree


def _at(tree, path):
    for name in path:
        tree = tree[name]
    return tree


def wrap(spec, args: dict, input_shape, n_outputs: int | None, what: str) -> EquinoxModel:
    """An :class:`EquinoxModel` of an ``eqx.Module`` class (or a factory returning one) called with ``args`` and
    ``key``; an input-width argument (:data:`INPUT_FIELDS`) and an output-width one (:data:`OUTPUT_FIELDS`) left out
    are set from the data.

    Raises:
      UserError: an instance (it holds one draw, not a seed's own), a call that fails, or a stateful module.
    """
    eqx = equinox()
    if isinstance(spec, eqx.Module):
        raise UserError(f"model {what} is an eqx.Module instance, which holds one draw of its parameters; give its "
                        "class (with model_args) or a factory(key) so that each seed draws its own")
    widths.fill(spec, args, INPUT_FIELDS, OUTPUT_FIELDS, input_shape, n_outputs)

    def factory(key):
        return spec(**args, key=key)

    try:
        made = eqx.filter_eval_shape(factory, jax.random.key(0))
    except Exception as error:  # user code may raise anything; name it
        from initjax.registry import first_line

        raise UserError(f"model {what}({widths.call(args)}, key=...) failed: "
                        f"{first_line(error)}") from None
    if not isinstance(made, eqx.Module):
        raise UserError(f"model {what} gave a {type(made).__name__}, not an eqx.Module")
    stateful = [type(m).__name__ for m in jax.tree.leaves(made, is_leaf=lambda m: isinstance(m, eqx.nn.StateIndex))
                if isinstance(m, eqx.nn.StateIndex)]
    if stateful:
        raise UserError(f"model {what} holds state (eqx.nn.StateIndex: BatchNorm or the like), which the suite does "
                        "not carry for Equinox models yet; use a stateless model or write it in Flax")
    label = f"{type(made).__name__}({widths.call(args)}) [equinox]"
    return EquinoxModel(factory, label)
