"""The commands of ``python -m bench``, one module each: ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``main(args, argv) -> exit status``. ``bench.cli`` builds the parser from this list and dispatches to the command
chosen; a new command is one module and one entry here.

Each command imports what it needs when it runs, so ``python -m bench list`` or ``--help`` does not import JAX.
"""

from bench.commands import (
    analyze,
    calibrate,
    coordcheck,
    diagnose,
    listing,
    perf,
    report,
    reproduce,
    run,
    show,
    status,
)

COMMANDS = (run, status, report, analyze, calibrate, perf, diagnose, coordcheck, reproduce, listing, show)
