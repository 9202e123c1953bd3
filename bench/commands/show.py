"""``python -m bench show``: print a preset as an experiment file (TOML) to copy and edit."""

from __future__ import annotations

import argparse

from bench.commands.arguments import add_assignments

NAME = "show"
HELP = "print a preset as an experiment file (TOML) to copy and edit"
EXAMPLES = ("python -m bench show default > my_study.toml",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("preset", help="preset name or experiment file")
    add_assignments(parser, "set a field first, as with run")


def main(args: argparse.Namespace, argv: list[str]) -> int:
    from bench.experiments import experiment_file, presets

    if not args.assignments and not presets.is_experiment_file(args.preset):
        print(presets.preset_file(args.preset).read_text(), end="")  # the shipped file itself
    else:
        print(experiment_file.dump(presets.resolve(args.preset, args.assignments)), end="")
    return 0
