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

from pixel_utils.data.degradations import DegradationMix, DegradationSpec, degrade_batch
from pixel_utils.seeding import child_rng


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
    images: list[np.ndarray], size: int, count: int, rng: np.random.Generator,
    leaves: list[np.ndarray] | None = None, leaves_fraction: float = 0.0,
) -> torch.Tensor:  # fmt: skip
    """``count`` random, randomly flipped/rotated ``size``² crops as an NCHW float tensor.

    Each crop comes from ``leaves`` with probability ``leaves_fraction``, else from ``images``.
    """
    patches = []
    for _ in range(count):
        pool = leaves if leaves and (not images or rng.random() < leaves_fraction) else images
        image = pool[int(rng.integers(len(pool)))]
        patches.append(augment(random_crop(image, size, rng), rng))
    return torch.from_numpy(np.ascontiguousarray(np.stack(patches))).permute(0, 3, 1, 2)


class DeadLeavesStream:
    """An endless supply of fresh dead-leaves images: batch ``i`` draws from a pool of ``pool``
    images that is renewed every ``refresh`` batches, so a long run sees thousands of distinct
    images and none of them is stored. Pool ``b`` depends only on ``(seed, b)``: a resumed
    run regenerates exactly the pool it was using."""

    def __init__(self, size: int, pool: int, refresh: int, seed: int, palette=None):
        self.size, self.pool, self.refresh, self.seed = size, pool, refresh, seed
        self.palette = palette
        self._block, self._images = None, []

    def images_for(self, index: int) -> list[np.ndarray]:
        from pixel_utils.data.sources import random_dead_leaves

        block = index // self.refresh
        if block != self._block:
            self._images = [
                random_dead_leaves(child_rng(self.seed, 7919, block, j), self.size, self.palette)
                for j in range(self.pool)
            ]
            self._block = block
        return self._images

    def key(self) -> dict:
        return {"size": self.size, "pool": self.pool, "refresh": self.refresh,
                "palette": self.palette is not None}  # fmt: skip


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
        leaves: DeadLeavesStream | None = None,
        leaves_fraction: float = 0.5,
    ):
        if not images and leaves is None:
            raise ValueError("PatchPairDataset needs at least one sharp image")
        self.images = images
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.length = length
        self.mix = mix or DegradationMix()
        self.seed = seed
        self.rank = rank
        self.leaves = leaves
        self.leaves_fraction = leaves_fraction
        self.margin = self.mix.max_kernel_radius()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = child_rng(self.seed, index, self.rank)
        size = self.patch_size + 2 * self.margin
        leaves = self.leaves.images_for(index) if self.leaves is not None else None
        big = sample_patches(self.images, size, self.batch_size, rng, leaves, self.leaves_fraction)
        specs = [self.mix.sample(rng) for _ in range(self.batch_size)]
        blurred = degrade_batch(big, specs, rng, crop=self.margin)
        m = self.margin
        sharp = big[..., m : m + self.patch_size, m : m + self.patch_size]
        return blurred.float().contiguous(), sharp.float().contiguous()


def training_photos(profile, extra_folders=()) -> list[np.ndarray]:
    """The sharp training photos of a profile: the bundled training split, plus every image in
    ``profile.photo_folder`` and in ``extra_folders`` (a user's DIV2K/BSD500/own photos).

    Folder photos are shrunk so their short side is at most ``profile.photo_max_side``:
    downscaling averages away JPEG blocking and sensor noise, so the targets are truly sharp.
    """
    from pixel_utils.data.images import downscale_to
    from pixel_utils.data.sources import load_folder, load_photos

    photos = list(load_photos("train").values())
    folders = [f for f in (profile.photo_folder, *extra_folders) if f]
    for folder in folders:
        for image in load_folder(folder, min_size=profile.patch_size).values():
            photos.append(downscale_to(image, profile.photo_max_side))
    return photos


def leaves_stream(profile, photos: list[np.ndarray], seed: int) -> DeadLeavesStream:
    """The profile's dead-leaves stream; its colours are drawn from the training photos."""
    from pixel_utils.data.sources import colour_palette

    palette = colour_palette(photos, 4096, child_rng(seed, 4099)) if photos else None
    return DeadLeavesStream(
        profile.dead_leaves_size, profile.dead_leaves_pool, profile.dead_leaves_refresh, seed,
        palette,
    )  # fmt: skip


#: The fixed degradations of the validation set (training-time PSNR/SSIM).
VALIDATION_SPECS = (
    DegradationSpec("gaussian", {"sigma": 2.0}, 0.01),
    DegradationSpec("gaussian", {"sigma": 3.0}, 0.01),
    DegradationSpec("motion_linear", {"length": 11.0, "angle": 60.0}, 0.01),
    DegradationSpec("camera_shake", {"size": 19.0, "seed": 1001}, 0.01),
    DegradationSpec("defocus", {"radius": 3.0}, 0.01),
)


def validation_set(crop: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(degraded, sharp)`` HWC pairs: each validation photo, centre-cropped to ``crop``,
    under each of :data:`VALIDATION_SPECS` (noise drawn from ``(seed, photo, spec)``)."""
    from pixel_utils.data.degradations import crop_like, degrade
    from pixel_utils.data.sources import load_photos

    pairs = []
    for i, photo in enumerate(load_photos("val").values()):
        sharp = crop_like(photo, crop)
        for j, spec in enumerate(VALIDATION_SPECS):
            degraded, _ = degrade(photo, spec, child_rng(seed, i, j), crop=crop)
            pairs.append((degraded, sharp))
    return pairs
