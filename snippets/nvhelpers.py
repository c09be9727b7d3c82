"""Helpers that the sample notes import (snippets/ is on every block's import path)."""

import torch


def manual_batch_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """BatchNorm's normalisation over the batch dimension, written out by hand."""
    mu = x.mean(0)
    var = x.var(0, unbiased=False)
    return (x - mu) / torch.sqrt(var + eps)


def describe(t: torch.Tensor) -> str:
    return f"shape={tuple(t.shape)} mean={t.mean().item():+.4f} std={t.std(unbiased=False).item():.4f}"
