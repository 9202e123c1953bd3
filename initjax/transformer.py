"""Role-aware initialization of transformers: each parameter drawn by what it does in the network.

The schemes find a parameter's role by its path (``initjax.paths.path_name``), in the layout
of ``bench.models.transformer`` (any model naming its parameters the same way works):

=================  ==============================================
role               path
=================  ==============================================
``embedding``      ``embed/embedding`` `(vocab, d)`
``position``       ``position/embedding`` `(context, d)`
``query``, ``key``, ``value``, ``attn_out``  ``block_i/attn/{query,key,value,out}/kernel`` `(d, d)`
``mlp_in``, ``mlp_out``  ``block_i/mlp/{in,out}/kernel``
``readout``        ``readout/kernel`` `(d, vocab)` (absent when the embedding is tied)
``residual_alpha`` ``block_i/residual_alpha`` `()`: the fixed multiplier of the residual stream
=================  ==============================================

``L`` is the number of blocks, ``d`` the width (the embedding's last axis). Parameters no
scheme names (biases, LayerNorm) keep the model's own values (zeros, ones). Each drawn
parameter uses ``initjax.paths.leaf_key(key, path)``, so two schemes that draw a
parameter alike draw the same numbers (common random numbers).

All are :class:`initjax.schemes.Scheme` s (they need the whole network: its depth and
width); ``deepnorm`` also changes the forward pass, through the fixed ``residual_alpha``
parameters, which the model multiplies the residual stream by.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import jax
import jax.numpy as jnp

from initjax import paths
from initjax.schemes import Scheme

ROLES = {
    "embedding": r"(.*/)?embed/embedding",
    "position": r"(.*/)?position/embedding",
    "query": r"(.*/)?attn/query/kernel",
    "key": r"(.*/)?attn/key/kernel",
    "value": r"(.*/)?attn/value/kernel",
    "attn_out": r"(.*/)?attn/out/kernel",
    "mlp_in": r"(.*/)?mlp/in/kernel",
    "mlp_out": r"(.*/)?mlp/out/kernel",
    "readout": r"(.*/)?readout/kernel",
    "residual_alpha": r"(.*/)?residual_alpha",
}
Draw = Callable[[str, str, jax.Array, jax.Array], "jax.Array | None"]  # (role, path, leaf, key) -> new leaf or None


def role_of(name: str) -> str | None:
    """The role of the parameter at path ``name`` (:data:`ROLES`), or None."""
    return next((role for role, pattern in ROLES.items() if re.fullmatch(pattern, name)), None)


def roles(params) -> dict[str, str]:
    """``path -> role`` for every parameter of ``params`` that has one."""
    named = {paths.path_name(path): role_of(paths.path_name(path)) for path, _ in jax.tree.leaves_with_path(params)}
    return {name: role for name, role in named.items() if role is not None}


def shape_of(params, scheme: str) -> tuple[int, int]:
    """``(L, d)``: blocks (query kernels) and width (the embedding's last axis).

    Raises:
      ValueError: ``params`` is not a transformer in this layout.
    """
    found = roles(params)
    leaves = {paths.path_name(path): leaf for path, leaf in jax.tree.leaves_with_path(params)}
    depth = sum(role == "query" for role in found.values())
    embedding = [name for name, role in found.items() if role == "embedding"]
    if depth == 0 or not embedding:
        raise ValueError(f"{scheme} needs a transformer whose parameters name their roles (embed/embedding, "
                         "block_i/attn/query/kernel, ...): use model 'transformer' (bench.models.transformer)")
    return depth, int(leaves[embedding[0]].shape[-1])


def redraw(key, params, draw: Draw):
    """``params`` with every parameter that has a role replaced by ``draw(role, path, leaf, leaf_key)`` where
    that gives an array (None keeps the leaf)."""

    def one(path, leaf):
        name = paths.path_name(path)
        role = role_of(name)
        new = None if role is None else draw(role, name, leaf, paths.leaf_key(key, name))
        return leaf if new is None else jnp.asarray(new, leaf.dtype).reshape(leaf.shape)

    return jax.tree_util.tree_map_with_path(one, params)


def normal(key, leaf, std):
    """``N(0, std**2)``, untruncated (as TensorFlow's ``random_normal`` and PyTorch's ``normal_``)."""
    return std * jax.random.normal(key, leaf.shape, leaf.dtype)


def xavier(key, leaf, gain: float = 1.0, distribution: str = "uniform"):
    """Glorot & Bengio 2010 with a gain, as PyTorch's ``xavier_{uniform,normal}_``: variance
    ``gain**2 * 2 / (fan_in + fan_out)``, untruncated; fans of a `(fan_in, fan_out)` kernel."""
    fan_in, fan_out = leaf.shape[-2], leaf.shape[-1]
    std = gain * (2.0 / (fan_in + fan_out)) ** 0.5
    if distribution == "uniform":
        return jax.random.uniform(key, leaf.shape, leaf.dtype, -(3**0.5) * std, 3**0.5 * std)
    return normal(key, leaf, std)


def gpt2_draw(depth: int, std: float = 0.02) -> Draw:
    """GPT-2's draws: every kernel and the token embedding ``N(0, std**2)``, positions ``N(0, (std/2)**2)``,
    the residual projections (``attn_out``, ``mlp_out``) ``N(0, (std / sqrt(2L))**2)``."""

    def draw(role, name, leaf, key):
        if role == "residual_alpha":
            return None
        if role in ("attn_out", "mlp_out"):
            return normal(key, leaf, std / (2 * depth) ** 0.5)
        return normal(key, leaf, std / 2 if role == "position" else std)

    return draw


def gpt2(std: float = 0.02) -> Scheme:
    """GPT-2 (Radford et al. 2019): ``N(0, 0.02**2)``, residual projections scaled by ``1/sqrt(2L)``.

    "A modified initialization which accounts for the accumulation on the residual path
    with model depth is used. We scale the weights of residual layers at initialization by
    a factor of 1/sqrt(N) where N is the number of residual layers" (``N = 2L``: attention
    and MLP per block), as in GPT-2's code and nanoGPT: ``std = 0.02 / sqrt(2L)`` for
    ``attn_out`` and ``mlp_out``; ``N(0, 0.02**2)`` for the token embedding, query, key,
    value, ``mlp_in`` and readout; ``N(0, 0.01**2)`` for learned positions (GPT-2's ``wpe``).
    """

    def transform(key, params, apply_fn, batch):
        del apply_fn, batch
        return redraw(key, params, gpt2_draw(shape_of(params, "gpt2")[0], std))

    return Scheme("gpt2", jax.nn.initializers.normal(std), transform)


def t_fixup() -> Scheme:
    """T-Fixup (Huang et al. 2020, "Improving Transformer Optimization Through Better Initialization", ICML).

    Xavier uniform for every kernel; embeddings ``N(0, d**-0.5)`` (standard deviation
    ``d**-0.5``, as the paper's code); then the input embeddings (token and position),
    ``value``, ``attn_out``, ``mlp_in`` and ``mlp_out`` of every block multiplied by
    ``0.67 * L**(-1/4)``, the paper's factor for a stack of blocks with two sublayers (its
    encoder; its decoder's ``(9L)**(-1/4)`` counts the cross-attention a decoder-only model
    lacks). Query, key and readout stay Xavier. Made to train without LayerNorm and without
    warm-up: use it with ``norm = "none"``.
    """

    def transform(key, params, apply_fn, batch):
        del apply_fn, batch
        depth, width = shape_of(params, "t_fixup")
        scale = 0.67 * depth**-0.25

        def draw(role, name, leaf, key):
            if role in ("embedding", "position"):
                return scale * normal(key, leaf, width**-0.5)
            if role in ("value", "attn_out", "mlp_in", "mlp_out"):
                return scale * xavier(key, leaf)
            return xavier(key, leaf) if role in ("query", "key", "readout") else None

        return redraw(key, params, draw)

    return Scheme("t_fixup", jax.nn.initializers.glorot_uniform(), transform)


def deepnorm_constants(depth: int) -> tuple[float, float]:
    """``(alpha, beta)`` of DeepNorm for a decoder-only model of ``depth`` blocks: ``((2L)**(1/4), (8L)**(-1/4))``."""
    return (2 * depth) ** 0.25, (8 * depth) ** -0.25


def deepnorm() -> Scheme:
    """DeepNorm (Wang et al. 2022, "DeepNet: Scaling Transformers to 1,000 Layers", arXiv:2203.00555).

    Post-LN with an up-weighted residual, ``x_{l+1} = LN(alpha x_l + G_l(x_l))``, and
    down-scaled branch weights: Xavier normal with gain ``beta`` for ``value``,
    ``attn_out``, ``mlp_in`` and ``mlp_out``, gain 1 for ``query`` and ``key``; for a
    decoder-only model ``alpha = (2L)**(1/4)``, ``beta = (8L)**(-1/4)`` (the paper's Table 1).

    **Changes the forward pass**: every ``residual_alpha`` is set to ``alpha`` (the model holds
    it fixed: no gradient, no weight decay). Embeddings and readout keep the model's own values.
    """

    def transform(key, params, apply_fn, batch):
        del apply_fn, batch
        alpha, beta = deepnorm_constants(shape_of(params, "deepnorm")[0])

        def draw(role, name, leaf, key):
            if role == "residual_alpha":
                return jnp.full(leaf.shape, alpha, leaf.dtype)
            if role in ("value", "attn_out", "mlp_in", "mlp_out"):
                return xavier(key, leaf, beta, "normal")
            return xavier(key, leaf, 1.0, "normal") if role in ("query", "key") else None

        return redraw(key, params, draw)

    return Scheme("deepnorm", jax.nn.initializers.variance_scaling(1.0, "fan_avg", "normal"), transform)


def small_init(wang: bool = False) -> Scheme:
    """SmallInit (Nguyen & Salazar 2019, "Transformers without Tears", arXiv:1910.05895), with ``wang``
    also Wang's output layers (as GPT-NeoX's ``small_init`` + ``wang_init``).

    Every kernel and both embeddings ``N(0, 2 / (5d))``: Xavier's variance for a `(d, 4d)`
    matrix, smaller than ``1/d`` so that the embeddings and early updates stay small. With
    ``wang``, ``attn_out`` and ``mlp_out`` get standard deviation ``2 / (L sqrt(d))``
    (Wang 2021, GPT-J; GPT-NeoX's ``wang_init``).
    """

    def transform(key, params, apply_fn, batch):
        del apply_fn, batch
        depth, width = shape_of(params, "small_init")

        def draw(role, name, leaf, key):
            if role == "residual_alpha":
                return None
            if wang and role in ("attn_out", "mlp_out"):
                return normal(key, leaf, 2 / (depth * width**0.5))
            return normal(key, leaf, (2 / (5 * width)) ** 0.5)

        return redraw(key, params, draw)

    return Scheme("small_init", jax.nn.initializers.normal(1.0), transform)


def mimetic_pair(key, width: int, rank: int, alpha: float, beta: float) -> tuple[jax.Array, jax.Array]:
    """``(A, B)``, each `(width, rank)`, with ``A @ B.T`` the best rank-``rank`` approximation of
    ``alpha Z + beta I``, ``Z ~ N(0, 1/width)`` `(width, width)`: ``A = U_r S_r**0.5``, ``B = V_r S_r**0.5``."""
    target = alpha * jax.random.normal(key, (width, width)) / width**0.5 + beta * jnp.eye(width)
    u, s, vt = jnp.linalg.svd(target)
    root = jnp.sqrt(s[:rank])
    return u[:, :rank] * root, vt[:rank].T * root


def mimetic(heads: int | None = None, alpha_qk: float = 0.7, beta_qk: float = 0.7, alpha_vo: float = 0.4,
            beta_vo: float = 0.4) -> Scheme:
    """Mimetic initialization of self-attention (Trockman & Kolter 2023, ICML, arXiv:2305.09828); GPT-2's elsewhere.

    Every head's ``W_q^h W_k^h.T`` (`(d, d)`, rank ``d / heads``) is the best rank-``d/heads``
    approximation of ``alpha_qk Z + beta_qk I``, and ``W_v W_o = alpha_vo Z' - beta_vo I``
    exactly (full rank), with ``Z, Z' ~ N(0, 1/d)`` fresh per head and block: attention
    starts out looking like that of trained models (a diagonal in ``q . k``, a negative
    identity in the value-output product). Kernels are Flax's `(in, out)`, so the
    products are ``query_kernel[:, head] @ key_kernel[:, head].T`` and ``value_kernel @ out_kernel``.
    The other parameters are drawn as by :func:`gpt2`. ``heads`` must be the model's.
    """
    if heads is None or not (isinstance(heads, int) and heads >= 1):
        raise ValueError(f"mimetic needs heads=H, the model's number of attention heads, e.g. mimetic(heads=4); "
                         f"got {heads!r}")

    def transform(key, params, apply_fn, batch):
        del apply_fn, batch
        depth, width = shape_of(params, "mimetic")
        if width % heads:
            raise ValueError(f"mimetic(heads={heads}) does not divide the model's width {width}")
        drawn = redraw(key, params, gpt2_draw(depth))
        head_width = width // heads
        found = roles(params)
        queries = [name for name, role in found.items() if role == "query"]
        replaced = {}
        for query in queries:
            block = query[: -len("query/kernel")]
            parts = [mimetic_pair(jax.random.fold_in(paths.leaf_key(key, query), h), width, head_width, alpha_qk,
                                  beta_qk) for h in range(heads)]
            replaced[query] = jnp.concatenate([a for a, _ in parts], axis=1)
            replaced[block + "key/kernel"] = jnp.concatenate([b for _, b in parts], axis=1)
            value, out = mimetic_pair(paths.leaf_key(key, block + "value/kernel"), width, width, alpha_vo, -beta_vo)
            replaced[block + "value/kernel"], replaced[block + "out/kernel"] = value, out.T
        return jax.tree_util.tree_map_with_path(
            lambda path, leaf: replaced.get(paths.path_name(path), leaf).astype(leaf.dtype), drawn)

    return Scheme("mimetic", jax.nn.initializers.normal(0.02), transform)


def zero_residual() -> Scheme:
    """Zero-init residual branches (SkipInit, De & Smith 2020; ReZero, Bachlechner et al. 2020; Fixup's zero
    branch ends, Zhang et al. 2019): ``attn_out`` and ``mlp_out`` start at 0, so every block is the identity at
    initialization; the rest as :func:`gpt2`. (ReZero's learned scalar gate is a model change; here the branch's
    last layer plays that part.)"""
    return gpt2_with_zeros("zero_residual", ("attn_out", "mlp_out"))


def mup_zero() -> Scheme:
    """muP's zero-initialized readout and query (Yang et al. 2021, "Tensor Programs V", arXiv:2203.03466, App. D.2):
    ``readout`` and ``query`` start at 0 (the output then starts at 0, and attention uniform over the
    context); the rest as :func:`gpt2`. Only the width-independent part of muP: its width
    multipliers and per-layer learning rates are a parameterization, not an initialization."""
    return gpt2_with_zeros("mup_zero", ("readout", "query"))


def gpt2_with_zeros(name: str, zeroed: tuple[str, ...]) -> Scheme:
    """GPT-2's draws (:func:`gpt2`) with the parameters of the ``zeroed`` roles at 0."""

    def transform(key, params, apply_fn, batch):
        del apply_fn, batch
        base = gpt2_draw(shape_of(params, name)[0])
        return redraw(key, params, lambda role, path, leaf, k: (
            jnp.zeros_like(leaf) if role in zeroed else base(role, path, leaf, k)))

    return Scheme(name, jax.nn.initializers.normal(0.02), transform)
