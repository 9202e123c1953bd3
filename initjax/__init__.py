"""initjax: neural-network weight initializers as pure JAX functions.

>>> import jax, initjax
>>> init = initjax.get("he_normal")
>>> init(jax.random.key(0), (784, 300)).shape
(784, 300)
"""

from initjax.registry import BUILTIN_NAMES, REGISTRY, Entry, canonical, check, get, names, register
from initjax.spec import Spec, parse_spec, split_specs

__version__ = "0.1.0"

__all__ = [
    "BUILTIN_NAMES",
    "REGISTRY",
    "Entry",
    "Spec",
    "canonical",
    "check",
    "get",
    "names",
    "parse_spec",
    "register",
    "split_specs",
    "__version__",
]
