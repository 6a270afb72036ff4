import json

import numpy as np

from pixel_utils.data.benchmark import (
    BENCHMARK_CASES,
    HEADLINE_CASE,
    build_benchmark,
    iter_benchmark,
)
from pixel_utils.evaluation.metrics import psnr


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_benchmark_rebuild_is_byte_identical(tmp_path):
    manifest = build_benchmark(tmp_path / "a", crop=48, seed=3, max_photos=2)
    build_benchmark(tmp_path / "b", crop=48, seed=3, max_photos=2)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert len(manifest["entries"]) == 2 * len(BENCHMARK_CASES)
    assert manifest["settings"]["headline_case"] == HEADLINE_CASE
    saved = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert saved == manifest and all("noise_seed" in e for e in saved["entries"])


def test_benchmark_images_are_degraded_versions_of_the_sharp_ones(tmp_path):
    build_benchmark(tmp_path, crop=48, seed=0, max_photos=1)
    items = list(iter_benchmark(tmp_path, case=HEADLINE_CASE))
    assert len(items) == 1
    item = items[0]
    assert item.blurred.shape == item.sharp.shape == (48, 48, 3)
    assert 15 < psnr(item.blurred, item.sharp) < 35
    assert np.isclose(item.kernel.sum(), 1.0)


def test_benchmark_is_reused_when_settings_match(tmp_path):
    build_benchmark(tmp_path, crop=32, seed=0, max_photos=1)
    marker = tmp_path / "manifest.json"
    mtime = marker.stat().st_mtime_ns
    build_benchmark(tmp_path, crop=32, seed=0, max_photos=1)
    assert marker.stat().st_mtime_ns == mtime


def test_evaluation_scores_against_a_reference_method_in_one_pass(tmp_path):
    import math

    import torch

    from pixel_utils.evaluation.scoring import evaluate_models, fidelity

    class Brighter(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(()))
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            return (x + 0.01).clamp(0, 1)

    build_benchmark(tmp_path, crop=32, seed=0, max_photos=1)
    model = Brighter()
    scores = evaluate_models({"blurred": None, "brighter": model}, tmp_path, reference="blurred")
    assert model.calls == len(BENCHMARK_CASES)  # once per image, not again for the reference
    fid = fidelity(scores)
    assert math.isinf(fid["blurred"]["psnr"])
    assert 35 < fid["brighter"]["psnr"] < 45  # a 0.01 shift ≈ 40 dB against the reference


def test_the_unblurred_case_is_the_sharp_photo_plus_noise(tmp_path):
    build_benchmark(tmp_path, crop=48, seed=0, max_photos=1)
    (item,) = list(iter_benchmark(tmp_path, case="no_blur"))
    assert item.kernel.shape == (1, 1) and item.kernel.sum() == 1.0
    residual = item.blurred.astype(np.float64) - item.sharp.astype(np.float64)
    # Only the noise (σ = 0.01, clipped at 0 and 1) separates it from the ground truth.
    assert 0.007 < residual.std() < 0.012 and abs(residual.mean()) < 0.003


def test_a_case_may_not_overwrite_the_ground_truth(tmp_path):
    import pytest

    from pixel_utils.data.benchmark import BenchmarkCase
    from pixel_utils.data.degradations import DegradationSpec

    clash = BenchmarkCase("sharp", DegradationSpec("none", {}, 0.01), "no blur")
    with pytest.raises(ValueError, match="sharp"):
        build_benchmark(tmp_path, crop=32, cases=(clash,))


def test_a_folder_benchmark_skips_photos_too_small_to_blur_and_names_them(tmp_path):
    import pytest

    from pixel_utils.data.benchmark import FOLDER_MIN_SIDE
    from pixel_utils.data.images import write_png

    rng = np.random.default_rng(0)
    photos = tmp_path / "photos"
    write_png(photos / "big.png", rng.random((FOLDER_MIN_SIDE, 80, 3)))
    write_png(photos / "icon.png", rng.random((7, FOLDER_MIN_SIDE + 20, 3)))
    with pytest.warns(UserWarning, match=r"icon.png: 84×7 is smaller than the 64-pixel"):
        manifest = build_benchmark(tmp_path / "bench", crop=48, folder=photos)
    assert manifest["settings"]["photos"] == ["big"]


