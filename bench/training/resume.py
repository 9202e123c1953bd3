"""Finished work of a run, kept on disk so that an interrupted run resumes instead of restarting.

A task's runs are trained chunk by chunk (``bench.training.memory``). Under
``<out>/progress/<dataset>-<key>/`` the store keeps:

* ``manifest.json``: the config the key was computed from and the chunk plan. A
  resumed run reuses the stored plan, because the same seeds in other chunks give
  numbers that differ in the last bits, and a resumed run must equal an
  uninterrupted one exactly;
* ``chunk-0003.npz``: the records of a finished chunk (evaluation sums of every
  epoch, which epochs trained without NaN/inf, per-example test loss and
  correctness after the last epoch);
* ``chunk-0003.checkpoint.npz``: a chunk in progress: its parameters, optimizer
  state and records after the last saved epoch (saved at most every
  ``checkpoint_every`` seconds; removed once the chunk is finished).

Every file is written atomically (``bench.store.write_atomic``), so a kill at
any moment leaves the previous state readable, and carries a checksum of its
contents and the name it was written under (task key and chunk): a damaged file,
or one copied over another's name, is refused with one line naming it, never
read into a report. The key hashes everything the
numbers depend on: the experiment (initializers, seeds, training, task, seed),
the data's fingerprint, initjax, jax and jaxlib versions, the backend and the
device and process counts, and the code of initjax, of the suite's training files
and of every user module a spec names (:func:`code_key`); a changed config or an
edited initializer gets a new key and never mixes with old results.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from pathlib import Path

import jax
import numpy as np

from bench.errors import UserError, option
from bench.store import (  # noqa: F401 (cache_root: re-exported, its home was here)
    LOCK,
    cache_root,
    create_atomic,
    files_digest,
    path_name,
    read_npz_verified,
    write_atomic,
    write_npz_verified,
)
from bench.training import batching, claims, memory, speedups

FORMAT_VERSION = 3  # 2: every file carries a checksum and its own name; 3: fractional per-example accuracies kept

FRESH = option("fresh", True)  # the remedy most messages here name


def task_key(config: dict) -> str:
    """16 hex digits of the SHA-256 of ``config`` as canonical JSON."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def environment_key() -> dict:
    """What else the numbers depend on: versions, backend, devices, processes."""
    import jaxlib

    import initjax

    return {
        "format": FORMAT_VERSION, "initjax": initjax.__version__, "jax": jax.__version__,
        "jaxlib": jaxlib.__version__, "backend": jax.default_backend(), "local_devices": jax.local_device_count(),
        "processes": jax.process_count(),
    }


# the suite's code that a run's numbers depend on: the trainer and what it imports, and the experiment layer
# that turns a task into a model, loss and data (bench.experiments.tasks.task_model, task_data)
NUMERIC_PACKAGES = ("training", "models", "data", "experiments")
NUMERIC_MODULES = ("schema.py", "user_code.py")  # bench's own modules below those packages that they import


