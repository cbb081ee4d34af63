"""``python -m bench``: run every benchmark, print one table, write bench/results/latest.json."""

from bench.run import main

raise SystemExit(main())
