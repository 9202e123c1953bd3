"""A small decoder-only transformer whose parameter paths name their roles.

One run's model: tokens `(batch, context)` -> next-token logits `(batch, context, vocab)`.
Block ``i`` is, with ``alpha`` its fixed residual multiplier (1 unless an init scheme
sets it: DeepNorm's ``(2L)**0.25``):

* ``norm="pre"`` (GPT-2): ``h = alpha h + attn(LN(h)); h = alpha h + mlp(LN(h))``, a final LN before the readout;
* ``norm="post"`` (the original transformer): ``h = LN(alpha h + attn(h)); h = LN(alpha h + mlp(h))``;
* ``norm="none"`` (T-Fixup's setting): ``h = alpha h + attn(h); h = alpha h + mlp(h)``.

Parameter paths (``initjax.transformer`` finds roles by them, so a user's model that
names its parameters the same way gets the same role-aware schemes):

===============================  ===========================================
``embed/embedding``              token embedding `(vocab, width)`
``position/embedding``           learned positions `(context, width)`
``block_i/attn/{query,key,value}/kernel``  `(width, width)`, heads side by side
``block_i/attn/out/kernel``      attention output projection `(width, width)`
``block_i/mlp/in/kernel``        `(width, mlp_ratio * width)`
``block_i/mlp/out/kernel``       `(mlp_ratio * width, width)`
``block_i/norm_attn``, ``norm_mlp``, ``final_norm``   LayerNorm ``scale``, ``bias`` (none: ``norm_gains=False``)
``block_i/residual_alpha``       `()`, held fixed (no gradient; kept out of weight decay)
``readout/kernel``               `(width, vocab)`; absent when ``tied`` (logits ``h @ embedding.T``)
===============================  ===========================================

Attention logits are ``q . k / sqrt(head width)`` with a causal mask, softmax in float32; the
key projection has no bias (the softmax is blind to it). Other Dense layers have biases (zeros).
Tokens arrive as the suite's float32 inputs (exact integers below 2**24) and are cast here.

References: Vaswani et al. 2017 (arXiv:1706.03762); Radford et al. 2019 (GPT-2, pre-LN);
Xiong et al. 2020 (pre- vs post-LN, arXiv:2002.04745).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.nn import initializers as jinit

from bench.errors import UserError, unknown
from bench.models import parameterization_options
from bench.models.kind import ModelKind
from bench.models.layers import ACTIVATIONS, PARAMETERIZATION_OPTIONS

NORMS = {"pre": "LayerNorm before each sublayer, and before the readout (GPT-2)",
         "post": "LayerNorm after each residual addition (Vaswani et al. 2017)",
         "none": "no LayerNorm (T-Fixup's setting)"}
FIXED = "residual_alpha"  # parameters of this name are constants of the run: no gradient, no weight decay


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: `(batch, context, width)` -> same shape."""

    heads: int
    kernel_init: Callable
    bias_init: Callable

    @nn.compact
    def __call__(self, h: jnp.ndarray) -> jnp.ndarray:
        batch, context, width = h.shape
        head_width = width // self.heads

        def project(name):
            # no key bias: q . (k + b) shifts a query's logits by q . b alike, which the softmax ignores, so its
            # gradient is 0 up to rounding, and Adam would turn that rounding into steps of the learning rate
            dense = nn.Dense(width, use_bias=name != "key", kernel_init=self.kernel_init, bias_init=self.bias_init,
                             name=name)
            return dense(h).reshape(batch, context, self.heads, head_width)

        q, k, v = project("query"), project("key"), project("value")
        logits = jnp.einsum("bthd,bshd->bhts", q, k).astype(jnp.float32) / jnp.sqrt(head_width)
        self.sow("intermediates", "attention_logits", logits)
        causal = jnp.tril(jnp.ones((context, context), bool))
        weights = jax.nn.softmax(jnp.where(causal, logits, jnp.finfo(jnp.float32).min), axis=-1).astype(h.dtype)
        mixed = jnp.einsum("bhts,bshd->bthd", weights, v).reshape(batch, context, width)
        return nn.Dense(width, kernel_init=self.kernel_init, bias_init=self.bias_init, name="out")(mixed)


