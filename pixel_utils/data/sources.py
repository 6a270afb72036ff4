"""Sharp images, all offline: bundled photos, procedural dead-leaves, and user folders.

* :data:`PHOTO_SPLITS` fixes which of the photos shipped with scikit-image and matplotlib are
  used for training, validation and testing. The split is by image (both views of the stereo
  motorcycle stay together), so no test photo is ever seen in training.
* :func:`dead_leaves` draws the classic occlusion model (random shapes with a power-law size
  distribution), whose statistics resemble natural images; restoration nets trained on it
  transfer to photos (Achddou et al., 2021).
* :func:`load_folder` reads any folder of sharp images (DIV2K / BSD500 style) and
  :func:`load_pairs` a GoPro-style ``blur/`` + ``sharp/`` folder. Files that cannot be used are
  skipped with one warning naming each file and why.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pixel_utils.data.images import IMAGE_SUFFIXES, ImageReadError, read_image, to_rgb_float


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data

        return getattr(data, name)()

    return load


def _motorcycle(view: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data

        return data.stereo_motorcycle()[view]

    return load


def _grace_hopper() -> np.ndarray:
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        from PIL import Image

        return np.asarray(Image.open(f).convert("RGB"))


#: Photo name → loader. Grey photos become three identical channels.
PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    **{
        name: _skimage(name)
        for name in (
            "astronaut",
            "chelsea",
            "coffee",
            "rocket",
            "retina",
            "hubble_deep_field",
            "immunohistochemistry",
            "camera",
            "brick",
            "grass",
            "gravel",
            "moon",
            "coins",
            "page",
            "text",
        )
    },  # fmt: skip
    "motorcycle_left": _motorcycle(0),
    "motorcycle_right": _motorcycle(1),
    "grace_hopper": _grace_hopper,
}

#: The fixed split by image. Test photos are everyday scenes (portraits, an animal, food, a
#: grey photo); training gets textures, scientific images and the stereo pair.
PHOTO_SPLITS: dict[str, tuple[str, ...]] = {
    "train": (
        "motorcycle_left", "motorcycle_right", "retina", "hubble_deep_field",
        "immunohistochemistry", "brick", "grass", "gravel", "moon", "page", "text",
    ),
    "val": ("rocket", "coins"),
    "test": ("astronaut", "coffee", "grace_hopper", "chelsea", "camera"),
}  # fmt: skip


def load_photo(name: str) -> np.ndarray:
    """One bundled photo as HWC float32 RGB in [0, 1]."""
    if name not in PHOTOS:
        raise KeyError(f"unknown photo {name!r}; choose one of {sorted(PHOTOS)}")
    return to_rgb_float(PHOTOS[name]())


def load_photos(split: str) -> dict[str, np.ndarray]:
    if split not in PHOTO_SPLITS:
        raise KeyError(f"unknown split {split!r}; choose one of {sorted(PHOTO_SPLITS)}")
    return {name: load_photo(name) for name in PHOTO_SPLITS[split]}


def split_table():
    """The split as a table: one row per photo with its split and size."""
    import pandas as pd

    rows = [
        (split, name, "×".join(map(str, load_photo(name).shape[:2])))
        for split, names in PHOTO_SPLITS.items()
        for name in names
    ]
    return pd.DataFrame(rows, columns=["split", "photo", "H×W"])


# ----------------------------------------------------------------------------- dead leaves


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Zero-mean smooth random field: a ``cells``² Gaussian grid bilinearly upsampled."""
    from scipy.ndimage import zoom

    grid = rng.normal(size=(cells + 1, cells + 1))
    field = zoom(grid, (shape[0] / (cells + 1), shape[1] / (cells + 1)), order=1)
    return field[: shape[0], : shape[1]]


