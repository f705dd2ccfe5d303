"""Benchmarks: Dice parity of every backend against PyTorch/MMSeg, and latency per backend,
precision, batch size and input size, with machine descriptions, tables and plots."""
