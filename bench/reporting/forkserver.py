"""Imported first by the figure workers' fork server (``bench.reporting.drawing.PRELOAD``), for this one effect: the
fork server, and every worker it forks, leave Ctrl-C to the main process, which stops them. A Ctrl-C sent to the
terminal's process group reaches them all; raised in the fork server's own imports it printed a traceback after the
main process's one line.
"""

import signal

signal.signal(signal.SIGINT, signal.SIG_IGN)
