from bench.cli import exit_quickly, main
from bench.collector import collect_rarely

collect_rarely()
exit_quickly(main())