def code_key(specs) -> dict[str, str]:
    """SHA-256 of the code the numbers depend on, so that an edit starts a new run instead of reusing old chunks.

    Covers every ``.py`` file of ``initjax``, the suite's training files (every module of
    :data:`NUMERIC_PACKAGES`, and :data:`NUMERIC_MODULES`), and for each ``module:function`` spec the file of that
    module (already imported when the spec was checked). A helper the module imports
    from elsewhere is not followed: keep user initializers in the module the spec names,
    or rerun with ``--fresh`` after editing a helper. Runs compiled without the speed-ups (``INITJAX_PLAIN``,
    ``bench.training.speedups``) are kept apart from those compiled with them.
    """
    import importlib
    import sys

    import initjax
    from initjax.spec import parse_spec

    files = sorted(Path(initjax.__file__).parent.glob("*.py"))
    suite = Path(__file__).resolve().parent.parent
    files += [f for package in NUMERIC_PACKAGES for f in sorted((suite / package).glob("*.py"))]
    files += [suite / name for name in NUMERIC_MODULES]
    out = {"suite": files_digest(files)}
    if not speedups.enabled():  # the plain programs: a whole-network scheme's numbers may differ in the last bits
        out["programs"] = "plain"
    if batching.override():  # the runs batched against the rule: their convolutions may round otherwise
        out["batching"] = batching.override()
    for spec in specs:
        if isinstance(spec, str):
            parsed = parse_spec(spec)
            if not parsed.is_import_path:
                continue
            module_name = parsed.name.partition(":")[0]
        else:  # a callable given from Python: its defining module
            module_name = getattr(spec, "__module__", None) or ""
        module = sys.modules.get(module_name)
        if module is None and module_name and not isinstance(spec, str):
            try:  # a callable's module may be no module at all (code run by exec under a name of its own)
                module = importlib.import_module(module_name)
            except ImportError:
                module = None
        elif module is None and module_name:
            module = importlib.import_module(module_name)
        origin = getattr(module, "__file__", None)
        out[str(spec) if isinstance(spec, str) else f"{module_name}:{getattr(spec, '__qualname__', spec)}"] = (
            files_digest([Path(origin)]) if origin else _source_digest(spec))
    return out


def _source_digest(obj) -> str:
    """For code no file holds (a class or function defined in a notebook's cell, where ``__main__`` has no file):
    the SHA-256 of its source where ``inspect`` can read it (an instance: its class's), else a key never seen again,
    so that runs of code that cannot be checked are not reused after it is edited."""
    import hashlib
    import inspect
    import uuid

    target = obj if inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismethod(obj) else type(obj)
    try:
        return hashlib.sha256(inspect.getsource(target).encode()).hexdigest()
    except (OSError, TypeError):
        return f"no readable source, not reused: {uuid.uuid4().hex}"


@dataclasses.dataclass
class Checkpoint:
    """A chunk stopped after ``epoch`` and ``step`` minibatch steps of the next: its run state's leaves to continue
    from, the records so far, and the work they took; ``epoch_finite`` `(arms, seeds)`: whether each run's losses
    were finite in those steps (None with ``step`` 0)."""

    epoch: int
    leaves: list[np.ndarray]  # of the chunk's run state (``bench.training.step.RunState``), in tree order
    sums: np.ndarray
    finite: np.ndarray
    seconds: float = 0.0
    seed_epochs: int = 0
    step: int = 0
    epoch_finite: np.ndarray | None = None


@dataclasses.dataclass
class Finished:
    """A finished chunk's records, the training work they took (seconds, run-epochs), and its test outcomes.

    ``outcomes``: per-example ``(loss, correct)`` on the test split, each `(inits, seeds, n_test)`;
    None for chunks written before they were kept.
    """

    sums: np.ndarray
    finite: np.ndarray
    seconds: float = 0.0
    seed_epochs: int = 0
    outcomes: tuple[np.ndarray, np.ndarray] | None = None


