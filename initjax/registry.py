"""The registry: every initializer initjax knows, by name, in one dict.

Conventions, stated once for the whole library:

* **Contract.** An initializer is ``init(key, shape, dtype) -> Array`` (the
  ``jax.nn.initializers`` contract). A registry entry holds a *builder* that takes
  the spec's arguments and returns such an initializer: ``"normal(stddev=0.1)"``
  calls the ``normal`` builder with ``stddev=0.1``.
* **Kernel axes.** Fans follow jax: input axis ``-2``, output axis ``-1``, every
  other axis is receptive field. Flax ``Dense`` kernels are ``(in, out)``, Flax
  ``Conv`` kernels are ``HWIO``; PyTorch's ``(out, in)`` layout is *not* assumed.
* **Truncation.** jax's and Keras' ``glorot_normal``, ``he_normal``,
  ``lecun_normal``, ``variance_scaling`` and ``truncated_normal`` draw a normal
  truncated at two standard deviations; the variance-scaling ones are rescaled so
  the variance is still ``scale / fan``, ``truncated_normal(stddev)`` is not (its
  variance is ``0.774 stddev^2``). PyTorch's ``kaiming_normal_`` and
  ``xavier_normal_`` are untruncated: use ``torch_kaiming_normal`` and
  ``torch_xavier_normal``. ``Entry.truncated`` records which is which.
* **Uniform.** ``uniform(scale)`` is jax's ``U[0, scale)``; Keras' symmetric
  ``U[-0.05, 0.05)`` is ``random_uniform``.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.nn import initializers as jinit

from initjax import initializers as extra
from initjax import schemes, structured, transformer
from initjax.spec import Spec, parse_spec

Initializer = jinit.Initializer


@dataclasses.dataclass(frozen=True)
class Entry:
    """One registered name.

    Attributes:
      name: the name users type.
      builder: ``builder(*args, **kwargs) -> Initializer``.
      summary: one line: the distribution and its parameters.
      truncated: True where values are cut at two standard deviations, None where
        the question does not apply (constants, orthogonal, user functions).
      alias_of: the canonical name when this entry is an alias.
      scheme: the builder returns an ``initjax.schemes.Scheme`` (a whole-network
        init) rather than a per-tensor initializer.
      defaults: the frameworks' layer defaults that draw from this distribution (Flax's
        are tested to be the same draws, key for key; Keras', PyTorch's and Equinox's
        are the distributions their documentation states).
    """

    name: str
    builder: Callable[..., Initializer]
    summary: str
    truncated: bool | None = None
    alias_of: str | None = None
    scheme: bool = False
    defaults: tuple[str, ...] = ()


REGISTRY: dict[str, Entry] = {}


def _add(name, builder, summary, truncated=None, aliases=(), scheme=False, defaults=()):
    REGISTRY[name] = Entry(name, builder, summary, truncated, scheme=scheme, defaults=tuple(defaults))
    for alias in aliases:
        REGISTRY[alias] = Entry(alias, builder, f"alias of {name}", truncated, alias_of=name)


_add("zeros", lambda: jinit.zeros, "all weights 0",
     defaults=["Flax linen Dense, Conv and NNX Linear, Conv bias", "Keras Dense, Conv2D bias"])
_add("ones", lambda: jinit.ones, "all weights 1", defaults=["Flax linen/NNX LayerNorm, BatchNorm scale"])
_add("constant", lambda value=0.0: jinit.constant(value), "all weights = value (default 0)")
_add("random_normal", extra.random_normal, "Keras RandomNormal: N(mean=0, stddev=0.05), untruncated", False)
_add("random_uniform", extra.random_uniform, "Keras RandomUniform: U[-0.05, 0.05)", False,
     defaults=["Keras Embedding"])
_add("normal", lambda stddev=1e-2: jinit.normal(stddev), "jax normal: N(0, stddev^2), stddev=0.01, untruncated", False,
     defaults=["PyTorch nn.Embedding as normal(stddev=1.0)"])
_add("uniform", lambda scale=1e-2: jinit.uniform(scale), "jax uniform: U[0, scale), scale=0.01 (not symmetric)", False)
_add(
    "truncated_normal",
    lambda stddev=1e-2, lower=-2.0, upper=2.0: jinit.truncated_normal(stddev, lower=lower, upper=upper),
    "jax truncated_normal: stddev * N(0,1) cut to [lower, upper] = [-2, 2], stddev=0.01",
    True,
)
_add("glorot_normal", jinit.glorot_normal, "Var = 2/(fan_in+fan_out), truncated normal", True, ["xavier_normal"])
_add("glorot_uniform", jinit.glorot_uniform, "Var = 2/(fan_in+fan_out), uniform", False, ["xavier_uniform"],
     defaults=["Keras Dense, Conv2D, LSTM kernel"])
_add("he_normal", jinit.he_normal, "Var = 2/fan_in, truncated normal", True, ["kaiming_normal"])
_add("he_uniform", jinit.he_uniform, "Var = 2/fan_in, uniform", False, ["kaiming_uniform"])
_add("lecun_normal", jinit.lecun_normal, "Var = 1/fan_in, truncated normal", True,
     defaults=["Flax linen Dense, Conv and NNX Linear, Conv kernel"])
_add("lecun_uniform", jinit.lecun_uniform, "Var = 1/fan_in, uniform", False)
_add(
    "orthogonal",
    extra.orthogonal,
    "scale * (semi-)orthogonal matrix over (receptive*in, out); Saxe et al. 2013",
    defaults=["Flax linen LSTMCell, GRUCell recurrent kernel", "Keras LSTM, GRU recurrent kernel"],
)
_add(
    "variance_scaling",
    extra.variance_scaling,
    "Var = scale/fan; defaults scale=1.0, mode='fan_in', distribution='truncated_normal'",
    True,
)
_add("torch_kaiming_normal", extra.torch_kaiming_normal, "PyTorch kaiming_normal_: N(0, 2/fan_in), untruncated", False)
_add(
    "torch_xavier_normal",
    extra.torch_xavier_normal,
    "PyTorch xavier_normal_: N(0, 2/(fan_in+fan_out)), untruncated",
    False,
)
_add("torch_default", extra.torch_default, "PyTorch nn.Linear default: U[-1/sqrt(fan_in), 1/sqrt(fan_in)]", False,
     defaults=["PyTorch nn.Linear, nn.Conv2d weight", "Equinox nn.Linear, nn.Conv weight"])
_add("identity", structured.identity, "gain * rectangular identity (conv: at the centre tap), gain=1")
_add("delta_orthogonal", structured.delta_orthogonal, "orthogonal matrix at the conv centre tap (Xiao et al. 2018)")
_add("zero_hadamard", structured.zero_hadamard, "ZerO: identities and Hadamard, deterministic (Zhao et al. 2021)")
_add("sparse", structured.sparse, "k=15 N(0, stddev^2) weights per unit, rest 0 (Martens 2010)")
# schemes: scheme(key, params, apply_fn, batch) -> params, see initjax.schemes
_add("lsuv", schemes.lsuv, "scheme: orthonormal, then unit output variance per layer on data (Mishkin & Matas 2015)",
     scheme=True)
_add("data_dependent", schemes.data_dependent,
     "scheme: per-unit zero mean, unit variance on data (Kraehenbuehl et al. 2016)", scheme=True)
_add("metainit", schemes.metainit,
     "scheme: kernel norms tuned to minimize the gradient quotient (Dauphin & Schoenholz 2019)", scheme=True)
_add("mean_field", schemes.mean_field,
     "scheme: W ~ N(0, sigma_w2/fan_in), b ~ N(0, sigma_b2) (Poole et al. 2016; Schoenholz et al. 2017)", scheme=True)
_add("fixup", schemes.fixup, "scheme: residual branches and head at 0, branches rescaled (Zhang et al. 2019)",
     scheme=True)
# transformer schemes, by parameter role (initjax.transformer)
_add("gpt2", transformer.gpt2, "transformer: N(0, 0.02^2), residual projections / sqrt(2L) (Radford et al. 2019)",
     scheme=True)
_add("t_fixup", transformer.t_fixup,
     "transformer: Xavier, v/o/MLP and embeddings x 0.67 L^-1/4, for no LayerNorm (Huang et al. 2020)", scheme=True)
_add("deepnorm", transformer.deepnorm,
     "transformer: branches Xavier x (8L)^-1/4, residual x (2L)^1/4 [changes the forward pass] (Wang et al. 2022)",
     scheme=True)
_add("small_init", transformer.small_init,
     "transformer: N(0, 2/(5d)) everywhere; wang=True: outputs 2/(L sqrt d) (Nguyen & Salazar 2019)", scheme=True)
_add("mimetic", transformer.mimetic,
     "transformer: W_q W_k^T ~ 0.7 Z + 0.7 I, W_v W_o ~ 0.4 Z - 0.4 I; heads=H (Trockman & Kolter 2023)", scheme=True)
_add("zero_residual", transformer.zero_residual,
     "transformer: attention and MLP output projections at 0, GPT-2 elsewhere (SkipInit/ReZero-style)", scheme=True)
_add("mup_zero", transformer.mup_zero, "transformer: readout and query at 0, GPT-2 elsewhere (Yang et al. 2021)",
     scheme=True)

BUILTIN_NAMES: tuple[str, ...] = tuple(REGISTRY)


def register(name: str, fn: Callable, *, builder: bool = False, summary: str = "") -> None:
    """Registers a user initializer under ``name``.

    Args:
      name: a new name (letters, digits, ``_``).
      fn: an initializer ``fn(key, shape, dtype) -> Array``, or with ``builder=True``
        a builder ``fn(**kwargs) -> initializer`` so that ``"name(k=v)"`` works.
      builder: see ``fn``.
      summary: one line for ``python -m bench list``.

    Raises:
      ValueError: the name is taken by a built-in, or is not a valid spec name.
    """
    if name in BUILTIN_NAMES:
        raise ValueError(f"{name!r} is a built-in initializer; register yours under another name")
    if parse_spec(name) != Spec(name) or ":" in name:
        raise ValueError(f"cannot register {name!r}: use letters, digits and '_' only")
    REGISTRY[name] = Entry(name, fn if builder else (lambda: fn), summary or "user initializer")


def names(include_aliases: bool = False, include_schemes: bool = True) -> list[str]:
    """Registered names, in registration order."""
    return [n for n, e in REGISTRY.items()
            if (include_aliases or e.alias_of is None) and (include_schemes or not e.scheme)]


def get(spec: str | Callable) -> Initializer:
    """Resolves a spec string (or passes a callable through) to an initializer.

    Args:
      spec: ``"he_normal"``, ``"normal(stddev=0.1)"``, ``"pkg.mod:fn"``,
        ``"pkg.mod:builder(k=v)"``, or an initializer callable.

    Returns:
      ``init(key, shape, dtype) -> Array``.

    Raises:
      ValueError: unknown name (listing the close ones), malformed spec, arguments
        the builder does not take, or a ``module:function`` that cannot be imported.
    """
    if callable(spec):
        return spec
    parsed = parse_spec(spec)
    builder = _import(parsed.name) if parsed.is_import_path else _lookup(parsed.name).builder
    if parsed.is_import_path and not parsed.called:
        return builder  # "module:function" names the initializer itself; "module:function()" calls a builder
    try:
        init = builder(*parsed.args, **dict(parsed.kwargs))
    except TypeError as error:
        raise ValueError(f"bad arguments in initializer spec {spec!r}: {error}") from None
    except Exception as error:  # a user builder may raise anything; name it
        raise ValueError(f"initializer builder {spec!r} failed: {type(error).__name__}: {error}") from None
    if not callable(init):
        raise ValueError(f"{spec!r} returned {type(init).__name__}, not an initializer init(key, shape, dtype)")
    return init


def canonical(spec: str) -> str:
    """The canonical spelling of a spec, used as its name in results.

    Aliases resolve to their canonical name: ``"xavier_normal"`` -> ``"glorot_normal"``.
    """
    parsed = parse_spec(spec)
    entry = REGISTRY.get(parsed.name)
    if entry is not None and entry.alias_of is not None:
        parsed = dataclasses.replace(parsed, name=entry.alias_of)
    return str(parsed)


def check(spec: str | Callable, init: Initializer | None = None) -> Initializer:
    """Resolves ``spec`` and checks that it honours the contract on a small kernel.

    Tracing only (``jax.eval_shape``): nothing is computed.

    Raises:
      ValueError: naming the spec, if it raises or returns the wrong shape or dtype.
    """
    init = get(spec) if init is None else init
    if schemes.is_scheme(init):  # the transform needs a model; bench checks it on the model's kernels
        check(f"{spec} (pre-init)" if isinstance(spec, str) else spec, init.base)
        return init
    shape, dtype = (3, 4), jnp.float32
    label = spec if isinstance(spec, str) else getattr(spec, "__name__", repr(spec))
    try:
        out = jax.eval_shape(lambda: init(jax.random.key(0), shape, dtype))  # the key too: nothing is compiled
    except Exception as error:  # user code may raise anything; we name it and move on
        raise ValueError(f"initializer {label!r} failed on shape {shape}: {type(error).__name__}: {error}") from None
    if not isinstance(out, jax.ShapeDtypeStruct):
        raise ValueError(f"initializer {label!r} returned {type(out).__name__} for shape {shape}; "
                         "it must follow init(key, shape, dtype) -> Array")
    if tuple(out.shape) != shape or out.dtype != dtype:
        raise ValueError(
            f"initializer {label!r} returned {out.dtype}{list(out.shape)} for shape {shape} "
            f"and dtype float32; it must follow init(key, shape, dtype) -> Array"
        )
    return init


def _lookup(name: str) -> Entry:
    try:
        return REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, REGISTRY, n=4, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ValueError(
            f"unknown initializer {name!r}; {hint}`python -m bench list` shows all "
            "(or give module:function)"
        ) from None


def _import(path: str) -> Any:
    fn = import_object(path, "initializer")
    if not callable(fn):
        raise ValueError(f"{path!r} is not callable; it must be an initializer or a builder")
    return fn


def first_line(error: BaseException) -> str:
    """``ZeroDivisionError: division by zero``: what user code raised, in one line for a message."""
    return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}"


def import_object(path: str, what: str) -> Any:
    """The object ``module:attribute`` names (importing the module runs it, as any import does).

    Raises:
      ValueError: one line naming ``what`` it was for, when the module does not import or lacks the attribute.
    """
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"cannot import module {module_name!r} for {what} {path!r}: {error}") from None
    except Exception as error:  # importing user code runs it; whatever it raises is named
        raise ValueError(f"importing module {module_name!r} for {what} {path!r} failed: {first_line(error)}") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ValueError(f"module {module_name!r} has no attribute {attribute!r} ({what} {path!r})") from None
