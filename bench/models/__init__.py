"""Flax models whose kernel initializer is a parameter.

Models return logits; the output activation (``sigmoid`` for one output unit,
``softmax`` otherwise) is named on the model and applied inside the loss
(``bench.training.train.loss_and_accuracy``), where it is numerically stable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from jax.nn import initializers as jinit

from bench.errors import UserError, unknown
from initjax.registry import first_line, import_object

ACTIVATIONS: dict[str, Callable[[jnp.ndarray], jnp.ndarray]] = {
    "relu": nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": nn.sigmoid,
    "gelu": nn.gelu,
    "elu": nn.elu,
    "selu": nn.selu,
    "leaky_relu": nn.leaky_relu,
    "linear": lambda x: x,
}
OUTPUT_ACTIVATIONS = ("sigmoid", "softmax")


NORMS = {"layer": "LayerNorm after each hidden Dense, before its activation",
         "batch": "BatchNorm after each hidden Dense or Conv, before its activation (running statistics, "
                  "momentum 0.9, are the run's model state)"}


class Hidden(nn.Module):
    """What follows a hidden layer's linear map: ``norm -> activation -> dropout``.

    Attributes:
      activation: name in :data:`ACTIVATIONS`.
      norm: None, ``"layer"`` or ``"batch"`` (:data:`NORMS`).
      dropout: rate of dropout after the activation (0: none), active only in training.
    """

    activation: str
    norm: str | None = None
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        if self.norm == "layer":
            x = nn.LayerNorm()(x)
        elif self.norm == "batch":
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        x = ACTIVATIONS[self.activation](x)
        return nn.Dropout(self.dropout, deterministic=not train)(x) if self.dropout > 0 else x


class MLP(nn.Module):
    """A fully connected network: ``Dense -> [norm] -> activation -> [dropout]`` per hidden width, then ``Dense``.

    Attributes:
      hidden: widths of the hidden layers, e.g. ``(64, 64)``.
      n_outputs: width of the last layer: 1 for a sigmoid output, the number of
        classes for softmax.
      activation: name in :data:`ACTIVATIONS`, applied after each hidden layer.
      output_activation: ``"sigmoid"`` or ``"softmax"``, recorded here and applied by the loss;
        ``"linear"`` for regression (the loss is then named by the task).
      kernel_init: initializer of every kernel, `(in, out)`.
      bias_init: initializer of every bias (zeros, as in Keras and Flax).
      norm, dropout: as in :class:`Hidden`.
      parameterization, base_width: the width parameterization its runs are trained under and the
        width at which it is the base model (``bench.training.parameterized``); None: none.

    Shapes: `(batch, *input_shape)` -> logits `(batch, n_outputs)`; ``train`` switches
    dropout on and BatchNorm to batch statistics.
    """

    hidden: Sequence[int]
    n_outputs: int
    activation: str = "relu"
    output_activation: str = "softmax"
    kernel_init: Callable = jinit.lecun_normal()
    bias_init: Callable = jinit.zeros
    norm: str | None = None
    dropout: float = 0.0
    parameterization: str | None = None
    base_width: int | None = None

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        x = x.reshape(x.shape[0], -1)  # images are flattened, as by Keras' Flatten
        for width in self.hidden:
            x = nn.Dense(width, kernel_init=self.kernel_init, bias_init=self.bias_init)(x)
            x = Hidden(self.activation, self.norm, self.dropout)(x, train)
        return nn.Dense(self.n_outputs, kernel_init=self.kernel_init, bias_init=self.bias_init)(x)


class ConvNet(nn.Module):
    """A small convolutional network: ``[Conv -> [norm] -> activation] x k -> pool`` blocks, then dense layers.

    ``lenet`` (28x28 inputs): Conv 6@5x5 (same) -> pool -> Conv 16@5x5 (valid) -> pool ->
    Dense 120 -> Dense 84 -> logits, the LeNet-5 layout with ReLU and max pooling.
    ``convnet`` (32x32x3 inputs): 2 x Conv 32@3x3 -> pool -> 2 x Conv 64@3x3 -> pool ->
    Dense 256 -> logits.

    Conv kernels are `HWIO`, so ``kernel_init`` sees ``fan_in = H * W * I``.

    References: LeCun et al. 1998, Proc. IEEE 86(11).

    Attributes:
      blocks: per block, the ``(features, kernel size, padding)`` of its convolutions.
      dense: widths of the dense layers after the last block.
      n_outputs, activation, output_activation, kernel_init, bias_init, norm, dropout: as in
        :class:`MLP` (dropout after the dense layers only).
    """

    blocks: Sequence[Sequence[tuple[int, int, str]]]
    dense: Sequence[int]
    n_outputs: int
    activation: str = "relu"
    output_activation: str = "softmax"
    kernel_init: Callable = jinit.lecun_normal()
    bias_init: Callable = jinit.zeros
    norm: str | None = None
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
        for block in self.blocks:
            for features, size, padding in block:
                conv = nn.Conv(
                    features, (size, size), padding=padding, kernel_init=self.kernel_init, bias_init=self.bias_init
                )
                x = Hidden(self.activation, self.norm)(conv(x), train)  # no dropout on feature maps
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        for width in self.dense:
            x = nn.Dense(width, kernel_init=self.kernel_init, bias_init=self.bias_init)(x)
            x = Hidden(self.activation, self.norm, self.dropout)(x, train)
        return nn.Dense(self.n_outputs, kernel_init=self.kernel_init, bias_init=self.bias_init)(x)


class ResidualBlock(nn.Module):
    """``h + scale * branch_out(act(branch_in(act(h) + b0) + b1) + b2) + b3``: a pre-activation residual block.

    The scalar biases ``b0..b3`` (init 0) and multiplier ``scale`` (init 1) are
    Fixup's (Zhang et al. 2019); at their initial values the block is a plain
    residual block, whatever the init scheme. The branch layers have no bias.
    """

    width: int
    activation: str
    kernel_init: Callable

    @nn.compact
    def __call__(self, h: jnp.ndarray) -> jnp.ndarray:
        act = ACTIVATIONS[self.activation]

        def bias(name):
            return self.param(name, jinit.zeros, ())

        z = nn.Dense(self.width, use_bias=False, kernel_init=self.kernel_init, name="branch_in")(act(h) + bias("b0"))
        z = nn.Dense(self.width, use_bias=False, kernel_init=self.kernel_init, name="branch_out")(
            act(z + bias("b1")) + bias("b2"))
        return h + self.param("scale", jinit.ones, ()) * z + bias("b3")


class ResMLP(nn.Module):
    """A residual MLP: ``stem`` Dense to ``width``, ``depth`` residual blocks, activation, ``head`` Dense.

    Attributes:
      width: units of every block.
      depth: number of residual blocks (each has two Dense layers).
      n_outputs, activation, output_activation, kernel_init, bias_init, parameterization, base_width:
        as in :class:`MLP`.
      base_depth: under ``depth_mup``, the depth at which branches are not scaled.

    Shapes: `(batch, *input_shape)` -> logits `(batch, n_outputs)`.
    """

    width: int
    depth: int
    n_outputs: int
    activation: str = "relu"
    output_activation: str = "softmax"
    kernel_init: Callable = jinit.lecun_normal()
    bias_init: Callable = jinit.zeros
    parameterization: str | None = None
    base_width: int | None = None
    base_depth: int | None = None

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        h = nn.Dense(self.width, kernel_init=self.kernel_init, bias_init=self.bias_init, name="stem")(
            x.reshape(x.shape[0], -1))
        for i in range(self.depth):
            h = ResidualBlock(self.width, self.activation, self.kernel_init, name=f"block_{i}")(h)
        h = ACTIVATIONS[self.activation](h)
        return nn.Dense(self.n_outputs, kernel_init=self.kernel_init, bias_init=self.bias_init, name="head")(h)


CONV_LAYOUTS = {
    "lenet": (((6, 5, "SAME"),), ((16, 5, "VALID"),)),
    "convnet": (((32, 3, "SAME"), (32, 3, "SAME")), ((64, 3, "SAME"), (64, 3, "SAME"))),
}
CONV_DENSE = {"lenet": (120, 84), "convnet": (256,)}


def _head(n_classes: int, n_targets: int | None = None) -> dict:
    """Binary tasks get one sigmoid unit (Keras' ``Dense(1, 'sigmoid')``), others a softmax; regression
    ``n_targets`` linear units."""
    if n_targets is not None:
        return {"n_outputs": n_targets, "output_activation": "linear"}
    binary = n_classes == 2
    return {"n_outputs": 1 if binary else n_classes, "output_activation": "sigmoid" if binary else "softmax"}


OPTIONS = {"norm": "None, layer or batch (NORMS)", "dropout": "rate in [0, 1) after hidden activations"}
PARAMETERIZATION_OPTIONS = {
    "parameterization": "sp, ntk, mup or depth_mup: how init and learning rates scale with width (and depth) "
                        "(bench.training.parameterized; needs base_width, and base_depth for depth_mup)",
    "base_width": "the width at which the model is its own base model (every parameterization agrees there)",
    "base_depth": "depth_mup only (resmlp, transformer): the number of blocks at which branches are not scaled"}
TRANSFORMER_OPTIONS = {"heads": "attention heads, dividing the width (default 4)",
                       "norm": "pre, post or none (bench.models.transformer.NORMS; default pre)",
                       "tied": "true: logits from the token embedding (default false: a readout layer)",
                       "mlp_ratio": "MLP hidden width over the model width (default 4)"}


def check_transformer_options(width: int, options: Mapping) -> None:
    """Raises UserError on a transformer option that does not exist or has a bad value."""
    from bench.models import parameterization_options
    from bench.models.transformer import NORMS as BLOCK_NORMS

    for key in options:
        if key not in TRANSFORMER_OPTIONS and key not in PARAMETERIZATION_OPTIONS:
            raise UserError(f"model 'transformer' has no option {key!r} (its options: "
                            f"{', '.join([*TRANSFORMER_OPTIONS, *PARAMETERIZATION_OPTIONS])})")
    heads = options.get("heads", 4)
    if not (isinstance(heads, int) and heads >= 1 and width % heads == 0):
        raise UserError(f"transformer heads must be a whole divisor of the width {width}, got {heads!r}")
    parameterization_options.check("transformer", options)
    if options.get("base_width") is not None and options["base_width"] % heads:
        raise UserError(f"transformer heads ({heads}) must divide base_width {options['base_width']} too: the base "
                        "model has as many heads")
    if options.get("norm", "pre") not in BLOCK_NORMS:
        raise unknown("transformer norm", options["norm"], BLOCK_NORMS)
    if not isinstance(options.get("tied", False), bool):
        raise UserError(f"transformer tied must be true or false, got {options['tied']!r}")
    ratio = options.get("mlp_ratio", 4)
    if not (isinstance(ratio, int) and ratio >= 1):
        raise UserError(f"transformer mlp_ratio must be an integer >= 1, got {ratio!r}")


def check_options(kind: str, options: Mapping) -> None:
    """Raises UserError on a built-in model option that does not exist or has a bad value."""
    from bench.models import parameterization_options

    if kind == "transformer":
        return  # checked with its width (check_transformer_options)
    for key in options:
        if key in PARAMETERIZATION_OPTIONS and kind in ("mlp", "resmlp"):
            continue
        if key not in OPTIONS or (key == "norm" and kind == "resmlp"):
            allowed = {"resmlp": ", ".join(PARAMETERIZATION_OPTIONS), "mlp": ", ".join([*OPTIONS,
                       *PARAMETERIZATION_OPTIONS])}.get(kind, ", ".join(OPTIONS))
            raise UserError(f"model {kind!r} has no option {key!r} (its options: {allowed})")
    parameterization_options.check(kind, options)
    if options.get("norm") not in (None, *NORMS):
        raise unknown("norm", options["norm"], NORMS)
    dropout = options.get("dropout", 0.0)
    if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
        raise UserError(f"dropout must be a rate in [0, 1), got {dropout!r}")
    if dropout and kind == "resmlp":
        raise UserError("model 'resmlp' has no dropout option; use mlp, lenet or convnet")


def build(
    kind: str, input_shape: Sequence[int], n_classes: int, hidden: Sequence[int] = (), activation: str = "relu",
    n_targets: int | None = None, **options,
) -> nn.Module:
    """A model for a classification task (or, with ``n_targets``, a regression one).

    Args:
      kind: ``"mlp"`` (uses ``hidden``), ``"resmlp"`` (one residual block per
        entry of ``hidden``, all equal), ``"lenet"`` or ``"convnet"`` (image inputs
        `(H, W, C)`; ``hidden`` replaces the dense widths when given), ``"transformer"``
        (token sequences `(context,)`, ``n_classes`` the vocabulary; one block per entry of
        ``hidden``, all equal: the width; :data:`TRANSFORMER_OPTIONS`).
      input_shape: one example's shape.
      n_classes: number of classes.
      hidden: hidden widths.
      activation: name in :data:`ACTIVATIONS`.
      options: :data:`OPTIONS` (``norm``, ``dropout``) of mlp, lenet and convnet; the transformer's
        :data:`TRANSFORMER_OPTIONS`.

    Raises:
      UserError: unknown kind, activation or option, non-positive width, or a conv
        net on inputs that are not images.
    """
    if kind not in MODELS:
        raise unknown("model", kind, MODELS)
    check_options(kind, options)
    if activation not in ACTIVATIONS:
        raise unknown("activation", activation, ACTIVATIONS)
    if any(int(w) < 1 for w in hidden):
        raise UserError(f"hidden widths must be >= 1, got {tuple(hidden)}")
    if kind == "mlp":
        return MLP(hidden=tuple(int(w) for w in hidden), activation=activation, **_head(n_classes, n_targets),
                   **options)
    if kind == "resmlp":
        if not hidden or len(set(hidden)) != 1:
            raise UserError(
                f"resmlp needs equal hidden widths, one per residual block, e.g. (64,) * 8; got {tuple(hidden)}"
            )
        return ResMLP(int(hidden[0]), len(hidden), activation=activation, **_head(n_classes, n_targets),
                      **{k: v for k, v in options.items() if k in PARAMETERIZATION_OPTIONS})
    if kind == "transformer":
        return _transformer(input_shape, n_classes, hidden, activation, n_targets, options)
    if len(input_shape) != 3:
        raise UserError(f"model {kind!r} needs image inputs (H, W, C), the dataset has {tuple(input_shape)}; use mlp")
    return ConvNet(CONV_LAYOUTS[kind], tuple(hidden) or CONV_DENSE[kind], activation=activation,
                   **_head(n_classes, n_targets), **options)


def _transformer(input_shape, n_classes, hidden, activation, n_targets, options) -> nn.Module:
    from bench.models.transformer import Transformer

    if n_targets is not None or len(input_shape) != 1:
        raise UserError(f"model 'transformer' needs token sequences (context,) with next-token labels, the dataset "
                        f"has inputs {tuple(input_shape)}{' and regression targets' if n_targets else ''}; use a "
                        "sequence dataset (bench list: markov, modular_addition, text)")
    if not hidden or len(set(hidden)) != 1:
        raise UserError(f"transformer needs equal hidden widths, one per block, e.g. [64, 64]; got {tuple(hidden)}")
    check_transformer_options(int(hidden[0]), options)
    return Transformer(vocab=n_classes, width=int(hidden[0]), depth=len(hidden), activation=activation, **options)


def mlp_for(n_features: int, n_classes: int, hidden: Sequence[int], activation: str = "relu") -> MLP:
    """An MLP shaped for a classification task (see :func:`build`)."""
    return build("mlp", (n_features,), n_classes, hidden, activation)


OUTPUT_FIELDS = ("n_outputs", "num_classes", "n_classes", "num_outputs")


def from_spec(spec, model_args: Mapping | None = None, n_outputs: int | None = None) -> nn.Module:
    """A user's Flax module: an instance, a module class or a factory (or a ``module:attr`` spec naming one).

    A class or factory is called with ``model_args``. A module class with an output-width
    field (:data:`OUTPUT_FIELDS`, e.g. ``n_outputs``) that ``model_args`` leaves out gets
    ``n_outputs``, the width the task's loss needs; otherwise the module sets it itself.

    Raises:
      UserError: the spec does not import, the call fails, or it gives no ``flax.linen.Module``.
    """
    what = spec if isinstance(spec, str) else getattr(spec, "__name__", type(spec).__name__)
    if isinstance(spec, str):
        try:
            spec = import_object(spec, "model")
        except ValueError as error:
            raise UserError(str(error)) from None
    args = dict(model_args or {})
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


def describe(model: nn.Module, input_shape: Sequence[int]) -> str:
    """A short name for results tables: ``"MLP 784-300-100-10 relu"``, ``"LeNet 28x28x1 relu"``.

    A user's module is named by its class and the fields that differ from their defaults.
    """
    return _describe_layout(model, input_shape) + _parameterized(model)


def _parameterized(model) -> str:
    """`` muP (base width 64)``: a built-in model's width parameterization, if it has one (and its base depth)."""
    name = getattr(model, "parameterization", None)
    if name is None:
        return ""
    depth = f", base depth {model.base_depth}" if getattr(model, "base_depth", None) is not None else ""
    return f" {PARAMETERIZATION_NAMES[name]} (base width {model.base_width}{depth})"


PARAMETERIZATION_NAMES = {"sp": "SP", "ntk": "NTK", "mup": "muP", "depth_mup": "Depth-muP"}


def _describe_layout(model: nn.Module, input_shape: Sequence[int]) -> str:
    from bench.models.transformer import Transformer

    if isinstance(model, Transformer):
        return (f"Transformer {model.norm}-LN {model.depth}x{model.width} {model.heads} heads "
                f"ctx {input_shape[0]} vocab {model.vocab}{' tied' if model.tied else ''} {model.activation}")
    if not isinstance(model, (MLP, ResMLP, ConvNet)):
        changed = []
        for field in dataclasses.fields(model):
            if field.name in ("parent", "name") or not field.init:
                continue
            value = getattr(model, field.name, None)
            if field.default is dataclasses.MISSING or value != field.default:
                changed.append(f"{field.name}={value!r}" if not callable(value) else f"{field.name}=...")
        return f"{type(model).__name__}({', '.join(changed)})"
    if isinstance(model, ResMLP):
        inputs = int(np.prod(input_shape))
        return f"ResMLP {inputs}-{model.width}x{model.depth} blocks-{model.n_outputs} {model.activation}"
    if isinstance(model, MLP):
        widths = "-".join(str(w) for w in (int(np.prod(input_shape)), *model.hidden, model.n_outputs))
        return f"MLP {widths} {model.activation}{_extras(model)}"
    convs = "-".join(str(f) for block in model.blocks for f, _, _ in block)
    dense = "-".join(str(w) for w in (*model.dense, model.n_outputs))
    return f"ConvNet {'x'.join(map(str, input_shape))} conv {convs} dense {dense} {model.activation}{_extras(model)}"


def _extras(model) -> str:
    """`` batchnorm dropout 0.1``: the options a built-in model has beyond the plain layout."""
    return (f" {model.norm}norm" if model.norm else "") + (f" dropout {model.dropout:g}" if model.dropout else "")


MODELS = {
    "mlp": "fully connected: hidden widths, activation; sigmoid or softmax output",
    "resmlp": "residual MLP: stem, one 2-layer pre-activation block per hidden entry (equal widths), head; Fixup-ready",
    "lenet": "LeNet-5 style for 28x28: conv 6@5x5, pool, conv 16@5x5, pool, dense 120-84",
    "convnet": "small CIFAR conv net: 2 x conv 32@3x3, pool, 2 x conv 64@3x3, pool, dense 256",
    "transformer": "decoder-only LM: one block per hidden entry (equal widths); heads, norm pre/post/none, tied",
}
