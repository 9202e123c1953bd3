"""Every code block of the README and the documentation is run by a test or marked as not run, so none rots.

A fence carries its language, and the line before it may carry a marker:

- ``python``: executed here, the blocks of a page in order in one namespace, in an empty folder;
- ``toml``: an experiment file, run by ``python -m bench run FILE`` up to its first compilation (every check a real
  run makes first: the fields, the data, the model, each initializer on the model's parameters), beside a
  ``mypkg`` package and ``data/my_data.npz`` such as the examples name;
- ``bash``: each ``python -m bench ...`` line parsed by the real parser, and ``run`` lines run up to their first
  compilation like the files (those naming data or a cluster this machine lacks are parsed only);
- ``text``: output, not code;
- ``yaml``: a manifest for another system (a Kubernetes job), marked as not run;
- ``<!-- not run: why -->`` before a fence: not run, for the reason given; ``<!-- run by tests/FILE -->``: run
  there (the file must exist and name the page; ``.ci/run`` runs the README's test command, which
  ``test_site.py`` checks).

``docs/tutorial.md`` is the tutorial notebook, executed by ``test_tutorial.py``.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bench import cli
from bench.training import train

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted(p for p in (REPO / "docs").rglob("*.md") if p.name != "tutorial.md")]
LANGUAGES = {"python", "toml", "bash", "text", "yaml"}
# data or a cluster a test machine lacks (shards: tests/experiments/test_sharded.py runs them)
PARSED_ONLY = ("--data-dir", "--download", "--distributed", "--shard", "--launcher")


@dataclasses.dataclass(frozen=True)
class Block:
    page: Path
    line: int
    language: str
    code: str
    marker: str  # the HTML comment on the line before the fence, or ''

    def __str__(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a page, with their language and marker."""
    found, lines, i = [], page.read_text().splitlines(), 0
    while i < len(lines):
        opening = re.match(r"^```(\S*)", lines[i])
        if opening:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            marker = lines[i - 1].strip() if i and lines[i - 1].strip().startswith("<!--") else ""
            found.append(Block(page, i + 1, opening.group(1), "\n".join(lines[i + 1:end]) + "\n", marker))
            i = end
        i += 1
    return found


ALL = [block for page in PAGES for block in blocks(page)]


class Accepted(Exception):
    """Raised where compilation would start: the command passed every check a real run makes first."""


def _accept(*args, **kwargs):
    raise Accepted


def _run_until_compiling(argv: list[str]) -> None:
    try:
        status = cli.main(argv)
    except Accepted:
        return
    raise AssertionError(f"bench {shlex.join(argv)} ended with status {status} before training")


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """An empty folder with what the examples name: a ``mypkg`` package (an initializer builder, a Flax module) and
    ``data/my_data.npz``; training stops where it would compile."""
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "inits.py").write_text(textwrap.dedent("""
        import initjax

        def scaled_orthogonal(scale=1.0):
            return initjax.get(f"orthogonal(scale={scale})")

        def scaled_normal(key, shape, dtype=None):
            return initjax.get("he_normal")(key, shape, dtype)

        def make(scale=2.0):
            return initjax.get(f"variance_scaling(scale={scale})")
    """))
    (package / "models.py").write_text(textwrap.dedent("""
        import flax.linen as nn

        class LayerNormMLP(nn.Module):
            widths: tuple = (64, 64)
            n_outputs: int = 10

            @nn.compact
            def __call__(self, x):
                for width in self.widths:
                    x = nn.relu(nn.LayerNorm()(nn.Dense(width)(x)))
                return nn.Dense(self.n_outputs, name="head")(x)
    """))
    rng = np.random.default_rng(0)
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "my_data.npz", x_train=rng.normal(size=(64, 5)).astype("float32"),
             y_train=rng.integers(0, 3, 64), x_test=rng.normal(size=(32, 5)).astype("float32"),
             y_test=rng.integers(0, 3, 32))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_every_block_has_a_language_and_every_marker_a_reason():
    assert len(ALL) >= 12
    for block in ALL:
        assert block.language in LANGUAGES, f"{block}: a fence without a known language ({block.language!r})"
        if block.marker:
            ran_by = re.fullmatch(r"<!-- run by (tests/\S+|\.ci/run) -->", block.marker)
            not_run = re.fullmatch(r"<!-- not run: .{10,} -->", block.marker)
            assert ran_by or not_run, f"{block}: marker {block.marker!r}"
            if ran_by and ran_by.group(1) == ".ci/run":  # the same command as CI's, after its venv
                ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
                assert ci.endswith(block.code.strip().split("pip install -e '.[test]'", 1)[1]), f"{block}: not CI's"
            elif ran_by:
                test = REPO / ran_by.group(1)
                assert test.is_file() and block.page.name in test.read_text(), f"{block}: {ran_by.group(1)}"
        elif block.language == "yaml":
            raise AssertionError(f"{block}: a yaml block is another system's manifest: mark it as not run")
        elif block.language == "bash":
            commands = _commands(block)
            assert commands and all(c[:3] == ["python", "-m", "bench"] for c in commands), \
                f"{block}: a shell block of other commands than python -m bench must say why it is not run"


def _commands(block: Block) -> list[list[str]]:
    """Each command line of a shell block: continuations joined, comments and environment assignments dropped."""
    text = block.code.replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
            words = words[1:]
        if words:
            commands.append(words)
    return commands


@pytest.mark.parametrize("page", [p for p in PAGES if any(b.language == "python" and not b.marker for b in blocks(p))],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_the_python_blocks_of_a_page_run(page, workspace):
    namespace = {"__name__": "__docs__"}
    for block in blocks(page):
        if block.language == "python" and not block.marker:
            exec(compile(block.code, str(block), "exec"), namespace)  # noqa: S102 (the documentation's own code)


@pytest.mark.parametrize("block", [b for b in ALL if b.language == "toml" and not b.marker], ids=str)
def test_the_experiment_files_run_until_they_would_compile(block, workspace, monkeypatch):
    monkeypatch.setattr(train, "compile_programs", _accept)
    study = workspace / "study.toml"
    study.write_text(block.code)
    _run_until_compiling(["run", str(study), "--no-progress", "--out", str(workspace / "out")])


@pytest.mark.parametrize("block", [b for b in ALL if b.language == "bash" and not b.marker], ids=str)
def test_the_shell_commands_parse_and_runs_go_as_far_as_compiling(block, workspace, monkeypatch):
    monkeypatch.setattr(train, "compile_programs", _accept)
    for command in _commands(block):
        argv = command[3:]
        cli.build_parser().parse_args(argv)  # exits (status 2) on an unknown flag or a bad choice
        if argv[:1] == ["run"] and not any(flag in argv for flag in PARSED_ONLY):
            _run_until_compiling([*argv, "--no-progress", "--out", str(workspace / "out" / str(len(argv)))])
