"""The video benchmark of notebook 06: synthetic clips with ground truth over the test photos,
a real-blur clip without it, quality and flicker per method, and end-to-end throughput."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from pixel_utils.data.images import to_rgb_float
from pixel_utils.data.video import CameraMotion, Clip, fit_pan, make_clip
from pixel_utils.evaluation.scoring import ci95
from pixel_utils.evaluation.temporal import (
    frame_changes,
    frame_scores,
    run_frames,
    temporal_error,
)
from pixel_utils.profiles import Profile
from pixel_utils.progress import tqdm
from pixel_utils.seeding import child_rng

#: The test clips' camera: a steady pan with a trembling hand, 24 fps, 180° shutter.
TEST_MOTION = CameraMotion()


def test_clips(profile: Profile) -> list[Clip]:
    """One synthetic clip per test photo (``profile.video_frames`` frames of
    ``profile.video_size``), each with its own seeded camera path."""
    from pixel_utils.data.sources import PHOTO_SPLITS, load_photo

    names = PHOTO_SPLITS["test"][: profile.benchmark_max_photos]
    clips = []
    for i, name in enumerate(names):
        photo = load_photo(name)
        motion = fit_pan(photo.shape, profile.video_size, profile.video_frames, TEST_MOTION)
        rng = child_rng(profile.seed, 60, i)
        clips.append(make_clip(photo, profile.video_frames, profile.video_size, rng, motion, name))
    return clips


def real_blur_clip(profile: Profile) -> Clip:
    """A clip panned over scikit-image's ``clock``, a photo with real motion blur: the camera
    adds no blur of its own (zero exposure), so its only blur is the real one and there is no
    ground truth (``sharp`` holds the unblurred-by-us frames, for alignment only)."""
    from skimage import data

    photo = to_rgb_float(data.clock())
    still = CameraMotion(exposure=0.0, samples=1, noise=0.0, pan_px_per_frame=2.0, shake_px=2.0)
    motion = fit_pan(photo.shape, profile.video_size, profile.video_frames, still)
    rng = child_rng(profile.seed, 61)
    return make_clip(photo, profile.video_frames, profile.video_size, rng, motion, "clock")


def evaluate_methods(
    methods: dict[str, Callable[[np.ndarray], np.ndarray]],
    clips: list[Clip],
    keep: str | None = None,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Run every method over every clip. Returns a table with one row per (method, clip):
    mean PSNR and SSIM over frames and the temporal error (:func:`temporal_error`), and the
    per-frame outputs of clip ``keep`` by method (for figures)."""
    rows, kept = [], {}
    for method, process in methods.items():
        for clip in tqdm(clips, desc=f"video: {method}", leave=False):
            outputs = run_frames(process, clip.blurred)
            scores = frame_scores(outputs, clip.sharp)
            rows.append({
                "method": method, "clip": clip.name,
                "psnr": scores["psnr"].mean(), "ssim": scores["ssim"].mean(),
                "temporal_error": temporal_error(outputs, clip.sharp, clip.shifts),
                "psnr_per_frame": scores["psnr"].tolist(),
            })  # fmt: skip
            if clip.name == keep:
                kept[method] = outputs
    return pd.DataFrame(rows), kept


def summarise(table: pd.DataFrame, reference: str) -> dict:
    """Per method: mean PSNR, SSIM and temporal error over clips, and the PSNR and temporal
    error differences to ``reference`` paired by clip, with 95% CIs over clips."""
    out = {}
    ref = table[table["method"] == reference].set_index("clip")
    for method, rows in table.groupby("method", sort=False):
        rows = rows.set_index("clip")
        d_psnr = rows["psnr"] - ref["psnr"]
        d_terr = rows["temporal_error"] - ref["temporal_error"]
        out[method] = {
            "psnr": float(rows["psnr"].mean()),
            "ssim": float(rows["ssim"].mean()),
            "temporal_error": float(rows["temporal_error"].mean()),
            f"psnr_minus_{reference}": float(d_psnr.mean()),
            f"psnr_minus_{reference}_ci95": ci95(d_psnr),
            f"temporal_error_minus_{reference}": float(d_terr.mean()),
            f"temporal_error_minus_{reference}_ci95": ci95(d_terr),
        }
    return out


def real_clip_changes(methods: dict, clip: Clip) -> dict[str, float]:
    """Motion-compensated frame-to-frame change (8-bit levels) of each method's output on a
    clip of a static scene without ground truth (the known camera motion undoes the pan)."""
    return {
        name: frame_changes(run_frames(process, clip.blurred), clip.shifts)
        for name, process in methods.items()
    }


def throughput_clip(profile: Profile, size: tuple[int, int], folder: Path) -> Path:
    """An H.264 clip of ``profile.video_speed_frames`` frames at ``size`` (rows, columns), filmed
    over a test photo enlarged to hold it; written once to ``folder`` and reused."""
    from skimage.transform import resize

    from pixel_utils.app.video import write_video
    from pixel_utils.data.sources import load_photo

    h, w = size
    path = folder / f"throughput_{h}x{w}_{profile.video_speed_frames}f.mp4"
    if path.exists():
        return path
    photo = load_photo("astronaut")
    scale = (max(h, w) + 160) / min(photo.shape[:2])
    big = resize(photo, (round(photo.shape[0] * scale), round(photo.shape[1] * scale)),
                 order=1, anti_aliasing=False).astype(np.float32)  # fmt: skip
    # Four positions per exposure, not eight: the clip only has to look like footage to the
    # codec, and rendering it at 1080p took a minute of the report's budget.
    motion = CameraMotion(samples=4)
    motion = fit_pan(big.shape, size, profile.video_speed_frames, motion)
    clip = make_clip(big, profile.video_speed_frames, size, child_rng(profile.seed, 62), motion)
    return write_video(path, clip.blurred, clip.fps)


def end_to_end_fps(
    clip: Path, make_process: Callable[[], Callable], runs: int, out: Path
) -> dict[str, float]:
    """Frames per second of :func:`~pixel_utils.app.video.sharpen_video` on ``clip``, decode and
    encode included: the median of ``runs`` runs (and their spread), and the same pipeline with
    an identity frame function (what decoding and encoding alone allow)."""
    from pixel_utils.app.video import sharpen_video

    def timed(make) -> list[float]:
        return [
            sharpen_video(clip, out, make(), overwrite=True, progress=False).fps
            for _ in range(runs)
        ]

    fps = timed(make_process)
    codec = timed(lambda: lambda frame: frame)
    return {
        "fps": statistics.median(fps), "fps_min": min(fps), "fps_max": max(fps),
        "codec_only_fps": statistics.median(codec), "runs": runs,
    }  # fmt: skip
