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


def video_targets(summary: dict, temporal: list[str], max_psnr_cost_db: float = 0.2) -> dict:
    """Per temporal method of a :func:`summarise` result (reference ``student``): does it flicker
    no more than the frame-by-frame teacher, and does it stay within ``max_psnr_cost_db`` of the
    frame-by-frame student? Means over clips; the findings give the intervals."""
    teacher_error = summary["teacher"]["temporal_error"]
    return {
        m: {
            "flickers_no_more_than_teacher": summary[m]["temporal_error"] <= teacher_error,
            f"within_{max_psnr_cost_db:g}_db_of_student": summary[m]["psnr_minus_student"]
            >= -max_psnr_cost_db,
        }
        for m in temporal
    }


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


def temporal_findings(table: pd.DataFrame, temporal: list[str]) -> list[str]:
    """Notebook 06's bullets on quality and flicker, from the per-clip ``table`` of
    :func:`evaluate_methods` (methods ``blurred``, ``teacher``, ``student`` and the ``temporal``
    ones). Every comparison is paired by clip with its 95% CI over clips, and a word says
    "more", "less", "above", "below" or "steadier" only when that interval excludes zero (with
    a single clip there is no interval: the sign decides, and the words say so)."""
    from pixel_utils.evaluation.deconvolution import verdict

    against = {ref: summarise(table, reference=ref) for ref in ("blurred", "teacher", "student")}
    s = against["student"]

    def paired(method: str, ref: str, quantity: str) -> tuple[float, float]:
        row = (against[ref] if ref in against else summarise(table, reference=ref))[method]
        return row[f"{quantity}_minus_{ref}"], row[f"{quantity}_minus_{ref}_ci95"]

    def vs_student(method: str) -> str:
        d, ci = paired(method, "student", "psnr")
        word = verdict(d, ci, "better than", "worse than", "indistinguishable from")
        return f"{d:+.2f} ± {ci:.2f} dB, {word} the student"

    def steadier(method: str, ref: str) -> str:
        d, ci = paired(method, ref, "temporal_error")  # a lower temporal error is steadier
        word = verdict(-d, ci, "steadier than", "less steady than", "not measurably steadier than")
        return f"{word} the frame-by-frame {ref} ({d:+.2f} ± {ci:.2f} levels)"

    def flicker(method: str) -> str:
        d, ci = paired(method, "blurred", "temporal_error")
        word = verdict(d, ci, "more than", "less than", "not measurably different from")
        return f"{word} its input, {d:+.2f} ± {ci:.2f}"

    def gain(method: str) -> str:
        d, ci = paired(method, "blurred", "psnr")
        return verdict(d, ci, "above", "below", "not measurably different from")

    clips = table["clip"].nunique()
    lines = [
        f"- **Frame by frame.** On {clips} synthetic clips the blurred input has a temporal "
        f"error of {s['blurred']['temporal_error']:.2f} levels; the frame-by-frame student "
        f"{s['student']['temporal_error']:.2f} ({flicker('student')}) and the teacher "
        f"{s['teacher']['temporal_error']:.2f} ({flicker('teacher')}), at "
        f"{s['student']['psnr']:.2f} dB ({gain('student')} the input's "
        f"{s['blurred']['psnr']:.2f} dB) and {s['teacher']['psnr']:.2f} dB ({gain('teacher')} "
        "it). Paired by clip, ± the 95% CI over clips."
    ]
    lines += [
        f"- **{m}**: {s[m]['psnr']:.2f} dB ({vs_student(m)}), temporal error "
        f"{s[m]['temporal_error']:.2f}: {steadier(m, 'teacher')}."
        for m in temporal
    ]
    if not temporal:
        return lines
    ranked = sorted(temporal, key=lambda m: s[m]["temporal_error"])
    best, lead = ranked[0], ""
    if len(ranked) > 1:
        second = ranked[1]
        d, ci = paired(second, best, "temporal_error")
        apart = verdict(d, ci, "ahead", "behind", "tied")
        lead = (
            f", ahead of {second} ({s[second]['temporal_error']:.2f}; {d:+.2f} ± {ci:.2f})"
            if apart == "ahead"
            else f"; {second} ({s[second]['temporal_error']:.2f}) cannot be told apart from it "
            f"({d:+.2f} ± {ci:.2f} levels)"
        )
    d, ci = paired(best, "student", "psnr")
    cost = verdict(d, ci, "gains", "costs", "neither measurably costs nor gains")
    lines.append(
        f"- **Lowest temporal error**: {best}, {s[best]['temporal_error']:.2f} levels{lead}. "
        f"Against the frame-by-frame student it {cost} PSNR ({vs_student(best)})."
    )
    return lines


def throughput_findings(
    throughput: dict[str, dict],
    runs: int,
    student_form: str,
    shipped: dict[str, dict] | None = None,
    shipped_engine: str = "onnxruntime",
    target_fps: float = 25.0,
) -> list[str]:
    """Notebook 06's end-to-end bullets: the report's student (``throughput``, from
    :func:`end_to_end_fps` per resolution, the first resolution being the one judged against
    ``target_fps``) and, where measured, the shipped student that ``pixel-sharpen`` serves."""

    from pixel_utils.app.openvino_engine import ENGINE_WORDS

    def rates(by_res: dict[str, dict]) -> str:
        return ", ".join(f"{r} {t['fps']:.1f} fps" for r, t in by_res.items())

    def meets(by_res: dict[str, dict]) -> str:
        return "meets" if by_res[first]["fps"] >= target_fps else "misses"

    first = next(iter(throughput))
    lines = [
        f"- **End to end** (decode + sharpen + encode; student: {student_form}; median of "
        f"{runs} runs): {rates(throughput)}; decoding and encoding alone allow "
        f"{throughput[first]['codec_only_fps']:.0f} fps at {first}. The {first} figure "
        f"{meets(throughput)} the {target_fps:.0f} fps target."
    ]
    if shipped:
        lines.append(
            f"- **The shipped student** (`pixel-sharpen clip.mp4`'s default, int8 on "
            f"{ENGINE_WORDS.get(shipped_engine, shipped_engine)}), end to end: "
            f"{rates(shipped)}. Its {first} figure "
            f"{meets(shipped)} the {target_fps:.0f} fps target."
        )
    return lines
