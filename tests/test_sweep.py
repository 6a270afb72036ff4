"""The student sweep (make sweep): what it trains, times and records, on the smoke profile."""

import json

from pixel_utils.profiles import resolve_profile
from pixel_utils.report.viz import pareto_figure, pareto_front
from pixel_utils.training import sweep


def test_pareto_front_keeps_exactly_the_undominated_points():
    points = [(10, 1.0), (20, 0.5), (5, 0.9), (20, 0.8), (30, 0.1)]
    assert pareto_front(points) == [0, 3, 4]  # (5, .9) loses to (10, 1); (20, .5) to (20, .8)


def _row(gain, ms720, ms1080):
    return {
        "gain_db": gain,
        "latency": {
            "720p": {"int8_onnxruntime": {"ms": ms720}},
            "1080p": {"int8_onnxruntime": {"ms": ms1080}},
        },
    }


def test_best_real_time_is_the_best_gain_within_both_frame_budgets():
    result = {
        "students": {
            "small": _row(0.5, 10, 25),
            "big": _row(2.0, 60, 130),
            "mid": _row(1.0, 30, 70),
            "mid-slow-1080": _row(1.5, 32, 90),
        }
    }
    assert sweep.best_real_time(result) == "mid"  # 33 fps and 14 fps; "mid-slow-1080" is 11 fps
    assert sweep.best_real_time(result, fps_720p=200) is None


def test_sweep_trains_scores_times_and_records_its_provenance(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXEL_ROOT", str(tmp_path))
    default = resolve_profile("smoke").student_kwargs
    students = {
        "default": default,
        "U rep": {"scale": 4, "channels": 8, "blocks": 2, "inner_blocks": 1, "reparam": True},
    }
    result = sweep.run_sweep("smoke", seeds=2, out_dir=tmp_path / "fig", students=students,
                             pay_sizes=("default",))  # fmt: skip
    saved = json.loads((tmp_path / "fig" / "student_sweep.json").read_text())
    assert saved["students"].keys() == students.keys()
    assert (tmp_path / "fig" / "student_pareto.png").stat().st_size > 0
    assert (tmp_path / "fig" / "kd_pays.png").stat().st_size > 0
    for row in saved["students"].values():
        assert set(row["latency"]) == set(resolve_profile("smoke").speed_resolutions)
        for timed in row["latency"].values():
            for kind in ("int8_onnxruntime", "pytorch_fp32"):
                assert timed[kind]["ms"] > 0 and timed[kind]["runs"] >= 5  # a median of ≥ 5
    kd = saved["students"]["default"]["kd_vs_scratch"]
    assert kd["seeds"] == 2 and kd["images"] >= 1
    assert "kd_vs_scratch" not in saved["students"]["U rep"]
    assert set(saved["recipes_vs_default"]) == {"response only (pseudo-labels)"}
    assert {"git_commit", "pipeline_sha256", "utc"} <= set(saved["provenance"])
    assert saved["command"].startswith("python -m pixel_utils.training.sweep --profile smoke")
    text = sweep.sweep_findings(result)
    assert "Distillation at default" in text and saved["command"] in text


def test_findings_say_when_no_student_is_real_time_and_name_the_cpu():
    machine = {"cpu_model": "Some CPU", "cpu_count": 2, "int8_vnni": False, "torch_threads": 2}
    result = {
        "command": "python -m pixel_utils.training.sweep --profile default --steps 9 --seeds 3",
        "steps": 9,
        "seeds": 3,
        "case": "gauss3",
        "default_student": {},
        "provenance": {"git_commit": "abc", "pipeline_sha256": "def", "machine": machine},
        "students": {"small": _row(0.5, 40, 90), "big": _row(2.0, 60, 130)},
    }
    for row in result["students"].values():
        for timed in row["latency"].values():
            timed["pytorch_fp32"] = {"ms": 100.0}
    result["best_real_time"] = sweep.best_real_time(result)
    text = sweep.sweep_findings(result)
    assert "without VNNI" in text
    assert "No student is served in real time" in text and "small (+0.50 dB)" in text
    assert "25 fps (720p)" in text


def test_pareto_axis_within_a_decade_is_labelled_in_plain_numbers():
    # Over less than a decade matplotlib labels every minor tick as a×10^b, and they overlapped.
    students = {"a": _row(0.5, 30, 70), "b": _row(0.8, 45, 100)}
    for row in students.values():
        for timed in row["latency"].values():
            timed["pytorch_fp32"] = {"ms": 2 * timed["int8_onnxruntime"]["ms"]}
    fig = pareto_figure({"students": students, "case": "gauss3", "steps": 9})
    fig.canvas.draw()
    axis = fig.axes[0].xaxis
    assert not [t.get_text() for t in axis.get_minorticklabels() if t.get_text()]
    shown = [t.get_text() for t in axis.get_majorticklabels() if t.get_text()]
    assert "20" in shown and not any("10^" in t or "times" in t for t in shown)


def test_design_space_lesson_names_the_best_real_time_student_and_whether_it_is_this_runs():
    mid = {**_row(1.0, 30, 70), "kwargs": {"scale": 4, "channels": 32}}
    result = {"students": {"mid": mid, "big": {**_row(2.0, 60, 130), "kwargs": {}}}}
    assert sweep.design_space_lesson(None, {}) == ""
    result["best_real_time"] = sweep.best_real_time(result)
    text = sweep.design_space_lesson(result, {"scale": 4, "channels": 32})
    assert "is mid, +1.00 dB at 33 fps (720p, int8); this run's student is that design" in text
    assert "student is not that design" in sweep.design_space_lesson(result, {"scale": 8})
    result["best_real_time"] = None
    assert "no student of it was served at real-time" in sweep.design_space_lesson(result, {})
