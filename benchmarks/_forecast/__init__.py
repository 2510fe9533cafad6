"""M4 data loading, the Naive2 benchmark and M4-style evaluation for benchmarks/forecast.py."""
