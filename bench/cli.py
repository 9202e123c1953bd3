"""``python -m bench``: the commands (``bench.commands``, one module each) behind one parser.

With no arguments it runs the ``default`` preset. User mistakes end with one line on
stderr and exit status 2; an interrupt with status 130.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from bench import interrupts
from bench.commands import COMMANDS
from bench.errors import Interrupted, UserError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2."""

    def error(self, message: str):
        raise UserError(f"{message} (see `python -m {self.prog.split()[0]} --help`)")


def one_line(text: str) -> str:
    """``text`` with every non-printable character (newlines a user typed, tabs, ...) escaped: one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def build_parser() -> argparse.ArgumentParser:
    """One subcommand per module of ``bench.commands``."""
    parser = _Parser(
        prog="bench", description="Compare weight initializers over many seeds, with confidence intervals."
    )
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    for command in COMMANDS:
        sub = commands.add_parser(command.NAME, help=command.HELP)
        command.add_arguments(sub)
        sub.set_defaults(command_main=command.main)
    return parser


def exit_quickly(code: int) -> NoReturn:
    """Ends ``python -m bench`` with ``code`` once :func:`main` has returned, without the interpreter's teardown.

    Deallocating the modules of jax, flax, scipy and pandas one by one takes 0.6 s at the end of
    every command, and frees nothing the OS would not free at once. Everything is written by
    then (each file atomically, and closed); the figure workers are stopped first, so their
    semaphores are released, and the output streams flushed. A multi-process JAX run exits the
    usual way: its exit handler shuts the distributed runtime down together with the other processes.
    """
    jax = sys.modules.get("jax")
    if jax is not None and jax.distributed.is_initialized():
        sys.exit(code)
    if "bench.reporting.drawing" in sys.modules:
        sys.modules["bench.reporting.drawing"].stop()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe (`python -m bench | head`): Python's own status for it
        code = code or 120
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
            argv = ["run", *argv]  # `python -m bench --seeds 4` runs the default preset
        args = build_parser().parse_args(argv)
        return args.command_main(args, argv)
    except UserError as error:
        print(f"bench: error: {one_line(str(error))}", file=sys.stderr)
        return 2
    except Interrupted as interrupted:
        interrupts.handled()
        print(f"bench: {interrupted}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        interrupts.handled()
        print("bench: interrupted; files already written are whole (each is written atomically), "
              "rerun the command to finish", file=sys.stderr)
        return 130
