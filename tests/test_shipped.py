"""The committed weights and the README are what a run produced, not typed by hand."""

import json
from pathlib import Path

import numpy as np
import pytest

from pixel_utils.app.pretrained import WEIGHTS_DIR, shipped_path
from pixel_utils.data.benchmark import BENCHMARK_CASES, build_benchmark, iter_benchmark
from pixel_utils.evaluation.inference import sharpen
from pixel_utils.evaluation.metrics import psnr, ssim
from pixel_utils.report.readme import readme_results, results_markdown
from pixel_utils.training.loop import model_from_checkpoint

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = WEIGHTS_DIR / "manifest.json"


@pytest.mark.skipif(not MANIFEST.exists(), reason="no shipped weights yet (make weights)")
def test_shipped_weights_reproduce_their_manifest(tmp_path):
    """Each shipped model, run now, scores what its manifest says on the headline case and on
    camera shake (the benchmark rebuilt from the manifest's profile and seed)."""
    from pixel_utils.profiles import PROFILES

    manifest = json.loads(MANIFEST.read_text())
    total = sum(shipped_path(n).stat().st_size for n in manifest["models"])
    assert total <= 10 * 2**20
    for name, entry in manifest["models"].items():
        profile = PROFILES[entry["profile"]]
        cases = tuple(c for c in BENCHMARK_CASES if c.name in ("gauss3", "shake17"))
        bench = tmp_path / name
        build_benchmark(bench, profile.benchmark_crop, entry["seed"], cases=cases)
        model = model_from_checkpoint(shipped_path(name))
        for case in cases:
            items = list(iter_benchmark(bench, case.name))
            outs = [sharpen(model, it.blurred) for it in items]
            pairs = list(zip(outs, items, strict=True))
            measured_psnr = np.mean([psnr(o, it.sharp) for o, it in pairs])
            measured_ssim = np.mean([ssim(o, it.sharp) for o, it in pairs])
            expected = entry["benchmark"][case.name]
            assert measured_psnr == pytest.approx(expected["psnr"], abs=0.02), (name, case.name)
            assert measured_ssim == pytest.approx(expected["ssim"], abs=1e-3), (name, case.name)


RESULTS = ROOT / "figures" / "results.json"


@pytest.mark.skipif(not RESULTS.exists(), reason="no committed results yet (make report)")
def test_readme_table_is_generated_from_the_results():
    results = json.loads(RESULTS.read_text())
    readme = (ROOT / "README.md").read_text()
    assert readme_results(readme) == results_markdown(results).strip()


@pytest.mark.skipif(not RESULTS.exists(), reason="no committed results yet (make report)")
def test_readme_says_where_each_speed_was_timed_and_which_engine_serves():
    """The report's rows are timed on the report's machine, the shipped student's come from
    its manifest; OpenVINO serves only where the CPU has AMX int8, so the README says so."""
    results = json.loads(RESULTS.read_text())
    shipped = results["shipped_student"]
    text = results_markdown(results)
    assert "the shipped student's rows come from its manifest, timed on the CPU named" in text
    assert "shipped student's rows" not in results_markdown(results | {"shipped_student": None})
    on_ort = results_markdown(
        results | {"shipped_student": shipped | {"served_engine": "onnxruntime"}}
    )
    assert (
        "serves in int8 (onnxruntime on the CPU that timed it; OpenVINO on a CPU with AMX int8): "
        in on_ort
    )
    on_ov = results_markdown(results | {"shipped_student": shipped | {"served_engine": "openvino"}})
    assert (
        "serves in int8 (OpenVINO on the CPU that timed it; onnxruntime on a CPU without AMX"
        in on_ov
    )


@pytest.mark.skipif(not RESULTS.exists(), reason="no committed results yet (make report)")
def test_readme_shipped_student_is_the_shipped_one():
    """The README's shipped-student rows are the weights this checkout ships: re-shipping the
    student (`make student`) without regenerating the README fails here."""
    from pixel_utils.report.readme import shipped_student_summary

    recorded = json.loads(RESULTS.read_text())["shipped_student"]
    assert recorded == json.loads(json.dumps(shipped_student_summary()))
    assert "shipped student (`make student`), served (int8" in (ROOT / "README.md").read_text()


