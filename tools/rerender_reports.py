"""Re-renders every committed report (``reports/*/run.json``) into a scratch copy and compares its files with the
committed ones, ignoring the lines that name when and where it was rendered (none for these files: a re-render
keeps the run's own record). Prints one line per report; exits 1 if any file differs. With ``--write``, the files
that differ replace the committed ones (after a change meant to show in the reports); with ``--figures`` too, the
figures are redrawn in the formats the report has and replace its ``figures/`` (after a change to a figure).

    python tools/rerender_reports.py [--write [--figures]] [REPORT ...]
"""

from __future__ import annotations

import difflib
import shutil
import sys
import tempfile
from pathlib import Path

from bench.analysis import outcomes
from bench.experiments import presets
from bench.reporting import report
from bench.reporting.files import load

FILES = ("report.md", "report.tex", "results.csv", "run.json")


def differences(folder: Path, write: bool = False, figures: bool = False) -> list[str]:
    """The unified diffs of the report's text files rendered again (md, tex, csv) against the committed ones;
    ``write``: the re-rendered files replace those that differ; ``figures``: the figures are redrawn (in the formats
    the report has) and replace the committed ones."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / folder.name
        shutil.copytree(folder, copy)
        results, record = load(copy)
        images = sorted({p.suffix[1:] for p in (folder / "figures").glob("*.*")}) if figures else []
        report.write(copy, results, record, ["md", "tex", "csv", *images], test_outcomes=outcomes.load(copy, results),
                     shipped=presets.shipped(record.name))
        if images:
            shutil.rmtree(folder / "figures")
            shutil.copytree(copy / "figures", folder / "figures")
        out = []
        for name in FILES:
            before, after = (folder / name).read_text().splitlines(), (copy / name).read_text().splitlines()
            diff = list(difflib.unified_diff(before, after, f"{folder}/{name}", f"re-rendered {name}", lineterm=""))
            if diff and write:
                shutil.copyfile(copy / name, folder / name)
            out += diff
        return out


def main(names: list[str]) -> int:
    write, figures = "--write" in names, "--figures" in names
    names = [n for n in names if n not in ("--write", "--figures")]
    folders = [Path("reports") / n for n in names] or sorted(p.parent for p in Path("reports").glob("*/run.json"))
    failed = 0
    for folder in folders:
        diff = differences(folder, write, write and figures)
        said = "identical" if not diff else f"{len(diff)} diff lines" + (" (written)" if write else "")
        print(f"{folder}: {said}")
        if diff:
            failed += 1
            print("\n".join(diff[:40]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
