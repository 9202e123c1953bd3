"""`python -m bench`: listings, a tiny end-to-end run, and one-line errors for bad input."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import bench
import initjax
from bench import cli

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args, cwd=REPO):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600
    )


def test_list_shows_every_initializer_preset_and_dataset(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for name in initjax.names(include_aliases=True) + ["default", "synthetic", "digits", "adam"]:
        assert f"  {name} " in out or f" {name}," in out or out.rstrip().endswith(name), name


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "nope"], "unknown preset 'nope'"),
        (["run", "--seeds", "0"], "--seeds must be an integer from 1 to 100,000, got 0"),
        (["run", "--epochs", "0"], "--epochs must be an integer from 1 to 1,000,000, got 0"),
        (["run", "--lr", "0"], "learning rate must be a number > 0"),
        (["run", "--lr", "inf"], "learning rate must be a number > 0"),
        (["run", "--lr", "fast"], "is not a comma-separated list of numbers"),
        (["run", "--lr", "1e-3,1e-3"], "lists a value twice"),
        (["run", "--init-scale", "logspace(0, 1, 3)"], "LOW, HIGH > 0"),
        (["run", "--initializers", "he_norml"], "did you mean he_normal"),
        (["run", "--format", "md,svg"], "unknown report format 'svg'; choose from md, tex, png, pdf, csv"),
        (["run", "--initializers", "normal(stddev=0.1"], "unclosed bracket"),
        (["run", "--initializers", "normal(sd=1)"], "bad arguments"),
        (["run", "--initializers", "he_normal,kaiming_normal"], "listed twice"),
        (["run", "--datasets", "mnst"], "unknown dataset 'mnst'"),
        (["run", "--datasets", "mine.npz"], 'a file of arrays is named npz:PATH (data = "npz:mine.npz")'),
        (["run", "--optimizer", "adamm"], "unknown optimizer"),
        (["run", "--batch-size", "100000", "--datasets", "synthetic"], "batch size"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message, capsys, tmp_path):
    assert cli.main([*args, "--out", str(tmp_path / "out")] if args[0] == "run" else args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("bench: error: ") and message in err, err
    assert not (tmp_path / "out" / "results.csv").exists()


def test_unwritable_out_is_refused_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["run", "--out", str(blocker / "sub"), "--no-progress"]) == 2
    assert "not writable" in capsys.readouterr().err


def test_subprocess_end_to_end_run_and_error(tmp_path):
    out = tmp_path / "tiny"
    done = run_cli("run", "--seeds", "2", "--epochs", "1", "--initializers", "zeros,normal(stddev=0.1)",
                   "--datasets", "synthetic", "--out", str(out), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "normal(stddev=0.1)" in done.stdout and "zeros" in done.stdout
    results = pd.read_csv(out / "results.csv")
    assert set(results.initializer) == {"zeros", "normal(stddev=0.1)"} and set(results.epoch) == {0, 1}
    assert "python -m bench run --seeds 2" in (out / "report.md").read_text()
    assert "leaked" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr  # workers stopped

    failed = run_cli("run", "--seeds", "-3")
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert failed.stderr.strip() == "bench: error: --seeds must be an integer from 1 to 100,000, got -3"


def test_the_command_line_ends_with_every_line_written(capsys):
    """`python -m bench` skips the interpreter's teardown (cli.exit_quickly): its output to a pipe, block-buffered
    and unwritten until flushed, still comes out whole."""
    assert cli.main(["list"]) == 0
    listing = capsys.readouterr().out
    done = run_cli("list")
    assert done.returncode == 0 and done.stdout == listing


def test_python_api_returns_the_tidy_table():
    df = bench.run(seeds=2, epochs=1, initializers=["lecun_normal"], datasets=["synthetic"], progress=False).results
    assert list(df.columns[:7]) == ["experiment", "dataset", "model", "arm", "initializer", "seed", "epoch"]
    assert len(df) == 1 * 2 * 2 and df.experiment.eq("default").all()


def test_user_initializer_failing_only_on_the_models_kernels_is_named(tmp_path, monkeypatch, capsys):
    """Passes initjax.check on a 3x4 kernel, fails on the model's 20x64 one: one line naming it, status 2."""
    import types

    import jax.numpy as jnp

    module = types.ModuleType("picky_inits")
    module.small_only = lambda key, shape, dtype=jnp.float32: jnp.zeros((3, 4), dtype)
    module.raises_when_wide = lambda key, shape, dtype=jnp.float32: (
        jnp.zeros(shape, dtype) if shape[-1] < 10 else 1 / 0)
    monkeypatch.setitem(sys.modules, "picky_inits", module)
    for spec, message in [
        ("picky_inits:small_only", "gave float32[3, 4] for the parameter Dense_0/kernel of shape [20, 64]"),
        (
            "picky_inits:raises_when_wide",
            "failed on the parameter Dense_0/kernel of shape [20, 64]: ZeroDivisionError",
        ),
    ]:
        code = cli.main(["run", "--initializers", f"he_normal,{spec}", "--datasets", "synthetic", "--seeds", "1",
                         "--epochs", "1", "--out", str(tmp_path / "out"), "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and f"initializer '{spec}'" in err and message in err, err
    assert not (tmp_path / "out" / "results.csv").exists()


def test_every_option_of_every_command_says_what_it_does():
    parser = cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices
    missing = [f"{name} {action.option_strings or action.dest}" for name, sub in commands.items()
               for action in sub._actions if action.dest != "help" and not (action.help or "").strip()]
    assert not missing, missing
    run_help = commands["run"].format_help()
    for option in ("--seeds", "--epochs", "--lr", "--optimizer", "--batch-size", "--model", "--activation"):
        assert option in run_help
    assert run_help.count("in default)") >= 8  # the default preset's value of each preset-set option


def test_list_names_the_activations():
    from bench import models
    from bench.commands.listing import listing

    text = listing()
    line = next(line for line in text.splitlines() if line.startswith("activations"))
    assert all(name in line for name in models.ACTIVATIONS)


def test_every_commands_help_ends_with_examples_that_parse():
    from bench.cli import COMMANDS, build_parser

    parser = build_parser()
    for command in COMMANDS:
        assert command.EXAMPLES, command.NAME
        for example in command.EXAMPLES:
            words = example.split(">")[0].split()  # a shell redirection is not the command's
            assert words[:4] == ["python", "-m", "bench", command.NAME], example
            args = parser.parse_args(words[3:])
            assert args.command == command.NAME, example
        assert args.command_parser.format_help().rstrip().endswith(
            "examples:\n" + "\n".join(f"  {line}" for line in command.EXAMPLES)), command.NAME


def test_list_shows_every_registry_the_docs_name():
    """Each registry under its heading, every name of it on a line of its own (or the optimizers' one line)."""
    from bench import reproductions
    from bench.commands.listing import listing
    from bench.models import losses
    from bench.training import recipes
    from initjax.parameterization import PARAMETERIZATIONS

    text = listing()
    headings = [line.split(" (")[0].rstrip(":") for line in text.splitlines() if not line.startswith(" ")]
    for heading, names in (("parameterizations", PARAMETERIZATIONS), ("losses", losses.LOSSES),
                           ("schedules", recipes.SCHEDULES), ("reproductions", reproductions.names())):
        assert heading in headings, headings
        block = text.split(f"\n{heading} (")[1].split("\n")[1:1 + len(names)]
        assert [line.split()[0] for line in block] == list(names), (heading, block)
    assert {"sp", "ntk", "mup", "depth_mup"} <= set(PARAMETERIZATIONS)
    optimizers = next(line for line in text.splitlines() if line.startswith("optimizers:"))
    assert optimizers == f"optimizers: {', '.join(recipes.OPTIMIZERS)}"


def test_showing_progress_changes_no_number(tmp_path, monkeypatch):
    """The step callback is compiled in whether the bar is shown or not: the same program, byte-identical results
    (with it only when shown, XLA fused the epoch differently and the last bits moved). Without --out a run writes
    runs/<preset>, never the committed reports/."""
    monkeypatch.chdir(tmp_path)
    run = ["run", "default", "--smoke", "--epochs", "2", "--datasets", "synthetic", "--format", "md,csv"]
    assert cli.main([*run, "--out", str(tmp_path / "shown")]) == 0
    assert cli.main([*run, "--no-progress"]) == 0
    quiet = tmp_path / "runs" / "default-smoke"
    assert (tmp_path / "shown" / "results.csv").read_bytes() == (quiet / "results.csv").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["progress", "runs", "shown"]  # progress: this test's cache


HEAVY = ("jax", "flax", "optax", "pandas", "scipy", "sklearn", "matplotlib", "tensorflow_datasets", "tensorflow")


@pytest.mark.parametrize(("argv", "allowed"), [
    (["--help"], ()),                    # argparse alone
    (["run", "--help"], ()),
    (["list"], ("jax", "flax", "optax")),  # the initializers, models and optimizers are listed from their registries
])
def test_help_and_list_import_nothing_they_do_not_need(argv, allowed):
    code = ("import sys\nfrom bench.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            f"print('imported:', ','.join(m for m in {HEAVY!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=REPO, check=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    imported = proc.stdout.rsplit("imported:", 1)[1].split()
    assert set(",".join(imported).split(",")) - {""} <= set(allowed), imported


@pytest.mark.parametrize("argv, keywords", [
    (["--seeds", "4", "--epochs", "2", "--data-seeds", "2"], dict(seeds=4, epochs=2, data_seeds=2)),
    (["--lr", "0.01"], dict(lr="0.01")),
    (["--lr", "1e-3,1e-2", "--weight-decay", "0.1"], dict(lr="1e-3,1e-2", weight_decay="0.1")),
    (["--momentum", "0.9", "--init-scale", "0.5,2"], dict(momentum="0.9", init_scale="0.5,2")),
    (["--model", "resmlp", "--hidden", "32,32", "--activation", "tanh"],
     dict(model="resmlp", hidden=[32, 32], activation="tanh")),
    (["--datasets", "digits,mnist", "--model", "mlp"], dict(datasets=["digits", "mnist"], model="mlp")),
    (["--initializers", "he_normal,normal(stddev=0.1)", "--optimizer", "adamw(b2=0.95)", "--batch-size", "64",
      "--experiment-seed", "7"], dict(initializers=["he_normal", "normal(stddev=0.1)"], optimizer="adamw(b2=0.95)",
                                      batch_size=64, seed=7)),
])
@pytest.mark.parametrize("preset", ["default", "lr-sensitivity"])
def test_each_short_option_sets_the_field_the_python_keyword_sets(argv, keywords, preset):
    """The short options go through --set's path (``bench.commands.fields``); the Python API's keywords
    (``Experiment.override``) give the same experiment, a preset's own grid included."""
    from bench.commands import fields
    from bench.experiments import presets

    args = cli.build_parser().parse_args(["run", preset, *argv])
    assert fields.apply(presets.get(preset), args) == presets.get(preset).override(**keywords)


@pytest.mark.parametrize(
    "argv, keywords, on_the_command_line, in_python",
    [
        (["--seeds", "0"], {"seeds": 0}, "--seeds must be an integer", "seeds must be an integer"),
        (["--experiment-seed", "-1"], {"seed": -1}, "--experiment-seed must be", "seed must be"),
        (["--epochs", "0"], {"epochs": 0}, "--epochs must be", "train.epochs must be"),
        (["--momentum", "0.5,0.5"], {"momentum": "0.5,0.5"}, "--momentum lists a value twice",
         "grid.momentum lists a value twice"),
        (["--chunk", "0"], {"chunk": 0}, "--chunk must be >= 1 seed", "chunk must be >= 1 seed"),
        (["--model", "resmlp", "--hidden", "3,4"], {"model": "resmlp", "hidden": (3, 4)},
         "(e.g. --hidden 64,64,64,64,64,64,64,64)", "(e.g. hidden=64,64,64,64,64,64,64,64)"),
    ],
)
def test_a_library_error_names_the_flag_on_the_command_line_and_the_field_in_python(
        argv, keywords, on_the_command_line, in_python, capsys, tmp_path):
    """The library names fields and arguments (bench.errors.option); only the command line turns them into flags."""
    assert cli.main(["run", *argv, "--out", str(tmp_path / "cli")]) == 2
    assert on_the_command_line in capsys.readouterr().err
    from bench.errors import UserError

    with pytest.raises(UserError) as raised:
        bench.run("default", out=tmp_path / "py", **keywords)
    assert in_python in str(raised.value) and "--" not in str(raised.value), str(raised.value)


def test_a_wrapped_library_error_still_names_flags_and_no_library_message_names_one():
    from bench.errors import UserError, option

    inner = UserError(f"{option('chunk', 4)} needs more memory; rerun with {option('fresh', True)}")
    outer = UserError(f"task digits: {inner}")
    assert str(outer) == "task digits: chunk=4 needs more memory; rerun with fresh=True"
    assert cli.worded(outer, cli.build_parser().parse_args(["run"])) == \
        "task digits: --chunk 4 needs more memory; rerun with --fresh"
    library, flagged = Path(bench.__file__).parent, []
    for path in library.rglob("*.py"):
        if path.parent.name == "commands" or path.name in ("cli.py", "__main__.py"):
            continue
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            called = getattr(node, "func", None)
            raised = isinstance(node, ast.Call) and getattr(called, "id", getattr(called, "attr", None)) in (
                "UserError", "Interrupted")
            if raised and re.search(r"(?<![\w-])--[a-z]", ast.get_source_segment(source, node)):
                flagged.append(f"{path.relative_to(library)}:{node.lineno}")
    assert not flagged, f"library messages that name a command-line flag (use bench.errors.option): {flagged}"
