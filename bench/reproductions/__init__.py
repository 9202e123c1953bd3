"""The paper reproductions, one folder each, found by folder: ``bench/reproductions/FOLDER/`` (a Python
package; the reproduction's name is the folder's with ``-`` for ``_``: he2015_depth is ``he2015-depth``) holds

- ``experiment.toml``: the experiment it runs (also the preset of its name: ``python -m bench run NAME``);
- ``claims.py``: ``PAPER`` (the citation), ``NEEDS_DIAGNOSIS`` (whether ``bench.studies.diagnose`` measures signal
  propagation at init first), ``evaluate(results, diagnosis) -> [Finding, ...]`` and optionally
  ``figures(results, folder) -> [path, ...]``;
- ``notes.md`` (optional): what differs from the paper and what that means for the verdicts.

A new reproduction is a new folder; ``python -m bench reproduce NAME`` finds it (``CONTRIBUTING.md``).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from bench.errors import unknown

if TYPE_CHECKING:  # imported where used: listing the reproductions imports none of their analysis
    from bench.reproductions.reproduction import Reproduction

FOLDER = Path(__file__).parent


def folder(name: str, root: Path = FOLDER) -> Path:
    """The folder of the reproduction ``name``."""
    return Path(root) / name.replace("-", "_")


def names(root: Path = FOLDER) -> list[str]:
    """The reproductions' names: the folders of ``root`` with a ``claims.py``, sorted."""
    return sorted(path.parent.name.replace("_", "-") for path in Path(root).glob("*/claims.py"))


@functools.cache
def claims(name: str, root: Path = FOLDER) -> ModuleType:
    """The ``claims.py`` module of a reproduction (of a folder outside the package too, ``root``).

    Raises:
      UserError: no such reproduction, listing the close ones.
    """
    if name not in names(root):
        raise unknown("reproduction", name, names(root))
    if Path(root) == FOLDER:
        return importlib.import_module(f"bench.reproductions.{folder(name).name}.claims")
    spec = importlib.util.spec_from_file_location(f"reproduction_{folder(name).name}", folder(name, root) / "claims.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def get(name: str, root: Path = FOLDER) -> Reproduction:
    """The reproduction of that name, from its folder (in ``root``: the package's own by default).

    Raises:
      UserError: no such reproduction, listing the close ones.
    """
    from bench.reproductions.reproduction import Reproduction

    module = claims(name, Path(root))
    notes = folder(name, root) / "notes.md"
    return Reproduction(name, module.PAPER, module.NEEDS_DIAGNOSIS, module.evaluate,
                        notes.read_text().strip() if notes.is_file() else "", getattr(module, "figures", None),
                        folder(name, root) / "experiment.toml")
