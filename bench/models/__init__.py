"""The models a task trains: the built-in kinds, found by name in one registry (:data:`MODELS`), and any user's
Flax module (:func:`from_spec`).

Each built-in kind is a module exporting a :class:`bench.models.kind.ModelKind` (``mlp``, ``resmlp``, ``conv``:
lenet and convnet, ``transformer``); a new one is its module plus one entry in :data:`MODELS`. Models return
logits; the output activation (``sigmoid`` for one output unit, ``softmax`` otherwise) is named on the model and
applied inside the loss (``bench.models.losses``), where it is numerically stable.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping, Sequence

import flax.linen as nn

from bench.errors import UserError, unknown
from bench.models import conv, equinox_model, functions, layers, mlp, nnx_model, resmlp, transformer
from bench.models.conv import CONV_DENSE, CONV_LAYOUTS, ConvNet  # noqa: F401
from bench.models.functions import Functions  # noqa: F401 (bench.models.Functions(init, apply))
from bench.models.kind import ModelKind
from bench.models.layers import (  # noqa: F401 (the shared names, where earlier versions defined them)
    ACTIVATIONS,
    NORMS,
    OPTIONS,
    OUTPUT_ACTIVATIONS,
    PARAMETERIZATION_NAMES,
    PARAMETERIZATION_OPTIONS,
    Hidden,
)
from bench.models.mlp import MLP  # noqa: F401
from bench.models.resmlp import ResidualBlock, ResMLP  # noqa: F401
from bench.models.transformer import TRANSFORMER_OPTIONS, check_transformer_options  # noqa: F401
from initjax.registry import first_line, import_object

MODELS: dict[str, ModelKind] = {kind.name: kind for kind in (mlp.KIND, resmlp.KIND, *conv.KINDS, transformer.KIND)}


def build(
    kind: str, input_shape: Sequence[int], n_classes: int, hidden: Sequence[int] = (), activation: str = "relu",
    n_targets: int | None = None, **options,
) -> nn.Module:
    """A built-in model for a classification task (or, with ``n_targets``, a regression one).

    Args:
      kind: a name in :data:`MODELS`: ``"mlp"`` (uses ``hidden``), ``"resmlp"`` (one residual block per
        entry of ``hidden``, all equal), ``"lenet"`` or ``"convnet"`` (image inputs
        `(H, W, C)`; ``hidden`` replaces the dense widths when given), ``"transformer"``
        (token sequences `(context,)`, ``n_classes`` the vocabulary; one block per entry of
        ``hidden``, all equal: the width; :data:`TRANSFORMER_OPTIONS`).
      input_shape: one example's shape.
      n_classes: number of classes.
      hidden: hidden widths.
      activation: name in :data:`ACTIVATIONS`.
      options: the kind's options (``MODELS[kind].options``): ``norm`` and ``dropout`` of mlp, lenet and convnet,
        the transformer's :data:`TRANSFORMER_OPTIONS`, and the parameterization of mlp, resmlp and transformer.

    Raises:
      UserError: unknown kind, activation or option, non-positive width, or a conv
        net on inputs that are not images.
    """
    if kind not in MODELS:
        raise unknown("model", kind, MODELS)
    MODELS[kind].check(options)
    if activation not in ACTIVATIONS:
        raise unknown("activation", activation, ACTIVATIONS)
    if any(int(w) < 1 for w in hidden):
        raise UserError(f"hidden widths must be >= 1, got {tuple(hidden)}")
    return MODELS[kind].build(input_shape, n_classes, hidden, activation, n_targets, options)


def mlp_for(n_features: int, n_classes: int, hidden: Sequence[int], activation: str = "relu") -> MLP:
    """An MLP shaped for a classification task (see :func:`build`)."""
    return build("mlp", (n_features,), n_classes, hidden, activation)


OUTPUT_FIELDS = ("n_outputs", "num_classes", "n_classes", "num_outputs")


def from_spec(spec, model_args: Mapping | None = None, n_outputs: int | None = None,
              input_shape: Sequence[int] = ()) -> nn.Module:
    """A user's Flax module: a linen instance, a linen or NNX module class, or a factory (or a ``module:attr`` spec
    naming one).

    A class or factory is called with ``model_args``. A module class with an output-width
    field (:data:`OUTPUT_FIELDS`, e.g. ``n_outputs``) that ``model_args`` leaves out gets
    ``n_outputs``, the width the task's loss needs; otherwise the module sets it itself. An
    ``nnx.Module`` class, or a factory taking ``rngs``, is run through :class:`bench.models.nnx_model.NNXModel`
    (its input width, ``in_features`` or ``din``, set from ``input_shape`` when left out); an ``eqx.Module`` class,
    or a function taking ``key``, through :class:`bench.models.equinox_model.EquinoxModel`; a
    :class:`bench.models.functions.Functions` pair (or any object with ``init`` and ``apply``) through
    :class:`bench.models.functions.FunctionsModel`.

    Raises:
      UserError: the spec does not import, the call fails, or it gives no Flax module.
    """
    what = spec if isinstance(spec, str) else getattr(spec, "__name__", type(spec).__name__)
    if isinstance(spec, str):
        try:
            spec = import_object(spec, "model")
        except ValueError as error:
            raise UserError(str(error)) from None
    args = dict(model_args or {})
    if functions.is_functions(spec):
        if args:
            raise UserError(f"model {what} is a pair of functions: model_args have nothing to call; bind them in "
                            "init and apply")
        return functions.wrap(spec, what)
    if nnx_model.is_nnx(spec) or (callable(spec) and not isinstance(spec, nn.Module) and _takes(spec, "rngs")):
        return nnx_model.wrap(spec, args, tuple(input_shape), n_outputs, OUTPUT_FIELDS, what)
    if equinox_model.is_equinox(spec) or (inspect.isfunction(spec) and _takes(spec, "key")):
        return equinox_model.wrap(spec, args, tuple(input_shape), n_outputs, what)
    if isinstance(spec, nn.Module):
        if args:
            try:
                return spec.clone(**args)
            except TypeError as error:
                raise UserError(f"model {what}: {error}") from None
        return spec
    if isinstance(spec, type) and issubclass(spec, nn.Module) and n_outputs is not None:
        fields = {f.name for f in dataclasses.fields(spec)}
        for name in OUTPUT_FIELDS:
            if name in fields and name not in args:
                args[name] = n_outputs
                break
    if not callable(spec):
        raise UserError(f"model {what} is a {type(spec).__name__}; give a flax.linen.Module, its class or a factory")
    try:
        model = spec(**args)
    except Exception as error:  # user code may raise anything; name it
        raise UserError(f"model {what}({', '.join(f'{k}={v!r}' for k, v in args.items())}) failed: "
                        f"{first_line(error)}") from None
    if not isinstance(model, nn.Module):
        raise UserError(f"model {what} gave a {type(model).__name__}, not a flax.linen.Module")
    return model


def _takes(factory, argument: str) -> bool:
    """Whether ``factory`` has the argument: ``rngs`` makes an NNX module, ``key`` (a function) an Equinox one."""
    try:
        return argument in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or an object without a signature
        return False


def describe(model: nn.Module, input_shape: Sequence[int]) -> str:
    """A short name for results tables: ``"MLP 784-300-100-10 relu"``, ``"LeNet 28x28x1 relu"``.

    A user's module is named by its class and the fields that differ from their defaults.
    """
    if isinstance(model, nnx_model.NNXModel | equinox_model.EquinoxModel):
        return model.label
    if isinstance(model, functions.FunctionsModel):
        return f"{model.functions.name} [functions]"
    kind = next((k for k in MODELS.values() if isinstance(model, k.modules)), None)
    layout = kind.describe(model, input_shape) if kind is not None else _describe_user_module(model)
    return layout + layers.parameterized(model)


def _describe_user_module(model: nn.Module) -> str:
    changed = []
    for field in dataclasses.fields(model):
        if field.name in ("parent", "name") or not field.init:
            continue
        value = getattr(model, field.name, None)
        if field.default is dataclasses.MISSING or value != field.default:
            changed.append(f"{field.name}={value!r}" if not callable(value) else f"{field.name}=...")
    return f"{type(model).__name__}({', '.join(changed)})"
