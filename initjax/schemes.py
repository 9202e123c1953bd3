"""Init schemes: initializations that need the whole network, or data, not just a tensor's shape.

Contract: ``scheme(key, params, apply_fn, batch) -> params``.

* ``params``: the network's parameters after the scheme's per-tensor pre-init
  (:attr:`Scheme.base`, e.g. orthogonal for LSUV), a Flax params dict;
* ``apply_fn(params, x) -> (outputs, layers)``: the forward pass, where
  ``layers`` lists ``(path, pre_activation)`` for every layer with a ``kernel``
  in forward order (``path``: keys from ``params`` down to the layer's dict);
  :func:`probe` builds it for a Flax module;
* ``batch``: `(n, *input_shape)` examples (the suite draws 256 training examples per seed).

Schemes are pure and traceable: they run under ``jit`` and ``vmap`` over seeds,
with fixed iteration counts (``lax.fori_loop``) instead of data-dependent loops.

References: Mishkin & Matas 2015 (LSUV, arXiv:1511.06422); Krähenbühl et al. 2016
(data-dependent init, arXiv:1511.06856); Zhang, Dauphin & Ma 2019 (Fixup,
arXiv:1901.09321).
"""

from __future__ import annotations

import contextvars
import dataclasses
from collections.abc import Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from initjax import initializers as extra

Path = tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Scheme:
    """A whole-network init: ``base`` per-tensor pre-init, then ``transform``.

    Attributes:
      name: the registered name (for messages).
      base: ``init(key, shape, dtype)`` used for every kernel first.
      transform: ``transform(key, params, apply_fn, batch) -> params``.
    """

    name: str
    base: Callable
    transform: Callable

    def __call__(self, key, params, apply_fn, batch):
        return self.transform(key, params, apply_fn, batch)


def is_scheme(obj) -> bool:
    return isinstance(obj, Scheme)


_RECORDER: contextvars.ContextVar = contextvars.ContextVar("initjax_layer_recorder", default=None)


def recording() -> bool:
    """Whether a :func:`probe` is recording layer outputs now (a framework adapter then reports its layers')."""
    return _RECORDER.get() is not None


def record_layer(path: Path, out):
    """A layer output computed outside flax.linen, reported by a framework adapter (``bench.models.nnx_model``:
    Flax NNX's ``Linear`` and ``Conv``); ``path``: its parameters' path in the params tree. Under :func:`probe`,
    recorded (with its perturbation added, as it returns); otherwise returned unchanged."""
    recorder = _RECORDER.get()
    return out if recorder is None else recorder(tuple(path), out)


def probe(module: nn.Module, collections: Mapping | None = None, **call_kwargs) -> Callable:
    """``apply_fn(params, x, perturb=None) -> (outputs, [(path, pre_activation), ...])`` for a Flax module.

    ``collections``: the module's variables besides ``params`` (BatchNorm's ``batch_stats``),
    and ``call_kwargs`` the keywords of its call (``train=False``), for modules that need them.

    Records the output of every ``nn.Dense`` and ``nn.Conv`` (kernel times input
    plus bias, before any activation), and of every layer a framework adapter reports
    (:func:`record_layer`), in call order. ``perturb`` (path -> array
    shaped like that output) is added to each recorded output; differentiating
    with respect to zero perturbations gives the back-propagated gradients of the
    layer outputs (``initjax.diagnostics``).
    """

    def apply_fn(params, x, perturb=None):
        layers = []

        def add(path, out):
            if perturb is not None:
                out = out + perturb[path]
            layers.append((path, out))
            return out

        def record(next_fun, args, kwargs, context):
            out = next_fun(*args, **kwargs)
            if context.method_name == "__call__" and isinstance(context.module, nn.Dense | nn.Conv):
                return add(tuple(context.module.path), out)
            return out

        token = _RECORDER.set(add)
        try:
            with nn.intercept_methods(record):
                out = module.apply({"params": params, **(collections or {})}, x, **call_kwargs)
        finally:
            _RECORDER.reset(token)
        return out, layers

    return apply_fn


def get_at(params, path: Path):
    for name in path:
        params = params[name]
    return params


def set_at(params, path: Path, name: str, value):
    """A copy of ``params`` with ``params[path][name] = value``."""
    if not path:
        return {**params, name: value}
    return {**params, path[0]: set_at(params[path[0]], path[1:], name, value)}


def _layer_output(apply_fn, params, batch, path):
    _, layers = apply_fn(params, batch)
    return dict(layers)[path]


