"""Reconstruction losses (and, in the distillation notebook, the distillation terms)."""

from __future__ import annotations

import torch


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """A smooth L1: sqrt((pred - target)² + eps²), averaged. Robust like L1, differentiable at 0."""
    return torch.sqrt((pred - target).pow(2) + eps**2).mean() - eps


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred - target).abs().mean()


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The squared error, averaged: what PSNR measures. It weighs large errors (heavily blurred
    patches) more than the robust losses do, and less the small ones of sharp patches."""
    return (pred - target).pow(2).mean()


RECONSTRUCTION_LOSSES = {"charbonnier": charbonnier, "l1": l1, "mse": mse}