class TaskStore:
    """Finished chunks and checkpoints of one task under ``folder``.

    Args:
      root: the cache folder (:func:`cache_root`).
      name: dataset name (readable part of the folder name).
      config: everything the task's numbers depend on (hashed into the key).
      checkpoint_every: seconds between checkpoints of a chunk in progress
        (0: after every epoch).
      lease: seconds after which a claim on a chunk that its holder stopped touching is taken over.
    """

    def __init__(self, root: str | Path, name: str, config: dict, checkpoint_every: float = 60.0,
                 lease: float = claims.LEASE_S):
        self.config = config
        self.lease = lease
        self._held: claims.Held | None = None
        self.key = task_key(config)
        self.folder = task_folder(root, name, config)
        self.checkpoint_every = checkpoint_every
        self._last_save = time.monotonic()
        self.loaded: list[int] = []  # chunks found finished
        self.resumed: dict[int, int] = {}  # chunk -> epoch continued from

    # ------------------------------------------------------------ plan

    def plan(self, proposed: memory.ChunkPlan, n_seeds: int) -> memory.ChunkPlan:
        """The stored chunk plan if this task was started before, else ``proposed`` (then stored).

        Raises:
          UserError: the manifest is damaged, edited (its checksum), or its plan does not
            cover ``n_seeds`` seeds.
        """
        manifest = self.folder / "manifest.json"
        if not manifest.is_file():
            body = {"format": FORMAT_VERSION, "config": self.config,
                    "plan": {"seeds_per_chunk": proposed.seeds_per_chunk, "n_chunks": proposed.n_chunks,
                             "reason": proposed.reason}}
            body["sha256"] = _json_digest(body)
            # made once: of shards that start this task at once (on machines of other memory), one plan wins
            if create_atomic(manifest, json.dumps(body, indent=1, sort_keys=True, default=str)):
                return proposed
        stored = self._read_json(manifest)
        damaged = UserError(f"{manifest} is damaged or edited; delete {self.folder} or rerun with {FRESH}")
        if not isinstance(stored, dict) or stored.get("sha256") != _json_digest(stored):
            raise damaged
        plan = stored.get("plan")
        per, n = (plan.get("seeds_per_chunk"), plan.get("n_chunks")) if isinstance(plan, dict) else (None, None)
        if not (type(per) is int and type(n) is int and per >= 1 and (n - 1) * per < n_seeds <= n * per):
            raise damaged
        return dataclasses.replace(proposed, seeds_per_chunk=per, n_chunks=n, reason=f"{plan['reason']}, resumed")

    # ------------------------------------------------------------ finished chunks

    def _chunk(self, chunk: int) -> Path:
        return self.folder / f"chunk-{chunk:04d}.npz"

    def _checkpoint(self, chunk: int) -> Path:
        return self.folder / f"chunk-{chunk:04d}.checkpoint.npz"

    def finished(self, chunk: int, shapes: dict[str, tuple] | None = None) -> Finished | None:
        """The records of a finished chunk, or None.

        Args:
          shapes: the shapes the task expects (``sums``, ``finite``, ``test_loss``);
            a file with others is refused.
        """
        path = self._chunk(chunk)
        if not path.is_file():
            return None
        arrays = self._read_npz(path, f"chunk-{chunk:04d}", shapes)
        self.loaded.append(chunk)
        claims.clear_stale(self.folder, f"chunk-{chunk:04d}", self.lease)  # its trainer stopped before releasing
        outcomes = None
        if "test_loss" in arrays:
            shape = arrays["test_loss"].shape
            correct = (np.unpackbits(arrays["test_correct"], axis=-1, count=shape[-1]).reshape(shape)
                       if "test_correct" in arrays else arrays["test_accuracy"])
            outcomes = (arrays["test_loss"], correct.astype(np.float32))
        return Finished(arrays["sums"], arrays["finite"], float(arrays.get("seconds", 0.0)),
                        int(arrays.get("seed_epochs", 0)), outcomes)

    def save_finished(self, chunk: int, sums: np.ndarray, finite: np.ndarray, seconds: float = 0.0,
                      seed_epochs: int = 0, outcomes: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Records a finished chunk (its seconds, run-epochs and test outcomes), then drops its checkpoint."""
        extra = {}
        if outcomes is not None:  # bits where every example is right or wrong, else the fractions themselves
            loss, correct = outcomes
            binary = bool(np.all((correct == 0) | (correct == 1)))
            extra = {"test_loss": loss, **({"test_correct": np.packbits(correct.astype(bool), axis=-1)} if binary
                                           else {"test_accuracy": np.asarray(correct, np.float32)})}
        self._write_npz(self._chunk(chunk), f"chunk-{chunk:04d}", sums=sums, finite=finite, seconds=np.float64(seconds),
                   seed_epochs=np.int64(seed_epochs), **extra)
        self._checkpoint(chunk).unlink(missing_ok=True)

    # ------------------------------------------------------------ claims (bench.training.claims)

    def claim(self, chunk: int) -> claims.Holder | None:
        """Claims the chunk for this process: None where it now holds it, else the live holder (another process of
        this study, here or on another machine, trains it now)."""
        if self._held is None:
            self._held = claims.Held(self.folder, self.lease)
        return self._held.take(f"chunk-{chunk:04d}")

    def release(self, chunk: int) -> None:
        if self._held is not None:
            self._held.drop(f"chunk-{chunk:04d}")

    def close(self) -> None:
        """Releases every claim this process holds."""
        if self._held is not None:
            self._held.close()
            self._held = None

    # ------------------------------------------------------------ checkpoints

    def checkpoint(self, chunk: int, shapes: dict[str, tuple] | None = None,
                   leaf_shapes: list[tuple] | None = None) -> Checkpoint | None:
        """The saved state of a chunk in progress, or None.

        Args:
          shapes: expected shapes of ``sums`` and ``finite``.
          leaf_shapes: expected shapes of the run state's leaves.
        """
        path = self._checkpoint(chunk)
        if not path.is_file():
            return None
        if leaf_shapes is not None:
            shapes = {**(shapes or {}), **{f"leaf_{i}": shape for i, shape in enumerate(leaf_shapes)}}
        arrays = self._read_npz(path, f"chunk-{chunk:04d}.checkpoint", shapes)
        n_leaves = int(arrays["n_leaves"])
        if leaf_shapes is not None and n_leaves != len(leaf_shapes):
            raise UserError(f"{path} holds {n_leaves} state arrays, this task has {len(leaf_shapes)}; "
                            f"delete it (its chunk is retrained) or rerun with {FRESH}")
        self.resumed[chunk] = int(arrays["epoch"])
        step = int(arrays.get("step", 0))
        return Checkpoint(int(arrays["epoch"]), [arrays[f"leaf_{i}"] for i in range(n_leaves)], arrays["sums"],
                          arrays["finite"], float(arrays.get("seconds", 0.0)), int(arrays.get("seed_epochs", 0)),
                          step, arrays["epoch_finite"] > 0 if step else None)

    def due(self) -> bool:
        """Whether the chunk in progress should be checkpointed now."""
        return time.monotonic() - self._last_save >= self.checkpoint_every

    def save_checkpoint(self, chunk: int, epoch: int, state, sums: np.ndarray, finite: np.ndarray,
                        seconds: float = 0.0, seed_epochs: int = 0, step: int = 0,
                        epoch_finite: np.ndarray | None = None) -> None:
        """Saves the run state after ``epoch`` and ``step`` minibatch steps of the next (any pytree: its leaves, in
        tree order); ``epoch_finite``: whether each run's losses were finite in those steps."""
        flat = jax.tree.leaves(state)
        partial = {} if not step else {"step": np.int64(step), "epoch_finite": np.asarray(epoch_finite, np.float32)}
        leaves = {f"leaf_{i}": np.asarray(leaf) for i, leaf in enumerate(flat)}
        self._write_npz(
            self._checkpoint(chunk),
            f"chunk-{chunk:04d}.checkpoint",
            epoch=np.int64(epoch),
            n_leaves=np.int64(len(flat)),
            sums=sums,
            finite=finite,
            seconds=np.float64(seconds),
            seed_epochs=np.int64(seed_epochs),
            **partial,
            **leaves,
        )
        self._last_save = time.monotonic()

    # ------------------------------------------------------------ reading

    def _read_json(self, path: Path):
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            raise UserError(f"{path} is damaged; delete {self.folder} or rerun with {FRESH}") from None

    def _read_npz(self, path: Path, role: str, shapes: dict[str, tuple] | None) -> dict[str, np.ndarray]:
        """A progress file's arrays, checked: checksum, written for this task and this ``role``, shapes."""
        remedy = f"delete it (its chunk is retrained) or rerun with {FRESH}"
        arrays = read_npz_verified(path, remedy)
        version = int(arrays["format"]) if arrays.get("format", np.zeros(2)).shape == () else -1
        if version != FORMAT_VERSION:
            raise UserError(f"{path} has progress format {version}; this initjax reads {FORMAT_VERSION}: "
                            f"rerun with {FRESH}")
        written_as = str(arrays.get("written_as", ""))
        if written_as != f"{self.key}/{role}":
            raise UserError(f"{path} was written as {written_as or 'something else'}, not as this task's {role}; "
                            f"{remedy}")
        for name, shape in (shapes or {}).items():
            if name in arrays and arrays[name].shape != tuple(shape):
                raise UserError(f"{path} holds {name} of shape {arrays[name].shape}, this task needs "
                                f"{tuple(shape)}; {remedy}")
        return arrays

    def _write_npz(self, path: Path, role: str, **arrays) -> None:
        write_npz_verified(path, {"format": np.int64(FORMAT_VERSION), "written_as": np.array(f"{self.key}/{role}"),
                                  **arrays})


class NullStore:
    """A store that keeps nothing: every chunk is trained, nothing is written (runs without a cache)."""

    loaded: tuple = ()
    resumed: dict = {}

    def plan(self, proposed: memory.ChunkPlan, n_seeds: int) -> memory.ChunkPlan:
        return proposed

    def finished(self, chunk: int, shapes: dict[str, tuple] | None = None) -> None:
        return None

    def checkpoint(self, chunk: int, shapes=None, leaf_shapes=None) -> None:
        return None

    def due(self) -> bool:
        return False

    def save_finished(self, *args, **kwargs) -> None:
        pass

    def claim(self, chunk: int) -> None:
        return None

    def release(self, chunk: int) -> None:
        pass

    def close(self) -> None:
        pass

    def save_checkpoint(self, *args, **kwargs) -> None:
        pass


def _json_digest(body: dict) -> str:
    """SHA-256 of a manifest's canonical JSON without its own ``sha256`` entry."""
    text = json.dumps({k: v for k, v in body.items() if k != "sha256"}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def planned_chunks(folder: str | Path) -> int | None:
    """The chunk count of the plan stored in a task folder's manifest; None where no process started the task.

    Raises:
      UserError: the manifest is damaged or edited.
    """
    manifest = Path(folder) / "manifest.json"
    if not manifest.is_file():
        return None
    try:
        stored = json.loads(manifest.read_text())
    except (OSError, ValueError):
        stored = None
    plan = stored.get("plan") if isinstance(stored, dict) and stored.get("sha256") == _json_digest(stored) else None
    if not isinstance(plan, dict) or type(plan.get("n_chunks")) is not int:
        raise UserError(f"{manifest} is damaged or edited; delete {Path(folder)} or rerun with {FRESH}")
    return plan["n_chunks"]


def chunks_in(folder: str | Path, checkpoints: bool = False) -> list[int]:
    """The chunks of a task folder with a finished file (``checkpoints``: with a checkpoint), in order."""
    pattern = "chunk-[0-9][0-9][0-9][0-9]" + (".checkpoint.npz" if checkpoints else ".npz")
    return sorted(int(path.name[6:10]) for path in Path(folder).glob(pattern))


def unfinished(folder: str | Path) -> list[int] | None:
    """The chunks of a task folder's plan with no finished file; None where no process started the task."""
    n = planned_chunks(folder)
    if n is None:
        return None
    done = set(chunks_in(folder))
    return [c for c in range(n) if c not in done]


def task_folder(root: str | Path, name: str, config: dict) -> Path:
    """``<root>/<name>-<key>``: the folder of one task's finished work."""
    return Path(root) / f"{path_name(name)}-{task_key(config)}"


def remove(root: str | Path, name: str, config: dict) -> None:
    """``--fresh``: forgets the finished work of this task's key (its lock, held by the caller, stays)."""
    folder = task_folder(root, name, config)
    for path in folder.glob("*") if folder.is_dir() else ():
        if not path.name.startswith(LOCK):
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
