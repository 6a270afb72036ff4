"""Distillation where no ground truth reaches: a folder of the user's blurred photos.

The teacher is blind: it sharpens a photo without being told its blur. On a folder of photos
that share one blur (one lens, one focus error, one shaky hand) its outputs therefore carry
what nothing else there can: what *that* blur should undo to. There is no sharp image and no
PSF. A student trained on a wide mix of blurs spends its small capacity on all of them; fine-
tuned for a few hundred steps on the teacher's outputs for the folder, it specialises to the
folder's blur. A student from scratch cannot: it has no target there.

:func:`adapt_to_folder` is that fine-tuning. :func:`cross_fitted_scores` measures it honestly
on the benchmark: the photos of one case are split into folds, and each photo is scored by a
student adapted on the *other* folds' blurred photos, so no score comes from a photo whose
pixels (blurred or sharp) the adapted student has seen. :func:`cross_fitted_clip_scores` does
the same for notebook 06's clips: the folder is the footage of one camera (its tremor, shutter
and noise), and each clip is sharpened by a student adapted on the other clips' frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from pixel_utils.data.benchmark import BenchmarkItem, iter_benchmark
from pixel_utils.data.datasets import sample_patches
from pixel_utils.evaluation.inference import sharpen
from pixel_utils.evaluation.metrics import psnr, ssim
from pixel_utils.progress import tqdm
from pixel_utils.seeding import child_rng
from pixel_utils.training.loop import TrainConfig, TrainResult, train


@dataclass(frozen=True)
class FolderAdaptation:
    """How a student is fine-tuned on a folder's teacher labels."""

    steps: int = 300
    lr: float = 2e-4
    patch_size: int = 96
    batch_size: int = 8


class LabelledPatches(torch.utils.data.Dataset):
    """Batch ``i``: random crops of the blurred images and the *same* crops of the teacher's
    outputs for them (the same view for teacher and student), under one of the 8
    flips/rotations, drawn from ``(seed, i)``."""

    def __init__(self, blurred: list[np.ndarray], labels: list[np.ndarray],
                 settings: FolderAdaptation, length: int, seed: int = 0):  # fmt: skip
        if not blurred:
            raise ValueError("a folder adaptation needs at least one blurred image")
        for k, (x, y) in enumerate(zip(blurred, labels, strict=True)):
            if x.shape != y.shape or x.ndim != 3 or x.shape[2] != 3:
                raise ValueError(f"image {k}: blurred {x.shape} and label {y.shape} must be "
                                 "the same HWC RGB shape")  # fmt: skip
        # Cropping the stacked pair cuts both at the same place under the same flip.
        self.pairs = [np.concatenate([x, y], axis=2) for x, y in zip(blurred, labels, strict=True)]
        self.settings, self.length, self.seed = settings, length, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        if not 0 <= i < self.length:
            raise IndexError(i)
        s = self.settings
        both = sample_patches(self.pairs, s.patch_size, s.batch_size, child_rng(self.seed, i))
        return both[:, :3].contiguous(), both[:, 3:].contiguous()


def teacher_labels(teacher: nn.Module, blurred: list[np.ndarray]) -> list[np.ndarray]:
    """The teacher's outputs for the folder's images: the only targets there are."""
    return [sharpen(teacher, x) for x in tqdm(blurred, desc="teacher labels", leave=False)]


