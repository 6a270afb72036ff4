"""Classical sharpening baselines, from scikit-image, made fair.

* **Unsharp masking**: the "traditional sharpening filter": add back ``amount`` × (image −
  Gaussian-blurred image). Knows nothing about the blur.
* **Wiener deconvolution** and **Richardson–Lucy** are given the *true* PSF (an advantage no
  network here has: they are non-blind). Both work through the FFT, which treats the image as
  periodic; left alone, the jump between opposite borders rings across the image. We therefore
  reflect-pad by three PSF widths, deconvolve, and crop back. (The benchmark blurs whole
  photos and then crops, so the padding is a guess at the unseen surroundings, as it would be
  for a real photo, not a copy of the benchmark's own border model.)

Their hyper-parameters (unsharp amount, Wiener balance, Richardson–Lucy iterations) are tuned
per degradation case on the *validation* photos (:func:`tune`), never on the test photos.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from skimage import filters, restoration

from pixel_utils.evaluation.metrics import psnr


def unsharp_mask(image: np.ndarray, psf: np.ndarray | None = None, amount: float = 1.0,
                 radius: float = 2.0) -> np.ndarray:  # fmt: skip
    out = filters.unsharp_mask(image.astype(np.float64), radius=radius, amount=amount,
                               channel_axis=2)  # fmt: skip
    return np.clip(out, 0, 1).astype(np.float32)


def _padded_per_channel(image: np.ndarray, psf: np.ndarray, fn: Callable) -> np.ndarray:
    pad = 3 * psf.shape[0]
    padded = np.pad(image.astype(np.float64), ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    channels = [np.ascontiguousarray(padded[..., c]) for c in range(image.shape[2])]
    # One channel per core: scikit-image's FFTs run on one core and release the GIL, and the
    # networks these methods are compared with use every core (Richardson-Lucy ~1.4x faster on
    # 2 cores). Each channel is deconvolved on its own, so the result is the same.
    with ThreadPoolExecutor(min(len(channels), os.cpu_count() or 1)) as pool:
        out = np.stack(list(pool.map(fn, channels)), axis=2)
    return np.clip(out[pad:-pad, pad:-pad], 0, 1).astype(np.float32)


def wiener(image: np.ndarray, psf: np.ndarray, balance: float = 0.01) -> np.ndarray:
    return _padded_per_channel(image, psf, lambda ch: restoration.wiener(ch, psf, balance))


def richardson_lucy(image: np.ndarray, psf: np.ndarray, num_iter: int = 30) -> np.ndarray:
    # In float32: its FFT convolutions run about twice as fast as in float64, the iterations
    # stay within float32 rounding of the float64 ones, and the metrics are still float64.
    return _padded_per_channel(
        image,
        psf,
        lambda ch: restoration.richardson_lucy(
            ch.astype(np.float32), psf.astype(np.float32), num_iter=num_iter
        ),
    )


#: name → (function, hyper-parameter name, grid searched by :func:`tune`)
BASELINES: dict[str, tuple[Callable, str, tuple]] = {
    # Down to 0.1: on motion and shake the validation photos chose 0.25, the old lower edge.
    "unsharp": (unsharp_mask, "amount", (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)),
    # Up to 10: heavy blur with noise wants a gentle filter (on the validation photos `shake25`
    # kept improving past 0.1, where the grid used to end, and chose 3 of a grid ending there).
    "wiener": (wiener, "balance", (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)),
    # Up to 80: a wider blur needs more iterations (about 1/|K|^2 at a frequency), and six of
    # the ten cases chose 40, where the grid used to end.
    "richardson_lucy": (richardson_lucy, "num_iter", (5, 10, 20, 40, 80)),
}


def tune(name: str, pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict:
    """The grid value with the best mean PSNR on ``(degraded, sharp, psf)`` triples."""
    fn, param, grid = BASELINES[name]
    scores = {
        value: np.mean([psnr(fn(d, k, **{param: value}), s) for d, s, k in pairs]) for value in grid
    }
    best = max(scores, key=scores.get)
    return {param: best}


def run(name: str, image: np.ndarray, psf: np.ndarray, params: dict) -> np.ndarray:
    fn, _, _ = BASELINES[name]
    return fn(image, psf, **params)


def evaluate(bench_dir, val_crop: int, seed: int = 0, methods=tuple(BASELINES)):
    """Tune every baseline per benchmark case on the validation photos, then score it on the
    test photos. Returns ``(scores, params)``: a long table like
    :func:`pixel_utils.evaluation.scoring.evaluate_models` and ``{case: {method: params}}``."""

    from pixel_utils.data.benchmark import BENCHMARK_CASES
    from pixel_utils.data.degradations import crop_like, degrade
    from pixel_utils.data.sources import load_photos
    from pixel_utils.seeding import child_rng

    val_photos = list(load_photos("val").values())
    chosen: dict[str, dict] = {}
    for c, case in enumerate(BENCHMARK_CASES):
        psf = case.spec.kernel()
        pairs = [
            (degrade(photo, case.spec, child_rng(seed, 99, c, i), crop=val_crop)[0],
             crop_like(photo, val_crop), psf)
            for i, photo in enumerate(val_photos)
        ]  # fmt: skip
        chosen[case.name] = {m: tune(m, pairs) for m in methods}
    from pixel_utils.evaluation.scoring import score_benchmark

    def method(m):
        return lambda item: run(m, item.blurred, item.kernel, chosen[item.case][m])

    scores = score_benchmark({m: method(m) for m in methods}, bench_dir, desc="classical baselines")
    return scores, chosen


def time_all(params: dict, psf: np.ndarray, size: tuple[int, int], min_run_time: float = 0.2):
    """Milliseconds per image of every baseline on a random ``size`` (H, W) colour frame,
    with the hyper-parameters ``params`` (``{method: params}``) chosen for one case."""
    from pixel_utils.evaluation.cost import time_function

    frame = np.random.default_rng(0).random((*size, 3)).astype(np.float32)
    return {
        m: 1e3 * time_function(lambda im, m=m: run(m, im, psf, params[m]), frame, min_run_time)
        for m in BASELINES
    }
