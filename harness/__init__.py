"""Differential testing harness for a PyTorch binary classifier and its Burn port."""

__version__ = "0.1.0"