def dead_leaves(
    rng: np.random.Generator,
    size: int = 256,
    r_min: float = 2.0,
    r_max: float | None = None,
    alpha: float = 3.0,
    coverage: float = 0.995,
    texture: float = 0.5,
    shading: float = 0.5,
    supersample: int = 2,
    palette: np.ndarray | None = None,
) -> np.ndarray:
    """A dead-leaves image: opaque shapes dropped one over another until the canvas is covered.

    Radii follow the scale-invariant law p(r) ∝ r^-alpha on [r_min, r_max]; shapes are discs,
    ellipses, rotated squares and triangles. Colours are uniform in RGB, or drawn from
    ``palette`` (an N×3 array of colours, e.g. pixels of natural photos, so the colour
    statistics are natural). With probability ``texture`` a shape carries a texture (a
    sinusoid or a smooth noise field), with probability ``shading`` a smooth brightness
    gradient. Rendering at ``supersample``× and averaging down gives anti-aliased edges like a
    real camera's. Returns HWC float32 RGB in [0, 1].
    """
    r_max = r_max or size / 3
    ss = supersample
    n = size * ss
    canvas = np.zeros((n, n, 3), np.float32)
    covered = np.zeros((n, n), bool)
    n_covered, target = 0, coverage * n * n

    def colour() -> np.ndarray:
        if palette is None:
            return rng.random(3).astype(np.float32)
        return palette[int(rng.integers(len(palette)))].astype(np.float32)

    # Inverse-CDF sampling of the truncated power law.
    a = 1 - alpha
    u_lo, u_hi = r_min**a, r_max**a
    for _ in range(20000):
        if n_covered >= target:
            break
        radius = (u_lo + rng.random() * (u_hi - u_lo)) ** (1 / a) * ss
        cx, cy = rng.uniform(-radius, n + radius, size=2)
        x0, x1 = max(int(cx - radius * 1.5), 0), min(int(cx + radius * 1.5) + 1, n)
        y0, y1 = max(int(cy - radius * 1.5), 0), min(int(cy + radius * 1.5) + 1, n)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dx, dy = xx - cx, yy - cy
        t = rng.uniform(0, math.pi)
        u = math.cos(t) * dx + math.sin(t) * dy
        v = -math.sin(t) * dx + math.cos(t) * dy
        shape = rng.random()
        if shape < 0.35:
            mask = dx**2 + dy**2 <= radius**2
        elif shape < 0.6:
            aspect = rng.uniform(0.3, 1.0)
            mask = u**2 + (v / aspect) ** 2 <= radius**2
        elif shape < 0.85:
            mask = np.maximum(np.abs(u), np.abs(v)) <= radius / math.sqrt(2)
        else:  # triangle: inside three half-planes 120° apart
            mask = np.ones_like(u, bool)
            for k in range(3):
                phi = t + 2 * math.pi * k / 3
                mask &= math.cos(phi) * dx + math.sin(phi) * dy <= radius / 2
        mask &= ~covered[y0:y1, x0:x1]  # later shapes fall *behind* earlier ones
        if not mask.any():
            continue
        patch = np.broadcast_to(colour(), mask.shape + (3,)).copy()
        if rng.random() < shading:
            g = rng.normal(size=2) / (radius + 1)
            patch *= np.clip(1 + 0.5 * (g[0] * dx + g[1] * dy), 0, 2)[..., None]
        if rng.random() < texture:
            if rng.random() < 0.5:
                freq = rng.uniform(0.05, 0.4) / ss
                wave = np.sin(2 * math.pi * freq * u)
            else:
                cells = int(rng.integers(2, max(3, int(2 * radius / ss / 2))))
                wave = _smooth_noise(rng, mask.shape, min(cells, 24))
                if rng.random() < 0.5:  # a second colour blended by the field
                    mix = np.clip(0.5 + wave, 0, 1)[..., None]
                    patch = patch * (1 - mix) + colour() * mix
                    wave = wave * 0
            patch *= (1 + rng.uniform(0.1, 0.4) * wave)[..., None]
        region = canvas[y0:y1, x0:x1]
        region[mask] = patch[mask]
        covered[y0:y1, x0:x1] |= mask
        n_covered += int(mask.sum())
    canvas[~covered] = colour()  # background for the last gaps
    canvas = canvas.reshape(size, ss, size, ss, 3).mean(axis=(1, 3))
    return np.clip(canvas, 0, 1).astype(np.float32)


