"""The pipeline's stages as functions of a profile, so notebooks stay thin and later stages can
load (or, if missing, produce) what earlier ones made."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from torch import nn

from .datasets import PatchPairDataset, training_images, validation_set
from .degradations import DegradationMix
from .distillation import (
    CachedBatches,
    DistillationLoss,
    DistillWeights,
    FeatureAdapters,
    build_teacher_cache,
    cache_key,
    match_taps,
)
from .models import build_model
from .paths import checkpoints_dir, data_dir
from .profiles import Profile
from .training import TrainConfig, TrainResult, train


def data_key(profile: Profile, mix: DegradationMix) -> dict:
    """Everything about the training data that changes what a model learns."""
    return {
        "seed": profile.seed,
        "dead_leaves": [profile.dead_leaves_count, profile.dead_leaves_size],
        "patch_size": profile.patch_size,
        "batch_size": profile.batch_size,
        "mix": asdict(mix),
        "val_crop": profile.val_crop,
    }


def train_config(profile: Profile, steps: int, lr: float) -> TrainConfig:
    """The profile's schedule for a run of ``steps`` steps at peak learning rate ``lr``."""
    return TrainConfig(
        steps=steps,
        lr=lr,
        warmup_steps=min(100, max(1, steps // 20)),
        val_every=profile.val_every,
        checkpoint_every=max(profile.val_every, 250),
        seed=profile.seed,
        time_budget_s=profile.time_cap_minutes * 60,
    )


def train_teacher(
    profile: Profile, retrain: bool = False, device: str | None = None
) -> TrainResult:
    """Train (or reuse) the profile's teacher, checkpointed as ``<checkpoints>/teacher.pt``."""
    mix = DegradationMix()
    images = training_images(profile)
    steps = profile.teacher_steps

    def make_dataset(rank: int) -> PatchPairDataset:
        return PatchPairDataset(
            images, profile.patch_size, profile.batch_size, steps, mix, profile.seed, rank
        )

    return train(
        profile.teacher,
        profile.teacher_kwargs,
        make_dataset,
        train_config(profile, profile.teacher_steps, profile.teacher_lr),
        checkpoints_dir(profile.name) / "teacher.pt",
        val_set=validation_set(profile.val_crop, profile.seed),
        data_key=data_key(profile, mix),
        retrain=retrain,
        device=device,
        desc="teacher",
    )


@dataclass
class DistillSetup:
    """What the two student runs share: the frozen teacher, the tap pairs and the cache."""

    teacher: nn.Module
    pairs: list[tuple[str, str]]
    cache: Path
    data_key: dict


def prepare_distillation(profile: Profile, teacher: TrainResult) -> DistillSetup:
    """Match feature taps and cache the teacher's outputs on a fixed set of batches."""
    student = build_model(profile.student, **profile.student_kwargs)
    pairs = match_taps(student.feature_info(), teacher.model.feature_info())
    if profile.feature_taps == "last" and pairs:
        pairs = pairs[-1:]
    mix = DegradationMix()
    key = data_key(profile, mix) | {"cache_batches": profile.cache_batches}
    taps = [t for _, t in pairs]
    digest = cache_key(teacher.checkpoint, key, taps)
    dataset = PatchPairDataset(
        training_images(profile), profile.patch_size, profile.batch_size,
        profile.cache_batches, mix, profile.seed + 1,
    )  # fmt: skip
    path = data_dir(profile.name) / "cache" / f"teacher_outputs_{digest}.pt"
    build_teacher_cache(teacher.model, dataset, profile.cache_batches, taps, path)
    return DistillSetup(teacher.model, pairs, path, key | {"teacher_cache": digest})


def train_student(
    profile: Profile, setup: DistillSetup, distill: bool, retrain: bool = False,
    device: str | None = None,
) -> TrainResult:  # fmt: skip
    """The student trained on the cached batches: distilled (``distill=True``, the profile's
    loss weights) or from scratch (ground truth only). Same data, steps, seed and budget."""
    steps = profile.student_steps
    name = "student_distilled" if distill else "student_scratch"
    loss_fn, adapters, key = None, None, dict(setup.data_key)
    if distill:
        weights = DistillWeights(**profile.distill_weights)
        student = build_model(profile.student, **profile.student_kwargs)
        adapters = FeatureAdapters(
            student.feature_info(), setup.teacher.feature_info(), setup.pairs
        )
        loss_fn = DistillationLoss(setup.teacher, weights, adapters)
        key |= {"weights": asdict(weights), "pairs": setup.pairs}
    return train(
        profile.student,
        profile.student_kwargs,
        lambda rank: CachedBatches(setup.cache, steps, profile.seed + rank, with_teacher=distill),
        train_config(profile, profile.student_steps, profile.student_lr),
        checkpoints_dir(profile.name) / f"{name}.pt",
        val_set=validation_set(profile.val_crop, profile.seed),
        data_key=key,
        loss_fn=loss_fn,
        extra=adapters,
        retrain=retrain,
        device=device,
        desc=name.replace("_", " "),
    )


def trained_models(profile: Profile) -> dict[str, nn.Module]:
    """The profile's teacher, distilled student and scratch student (trained if missing)."""
    teacher = train_teacher(profile)
    setup = prepare_distillation(profile, teacher)
    return {
        "teacher": teacher.model,
        "distilled": train_student(profile, setup, distill=True).model,
        "scratch": train_student(profile, setup, distill=False).model,
    }


def display_models(profile: Profile) -> dict[str, nn.Module]:
    """Teacher and distilled student for looking at results (notebook 05).

    The profile's own checkpoints when they exist; for the default profile without them, the
    weights shipped in the package (so a fresh clone can open notebook 05 without training);
    otherwise they are trained.
    """
    from .pretrained import WEIGHTS_DIR, load_pretrained

    ckpts = checkpoints_dir(profile.name)
    have_own = (ckpts / "teacher.pt").exists() and (ckpts / "student_distilled.pt").exists()
    if profile.name == "default" and not have_own and (WEIGHTS_DIR / "manifest.json").exists():
        print(f"no checkpoints in {ckpts}: using the weights shipped in {WEIGHTS_DIR}")
        return {"teacher": load_pretrained("teacher"), "student": load_pretrained("student")}
    models = trained_models(profile)
    return {"teacher": models["teacher"], "student": models["distilled"]}
