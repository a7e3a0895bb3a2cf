"""Naive NumPy twins of parareg kernels, for agreement tests (slow, obvious, independent)."""
