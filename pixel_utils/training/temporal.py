"""Training the two-frame student (notebook 06): distilled from the teacher on synthetic
two-frame clips cut from the *training* photos.

Each sample is a 2-frame clip of a random window of a training photo, filmed by a virtual
camera with a random pan and tremor (:mod:`pixel_utils.data.video`), so the two frames are
blurred differently. The previous frame is aligned onto the current one with the same motion
estimate used at inference (:func:`~pixel_utils.evaluation.temporal.two_frame_input`); the
targets are the current sharp frame and the teacher's output on the current blurred frame (the
recipe of notebook 03). The student starts as an exact copy of notebook 03's distilled student
(:meth:`~pixel_utils.models.networks.TwoFrameStudent.load_single_frame`), so it only has to learn
what the previous frame adds.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import torch

from pixel_utils.artefacts import atomic_torch_save, sha256_file
from pixel_utils.data.video import CameraMotion, make_clip
from pixel_utils.evaluation.temporal import two_frame_input
from pixel_utils.paths import checkpoints_dir, data_dir
from pixel_utils.profiles import Profile
from pixel_utils.progress import tqdm
from pixel_utils.seeding import child_rng
from pixel_utils.training.distillation import CachedBatches, DistillationLoss, DistillWeights
from pixel_utils.training.loop import TrainResult, train

RUN_NOTEBOOK_06 = "run notebook 06 (python -m pixel_utils.report --only 06) with the same profile"


def random_motion(rng: np.random.Generator, fps: float = 24.0) -> CameraMotion:
    """A camera motion drawn wider than the test clips': pan 0–8 px/frame, tremor 1–6 px."""
    return CameraMotion(
        fps=fps, exposure=float(rng.uniform(0.3, 0.7)),
        pan_px_per_frame=float(rng.uniform(0, 8)), shake_px=float(rng.uniform(1, 6)),
        noise=float(rng.uniform(0.0, 0.02)),
    )  # fmt: skip


def two_frame_sample(photos: list[np.ndarray], patch: int, rng: np.random.Generator):
    """``(6×P×P input, 3×P×P sharp)`` float arrays: a 2-frame clip of a random window."""
    margin = 64
    window = patch + 2 * margin
    usable = [p for p in photos if min(p.shape[:2]) >= window]
    if not usable:
        raise ValueError(f"no training photo is at least {window} px on its short side")
    photo = usable[int(rng.integers(len(usable)))]
    top = int(rng.integers(photo.shape[0] - window + 1))
    left = int(rng.integers(photo.shape[1] - window + 1))
    crop = photo[top : top + window, left : left + window]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    clip = make_clip(crop, 2, (patch, patch), rng, random_motion(rng))
    stacked = two_frame_input(clip.blurred[0], clip.blurred[1])
    return stacked.transpose(2, 0, 1) / 255.0, clip.sharp[1].transpose(2, 0, 1) / 255.0


def build_two_frame_cache(
    profile: Profile, teacher: torch.nn.Module, path: Path, photos: list[np.ndarray]
) -> Path:
    """``profile.temporal_cache_batches`` batches of two-frame samples with the teacher's
    labels, saved (fp16, in :class:`~pixel_utils.training.distillation.CachedBatches`' format)
    to ``path``."""
    n, b, p = profile.temporal_cache_batches, profile.batch_size, profile.distill_patch_size
    inputs = torch.empty(n, b, 6, p, p, dtype=torch.float16)
    sharp = torch.empty(n, b, 3, p, p, dtype=torch.float16)
    labels = torch.empty(n, b, 3, p, p, dtype=torch.float16)
    device = next(teacher.parameters()).device
    teacher.eval()
    for i in tqdm(range(n), desc="two-frame clips + teacher labels"):
        rng = child_rng(profile.seed, 6, i)
        samples = [two_frame_sample(photos, p, rng) for _ in range(b)]
        x = torch.from_numpy(np.stack([s[0] for s in samples])).float()
        inputs[i], sharp[i] = x.half(), torch.from_numpy(np.stack([s[1] for s in samples])).half()
        with torch.no_grad():
            labels[i] = teacher(x[:, :3].to(device)).clamp(0, 1).cpu().half()
    data = {"inputs": inputs, "sharp": sharp, "teacher": labels, "features": {}}
    return atomic_torch_save(path, data)


def train_two_frame_student(
    profile: Profile,
    teacher: TrainResult,
    single_frame: TrainResult,
    load_only: bool = False,
) -> TrainResult:
    """The two-frame student: started from ``single_frame`` (notebook 03's distilled student),
    distilled from ``teacher`` on two-frame clips of the training photos for
    ``profile.temporal_steps`` steps. With ``load_only``, only load it."""
    from pixel_utils.data.datasets import training_photos
    from pixel_utils.training.stages import train_config

    key = {
        "seed": profile.seed,
        "teacher": sha256_file(teacher.checkpoint)[:16],
        "init": sha256_file(single_frame.checkpoint)[:16],
        "photo_folder": profile.photo_folder,
        "batches": profile.temporal_cache_batches,
        "batch_size": profile.batch_size,
        "patch": profile.distill_patch_size,
        "recipe": "two-frame v3",  # v2: the two-step motion estimate; v3: under a Hann window
    }
    digest = hashlib.sha256(repr(sorted(key.items())).encode()).hexdigest()[:12]
    cache = data_dir(profile.run_name) / "cache" / f"two_frame_{digest}.pt"
    if not load_only and not cache.exists():
        build_two_frame_cache(profile, teacher.model, cache, training_photos(profile))
    weights = DistillWeights(**profile.distill_weights)
    steps = profile.temporal_steps
    # Fine-tuning from a trained student: a tenth of notebook 03's peak learning rate.
    config = dataclasses.replace(
        train_config(profile, steps, profile.student_lr / 10), val_every=steps + 1
    )
    return train(
        "two_frame",
        profile.student_kwargs,
        lambda rank: CachedBatches(cache, steps, profile.seed + rank),
        config,
        checkpoints_dir(profile.run_name) / "student_two_frame.pt",
        data_key=key | {"weights": dataclasses.asdict(weights)},
        loss_fn=DistillationLoss(None, weights),
        device=profile.device,
        desc="two-frame student",
        load_only=RUN_NOTEBOOK_06 if load_only else None,
        init_state=single_frame.model.state_dict(),
    )
