"""Reports rendered from ``results.csv`` and ``run.json`` only: tables, markdown, LaTeX (``report``) and
figures (``figures``)."""

FORMATS = ("md", "tex", "png", "pdf", "csv")  # what a report can be written as (here: the CLI reads it without pandas)