def _paths(apply_fn, params, batch) -> list[Path]:
    """The paths of the layers the forward pass records, in call order.

    Raises:
      ValueError: it records none (a model of no layer :func:`probe` sees: linen's ``Dense`` or ``Conv``, NNX's
        ``Linear`` or ``Conv``): the scheme would otherwise leave its base draw as it is, silently.
    """
    paths = [path for path, _ in apply_fn(params, batch)[1]]
    if not paths:
        raise ValueError("the scheme found no Dense, Linear or Conv layer (flax.linen or flax.nnx) to act on: use a "
                         "per-tensor initializer or rules for this model")
    return paths


def lsuv(tol: float = 0.1, max_iter: int = 10) -> Scheme:
    """LSUV (Mishkin & Matas 2015): orthonormal pre-init, then layer-wise unit output variance.

    Layer by layer in forward order, the kernel is divided by the standard
    deviation of the layer's output on the batch until ``|var - 1| < tol`` or
    ``max_iter`` iterations (after convergence further iterations change nothing).
    """

    def transform(key, params, apply_fn, batch):
        del key
        for path in _paths(apply_fn, params, batch):
            def step(_, p, path=path):
                var = jnp.var(_layer_output(apply_fn, p, batch, path))
                scale = jnp.where(jnp.abs(var - 1) < tol, 1.0, jax.lax.rsqrt(jnp.maximum(var, 1e-12)))
                return set_at(p, path, "kernel", get_at(p, path)["kernel"] * scale)

            params = jax.lax.fori_loop(0, max_iter, step, params)
        return params

    return Scheme("lsuv", extra.orthogonal(), transform)


def data_dependent(base: str = "normal") -> Scheme:
    """Data-dependent init (Krähenbühl et al. 2016, within-layer part): per-unit zero mean, unit variance.

    Layer by layer in forward order, each output unit ``j`` with pre-activation
    mean ``mu_j`` and standard deviation ``s_j`` on the batch gets
    ``W[..., j] /= s_j`` and ``b_j = (b_j - mu_j) / s_j``. The pre-init is a
    Gaussian ``N(0, 1/fan_in)`` (``base="normal"``) or orthogonal (``"orthogonal"``).
    The paper's between-layer rescaling of learning rates is not done.
    """
    pre = {"normal": jax.nn.initializers.variance_scaling(1.0, "fan_in", "normal"), "orthogonal": extra.orthogonal()}
    if base not in pre:
        raise ValueError(f"data_dependent base must be 'normal' or 'orthogonal', got {base!r}")

    def transform(key, params, apply_fn, batch):
        del key
        for path in _paths(apply_fn, params, batch):
            out = _layer_output(apply_fn, params, batch, path)
            axes = tuple(range(out.ndim - 1))
            mean, std = out.mean(axis=axes), jnp.maximum(out.std(axis=axes), 1e-6)
            layer = get_at(params, path)
            params = set_at(params, path, "kernel", layer["kernel"] / std)
            if "bias" in layer:
                params = set_at(params, path, "bias", (layer["bias"] - mean) / std)
        return params

    return Scheme("data_dependent", pre[base], transform)


def fixup(rescale: bool = True) -> Scheme:
    """Fixup (Zhang et al. 2019) for residual networks; ``rescale=False``: zero-init of residual branches only.

    Needs a model that names its residual branch layers ``branch_in`` ...
    ``branch_out`` and its classifier ``head`` (``bench.models.ResMLP``):
    He pre-init; the last layer of every branch and the classifier start at 0;
    with ``rescale`` the other branch layers are multiplied by ``L**(-1/(2m-2))``
    (``L`` branches of ``m`` layers; the scalar multipliers and biases of Fixup
    are the model's own, initialized to 1 and 0).
    """

    def transform(key, params, apply_fn, batch):
        del key
        paths = _paths(apply_fn, params, batch)
        outs = [p for p in paths if p[-1] == "branch_out"]
        heads = [p for p in paths if p[-1] == "head"]
        if not outs or not heads:
            raise ValueError("fixup needs a residual model with 'branch_out' and 'head' layers: use model 'resmlp'")
        n_branches = len(outs)
        per_branch = 1 + sum(1 for p in paths if p[-1].startswith("branch_") and p[-1] != "branch_out") // n_branches
        for path in paths:
            layer = get_at(params, path)
            if path[-1] in ("branch_out", "head"):
                params = set_at(params, path, "kernel", jnp.zeros_like(layer["kernel"]))
            elif path[-1].startswith("branch_") and rescale:
                params = set_at(params, path, "kernel", layer["kernel"] * n_branches ** (-1 / (2 * per_branch - 2)))
            if "bias" in layer and path[-1] == "head":
                params = set_at(params, path, "bias", jnp.zeros_like(layer["bias"]))
        return params

    return Scheme("fixup", jax.nn.initializers.he_normal(), transform)