def adapt_to_folder(
    student_name: str, student_kwargs: dict, student_state: dict, blurred: list[np.ndarray],
    labels: list[np.ndarray], settings: FolderAdaptation = FolderAdaptation(), seed: int = 0,
    device: str | None = None,
) -> TrainResult:  # fmt: skip
    """A copy of the student, fine-tuned on ``labels`` (the teacher's outputs for ``blurred``)."""
    config = TrainConfig(steps=settings.steps, lr=settings.lr,
                         warmup_steps=max(1, settings.steps // 10), ema_decay=None,
                         seed=seed)  # fmt: skip
    return train(
        student_name, student_kwargs,
        lambda rank: LabelledPatches(blurred, labels, settings, settings.steps, seed),
        config, checkpoint=None, init_state=student_state, device=device,
        desc="folder adaptation",
    )  # fmt: skip


def folds_of(photos: list[str], folds: int) -> list[list[str]]:
    """Photo ``k`` goes to fold ``k mod folds`` (benchmark order), so folds differ in size by
    at most one photo."""
    if not 2 <= folds <= len(photos):
        raise ValueError(f"{folds} folds asked of {len(photos)} photos: need 2 ≤ folds ≤ photos")
    return [photos[f::folds] for f in range(folds)]


def cross_fitted_scores(
    students: dict[str, TrainResult], student_name: str, student_kwargs: dict,
    teacher: nn.Module, bench_dir, case: str, settings: FolderAdaptation = FolderAdaptation(),
    folds: int = 2, seed: int = 0, device: str | None = None,
) -> pd.DataFrame:  # fmt: skip
    """PSNR/SSIM on ``case`` of each student adapted to the folder of that case's blurred
    photos, every photo scored by a student adapted on the other folds only.

    Returns rows ``method, case, photo, psnr, ssim`` like
    :func:`~pixel_utils.evaluation.scoring.score_benchmark`, the method named
    ``"<label>+folder"``, so they join its table (e.g. for
    :func:`~pixel_utils.evaluation.scoring.kd_comparison`).
    """
    items: list[BenchmarkItem] = list(iter_benchmark(bench_dir, case))
    if not items:
        raise ValueError(f"{bench_dir}: no benchmark photos for case {case!r}")
    photos = [it.photo for it in items]
    labels = dict(zip(photos, teacher_labels(teacher, [it.blurred for it in items]), strict=True))
    rows = []
    for label, run in students.items():
        state = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
        for fold in folds_of(photos, folds):
            seen = [it for it in items if it.photo not in fold]
            adapted = adapt_to_folder(
                student_name, student_kwargs, state, [it.blurred for it in seen],
                [labels[it.photo] for it in seen], settings, seed, device,
            ).model  # fmt: skip
            for it in items:
                if it.photo in fold:
                    out = sharpen(adapted, it.blurred)
                    scores = {"psnr": psnr(out, it.sharp), "ssim": ssim(out, it.sharp)}
                    rows.append({"method": f"{label}+folder", "case": case, "photo": it.photo}
                                | scores)  # fmt: skip
    return pd.DataFrame(rows)


def cross_fitted_clip_scores(
    students: dict[str, TrainResult], student_name: str, student_kwargs: dict,
    teacher: nn.Module, clips: list, settings: FolderAdaptation = FolderAdaptation(),
    folds: int = 2, label_every: int = 4, seed: int = 0, device: str | None = None,
) -> pd.DataFrame:  # fmt: skip
    """:func:`cross_fitted_scores` for video: each of ``clips`` (:class:`~pixel_utils.data.
    video.Clip`, all filmed by one camera) is sharpened frame by frame by a student adapted on
    the teacher's outputs for every ``label_every``-th blurred frame of the *other* folds'
    clips, so no scored frame shows a scene the adapted student has seen, blurred or sharp.

    Returns :func:`~pixel_utils.evaluation.video.evaluate_methods`'s rows (``method, clip,
    psnr, ssim, temporal_error, psnr_per_frame``), the method named ``"<label>+folder"``.
    """
    from pixel_utils.app.video import frame_sharpener
    from pixel_utils.data.images import to_rgb_float
    from pixel_utils.evaluation.video import evaluate_methods

    if label_every < 1:
        raise ValueError(f"label_every must be at least 1, not {label_every}")
    names = [clip.name for clip in clips]
    frames = {c.name: [to_rgb_float(f) for f in c.blurred[::label_every]] for c in clips}
    flat = iter(teacher_labels(teacher, [f for n in names for f in frames[n]]))
    labels = {n: [next(flat) for _ in frames[n]] for n in names}
    tables = []
    for label, run in students.items():
        state = {k: v.detach().clone() for k, v in run.model.state_dict().items()}
        for fold in folds_of(names, folds):
            seen = [n for n in names if n not in fold]
            adapted = adapt_to_folder(
                student_name, student_kwargs, state, [f for n in seen for f in frames[n]],
                [y for n in seen for y in labels[n]], settings, seed, device,
            ).model  # fmt: skip
            table, _ = evaluate_methods({f"{label}+folder": frame_sharpener(adapted)},
                                        [c for c in clips if c.name in fold])  # fmt: skip
            tables.append(table)
    return pd.concat(tables, ignore_index=True)


def _labels_by_student_kind(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    """The method labels of each kind of student, over the seeds of ``pairs``."""
    return {"scratch": [s for _, s in pairs], "distilled": [d for d, _ in pairs],
            "distilled+folder": [f"{d}+folder" for d, _ in pairs]}  # fmt: skip


def folder_findings(scores: pd.DataFrame, pairs: list[tuple[str, str]], cases) -> dict:
    """What the folder bought, per case, from a table holding the benchmark's rows and
    :func:`cross_fitted_scores`'s: each method's gain over the blurred input (mean over the
    seeds of ``pairs``, ``(distilled, scratch)`` labels), and the adapted students against their
    scratch twins and against themselves before adapting, paired by photo and seed."""
    from pixel_utils.evaluation.scoring import kd_comparison

    out = {}
    for case in cases:
        rows = scores[scores["case"] == case].pivot_table(index="photo", columns="method",
                                                          values="psnr")  # fmt: skip
        gain = rows.sub(rows["blurred"], axis=0).mean()
        gains = {
            name: float(gain[labels].mean())
            for name, labels in _labels_by_student_kind(pairs).items()
        }
        if "teacher" in gain:
            gains["teacher"] = float(gain["teacher"])
        out[case] = {
            "blurred_psnr": float(rows["blurred"].mean()),
            "gain_db": gains,
            "vs_scratch": kd_comparison(scores, [(f"{d}+folder", s) for d, s in pairs], case),
            "vs_unadapted": kd_comparison(scores, [(f"{d}+folder", d) for d, _ in pairs], case),
        }
    return out


def camera_findings(clip_rows: pd.DataFrame, pairs: list[tuple[str, str]]) -> dict:
    """:func:`folder_findings` for notebook 06's clips, from
    :func:`~pixel_utils.evaluation.video.evaluate_methods`'s rows of the blurred frames, the
    teacher, the students of ``pairs`` and :func:`cross_fitted_clip_scores`'s: each clip stands
    where a photo does, paired by clip and seed. Adds ``temporal_error``, the mean over clips
    (and seeds) of each kind of student's and the teacher's."""
    missing = {"blurred", "teacher"} - set(clip_rows["method"])
    if missing:
        raise ValueError(f"camera findings need the rows of {sorted(missing)} too")
    found = folder_findings(clip_rows.assign(case="clips", photo=clip_rows["clip"]), pairs,
                            ["clips"])["clips"]  # fmt: skip
    flicker = clip_rows.groupby("method")["temporal_error"].mean()
    groups = _labels_by_student_kind(pairs) | {"teacher": ["teacher"]}
    found["temporal_error"] = {name: float(flicker[labels].mean())
                               for name, labels in groups.items()}  # fmt: skip
    return found


def folder_lesson(findings: dict, settings: dict) -> str:
    """One Markdown bullet per case, every figure from ``findings``."""
    lines = []
    for case, f in findings.items():
        g, kd = f["gain_db"], f["vs_scratch"]
        share = (f" ({100 * g['distilled+folder'] / g['teacher']:.0f}% of the teacher's "
                 f"{g['teacher']:+.2f} dB)" if g.get("teacher", 0) > 0 else "")  # fmt: skip
        lines.append(
            f"- **`{case}`, a folder with no ground truth**: after {settings['steps']} steps on "
            f"the teacher's outputs for the other photos of the folder, the distilled students "
            f"gain {g['distilled+folder']:+.2f} dB{share}, against {g['distilled']:+.2f} dB "
            f"before and {g['scratch']:+.2f} dB for their scratch twins, which have no target "
            f"there: **{kd['mean_db']:+.2f} dB over scratch** (±{kd['ci95_over_images']:.2f} "
            f"over {kd['images']} photos, ±{kd['ci95_over_seeds']:.2f} over {kd['seeds']} "
            "seeds)."
        )
    return "\n".join(lines)


def camera_lesson(findings: dict, steps: int, label_every: int) -> str:
    """Notebook 06's bullet on adapting to the camera, every figure from ``findings``
    (:func:`camera_findings`). The margin over scratch is in bold only when its CI over clips
    excludes zero."""
    g, kd, te = findings["gain_db"], findings["vs_scratch"], findings["temporal_error"]
    own = findings["vs_unadapted"]
    over_scratch = f"{kd['mean_db']:+.2f} dB over scratch"
    if kd["ci_excludes_zero"]:
        over_scratch = f"**{over_scratch}**"
    adapting = "excludes" if own["ci_excludes_zero"] else "includes"
    return (
        f"- **Adapted to the camera, without ground truth**: after {steps} steps on the "
        f"teacher's outputs for one frame in every {label_every} of the other fold's clips, the "
        f"distilled students gain {g['distilled+folder']:+.2f} dB over the blurred frames, "
        f"against {g['distilled']:+.2f} dB before (adapting: {own['mean_db']:+.2f} ± "
        f"{own['ci95_over_images']:.2f} dB, a 95% CI over clips that {adapting} zero) and "
        f"{g['scratch']:+.2f} dB for their scratch twins, which have no target there: "
        f"{over_scratch} (±{kd['ci95_over_images']:.2f} over {kd['images']} clips, "
        f"±{kd['ci95_over_seeds']:.2f} over {kd['seeds']} seeds; the teacher gains "
        f"{g['teacher']:+.2f} dB). {clip_verdict(kd)} Temporal error "
        f"{te['distilled']:.2f} → {te['distilled+folder']:.2f} levels (teacher "
        f"{te['teacher']:.2f})."
    )


def clip_verdict(kd: dict) -> str:
    """Whether a :func:`~pixel_utils.evaluation.scoring.kd_comparison` over clips settles the
    question, in words that follow its numbers."""
    better = f"better on {kd['images_better']} of {kd['images']} clips"
    if kd["ci_excludes_zero"]:
        return f"Its 95% CI over clips excludes zero ({better})."
    return f"Its 95% CI over clips includes zero: {better}, too few clips to tell."
