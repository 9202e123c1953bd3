"""A progress bar counted in minibatch steps, fed from inside the compiled training epoch.

One tick per chunk-epoch left a one-epoch MNIST run at 0/1 for minutes. Here the
bar counts the minibatch steps of every chunk and epoch (unit ``step``); the
compiled epoch reports how far it is (``bench.training.train.make_train_epoch(on_steps=...)``,
a ``jax.debug.callback`` about 50 times per epoch) and the bar shows the rate and a
smoothed ETA (tqdm's exponential moving average of the rate).
"""

from __future__ import annotations

import threading


class StepBar:
    """Progress over ``total`` minibatch steps: ``on_steps`` calls from the device, ``advance`` from the host.

    Args:
      total: steps of all chunks and epochs this process will train or load.
      desc: the bar's label.
      enabled: False draws nothing (the counts are still kept).
    """

    def __init__(self, total: int, desc: str, enabled: bool = True):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="step", smoothing=0.05, disable=not enabled,
                        dynamic_ncols=True)
        self.base = 0  # steps done before the epoch in progress
        self.done = 0
        self._lock = threading.Lock()

    def on_steps(self, steps_into_epoch) -> None:
        """Called by the compiled epoch after ``steps_into_epoch`` of its steps (any thread, maybe twice)."""
        self._to(self.base + int(steps_into_epoch))

    def advance(self, steps: int) -> None:
        """``steps`` finished outside a callback (a loaded chunk, a checkpoint, the rest of an epoch)."""
        self.base += steps
        self._to(self.base)

    def _to(self, position: int) -> None:
        with self._lock:
            if position > self.done:
                self.bar.update(position - self.done)
                self.done = position

    def exclude_from_rate(self) -> None:
        """Starts the rate's clock again now, so compilation does not count as training time in the ETA."""
        self.bar.unpause()

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> StepBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
