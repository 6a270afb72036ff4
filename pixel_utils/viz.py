"""Static figures: image grids and PSF galleries, saved as PNGs for the README and report."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np


def save_figure(fig, path: str | os.PathLike, dpi: int = 80) -> Path:
    """Save ``fig`` as PNG (parent folders created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return path


def image_grid(
    images: list[np.ndarray],
    titles: list[str] | None = None,
    ncols: int | None = None,
    size: float = 2.6,
    suptitle: str | None = None,
):
    """Show HWC images in a grid with optional titles; returns the figure."""
    n = len(images)
    ncols = ncols or n
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, image in enumerate(images):
        ax = axes.flat[i]
        ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
        if titles:
            ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def psf_gallery(kernels: dict[str, np.ndarray], size: float = 1.8):
    """Each PSF shown on a common 1:1 pixel scale (padded to the largest), brightest = white."""
    side = max(k.shape[0] for k in kernels.values())
    panels = []
    for k in kernels.values():
        o = (side - k.shape[0]) // 2
        canvas = np.zeros((side, side))
        canvas[o : o + k.shape[0], o : o + k.shape[1]] = k / k.max()
        panels.append(np.repeat(canvas[..., None], 3, axis=2))
    return image_grid(panels, list(kernels), size=size)


def training_curves(histories: dict[str, dict], smooth: int = 25):
    """Loss (moving average over ``smooth`` steps) and validation PSNR of one or more runs."""
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 3.6))
    for label, history in histories.items():
        steps, losses = np.array(history["loss"]).T if history["loss"] else ([], [])
        if len(losses) >= smooth:
            kernel = np.ones(smooth) / smooth
            losses = np.convolve(losses, kernel, mode="valid")
            steps = steps[smooth - 1 :]
        ax_loss.plot(steps, losses, label=label)
        if history["val"]:
            val = np.array(history["val"])
            ax_val.plot(val[:, 0], val[:, 1], marker="o", ms=3, label=label)
    ax_loss.set(xlabel="step", ylabel="training loss", yscale="log", title="Loss")
    ax_val.set(xlabel="step", ylabel="PSNR (dB)", title="Validation PSNR")
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def zoom(image: np.ndarray, center: tuple[float, float] = (0.5, 0.5), size: int = 96) -> np.ndarray:
    """A ``size``×``size`` crop around a relative (y, x) position, for 1:1 pixel comparisons."""
    h, w = image.shape[:2]
    size = min(size, h, w)
    top = int(np.clip(center[0] * h - size / 2, 0, h - size))
    left = int(np.clip(center[1] * w - size / 2, 0, w - size))
    return image[top : top + size, left : left + size]
