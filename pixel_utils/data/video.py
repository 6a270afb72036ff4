"""Synthetic video with ground truth: a virtual camera pans and shakes over a still photo.

The camera's path is a steady pan plus hand tremor (a few random sinusoids between
``shake_hz``). The shutter is open for ``exposure`` of each frame interval; the photo is
sampled at ``samples`` camera positions during that time and the samples are averaged **in
linear light** (as a sensor integrates photons), then encoded back to sRGB, given Gaussian
sensor noise and quantised to 8 bits. The per-frame blur kernel is therefore exactly the
camera's path during the exposure: straight while panning, curved when the hand trembles, and
different in every frame. The sharp ground-truth frame is the photo seen from the exposure's
centroid, which is put on a whole pixel so that the sharp frame needs no interpolation and is
aligned with the blurred one.

Everything is drawn from one ``numpy.random.Generator``: the same seed gives the same bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pixel_utils.data.degradations import linear_to_srgb, srgb_to_linear
from pixel_utils.data.images import to_uint8


@dataclass(frozen=True)
class CameraMotion:
    """The virtual camera: frame rate, shutter, pan and tremor (in pixels of the photo)."""

    fps: float = 24.0
    exposure: float = 0.5  # share of the frame interval the shutter is open (a 180° shutter)
    pan_px_per_frame: float = 3.0
    shake_px: float = 4.0  # amplitude of each tremor component
    shake_hz: tuple[float, float] = (2.0, 9.0)
    shake_components: int = 3
    samples: int = 24  # camera positions averaged per exposure
    noise: float = 0.01  # sensor noise, standard deviation in sRGB [0, 1]


@dataclass
class Clip:
    """A synthetic clip: blurred and sharp frames (``T×H×W×3`` uint8) and the known motion.

    ``origins[t]`` is the (row, column) of frame ``t``'s top-left corner in the photo at
    mid-exposure: the content of frame ``t`` sits at ``origins[t-1] - origins[t]`` from where it
    was in frame ``t-1``.
    """

    name: str
    blurred: np.ndarray
    sharp: np.ndarray
    origins: np.ndarray
    fps: float
    path: np.ndarray | None = None  # the camera's positions, frames × samples × 2 (rows, cols)

    def __len__(self) -> int:
        return len(self.blurred)

    @property
    def shifts(self) -> np.ndarray:
        """Per-frame displacement of the content (rows, columns) since the previous frame."""
        d = np.zeros_like(self.origins, dtype=np.float64)
        d[1:] = self.origins[:-1] - self.origins[1:]
        return d


def camera_path(frames: int, motion: CameraMotion, rng: np.random.Generator) -> np.ndarray:
    """Camera positions (row, column) in pixels, ``frames × samples × 2``: sample ``s`` of frame
    ``t`` is taken at time ``(t + exposure·((s + ½)/samples − ½)) / fps``."""
    frac = motion.exposure * ((np.arange(motion.samples) + 0.5) / motion.samples - 0.5)
    t = (np.arange(frames)[:, None] + frac[None, :]) / motion.fps  # seconds
    angle = rng.uniform(0, 2 * math.pi)
    speed = motion.pan_px_per_frame * motion.fps  # px / s
    path = np.stack([speed * t * math.sin(angle), speed * t * math.cos(angle)], axis=-1)
    low, high = motion.shake_hz
    for _ in range(motion.shake_components):
        freq = rng.uniform(low, high, size=2)
        phase = rng.uniform(0, 2 * math.pi, size=2)
        amp = motion.shake_px * rng.uniform(0.3, 1.0, size=2)
        path = path + amp * np.sin(2 * math.pi * freq * t[..., None] + phase)
    return path


def _render(linear: np.ndarray, top_left: np.ndarray, offsets: np.ndarray, size) -> np.ndarray:
    """Mean of the ``size`` windows of ``linear`` at ``top_left + offsets`` (fractional offsets
    bilinearly: each sample spreads over its four neighbouring whole-pixel windows)."""
    h, w = size
    taps: dict[tuple[int, int], float] = {}
    base = np.floor(offsets).astype(int)
    frac = offsets - base
    for (dy, dx), (fy, fx) in zip(base, frac, strict=True):
        for ey, ex, weight in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx),
                               (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):  # fmt: skip
            if weight > 0:
                key = (int(dy + ey), int(dx + ex))
                taps[key] = taps.get(key, 0.0) + weight / len(offsets)
    out = np.zeros((h, w, 3), np.float64)
    y0, x0 = top_left
    for (dy, dx), weight in sorted(taps.items()):
        out += weight * linear[y0 + dy : y0 + dy + h, x0 + dx : x0 + dx + w]
    return out


def make_clip(
    photo: np.ndarray,
    frames: int,
    size: tuple[int, int],
    rng: np.random.Generator,
    motion: CameraMotion | None = None,
    name: str = "clip",
) -> Clip:
    """A ``frames``-long clip of ``size`` (rows, columns) filmed over ``photo`` (HWC float in
    [0, 1]). The pan is slowed if the photo is too small to hold it; a photo smaller than the
    frame plus the tremor is a ``ValueError``."""
    motion = motion or CameraMotion()
    h, w = size
    path = camera_path(frames, motion, rng)
    # Each exposure is nudged (by under half a pixel) so that its centroid, the position the
    # blurred frame is centred on, falls on a whole pixel: the sharp frame is then an exact crop,
    # aligned with the blurred one. (A half-pixel misalignment alone costs about 1 dB, and no
    # deblurring method can undo it.)
    mid = np.round(path.mean(axis=1)).astype(int)
    path = path - path.mean(axis=1, keepdims=True) + mid[:, None, :]
    lo = np.floor(path.min(axis=(0, 1))).astype(int) - 1
    hi = np.ceil(path.max(axis=(0, 1))).astype(int) + 2
    room = np.array(photo.shape[:2]) - np.array([h, w]) - (hi - lo)
    if (room < 0).any():
        shrink = np.array(photo.shape[:2]) - np.array([h, w])
        raise ValueError(
            f"{name}: a {photo.shape[0]}×{photo.shape[1]} photo cannot hold a {h}×{w} frame "
            f"moving {hi - lo} px (room {shrink}); use a smaller frame, fewer frames or a "
            "slower pan"
        )
    start = lo * -1 + room // 2  # centre the path's bounding box in the photo
    linear = srgb_to_linear(photo.astype(np.float64))
    blurred = np.empty((frames, h, w, 3), np.uint8)
    sharp = np.empty((frames, h, w, 3), np.uint8)
    for t in range(frames):
        top_left = start + mid[t]
        exposure = _render(linear, top_left, path[t] - mid[t], size)
        noisy = linear_to_srgb(exposure) + rng.normal(0, motion.noise, exposure.shape)
        blurred[t] = to_uint8(np.clip(noisy, 0, 1))
        sharp[t] = to_uint8(photo[top_left[0] : top_left[0] + h, top_left[1] : top_left[1] + w])
    return Clip(name, blurred, sharp, start + mid, motion.fps, path)


def fit_pan(photo_shape, size, frames: int, motion: CameraMotion) -> CameraMotion:
    """``motion`` with its pan slowed, if needed, so that ``frames`` frames of ``size`` fit in a
    photo of ``photo_shape`` whatever the pan's direction (tremor and kernel margin kept)."""
    room = min(photo_shape[0] - size[0], photo_shape[1] - size[1]) - 4 * motion.shake_px - 8
    if room <= 0:
        return motion
    speed = min(motion.pan_px_per_frame, room / max(frames, 1))
    return CameraMotion(**{**motion.__dict__, "pan_px_per_frame": speed})
