"""``python -m bench``: the command line (``bench.cli``), with Ctrl-C said in one line at any moment, status 130
(``bench.interrupts``)."""

from bench import interrupts

interrupts.listen_quietly()  # before any other import: one interrupted half way is not resumed

import sys  # noqa: E402

from bench.cli import exit_quickly, main  # noqa: E402
from bench.collector import collect_rarely  # noqa: E402

if interrupts.seen():
    print("bench: interrupted before it started; nothing was written", file=sys.stderr)
    exit_quickly(130)
interrupts.listen()
collect_rarely()
try:
    code = main()
except KeyboardInterrupt:
    interrupts.handled()
    print("bench: interrupted; files already written are whole (each is written atomically), rerun the command to "
          "finish", file=sys.stderr)
    code = 130
finally:
    interrupts.handled()  # nothing is raised while the last line is said
if interrupts.seen() and code == 0:  # a Ctrl-C that something on the way swallowed, then too late to raise
    print("bench: interrupted; what finished is saved, rerun the command to finish", file=sys.stderr)
    code = 130
exit_quickly(code)
