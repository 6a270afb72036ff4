"""Distillation when the ground truth is scarce (make kd-scarce), on the smoke profile."""

import json

import pytest

from pixel_utils.profiles import resolve_profile
from pixel_utils.training import scarce_truth


def test_scarce_truth_trains_both_arms_per_level_and_records_provenance(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXEL_ROOT", str(tmp_path))
    cached = resolve_profile("smoke").cache_batches
    result = scarce_truth.run_scarce_truth("smoke", steps=6, seeds=2, labelled=(None, 1),
                                           out_dir=tmp_path / "fig")  # fmt: skip
    saved = json.loads((tmp_path / "fig" / "kd_scarce_truth.json").read_text())
    assert (tmp_path / "fig" / "kd_scarce_truth.png").stat().st_size > 0
    assert set(saved["levels"]) == {str(cached), "1"}
    for row in saved["levels"].values():
        assert row["kd_vs_scratch"]["seeds"] == 2 and row["kd_vs_scratch"]["images"] >= 1
        assert len(row["gain_db_per_seed"]["kd"]) == len(row["gain_db_per_seed"]["scratch"]) == 2
    assert saved["levels"]["1"]["labelled_share"] == pytest.approx(1 / cached)
    # Each arm is its own checkpoint: the scratch student of 1 labelled batch is not the one
    # trained on every batch.
    ckpts = {p.name for p in (tmp_path / "data").rglob("*labelled*")}
    assert {"student_scratch_labelled1.pt", f"student_scratch_labelled{cached}.pt",
            "student_distilled_labelled1.pt"} <= ckpts  # fmt: skip
    # The validation figures are the students' own histories: the mean over seeds of each
    # run's best and of its last validation PSNR.
    from statistics import mean

    from pixel_utils.training.loop import load_checkpoint

    runs = [next((tmp_path / "data").rglob(f"student_scratch{seed}_labelled1.pt"))
            for seed in ("", "_s1")]  # fmt: skip
    vals = [[v for _, v, *_ in load_checkpoint(r)["history"]["val"]] for r in runs]
    recorded = saved["levels"]["1"]["validation_psnr"]["scratch"]
    assert recorded["best"] == pytest.approx(mean(max(v) for v in vals))
    assert recorded["last"] == pytest.approx(mean(v[-1] for v in vals))
    # The teacher labelled one cache, the smoke profile's own, not another for the longer run.
    caches = list((tmp_path / "data").rglob("teacher_outputs_*.pt"))
    assert [c.parent.parent.name for c in caches] == ["smoke"]
    assert {"git_commit", "pipeline_sha256", "utc"} <= set(saved["provenance"])
    assert saved["command"] == ("python -m pixel_utils.training.scarce_truth --profile smoke "
                                "--steps 6 --seeds 2 --labelled all,1")  # fmt: skip
    text = scarce_truth.scarce_truth_findings(result)
    assert saved["command"] in text and "1 of" in text and "Every batch" in text
    assert f"{saved['levels']['1']['validation_psnr']['scratch']['best']:.2f} dB" in text
    kd = saved["levels"]["1"]["kd_vs_scratch"]
    assert f"{kd['mean_db']:+.3f}" in text


def test_asking_for_more_labelled_batches_than_cached_names_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXEL_ROOT", str(tmp_path))
    with pytest.raises(ValueError, match="the cache holds"):
        scarce_truth.run_scarce_truth("smoke", steps=2, seeds=1, labelled=(10_000,),
                                      out_dir=tmp_path / "fig")  # fmt: skip


def _level(n, share, mean, half, excludes, scratch_best=23.8, scratch_last=22.7):
    kd = {"mean_db": mean, "ci95_over_images": half, "ci_excludes_zero": excludes, "images": 5}
    val = {"kd": {"last": 23.9, "best": 23.9},
           "scratch": {"last": scratch_last, "best": scratch_best}}  # fmt: skip
    return {"labelled_batches": n, "labelled_share": share, "kd_vs_scratch": kd,
            "validation_psnr": val}  # fmt: skip


def test_lesson_follows_the_numbers():
    result = {"steps": 3000, "seeds": 3, "cached_batches": 120,
              "levels": {"120": _level(120, 1.0, -0.01, 0.03, False),
                         "2": _level(2, 2 / 120, 1.9, 0.4, True)}}  # fmt: skip
    text = scarce_truth.scarce_truth_lesson(result)
    assert "2 of 120 batches" in text and "+1.90 dB (95% CI ± 0.400 dB over 5 photos)" in text
    # With several seeds, their interval and how many of them agree on the sign are stated too.
    seeded = result["levels"]["2"]["kd_vs_scratch"]
    seeded |= {"seeds": 3, "ci95_over_seeds": 4.48, "per_seed_db": {"a": 1.9, "b": 1.9, "c": 5.1}}
    text = scarce_truth.scarce_truth_lesson(result)
    assert "± 4.480 over 3 seeds; 3 of 3 seeds above zero)" in text
    assert "-0.01 dB" in text and "worth most where the ground truth does not reach" in text
    assert "peaked at 23.80 dB before ending at 22.70" in text and "most, not all, of" in text
    result["levels"]["2"] = _level(2, 2 / 120, 1.9, 0.4, True, scratch_best=24.0)
    assert "closed all of the gap" in scarce_truth.scarce_truth_lesson(result)
    result["levels"]["2"] = _level(2, 2 / 120, 0.1, 0.4, False)
    assert "did not measurably" in scarce_truth.scarce_truth_lesson(result)


def test_kd_verdict_needs_the_interval_to_exclude_zero():
    from pixel_utils.evaluation.scoring import kd_verdict

    assert (
        kd_verdict({"mean_db": 0.5, "ci_excludes_zero": False}) == "is indistinguishable from zero"
    )
    assert kd_verdict({"mean_db": 0.5, "ci_excludes_zero": True}) == "helps"
    assert kd_verdict({"mean_db": -0.5, "ci_excludes_zero": True}) == "hurts"
    # Real over the photos, but the seeds' interval includes zero: the words say so.
    wide = {"mean_db": 0.11, "ci_excludes_zero": True, "ci95_over_seeds": 0.175}
    assert kd_verdict(wide) == "helps on these photos, though not beyond its spread over seeds"
    assert kd_verdict({**wide, "ci95_over_seeds": 0.05}) == "helps"
    assert kd_verdict({**wide, "ci95_over_seeds": float("nan")}) == "helps"  # one seed


def test_kd_interval_words_give_both_intervals_and_the_seeds_signs():
    from pixel_utils.evaluation.scoring import kd_interval_words

    kd = {"mean_db": 0.11, "ci95_over_images": 0.102, "images": 5, "seeds": 3,
          "ci95_over_seeds": 0.175, "per_seed_db": {"a": 0.2, "b": -0.01, "c": 0.14}}  # fmt: skip
    assert kd_interval_words(kd) == (
        "95% CI ± 0.102 dB over 5 photos, ± 0.175 over 3 seeds; 2 of 3 seeds above zero"
    )
    one = {**kd, "seeds": 1, "ci95_over_seeds": float("nan"), "per_seed_db": {"a": 0.11}}
    assert kd_interval_words(one) == "95% CI ± 0.102 dB over 5 photos"
