"""The fixed benchmark set every model and baseline is scored on.

Every test photo (centre-cropped) × every case in :data:`BENCHMARK_CASES` is degraded once and
saved losslessly: the sharp photo as an 8-bit PNG (its source is 8-bit), the degraded image as
a 16-bit PNG (so the noise survives), and each case's PSF as ``.npy``. ``manifest.json`` records
the parameters and the noise seed of every file. The noise seed of a (photo, case) pair depends
only on the profile seed and the two names, so rebuilding gives byte-identical files.
"""

from __future__ import annotations

import json
import os
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pixel_utils.artefacts import atomic_write, atomic_write_text, sha256_file
from pixel_utils.data.degradations import DegradationSpec, crop_like, degrade
from pixel_utils.data.images import read_png, write_png
from pixel_utils.data.sources import PHOTO_SPLITS, load_photo
from pixel_utils.progress import tqdm


@dataclass(frozen=True)
class BenchmarkCase:
    name: str
    spec: DegradationSpec
    label: str  # for tables and plots


#: The noise σ of every blur case.
BENCHMARK_NOISE = 0.01
_N = BENCHMARK_NOISE
BENCHMARK_CASES: tuple[BenchmarkCase, ...] = (
    BenchmarkCase("gauss1", DegradationSpec("gaussian", {"sigma": 1.0}, _N), "Gaussian σ=1"),
    BenchmarkCase("gauss2", DegradationSpec("gaussian", {"sigma": 2.0}, _N), "Gaussian σ=2"),
    BenchmarkCase("gauss3", DegradationSpec("gaussian", {"sigma": 3.0}, _N), "Gaussian σ=3"),
    BenchmarkCase(
        "aniso",
        DegradationSpec("anisotropic", {"sigma_x": 3.0, "sigma_y": 1.0, "angle": 30.0}, _N),
        "Anisotropic 3×1",
    ),
    BenchmarkCase(
        "motion15",
        DegradationSpec("motion_linear", {"length": 15.0, "angle": 45.0}, _N),
        "Linear motion 15 px",
    ),
    # Hand-shake PSFs like measured ones (thin, curved, uneven): seeds no training run draws.
    BenchmarkCase(
        "shake17",
        DegradationSpec("camera_shake", {"size": 17.0, "seed": 7}, _N),
        "Camera shake 17 px",
    ),
    BenchmarkCase(
        "shake25",
        DegradationSpec("camera_shake", {"size": 25.0, "seed": 12}, _N),
        "Camera shake 25 px",
    ),
    BenchmarkCase("defocus4", DegradationSpec("defocus", {"radius": 4.0}, _N), "Defocus r=4"),
    BenchmarkCase(
        "gauss1.5_jpeg40",
        DegradationSpec("gaussian", {"sigma": 1.5}, _N, jpeg_quality=40),
        "Gaussian σ=1.5 + JPEG q40",
    ),
    # Not blurred: a sharpener should give a sharp photo back (a gain near 0 dB, or a little
    # from the noise it removes), not sharpen it further. (Last, so that the cases before it
    # keep their index, which seeds their validation noise. Not "sharp": that folder holds the
    # ground truth.)
    BenchmarkCase("no_blur", DegradationSpec("none", {}, _N), "No blur (noise only)"),
)
#: The case the report's headline numbers are measured on.
HEADLINE_CASE = "gauss3"


def _pair_seed(seed: int, photo: str, case: str) -> int:
    # crc32 is stable across Python runs (hash() of a str is not).
    return int(seed) * 1_000_003 + zlib.crc32(f"{photo}/{case}".encode())


#: A folder photo smaller than this on a side is skipped (with a warning naming it): the
#: largest benchmark blurs span 25 pixels, so a thumbnail or an icon would be scored mostly on
#: its reflected border, and would pull the folder's mean towards noise.
FOLDER_MIN_SIDE = 64


def benchmark_photo_names(paths: list[str]) -> list[str]:
    """File-safe, distinct photo names for a folder's images (paths relative to it): the path
    without its suffix, folders joined by ``_`` (``a/b.png`` → ``a_b``); where two paths would
    share a name (``x.png`` and ``x.jpg``, or ``a/b.png`` and ``a_b.png``), each of them is
    named by its whole path, percent-quoted, instead, so no photo is dropped or scored twice."""
    from urllib.parse import quote

    short = [Path(p).with_suffix("").as_posix().replace("/", "_") for p in paths]
    taken = Counter(short)
    names = [
        s if taken[s] == 1 else quote(Path(p).as_posix(), safe="")
        for s, p in zip(short, paths, strict=True)
    ]
    if len(set(names)) != len(names):
        clashes = sorted(n for n, k in Counter(names).items() if k > 1)
        raise ValueError(f"photos with clashing names in the benchmark folder: {clashes}")
    return names


