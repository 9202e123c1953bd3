"""``python -m bench``: the commands (``bench.commands``, one module each) behind one parser.

With no arguments it runs the ``default`` preset. User mistakes end with one line on
stderr and exit status 2; an interrupt with status 130.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from bench import interrupts
from bench.commands import COMMANDS
from bench.errors import Interrupted, UserError, Worded, in_python_terms


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
        sub = commands.add_parser(command.NAME, help=command.HELP, description=command.HELP,
                                  epilog="examples:\n" + "\n".join(f"  {line}" for line in command.EXAMPLES),
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        command.add_arguments(sub)
        sub.set_defaults(command_main=command.main, command_parser=sub)
    return parser


def flag_names(parser: argparse.ArgumentParser) -> Callable[[str, str | None], str]:
    """How a command names the options of a library message (``bench.errors.option``): by the flag that sets them
    (``train.lr`` -> ``--lr``, ``chunk=4`` -> ``--chunk 4``, ``fresh=True`` -> ``--fresh``, and of two switches of
    one option, ``higher_is_better=False`` -> ``--lower-is-better``); an option the command has no flag for keeps
    its Python name."""
    from bench.commands.fields import options_of_fields

    flags = {action.dest: max(action.option_strings, key=len)
             for action in parser._actions if action.option_strings}  # argparse's list of its arguments
    present = set(flags.values())
    flags.update({path: option for path, option in options_of_fields().items() if option in present})

    switches = {(action.dest, str(action.const)): max(action.option_strings, key=len) for action in parser._actions
                if action.option_strings and isinstance(action.const, bool)}  # --higher-is-better, --lower-is-better

    def name_of(name: str, value: str | None) -> str:
        if (name, value) in switches:
            return switches[(name, value)]
        flag = flags.get(name)
        if flag is None:
            return in_python_terms(name, value)
        return flag if value in (None, "True") else f"{flag} {value}"

    return name_of


def worded(error: Worded, args: argparse.Namespace | None) -> str:
    """The message of ``error`` in the words of the command that raised it."""
    parser = getattr(args, "command_parser", None)
    return error.worded(flag_names(parser)) if parser is not None else str(error)


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
    args = None
    try:
        if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
            argv = ["run", *argv]  # `python -m bench --seeds 4` runs the default preset
        args = build_parser().parse_args(argv)
        return args.command_main(args, argv)
    except UserError as error:
        print(f"bench: error: {one_line(worded(error, args))}", file=sys.stderr)
        return 2
    except Interrupted as interrupted:
        interrupts.handled()
        print(f"bench: {worded(interrupted, args)}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        interrupts.handled()
        print("bench: interrupted; files already written are whole (each is written atomically), "
              "rerun the command to finish", file=sys.stderr)
        return 130
