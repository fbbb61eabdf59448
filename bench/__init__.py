"""Benchmarks and the PyTorch reference implementation (not part of the installed package)."""
