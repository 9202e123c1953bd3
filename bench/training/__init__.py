"""Training: one run's step (``step``), every arm x seed of a task as one compiled program (``train``),
optimizer recipes, the chunk plan and memory estimates, devices, progress, resumable chunks, throughput."""
