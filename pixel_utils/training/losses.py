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


def psnr_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Minus the PSNR of each image of the batch (peak 1), averaged: the benchmark's own
    measure, as NAFNet trains with. Every image counts in decibels, so a nearly sharp patch's
    small error weighs as much as a heavily blurred patch's large one (the squared error lets
    the large ones dominate)."""
    per_image = (pred - target).pow(2).flatten(1).mean(dim=1)
    return 10 * torch.log10(per_image + eps).mean()


RECONSTRUCTION_LOSSES = {"charbonnier": charbonnier, "l1": l1, "mse": mse, "psnr": psnr_loss}
