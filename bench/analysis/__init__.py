"""Statistics over the tidy results table (what its columns mean: ``columns``): summaries with intervals
(``stats``), verdicts after picking the best (``verdicts``, ``compare``; none within the Monte Carlo error of
the null's draws: ``monte_carlo``), across tasks (``aggregate``), the test
set's and the data order's shares of the spread (``outcomes``, ``crossed``), the procedure's own error rates
(``calibrate``), and signal propagation at initialization (``diagnose``)."""
