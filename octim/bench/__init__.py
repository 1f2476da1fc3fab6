"""``octim-bench``, the load tester (see octim/bench/cli.py and bench/README.md)."""
