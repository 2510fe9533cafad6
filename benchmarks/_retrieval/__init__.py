"""Helpers of benchmarks/retrieval.py and benchmarks/embedding_parity.py."""
