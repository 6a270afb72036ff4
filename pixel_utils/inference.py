"""Running a trained model on images."""

from __future__ import annotations

import numpy as np
import torch

from .images import to_numpy, to_tensor


def pick_device(preferred: str | None = None) -> torch.device:
    """``preferred`` if given, else CUDA, else Apple MPS, else CPU."""
    if preferred:
        return torch.device(preferred)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@torch.no_grad()
def sharpen(model: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    """Sharpen one HWC float image with ``model`` (on the model's device); returns HWC."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = model(to_tensor(image).to(device))
    model.train(was_training)
    return to_numpy(out)