def build_benchmark(
    out_dir: str | os.PathLike,
    crop: int,
    seed: int = 0,
    max_photos: int | None = None,
    cases: tuple[BenchmarkCase, ...] = BENCHMARK_CASES,
    folder: str | os.PathLike | None = None,
) -> dict:
    """Write the benchmark under ``out_dir`` and return its manifest.

    The sharp photos are the bundled test split, or every image of ``folder`` (a user's own
    photos, e.g. CBSD68, to measure generalisation). Each photo is blurred whole and then
    centre-cropped to at most ``crop``² (see :func:`~pixel_utils.data.degradations.degrade`).
    An existing benchmark whose manifest records the same settings is reused as is.
    """
    out_dir = Path(out_dir)
    if any(c.name == "sharp" for c in cases):
        raise ValueError("a benchmark case may not be called 'sharp': that folder holds the photos")
    if folder is not None:
        from pixel_utils.data.sources import load_folder

        loaded = load_folder(folder, min_size=FOLDER_MIN_SIDE, limit=max_photos)
        names = sorted(loaded)
        photos = benchmark_photo_names(names)
        images = dict(zip(photos, (loaded[n] for n in names), strict=True))
    else:
        photos = list(PHOTO_SPLITS["test"][:max_photos])
        images = None
    settings = {
        "crop": crop,
        "seed": seed,
        "folder": str(folder) if folder is not None else None,
        "photos": photos,
        "cases": [{"name": c.name, "label": c.label, **asdict(c.spec)} for c in cases],
        "headline_case": HEADLINE_CASE,
    }
    if folder is not None:  # a photo edited in place under the same name is degraded afresh
        settings["photo_sha256"] = [sha256_file(Path(folder) / n) for n in names]
    manifest_path = out_dir / "manifest.json"
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        if old.get("settings") == settings and all(
            (out_dir / e["blurred"]).exists() for e in old["entries"]
        ):
            return old
    entries = []
    for case in cases:
        atomic_write(_kernel_path(out_dir, case.name), lambda tmp, c=case: _save_npy(tmp, c))
    for photo in tqdm(photos, desc="benchmark photos"):
        full = images[photo] if images is not None else load_photo(photo)
        sharp = crop_like(full, crop)
        sharp_file = write_png(out_dir / "sharp" / f"{photo}.png", sharp, bits=8)
        for case in cases:
            noise_seed = _pair_seed(seed, photo, case.name)
            rng = np.random.default_rng(noise_seed)
            blurred, _ = degrade(full, case.spec, rng, crop=crop)
            blurred_file = write_png(out_dir / case.name / f"{photo}.png", blurred, bits=16)
            entries.append(
                {
                    "photo": photo,
                    "case": case.name,
                    "sharp": str(sharp_file.relative_to(out_dir)),
                    "blurred": str(blurred_file.relative_to(out_dir)),
                    "kernel": str(_kernel_path(out_dir, case.name).relative_to(out_dir)),
                    "noise_seed": noise_seed,
                    "shape": list(sharp.shape),
                    "sha256": sha256_file(blurred_file),
                }
            )
    manifest = {"settings": settings, "entries": entries}
    atomic_write_text(manifest_path, json.dumps(manifest, indent=1))
    return manifest


def _save_npy(path: Path, case: BenchmarkCase) -> None:
    with open(path, "wb") as f:  # a file object: np.save would add ".npy" to a temp name
        np.save(f, case.spec.kernel())


def _kernel_path(out_dir: Path, case: str) -> Path:
    path = out_dir / "kernels" / f"{case}.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class BenchmarkItem:
    photo: str
    case: str
    blurred: np.ndarray
    sharp: np.ndarray
    kernel: np.ndarray


def load_manifest(bench_dir: str | os.PathLike) -> dict:
    path = Path(bench_dir) / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no benchmark here; run notebook 01 (build_benchmark)")
    return json.loads(path.read_text())


def iter_benchmark(
    bench_dir: str | os.PathLike, case: str | None = None
) -> Iterator[BenchmarkItem]:
    """Yield every benchmark item (or only those of ``case``), images as HWC float32."""
    bench_dir = Path(bench_dir)
    for e in load_manifest(bench_dir)["entries"]:
        if case is not None and e["case"] != case:
            continue
        yield BenchmarkItem(
            photo=e["photo"],
            case=e["case"],
            blurred=read_png(bench_dir / e["blurred"]),
            sharp=read_png(bench_dir / e["sharp"]),
            kernel=np.load(bench_dir / e["kernel"]),
        )


def score_degraded(bench_dir: str | os.PathLike):
    """Mean PSNR/SSIM of the degraded inputs against the sharp photos, one row per case."""
    from pixel_utils.evaluation.scoring import score_benchmark

    labels = {c.name: c.label for c in BENCHMARK_CASES}
    scores = score_benchmark({"blurred": lambda item: item.blurred}, bench_dir, desc="degraded")
    table = scores.assign(case=scores["case"].map(lambda c: labels.get(c, c)))
    table = table.rename(columns={"psnr": "PSNR (dB)", "ssim": "SSIM"})
    return table.groupby("case", sort=False)[["PSNR (dB)", "SSIM"]].mean()
