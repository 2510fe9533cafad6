"""NAB (Numenta Anomaly Benchmark) corpus loading and scoring, reimplemented from its description."""
