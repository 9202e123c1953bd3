"""Reports rendered from ``results.csv`` and ``run.json`` only: tables, markdown, LaTeX (``report``) and
figures (``figures``)."""