def test_a_folder_benchmark_scores_every_photo_even_when_their_names_clash(tmp_path):
    from PIL import Image

    from pixel_utils.data.benchmark import BENCHMARK_CASES, benchmark_photo_names
    from pixel_utils.data.images import write_png

    names = ["a/b.png", "a_b.png", "x.png", "x.bmp", "y.png"]
    assert benchmark_photo_names(names) == ["a%2Fb.png", "a_b.png", "x.png", "x.bmp", "y"]
    rng = np.random.default_rng(0)
    photos = tmp_path / "photos"
    write_png(photos / "x.png", rng.random((80, 80, 3)))
    write_png(photos / "x" / "y.png", rng.random((80, 80, 3)))
    write_png(photos / "x_y.png", rng.random((80, 80, 3)))
    Image.fromarray((rng.random((80, 80, 3)) * 255).astype(np.uint8)).save(photos / "x.bmp")
    manifest = build_benchmark(tmp_path / "bench", crop=48, folder=photos,
                               cases=BENCHMARK_CASES[:1])  # fmt: skip
    photos_scored = manifest["settings"]["photos"]
    assert len(photos_scored) == len(set(photos_scored)) == 4
    assert len({e["blurred"] for e in manifest["entries"]}) == 4


def test_read_png_gives_back_exactly_what_write_png_wrote(tmp_path):
    """8-bit files are read by Pillow, 16-bit colour files by pypng: both give back the
    written levels exactly, and an 8-bit palette file is expanded to its colours."""
    from PIL import Image

    from pixel_utils.data.images import read_png, to_uint8, to_uint16, write_png

    rng = np.random.default_rng(0)
    image = rng.random((7, 9, 3)).astype(np.float32)
    for bits, quantise in ((8, to_uint8), (16, to_uint16)):
        back = read_png(write_png(tmp_path / f"x{bits}.png", image, bits=bits))
        assert back.dtype == np.float32 and back.shape == (7, 9, 3)
        written = quantise(image)
        np.testing.assert_array_equal(
            back, written.astype(np.float32) / np.iinfo(written.dtype).max
        )
    colours = np.array([[0, 0, 0], [255, 128, 0]], np.uint8)
    index = (rng.random((5, 6)) > 0.5).astype(np.uint8)
    palette = Image.fromarray(index, mode="P")
    palette.putpalette(colours.ravel().tolist())
    palette.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_png(tmp_path / "p.png"), colours[index] / np.float32(255))


def test_cached_outputs_are_reused_for_the_same_weights_and_input_only(tmp_path):
    import torch

    from pixel_utils.evaluation.scoring import evaluate_models

    class Shift(torch.nn.Module):
        def __init__(self, by):
            super().__init__()
            self.by = torch.nn.Parameter(torch.tensor(by))
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            return (x + self.by).clamp(0, 1)

    build_benchmark(tmp_path, crop=32, seed=0, max_photos=1)
    model = Shift(0.01)
    fresh = evaluate_models({"t": model}, tmp_path)
    first = evaluate_models({"t": model}, tmp_path, cached=("t",))
    assert model.calls == 2 * len(BENCHMARK_CASES)
    again = evaluate_models({"t": model}, tmp_path, cached=("t",))
    assert model.calls == 2 * len(BENCHMARK_CASES)  # read back, not run again
    assert fresh.equals(first) and first.equals(again)
    # Other weights get their own outputs.
    other = Shift(0.02)
    shifted = evaluate_models({"t": other}, tmp_path, cached=("t",))
    assert other.calls == len(BENCHMARK_CASES)
    assert not shifted["psnr"].equals(first["psnr"])
    # Another input (a rebuilt benchmark with other noise) is not served a stale output.
    build_benchmark(tmp_path, crop=32, seed=1, max_photos=1)
    evaluate_models({"t": model}, tmp_path, cached=("t",))
    assert model.calls == 3 * len(BENCHMARK_CASES)
    assert not list((tmp_path / "outputs").rglob("*.tmp"))