class FeedForward(nn.Module):
    """``out(act(in(h)))``, widths `width -> ratio * width -> width`."""

    ratio: int
    activation: Callable
    kernel_init: Callable
    bias_init: Callable

    @nn.compact
    def __call__(self, h: jnp.ndarray) -> jnp.ndarray:
        width = h.shape[-1]
        z = nn.Dense(self.ratio * width, kernel_init=self.kernel_init, bias_init=self.bias_init, name="in")(h)
        return nn.Dense(width, kernel_init=self.kernel_init, bias_init=self.bias_init, name="out")(self.activation(z))


def _layer_norm(gains: bool, name: str) -> nn.LayerNorm:
    """A LayerNorm with its trainable gain and bias (``scale``, ``bias``), or without them (non-parametric: Lingle
    2025's baseline, arXiv:2404.05728)."""
    return nn.LayerNorm(use_scale=gains, use_bias=gains, name=name)


def _rms(x: jnp.ndarray) -> jnp.ndarray:
    return jnp.sqrt(jnp.mean(jnp.square(x.astype(jnp.float32))))


class Block(nn.Module):
    """One transformer layer: attention and MLP sublayers with residual connections (see the module docstring)."""

    heads: int
    norm: str
    mlp_ratio: int
    activation: Callable
    kernel_init: Callable
    bias_init: Callable
    norm_gains: bool = True

    @nn.compact
    def __call__(self, h: jnp.ndarray) -> jnp.ndarray:
        alpha = jax.lax.stop_gradient(self.param(FIXED, jinit.ones, ()))
        sublayers = (
            ("attn", CausalSelfAttention(self.heads, self.kernel_init, self.bias_init, name="attn")),
            ("mlp", FeedForward(self.mlp_ratio, self.activation, self.kernel_init, self.bias_init, name="mlp")),
        )
        for name, sublayer in sublayers:
            branch = sublayer(_layer_norm(self.norm_gains, f"norm_{name}")(h) if self.norm == "pre" else h)
            # the update's size against the stream it is added to (Liu et al. 2020's amplification), for diagnostics
            self.sow("intermediates", f"{name}_branch_ratio", _rms(branch) / _rms(alpha * h))
            h = alpha * h + branch
            if self.norm == "post":
                h = _layer_norm(self.norm_gains, f"norm_{name}")(h)
        self.sow("intermediates", "residual", h)
        return h


class Transformer(nn.Module):
    """A decoder-only language model (see the module docstring for the layout and parameter paths).

    Attributes:
      vocab: tokens `[0, vocab)`; the logits' width.
      width: model width (``d_model``).
      depth: number of blocks (``L``).
      heads: attention heads; must divide ``width``.
      norm: ``"pre"``, ``"post"`` or ``"none"`` (:data:`NORMS`).
      tied: logits from the token embedding (``h @ embedding.T``) instead of a ``readout`` Dense.
      norm_gains: each LayerNorm has a trainable gain and bias; False: none (non-parametric normalization).
      mlp_ratio: hidden width of the MLP over ``width``.
      activation: of the MLP (``bench.models.ACTIVATIONS`` name).
      kernel_init, bias_init: the model's own initializers of every Dense (init schemes redraw them).
      output_activation: the loss the suite trains it with.
      parameterization, base_width: as in ``bench.models.MLP`` (the base model has as many heads).
      base_depth: under ``depth_mup``, the depth at which branches are not scaled.

    Shapes: tokens `(batch, context)` (any numeric dtype) -> logits `(batch, context, vocab)`.
    """

    vocab: int
    width: int = 64
    depth: int = 2
    heads: int = 4
    norm: str = "pre"
    tied: bool = False
    norm_gains: bool = True
    mlp_ratio: int = 4
    activation: str = "gelu"
    kernel_init: Callable = jinit.normal(0.02)
    bias_init: Callable = jinit.zeros
    output_activation: str = "next_token_cross_entropy"
    parameterization: str | None = None
    base_width: int | None = None
    base_depth: int | None = None

    @nn.compact
    def __call__(self, tokens: jnp.ndarray) -> jnp.ndarray:
        tokens = tokens.astype(jnp.int32)
        context = tokens.shape[-1]
        embed = nn.Embed(self.vocab, self.width, embedding_init=jinit.normal(0.02), name="embed")
        positions = nn.Embed(context, self.width, embedding_init=jinit.normal(0.01), name="position")
        h = embed(tokens) + positions(jnp.arange(context))
        self.sow("intermediates", "residual", h)
        for i in range(self.depth):
            h = Block(self.heads, self.norm, self.mlp_ratio, ACTIVATIONS[self.activation], self.kernel_init,
                      self.bias_init, self.norm_gains, name=f"block_{i}")(h)
        if self.norm == "pre":
            h = _layer_norm(self.norm_gains, "final_norm")(h)
        if self.tied:
            return embed.attend(h)
        return nn.Dense(self.vocab, kernel_init=self.kernel_init, bias_init=self.bias_init, name="readout")(h)