@pytest.mark.skipif(not RESULTS.exists(), reason="no committed results yet (make report)")
def test_committed_results_come_from_these_pipeline_sources():
    """figures/results.json (and so the README) was produced by exactly the package, notebooks
    and shipped teacher this checkout holds; any change to them needs a new `make report`."""
    from pixel_utils.provenance import pipeline_sources_hash

    recorded = json.loads(RESULTS.read_text())["provenance"].get("pipeline_sha256")
    assert recorded == pipeline_sources_hash(ROOT), (
        "figures/results.json comes from other pipeline sources than this checkout: "
        "run `make report` and commit its results"
    )


def test_pipeline_hash_changes_with_any_source(tmp_path):
    from pixel_utils.provenance import pipeline_sources_hash

    (tmp_path / "pixel_utils").mkdir()
    (tmp_path / "notebooks").mkdir()
    module = tmp_path / "pixel_utils" / "a.py"
    module.write_text("x = 1\n")
    (tmp_path / "notebooks" / "01_a.ipynb").write_text("{}")
    before = pipeline_sources_hash(tmp_path)
    module.write_text("x = 2\n")
    assert pipeline_sources_hash(tmp_path) != before
    module.write_text("x = 1\n")
    assert pipeline_sources_hash(tmp_path) == before
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "f.png").write_bytes(b"figure")  # outputs do not count
    assert pipeline_sources_hash(tmp_path) == before


def test_a_committed_run_of_other_sources_says_so(tmp_path):
    from pixel_utils.provenance import committed_run_words, pipeline_sources_hash

    (tmp_path / "pixel_utils").mkdir()
    (tmp_path / "pixel_utils" / "a.py").write_text("x = 1\n")
    here = pipeline_sources_hash(tmp_path)
    assert committed_run_words({"pipeline_sha256": here}, "make sweep", tmp_path) == ""
    words = committed_run_words({"pipeline_sha256": "ab" * 32}, "make sweep", tmp_path)
    assert f"`{'ab' * 6}`, not this checkout's `{here[:12]}`" in words
    assert "(`make sweep` measures them again)" in words
    assert "`?`" in committed_run_words({}, "make sweep", tmp_path)  # none recorded


def test_speed_notes_say_whether_the_cpu_has_int8_dot_products():
    from pixel_utils.report.readme import cpu_words

    epyc = {"cpu_model": "AMD EPYC", "cpu_count": 2}
    assert (
        cpu_words(epyc | {"int8_vnni": True}) == "AMD EPYC (2 cores, with VNNI int8 instructions)"
    )
    assert "without VNNI" in cpu_words(epyc | {"int8_vnni": False})
    xeon = {"cpu_model": "Intel Xeon", "cpu_count": 2, "int8_vnni": True, "int8_amx": True}
    assert cpu_words(xeon) == "Intel Xeon (2 cores, with VNNI and AMX int8 instructions)"
    assert cpu_words(xeon | {"int8_amx": False}) == cpu_words(xeon | {"int8_amx": None})
    assert cpu_words({"platform": "Linux"}) == "Linux"  # an old record: no flags, no claim


def test_provenance_sees_an_edited_pipeline_source():
    """A run on edited sources must not be recorded as one of a clean commit."""
    import shutil
    import subprocess

    from pixel_utils.provenance import provenance

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    probe = ROOT / "pixel_utils" / "_provenance_probe.py"
    try:
        probe.write_text("# an edit that no commit holds\n")
        listed = subprocess.run(["git", "status", "--porcelain", "--", str(probe)], cwd=ROOT,
                                capture_output=True, text=True).stdout  # fmt: skip
        if not listed.strip():
            pytest.skip("git ignores the probe file")
        assert provenance()["git_dirty"] is True
    finally:
        probe.unlink(missing_ok=True)
