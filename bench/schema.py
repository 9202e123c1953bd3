"""The hyperparameter columns of the tidy results table, named once for the code that writes the table
(``bench.training.grid``: a grid's factors become columns) and the code that reads it (``bench.analysis``).

A grid factor's column holds the value each run was trained with; the table is sorted, and arms are named
(``he_normal lr=0.01 wd=0.0001``), in :data:`FACTORS` order with the short names of :data:`LABELS`.
"""

FACTORS = ("lr", "weight_decay", "momentum", "init_scale")  # in the order arms are named and tables sorted
LABELS = {"lr": "lr", "weight_decay": "wd", "momentum": "momentum", "init_scale": "scale"}
