"""`make weights` in miniature: the smoke pretraining resumes after kill -9 and ships weights
with a manifest that says how they were made."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pixel_utils.training.loop import load_checkpoint, model_from_checkpoint

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shipped_smoke(tmp_path_factory):
    """One smoke student, distilled and shipped once (about 15 s) into a root of its own:
    `data/` with its checkpoints and teacher-labelled batches, and `weights/`. The tests that
    start from a shipped student copy it (`_root_with_shipped_student`)."""
    from pixel_utils.training import pretrain

    root = tmp_path_factory.mktemp("shipped-smoke")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIXEL_ROOT", str(root))
        assert pretrain.main(["--profile", "smoke", "--student", "--ship",
                              "--out", str(root / "weights")]) == 0  # fmt: skip
    return root


def _root_with_shipped_student(shipped_smoke: Path, tmp_path: Path, monkeypatch) -> Path:
    """The shipped smoke student's root, copied into this test's own (which it may change):
    the same files the test would have made by shipping the student itself."""
    shutil.copytree(shipped_smoke, tmp_path, dirs_exist_ok=True)
    monkeypatch.setenv("PIXEL_ROOT", str(tmp_path))
    return tmp_path / "weights"


def _command(root: Path, out: Path, steps: int, ship: bool) -> list[str]:
    cmd = [sys.executable, "-m", "pixel_utils.training.pretrain", "--profile", "smoke", "--steps",
           str(steps), "--device", "cpu", "--out", str(out)]  # fmt: skip
    return cmd + (["--ship"] if ship else [])


def test_pretraining_resumes_after_kill_and_ships(tmp_path):
    env = os.environ | {"PIXEL_ROOT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "weights"
    ckpt = tmp_path / "data" / "pretrain" / "smoke" / "teacher.pt"
    # A checkpoint every steps // 4 = 15 steps: killed right after the first, the run would
    # have 45 more steps to go (seconds), far beyond the 50 ms it takes to notice the file.
    steps = 60
    proc = subprocess.Popen(
        _command(tmp_path, out, steps, ship=False), env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert ckpt.exists(), "no checkpoint written before the deadline"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(ckpt)["step"]
    assert not load_checkpoint(ckpt)["complete"] and 0 < killed_at < steps

    done = subprocess.run(_command(tmp_path, out, steps, ship=True), env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming {ckpt} from step {killed_at}" in done.stdout
    final = load_checkpoint(ckpt)
    assert final["complete"] and final["step"] == steps
    # The loss history is continuous across the kill: one entry per step, no gap, no repeat.
    assert [s for s, _ in final["history"]["loss"]] == list(range(1, steps + 1))

    manifest = json.loads((out / "manifest.json").read_text())["models"]["teacher"]
    assert manifest["steps"] == steps
    assert "--profile smoke" in manifest["made_by"]
    assert (
        manifest["provenance"]["git_commit"] is None
        or len(manifest["provenance"]["git_commit"]) == 40
    )
    assert set(manifest["benchmark"]) >= {"gauss3", "shake17", "shake25"}
    options = manifest["test_time_options"]
    assert set(options["tlc_gain_db"]) == set(options["ensemble_x8_gain_db"]) >= {"gauss3"}
    shipped = model_from_checkpoint(out / "teacher.pt")
    x = torch.rand(1, 3, 40, 40)
    trained = model_from_checkpoint(ckpt)
    # fp16 storage moves outputs by far less than a grey level.
    assert (shipped.float()(x) - trained(x)).abs().max() < 2e-3


def test_student_is_distilled_and_shipped_with_its_serving_choice(tmp_path, monkeypatch):
    from pixel_utils.app.onnx_export import OnnxModel
    from pixel_utils.app.openvino_engine import openvino_available, served_engine
    from pixel_utils.profiles import resolve_profile
    from pixel_utils.training import pretrain

    monkeypatch.setenv("PIXEL_ROOT", str(tmp_path))
    out = tmp_path / "weights"
    # The provenance is taken before the weights are written: written into the package, they
    # would make its sources dirty, and every freshly shipped student would say so.
    from pixel_utils import provenance as provenance_module

    weights_there = []
    real_provenance = provenance_module.provenance

    def provenance():
        weights_there.append((out / "student.pt").exists())
        return real_provenance()

    monkeypatch.setattr(provenance_module, "provenance", provenance)
    assert pretrain.main(["--profile", "smoke", "--student", "--ship", "--out", str(out)]) == 0
    assert weights_there[0] is False
    monkeypatch.setattr(provenance_module, "provenance", real_provenance)
    entry = json.loads((out / "manifest.json").read_text())["models"]["student"]
    assert entry["steps"] == resolve_profile("smoke").pretrain_student_steps
    assert "--student" in entry["made_by"] and "--cache-batches 6" in entry["made_by"]
    assert set(entry["benchmark"]) == set(entry["benchmark_int8"])
    ms = entry["served_ms"]
    engine = entry["served_engine"]
    assert engine == served_engine()
    faster = all(ms[f"int8_{engine}"][r] < ms["pytorch_fp32"][r] for r in ms["pytorch_fp32"])
    assert entry["served"] == ("student_int8.onnx" if faster else "student.pt")
    engines = ["onnxruntime"] + (["openvino"] if openvino_available() else [])
    assert set(ms) == {f"{path}int8_{e}" for e in engines for path in ("", "frames_")} | {
        "pytorch_fp32"
    }
    if openvino_available():  # each engine rounds its own way, so each is scored
        assert set(entry["benchmark_int8_openvino"]) == set(entry["benchmark_int8"])
    x = torch.rand(1, 3, 37, 45)
    with torch.no_grad():
        fp32 = model_from_checkpoint(out / "student.pt")(x)
    int8 = OnnxModel(out / "student_int8.onnx")(x)
    assert fp32.shape == int8.shape == x.shape
    assert (fp32 - int8).abs().mean() < 0.02  # the same student, quantised
    rounds = resolve_profile("smoke").latency_rounds
    assert all(len(v) == rounds for v in entry["served_ms_runs"]["pytorch_fp32"].values())

    # Measured again on another machine: the new figures are served, the old ones kept.
    with pytest.raises(SystemExit):
        pretrain.main(["--profile", "smoke", "--measure-speed", "--out", str(out)])
    weights = (out / "student.pt").read_bytes()
    assert pretrain.main(["--profile", "smoke", "--student", "--measure-speed",
                          "--out", str(out)]) == 0  # fmt: skip
    again = json.loads((out / "manifest.json").read_text())["models"]["student"]
    assert again["served_ms_history"] == [
        {
            "served_ms": ms,
            "machine": entry["provenance"]["machine"],
            "utc": entry["provenance"]["utc"],
        }
    ]
    assert again["served_ms_provenance"]["made_by"].endswith(
        "--student --profile smoke --measure-speed"
    )
    assert set(again["served_ms"]) == set(ms) and again["benchmark"] == entry["benchmark"]
    new = again["served_ms"]
    faster = all(new[f"int8_{engine}"][r] < new["pytorch_fp32"][r] for r in new["pytorch_fp32"])
    assert again["served"] == ("student_int8.onnx" if faster else "student.pt")
    assert (out / "student.pt").read_bytes() == weights


def test_student_learns_on_a_photo_folder_too_and_says_so(tmp_path, monkeypatch):
    import numpy as np

    from pixel_utils.data.images import write_png
    from pixel_utils.training import pretrain

    monkeypatch.setenv("PIXEL_ROOT", str(tmp_path))
    photos = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        write_png(photos / name, rng.random((96, 120, 3)))
    with pytest.raises(SystemExit):  # the student's batches come from one profile folder
        pretrain.main(["--profile", "smoke", "--student", "--photos", str(photos),
                       "--photos", str(photos)])  # fmt: skip
    out = tmp_path / "weights"
    assert pretrain.main(["--profile", "smoke", "--student", "--photos", str(photos),
                          "--qat-steps", "0", "--ship", "--out", str(out)]) == 0  # fmt: skip
    entry = json.loads((out / "manifest.json").read_text())["models"]["student"]
    assert entry["data"]["photo_folder"] == str(photos)
    assert f"--photos {photos} " in entry["made_by"]
    # Its teacher-labelled batches are its own run's, not those of the plain student.
    caches = {p.parent.parent.name for p in tmp_path.rglob("teacher_outputs_*.pt")}
    assert len(caches) == 1 and caches != {"smoke"}


def test_made_by_writes_one_photos_argument_per_folder_and_skips_none():
    from pixel_utils.training.pretrain import photos_cli

    assert photos_cli() == photos_cli(None) == ""
    assert photos_cli("a", None, "b c") == " --photos a --photos 'b c'"


def test_scratch_twin_is_recorded_next_to_the_shipped_student(shipped_smoke, tmp_path, monkeypatch):
    from pixel_utils.training import pretrain

    out = _root_with_shipped_student(shipped_smoke, tmp_path, monkeypatch)
    with pytest.raises(SystemExit):  # the twin needs the student
        pretrain.main(["--profile", "smoke", "--scratch-twin"])
    with pytest.raises(SystemExit):  # more seeds need the twin
        pretrain.main(["--profile", "smoke", "--student", "--kd-seeds", "2"])
    # Added to the shipped student, as `make student-twin` does.
    args = ["--profile", "smoke", "--student", "--scratch-twin", "--kd-seeds", "2",
            "--out", str(out)]  # fmt: skip
    assert pretrain.main(args) == 0
    entry = json.loads((out / "manifest.json").read_text())["models"]["student"]
    twin = entry["scratch_twin"]
    assert twin["steps"] == entry["steps"] and twin["seed"] == entry["seed"]
    assert twin["seeds"] == [entry["seed"], entry["seed"] + 1]
    assert twin["made_by"].endswith("--scratch-twin --kd-seeds 2")
    assert set(twin["distilled_minus_scratch"]) == set(entry["benchmark"])
    for kd in twin["distilled_minus_scratch"].values():
        assert kd["images"] >= 2 and kd["ci95_over_images"] >= 0 and kd["seeds"] == 2
        per_seed = kd["per_seed_db"]
        assert sorted(per_seed) == ["0", "1"]  # JSON keys
        # The mean over images and seeds is the mean of the per-seed means (same photos).
        assert kd["mean_db"] == pytest.approx(sum(per_seed.values()) / 2)
        assert kd["ci95_over_seeds"] >= 0
    # The second seed's students are their own runs, next to the first seed's.
    ckpts = {p.name for p in tmp_path.rglob("student_*_s1.pt")}
    assert {"student_distilled_s1.pt", "student_scratch_s1.pt"} <= ckpts
    from pixel_utils.data.benchmark import HEADLINE_CASE
    from pixel_utils.report.readme import twin_summary, twin_words

    words = twin_words(twin_summary(twin, HEADLINE_CASE))
    assert "mean of 2 seeds" in words and "over the seeds" in words
    assert all(abs(kd["mean_db"]) < 5 for kd in twin["distilled_minus_scratch"].values())
    from pixel_utils.artefacts import weights_sha256

    assert entry["weights_sha256"] == weights_sha256(model_from_checkpoint(out / "student.pt"))
    assert twin["distilled_weights_sha256"] in (
        entry["weights_sha256"], entry.get("quantisation_aware", {}).get("distilled_weights_sha256")
    )  # fmt: skip
    # A rebuild (the same seed and recipe: the same weights, other bytes) keeps the twin ...
    assert pretrain.main(["--profile", "smoke", "--student", "--ship", "--retrain",
                          "--out", str(out)]) == 0  # fmt: skip
    rebuilt = json.loads((out / "manifest.json").read_text())["models"]["student"]
    assert rebuilt["weights_sha256"] == entry["weights_sha256"]
    assert rebuilt["scratch_twin"] == twin
    # ... and re-shipping other weights drops a twin that no longer matches.
    assert pretrain.main(["--profile", "smoke", "--student", "--ship", "--steps", "20",
                          "--out", str(out)]) == 0  # fmt: skip
    entry = json.loads((out / "manifest.json").read_text())["models"]["student"]
    assert "scratch_twin" not in entry


def test_scratch_twin_refuses_a_student_that_was_not_shipped(shipped_smoke, tmp_path, monkeypatch):
    from pixel_utils.profiles import resolve_profile
    from pixel_utils.training.pretrain import compare_with_scratch_twin, pretrain_student

    out = _root_with_shipped_student(shipped_smoke, tmp_path, monkeypatch)
    other, P = pretrain_student(resolve_profile("smoke", seed=1))
    with pytest.raises(RuntimeError, match="not .*student"):
        compare_with_scratch_twin(other, P, out)


def test_scratch_twin_accepts_a_rebuilt_checkpoint_of_the_shipped_weights(
    shipped_smoke, tmp_path, monkeypatch
):
    """A fresh-checkout rebuild holds the same weights in different bytes (its timings), so
    the twin is checked against the weights: their recorded digest, or the shipped weights
    themselves (also through their fine-tuning) for entries recorded before that digest."""
    import torch

    from pixel_utils.profiles import resolve_profile
    from pixel_utils.training import stages
    from pixel_utils.training.pretrain import (
        compare_with_scratch_twin,
        pretrain_student,
        quantisation_aware_student,
    )

    out = _root_with_shipped_student(shipped_smoke, tmp_path, monkeypatch)
    distilled, P = pretrain_student(resolve_profile("smoke"))
    fine_tuned = quantisation_aware_student(distilled, P)
    ckpt = torch.load(distilled.checkpoint, weights_only=True)
    ckpt["elapsed_s"] += 1.0  # the same weights, other bytes
    torch.save(ckpt, distilled.checkpoint)

    class Passed(Exception):
        pass

    def passed(*args, **kwargs):
        raise Passed

    monkeypatch.setattr(stages, "prepare_distillation", passed)
    with pytest.raises(Passed):  # the manifest's digest of the weights the fine-tuning began from
        compare_with_scratch_twin(distilled, P, out)

    # An entry written before weights digests: only the checkpoint's bytes were recorded.
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["models"]["student"]["quantisation_aware"]["distilled_weights_sha256"]
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(RuntimeError, match="not .*student"):  # the fp32 weights alone differ
        compare_with_scratch_twin(distilled, P, out)
    with pytest.raises(Passed):
        compare_with_scratch_twin(distilled, P, out, fine_tuned=fine_tuned)

    # Other weights are refused whatever the bytes.
    for name in ("ema", "model"):
        if ckpt.get(name):
            first = next(iter(ckpt[name]))
            ckpt[name][first] = ckpt[name][first] + 1e-3
    torch.save(ckpt, distilled.checkpoint)
    manifest["models"]["student"]["quantisation_aware"]["distilled_weights_sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(RuntimeError, match="not .*student"):
        compare_with_scratch_twin(distilled, P, out)


def test_a_recorded_twin_stays_with_the_weights_it_was_measured_on():
    from pixel_utils.training.pretrain import _twin_measured_on

    source = {"distilled_weights_sha256": "D", "distilled_checkpoint_sha256": "F"}
    shipped = {"weights_sha256": "W", "quantisation_aware": source}
    assert _twin_measured_on({"distilled_weights_sha256": "D"}, shipped, "other bytes")
    assert _twin_measured_on({"distilled_weights_sha256": "W"}, shipped, "other bytes")
    assert not _twin_measured_on({"distilled_weights_sha256": "X"}, shipped, "X")
    # Twins recorded before weights digests: by the checkpoint's bytes.
    assert _twin_measured_on({"distilled_checkpoint_sha256": "F"}, shipped, "other bytes")
    assert _twin_measured_on({"distilled_checkpoint_sha256": "B"}, {}, "B")
    assert not _twin_measured_on({"distilled_checkpoint_sha256": "B"}, shipped, "C")


def test_a_fine_tuned_teacher_keeps_what_it_started_from(tmp_path, monkeypatch):
    import shutil

    from pixel_utils.artefacts import weights_sha256
    from pixel_utils.training import pretrain

    monkeypatch.setenv("PIXEL_ROOT", str(tmp_path))
    out = tmp_path / "weights"
    assert pretrain.main(["--profile", "smoke", "--steps", "6", "--ship", "--out", str(out)]) == 0
    assert pretrain.main(["--profile", "smoke", "--student", "--ship", "--out", str(out)]) == 0
    before = json.loads((out / "manifest.json").read_text())["models"]
    start = tmp_path / "teacher_before.pt"
    shutil.copyfile(out / "teacher.pt", start)
    with pytest.raises(SystemExit):  # the student is distilled, not fine-tuned
        pretrain.main(["--profile", "smoke", "--student", "--init-from", str(start)])
    with pytest.raises(SystemExit):
        pretrain.main(["--profile", "smoke", "--init-from", str(tmp_path / "missing.pt")])
    args = ["--profile", "smoke", "--steps", "6", "--init-from", str(start), "--lr", "3e-4",
            "--ship", "--out", str(out)]  # fmt: skip
    assert pretrain.main(args) == 0
    after = json.loads((out / "manifest.json").read_text())["models"]
    teacher = after["teacher"]
    assert f"--init-from {start} --lr 0.0003" in teacher["made_by"]
    assert teacher["train_config"]["lr"] == pytest.approx(3e-4)
    origin = teacher["fine_tuned_from"]
    assert origin["weights_sha256"] == weights_sha256(model_from_checkpoint(start))
    assert origin["shipped_teacher"]["made_by"] == before["teacher"]["made_by"]
    assert teacher["weights_sha256"] == weights_sha256(model_from_checkpoint(out / "teacher.pt"))
    assert teacher["weights_sha256"] != origin["weights_sha256"]
    # The shipped student now names the teacher it was distilled from, since replaced.
    assert after["student"]["distilled_from"]["weights_sha256"] == origin["weights_sha256"]
    # The fine-tuning is its own run, next to (not over) the teacher's pretraining checkpoint.
    assert (tmp_path / "data" / "pretrain" / "smoke" / "teacher_finetune.pt").exists()
    assert load_checkpoint(tmp_path / "data" / "pretrain" / "smoke" / "teacher.pt")["step"] == 6
    # Fine-tuned once more: the record nests, so every run of the chain is still counted.
    again = tmp_path / "teacher_fine_tuned.pt"
    shutil.copyfile(out / "teacher.pt", again)
    args = ["--profile", "smoke", "--steps", "4", "--init-from", str(again), "--ship",
            "--out", str(out)]  # fmt: skip
    assert pretrain.main(args) == 0
    from pixel_utils.training.stages import teacher_runs

    latest = json.loads((out / "manifest.json").read_text())["models"]["teacher"]
    assert [run["steps"] for run in teacher_runs(latest)] == [6, 6, 4]
    assert teacher_runs(latest)[1]["made_by"] == teacher["made_by"]


def test_shipped_student_grows_and_keeps_a_record_of_what_it_grew_from(
    shipped_smoke, tmp_path, monkeypatch
):
    from pixel_utils.profiles import resolve_profile
    from pixel_utils.training import pretrain

    base_dir = _root_with_shipped_student(shipped_smoke, tmp_path, monkeypatch)
    out = tmp_path / "grown"
    base = json.loads((base_dir / "manifest.json").read_text())["models"]["student"]
    source = base_dir / "student.pt"
    with pytest.raises(SystemExit):  # growth is for the student
        pretrain.main(["--profile", "smoke", "--grow-from", str(source), "--out", str(out)])
    args = ["--profile", "smoke", "--student", "--grow-from", str(source), "--ship"]
    assert pretrain.main([*args, "--out", str(out)]) == 0
    entry = json.loads((out / "manifest.json").read_text())["models"]["student"]
    P = resolve_profile("smoke")
    assert entry["model_kwargs"] == P.grown_student_kwargs != base["model_kwargs"]
    assert entry["steps"] == P.grow_steps
    assert f"--grow-from {source.as_posix()}" in entry["made_by"]
    grown_from = entry["grown_from"]
    assert grown_from["weights_sha256"] == base["weights_sha256"]
    assert grown_from["model_kwargs"] == base["model_kwargs"]
    # the shipped student it grew from: how it was made and what it scored, kept
    assert grown_from["shipped_entry"]["made_by"] == base["made_by"]
    assert grown_from["shipped_entry"]["benchmark"] == base["benchmark"]
    model = model_from_checkpoint(out / "student.pt")
    assert len(model.inner) == P.grown_student_kwargs["inner_blocks"]
    # Timed again: the network it grew from is timed too, on the same machine, for the ratio.
    assert pretrain.main(["--profile", "smoke", "--student", "--measure-speed",
                          "--out", str(out)]) == 0  # fmt: skip
    entry = json.loads((out / "manifest.json").read_text())["models"]["student"]
    here = entry["grown_from"]["int8_same_machine"]
    assert set(here["latency_ratio"]) == set(entry["served_ms"]["int8_onnxruntime"])
    assert all(len(r) == P.paired_rounds for r in here["rounds_ms"].values())
    from pixel_utils.report.readme import grown_summary, network_words

    summary = grown_summary(entry["grown_from"], "gauss3")
    assert set(summary["latency_ratio"]) == set(entry["served_ms"]["int8_onnxruntime"])
    assert all(r > 0 for r in summary["latency_ratio"].values())
    assert summary["gain_db_int8"] == base["benchmark_int8"]["gauss3"]["gain_db"]
    assert network_words({"scale": 4, "channels": 32, "blocks": 3, "inner_blocks": 2}) == (
        "3 blocks of 32 channels at 1/4 and 2 of 64 at 1/8 resolution"
    )
    inner = P.grown_student_kwargs["inner_blocks"]
    assert network_words(entry["model_kwargs"]).endswith(f" and {inner} of 64 at 1/8 resolution")
    # A third level added to the grown student: the record keeps the whole lineage.
    deep_dir = tmp_path / "deep"
    grown = out / "student.pt"
    assert pretrain.main([*args[:3], "--grow-from", str(grown), "--deepen", "--ship",
                          "--out", str(deep_dir)]) == 0  # fmt: skip
    deep = json.loads((deep_dir / "manifest.json").read_text())["models"]["student"]
    assert deep["model_kwargs"] == P.deepened_student_kwargs
    # The third step's int8 fine-tuning learns with its own loss; every other step does not.
    assert deep["quantisation_aware"]["train_config"]["loss"] == P.deepen_qat_loss
    assert deep["quantisation_aware"]["steps"] == P.deepen_qat_steps
    assert P.deepen_qat_loss != P.student_loss == deep["train_config"]["loss"]
    for step in (base, entry):
        assert step["train_config"]["loss"] == P.student_loss
        assert step["quantisation_aware"]["train_config"]["loss"] == P.student_loss
    assert f"--grow-from {grown.as_posix()} --deepen" in deep["made_by"]
    lineage = deep["grown_from"]
    assert lineage["model_kwargs"] == P.grown_student_kwargs
    assert lineage["shipped_entry"]["grown_from"]["weights_sha256"] == base["weights_sha256"]
    deep_blocks = P.deepened_student_kwargs["deep_blocks"]
    assert len(model_from_checkpoint(deep_dir / "student.pt").deep) == deep_blocks
    with pytest.raises(SystemExit):  # --deepen is a kind of growth
        pretrain.main([*args[:3], "--deepen", "--out", str(deep_dir)])
    assert network_words(deep["model_kwargs"]) == (
        "4 blocks of 32 channels at 1/4, and 3 of 64 at 1/8 around 1 of 128 at 1/16 resolution"
    )


def test_grown_summary_labels_the_source_speed_with_the_machine_that_measured_it():
    """A source student re-measured by `make student-speed` before it grew: its speed comes
    from that run's machine, not from the machine it was shipped on."""
    from pixel_utils.report.readme import grown_summary
    from pixel_utils.training.pretrain import GROWTH_RECORD_KEYS

    assert "served_ms_provenance" in GROWTH_RECORD_KEYS
    shipped_on = {"cpu_model": "CPU A", "int8_vnni": False, "cpu_count": 2}
    measured_on = {"cpu_model": "CPU B", "int8_vnni": True, "cpu_count": 2}
    source = {"served_ms": {"int8_onnxruntime": {"720p": 25.0}},
              "provenance": {"machine": shipped_on}}  # fmt: skip
    grown = {"model_kwargs": {"scale": 4}, "shipped_entry": source}
    assert grown_summary(grown, "gauss3")["machine"] == shipped_on
    source["served_ms_provenance"] = {"machine": measured_on}
    summary = grown_summary(grown, "gauss3")
    assert summary["machine"] == measured_on and summary["served_fps"] == {"720p": 40.0}


