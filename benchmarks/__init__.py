"""numconv's benchmarks: asv suites (bench_*.py), compare.py and startup.py."""