def random_dead_leaves(
    rng: np.random.Generator, size: int, palette: np.ndarray | None = None
) -> np.ndarray:
    """A dead-leaves image whose own statistics are drawn at random too (size law, amount of
    texture and shading, colour source), for an unlimited, varied training stream."""
    return dead_leaves(
        rng,
        size=size,
        r_min=float(rng.uniform(1.0, 4.0)),
        r_max=float(size * rng.uniform(0.2, 0.6)),
        alpha=float(rng.uniform(2.5, 3.5)),
        texture=float(rng.uniform(0.2, 0.8)),
        shading=float(rng.uniform(0.2, 0.8)),
        palette=palette if palette is not None and rng.random() < 0.7 else None,
    )


def colour_palette(images: list[np.ndarray], count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` pixel colours drawn at random from ``images``: natural colour statistics."""
    picks = []
    for _ in range(count):
        image = images[int(rng.integers(len(images)))]
        picks.append(image[int(rng.integers(image.shape[0])), int(rng.integers(image.shape[1]))])
    return np.asarray(picks, np.float32)


def dead_leaves_set(count: int, size: int, seed: int) -> list[np.ndarray]:
    """``count`` dead-leaves images; image ``i`` depends only on ``(seed, i)``."""
    return [dead_leaves(np.random.default_rng([seed, i]), size=size) for i in range(count)]


def cached_dead_leaves(folder: str | os.PathLike, count: int, size: int, seed: int) -> list:
    """:func:`dead_leaves_set` stored as PNGs under ``folder`` and reused while the settings
    match. The images returned are the 8-bit ones on disk, so a first run and a reuse give the
    same training data."""
    import json

    from pixel_utils.data.images import read_png, write_png

    folder = Path(folder)
    settings = {"count": count, "size": size, "seed": seed}
    files = [folder / f"dead_leaves_{i:04d}.png" for i in range(count)]
    meta = folder / "settings.json"
    fresh = not (meta.exists() and json.loads(meta.read_text()) == settings)
    if fresh or not all(f.exists() for f in files):
        folder.mkdir(parents=True, exist_ok=True)
        from pixel_utils.progress import tqdm

        for i, f in enumerate(tqdm(files, desc="dead leaves")):
            write_png(f, dead_leaves(np.random.default_rng([seed, i]), size=size))
        meta.write_text(json.dumps(settings))
    return [read_png(f) for f in files]


# ----------------------------------------------------------------------------- wallpapers

#: Real photographs among the wallpapers of Debian's ``mate-backgrounds`` and
#: ``plasma-workspace-wallpapers`` packages (the digital-art wallpapers are left out). An
#: opt-in training folder for the shipped teacher; never required.
WALLPAPER_PHOTOS = (
    *(f"/usr/share/backgrounds/mate/nature/{n}.jpg" for n in (
        "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird",
        "RainDrops", "Storm", "TwoWings", "Wood", "YellowFlower")),
    *(f"/usr/share/wallpapers/{n}/contents/images" for n in (
        "BytheWater", "ColdRipple", "ColorfulCups", "EveningGlow", "FallenLeaf", "Grey",
        "Kite", "OneStandsOut", "Path", "Volna", "summer_1am")),
)  # fmt: skip


def link_wallpapers(dest: str | os.PathLike) -> Path:
    """Fill ``dest`` with links to the installed wallpaper photos (the largest size of each
    Plasma wallpaper); missing packages are named with the command that installs them."""
    dest = Path(dest)
    found = []
    for entry in WALLPAPER_PHOTOS:
        path = Path(entry)
        if path.is_dir():
            sizes = sorted(path.iterdir(), key=lambda p: p.stat().st_size)
            path = sizes[-1] if sizes else path
            name = f"{Path(entry).parent.parent.name}{path.suffix}"
        else:
            name = path.name
        if path.is_file():
            found.append((name, path))
    if not found:
        raise FileNotFoundError(
            "no wallpaper photos installed; run: apt-get install mate-backgrounds "
            "plasma-workspace-wallpapers"
        )
    dest.mkdir(parents=True, exist_ok=True)
    for name, path in found:
        link = dest / name
        if not link.exists():
            link.symlink_to(path)
    return dest


# ----------------------------------------------------------------------------- user folders


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def check_folder(folder: str | os.PathLike) -> Path:
    """``folder`` as a path, or an error naming it: it does not exist, or is not a folder."""
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: folder does not exist")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a folder")
    return folder


def _warn_skipped(skipped: list[tuple[Path, str]]) -> None:
    if skipped:
        lines = "\n".join(f"  {path}: {why}" for path, why in skipped)
        warnings.warn(f"skipped {len(skipped)} unusable image(s):\n{lines}", stacklevel=3)


def load_folder(
    folder: str | os.PathLike, min_size: int = 1, limit: int | None = None
) -> dict[str, np.ndarray]:
    """Every usable image under ``folder`` (recursively), keyed by path relative to it.

    Grey, palette, RGBA and 16-bit files are converted to RGB float; corrupt, truncated or
    non-image files and images smaller than ``min_size`` on a side are skipped with one
    warning naming each. No usable image at all is an error. With ``limit``, only the first
    ``limit`` usable images in the order of their relative paths are read (a folder of large
    photos need not fit in memory to score twenty of them).
    """
    from pixel_utils.progress import tqdm

    folder = check_folder(folder)
    images, skipped = {}, []
    files = sorted(_image_files(folder), key=lambda p: str(p.relative_to(folder)))
    for path in tqdm(files, desc="reading photos", unit="img", leave=False):
        if limit is not None and len(images) >= limit:
            break
        try:
            image = read_image(path)
        except ImageReadError as err:
            skipped.append((path, str(err).removeprefix(f"{path}: ")))
            continue
        h, w = image.shape[:2]
        if min(h, w) < min_size:
            skipped.append((path, f"{w}×{h} is smaller than the {min_size}-pixel minimum"))
            continue
        images[str(path.relative_to(folder))] = image
    _warn_skipped(skipped)
    if not images:
        raise ValueError(f"{folder}: no usable images found")
    return images


def load_pairs(folder: str | os.PathLike) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """GoPro-style pairs: ``folder/blur/NAME`` with ``folder/sharp/NAME`` (same relative name).

    Returns ``(name, blurred, sharp)`` triples. Unmatched names, unreadable files and pairs
    whose sizes differ are skipped with a warning; no usable pair is an error.
    """
    folder = check_folder(folder)
    blur_dir, sharp_dir = folder / "blur", folder / "sharp"
    for sub in (blur_dir, sharp_dir):
        if not sub.is_dir():
            raise FileNotFoundError(f"{sub}: missing (expected {folder}/blur and {folder}/sharp)")
    pairs, skipped = [], []
    for blur_path in _image_files(blur_dir):
        name = str(blur_path.relative_to(blur_dir))
        sharp_path = sharp_dir / name
        if not sharp_path.exists():
            skipped.append((blur_path, f"no matching {sharp_path}"))
            continue
        try:
            blurred, sharp = read_image(blur_path), read_image(sharp_path)
        except ImageReadError as err:
            skipped.append((blur_path, str(err)))
            continue
        if blurred.shape != sharp.shape:
            skipped.append((blur_path, f"size {blurred.shape[:2]} ≠ sharp {sharp.shape[:2]}"))
            continue
        pairs.append((name, blurred, sharp))
    _warn_skipped(skipped)
    if not pairs:
        raise ValueError(f"{folder}: no usable blur/sharp pairs found")
    return pairs