TRANSFORMER_OPTIONS = {"heads": "attention heads, dividing the width (default 4)",
                       "norm": "pre, post or none (bench.models.transformer.NORMS; default pre)",
                       "tied": "true: logits from the token embedding (default false: a readout layer)",
                       "norm_gains": "false: LayerNorms without their trainable gain and bias (default true)",
                       "mlp_ratio": "MLP hidden width over the model width (default 4)"}


def check_transformer_options(width: int, options: Mapping) -> None:
    """Raises UserError on a transformer option that does not exist or has a bad value."""
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
    if options.get("norm", "pre") not in NORMS:
        raise unknown("transformer norm", options["norm"], NORMS)
    for flag in ("tied", "norm_gains"):
        if not isinstance(options.get(flag, False), bool):
            raise UserError(f"transformer {flag} must be true or false, got {options[flag]!r}")
    if options.get("norm_gains") is False and options.get("norm") == "none":
        raise UserError("transformer norm_gains = false needs LayerNorms to strip: use norm = \"pre\" or \"post\"")
    ratio = options.get("mlp_ratio", 4)
    if not (isinstance(ratio, int) and ratio >= 1):
        raise UserError(f"transformer mlp_ratio must be an integer >= 1, got {ratio!r}")


def build(input_shape: Sequence[int], n_classes: int, hidden: Sequence[int], activation: str, n_targets: int | None,
          options: Mapping) -> Transformer:
    if n_targets is not None or len(input_shape) != 1:
        raise UserError(f"model 'transformer' needs token sequences (context,) with next-token labels, the dataset "
                        f"has inputs {tuple(input_shape)}{' and regression targets' if n_targets else ''}; use a "
                        "sequence dataset (bench list: markov, modular_addition, text)")
    if not hidden or len(set(hidden)) != 1:
        raise UserError(f"transformer needs equal hidden widths, one per block, e.g. [64, 64]; got {tuple(hidden)}")
    check_transformer_options(int(hidden[0]), options)
    return Transformer(vocab=n_classes, width=int(hidden[0]), depth=len(hidden), activation=activation, **options)


def describe(model: Transformer, input_shape: Sequence[int]) -> str:
    return (f"Transformer {model.norm}-LN {model.depth}x{model.width} {model.heads} heads "
            f"ctx {input_shape[0]} vocab {model.vocab}{' tied' if model.tied else ''}"
            f"{'' if model.norm_gains else ' no norm gains'} {model.activation}")


KIND = ModelKind("transformer",
                 "decoder-only LM: one block per hidden entry (equal widths); heads, norm pre/post/none, norm_gains, "
                 "tied",
                 {**TRANSFORMER_OPTIONS, **PARAMETERIZATION_OPTIONS}, lambda options: None, build, (Transformer,),
                 describe)  # its options are checked with its width, by build
