"""The report's sections, in the order the report shows them (``bench.reporting.section`` is their contract).

Consecutive task sections are rendered together for each task in turn. A new section is one module exporting
``SECTION`` and one line here.
"""

from bench.reporting.sections import (
    across,
    advice,
    comparisons,
    curves,
    depth_transfer,
    diverged,
    divergence,
    figures,
    footer,
    header,
    optimum,
    runs,
    sources,
    speed,
    summary,
    transfer,
    tuning,
)

SECTIONS = [
    header.SECTION,
    summary.SECTION,
    divergence.SECTION,
    optimum.SECTION,
    sources.SECTION,
    diverged.SECTION,  # a task whose every run diverged: only the sections above, then this
    runs.SECTION,
    tuning.SECTION,
    comparisons.SECTION,
    curves.SECTION,
    speed.SECTION,
    advice.SECTION,
    figures.SECTION,
    transfer.SECTION,
    depth_transfer.SECTION,
    across.SECTION,
    footer.SECTION,
]
