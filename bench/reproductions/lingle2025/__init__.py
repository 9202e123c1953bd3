"""A paper reproduction (``bench.reproductions``)."""
