"""The checks of a built-in model's parameterization options (``parameterization``, ``base_width``,
``base_depth``), which ``bench.training.parameterized`` applies to the model's parameters and updates."""

from __future__ import annotations

from bench.errors import UserError, unknown
from initjax import parameterization as param

DEPTH_PARAMETERIZATIONS = tuple(name for name, p in param.PARAMETERIZATIONS.items() if p.depth is not None)


def check(kind: str, options) -> None:
    """Raises UserError on a bad ``parameterization`` / ``base_width`` / ``base_depth`` set in a built-in model's
    options."""
    name, base, depth = options.get("parameterization"), options.get("base_width"), options.get("base_depth")
    if name is None and base is None and depth is None:
        return
    if name is None or base is None:
        raise UserError("give parameterization and base_width together, e.g. model_args = "
                        "{ parameterization = \"mup\", base_width = 64 }")
    if not isinstance(name, str):
        raise unknown("parameterization", name, param.PARAMETERIZATIONS)
    if name not in param.PARAMETERIZATIONS:
        try:
            param.get(name)  # one with arguments: completep(alpha=0.75)
        except ValueError as error:
            if name.split("(", 1)[0].strip() in param.FAMILIES:
                raise UserError(str(error)) from None
            raise unknown("parameterization", name, param.PARAMETERIZATIONS) from None
    for key, value in (("base_width", base), ("base_depth", depth)):
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            raise UserError(f"{key} must be an integer >= 1, got {value!r}")
    if kind not in ("mlp", "resmlp", "transformer"):
        raise UserError(f"a parameterization needs a built-in mlp, resmlp or transformer, not {kind!r}")
    if options.get("tied") and name != "sp":
        raise UserError(f"a tied transformer cannot be trained under {name}: its embedding is also its readout, "
                        "which the parameterization scales as an output; untie it (tied = false)")
    scales_depth = param.get(name).depth is not None
    if scales_depth != (depth is not None):
        raise UserError(f"base_depth goes with {' or '.join(DEPTH_PARAMETERIZATIONS)} only, and they need it; got "
                        f"parameterization {name!r}"
                        + (f" and base_depth {depth}" if depth is not None else " without base_depth"))
    if scales_depth and kind == "mlp":
        raise UserError(f"{name} scales residual branches: use a resmlp or a transformer, not an mlp")
    if scales_depth and options.get("norm") == "post":
        raise UserError(f"{name} scales branches added to an unnormalized stream: use norm = \"pre\" or \"none\", "
                        "not \"post\"")