def test_flags_that_would_be_ignored_or_are_impossible_are_refused(capsys):
    from pixel_utils.training import pretrain

    refused = {
        ("--profile", "nope"): "unknown profile 'nope'",
        ("--qat-steps", "5"): "--qat-steps goes with --student",
        ("--cache-batches", "3"): "--cache-batches goes with --student",
        ("--student", "--measure-speed", "--steps", "5"): "trains nothing: drop --steps",
        ("--steps", "0"): "must be 1 or more, got 0",
        ("--student", "--qat-steps", "-3"): "must be 0 or more, got -3",
        ("--lr", "-1"): "must be above 0",
    }
    for args, expected in refused.items():
        with pytest.raises(SystemExit):
            pretrain.main(["--profile", "smoke", *args] if args[0] != "--profile" else list(args))
        assert expected in capsys.readouterr().err, args


def test_a_shipped_student_is_refined_on_fresh_batches_with_its_lineage_kept(
    shipped_smoke, tmp_path, monkeypatch
):
    from pixel_utils.profiles import resolve_profile
    from pixel_utils.report.readme import refined_summary
    from pixel_utils.training import pretrain

    base_dir = _root_with_shipped_student(shipped_smoke, tmp_path, monkeypatch)
    out = tmp_path / "refined"
    base = json.loads((base_dir / "manifest.json").read_text())["models"]["student"]
    source = base_dir / "student.pt"
    refine = ["--profile", "smoke", "--student", "--refine-from", str(source)]
    for wrong in (
        ["--profile", "smoke", "--refine-from", str(source)],  # not --student
        ["--profile", "smoke", "--student", "--seed", "2"],  # --seed without --refine-from
        [*refine, "--steps", "3"],  # it fine-tunes through the rounding only: --qat-steps
        [*refine, "--qat-steps", "0"],
    ):
        with pytest.raises(SystemExit):
            pretrain.main(wrong)
    loose = tmp_path / "loose" / "student.pt"  # no manifest beside it: not a shipped student
    loose.parent.mkdir()
    shutil.copyfile(source, loose)
    with pytest.raises(SystemExit):
        pretrain.main(["--profile", "smoke", "--student", "--refine-from", str(loose)])
    assert pretrain.main([*refine, "--ship", "--out", str(out)]) == 0
    entry = json.loads((out / "manifest.json").read_text())["models"]["student"]
    P = resolve_profile("smoke")
    refined = entry["refined"]
    assert refined["steps"] == P.refine_steps and refined["seed"] == P.refine_seed
    assert refined["cache_batches"] == P.refine_cache_batches
    assert f"--refine-from {source.as_posix()} --seed {P.refine_seed}" in entry["made_by"]
    # The lineage is the source's; the weights, scores and digests are the new ones.
    assert entry["model_kwargs"] == base["model_kwargs"] and entry["steps"] == base["steps"]
    assert refined["source"]["weights_sha256"] == base["weights_sha256"]
    assert entry["weights_sha256"] != base["weights_sha256"]
    assert refined["source"]["benchmark_int8"] == base["benchmark_int8"]
    assert set(entry["benchmark_int8"]) == set(base["benchmark_int8"])
    for case, row in entry["benchmark_int8"].items():  # the same benchmark, not seed 1's noise
        assert row["blurred_psnr"] == base["benchmark_int8"][case]["blurred_psnr"]
    assert (out / "student_int8.onnx").exists() and not (base_dir / "student_int8.json").exists()
    summary = refined_summary(refined, "gauss3")
    assert summary["steps"] == P.refine_steps
    assert summary["gain_db_int8_before"] == base["benchmark_int8"]["gauss3"]["gain_db"]
    # Run again: the finished refinement is reused, not trained again.
    from pixel_utils.training import stages

    runs, real_train_student = [], stages.train_student

    def recording(*args, **kwargs):
        runs.append(real_train_student(*args, **kwargs))
        return runs[-1]

    monkeypatch.setattr(stages, "train_student", recording)
    assert pretrain.main([*refine, "--ship", "--out", str(out)]) == 0
    assert runs and all(run.reused for run in runs)
    again = json.loads((out / "manifest.json").read_text())["models"]["student"]
    assert again["weights_sha256"] == entry["weights_sha256"]
