"""Knowledge distillation: the loss terms, feature adapters and the teacher-output cache.

The student's loss is a weighted sum of

* **ground truth**: reconstruction (Charbonnier) of the sharp image, when there is one;
* **response**: reconstruction of the *teacher's output*, the classic distillation target;
* **feature**: student features, mapped by small 1×1 :class:`FeatureAdapters`, against
  teacher features at a matching stride (Romero et al.'s "hints");
* **frequency**: L1 between FFT magnitudes of student and teacher outputs, which rewards
  recovering the high frequencies a pixel loss under-weights.

The teacher is frozen: eval mode, ``requires_grad`` off, run under ``no_grad``. On a CPU its
forward pass costs ~10× a student training step, so :func:`build_teacher_cache` runs it once
over a fixed set of patch batches and stores inputs, targets, teacher outputs and teacher
features on disk (fp16), keyed by the teacher checkpoint and the data settings.
:class:`CachedBatches` then serves those batches under the 8 flips/rotations of the square.

*Pseudo-label* mode trains on degraded images that have no ground truth: set the ground-truth
weight to 0 and the teacher's output is the only target (:class:`BlurredOnlyDataset`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pixel_utils.artefacts import atomic_torch_save, sha256_file
from pixel_utils.data.datasets import sample_patches
from pixel_utils.progress import tqdm
from pixel_utils.seeding import child_rng
from pixel_utils.training.losses import RECONSTRUCTION_LOSSES


@dataclass(frozen=True)
class DistillWeights:
    ground_truth: float = 1.0
    response: float = 1.0
    feature: float = 0.1
    frequency: float = 0.0


# ----------------------------------------------------------------------------- loss terms


def response_loss(student_out, teacher_out, criterion: str = "charbonnier") -> torch.Tensor:
    return RECONSTRUCTION_LOSSES[criterion](student_out, teacher_out)


def frequency_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """L1 between the magnitudes of the 2-D FFTs (orthonormal, so the scale matches pixels)."""
    fa = torch.fft.rfft2(a.float(), norm="ortho").abs()
    fb = torch.fft.rfft2(b.float(), norm="ortho").abs()
    return (fa - fb).abs().mean()


def feature_loss(student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
    """MSE after normalising both by the teacher feature's per-channel spread, so taps with
    large activations do not dominate the sum."""
    scale = teacher_feat.detach().float().std(dim=(0, 2, 3), keepdim=True) + 1e-3
    return F.mse_loss(student_feat.float() / scale, teacher_feat.float() / scale)


def match_taps(
    student_info: dict[str, tuple[int, int]], teacher_info: dict[str, tuple[int, int]]
) -> list[tuple[str, str]]:
    """Pair each student feature tap with a teacher tap of the same stride.

    With several taps at one stride, they are paired in order of depth (the student's first
    tap with the teacher's first, its last with the teacher's last). A student tap with no
    teacher tap at its stride is left unpaired.
    """
    pairs = []
    strides = sorted({stride for _, stride in student_info.values()})
    for stride in strides:
        s_taps = [n for n, (_, s) in student_info.items() if s == stride]
        t_taps = [n for n, (_, s) in teacher_info.items() if s == stride]
        if not t_taps:
            continue
        for i, s_name in enumerate(s_taps):
            j = round(i * (len(t_taps) - 1) / max(1, len(s_taps) - 1)) if len(s_taps) > 1 else -1
            pairs.append((s_name, t_taps[j]))
    return pairs


class FeatureAdapters(nn.Module):
    """One 1×1 conv per matched pair, from student channels to teacher channels."""

    def __init__(self, student_info: dict, teacher_info: dict, pairs: list[tuple[str, str]]):
        super().__init__()
        self.pairs = list(pairs)
        self.adapters = nn.ModuleDict(
            {s: nn.Conv2d(student_info[s][0], teacher_info[t][0], 1) for s, t in self.pairs}
        )

    def forward(self, student_feats: dict) -> dict:
        return {s: self.adapters[s](student_feats[s]) for s, _ in self.pairs}


def freeze(model: nn.Module) -> nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class DistillationLoss:
    """``loss_fn(student, inputs, targets, step)`` for :func:`pixel_utils.training.loop.train`.

    ``targets`` is either the sharp batch, or a dict with ``sharp`` (may be absent in
    pseudo-label mode), ``teacher`` (cached teacher output) and ``features`` (cached teacher
    features by tap name). Without cached values the frozen teacher is run under no_grad.
    """

    def __init__(
        self,
        teacher: nn.Module | None,
        weights: DistillWeights,
        adapters: FeatureAdapters | None = None,
        criterion: str = "charbonnier",
        allow_unlabelled: bool = False,
    ):
        self.teacher = freeze(teacher) if teacher is not None else None
        # A stream that mixes labelled batches with batches nobody has the sharp image of
        # (CachedBatches' ``labelled``): those learn from the teacher alone. Off by default, so
        # that a labelled stream that lost its ground truth by mistake fails loudly.
        self.allow_unlabelled = allow_unlabelled
        self.weights = weights
        self.adapters = adapters
        self.criterion = RECONSTRUCTION_LOSSES[criterion]
        self.criterion_name = criterion

    def teacher_outputs(self, inputs):
        need_features = self.weights.feature > 0 and self.adapters is not None
        # The training loop moves the student to its device, not the teacher it was given.
        teacher_param = next(self.teacher.parameters(), None)
        if teacher_param is not None and teacher_param.device != inputs.device:
            self.teacher.to(inputs.device)
        with torch.no_grad():
            if need_features:
                out, feats = self.teacher(inputs, return_features=True)
                return out, {t: feats[t] for _, t in self.adapters.pairs}
            return self.teacher(inputs), {}

    def __call__(self, student, inputs, targets, step):
        if isinstance(targets, dict):
            sharp = targets.get("sharp")
            t_out, t_feats = targets.get("teacher"), targets.get("features", {})
        else:
            sharp, t_out, t_feats = targets, None, {}
        w = self.weights
        wants_teacher = w.response > 0 or w.frequency > 0 or w.feature > 0
        if wants_teacher and t_out is None:
            if self.teacher is None:
                raise ValueError("distillation terms need a teacher or cached teacher outputs")
            t_out, t_feats = self.teacher_outputs(inputs)
        s_out, s_feats = student(inputs, return_features=True)
        logs, total = {}, s_out.new_zeros(())
        if w.ground_truth > 0 and not (sharp is None and self.allow_unlabelled):
            if sharp is None:
                raise ValueError("ground-truth weight > 0 but the batch has no sharp images")
            logs["gt"] = self.criterion(s_out, sharp)
            total = total + w.ground_truth * logs["gt"]
        if w.response > 0:
            logs["response"] = self.criterion(s_out, t_out.to(s_out.dtype))
            total = total + w.response * logs["response"]
        if w.feature > 0 and self.adapters is not None and self.adapters.pairs:
            mapped = self.adapters(s_feats)
            terms = [feature_loss(mapped[s], t_feats[t]) for s, t in self.adapters.pairs]
            logs["feature"] = torch.stack(terms).mean()
            total = total + w.feature * logs["feature"]
        if w.frequency > 0:
            logs["frequency"] = frequency_loss(s_out, t_out)
            total = total + w.frequency * logs["frequency"]
        return total, {k: float(v.detach()) for k, v in logs.items()}


# ----------------------------------------------------------------------------- the cache


def cache_key(teacher_checkpoint: str | os.PathLike, data_key: dict, taps: list[str]) -> str:
    """A short hash of the teacher's weights, the data settings and the cached taps."""
    payload = {
        "teacher": sha256_file(teacher_checkpoint),
        "data": data_key,
        "taps": sorted(taps),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]


