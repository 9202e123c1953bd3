"""Width (and depth) parameterizations (abc-parameterizations) as data: SP, NTK, muP, Depth-muP and CompleteP.

A parameterization says how three things change as a model is made wider: each tensor's initial scale,
a constant multiplier in the forward pass, and its learning rate. All three are powers of the tensor's
*width multiplier* ``m = n / n_base``, the ratio of its growing dimension to the same dimension in a
base model (Yang et al. 2021's "base shapes": at ``m = 1`` every parameterization is the base model).

Which dimensions grow sets a tensor's **role** (Tensor Programs V, Sec. 4 and Table 3), found by
comparing the model's parameter shapes with the base model's (:func:`roles`):

=========  =================================  ==================================================
role       growing dimensions                 e.g.
=========  =================================  ==================================================
input      fan-out only ("vector-like")        first kernel, embeddings, hidden biases, LN gains
hidden     fan-in and fan-out ("matrix-like")  hidden kernels, attention q/k/v/o, MLP in/out
output     fan-in only                         readout kernel
scalar     none                                readout bias
=========  =================================  ==================================================

A kernel's fan-in is its second-to-last axis and its fan-out its last (Flax ``Dense`` ``(in, out)``,
``Conv`` HWIO); a vector's one axis is a fan-out. ``m`` is the ratio of the fan-in for hidden and
output tensors, of the fan-out for input ones.

Each role's :class:`Scaling` holds the paper's exponents ``e``, each meaning "times ``m ** -e``":
``init`` (the initial standard deviation against the base model's), ``multiplier`` (the forward pass
uses ``m ** -multiplier * W``), ``lr`` (one exponent per optimizer family: SGD-like, whose step
scales with the gradient, and Adam-like, whose step does not), ``eps`` (Adam's epsilon) and ``weight_decay``
(decoupled weight decay). The tables, for fan-in base draws (``Var ~ 1/fan_in``):

* **SP**, the standard parameterization: ``Var = sigma^2 / fan_in`` everywhere, no multipliers, one
  learning rate: init 1/2 for hidden and output tensors, every other exponent 0.
* **NTK** (Jacot et al. 2018; Yang & Hu 2021, Sec. 3): tensors drawn at the base scale and multiplied
  by ``1 / sqrt(fan_in)`` in the forward pass (multiplier 1/2 for hidden and output), so the initial
  function is SP's. SGD: one learning rate. Adam has no table in the papers; ours asks Adam's
  ``Theta(lr)`` steps to move each tensor's entries at the width scaling SGD's NTK steps do:
  lr 1/2 for input, 1 for hidden, 1/2 for output tensors.
* **muP** (Yang et al. 2021, "Tensor Programs V", Table 3): output ``Var = sigma^2 / fan_in^2`` (init 1),
  hidden ``1 / fan_in`` (init 1/2); SGD: learning rate ``eta * fan_out`` for input tensors (lr -1),
  ``eta / fan_in`` for output ones (lr 1); Adam: ``eta / fan_in`` for hidden and output (lr 1).
  Attention logits ``q.k / d_head`` instead of ``/ sqrt(d_head)``. Adam's epsilon ``eps / fan_in`` for input and
  hidden tensors (eps 1): their gradients' entries shrink as ``1 / width`` under muP, and a fixed epsilon would
  come to dominate them (Dey et al. 2025, Table 1, write it ``eps m_N^-1`` for every tensor of muP's form with an
  output multiplier ``1 / m_N``; in Table 3's form, without that multiplier, the readout's gradient does not shrink,
  nor its epsilon).

The multipliers are **folded** into the tensors (:func:`init_factors`, :func:`lr_factors`, :func:`eps_factors`,
:func:`decay_factors`): training ``W_eff = c W`` at ``eta`` takes the steps of training ``W_eff`` itself at
``c^2 eta`` under SGD, and under Adam at ``c eta`` with epsilon ``eps / c`` (the gradient of ``W_eff`` is that of
``W`` over ``c``) and decoupled weight decay ``wd / c`` (the abc symmetry, Tensor Programs V Sec. 4), so a model's
forward pass needs no change and the folded steps are the explicit multipliers' exactly. (An L2 term added to the
gradient is not folded.)

**Depth** (Depth-muP: Yang et al. 2023, "Tensor Programs VI", arXiv:2310.02244; Bordelon et al. 2023,
arXiv:2309.16620): a residual network's blocks add ``L ** -1/2 * branch(h)`` to the stream, ``L`` the number of
blocks against a base depth (``m_L = L / L_base``), and Adam's learning rate of every tensor inside a branch
shrinks as ``m_L ** -1/2`` (SGD's stays): :class:`DepthScaling`. Tensors take a **depth role** from where they sit
(:data:`DEPTH_ROLES`): ``branch_output`` (the last layer of a branch, where the multiplier is folded, and any bias
added to the stream by a block), ``branch`` (the rest of a branch, its LayerNorms included) or ``outside``
(embeddings, stem, readout). ``depth_mup`` is muP's width table with this depth rule.

**CompleteP** (Dey et al. 2025, arXiv:2505.01618, Table 1) is the same with ``alpha = 1``: every branch times
``m_L ** -1``, and Adam's learning rate inside a branch times ``m_L ** (alpha - 1) = 1`` (hidden weights and the
branch's LayerNorms alike; embeddings, the final norm and the readout as muP's width table says), Adam's epsilon
inside a branch times ``m_L ** -alpha`` (its gradients shrink with the branch's multiplier; Depth-muP's the same
with its ``alpha = 1/2``) and the hidden weights' decoupled weight decay times ``m_N`` (so that ``lr x wd`` does not
shrink with width). Each layer then keeps learning non-linear features as blocks are added (Depth-muP's
``alpha = 1/2`` makes the deep blocks lazy). The paper gives AdamW's rules only, so ``completep`` has no SGD rule.
Its ``alpha`` is a parameter (:func:`completep`, ``completep(alpha=0.75)``), 1 by default.

All functions here are pure: they take pytrees of ``(role, m)`` and return pytrees of factors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax

ROLES = ("input", "hidden", "output", "scalar")
OPTIMIZER_FAMILIES = ("sgd", "adam")


@dataclasses.dataclass(frozen=True)
class Scaling:
    """One role's exponents: init std, forward multiplier and learning rate each times ``m ** -exponent``.

    Attributes:
      init: exponent of the initial standard deviation.
      multiplier: exponent of the forward multiplier.
      lr_sgd, lr_adam: exponents of the learning rate under SGD-like and Adam-like optimizers.
      eps: exponent of Adam's epsilon (Adam-like optimizers with one).
      weight_decay: exponent of decoupled weight decay (CompleteP's hidden weights: -1, times ``m``).
    """

    init: float = 0.0
    multiplier: float = 0.0
    lr_sgd: float = 0.0
    lr_adam: float = 0.0
    eps: float = 0.0
    weight_decay: float = 0.0

    def lr(self, family: str) -> float:
        """The learning-rate exponent for an optimizer family in :data:`OPTIMIZER_FAMILIES`."""
        if family not in OPTIMIZER_FAMILIES:
            raise ValueError(f"optimizer family {family!r}: use one of {', '.join(OPTIMIZER_FAMILIES)}")
        return self.lr_sgd if family == "sgd" else self.lr_adam


DEPTH_ROLES = ("branch_output", "branch", "outside")


@dataclasses.dataclass(frozen=True)
class DepthScaling:
    """How residual branches scale with depth, each exponent meaning "times ``m_L ** -exponent``".

    Attributes:
      multiplier: the exponent of every branch's forward multiplier, ``alpha`` (Depth-muP: 1/2, CompleteP: 1).
      lr_sgd, lr_adam: the learning-rate exponents of the tensors inside a branch (Depth-muP: 0 and 1/2;
        CompleteP's Adam: ``1 - alpha``); None: the paper gives no rule for that optimizer family.
      eps: the exponent of Adam's epsilon inside a branch (``alpha``: the branch's gradients shrink with its
        multiplier).
    """

    multiplier: float = 0.5
    lr_sgd: float | None = 0.0
    lr_adam: float | None = 0.5
    eps: float = 0.5

    def has_rule(self, family: str) -> bool:
        """Whether the paper gives a learning-rate rule for an optimizer family in :data:`OPTIMIZER_FAMILIES`."""
        return Scaling(lr_sgd=self.lr_sgd, lr_adam=self.lr_adam).lr(family) is not None

    def lr(self, family: str) -> float:
        """The learning-rate exponent inside a branch for an optimizer family in :data:`OPTIMIZER_FAMILIES`.

        Raises:
          ValueError: an unknown family, or one the paper gives no rule for.
        """
        if not self.has_rule(family):
            raise ValueError(f"this depth parameterization has no learning-rate rule for {family}-like optimizers")
        return Scaling(lr_sgd=self.lr_sgd, lr_adam=self.lr_adam).lr(family)


@dataclasses.dataclass(frozen=True)
class Parameterization:
    """How a model's tensors scale with width.

    Attributes:
      name: registry name.
      roles: role in :data:`ROLES` -> its :class:`Scaling` (a missing role scales not at all).
      attention: the attention logits are ``q.k / d_head ** attention`` (1/2 standard, 1 muP).
      reference: the paper.
      depth: how residual branches scale with depth (None: they do not).
      title: how reports write its name (``"muP"``); the name itself where empty.
    """

    name: str
    roles: Mapping[str, Scaling]
    attention: float = 0.5
    reference: str = ""
    depth: DepthScaling | None = None
    title: str = ""

    def scaling(self, role: str) -> Scaling:
        if role not in ROLES:
            raise ValueError(f"role {role!r}: use one of {', '.join(ROLES)}")
        return self.roles.get(role, Scaling())


_SP_FAN = {"hidden": 0.5, "output": 0.5}  # a fan-in initializer's std already shrinks as fan_in ** -1/2 there

SP = Parameterization(
    "sp", {"hidden": Scaling(init=0.5), "output": Scaling(init=0.5)}, title="SP",
    reference="the standard parameterization (LeCun et al. 1998; He et al. 2015)")
NTK = Parameterization(
    "ntk",
    {"input": Scaling(lr_adam=0.5),
     "hidden": Scaling(multiplier=0.5, lr_adam=1.0),
     "output": Scaling(multiplier=0.5, lr_adam=0.5)}, title="NTK",
    reference="Jacot, Gabriel & Hongler 2018, arXiv:1806.07572; Yang & Hu 2021, arXiv:2011.14522")
MUP = Parameterization(
    "mup",
    {"input": Scaling(lr_sgd=-1.0, eps=1.0),
     "hidden": Scaling(init=0.5, lr_adam=1.0, eps=1.0),
     "output": Scaling(init=1.0, lr_sgd=1.0, lr_adam=1.0)},
    attention=1.0, title="muP",
    reference="Yang et al. 2021, Tensor Programs V, arXiv:2203.03466, Table 3")
DEPTH_MUP = dataclasses.replace(
    MUP, name="depth_mup", depth=DepthScaling(), title="Depth-muP",
    reference="Yang et al. 2023, Tensor Programs VI, arXiv:2310.02244 (Depth-muP, block depth 1); Bordelon et al. "
              "2023, arXiv:2309.16620; muP's width table (Tensor Programs V, Table 3)")


def completep(alpha: float = 1.0) -> Parameterization:
    """CompleteP (Dey et al. 2025, arXiv:2505.01618, Table 1) with every residual branch times ``m_L ** -alpha``:
    Adam's rate inside branches times ``m_L ** (alpha - 1)``, its epsilon there times ``m_L ** -alpha``, the hidden
    weights' decoupled weight decay times ``m_N``; muP's width table otherwise. ``alpha`` in ``[1/2, 1]`` (the
    paper's range: 1/2 is Depth-muP's branch multiplier, 1 CompleteP's own).

    Raises:
      ValueError: ``alpha`` outside ``[1/2, 1]``.
    """
    if not 0.5 <= alpha <= 1.0:
        raise ValueError(f"completep's alpha must be between 0.5 and 1 (the paper's range), got {alpha}")
    roles = dict(MUP.roles, hidden=dataclasses.replace(MUP.roles["hidden"], weight_decay=-1.0))
    return dataclasses.replace(
        MUP, name="completep" if alpha == 1.0 else f"completep(alpha={alpha:g})", roles=roles,
        depth=DepthScaling(multiplier=alpha, lr_sgd=None, lr_adam=1.0 - alpha, eps=alpha),
        title="CompleteP" if alpha == 1.0 else f"CompleteP (alpha {alpha:g})",
        reference=f"Dey et al. 2025, Don't be lazy: CompleteP enables compute-efficient deep transformers, "
                  f"arXiv:2505.01618, Table 1 (alpha = {alpha:g}; AdamW only); muP's width table (Tensor Programs "
                  "V, Table 3)")


COMPLETEP = completep()


def mup(attention: float = 1.0) -> Parameterization:
    """muP (Tensor Programs V, Table 3) with the attention logits ``q.k / d_head ** attention``: 1 its own ``1/d``,
    1/2 the standard ``1/sqrt(d)`` kept under muP, as Lingle 2025 (arXiv:2404.05728) ablates it. The two agree at
    the base width and part as the heads widen (``initjax.parameterization.attention_factor``).

    Raises:
      ValueError: ``attention`` outside ``[1/2, 1]``.
    """
    if not 0.5 <= attention <= 1.0:
        raise ValueError(f"mup's attention exponent must be between 0.5 (1/sqrt(d)) and 1 (1/d), got {attention}")
    if attention == 1.0:
        return MUP
    scale = "1/sqrt(d)" if attention == 0.5 else f"d^-{attention:g}"
    return dataclasses.replace(MUP, name=f"mup(attention={attention:g})", attention=attention,
                               title=f"muP with {scale} attention")


PARAMETERIZATIONS: dict[str, Parameterization] = {p.name: p for p in (SP, NTK, MUP, DEPTH_MUP, COMPLETEP)}
FAMILIES = {"completep": completep, "mup": mup}  # those that take arguments: ``completep(alpha=0.75)``


def get(name: str) -> Parameterization:
    """A parameterization by name (:data:`PARAMETERIZATIONS`), or a spec with arguments of one in :data:`FAMILIES`
    (``"completep(alpha=0.75)"``, ``"mup(attention=0.5)"``)."""
    if name in PARAMETERIZATIONS:
        return PARAMETERIZATIONS[name]
    from initjax.spec import parse_spec

    try:
        parsed = parse_spec(name)
    except (ValueError, TypeError):
        parsed = None
    if parsed is None or parsed.name not in FAMILIES:
        raise ValueError(f"unknown parameterization {name!r}: use one of {', '.join(PARAMETERIZATIONS)}, "
                         "completep(alpha=A) or mup(attention=A)")
    try:
        return FAMILIES[parsed.name](*parsed.args, **dict(parsed.kwargs))
    except TypeError as error:
        raise ValueError(f"parameterization {name!r}: {error}") from None


def role_of(shape: tuple[int, ...], base_shape: tuple[int, ...]) -> tuple[str, float]:
    """A tensor's role and width multiplier from its shape and the base model's shape of it.

    Args:
      shape, base_shape: the same parameter in the model and in the base model. Kernels are
        ``(..., fan_in, fan_out)``; vectors ``(fan_out,)``.

    Returns:
      ``(role, m)``: ``m`` the ratio of the fan-in (hidden, output) or the fan-out (input); 1 for scalars.

    Raises:
      ValueError: the two shapes have different ranks, or a dimension other than the last two differs.
    """
    if len(shape) != len(base_shape):
        raise ValueError(f"shape {shape} and base shape {base_shape} differ in rank")
    if len(shape) == 0:
        return "scalar", 1.0
    if len(shape) == 1:
        return ("input", shape[0] / base_shape[0]) if shape != base_shape else ("scalar", 1.0)
    if shape[:-2] != base_shape[:-2]:
        raise ValueError(f"shape {shape} and base shape {base_shape} differ outside their last two axes "
                         "(fan-in, fan-out); only widths may change")
    fan_in, fan_out = shape[-2] / base_shape[-2], shape[-1] / base_shape[-1]
    if fan_in != 1 and fan_out != 1:
        return "hidden", fan_in
    if fan_in != 1:
        return "output", fan_in
    if fan_out != 1:
        return "input", fan_out
    return "scalar", 1.0


def roles(shapes, base_shapes):
    """:func:`role_of` over two pytrees of shapes (or arrays): a pytree of ``(role, m)``."""
    def leaf_shape(leaf):
        return tuple(leaf.shape) if hasattr(leaf, "shape") else tuple(leaf)
    return jax.tree.map(lambda a, b: role_of(leaf_shape(a), leaf_shape(b)), shapes, base_shapes,
                        is_leaf=lambda x: isinstance(x, tuple))


def _per_leaf(role_tree, fn):
    return jax.tree.map(lambda rm: fn(*rm), role_tree,
                        is_leaf=lambda x: isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str))


def fold_power(family: str) -> float:
    """How a forward multiplier ``c`` folded into its tensor scales the learning rate: ``c ** 2`` under SGD (the
    gradient of the drawn tensor is ``c`` times the folded one's, and its step moves the product ``c`` times),
    ``c`` under Adam (its step does not scale with the gradient)."""
    return 2.0 if family == "sgd" else 1.0


def init_factors(p: Parameterization, role_tree) -> dict:
    """Per tensor, what multiplies a fan-in initializer's draw at the model's shape to give ``p``'s initial
    *effective* tensor (the forward multiplier folded in): ``m ** (fan - init - multiplier)``.

    A fan-in initializer (LeCun, He) already scales hidden and output tensors by ``m ** -1/2`` (``fan``).
    So the factor is 1 everywhere under SP and NTK (whose initial function is SP's), ``m ** -1/2`` on muP's
    output tensor.
    """
    return _per_leaf(role_tree, lambda role, m: float(
        m ** (_SP_FAN.get(role, 0.0) - p.scaling(role).init - p.scaling(role).multiplier)))


def lr_factors(p: Parameterization, role_tree, family: str) -> dict:
    """Per tensor, what multiplies the recipe's learning rate to train the effective tensor as ``p`` trains
    the drawn one: ``m ** -(lr + k * multiplier)``, ``k`` 2 for SGD and 1 for Adam.

    Folding is exact for SGD and for Adam up to its epsilon (the abc symmetry of Tensor Programs V,
    Sec. 4: ``W_eff = c W`` trained at ``eta`` takes the steps of ``W_eff`` trained at ``c^2 eta``, or
    ``c eta`` under Adam); decoupled weight decay is not folded (it shrinks ``W``, not ``W_eff``).

    Args:
      family: ``"sgd"`` or ``"adam"`` (:data:`OPTIMIZER_FAMILIES`).
    """
    def factor(role, m):
        s = p.scaling(role)
        return float(m ** -(s.lr(family) + fold_power(family) * s.multiplier))
    return _per_leaf(role_tree, factor)


def _folded(p: Parameterization, role_tree, exponent: str) -> dict:
    """Per tensor, ``m ** -(e - multiplier)`` for the exponent ``e`` named ``exponent`` of its role's
    :class:`Scaling`: the table's factor over the folded multiplier ``c = m ** -multiplier``."""
    return _per_leaf(role_tree, lambda role, m: float(
        m ** -(getattr(p.scaling(role), exponent) - p.scaling(role).multiplier)))


def eps_factors(p: Parameterization, role_tree) -> dict:
    """Per tensor, what multiplies Adam's epsilon for the *folded* tensor: ``m ** -(eps - multiplier)``, the table's
    ``m ** -eps`` over the folded multiplier ``c = m ** -multiplier`` (the folded tensor's gradient is the drawn
    one's over ``c``, so its epsilon is too). muP: ``1 / m`` on input and hidden tensors, 1 on the readout; NTK:
    ``m ** 1/2`` on its folded hidden and output tensors (the explicit multipliers' steps with a fixed epsilon)."""
    return _folded(p, role_tree, "eps")


def decay_factors(p: Parameterization, role_tree) -> dict:
    """Per tensor, what multiplies decoupled weight decay for the folded tensor: ``m ** -(weight_decay -
    multiplier)`` (the table's factor over the folded multiplier: the decay shrinks the drawn tensor, whose step the
    folded learning rate already multiplies by ``c``). CompleteP's hidden weights: ``m``."""
    return _folded(p, role_tree, "weight_decay")


def attention_factor(p: Parameterization, head_ratio: float) -> float:
    """What multiplies the standard ``1 / sqrt(d_head)`` attention logits: ``head_ratio ** (1/2 - attention)``,
    ``head_ratio`` being ``d_head / d_head_base`` (muP: ``sqrt(d_base) / d_head`` in all). Folded into the query
    tensor like any multiplier (the logits are linear in it)."""
    return float(head_ratio ** (0.5 - p.attention))



def _check_depth_role(role: str) -> None:
    if role not in DEPTH_ROLES:
        raise ValueError(f"depth role {role!r}: use one of {', '.join(DEPTH_ROLES)}")


def depth_init_factors(p: Parameterization, depth_roles, m_depth: float):
    """Per tensor, what multiplies its draw for ``p``'s depth rule (``depth_roles``: a pytree of names in
    :data:`DEPTH_ROLES`; ``m_depth = L / L_base``): the branch multiplier ``m_depth ** -multiplier`` on branch
    outputs, where it is folded; 1 elsewhere and without a depth rule."""
    def factor(role):
        _check_depth_role(role)
        return float(m_depth ** -p.depth.multiplier) if p.depth is not None and role == "branch_output" else 1.0
    return jax.tree.map(factor, depth_roles)


def depth_lr_factors(p: Parameterization, depth_roles, m_depth: float, family: str):
    """Per tensor, what multiplies its learning rate for ``p``'s depth rule: ``m_depth ** -lr`` inside a branch,
    times the folded multiplier's ``m_depth ** -(k * multiplier)`` on branch outputs (``k``: :func:`fold_power`);
    1 outside and without a depth rule. Depth-muP under Adam: ``m_depth ** -1/2`` inside, ``m_depth ** -1`` on
    branch outputs; under SGD: 1 inside, ``m_depth ** -1`` on branch outputs. CompleteP under Adam: 1 inside,
    ``m_depth ** -1`` on branch outputs.

    Raises:
      ValueError: ``p`` has no depth rule for ``family`` (CompleteP under SGD).
    """
    if p.depth is not None:
        p.depth.lr(family)  # raises where the paper gives no rule

    def factor(role):
        _check_depth_role(role)
        d = p.depth
        if d is None or role == "outside":
            return 1.0
        fold = fold_power(family) * d.multiplier if role == "branch_output" else 0.0
        return float(m_depth ** -(d.lr(family) + fold))
    return jax.tree.map(factor, depth_roles)


def _depth_folded(p: Parameterization, depth_roles, m_depth: float, inside) -> dict:
    """Per tensor, ``m_depth ** -inside(depth rule)`` inside a branch, over the folded multiplier on branch outputs
    (``m_depth ** -(inside - multiplier)``); 1 outside and without a depth rule."""
    def factor(role):
        _check_depth_role(role)
        d = p.depth
        if d is None or role == "outside":
            return 1.0
        return float(m_depth ** -(inside(d) - (d.multiplier if role == "branch_output" else 0.0)))
    return jax.tree.map(factor, depth_roles)


def depth_eps_factors(p: Parameterization, depth_roles, m_depth: float):
    """Per tensor, what multiplies Adam's epsilon for ``p``'s depth rule: ``m_depth ** -eps`` inside a branch (its
    gradients carry the branch multiplier), over the folded multiplier on branch outputs (``m_depth ** -(eps -
    multiplier)``: 1 where ``eps = alpha``); 1 outside and without a depth rule."""
    return _depth_folded(p, depth_roles, m_depth, lambda d: d.eps)


def depth_decay_factors(p: Parameterization, depth_roles, m_depth: float):
    """Per tensor, what multiplies decoupled weight decay for ``p``'s depth rule: the folded multiplier's inverse
    ``m_depth ** multiplier`` on branch outputs (the decay shrinks the drawn tensor), 1 elsewhere."""
    return _depth_folded(p, depth_roles, m_depth, lambda d: 0.0)
