"""Running a trained model on images."""

from __future__ import annotations

import numpy as np
import torch

from pixel_utils.data.images import to_numpy, to_tensor
from pixel_utils.models.networks import pad_image_to_stride


def pick_device(preferred: str | None = None) -> torch.device:
    """``preferred`` if given, else CUDA, else Apple MPS, else CPU."""
    if preferred:
        return torch.device(preferred)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _d4(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """One of the 8 flips/rotations of an ``N×C×H×W`` tensor."""
    return torch.rot90(x.flip(-1) if flip else x, k, (-2, -1))


def _d4_inverse(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    x = torch.rot90(x, -k, (-2, -1))
    return x.flip(-1) if flip else x


def _run(model: torch.nn.Module, x: torch.Tensor, ensemble: bool) -> torch.Tensor:
    """``model(x)``, or with ``ensemble`` the mean over the 8 flips/rotations of ``x`` of the
    model's output with the transform undone (geometric self-ensemble, ×8 the cost)."""
    if not ensemble:
        return model(x)
    total = None
    for flip in (False, True):
        for k in range(4):
            y = _d4_inverse(model(_d4(x, k, flip)), k, flip).float()
            total = y if total is None else total + y
    return total / 8


class SelfEnsemble(torch.nn.Module):
    """``model`` wrapped so that every call is its ×8 geometric self-ensemble: usable wherever
    a model is (evaluation, tiling, the CLI)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.stride = getattr(model, "stride", 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _run(self.model, x, ensemble=True)


@torch.no_grad()
def sharpen(model: torch.nn.Module, image: np.ndarray, ensemble: bool = False) -> np.ndarray:
    """Sharpen one HWC float image with ``model`` (on the model's device); returns HWC.

    ``ensemble=True`` averages the outputs for the 8 flips/rotations of the image (each
    transform undone), at 8 times the cost.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = _run(model, to_tensor(image).to(device), ensemble)
    model.train(was_training)
    return to_numpy(out)


def _blend_ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    """1-D blending weights of one tile: zero for the first quarter of the overlap next to an
    interior tile edge (where the network sees the artificial border), a raised-cosine rise
    over the next half, one inside. Edges on the image border keep full weight."""
    w = np.ones(length)
    dead, rise = overlap // 4, overlap - 2 * (overlap // 4)
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(rise) + 0.5) / rise) if rise > 0 else []
    if not at_start:
        w[:dead] = 0
        w[dead : dead + rise] = ramp
    if not at_end:
        w[length - dead :] = 0
        w[length - dead - rise : length - dead] = ramp[::-1]
    return w


def _tile_starts(size: int, tile: int, step: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, step))
    return starts + [size - tile]


@torch.no_grad()
def sharpen_tiled(
    model: torch.nn.Module,
    image: np.ndarray,
    tile: int = 512,
    overlap: int = 64,
    ensemble: bool = False,
) -> np.ndarray:
    """Sharpen an image of any size tile by tile, with memory bounded by the tile size.

    Tiles overlap by ``overlap`` pixels and are blended with smooth weights that vanish near
    interior tile edges (:func:`_blend_ramp`), so no seam shows. For a model whose receptive
    field radius is below ``overlap // 4`` the result equals whole-image inference up to float
    rounding. Models with global operations (NAFNet's channel attention pools the whole
    input) see each tile's statistics instead, which differs slightly but still shows no seam;
    with TLC (:func:`~pixel_utils.models.networks.set_test_time_window`) and tiles larger than the
    pooling window, they see local statistics that mostly agree with whole-image inference.
    ``ensemble=True`` runs each tile through the ×8 geometric self-ensemble (see :func:`sharpen`).
    """
    stride = getattr(model, "stride", 1)
    if tile % stride or overlap % stride:
        raise ValueError(f"tile and overlap must be multiples of the model stride {stride}")
    if overlap >= tile:
        raise ValueError("overlap must be smaller than the tile")
    h, w = image.shape[:2]
    # Pad to the stride as the model itself would, so every tile sits on the model's grid.
    padded = pad_image_to_stride(image, stride)
    H, W = padded.shape[:2]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = np.zeros((H, W, 3), np.float32)
    weight = np.zeros((H, W, 1), np.float32)
    tile_h, tile_w = min(tile, H), min(tile, W)
    for top in _tile_starts(H, tile_h, tile_h - overlap):
        wy = _blend_ramp(tile_h, overlap, top == 0, top + tile_h == H)
        for left in _tile_starts(W, tile_w, tile_w - overlap):
            wx = _blend_ramp(tile_w, overlap, left == 0, left + tile_w == W)
            patch = padded[top : top + tile_h, left : left + tile_w]
            result = to_numpy(_run(model, to_tensor(patch).to(device), ensemble))
            wt = (wy[:, None] * wx[None, :])[..., None].astype(np.float32)
            out[top : top + tile_h, left : left + tile_w] += result * wt
            weight[top : top + tile_h, left : left + tile_w] += wt
    model.train(was_training)
    np.maximum(weight, 1e-12, out=weight)
    out /= weight  # in place: for a 48-MP photo each full-size float copy is 0.6 GB
    return out[:h, :w]
