"""Experiments: what is compared (``presets``: tasks, arms, seeds, recipe; the presets are the
``*.toml`` files of this folder), experiment files (``experiment_file``), and running one end to end
(``runner``)."""
