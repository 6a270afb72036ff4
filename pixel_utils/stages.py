"""The pipeline's stages as functions of a profile, so notebooks stay thin and later stages can
load (or, if missing, produce) what earlier ones made."""

from __future__ import annotations

from dataclasses import asdict

from .datasets import PatchPairDataset, training_images, validation_set
from .degradations import DegradationMix
from .paths import checkpoints_dir
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


def teacher_config(profile: Profile) -> TrainConfig:
    return TrainConfig(
        steps=profile.teacher_steps,
        lr=profile.teacher_lr,
        warmup_steps=min(100, max(1, profile.teacher_steps // 20)),
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
        teacher_config(profile),
        checkpoints_dir(profile.name) / "teacher.pt",
        val_set=validation_set(profile.val_crop, profile.seed),
        data_key=data_key(profile, mix),
        retrain=retrain,
        device=device,
        desc="teacher",
    )