def mean_field(sigma_w2: float = 1.0, sigma_b2: float = 0.0) -> Scheme:
    """The mean-field initialization: ``W ~ N(0, sigma_w2 / fan_in)`` and biases ``~ N(0, sigma_b2)``.

    The set-up of Poole et al. 2016 and Schoenholz et al. 2017 (``initjax.mean_field``
    gives its depth scales); biases are drawn per layer from the scheme's key.
    """
    if sigma_w2 <= 0 or sigma_b2 < 0:
        raise ValueError(f"mean_field needs sigma_w2 > 0 and sigma_b2 >= 0, got {sigma_w2}, {sigma_b2}")
    base = jax.nn.initializers.variance_scaling(sigma_w2, "fan_in", "normal")

    def transform(key, params, apply_fn, batch):
        for i, path in enumerate(_paths(apply_fn, params, batch)):
            layer = get_at(params, path)
            if "bias" in layer:
                noise = jax.random.normal(jax.random.fold_in(key, i), layer["bias"].shape, layer["bias"].dtype)
                params = set_at(params, path, "bias", jnp.sqrt(sigma_b2) * noise)
        return params

    return Scheme("mean_field", base, transform)


def gradient_quotient(params, loss_fn: Callable, eps: float = 1e-5) -> jnp.ndarray:
    """MetaInit's gradient quotient ``mean |g(theta - g(theta)) / g(theta) - 1|`` over all parameters.

    Small when a gradient step changes the gradient little relative to its size:
    the curvature is moderate along the gradient (Dauphin & Schoenholz 2019, Eq. 2).
    ``eps`` keeps the division finite (with the sign of the gradient).
    """
    g = jax.grad(loss_fn)(params)
    shifted = jax.tree.map(lambda p, d: p - d, params, g)
    g2 = jax.grad(loss_fn)(shifted)
    quotients = jax.tree.map(lambda a, b: jnp.abs(b / (a + eps * jnp.where(a >= 0, 1.0, -1.0)) - 1), g, g2)
    leaves = jax.tree.leaves(quotients)
    return sum(jnp.sum(q) for q in leaves) / sum(q.size for q in leaves)


def metainit(steps: int = 100, lr: float = 0.03, base: str = "normal") -> Scheme:
    """MetaInit (Dauphin & Schoenholz 2019): tune the norm of every kernel to minimize the gradient quotient.

    The kernels keep their directions (from ``base``: ``N(0, 1/fan_in)`` or
    ``"orthogonal"``); their norms take ``steps`` multiplicative sign-gradient
    steps ``norm *= exp(-lr * sign(dGQ/dnorm))`` on the batch, with random labels
    (the paper uses data and sign descent too; the multiplicative form keeps
    norms positive). Biases are left as they are.

    Tested to recover a too-small init (the GQ falls 3x or more). From a far too
    large tanh init it does not recover here: in saturation the GQ's gradient with
    respect to the norms vanishes and the norms stop moving.
    """
    pre = {"normal": jax.nn.initializers.variance_scaling(1.0, "fan_in", "normal"), "orthogonal": extra.orthogonal()}
    if base not in pre or steps < 1 or lr <= 0:
        raise ValueError(f"metainit needs base 'normal' or 'orthogonal', steps >= 1 and lr > 0; got {base!r}, "
                         f"{steps}, {lr}")

    def transform(key, params, apply_fn, batch):
        paths = _paths(apply_fn, params, batch)
        outputs, _ = apply_fn(params, batch)
        labels = jax.random.randint(key, (batch.shape[0],), 0, max(outputs.shape[-1], 2))
        kernels = [get_at(params, p)["kernel"] for p in paths]
        directions = [k / jnp.linalg.norm(k) for k in kernels]

        def with_norms(norms):
            out = params
            for path, direction, norm in zip(paths, directions, norms):
                out = set_at(out, path, "kernel", norm * direction)
            return out

        def loss(p):
            logits, _ = apply_fn(p, batch)
            if logits.shape[-1] == 1:
                return jnp.mean(jax.nn.softplus(-(2 * labels - 1) * logits[..., 0]))
            return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=-1))

        def step(_, norms):
            grads = jax.grad(lambda n: gradient_quotient(with_norms(n), loss))(norms)
            return [n * jnp.exp(-lr * jnp.sign(g)) for n, g in zip(norms, grads)]

        norms = jax.lax.fori_loop(0, steps, step, [jnp.linalg.norm(k) for k in kernels])
        return with_norms(norms)

    return Scheme("metainit", pre[base], transform)
