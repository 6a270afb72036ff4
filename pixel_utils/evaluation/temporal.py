"""Temporal consistency: how much a video sharpener flickers, and two ways to make it steadier.

**Flicker.** Restoring frames one by one makes independent errors in each; they change from
frame to frame and show as shimmer even where each frame alone looks fine. With ground truth and
the known camera motion ``W`` we measure it directly: the *temporal error* is the RMS of
``(o_t - W(o_{t-1})) - (g_t - W(g_{t-1}))`` in 8-bit levels, the frame-to-frame change of the
error along the motion (:func:`temporal_error`); 0 is perfect.

**Motion.** The camera's motion between frames is estimated by phase correlation
(:func:`skimage.registration.phase_cross_correlation`, under a Hann window) on a 4× downscaled
grey frame, then refined twice at full resolution on a window of it, to whole pixels: exact on
every frame pair of blurred, noisy synthetic clips over the training and validation photos
(:func:`estimate_shift`). The networks are trained with the same estimate.
:func:`shift_frame` moves a frame by it.

**Two temporal methods** (both frame functions for :func:`pixel_utils.app.video.sharpen_video`):

* :class:`AlignedBlend`: a recurrent blend, ``y_t = s_t + g·(warp(y_{t-1}) - s_t)``: the
  per-frame result ``s_t`` is pulled towards the previous *output* aligned to this frame, with a
  gate ``g`` that closes where the aligned previous *input* disagrees with this input
  (occlusion, new content at the border, a wrong motion estimate), so nothing ghosts.
* :class:`TwoFrameSharpener`: a student that sees the previous input frame, aligned, next to
  the current one (:class:`~pixel_utils.models.networks.TwoFrameStudent`), distilled from the
  teacher in notebook 06.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import uniform_filter1d
from skimage.filters import window
from skimage.registration import phase_cross_correlation

from pixel_utils.evaluation.metrics import psnr, ssim


def _grey_small(frame: np.ndarray, factor: int = 4) -> np.ndarray:
    """The mean of each ``factor``×``factor`` block over the three channels (float32).

    Integer block sums, rows then columns, in numpy: 8× faster at 720p than torch's pooling,
    and no torch thread pool on the video decoding thread that runs it. The sums add whole
    slices, one row (then one column and channel) of each block at a time, instead of
    reducing over a short strided axis: the same sums, 1.65 → 0.67 ms for a 720p frame and
    0.86 → 0.11 ms for the motion estimate's 256-pixel windows."""
    h, w = (frame.shape[0] // factor) * factor, (frame.shape[1] // factor) * factor
    depth = np.uint16 if 3 * factor * factor * 255 < 2**16 else np.uint32
    x = frame[:h, :w].reshape(h // factor, factor, w * 3)
    rows = x[:, 0].astype(depth)
    for k in range(1, factor):
        rows += x[:, k]
    columns = rows.reshape(h // factor, w // factor, factor * 3)
    blocks = columns[..., 0].copy()
    for k in range(1, factor * 3):
        blocks += columns[..., k]
    return blocks.astype(np.float32) / np.float32(3 * factor * factor)


def estimate_shift(
    previous: np.ndarray, current: np.ndarray, factor: int = 4, crop: int = 256
) -> tuple[int, int]:
    """Whole-pixel (rows, columns) displacement of the content from ``previous`` to ``current``
    (HWC frames), in steps of phase correlation: at 1/``factor`` resolution over the whole
    frame (cheap, and it sees large motion), then twice at full resolution on a ``crop``-pixel
    window of where the frames then overlap, which fixes the last pixels.

    Every step correlates the grey images with their mean removed under a Hann window. Why:
    without it the frame's edges, which do not wrap around, add a broad ridge to the (circular)
    correlation that pulls its peak towards zero shift, and one frame pair in five came back a
    pixel or more short. Measured on blurred, noisy synthetic clips (:func:`make_clip`, 12
    frames over each training and validation photo, never the test photos): whole-pixel exact
    on all 121 frame pairs at 192×256 and all 143 at 720p, against 84% and 75% with the
    earlier unwindowed, single refinement (the window alone: 97.5% and 99.3%). The correlation
    is not whitened (``normalization=None``): on those clips whitening the spectrum amplified
    the noise and was exact on only 20–50% of the pairs. About 11 ms at 720p."""
    small_prev, small_cur = _grey_small(previous, factor), _grey_small(current, factor)
    if min(small_prev.shape) < 8:
        factor = 1
        small_prev, small_cur = _grey_small(previous, 1), _grey_small(current, 1)
    coarse = _correlate(small_cur, small_prev)
    dy, dx = int(round(coarse[0] * factor)), int(round(coarse[1] * factor))
    h, w = previous.shape[:2]
    if factor == 1:
        return dy, dx
    # Refine at full resolution, twice: the second window starts from the first's answer, so
    # it overlaps its partner fully even where the coarse estimate was a few pixels off.
    for _ in range(2):
        rows, cols = min(crop, h - abs(dy)), min(crop, w - abs(dx))
        if min(rows, cols) < 8:
            break
        # The window sits near the middle of the overlap: previous[top, left] shows what
        # current[top + dy, left + dx] shows, if the estimate so far is right.
        top = int(np.clip((h - rows - dy) // 2, max(0, -dy), h - rows - max(dy, 0)))
        left = int(np.clip((w - cols - dx) // 2, max(0, -dx), w - cols - max(dx, 0)))
        before = _grey_small(previous[top : top + rows, left : left + cols], 1)
        after = _grey_small(current[top + dy : top + dy + rows, left + dx : left + dx + cols], 1)
        fine = _correlate(after, before)
        if not fine.any():
            break
        dy, dx = dy + int(round(fine[0])), dx + int(round(fine[1]))
    return dy, dx


def _correlate(reference: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """The whole-pixel (rows, columns) shift that registers grey ``moving`` onto
    ``reference``: phase correlation of the two with their means removed, under a Hann
    window. Not refined below a pixel: skimage's sub-pixel step multiplies matrices, and
    OpenBLAS's threads for that competed with the model for the cores (720p end to end with
    the blend: 13 instead of 18 fps)."""
    taper = _hann(reference.shape)
    reference = (reference - reference.mean()) * taper
    moving = (moving - moving.mean()) * taper
    if not reference.any() or not moving.any():  # a flat frame (a fade from black) holds no
        return np.zeros(2)  # motion to measure, and skimage would warn into the progress bar
    shift, _, _ = phase_cross_correlation(reference, moving, normalization=None)
    return shift


@functools.lru_cache(maxsize=8)
def _hann(shape: tuple[int, int]) -> np.ndarray:
    """A 2-D Hann window of ``shape`` (float32; the same for every frame of a clip)."""
    taper = window("hann", shape).astype(np.float32)
    taper.flags.writeable = False
    return taper


def shift_frame(frame: np.ndarray, dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """``frame`` moved by (``dy``, ``dx``) whole pixels, the uncovered border filled by
    replicating the edge; and a ``H×W`` mask, True where the moved frame has real content."""
    h, w = frame.shape[:2]
    dy, dx = int(dy), int(dx)
    valid = np.zeros((h, w), bool)
    valid[max(dy, 0) : max(h + min(dy, 0), 0), max(dx, 0) : max(w + min(dx, 0), 0)] = True
    # A shift past the frame moves the same edge row (column) in everywhere as one of size - 1.
    dy, dx = int(np.clip(dy, 1 - h, h - 1)), int(np.clip(dx, 1 - w, w - 1))
    # The part that stays in view, then edge-replicated borders: slicing and np.pad copy
    # whole rows, several times faster at 720p than gathering every pixel by index.
    kept = frame[max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)]
    pad = ((max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0))) + ((0, 0),) * (frame.ndim - 2)
    return np.pad(kept, pad, mode="edge"), valid


def _box_mean(values: np.ndarray, size: int, largest: int | None = None) -> np.ndarray:
    """Mean of ``values`` (``H×W`` non-negative integers) over a ``size``×``size`` window
    centred on each pixel, counting only the pixels inside the image (torch's
    ``count_include_pad=False``): the window's integer sum, exact, divided by the number of its
    pixels inside. The sums slide along rows, then columns, over a zero border; 4× faster at
    720p than scipy's float ``uniform_filter``, which the blend's gate spent 7 ms of its 12 in.
    Where ``largest`` (a bound on the values) keeps every window's sum under 2¹⁶, the sums run
    in 16 bits: the same sums with half the memory traffic (720p: 2.3 instead of 7.8 ms).
    """
    half = size // 2
    narrow = largest is not None and largest * size * size < 2**16
    padded = np.pad(values.astype(np.uint16 if narrow else np.int32, copy=False), half)
    h, w = values.shape
    rows = padded[:h].copy()
    for k in range(1, size):
        rows += padded[k : k + h]
    sums = rows[:, :w].copy()
    for k in range(1, size):
        sums += rows[:, k : k + w]
    mean = sums.astype(np.float32)
    mean /= _window_share_inside(values.shape, size)
    mean /= np.float32(size * size)
    return mean


@functools.lru_cache(maxsize=4)
def _window_share_inside(shape: tuple[int, int], size: int) -> np.ndarray:
    """For each pixel, the share of its ``size``×``size`` window inside a ``shape`` image (the
    same for every frame of a clip: computed once)."""
    inside = [uniform_filter1d(np.ones(n, np.float32), size, mode="constant") for n in shape]
    share = np.outer(*inside)
    share.flags.writeable = False
    return share


@dataclass(frozen=True)
class _Alignment:
    """What the input side hands the output side for one frame: the shift that aligns the
    previous output to it, and the ``H×W×1`` blend weights."""

    dy: int
    dx: int
    weights: np.ndarray


class AlignedBlend:
    """Recurrent temporal blend around a per-frame frame function ``per_frame``.

    ``strength`` is the blend weight where the aligned inputs agree; the gate falls as
    ``exp(-(d / tolerance)²)`` with ``d`` the mean absolute difference (8-bit levels) between
    this input and the aligned previous input over a 5×5 neighbourhood. ``shifts`` (per frame,
    content displacement since the previous frame) replaces the estimate with known motion.
    Call :meth:`reset` between clips. The defaults (0.7, 12 levels) were chosen on the
    validation photos' clips (``rocket``, ``coins``), never on the test photos: the best PSNR of
    the grid strength ∈ {0.5, 0.7, 0.85} × tolerance ∈ {4, 12, 20}.

    The blend has an input side (:meth:`align`: the motion and the gate, from the inputs alone)
    and an output side (:meth:`blend`: the recurrence on outputs). Called, it runs both in turn;
    :meth:`staged` hands them to :func:`~pixel_utils.app.video.sharpen_video`'s decoding and
    encoding threads, so the model's thread runs only the model. Both sides are numpy: torch's
    thread pool on those threads would compete with the model's for the cores.
    """

    def __init__(
        self,
        per_frame: Callable[[np.ndarray], np.ndarray],
        strength: float = 0.7,
        tolerance: float = 12.0,
        shifts: np.ndarray | None = None,
    ):
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength {strength}: a blend weight, between 0 and 1")
        self.per_frame, self.strength, self.tolerance = per_frame, strength, tolerance
        self.shifts = shifts
        self.reset()

    def reset(self) -> None:
        self.previous_input = self.previous_output = None
        self.index = 0

    def gate(self, current: np.ndarray, aligned_previous: np.ndarray, valid) -> np.ndarray:
        """``H×W×1`` float32 blend weights from uint8 ``H×W×3`` frames."""
        channels = current.shape[2]
        diff = np.maximum(current, aligned_previous)
        diff -= np.minimum(current, aligned_previous)
        # Channel by channel in uint16: numpy's sum over the last axis of 3 runs ~8× slower.
        total = diff[..., 0].astype(np.uint16)
        for c in range(1, channels):
            total += diff[..., c]
        # In place from here, the same operations in the same order: every new 720p array is
        # memory the kernel must hand over page by page (13.5 → 6.8 ms, the same weights).
        weight = _box_mean(total, 5, largest=255 * channels)
        weight /= np.float32(channels)
        weight /= np.float32(self.tolerance)
        np.square(weight, out=weight)
        np.negative(weight, out=weight)
        np.exp(weight, out=weight)
        weight *= np.float32(self.strength)
        weight *= valid
        return weight[..., None]

    def align(self, frame: np.ndarray) -> _Alignment | None:
        """The input side, in frame order: how this frame moved since the previous input and
        where the two agree; ``None`` for the first frame of a clip. A 16-bit frame (a 10- or
        12-bit clip) is measured on its top 8 bits: the motion and the gate's tolerance are in
        8-bit levels."""
        if frame.dtype == np.uint16:
            frame = (frame >> 8).astype(np.uint8)
        alignment = None
        if self.previous_input is not None:
            if self.shifts is not None:
                dy, dx = (int(round(v)) for v in self.shifts[self.index])
            else:
                dy, dx = estimate_shift(self.previous_input, frame)
            prev_in, valid = shift_frame(self.previous_input, dy, dx)
            alignment = _Alignment(dy, dx, self.gate(frame, prev_in, valid))
        self.previous_input = frame
        self.index += 1
        return alignment

    def blend(self, result: np.ndarray, alignment: _Alignment | None) -> np.ndarray:
        """The output side, in frame order: ``result`` pulled towards the previous output
        aligned to it, by the weights of ``alignment``."""
        if alignment is not None and self.previous_output is not None:
            prev_out, _ = shift_frame(self.previous_output, alignment.dy, alignment.dx)
            # The difference converted as it is taken, and the frame added back as it is read:
            # no float copies of either frame (720p: 12.7 → 6.6 ms; the same sums, so the
            # same bytes).
            pull = np.subtract(prev_out, result, dtype=np.float32)
            pull *= alignment.weights
            pull += result
            # A convex combination of two 8-bit (or 16-bit) images, weights in [0, 1], stays in
            # their range up to float rounding, which rint takes back onto its ends: no clip.
            result = np.rint(pull, out=pull).astype(result.dtype)
        self.previous_output = result
        return result

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        alignment = self.align(frame)
        return self.blend(self.per_frame(frame), alignment)

    def staged(self):
        """This blend as a :class:`~pixel_utils.app.video.StagedFrameFunction` (from a fresh
        start): :meth:`align` and the per-frame function's ``prepare`` on the decoding thread,
        its ``infer`` on the model's, its ``finish`` and :meth:`blend` on the encoding thread."""
        from pixel_utils.app.video import staged_around

        self.reset()
        # The state lives in align and blend, not in the model's stage: it stays frame-parallel.
        return staged_around(self.per_frame, self.align, self.blend)


def two_frame_input(previous: np.ndarray, current: np.ndarray, shift=None) -> np.ndarray:
    """``H×W×6`` uint8: the current frame and the previous frame aligned onto it (by ``shift``
    or the estimate); the first frame of a clip is its own previous frame."""
    if previous is None:
        return np.concatenate([current, current], axis=2)
    dy, dx = shift if shift is not None else estimate_shift(previous, current)
    aligned, _ = shift_frame(previous, int(dy), int(dx))
    return np.concatenate([current, aligned], axis=2)


class TwoFrameSharpener:
    """Frame function running a :class:`~pixel_utils.models.networks.TwoFrameStudent` on the
    current frame and the aligned previous input."""

    def __init__(self, model: torch.nn.Module):
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.reset()

    def reset(self) -> None:
        self.previous = None

    @torch.inference_mode()
    def __call__(self, frame: np.ndarray) -> np.ndarray:
        stacked = two_frame_input(self.previous, frame)
        self.previous = frame
        x = torch.from_numpy(stacked).to(self.device).permute(2, 0, 1)[None].float().div_(255)
        y = self.model(x)[0].clamp_(0, 1).mul_(255).round_().to(torch.uint8)
        return y.permute(1, 2, 0).cpu().numpy()


# ----------------------------------------------------------------------------- metrics


def temporal_error(outputs: np.ndarray, sharp: np.ndarray, shifts: np.ndarray) -> float:
    """Flicker against ground truth, in 8-bit levels: the RMS over frame pairs and pixels of
    ``(o_t - W(o_{t-1})) - (g_t - W(g_{t-1}))``, with ``W`` the known camera motion ``shifts``
    (content displacement of each frame since the previous one, whole pixels), over the pixels
    that stay in view. It is the change of the *error* along the motion: an error that moves
    with the scene costs nothing, one that changes from frame to frame (shimmer, a pulsing
    blur) costs all it changes. ``T×H×W×3`` arrays, uint8 or floats in [0, 1]; 0 is perfect."""
    o, g = (_as_levels(a) for a in (outputs, sharp))
    if len(o) < 2:
        raise ValueError("temporal error needs at least two frames")
    total, count = 0.0, 0
    for t in range(1, len(o)):
        dy, dx = (int(round(v)) for v in shifts[t])
        moved_o, valid = shift_frame(o[t - 1], dy, dx)
        moved_g, _ = shift_frame(g[t - 1], dy, dx)
        d = (o[t] - moved_o) - (g[t] - moved_g)
        total += float((d[valid] ** 2).sum())
        count += int(valid.sum()) * o.shape[-1]
    return float(np.sqrt(total / max(count, 1)))


def frame_changes(outputs: np.ndarray, shifts: np.ndarray | None = None) -> float:
    """Mean absolute change between consecutive frames after undoing the camera motion, in
    8-bit levels (over the pixels the motion keeps in view): a flicker measure for footage
    without ground truth, where the scene itself is static."""
    o = _as_levels(outputs)
    total, count = 0.0, 0
    for t in range(1, len(o)):
        dy, dx = (
            (int(round(v)) for v in shifts[t]) if shifts is not None
            else estimate_shift(o[t - 1], o[t])
        )  # fmt: skip
        moved, valid = shift_frame(o[t - 1], dy, dx)
        total += float(np.abs(o[t] - moved)[valid].sum())
        count += int(valid.sum()) * o.shape[-1]
    return total / max(count, 1)


def _as_levels(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames.astype(np.float64)
    return frames.astype(np.float64) * 255.0


def frame_scores(outputs: np.ndarray, sharp: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame PSNR (dB) and SSIM of ``outputs`` against ``sharp`` (the metrics module's
    conventions)."""
    return {
        "psnr": np.array([psnr(o, g) for o, g in zip(outputs, sharp, strict=True)]),
        "ssim": np.array([ssim(o, g) for o, g in zip(outputs, sharp, strict=True)]),
    }


def run_frames(process: Callable[[np.ndarray], np.ndarray], frames: np.ndarray) -> np.ndarray:
    """``process`` applied to each frame in order (stateful processes are reset first)."""
    if hasattr(process, "reset"):
        process.reset()
    return np.stack([process(f) for f in frames])
