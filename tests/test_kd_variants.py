"""Two more distillation recipes (make kd-variants), on the smoke profile."""

import json

import numpy as np
import pytest
import torch

from pixel_utils.training import kd_variants


def test_unlabelled_views_mix_the_first_half_and_zoom_the_second():
    rng = np.random.default_rng(0)
    a, b = torch.rand(4, 3, 16, 16), torch.rand(4, 3, 16, 16)
    views = kd_variants.unlabelled_views(a, b, np.random.default_rng(0))
    assert views.shape == a.shape and views.min() >= 0 and views.max() <= 1
    lam = rng.uniform(*kd_variants.MIX_RANGE, size=2)
    for i in range(2):  # each mixed patch is its own convex blend of the two inputs
        expected = lam[i] * a[i] + (1 - lam[i]) * b[i]
        assert torch.allclose(views[i], expected.float(), atol=1e-6)
    # A flat patch stays flat when zoomed: the view is the centre of its own input, enlarged.
    flat = torch.full((2, 3, 16, 16), 0.25)
    zoomed = kd_variants.unlabelled_views(flat, b[:2], np.random.default_rng(1))[1]
    assert torch.allclose(zoomed, flat[1], atol=1e-6)


def test_alternating_batches_serve_views_without_ground_truth(tmp_path, monkeypatch):
    from pixel_utils.artefacts import atomic_torch_save

    def cache(path, fill):
        x = torch.full((3, 2, 3, 8, 8), fill).half()
        atomic_torch_save(path, {"inputs": x, "sharp": x, "teacher": x, "features": {}})
        return path

    labelled, views = cache(tmp_path / "a.pt", 0.25), cache(tmp_path / "b.pt", 0.75)
    stream = kd_variants.AlternatingBatches(labelled, views, 5, seed=0)
    assert len(stream) == 5
    items = [stream[i] for i in range(5)]
    for i, (inputs, targets) in enumerate(items):
        assert float(inputs.mean()) == (0.25 if i % 2 == 0 else 0.75)
        assert ("sharp" in targets) == (i % 2 == 0) and "teacher" in targets
    with pytest.raises(IndexError):
        stream[5]


