import json
from pathlib import Path

import nbformat
import pytest

from pixel_utils.report import runner as report


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    params = nbformat.v4.new_code_cell("profile = None")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)


def test_runner_executes_in_order_and_names_the_failing_cell(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXEL_ROOT", str(tmp_path))
    (tmp_path / "notebooks").mkdir()
    _notebook(tmp_path / "notebooks" / "01_ok.ipynb", "open('ran.txt', 'w').write(profile)")
    _notebook(tmp_path / "notebooks" / "02_bad.ipynb", "x = 1", "raise RuntimeError('boom')")
    _notebook(tmp_path / "notebooks" / "03_never.ipynb", "open('never.txt', 'w')")
    with pytest.raises(report.NotebookFailed) as err:
        report.run_report("smoke", timeout=120)
    message = str(err.value)
    assert "02_bad.ipynb" in message and "RuntimeError: boom" in message and "cell" in message
    assert (tmp_path / "notebooks" / "ran.txt").read_text() == "smoke"  # cwd = notebooks/
    assert not (tmp_path / "notebooks" / "never.txt").exists()  # stopped at the failure
    assert (tmp_path / "reports" / "smoke" / "01_ok.ipynb").exists()

    (tmp_path / "notebooks" / "02_bad.ipynb").unlink()
    (tmp_path / "notebooks" / "03_never.ipynb").unlink()
    timings = report.run_report("smoke", timeout=120)
    assert set(timings) == {"01_ok", "total"}
    saved = json.loads((tmp_path / "reports" / "smoke" / "timings.json").read_text())
    assert saved == timings


def test_progress_bars_reach_the_runners_terminal_not_the_notebook(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("PIXEL_ROOT", str(tmp_path))
    (tmp_path / "notebooks").mkdir()
    code = "from pixel_utils.progress import tqdm\nfor _ in tqdm(range(3), desc='probe'): pass"
    _notebook(tmp_path / "notebooks" / "01_bar.ipynb", code)
    report.run_report("smoke", timeout=120)
    assert "probe: 100%" in capfd.readouterr().err  # the kernel's bar, in the runner's stderr
    executed = nbformat.read(tmp_path / "reports" / "smoke" / "01_bar.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in executed.cells)  # and not in the notebook
    assert "PIXEL_PROGRESS" not in __import__("os").environ  # restored after the run


def test_resume_skips_completed_notebooks_and_restarts_at_the_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXEL_ROOT", str(tmp_path))
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    _notebook(nbs / "01_a.ipynb", "open('a.txt', 'a').write('x')")
    _notebook(
        nbs / "02_b.ipynb", "import os\nif not os.path.exists('fixed'): raise ValueError('x')"
    )
    _notebook(nbs / "03_c.ipynb", "open('c.txt', 'a').write('x')")
    with pytest.raises(report.NotebookFailed, match="02_b"):
        report.run_report("smoke", timeout=120)
    (nbs / "fixed").write_text("")
    timings = report.run_report("smoke", timeout=120, resume=True)
    assert set(timings) == {"02_b", "03_c", "total"}  # 01 was complete: skipped
    assert (nbs / "a.txt").read_text() == "x" and (nbs / "c.txt").read_text() == "x"
    assert set(report.run_report("smoke", timeout=120, resume=True)) == {"total"}


def test_report_index_links_notebooks_and_shows_results(tmp_path):
    import shutil

    from pixel_utils.report.html_export import write_index

    root = Path(__file__).resolve().parent.parent
    report_dir, figures = tmp_path / "report", tmp_path / "figures"
    (report_dir / "html").mkdir(parents=True)
    figures.mkdir()
    shutil.copy(root / "figures" / "results.json", report_dir / "results.json")
    (report_dir / "html" / "01_dataset_synthesis.html").write_text("<html></html>")
    (figures / "04_quality_vs_speed.png").write_bytes(b"\x89PNG fake")
    index = write_index(report_dir, figures).read_text()
    results = json.loads((report_dir / "results.json").read_text())
    assert '<a href="01_dataset_synthesis.html">' in index
    assert "<table>" in index and f"{results['headline']['teacher']['psnr']:.2f}" in index
    assert (report_dir / "html" / "figures" / "04_quality_vs_speed.png").exists()
    assert "http" not in index  # nothing to fetch


def test_a_runs_parameters_reach_every_notebook_and_key_its_artefacts(tmp_path, monkeypatch):
    """`-p student_steps 7` reaches every notebook as one `overrides` dict, and the run writes
    under its own name, so it never overwrites the plain profile's artefacts."""
    from pixel_utils.profiles import resolve_profile

    monkeypatch.setenv("PIXEL_ROOT", str(tmp_path))
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    for name in ("01_a", "02_b", "03_c"):
        _notebook(nbs / f"{name}.ipynb", "pass")
    calls = []
    monkeypatch.setattr(report, "run_notebook",
                        lambda path, profile, out_dir, timeout, params:
                        calls.append((path.name, out_dir, params)) or 0.0)  # fmt: skip
    monkeypatch.setattr(report, "_export_html", lambda executed, html_dir: None)
    report.run_report("smoke", parameters={"student_steps": 7})
    run = resolve_profile("smoke", student_steps=7).run_name
    assert run != "smoke"
    assert [c[0] for c in calls] == ["01_a.ipynb", "02_b.ipynb", "03_c.ipynb"]
    assert all(params == {"overrides": {"student_steps": 7}} for _, _, params in calls)
    assert all(out_dir == tmp_path / "reports" / run for _, out_dir, _ in calls)
    calls.clear()
    report.run_report("smoke", only=["02"])
    assert calls == [("02_b.ipynb", tmp_path / "reports" / "smoke", {"overrides": {}})]
    with pytest.raises(report.NotebookFailed, match="teacher_step"):
        report.run_report("smoke", parameters={"teacher_step": 3})  # a typo is caught


def test_notebook_03_lesson_names_the_shipped_student_as_it_was_made():
    """The shipped student is this run's network trained longer, or grown from it (by however
    many blocks), or another network (then there is no lesson to draw)."""
    from pixel_utils.report.readme import training_length_lesson

    base = {"scale": 4, "channels": 32, "blocks": 3, "inner_blocks": 1}
    twin = {"steps": 24000, "mean_db": 0.07, "ci95": 0.03, "images": 5, "seeds": 1,
            "stopped_early": False}  # fmt: skip
    same = {"model_kwargs": base, "steps": 24000, "gain_db": 2.40, "gain_db_int8": 2.33,
            "scratch_twin": twin}  # fmt: skip
    lesson = training_length_lesson(same, base, 0.52, 600, 0.05)
    assert lesson.startswith("- **Training length matters most.**")
    assert "+2.40 dB in fp32" in lesson and "+0.07 dB" in lesson and "+0.050 dB" in lesson
    grown = {"model_kwargs": {**base, "inner_blocks": 3}, "steps": 6000, "gain_db": 2.59,
             "gain_db_int8": 2.52, "scratch_twin": None,
             "grown_from": {"model_kwargs": base, "steps": 24000, "gain_db_int8": 2.33,
                            "scratch_twin": twin}}  # fmt: skip
    lesson = training_length_lesson(grown, base, 0.52, 600, 0.05)
    assert "Grown (to 3 blocks of 32 channels at 1/4 and 3 of 64 at 1/8 resolution) and" in lesson
    assert "+2.52 dB served" in lesson
    assert "+2.33 dB served in int8" in lesson and "distilled − scratch is +0.07 dB" in lesson
    other = {**base, "channels": 16}
    assert training_length_lesson(grown, other, 0.52, 600, 0.05) == ""
    assert training_length_lesson(None, base, 0.52, 600, 0.05) == ""
    # Grown twice: the lesson starts from the network distilled first (the lineage's start,
    # as grown_summary records it), not from the one it grew from last.
    middle = {**base, "inner_blocks": 3}
    deep = {**base, "blocks": 4, "inner_blocks": 3, "deep_blocks": 1}
    twice = {"model_kwargs": deep, "steps": 6000, "gain_db": 2.77, "gain_db_int8": 2.70,
             "grown_from": {"model_kwargs": middle, "steps": 6000, "gain_db_int8": 2.52,
                            "lineage": [base, middle],
                            "origin": {"model_kwargs": base, "steps": 24000,
                                       "gain_db_int8": 2.33, "scratch_twin": None}}}  # fmt: skip
    lesson = training_length_lesson(twice, base, 0.82, 600, 0.01)
    assert "distilled for 24,000 steps (`make student`, its first step) gains +2.33" in lesson
    assert "Grown twice (to 4 blocks of 32 channels" in lesson and "+2.70 dB served" in lesson
    assert training_length_lesson(twice, middle, 0.82, 600, 0.01) == ""  # not the first network


def test_grown_summary_walks_the_whole_lineage():
    """A student grown twice: the summary names its parent, the whole lineage, and the network
    distilled first with its steps and gain (the manifest nests each growth's record)."""
    from pixel_utils.report.readme import grown_summary

    def entry(steps, gain, grown_from=None):
        e = {"made_by": f"pretrain --steps {steps}", "steps": steps,
             "benchmark_int8": {"gauss3": {"gain_db": gain}}}  # fmt: skip
        return e | ({"grown_from": grown_from} if grown_from else {})

    first, second = {"blocks": 3}, {"blocks": 3, "inner_blocks": 3}
    base = {"model_kwargs": first, "shipped_entry": entry(24000, 2.33)}
    middle = {"model_kwargs": second, "shipped_entry": entry(6000, 2.52, base)}
    summary = grown_summary(middle, "gauss3")
    assert summary["model_kwargs"] == second and summary["gain_db_int8"] == 2.52
    assert summary["lineage"] == [first, second]
    assert summary["origin"] == {"model_kwargs": first, "steps": 24000, "gain_db_int8": 2.33,
                                 "scratch_twin": None}  # fmt: skip
    once = grown_summary(base, "gauss3")
    assert once["origin"]["steps"] == once["steps"] == 24000


def test_video_lines_give_the_report_and_the_shipped_students_end_to_end_fps(tmp_path, monkeypatch):
    from pixel_utils.report import readme

    metrics = {
        "clips": ["a", "b"], "frames": 8, "size": [192, 256], "served_student": "int8, onnxruntime",
        "summary": {"blurred": {"psnr": 29.0, "temporal_error": 7.5},
                    "student": {"psnr": 29.2, "temporal_error": 7.8}},
        "throughput": {"720p": {"fps": 14.04, "codec_only_fps": 65.0}},
        "shipped_throughput": {"720p": {"fps": 11.26, "codec_only_fps": 64.0},
                               "1080p": {"fps": 4.91, "codec_only_fps": 33.0}},
        "shipped_engine": "openvino",
        "provenance": {"git_commit": "abc"},
    }  # fmt: skip
    (tmp_path / "06_video_metrics.json").write_text(json.dumps(metrics))
    monkeypatch.setattr(readme, "reports_dir", lambda profile: tmp_path)
    summary = readme.video_summary("default")
    assert summary["shipped_throughput_fps"] == {"720p": 11.26, "1080p": 4.91}
    text = "\n".join(readme.video_markdown(summary))
    assert "the report's student (int8, onnxruntime): 14.0 fps at 720p." in text
    assert "serves by default, int8 on OpenVINO): 11.3 fps at 720p, 4.9 fps at 1080p." in text
    # An older run without the shipped student's figures still reads.
    del metrics["shipped_throughput"]
    (tmp_path / "06_video_metrics.json").write_text(json.dumps(metrics))
    text = "\n".join(readme.video_markdown(readme.video_summary("default")))
    assert "14.0 fps at 720p." in text and "shipped" not in text


def test_the_readme_says_how_long_the_run_took_only_from_that_runs_timings(tmp_path, monkeypatch):
    import os

    from pixel_utils.report import readme

    monkeypatch.setattr(readme, "reports_dir", lambda profile: tmp_path)
    assert readme.report_timings("default") is None and readme.timings_sentence(None) == ""
    (tmp_path / "results.json").write_text("{}")
    timings = {"01_dataset_synthesis": 60.0, "06_video": 150.0, "total": 210.0}
    (tmp_path / "timings.json").write_text(json.dumps(timings))
    assert readme.report_timings("default") == timings
    sentence = readme.timings_sentence(timings)
    assert sentence == "That run took 3.5 minutes (01: 1.0, 06: 2.5 minutes per notebook)."
    # Timings older than the results belong to an earlier run: not reported.
    os.utime(tmp_path / "timings.json", (1, 1))
    assert readme.report_timings("default") is None


def test_runner_refuses_parameters_it_cannot_honour_before_running_anything(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("PIXEL_ROOT", str(tmp_path))
    (tmp_path / "notebooks").mkdir()
    _notebook(tmp_path / "notebooks" / "01_ok.ipynb", "open('ran.txt', 'w')")
    refused = {
        ("-p", "profile", "full"): "choose the profile with --profile",
        ("-p", "overrides", '{"teacher_steps": 5}'): "as its own -p NAME VALUE",
        ("-p", "teacher_steps", "abc"): "profile field teacher_steps: 'abc' is not int",
        ("--only", "99"): "no notebook matches --only 99 (the notebooks: 01_ok)",
    }
    for args, expected in refused.items():
        assert report.main(["--profile", "smoke", *args]) == 1, args
        assert expected in capsys.readouterr().err, args
    with pytest.raises(SystemExit):  # --only needs a notebook number
        report.main(["--profile", "smoke", "--only"])
    assert not (tmp_path / "notebooks" / "ran.txt").exists()
    assert not (tmp_path / "reports").exists()  # no run folder for a run that never started


def test_profile_overrides_of_the_wrong_type_are_refused():
    from pixel_utils.profiles import resolve_profile

    for bad in ({"teacher_steps": "abc"}, {"teacher_steps": True}, {"student_kwargs": [1]}):
        with pytest.raises(ValueError, match=f"profile field {next(iter(bad))}"):
            resolve_profile("smoke", **bad)
    p = resolve_profile("smoke", teacher_lr=1, video_size=[8, 8], photo_folder="x")
    assert p.teacher_lr == 1 and p.photo_folder == "x"  # an int is a float; JSON lists pass


def test_earlier_speed_measurements_are_listed_with_their_machine_and_day():
    from pixel_utils.report.readme import speed_history, speed_history_sentence

    machine = {"cpu_model": "Xeon", "cpu_count": 2, "int8_vnni": True}
    history = speed_history([
        {"utc": "2026-12-06T11:47:33+00:00", "machine": machine,
         "served_ms": {"int8_onnxruntime": {"720p": 50.0, "1080p": 100.0},
                       "pytorch_fp32": {"720p": 160.0}}},
        {"utc": None, "machine": None, "served_ms": {"int8_openvino": {"720p": 40.0}}},
    ])  # fmt: skip
    assert [list(h["fps"]) for h in history] == [["onnxruntime"], ["openvino"]]  # int8 only
    sentence = speed_history_sentence(history)
    assert (
        "20.0 fps at 720p, 10.0 fps at 1080p (onnxruntime) on Xeon (2 cores, with VNNI" in sentence
    )
    assert (
        "int8 instructions), 2026-12-06; 25.0 fps at 720p (OpenVINO) on an unrecorded CPU"
        in sentence
    )
    assert sentence.endswith("an unrecorded day.")
    assert speed_history_sentence([]) == ""