@torch.no_grad()
def _label_batches(teacher, dataset, indices, taps, device, bar) -> dict:
    """Inputs, sharp targets, teacher outputs and ``taps`` features (fp16) of batches
    ``indices`` of ``dataset``, stacked."""
    rows: dict = {"inputs": [], "sharp": [], "teacher": [], "features": {t: [] for t in taps}}
    for i in indices:
        inputs, sharp = dataset[i]
        out, feats = teacher(inputs.to(device), return_features=True)
        rows["inputs"].append(inputs.half())
        rows["sharp"].append(sharp.half())
        rows["teacher"].append(out.clamp(0, 1).cpu().half())
        for t in taps:
            rows["features"][t].append(feats[t].cpu().half())
        bar.update()
    stack = torch.stack
    return {k: stack(v) for k, v in rows.items() if k != "features"} | {
        "features": {t: stack(v) for t, v in rows["features"].items()}
    }


def build_teacher_cache(
    teacher: nn.Module,
    dataset,
    batches: int,
    taps: list[str],
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    shard_batches: int = 100,
) -> Path:
    """Run the frozen teacher over batches ``0..batches-1`` of ``dataset`` and store inputs,
    sharp targets, teacher outputs and the ``taps`` features (fp16) at ``path``, atomically.
    An existing file is reused: the file name carries the cache key.

    Labelling a long run's cache takes the better part of an hour on a CPU, so it is resumable:
    every ``shard_batches`` batches are saved (atomically) in ``<path>.partial/``; a rerun after
    an interruption labels only the missing shards, then joins them into ``path`` and removes
    the folder."""
    path = Path(path)
    if path.exists():
        return path
    freeze(teacher).to(device)
    partial = path.with_name(path.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    spans = [(a, min(a + shard_batches, batches)) for a in range(0, batches, shard_batches)]
    shards = [partial / f"batches_{a:06d}-{b:06d}.pt" for a, b in spans]
    with tqdm(total=batches, desc="teacher cache") as bar:
        for (a, b), shard in zip(spans, shards, strict=True):
            if shard.exists():  # labelled before an interruption
                bar.update(b - a)
                continue
            atomic_torch_save(shard, _label_batches(teacher, dataset, range(a, b), taps, device,
                                                    bar))  # fmt: skip
    payload: dict = {}
    for (a, b), shard in zip(spans, shards, strict=True):
        part = torch.load(shard, weights_only=True, mmap=True)
        if not payload:  # preallocate once: memory holds one copy of the cache, not two
            payload = {k: torch.empty((batches, *v.shape[1:]), dtype=v.dtype)
                       for k, v in part.items() if k != "features"}  # fmt: skip
            payload["features"] = {t: torch.empty((batches, *v.shape[1:]), dtype=v.dtype)
                                   for t, v in part["features"].items()}  # fmt: skip
        for k, v in part.items():
            if k != "features":
                payload[k][a:b] = v
        for t, v in part["features"].items():
            payload["features"][t][a:b] = v
        del part
    atomic_torch_save(path, payload)
    shutil.rmtree(partial)
    return path


def cache_bytes(profile, feature_shapes: dict[str, tuple[int, int]] | None = None) -> int:
    """Bytes of a profile's teacher cache (fp16): inputs, targets and teacher outputs, plus
    the cached features, ``{tap: (channels, stride)}``. The cache is memory-mapped when the
    students train, so this bounds both its disk size and what it can pin in RAM."""
    pixels = profile.batch_size * profile.patch_size**2
    per_batch = 3 * 3 * pixels
    for channels, stride in (feature_shapes or {}).values():
        per_batch += channels * pixels // stride**2
    return 2 * per_batch * profile.cache_batches


def _dihedral(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    x = torch.rot90(x, k, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if flip else x


class CachedBatches(torch.utils.data.Dataset):
    """Serves the cached batches for ``length`` steps: step ``i`` is cached batch
    ``i mod n`` under one of the 8 flips/rotations, chosen by ``(seed, i)``.

    ``with_teacher=False`` yields ``(inputs, sharp)`` (the scratch student's view of the
    *same* data); otherwise ``(inputs, {"sharp", "teacher", "features"})``.

    With ``labelled``, only the first ``labelled`` cached batches keep their ground truth, as
    when the sharp images exist for a few photos and the rest are blurred photos nobody has
    the sharp version of. Without the teacher the stream is then those batches alone, cycled;
    with it every batch is served, the others without ``sharp`` (the teacher's output is
    their only target: :class:`DistillationLoss` with ``allow_unlabelled``).
    """

    def __init__(self, path: str | os.PathLike, length: int, seed: int = 0, with_teacher=True,
                 labelled: int | None = None):  # fmt: skip
        # Memory-mapped: the pages are read as batches are served, so RAM is not bounded by the
        # cache's size (a full-profile cache is several GB).
        self.data = torch.load(path, weights_only=True, mmap=True)
        self.count = self.data["inputs"].shape[0]
        self.labelled = self.count if labelled is None else labelled
        if not 1 <= self.labelled <= self.count:
            raise ValueError(f"{path}: {labelled} labelled batches asked of {self.count} cached")
        if not with_teacher:
            self.count = self.labelled
        self.length = length
        self.seed = seed
        self.with_teacher = with_teacher

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        if not 0 <= i < self.length:
            raise IndexError(i)
        rng = child_rng(self.seed, i)
        k, flip = int(rng.integers(4)), bool(rng.integers(2))
        j = i % self.count

        def view(t):
            return _dihedral(t[j].float(), k, flip)

        inputs, sharp = view(self.data["inputs"]), view(self.data["sharp"])
        if not self.with_teacher:
            return inputs, sharp
        targets = {
            "sharp": sharp,
            "teacher": view(self.data["teacher"]),
            "features": {t: view(v) for t, v in self.data["features"].items()},
        }
        if j >= self.labelled:
            del targets["sharp"]
        return inputs, targets


class BlurredOnlyDataset(torch.utils.data.Dataset):
    """Pseudo-label mode: random patches of degraded images that have no ground truth.

    Item ``i`` is a batch ``(inputs, {})``: the loss takes its target from the teacher.
    """

    def __init__(self, images: list[np.ndarray], patch_size, batch_size, length, seed=0):
        if not images:
            raise ValueError("BlurredOnlyDataset needs at least one image")
        self.images = images
        self.patch_size, self.batch_size = patch_size, batch_size
        self.length, self.seed = length, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        if not 0 <= i < self.length:
            raise IndexError(i)
        x = sample_patches(self.images, self.patch_size, self.batch_size, child_rng(self.seed, i))
        return x.float().contiguous(), {}


def weights_json(weights: DistillWeights) -> dict:
    return asdict(weights)
