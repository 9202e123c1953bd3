from bench.cli import exit_quickly, main

exit_quickly(main())
