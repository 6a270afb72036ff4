"""Confidence intervals of the headline numbers."""

import math

import pandas as pd
import pytest

from pixel_utils.evaluation.scoring import ci95, headline_ci


def test_ci95_matches_the_t_interval():
    # mean 2, sd 1, n 3: t(0.975, 2) = 4.3027 → 4.3027 / sqrt(3)
    assert ci95([1.0, 2.0, 3.0]) == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    assert math.isnan(ci95([1.0]))
    assert ci95([5.0, 5.0, 5.0]) == 0


def test_gain_interval_is_paired_by_image():
    """Photos differ a lot in difficulty, the gain hardly: the paired gain CI is narrow."""
    rows = []
    for photo, base in (("a", 20.0), ("b", 25.0), ("c", 30.0), ("d", 22.0)):
        rows.append({"method": "blurred", "case": "gauss3", "photo": photo, "psnr": base})
        rows.append({"method": "net", "case": "gauss3", "photo": photo, "psnr": base + 2.0})
    rows.append({"method": "net", "case": "other", "photo": "a", "psnr": 99.0})  # ignored
    ci = headline_ci(pd.DataFrame(rows), "gauss3")
    assert ci["net"]["images"] == 4
    assert ci["net"]["gain_ci95"] == pytest.approx(0.0)
    assert ci["net"]["psnr_ci95"] > 3


def test_kd_comparison_pairs_by_image_and_seed():
    from pixel_utils.evaluation.scoring import kd_comparison

    rows = []
    for photo, base in (("a", 20.0), ("b", 28.0), ("c", 24.0)):
        for seed, (margin, wobble) in enumerate(((0.3, 0.0), (0.5, 0.1), (0.4, -0.1))):
            tag = "" if seed == 0 else f"_s{seed}"
            rows.append({"method": f"scratch{tag}", "case": "gauss3", "photo": photo,
                         "psnr": base + wobble})  # fmt: skip
            rows.append({"method": f"distilled{tag}", "case": "gauss3", "photo": photo,
                         "psnr": base + wobble + margin})  # fmt: skip
    pairs = [("distilled", "scratch"), ("distilled_s1", "scratch_s1"),
             ("distilled_s2", "scratch_s2")]  # fmt: skip
    out = kd_comparison(pd.DataFrame(rows), pairs, "gauss3")
    assert out["mean_db"] == pytest.approx(0.4)
    assert out["ci95_over_images"] == pytest.approx(0.0, abs=1e-9)  # same margin on every image
    assert out["ci95_over_seeds"] > 0.2  # but it varies by seed
    assert out["per_seed_db"]["distilled_s1"] == pytest.approx(0.5)
    assert out["seeds"] == 3 and out["images"] == 3 and out["images_better"] == 3
    worse_on_a = pd.DataFrame(rows)
    distilled_a = (worse_on_a["photo"] == "a") & worse_on_a["method"].str.startswith("distilled")
    worse_on_a.loc[distilled_a, "psnr"] -= 1.0  # margins of 0.3–0.5 dB become losses
    assert kd_comparison(worse_on_a, pairs, "gauss3")["images_better"] == 2


def test_cpu_report_stays_on_cpu_and_rows_name_their_device():
    import torch

    from pixel_utils.evaluation.cost import measure_speed
    from pixel_utils.models.networks import build_model
    from pixel_utils.profiles import resolve_profile

    assert resolve_profile("default").device == "cpu" and resolve_profile("smoke").device == "cpu"
    assert resolve_profile("full").device is None  # CUDA when present
    model = build_model("unshuffle", scale=4, channels=8, blocks=1)
    report = measure_speed({"student": model}, {"t": (16, 16)}, min_run_time=0.01)
    assert [c.name for c in report.costs] == ["student"]  # GPU rows only when asked for
    assert report.costs[0].device == "cpu" and report.costs[0].threads == torch.get_num_threads()


def test_speed_report_times_slow_models_at_the_first_resolution_only(tmp_path):
    from pixel_utils.evaluation.cost import measure_speed
    from pixel_utils.models.networks import build_model

    small = build_model("unshuffle", scale=4, channels=8, blocks=1)
    big = build_model("unshuffle", scale=4, channels=16, blocks=2)
    sizes = {"a": (16, 16), "b": (32, 32)}
    report = measure_speed({"teacher": big, "student": small}, sizes, min_run_time=0.01,
                           onnx_dir=tmp_path, onnx_models=("student",),
                           first_resolution_only=("teacher",))  # fmt: skip
    teacher, student = report.costs
    assert list(teacher.fps) == ["a"] and list(student.fps) == ["a", "b"]
    assert teacher.gmacs_per_megapixel > student.gmacs_per_megapixel > 0
    assert list(report.onnx_ms) == ["student"] and list(report.onnx_ms["student"]) == ["a", "b"]
    table = report.table()  # the teacher's missing cells are empty, not an error
    assert table.loc["teacher", "fps a"] > 0 and table.loc["teacher"].isna().any()
    # In onnxruntime too, a slow model is timed at the first resolution only.
    both = measure_speed({"teacher": big}, sizes, min_run_time=0.01, onnx_dir=tmp_path,
                         first_resolution_only=("teacher",))  # fmt: skip
    assert list(both.onnx_ms["teacher"]) == ["a"]


