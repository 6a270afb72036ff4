"""Training pairs cut from sharp images and degraded on the fly.

:class:`PatchPairDataset` is a map-style torch Dataset whose item ``i`` is a whole batch
``(blurred, sharp)`` of NCHW tensors. Item ``i`` depends only on ``(seed, i, rank)``, so a run is
reproducible, a resumed run sees the same batches it would have seen, and each DDP rank draws
different data. Patches are cut with a margin equal to the largest PSF radius, blurred, and the
margin removed, so the blur has no border artefact; then noise and JPEG are applied.
"""

from __future__ import annotations

import numpy as np
import torch

from .degradations import DegradationMix, DegradationSpec, degrade_batch
from .seeding import child_rng


def random_crop(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A ``size``×``size`` crop at a random position; smaller images are reflect-padded."""
    h, w = image.shape[:2]
    if h < size or w < size:
        ph, pw = max(size - h, 0), max(size - w, 0)
        image = np.pad(image, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)), "reflect")
        h, w = image.shape[:2]
    top = int(rng.integers(0, h - size + 1))
    left = int(rng.integers(0, w - size + 1))
    return image[top : top + size, left : left + size]


def augment(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One of the 8 flips/rotations of the square, uniformly."""
    patch = np.rot90(patch, int(rng.integers(4)))
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    return patch


def sample_patches(
    images: list[np.ndarray], size: int, count: int, rng: np.random.Generator
) -> torch.Tensor:
    """``count`` random, randomly flipped/rotated ``size``² crops as an NCHW float tensor."""
    patches = []
    for _ in range(count):
        image = images[int(rng.integers(len(images)))]
        patches.append(augment(random_crop(image, size, rng), rng))
    return torch.from_numpy(np.ascontiguousarray(np.stack(patches))).permute(0, 3, 1, 2)


class PatchPairDataset(torch.utils.data.Dataset):
    """``length`` batches of ``batch_size`` degraded/sharp patch pairs from ``images``.

    Use it with ``DataLoader(dataset, batch_size=None)`` (items are already batches).
    """

    def __init__(
        self,
        images: list[np.ndarray],
        patch_size: int,
        batch_size: int,
        length: int,
        mix: DegradationMix | None = None,
        seed: int = 0,
        rank: int = 0,
    ):
        if not images:
            raise ValueError("PatchPairDataset needs at least one sharp image")
        self.images = images
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.length = length
        self.mix = mix or DegradationMix()
        self.seed = seed
        self.rank = rank
        self.margin = self.mix.max_kernel_radius()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = child_rng(self.seed, index, self.rank)
        size = self.patch_size + 2 * self.margin
        big = sample_patches(self.images, size, self.batch_size, rng)
        specs = [self.mix.sample(rng) for _ in range(self.batch_size)]
        blurred = degrade_batch(big, specs, rng, crop=self.margin)
        m = self.margin
        sharp = big[..., m : m + self.patch_size, m : m + self.patch_size]
        return blurred.float().contiguous(), sharp.float().contiguous()


def training_images(profile) -> list[np.ndarray]:
    """The sharp training set of a profile: the training photos plus its dead-leaves images
    (generated once under ``data/<profile>/dead_leaves`` by notebook 01, reused after)."""
    from .paths import data_dir
    from .sources import cached_dead_leaves, load_photos

    photos = list(load_photos("train").values())
    leaves = cached_dead_leaves(
        data_dir(profile.name) / "dead_leaves",
        profile.dead_leaves_count,
        profile.dead_leaves_size,
        profile.seed,
    )
    return photos + leaves


#: The fixed degradations of the validation set (training-time PSNR/SSIM).
VALIDATION_SPECS = (
    DegradationSpec("gaussian", {"sigma": 2.0}, 0.01),
    DegradationSpec("gaussian", {"sigma": 3.0}, 0.01),
    DegradationSpec("motion_linear", {"length": 11.0, "angle": 60.0}, 0.01),
    DegradationSpec("defocus", {"radius": 3.0}, 0.01),
)


def validation_set(crop: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(degraded, sharp)`` HWC pairs: each validation photo, centre-cropped to ``crop``,
    under each of :data:`VALIDATION_SPECS` (noise drawn from ``(seed, photo, spec)``)."""
    from .degradations import degrade
    from .images import center_crop
    from .sources import load_photos

    pairs = []
    for i, sharp in enumerate(load_photos("val").values()):
        sharp = center_crop(sharp, crop)
        for j, spec in enumerate(VALIDATION_SPECS):
            degraded, _ = degrade(sharp, spec, child_rng(seed, i, j))
            pairs.append((degraded, sharp))
    return pairs
