"""A progress bar counted in minibatch steps, fed as the segments of each epoch finish.

One tick per chunk-epoch left a one-epoch MNIST run at 0/1 for minutes. Here the
bar counts the minibatch steps of every chunk and epoch (unit ``step``); a long epoch is
trained in segments (``bench.training.train.segment_steps``: up to 50 an epoch), each
reported when it finishes, and the bar shows the rate and a smoothed ETA (tqdm's
exponential moving average of the rate). Not a callback from inside the compiled program:
JAX cannot keep a program with host callbacks in its persistent cache.
"""

from __future__ import annotations

import importlib.util


class StepBar:
    """Progress over ``total`` minibatch steps, advanced from the host as steps finish.

    Args:
      total: steps of all chunks and epochs this process will train or load.
      desc: the bar's label.
      enabled: False draws nothing (the counts are still kept).
    """

    def __init__(self, total: int, desc: str, enabled: bool = True):
        if importlib.util.find_spec("ipywidgets") is not None:  # a notebook's bar where it can draw one
            from tqdm.auto import tqdm
        else:  # tqdm.auto would warn in every notebook without ipywidgets, then fall back to this
            from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="step", smoothing=0.05, disable=not enabled,
                        dynamic_ncols=True)
        self.done = 0

    def advance(self, steps: int) -> None:
        """``steps`` more finished (a segment of an epoch, a loaded chunk, a checkpoint's epochs)."""
        self.bar.update(steps)
        self.done += steps

    def exclude_from_rate(self) -> None:
        """Starts the rate's clock again now, so compilation does not count as training time in the ETA."""
        self.bar.unpause()

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> StepBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