def test_unknown_variant_and_case_are_named(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXEL_ROOT", str(tmp_path))
    with pytest.raises(ValueError, match="unknown variant 'mixup'"):
        kd_variants.variant_stream("mixup", tmp_path / "x.pt", tmp_path / "y.pt")
    with pytest.raises(ValueError, match="unknown \\['gauss9'\\].*known: gauss1"):
        kd_variants.run_kd_variants("smoke", seeds=1, cases=("gauss3", "gauss9"))


def test_kd_variants_trains_each_recipe_per_seed_and_records_provenance(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXEL_ROOT", str(tmp_path))
    result = kd_variants.run_kd_variants("smoke", seeds=2, cases=("gauss3", "no_blur"),
                                         out_dir=tmp_path / "fig")  # fmt: skip
    saved = json.loads((tmp_path / "fig" / "kd_variants.json").read_text())
    assert (tmp_path / "fig" / "kd_variants.png").stat().st_size > 0
    assert list(saved["arms"]) == ["distilled", *kd_variants.VARIANTS]
    for arm, row in saved["arms"].items():
        assert set(row["gain_db"]) == {"gauss3", "no_blur"}
        assert row["vs_scratch"]["gauss3"]["seeds"] == 2
        assert ("vs_distilled" in row) == (arm != "distilled")
    # Every variant is its own checkpoint, one per seed; the report's students are reused.
    ckpts = {p.name for p in (tmp_path / "data").rglob("student_*.pt")}
    variants = {f"student_distilled_{v}{s}.pt" for v in kd_variants.VARIANTS for s in ("", "_s1")}
    reports = {f"student_{arm}{s}.pt" for arm in ("distilled", "scratch") for s in ("", "_s1")}
    assert ckpts == variants | reports
    # The ensemble labels are the teacher's ×8 self-ensemble of the cached inputs; the views
    # carry no sharp image (zeros in the cache's layout).
    from pixel_utils.evaluation.inference import SelfEnsemble
    from pixel_utils.profiles import resolve_profile
    from pixel_utils.training import stages

    source = next(p for p in (tmp_path / "data").rglob("teacher_outputs_*.pt")
                  if "_" not in p.stem.removeprefix("teacher_outputs_"))  # fmt: skip
    ensemble = torch.load(source.with_name(f"{source.stem}_ensemble.pt"), weights_only=True)
    cache = torch.load(source, weights_only=True)
    teacher = stages.distillation_teacher(resolve_profile("smoke")).model.eval()
    with torch.no_grad():
        expected = SelfEnsemble(teacher)(cache["inputs"][0].float()).clamp(0, 1).half()
    assert torch.equal(ensemble["teacher"][0], expected)
    assert torch.equal(ensemble["inputs"], cache["inputs"])
    views = torch.load(next(source.parent.glob("*_views0.pt")), weights_only=True)
    assert views["sharp"].abs().max() == 0 and views["teacher"].shape == cache["teacher"].shape
    # The assistant's labels are the shipped student's output, named by its weights.
    from pixel_utils.app.pretrained import shipped_path
    from pixel_utils.artefacts import sha256_file
    from pixel_utils.training.loop import model_from_checkpoint

    digest = sha256_file(shipped_path("student"))[:12]
    labelled = torch.load(source.with_name(f"{source.stem}_assistant{digest}.pt"),
                          weights_only=True)  # fmt: skip
    assistant = model_from_checkpoint(shipped_path("student")).float().eval()
    with torch.no_grad():
        expected = assistant(cache["inputs"][0].float()).clamp(0, 1).half()
    assert torch.equal(labelled["teacher"][0], expected)
    assert torch.equal(labelled["sharp"], cache["sharp"])
    assert saved["assistant"]["sha256"].startswith(digest)
    # Scores are the benchmark's: the distilled arm's gain matches its own comparison.
    gap = saved["arms"]["distilled"]["gain_db"]["gauss3"] - saved["scratch_gain_db"]["gauss3"]
    assert gap == pytest.approx(saved["arms"]["distilled"]["vs_scratch"]["gauss3"]["mean_db"])
    assert {"git_commit", "pipeline_sha256", "utc"} <= set(saved["provenance"])
    assert saved["command"] == ("python -m pixel_utils.training.kd_variants --profile smoke "
                                "--seeds 2 --cases gauss3,no_blur")  # fmt: skip
    text = kd_variants.kd_variants_findings(result)
    assert saved["command"] in text and "Ensemble labels" in text and "`no_blur`" in text
    plain = saved["arms"]["unlabelled_views"]["vs_distilled"]["gauss3"]
    assert f"{plain['mean_db']:+.3f} dB" in text


def _comparison(mean, half):
    return {"mean_db": mean, "ci95_over_images": half, "ci_excludes_zero": abs(mean) > half,
            "ci95_over_seeds": 0.01, "per_seed_db": {}, "images": 5, "images_better": 3,
            "seeds": 3}  # fmt: skip


def _result(ensemble, views, assistant):
    pairs = zip(kd_variants.VARIANTS, (ensemble, views, assistant), strict=True)
    arms = {v: {"vs_distilled": {"gauss3": c}} for v, c in pairs}
    return {"cases": ["gauss3"], "steps": 600, "seeds": 3, "arms": arms}


def test_lesson_says_a_variant_beat_the_recipe_only_when_its_interval_excludes_zero():
    lost = _comparison(-0.2, 0.06)
    tied = kd_variants.kd_variants_lesson(_result(_comparison(0.05, 0.06), lost, lost))
    assert "None beat" in tied and "ensemble labels +0.05 ± 0.06 dB" in tied
    assert "unlabelled views -0.20 ± 0.06 dB" in tied and "assistant labels -0.20" in tied
    won = kd_variants.kd_variants_lesson(_result(_comparison(0.05, 0.04), lost,
                                                 _comparison(0.1, 0.02)))  # fmt: skip
    assert "ensemble labels and assistant labels beat the report's recipe" in won
    assert "None" not in won


def test_lesson_reads_a_run_made_before_a_variant_existed():
    result = _result(_comparison(0.0, 0.02), _comparison(-0.2, 0.06), _comparison(0.0, 0.02))
    del result["arms"]["assistant_labels"]
    text = kd_variants.kd_variants_lesson(result)
    assert "**2 more recipes**" in text and "assistant" not in text


def test_a_stream_is_for_distilled_students_only(tmp_path, monkeypatch):
    from pixel_utils.profiles import resolve_profile
    from pixel_utils.training import stages

    monkeypatch.setenv("PIXEL_ROOT", str(tmp_path))
    profile = resolve_profile("smoke")
    setup = stages.DistillSetup(None, [], tmp_path / "cache.pt", {})
    stream = kd_variants.variant_stream("ensemble_labels", tmp_path / "x.pt", setup.cache)
    with pytest.raises(ValueError, match="only a distilled student takes a stream"):
        stages.train_student(profile, setup, distill=False, stream=stream)
