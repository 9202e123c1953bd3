"""A Flax NNX model, trained as the suite trains a linen one.

:class:`NNXModel` is a linen module around a factory of the user's ``nnx.Module``. Everything downstream of a model
(the single-run step, the vmap over arms and seeds, rules by path, schemes, grids, resume) sees the linen view: the
model's ``nnx.Param`` state is the ``params`` collection and its ``nnx.BatchStat`` state the ``batch_stats`` one,
under the same paths as NNX's own state (``layers/0/kernel``, ``head/bias``). A call rebuilds the NNX module from
that state (``nnx.merge``, while the program is traced: the compiled step holds no split or merge), switches it to
training or evaluation mode with its own ``train()``/``eval()`` (``nnx.Dropout``'s ``deterministic``,
``nnx.BatchNorm``'s ``use_running_average``), calls it, and in training hands the updated batch statistics back.

The model's random streams (``nnx.Rngs``, for dropout) are reseeded on every training call from the run's dropout
key, as a linen model's dropout is; the initial draw uses the run's initialization key. NNX and linen share the
kernel layout (``(in, out)``, conv ``HWIO``), so fans are the same for both. Under ``initjax.schemes.probe`` each
``nnx.Linear`` and ``nnx.Conv`` output is reported as linen's ``Dense`` and ``Conv`` are, so the whole-network
schemes (LSUV, data-dependent, MetaInit, mean field, Fixup) and the diagnostics act on NNX layers too.

Reference: Flax's NNX documentation, "NNX basics" (``nnx.split``/``nnx.merge``) and "Flax Linen to NNX".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
from flax import nnx

from bench.errors import UserError
from bench.models import widths
from initjax import schemes

CARRIED = (nnx.RngKey, nnx.RngCount)  # state besides Param and BatchStat a model may hold: its random streams
INPUT_FIELDS = ("in_features", "n_inputs", "num_inputs", "n_features", "din")  # set from the data when left out
OUTPUT_FIELDS = ("out_features", "dout")  # NNX's names of an output width, besides linen models' own


def is_nnx(spec) -> bool:
    """Whether ``spec`` is an ``nnx.Module`` class or instance."""
    return isinstance(spec, nnx.Module) or (isinstance(spec, type) and issubclass(spec, nnx.Module))


def _with_str_keys(tree):
    """A pure state dict with every key a string, as linen names variables (NNX lists index by int)."""
    return {str(k): _with_str_keys(v) for k, v in tree.items()} if isinstance(tree, Mapping) else tree


def _like(shape, tree):
    """``tree`` (string keys) with the keys of ``shape`` (NNX's own, ints for list items)."""
    return {k: _like(v, tree[str(k)]) for k, v in shape.items()} if isinstance(shape, Mapping) else tree


class NNXModel(nn.Module):
    """A Flax NNX model as a linen module (see the module docstring).

    Attributes:
      factory: ``factory(rngs: nnx.Rngs) -> nnx.Module``, the user's class with its arguments bound.
      label: the model's name in results tables.
      output_activation: the head's activation the loss applies (``"sigmoid"``, ``"softmax"``), as the built-in
        models name it; None: the task names its loss.
    """

    factory: Callable[[nnx.Rngs], nnx.Module]
    label: str = "NNX model"
    output_activation: str | None = None

    @nn.compact
    def __call__(self, x, train: bool = False):
        graphdef, params_shape, stats_shape, rest = nnx.split(nnx.eval_shape(lambda: self.factory(nnx.Rngs(0))),
                                                              nnx.Param, nnx.BatchStat, ...)
        _refuse_other_state(rest, self.label)
        drawn = {}

        def draw(key):  # the model's own draws, made once on initialization
            if not drawn:
                _, params, stats, _ = nnx.split(self.factory(nnx.Rngs(key)), nnx.Param, nnx.BatchStat, ...)
                drawn.update(params=_with_str_keys(nnx.to_pure_dict(params)),
                             stats=_with_str_keys(nnx.to_pure_dict(stats)))
            return drawn

        params_pure, stats_pure = nnx.to_pure_dict(params_shape), nnx.to_pure_dict(stats_shape)
        params = {k: self.param(str(k), lambda key, k=k: draw(key)["params"][str(k)]) for k in params_pure}
        stats = {k: self.variable("batch_stats", str(k), lambda k=k: draw(self.make_rng("params"))["stats"][str(k)])
                 for k in stats_pure}
        nnx.replace_by_pure_dict(params_shape, _like(params_pure, params))
        nnx.replace_by_pure_dict(stats_shape, _like(stats_pure, {k: v.value for k, v in stats.items()}))
        keys = [path for path, value in nnx.to_flat_state(rest) if isinstance(value, nnx.RngKey)]
        if keys:  # a fresh stream per training call (dropout), a fixed one in evaluation (unused there)
            base = self.make_rng("dropout") if train else jax.random.key(0)
            nnx.replace_by_pure_dict(rest, _reseeded(nnx.to_pure_dict(rest), base))
        model = nnx.merge(graphdef, params_shape, stats_shape, rest)
        model.train() if train else model.eval()
        outputs = _called(model, x)
        if train and stats and self.is_mutable_collection("batch_stats"):
            updated = _with_str_keys(nnx.to_pure_dict(nnx.state(model, nnx.BatchStat)))
            for k, variable in stats.items():
                variable.value = updated[str(k)]
        return outputs


PROBED = (nnx.Linear, nnx.Conv)  # the layers whole-network schemes and diagnostics see, as linen's Dense and Conv


def _called(model: nnx.Module, x):
    """``model(x)``; under ``initjax.schemes.probe``, each ``nnx.Linear`` and ``nnx.Conv`` output is reported to it
    with its parameters' path (their ``__call__`` wrapped for this call only: NNX has no method interceptors)."""
    if not schemes.recording():
        return model(x)
    paths = {id(layer): tuple(str(k) for k in path) for path, layer in nnx.iter_modules(model)
             if isinstance(layer, PROBED)}
    originals = {cls: cls.__call__ for cls in PROBED}

    def reporting(original):
        def call(self, *args, **kwargs):
            out = original(self, *args, **kwargs)
            return schemes.record_layer(paths[id(self)], out) if id(self) in paths else out
        return call

    try:
        for cls, original in originals.items():
            cls.__call__ = reporting(original)
        return model(x)
    finally:
        for cls, original in originals.items():
            cls.__call__ = original


def _reseeded(pure: dict, base) -> dict:
    """The random streams' keys drawn from ``base`` (each its own, by its place) and their counts at 0."""
    count = [0]

    def walk(tree):
        if isinstance(tree, Mapping):
            return {k: walk(v) for k, v in tree.items()}
        if jax.dtypes.issubdtype(tree.dtype, jax.dtypes.prng_key):
            count[0] += 1
            return jax.random.fold_in(base, count[0])
        return jax.numpy.zeros_like(tree)

    return walk(pure)


def _refuse_other_state(rest: nnx.State, label: str) -> None:
    other = sorted({type(v).__name__ for _, v in nnx.to_flat_state(rest) if not isinstance(v, CARRIED)})
    if other:
        raise UserError(f"model {label} holds nnx variables of type {', '.join(other)}; the suite trains nnx.Param "
                        "and carries nnx.BatchStat and random streams: hold other state outside the model")


def wrap(spec, args: dict, input_shape, n_outputs: int | None, output_fields, what: str) -> NNXModel:
    """An :class:`NNXModel` of an ``nnx.Module`` class (or a factory returning one) called with ``args`` and
    ``rngs``; an input-width argument (:data:`INPUT_FIELDS`) and an output-width one (``output_fields``) left out
    are set from the data.

    Raises:
      UserError: an instance (it holds one draw, not a seed's own), or a call that fails.
    """
    if isinstance(spec, nnx.Module):
        raise UserError(f"model {what} is an nnx.Module instance, which holds one draw of its parameters; give its "
                        "class (with model_args) or a factory(rngs) so that each seed draws its own")
    widths.fill(spec, args, INPUT_FIELDS, (*output_fields, *OUTPUT_FIELDS), input_shape, n_outputs)

    def factory(rngs: nnx.Rngs) -> Any:
        return spec(**args, rngs=rngs)

    try:
        made = nnx.eval_shape(lambda: factory(nnx.Rngs(0)))
    except Exception as error:  # user code may raise anything; name it
        from initjax.registry import first_line

        raise UserError(f"model {what}({widths.call(args)}, rngs=...) failed: "
                        f"{first_line(error)}") from None
    if not isinstance(made, nnx.Module):
        raise UserError(f"model {what} gave a {type(made).__name__}, not an nnx.Module")
    label = f"{type(made).__name__}({widths.call(args)}) [nnx]"
    return NNXModel(factory, label)