def test_worst_case_notes_name_over_sharpening_when_there_was_no_blur():
    import pandas as pd

    from pixel_utils.evaluation.deconvolution import worst_cases_markdown

    scores = pd.DataFrame([
        {"case": "no_blur", "photo": "camera", "method": "blurred", "psnr": 40.0},
        {"case": "no_blur", "photo": "camera", "method": "teacher", "psnr": 38.0},
        {"case": "no_blur", "photo": "camera", "method": "distilled", "psnr": 37.0},
        {"case": "gauss3", "photo": "camera", "method": "blurred", "psnr": 24.0},
        {"case": "gauss3", "photo": "camera", "method": "teacher", "psnr": 27.0},
        {"case": "gauss3", "photo": "camera", "method": "distilled", "psnr": 23.5},
    ])  # fmt: skip
    worst = pd.DataFrame([
        {"case": "no_blur", "photo": "camera", "gain": -3.0, "reference_psnr": 40.0},
        {"case": "gauss3", "photo": "camera", "gain": -0.5, "reference_psnr": 24.0},
    ])  # fmt: skip
    sharp_note, blur_note = worst_cases_markdown(worst, scores).splitlines()
    assert "over-sharpening" in sharp_note and "PSF" not in sharp_note
    assert "hard photo" not in sharp_note
    assert "of the spectrum" in blur_note


def test_block_times_gives_a_median_over_blocks_for_fast_and_slow_calls():
    """Fast calls: several blocks of several calls within a small budget (blocked_autorange's
    ×10 block sizing ended on one block there). Slow calls: blocked_autorange, per call."""
    import time

    from torch.utils import benchmark

    from pixel_utils.evaluation.cost import block_times

    calls = []
    fast = benchmark.Timer("f()", globals={"f": lambda: calls.append(sum(range(2000)))})
    times = block_times(fast, min_run_time=0.05)
    assert len(times) >= 5 and all(t > 0 for t in times)
    assert len(calls) > 4 * len(times)  # blocks of two calls or more, each warmed up by two
    assert sum(times) < 0.05  # each entry is per call, not per block

    slow = benchmark.Timer("f()", globals={"f": lambda: time.sleep(0.03)})
    times = block_times(slow, min_run_time=0.05)
    assert times and all(0.03 <= t < 0.5 for t in times)


def test_where_it_loses_names_the_cases_below_the_input():
    from pixel_utils.evaluation.scoring import summarise, where_it_loses

    rows = [
        {"case": case, "photo": "a", "method": method, "psnr": psnr, "ssim": 0.5}
        for case, scored in {"gauss3": (20.0, 23.0), "none": (40.0, 39.5)}.items()
        for method, psnr in zip(("blurred", "student"), scored, strict=True)
    ]
    summary = summarise(pd.DataFrame(rows))
    assert where_it_loses(summary, "student", "It") == (
        "- **Where it loses.** It scores below the degraded input on `none` (-0.50 dB)."
    )
    close = summarise(pd.DataFrame([{**r, "psnr": 39.999} if r["psnr"] == 39.5 else r
                                    for r in rows]))  # fmt: skip
    assert "`none` (-0.001 dB)" in where_it_loses(close, "student", "It")
    better = summarise(pd.DataFrame([r for r in rows if r["case"] == "gauss3"]))
    assert "above the degraded input on all 1 benchmark cases" in where_it_loses(
        better, "student", "It"
    )


def test_check_cases_names_the_unknown_and_the_known():
    from pixel_utils.evaluation.scoring import check_cases

    assert check_cases(["gauss3", "no_blur"]) == ("gauss3", "no_blur")
    with pytest.raises(ValueError, match=r"unknown \['gauss9'\].*known: gauss1"):
        check_cases(("gauss3", "gauss9"))
    with pytest.raises(ValueError, match="unknown none given"):
        check_cases(())


def test_seeded_scores_average_gains_over_seeds_and_pair_by_seed():
    from pixel_utils.evaluation.scoring import SeededScores

    rows = []
    for photo, base in (("a", 20.0), ("b", 30.0)):
        rows.append({"method": "blurred", "case": "gauss3", "photo": photo, "psnr": base})
        for seed, (kd, scratch) in enumerate(((1.0, 0.5), (2.0, 1.0))):
            rows.append({"method": f"kd s{seed}", "case": "gauss3", "photo": photo,
                         "psnr": base + kd})  # fmt: skip
            rows.append({"method": f"plain s{seed}", "case": "gauss3", "photo": photo,
                         "psnr": base + scratch})  # fmt: skip
    seeded = SeededScores(pd.DataFrame(rows), ("gauss3",), [0, 1])
    assert seeded.blurred == {"gauss3": 25.0}
    assert seeded.gain("kd s1") == {"gauss3": 2.0}
    assert seeded.gains("kd") == {"gauss3": 1.5} and seeded.gains("plain") == {"gauss3": 0.75}
    kd = seeded.against("kd", "plain")["gauss3"]
    assert kd["mean_db"] == pytest.approx(0.75) and kd["seeds"] == 2 and kd["images"] == 2
    assert kd["per_seed_db"] == {"kd s0": pytest.approx(0.5), "kd s1": pytest.approx(1.0)}


def test_run_words_name_the_command_commit_and_sources():
    from pixel_utils.evaluation.scoring import run_words

    result = {"command": "python -m x", "provenance": {"git_commit": "0123456789abcdef",
                                                        "pipeline_sha256": "f" * 64}}  # fmt: skip
    assert run_words(result) == ("- **The run.** `python -m x` on commit `0123456789` "
                                 "(pipeline sources `ffffffffffff`)")  # fmt: skip
    assert "commit `?`" in run_words({"command": "c", "provenance": {}})


def test_write_experiment_writes_the_json_and_each_figure(tmp_path):
    import json

    import matplotlib.pyplot as plt

    from pixel_utils.evaluation.scoring import write_experiment

    figures = {"a.png": plt.figure(), "b.png": plt.figure()}
    write_experiment(tmp_path / "out", "result", {"x": 1.5}, figures)
    assert json.loads((tmp_path / "out" / "result.json").read_text()) == {"x": 1.5}
    assert all((tmp_path / "out" / f).stat().st_size > 0 for f in figures)
