"""The committed weights and the README are what a run produced, not typed by hand."""

import json
from pathlib import Path

import numpy as np
import pytest

from pixel_utils.benchmark import BENCHMARK_CASES, build_benchmark, iter_benchmark
from pixel_utils.inference import sharpen
from pixel_utils.metrics import psnr, ssim
from pixel_utils.pretrained import WEIGHTS_DIR, shipped_path
from pixel_utils.readme import readme_results, results_markdown
from pixel_utils.training import model_from_checkpoint

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = WEIGHTS_DIR / "manifest.json"


@pytest.mark.skipif(not MANIFEST.exists(), reason="no shipped weights yet (make report)")
def test_shipped_weights_reproduce_their_manifest(tmp_path):
    manifest = json.loads(MANIFEST.read_text())
    total = sum(shipped_path(n).stat().st_size for n in manifest["models"])
    assert total <= 10 * 2**20
    case_name = next(iter(manifest["models"].values()))["benchmark"]["case"]
    case = next(c for c in BENCHMARK_CASES if c.name == case_name)
    from pixel_utils.profiles import PROFILES

    profile = PROFILES[manifest["profile"]]
    build_benchmark(tmp_path, profile.benchmark_crop, manifest["seed"], cases=(case,))
    items = list(iter_benchmark(tmp_path, case_name))
    for name, entry in manifest["models"].items():
        model = model_from_checkpoint(shipped_path(name))
        outs = [sharpen(model, it.blurred) for it in items]
        measured_psnr = np.mean([psnr(o, it.sharp) for o, it in zip(outs, items, strict=True)])
        measured_ssim = np.mean([ssim(o, it.sharp) for o, it in zip(outs, items, strict=True)])
        assert measured_psnr == pytest.approx(entry["benchmark"]["psnr"], abs=0.02), name
        assert measured_ssim == pytest.approx(entry["benchmark"]["ssim"], abs=1e-3), name


RESULTS = ROOT / "figures" / "results.json"


@pytest.mark.skipif(not RESULTS.exists(), reason="no committed results yet (make report)")
def test_readme_table_is_generated_from_the_results():
    results = json.loads(RESULTS.read_text())
    readme = (ROOT / "README.md").read_text()
    assert readme_results(readme) == results_markdown(results).strip()
