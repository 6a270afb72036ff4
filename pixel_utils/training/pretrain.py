"""Pretrain the shipped weights: ``python -m pixel_utils.training.pretrain`` (``make weights``).

Without ``--student`` it trains the teacher; with ``--student`` (``make student``) it distils the
shipped student from the shipped teacher: the profile's student and recipe, for many more steps
than the report affords, on a larger teacher cache. ``--photos DIR`` adds one folder of sharp
photos to the student's teacher-labelled batches (its own cache and run): the way to distil on
your own kind of pictures. The wallpaper photos the teacher learned from did not help the shipped
student (README, "The shipped student").

The teacher:

Hours of training by the project's own loop, on the bundled training photos, any photo
folders given with ``--photos`` and a fresh dead-leaves stream, under the training blur mix
(camera shake, defocus, Gaussian, linear motion; noise; JPEG). The run checkpoints every
``checkpoint_every`` steps under ``data/pretrain/<profile>/`` and resumes where it stopped
after an interruption (``kill -9`` included): run the same command again. When it finishes,
``--ship`` writes the slim weights and their manifest (data sources, config, steps, wall
time, commit, benchmark scores) into ``pixel_utils/weights/``. CUDA is used when present.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import platform
import shlex
from pathlib import Path

import torch

from pixel_utils.arguments import plain_warnings, positive_number, whole_number
from pixel_utils.data.degradations import DegradationMix
from pixel_utils.paths import data_dir
from pixel_utils.profiles import Profile, resolve_profile
from pixel_utils.training.loop import TrainConfig, TrainResult, train


def pretrain_profile(profile: Profile) -> Profile:
    """The profile with its pretraining sizes in place of the report's."""
    return dataclasses.replace(
        profile,
        patch_size=profile.pretrain_patch_size,
        batch_size=profile.pretrain_batch_size,
        teacher_kwargs=profile.pretrain_kwargs,
    )


def folder_fingerprint(folders) -> list[dict]:
    """Each photo folder with its file count and a hash of names and sizes (for the manifest
    and the resume key: a run continues only on the same photos)."""
    from pixel_utils.data.sources import _image_files

    out = []
    for folder in folders:
        files = _image_files(Path(folder))
        digest = hashlib.sha256()
        for f in files:
            digest.update(f"{f.relative_to(folder)}:{f.stat().st_size}\n".encode())
        out.append({"folder": str(folder), "files": len(files), "sha256": digest.hexdigest()})
    return out


def checkpoint_path(profile: Profile, fine_tune: bool = False) -> Path:
    name = "teacher_finetune.pt" if fine_tune else "teacher.pt"
    return data_dir("pretrain") / profile.name / name


def pretrain_teacher(
    profile: Profile, photo_folders=(), steps: int | None = None, device: str | None = None,
    retrain: bool = False, init_from: Path | None = None, lr: float | None = None,
) -> TrainResult:  # fmt: skip
    """Train (or resume, or reuse when complete) the profile's pretrained teacher; with
    ``init_from`` (a teacher checkpoint, e.g. the shipped one) fine-tune those weights instead of
    starting from random ones, under today's degradation mix (``lr``: default the profile's)."""
    from pixel_utils.artefacts import weights_sha256
    from pixel_utils.data.datasets import validation_set
    from pixel_utils.training.loop import model_from_checkpoint
    from pixel_utils.training.stages import data_key, training_stream

    P = pretrain_profile(profile)
    steps = steps or P.pretrain_steps
    mix = DegradationMix()
    config = TrainConfig(
        steps=steps,
        lr=lr or P.pretrain_lr,
        warmup_steps=min(200, max(1, steps // 20)),
        val_every=P.pretrain_val_every,
        checkpoint_every=max(1, min(100, steps // 4)),
        seed=P.seed,
    )
    key = data_key(P, mix) | {"photo_folders": folder_fingerprint(photo_folders)}
    init_state = None
    if init_from is not None:
        start = model_from_checkpoint(init_from, tlc=False).float()
        init_state = {k: v.detach().clone() for k, v in start.state_dict().items()}
        # A checkpoint fine-tuned from other weights is another run.
        key |= {
            "init_from": {"file": Path(init_from).name, "weights_sha256": weights_sha256(start)}
        }
    return train(
        P.teacher,
        P.teacher_kwargs,
        training_stream(P, mix, steps, extra_folders=tuple(photo_folders)),
        config,
        checkpoint_path(P, fine_tune=init_from is not None),
        val_set=validation_set(P.val_crop, P.seed),
        data_key=key,
        retrain=retrain,
        device=device,
        desc="fine-tune teacher" if init_from is not None else "pretrain teacher",
        init_state=init_state,
    )


def pretrain_student(
    profile: Profile, steps: int | None = None, cache_batches: int | None = None,
    device: str | None = None, retrain: bool = False,
) -> tuple[TrainResult, Profile]:  # fmt: skip
    """Distil (or resume, or reuse) the shipped student from the shipped teacher; returns the
    run and the profile it ran under (its own run name, so its cache and checkpoint never mix
    with the report's)."""
    from pixel_utils.training import stages

    P = _shipped_student_profile(profile, steps, cache_batches)
    setup = stages.prepare_distillation(P, stages.shipped_teacher())
    result = stages.train_student(P, setup, distill=True, retrain=retrain, device=device)
    return result, P


def photos_cli(*folders) -> str:
    """The ``--photos`` arguments that give a run these photo folders (``None`` skipped, quoted
    for a shell), as the teacher's and the student's ``made_by`` both write them."""
    return "".join(f" --photos {shlex.quote(str(folder))}" for folder in folders if folder)


def _shipped_student_profile(profile: Profile, steps=None, cache_batches=None) -> Profile:
    return dataclasses.replace(
        profile,
        student_steps=steps or profile.pretrain_student_steps,
        student_lr=profile.pretrain_student_lr,
        cache_batches=cache_batches or profile.pretrain_student_cache_batches,
        # Like the teacher's, the shipped student's budget is its steps: a long run must not
        # stop at the report's safety cap (it resumes across sessions instead).
        time_cap_minutes=24 * 60,
    )


def grow_student(
    profile: Profile, source: Path, steps: int | None = None, lr: float | None = None,
    cache_batches: int | None = None, device: str | None = None, retrain: bool = False,
    deepen: bool = False,
) -> tuple[TrainResult, Profile, Profile]:  # fmt: skip
    """Grow the finished student at ``source`` into the profile's ``grown_student_kwargs``
    (``deepened_student_kwargs`` with ``deepen``: a third level added to a grown student)
    (the added blocks start as the identity, so it starts as good as ``source``) and fine-tune
    it for ``grow_steps`` at ``grow_lr`` on the shipped student's teacher-labelled batches, with
    its loss. Returns the run, the profile it ran under (its own run name, so its checkpoints
    never mix with the student's), and the profile whose run holds the batches."""
    from pixel_utils.training import stages

    if deepen:  # its own batches, of larger patches (profiles.py: deepened_student_kwargs)
        profile = _deepened_batches(profile)
    batches = _shipped_student_profile(profile, cache_batches=cache_batches)
    setup = stages.prepare_distillation(batches, stages.shipped_teacher())
    P = dataclasses.replace(
        batches,
        student_kwargs=profile.deepened_student_kwargs if deepen else profile.grown_student_kwargs,
        student_steps=steps or profile.grow_steps,
        student_lr=lr or profile.grow_lr,
    )
    result = stages.train_student(
        P, setup, distill=True, retrain=retrain, device=device, grown_from=Path(source)
    )
    return result, P, batches


def quantisation_aware_student(
    distilled: TrainResult, profile: Profile, steps: int | None = None,
    device: str | None = None, retrain: bool = False, batches: Profile | None = None,
    loss: str | None = None,
) -> TrainResult:  # fmt: skip
    """Fine-tune (or resume, or reuse) the finished shipped student through its int8 rounding
    (``--qat-steps``), on its teacher-labelled batches, with ``loss`` (default: the one it
    learned with); ``profile`` is the one :func:`pretrain_student` (or :func:`grow_student`)
    returned, ``batches`` the profile whose run holds the batches (default: ``profile``)."""
    from pixel_utils.training import stages

    if distilled.history.get("stopped_early"):
        raise RuntimeError(f"{distilled.checkpoint}: run not complete; resume it first")
    P = dataclasses.replace(
        profile, qat_steps=steps or profile.qat_steps, student_loss=loss or profile.student_loss
    )
    setup = stages.prepare_distillation(
        batches or profile, stages.shipped_teacher(), load_only=True
    )
    return stages.train_student(
        P, setup, distill=True, retrain=retrain, device=device, quantisation_aware_from=distilled
    )


def _deepened_batches(profile: Profile) -> Profile:
    """``profile`` with the deepened student's batches: its larger patches, batch size and
    dead leaves (the third level would see mostly padding on the smaller ones)."""
    return dataclasses.replace(
        profile, distill_patch_size=profile.deepen_patch_size,
        batch_size=profile.deepen_batch_size, dead_leaves_size=profile.deepen_dead_leaves_size,
    )  # fmt: skip


def refine_student(
    profile: Profile, source: Path, steps: int | None = None, lr: float | None = None,
    cache_batches: int | None = None, device: str | None = None, retrain: bool = False,
    seed: int | None = None,
) -> tuple[TrainResult, Profile]:  # fmt: skip
    """Continue the int8 fine-tuning of the finished deepened student at ``source`` (``make
    student``'s fourth step): ``refine_steps`` more steps through its int8 rounding at peak lr
    ``refine_lr``, with the loss of its int8 fine-tuning, on ``refine_cache_batches`` batches
    of its patch size that the teacher labels afresh from another patch stream (profile seed
    ``refine_seed``, which also sets the batches' order and the int8 calibration). Returns the
    run and the profile it ran under (its own run name)."""
    import shutil

    from pixel_utils.artefacts import atomic_write, sha256_file
    from pixel_utils.paths import checkpoints_dir
    from pixel_utils.training import stages
    from pixel_utils.training.loop import load_checkpoint, model_from_checkpoint

    deep = dataclasses.replace(
        _deepened_batches(profile), seed=profile.refine_seed if seed is None else seed
    )
    batches = _shipped_student_profile(
        deep, cache_batches=cache_batches or profile.refine_cache_batches
    )
    P = dataclasses.replace(
        batches, student_kwargs=load_checkpoint(source)["model_kwargs"],
        qat_steps=steps or profile.refine_steps, qat_lr=lr or profile.refine_lr,
        student_loss=profile.deepen_qat_loss,
    )  # fmt: skip
    # A copy among the run's checkpoints: the int8 model whose rounding it trains through is
    # written beside it, never beside the weights in the package.
    copy = checkpoints_dir(P.run_name) / "student_distilled_source.pt"
    if not copy.exists() or sha256_file(copy) != sha256_file(source):
        copy.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(copy, lambda tmp: shutil.copyfile(source, tmp))
    run = TrainResult(model_from_checkpoint(copy), {"val": []}, 0, 0.0, True, copy)
    setup = stages.prepare_distillation(batches, stages.shipped_teacher())
    result = stages.train_student(
        P, setup, distill=True, retrain=retrain, device=device, quantisation_aware_from=run
    )
    return result, P


def _shipped_student_entry(source: Path, weights: str) -> dict | None:
    """The student entry of the ``manifest.json`` beside the checkpoint ``source`` when it
    records the weights whose digest is ``weights`` (``--ship`` wrote both), else None."""
    manifest = source.parent / "manifest.json"
    if not manifest.exists():
        return None
    entry = json.loads(manifest.read_text())["models"].get("student")
    return entry if entry and entry.get("weights_sha256") == weights else None


def shipped_entry_beside(source: Path) -> dict:
    """The manifest entry of the shipped student at ``source`` (``--ship`` wrote it, with the
    ``manifest.json`` beside it), checked against its weights."""
    from pixel_utils.artefacts import weights_sha256
    from pixel_utils.training.loop import model_from_checkpoint

    entry = _shipped_student_entry(source, weights_sha256(model_from_checkpoint(source)))
    if entry is None:
        raise ValueError(f"{source}: not a shipped student (no manifest.json beside it that "
                         "records these weights)")  # fmt: skip
    return entry


#: What a refined student's entry keeps of its source's entry: only how the network was made.
#: Scores, speeds, digests and provenance are the new weights' own.
REFINED_OWN_KEYS = (
    "file", "made_by", "benchmark", "benchmark_int8", "served_ms", "served_ms_runs",
    "int8_is_faster", "served", "int8_calibration", "provenance", "bytes", "weights_sha256",
)  # fmt: skip


def ship_refined_student(
    result: TrainResult, profile: Profile, source_entry: dict, made_by: str,
    out_dir: Path | None = None,
) -> dict:  # fmt: skip
    """Ship the student :func:`refine_student` made. Its manifest entry is its source's (how
    the network was distilled, grown and first fine-tuned, under ``grown_from`` and
    ``quantisation_aware``) with the new weights' own scores, speed, digests and provenance,
    and the refinement, with the source's scores, under ``refined``."""
    from pixel_utils.app.pretrained import WEIGHTS_DIR, update_manifest
    from pixel_utils.training.loop import load_checkpoint

    # Scored on the benchmark its source was scored on (the noise of the source's seed), so the
    # two compare; the refinement's own seed drew only its batches and int8 calibration.
    new = ship_student(result, profile, out_dir, benchmark_seed=source_entry.get("seed", 0))
    ckpt = load_checkpoint(result.checkpoint)
    entry = {k: v for k, v in source_entry.items()
             if k not in ("served_ms_history", "served_ms_provenance", "scratch_twin")}  # fmt: skip
    entry |= {k: new[k] for k in REFINED_OWN_KEYS if k in new}
    entry["made_by"] = made_by
    entry["refined"] = {
        "what": "the source's weights fine-tuned further through the served int8 rounding "
        "(training/quantisation.py) on batches the teacher labelled afresh from another patch "
        "stream (seed), with the loss of train_config",
        "seed": profile.seed,
        "cache_batches": profile.cache_batches,
        "steps": ckpt["step"],
        "wall_time_s": round(float(ckpt["elapsed_s"]), 1),
        "train_config": ckpt["config"],
        "data": ckpt["data"],
        "validation_history": ckpt["history"]["val"],
        "source": {
            k: source_entry.get(k)
            for k in (
                "made_by",
                "weights_sha256",
                "benchmark",
                "benchmark_int8",
                "served_ms",
                "provenance",
            )
        },  # fmt: skip
    }
    update_manifest("student", entry, Path(out_dir or WEIGHTS_DIR))
    return entry


def ship_student(
    result: TrainResult, profile: Profile, out_dir: Path | None = None,
    distilled: TrainResult | None = None, grown_from: dict | None = None,
    benchmark_seed: int | None = None,
) -> dict:  # fmt: skip
    """Write the finished student (PyTorch and int8 ONNX) into the package with its manifest
    entry: how it was made, benchmark scores of both forms, and which one is served (int8 where
    it measured faster than PyTorch at every resolution, the median of the profile's
    ``latency_rounds`` runs: 5 but in the smoke profile).

    ``distilled`` is the run ``result`` was fine-tuned from when ``result`` is its
    quantisation-aware fine-tuning: the entry then also scores those weights in fp32 and
    int8, so the fine-tuning's effect stays on record. ``grown_from`` (:func:`growth_record`)
    is the student it was grown from (:func:`grow_student`), recorded as ``grown_from``.
    ``benchmark_seed`` (default: the profile's seed) draws the benchmark's noise: a student
    refined under another seed is scored on the same benchmark as the one it came from."""
    import shutil

    from pixel_utils.app.onnx_export import OnnxModel
    from pixel_utils.app.pretrained import (
        SERVED_STUDENT,
        WEIGHTS_DIR,
        slim_checkpoint,
        update_manifest,
    )
    from pixel_utils.artefacts import atomic_torch_save, atomic_write, sha256_file, weights_sha256
    from pixel_utils.provenance import provenance
    from pixel_utils.training import stages
    from pixel_utils.training.loop import load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(result.checkpoint)
    if not ckpt["complete"] or result.history.get("stopped_early"):
        raise RuntimeError(f"{result.checkpoint}: run not complete; resume it first")
    out_dir = Path(out_dir or WEIGHTS_DIR)
    # Before the weights are written: once written, they make the package's sources dirty.
    made_at = provenance()
    path = atomic_torch_save(out_dir / "student.pt", slim_checkpoint(result.checkpoint))
    int8_src = stages.served_student(profile, result)
    int8 = atomic_write(out_dir / SERVED_STUDENT, lambda tmp: shutil.copyfile(int8_src, tmp))
    model = model_from_checkpoint(path)
    served = OnnxModel(int8)
    scored = (
        profile if benchmark_seed is None else dataclasses.replace(profile, seed=benchmark_seed)
    )
    scores = benchmark_scores(model, scored)
    scores_int8 = benchmark_scores(served, scored)
    scores_engines = engine_benchmarks(int8, scored)
    speed = served_speed(model, int8, profile)
    qat_cli, run = "", ckpt
    if distilled is not None:
        qat_cli = f" --qat-steps {ckpt['step']}"
        run = load_checkpoint(distilled.checkpoint)
    grow_cli = f" --grow-from {grown_from['file']}" if grown_from else ""
    if grown_from and ckpt["model_kwargs"] == profile.deepened_student_kwargs:
        grow_cli += " --deepen"
    entry = {
        "file": path.name,
        "profile": profile.name,
        "seed": profile.seed,
        "made_by": f"python -m pixel_utils.training.pretrain --student --profile {profile.name}"
        f"{photos_cli(profile.photo_folder)}{grow_cli} --steps {run['step']} "
        f"--cache-batches {profile.cache_batches}{qat_cli} --ship",
        "distilled_from": "teacher.pt",
        "model_name": ckpt["model_name"],
        "model_kwargs": ckpt["model_kwargs"],
        "steps": run["step"],
        "wall_time_s": round(float(run["elapsed_s"]), 1),
        "train_config": run["config"],
        "data": run["data"],
        "validation_history": run["history"]["val"],
        "benchmark": scores,
        "benchmark_int8": scores_int8,
        **scores_engines,
        **speed,
        "served": SERVED_STUDENT if speed["int8_is_faster"] else path.name,
        "int8_calibration": f"{profile.calibration_batches} batches of degraded training "
        "patches (stages.served_student)",
        "provenance": made_at,
        "bytes": path.stat().st_size,
        "weights_sha256": weights_sha256(model),
    }
    if distilled is not None:
        entry["quantisation_aware"] = {
            "what": "the shipped weights: the distilled student above, then fine-tuned through "
            "the served int8 rounding (training/quantisation.py) on the same "
            "teacher-labelled batches, with the loss of its train_config",
            "steps": ckpt["step"],
            "wall_time_s": round(float(ckpt["elapsed_s"]), 1),
            "train_config": ckpt["config"],
            "validation_history": ckpt["history"]["val"],
            "before_fine_tuning": {
                "benchmark": benchmark_scores(distilled.model, profile),
                "benchmark_int8": benchmark_scores(
                    OnnxModel(stages.served_student(profile, distilled)), profile
                ),
            },
            "distilled_checkpoint_sha256": sha256_file(distilled.checkpoint),
            "distilled_weights_sha256": weights_sha256(model_from_checkpoint(distilled.checkpoint)),
        }
    if grown_from:
        entry["grown_from"] = grown_from
    manifest = out_dir / "manifest.json"
    previous = (
        json.loads(manifest.read_text())["models"].get("student", {}) if manifest.exists() else {}
    )
    twin = previous.get("scratch_twin")
    if twin and _twin_measured_on(twin, entry, sha256_file(result.checkpoint)):
        entry["scratch_twin"] = twin  # measured on these weights, or on their fp32 source
    update_manifest("student", entry, out_dir)
    return entry


#: What a grown student's manifest entry keeps of the entry of the student it grew from.
GROWTH_RECORD_KEYS = (
    "made_by", "model_kwargs", "steps", "wall_time_s", "benchmark", "benchmark_int8",
    "served_ms", "served_ms_runs", "served_ms_history", "served_ms_provenance", "provenance",
    "scratch_twin", "grown_from",
)  # fmt: skip


def growth_record(source: Path) -> dict:
    """What the manifest keeps about the student checkpoint ``source`` that a student grows
    from: its digests and network and, when it was shipped (``--ship --out`` wrote it with a
    ``manifest.json`` beside it), how it was made, scored and timed (:data:`GROWTH_RECORD_KEYS`)."""
    from pixel_utils.artefacts import sha256_file, weights_sha256
    from pixel_utils.training.loop import load_checkpoint, model_from_checkpoint

    source = Path(source)
    weights = weights_sha256(model_from_checkpoint(source))
    record = {
        "file": source.as_posix(),
        "checkpoint_sha256": sha256_file(source),
        "weights_sha256": weights,
        "model_kwargs": load_checkpoint(source)["model_kwargs"],
    }
    shipped = _shipped_student_entry(source, weights)
    if shipped is not None:
        record["shipped_entry"] = {k: shipped[k] for k in GROWTH_RECORD_KEYS if k in shipped}
    return record


def served_speed(model: torch.nn.Module, int8_path: Path, profile: Profile) -> dict:
    """Latency of the student in each form (PyTorch fp32; int8 on onnxruntime, and on OpenVINO
    where installed, each on float images, ``int8_<engine>``, and on 8-bit video frames,
    ``frames_int8_<engine>``) at each of the profile's speed resolutions, in ms: the median of
    ``profile.latency_rounds`` measurements (each itself the median of torch.utils.benchmark's
    blocked runs, so that one slow spell does not set it), with all of them kept; the engine
    that serves int8 here (:func:`~pixel_utils.app.openvino_engine.served_engine`) and whether
    int8 on it measured faster than fp32 at every resolution. The forms are timed in
    alternation, one measurement of each per round, so that a drift of the CPU's speed falls
    on all of them."""
    import statistics

    from pixel_utils.app.onnx_export import FrameModel, OnnxModel, served_latency
    from pixel_utils.app.openvino_engine import openvino_available, served_engine
    from pixel_utils.evaluation.cost import measure_latency

    engines = ["onnxruntime"] + (["openvino"] if openvino_available() else [])
    threads = torch.get_num_threads()
    served = {f"int8_{e}": OnnxModel(int8_path, threads, engine=e) for e in engines} | {
        f"frames_int8_{e}": FrameModel(int8_path, threads, engine=e) for e in engines
    }  # each built once: what is timed is the model, not building its session
    timers = {
        form: lambda hw, built=built: served_latency(built, *hw, profile.timing_seconds)
        for form, built in served.items()
    }
    timers["pytorch_fp32"] = lambda hw: measure_latency(
        model, *hw, min_run_time=profile.timing_seconds
    )
    runs = {form: {res: [] for res in profile.speed_resolutions} for form in timers}
    for _ in range(profile.latency_rounds):
        for res, hw in profile.speed_resolutions.items():
            for form, time in timers.items():
                runs[form][res].append(1e3 * time(hw))
    ms = {form: {res: statistics.median(v) for res, v in by_res.items()}
          for form, by_res in runs.items()}  # fmt: skip
    engine = served_engine()
    faster = all(ms[f"int8_{engine}"][r] < ms["pytorch_fp32"][r] for r in profile.speed_resolutions)
    return {"served_ms": ms, "served_ms_runs": runs, "served_engine": engine,
            "int8_is_faster": faster}  # fmt: skip


def engine_benchmarks(int8_path: Path, profile: Profile) -> dict:
    """The int8 model's benchmark scores on each engine but onnxruntime (whose are
    ``benchmark_int8``): ``{"benchmark_int8_openvino": ...}`` where OpenVINO is installed.
    The engines round differently inside the graph, so each is scored."""
    from pixel_utils.app.onnx_export import OnnxModel
    from pixel_utils.app.openvino_engine import openvino_available

    if not openvino_available():
        return {}
    served = OnnxModel(int8_path, engine="openvino")
    return {"benchmark_int8_openvino": benchmark_scores(served, profile)}


def paired_int8_latency(path: Path, other: Path, profile: Profile) -> dict:
    """int8 latency of ``path`` against ``other`` at each speed resolution, timed in
    alternation for ``profile.paired_rounds`` rounds: the ms of each round (``path``, ``other``)
    and the median over rounds of their ratio."""
    import statistics

    from pixel_utils.app.onnx_export import OnnxModel, served_latency

    models = [OnnxModel(p, torch.get_num_threads()) for p in (path, other)]
    rounds, ratio = {}, {}
    for res, hw in profile.speed_resolutions.items():
        rounds[res] = [
            [1e3 * served_latency(m, *hw, profile.timing_seconds) for m in models]
            for _ in range(profile.paired_rounds)
        ]
        ratio[res] = statistics.median(a / b for a, b in rounds[res])
    return {"rounds_ms": rounds, "latency_ratio": ratio}


def remeasure_student_speed(profile: Profile, out_dir: Path | None = None) -> dict:
    """Measure the shipped student's speed again on this machine (``--student
    --measure-speed``): int8 speed hinges on the CPU's int8 instructions, so a figure taken on
    one CPU kind does not hold on another. The new figures replace ``served_ms`` (and the
    served form follows them) with this machine in ``served_ms_provenance``; the earlier ones
    are kept, with their machine, in ``served_ms_history``. The weights are not touched.

    For a grown student whose source (``grown_from``) is still on disk with its served int8
    model beside it, both int8 models are then timed in alternation, ``profile.paired_rounds``
    rounds, into ``grown_from.int8_same_machine``: the grown network's latency over its
    source's, the median of the per-round ratios (a CPU's speed drifts between rounds)."""
    from pixel_utils.app.pretrained import SERVED_STUDENT, WEIGHTS_DIR, update_manifest
    from pixel_utils.provenance import provenance
    from pixel_utils.training.loop import model_from_checkpoint

    out_dir = Path(out_dir or WEIGHTS_DIR)
    manifest = out_dir / "manifest.json"
    entry = json.loads(manifest.read_text())["models"].get("student") if manifest.exists() else None
    if not entry or not (out_dir / SERVED_STUDENT).exists():
        raise RuntimeError(
            f"{out_dir}: no shipped student to measure; ship one first (--student --ship)"
        )
    earlier = entry.get("served_ms_provenance") or entry.get("provenance") or {}
    history = entry.get("served_ms_history", []) + [{
        "served_ms": entry["served_ms"],
        "machine": earlier.get("machine"),
        "utc": earlier.get("utc"),
    }]  # fmt: skip
    model = model_from_checkpoint(out_dir / entry["file"])
    speed = served_speed(model, out_dir / SERVED_STUDENT, profile)
    # The benchmark's noise drawn with the seed ``benchmark_int8`` was scored with.
    scored = dataclasses.replace(profile, seed=entry.get("seed", profile.seed))
    speed |= engine_benchmarks(out_dir / SERVED_STUDENT, scored)
    made_by = (f"python -m pixel_utils.training.pretrain --student --profile {profile.name} "
               "--measure-speed")  # fmt: skip
    entry |= speed | {
        "served": SERVED_STUDENT if speed["int8_is_faster"] else entry["file"],
        "served_ms_provenance": provenance() | {"made_by": made_by},
        "served_ms_history": history,
    }
    source = entry.get("grown_from") or {}
    source_path = Path(source.get("file", ""))
    if source and source_path.is_file() and (source_path.parent / SERVED_STUDENT).exists():
        from pixel_utils.artefacts import weights_sha256

        if weights_sha256(model_from_checkpoint(source_path)) == source["weights_sha256"]:
            source["int8_same_machine"] = paired_int8_latency(
                out_dir / SERVED_STUDENT, source_path.parent / SERVED_STUDENT, profile
            ) | {"machine": entry["served_ms_provenance"].get("machine")}
    update_manifest("student", entry, out_dir)
    return entry


def _twin_measured_on(twin: dict, entry: dict, checkpoint_sha256: str) -> bool:
    """Whether a recorded scratch-twin comparison was measured on the student ``entry``
    ships: on its weights or, for a quantisation-aware fine-tuning, on the weights it was
    fine-tuned from. Compared by the weights' digest (a rebuild writes the same weights in
    other bytes), or by the checkpoint's bytes for twins recorded before weights were."""
    source = entry.get("quantisation_aware", {})
    weights = twin.get("distilled_weights_sha256")
    if weights:
        return weights in (entry.get("weights_sha256"), source.get("distilled_weights_sha256"))
    return twin.get("distilled_checkpoint_sha256", "") in (
        checkpoint_sha256,
        source.get("distilled_checkpoint_sha256"),
    )


def compare_with_scratch_twin(
    distilled: TrainResult, profile: Profile, out_dir: Path | None = None,
    device: str | None = None, retrain: bool = False, seeds: int = 1,
    fine_tuned: TrainResult | None = None,
) -> dict:  # fmt: skip
    """Does distillation pay at the shipped student's scale? Train (or reuse) its scratch twin:
    the same network, teacher-labelled batches, steps and seed, learning from the ground truth
    only. With ``seeds`` > 1 also a distilled student and its scratch twin for each further
    seed (the profile's seed + 1, + 2, ...; each pair shares its initial weights and batch
    order), since one seed's gap is as large as the seed-to-seed spread. Record distilled −
    scratch per benchmark case, paired over the photos and the seeds, in the shipped student's
    manifest entry, which must hold the same weights as ``distilled`` or their
    quantisation-aware fine-tuning (``fine_tuned``: the shipped weights are checked against it,
    since a rebuilt checkpoint holds the same weights but not the same bytes, e.g. its
    timings)."""
    from pixel_utils.app.pretrained import WEIGHTS_DIR, update_manifest
    from pixel_utils.artefacts import sha256_file, weights_sha256
    from pixel_utils.data.benchmark import build_benchmark
    from pixel_utils.evaluation.scoring import evaluate_models, kd_comparison
    from pixel_utils.paths import benchmark_dir
    from pixel_utils.provenance import provenance
    from pixel_utils.training import stages
    from pixel_utils.training.loop import model_from_checkpoint

    if seeds < 1:
        raise ValueError(f"seeds must be at least 1, not {seeds}")
    out_dir = Path(out_dir or WEIGHTS_DIR)
    manifest = json.loads((out_dir / "manifest.json").read_text())
    entry = manifest["models"].get("student")
    shipped = model_from_checkpoint(out_dir / entry["file"]) if entry else None
    digest = sha256_file(distilled.checkpoint)
    weights = weights_sha256(model_from_checkpoint(distilled.checkpoint))
    source = (entry or {}).get("quantisation_aware", {})
    # The shipped weights are these, or were fine-tuned from these (recorded by their digest,
    # or by the checkpoint's bytes in entries written before weights digests were).
    recorded_weights = source.get("distilled_weights_sha256")
    recorded_bytes = source.get("distilled_checkpoint_sha256")
    fine_tuned_from_these = weights == recorded_weights or digest == recorded_bytes
    candidates = {weights} | (
        {weights_sha256(fine_tuned.model)} if fine_tuned is not None else set()
    )
    if shipped is None or not (fine_tuned_from_these or weights_sha256(shipped) in candidates):
        raise RuntimeError(f"{out_dir}: the shipped student is not {distilled.checkpoint}; "
                           "ship it first (--student --ship)")  # fmt: skip
    setup = stages.prepare_distillation(profile, stages.shipped_teacher())
    runs = []  # (seed, distilled run, scratch run), the shipped student's seed first
    for seed in range(profile.seed, profile.seed + seeds):
        student = distilled if seed == profile.seed else stages.train_student(
            profile, setup, distill=True, retrain=retrain, device=device, seed=seed
        )  # fmt: skip
        scratch = stages.train_student(
            profile, setup, distill=False, retrain=retrain, device=device, seed=seed
        )
        runs.append((seed, student, scratch))
    bench = benchmark_dir(profile.name)
    build_benchmark(bench, profile.benchmark_crop, profile.seed, profile.benchmark_max_photos)
    models = {"blurred": None}
    for seed, student, scratch in runs:
        models |= {f"distilled_s{seed}": student.model, f"scratch_s{seed}": scratch.model}
    scores = evaluate_models(models, bench)
    pairs = [(f"distilled_s{seed}", f"scratch_s{seed}") for seed, _, _ in runs]
    per_case = {}
    for case in scores["case"].unique():
        kd = kd_comparison(scores, pairs, case)
        per_case[case] = {k: kd[k] for k in ("mean_db", "ci95_over_images", "ci95_over_seeds",
                                             "ci_excludes_zero", "images", "seeds")}  # fmt: skip
        per_case[case]["per_seed_db"] = {int(a.removeprefix("distilled_s")): v
                                         for a, v in kd["per_seed_db"].items()}  # fmt: skip
    more = f" --kd-seeds {seeds}" if seeds > 1 else ""
    entry["scratch_twin"] = {
        "made_by": f"python -m pixel_utils.training.pretrain --student --profile {profile.name}"
        f"{photos_cli(profile.photo_folder)} --steps {distilled.step} "
        f"--cache-batches {profile.cache_batches} --scratch-twin{more}",
        "steps": runs[0][2].step,
        "seed": profile.seed,
        "seeds": [seed for seed, _, _ in runs],
        # The twins and the further distilled students: what this command trained.
        "wall_time_s": round(
            sum(s.seconds for _, _, s in runs) + sum(d.seconds for _, d, _ in runs[1:]), 1
        ),
        "stopped_early": any(
            bool(r.history.get("stopped_early")) for _, d, s in runs for r in (d, s)
        ),
        "distilled_checkpoint_sha256": digest,
        "distilled_weights_sha256": weights,
        "distilled_minus_scratch": per_case,
        "provenance": provenance(),
    }
    update_manifest("student", entry, out_dir)
    return entry["scratch_twin"]


def benchmark_scores(model: torch.nn.Module, profile: Profile, cases=None) -> dict:
    """Mean PSNR/SSIM and gain per benchmark case (the profile's benchmark, built if absent),
    for every case or only ``cases``."""
    from pixel_utils.data.benchmark import build_benchmark
    from pixel_utils.evaluation.scoring import evaluate_models, summarise, summary_json
    from pixel_utils.paths import benchmark_dir

    bench = benchmark_dir(profile.name)
    build_benchmark(bench, profile.benchmark_crop, profile.seed, profile.benchmark_max_photos)
    scores = evaluate_models({"blurred": None, "model": model}, bench, cases=cases)
    table = summary_json(summarise(scores))
    return {
        case: {
            "blurred_psnr": row["blurred"]["psnr"],
            "psnr": row["model"]["psnr"],
            "ssim": row["model"]["ssim"],
            "gain_db": row["model"]["psnr"] - row["blurred"]["psnr"],
        }
        for case, row in table.items()
    }


#: The cases the test-time options are measured on (the ensemble costs 8 teacher runs each).
OPTION_CASES = ("gauss3", "shake17", "shake25", "defocus4")


def test_time_options(path: Path, profile: Profile, scores: dict) -> dict:
    """What TLC (on by default) and the ×8 self-ensemble (optional) change, in dB per case:
    ``tlc_gain_db`` is TLC against global pooling, ``ensemble_gain_db`` the ensemble (with TLC)
    against a single pass."""
    from pixel_utils.evaluation.inference import SelfEnsemble
    from pixel_utils.training.loop import model_from_checkpoint

    cases = tuple(c for c in OPTION_CASES if c in scores)
    plain = benchmark_scores(model_from_checkpoint(path, tlc=False), profile, cases)
    ensemble = benchmark_scores(SelfEnsemble(model_from_checkpoint(path)), profile, cases)
    return {
        "tlc_gain_db": {c: scores[c]["psnr"] - plain[c]["psnr"] for c in cases},
        "ensemble_x8_gain_db": {c: ensemble[c]["psnr"] - scores[c]["psnr"] for c in cases},
        "ensemble_x8_psnr": {c: ensemble[c]["psnr"] for c in cases},
    }


def ship(
    result: TrainResult, profile: Profile, photo_folders=(), out_dir: Path | None = None,
    init_from: Path | None = None,
):  # fmt: skip
    """Write the finished teacher into the package (fp16 weights: half the bytes, and the
    rounding moves outputs by ~1e-4) and record how it was made in the manifest. For a
    fine-tuning (``init_from``) the entry keeps what it started from: those weights' digest and
    the manifest entry of the teacher they were (when they were the shipped one), and a shipped
    student distilled from that teacher says so."""
    from pixel_utils.app.pretrained import WEIGHTS_DIR, slim_checkpoint, update_manifest
    from pixel_utils.artefacts import weights_sha256
    from pixel_utils.provenance import provenance
    from pixel_utils.training.loop import load_checkpoint, model_from_checkpoint

    if result.history.get("stopped_early"):
        raise RuntimeError("the pretraining run stopped early; only finished runs are shipped")
    out_dir = Path(out_dir or WEIGHTS_DIR)
    ckpt = load_checkpoint(result.checkpoint)
    if not ckpt["complete"]:
        raise RuntimeError(f"{result.checkpoint}: run not complete; resume it first")
    manifest_path = out_dir / "manifest.json"
    models = json.loads(manifest_path.read_text())["models"] if manifest_path.exists() else {}
    previous = models.get("teacher")
    previous_weights = (
        weights_sha256(model_from_checkpoint(out_dir / "teacher.pt", tlc=False))
        if previous and (out_dir / "teacher.pt").exists() else None
    )  # fmt: skip
    fine_tuned_from = None
    if init_from is not None:
        start = weights_sha256(model_from_checkpoint(init_from, tlc=False))
        fine_tuned_from = {"path": str(init_from), "weights_sha256": start}
        if previous and start == previous_weights:
            # The previous teacher's own origin too, so a chain of fine-tunings keeps every run.
            kept = ("made_by", "steps", "wall_time_s", "benchmark", "provenance", "fine_tuned_from")
            fine_tuned_from["shipped_teacher"] = {k: previous[k] for k in kept if k in previous}
    slim = slim_checkpoint(result.checkpoint, half=True)
    from pixel_utils.artefacts import atomic_torch_save

    made_at = provenance()  # before the weights are written (see ship_student)
    path = atomic_torch_save(out_dir / "teacher.pt", slim)
    # Scored exactly as users will run it: the shipped fp16 file, loaded the standard way.
    model = model_from_checkpoint(path)
    scores = benchmark_scores(model, profile)
    options = test_time_options(path, profile, scores)
    entry = {
        "file": path.name,
        "profile": profile.name,
        "seed": profile.seed,
        "made_by": f"python -m pixel_utils.training.pretrain --profile {profile.name}"
        + photos_cli(*photo_folders)
        + f" --steps {ckpt['step']}"
        + (
            f" --init-from {fine_tuned_from['path']} --lr {ckpt['config']['lr']:g}"
            if fine_tuned_from
            else ""
        )
        + " --ship",
        "model_name": ckpt["model_name"],
        "model_kwargs": ckpt["model_kwargs"],
        "steps": ckpt["step"],
        "wall_time_s": round(float(ckpt["elapsed_s"]), 1),
        "device": str(result.model.parameters().__next__().device),
        "machine": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "train_config": ckpt["config"],
        "data": {
            "bundled_photos": "the scikit-image/matplotlib training split (sources.PHOTO_SPLITS)",
            "photo_folders": folder_fingerprint(photo_folders),
            "dead_leaves": "fresh stream (datasets.DeadLeavesStream)",
            "degradations": dataclasses.asdict(DegradationMix()),
            **ckpt["data"],
        },
        "validation_history": ckpt["history"]["val"],
        "benchmark": scores,
        "test_time_options": options,
        "provenance": made_at,
        "bytes": path.stat().st_size,
        "weights_sha256": weights_sha256(model),
    }
    if fine_tuned_from:
        entry["fine_tuned_from"] = fine_tuned_from
    update_manifest("teacher", entry, out_dir)
    student = models.get("student")
    replaced = previous_weights and previous_weights != entry["weights_sha256"]
    if student and replaced and student.get("distilled_from") == "teacher.pt":
        # The student was distilled from the teacher this one replaces: keep that on record.
        student["distilled_from"] = {
            "file": "teacher.pt, since replaced",
            "weights_sha256": previous_weights,
            "made_by": (previous or {}).get("made_by"),
        }
        update_manifest("student", student, out_dir)
    return entry


def main(argv=None) -> int:
    with plain_warnings():  # a skipped --photos file: one line, not Python's source excerpt
        return _main(argv)


def _main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("--profile", default=None, help="profile name (default: $PIXEL_PROFILE)")
    parser.add_argument(
        "--photos", action="append", default=[], metavar="DIR",
        help="a folder of sharp photos to train on as well (repeatable for the teacher; one "
        "for --student, whose teacher-labelled batches then include its photos)",
    )  # fmt: skip
    parser.add_argument(
        "--steps", type=whole_number(1), default=None, help="override the profile's steps"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA if any)")
    parser.add_argument("--retrain", action="store_true", help="ignore an existing checkpoint")
    parser.add_argument(
        "--ship", action="store_true",
        help="when finished, write the weights and manifest into pixel_utils/weights/",
    )  # fmt: skip
    parser.add_argument("--out", default=None, help="where --ship writes (default: the package)")
    parser.add_argument(
        "--student", action="store_true",
        help="distil the shipped student from the shipped teacher instead",
    )  # fmt: skip
    parser.add_argument(
        "--cache-batches", type=whole_number(1), default=None,
        help="--student: teacher-labelled batches (default: the profile's)",
    )  # fmt: skip
    parser.add_argument(
        "--qat-steps", type=whole_number(0), default=None,
        help="--student: then fine-tune it through its int8 rounding for this many steps "
        "(0: not at all; default: the profile's qat_steps, deepen_qat_steps with --deepen) "
        "and ship that",
    )  # fmt: skip
    parser.add_argument(
        "--scratch-twin", action="store_true",
        help="--student: also train the shipped student's scratch twin and record "
        "distilled − scratch in its manifest entry (as long again as the student)",
    )  # fmt: skip
    parser.add_argument(
        "--kd-seeds", type=whole_number(1), default=1, metavar="N",
        help="--scratch-twin: over N seeds, a distilled student and its scratch twin for each "
        "seed after the shipped one's (default 1: the twin only)",
    )  # fmt: skip
    parser.add_argument(
        "--init-from", default=None, metavar="CHECKPOINT",
        help="the teacher: fine-tune these weights (e.g. a copy of the shipped teacher.pt) "
        "instead of training from random ones",
    )  # fmt: skip
    parser.add_argument(
        "--grow-from", default=None, metavar="CHECKPOINT",
        help="--student: instead of distilling anew, grow this finished student (e.g. a copy of "
        "the shipped student.pt) into the profile's grown_student_kwargs and fine-tune it",
    )  # fmt: skip
    parser.add_argument(
        "--deepen", action="store_true",
        help="--grow-from: grow into the profile's deepened_student_kwargs instead (a third "
        "level added to a grown student)",
    )  # fmt: skip
    parser.add_argument(
        "--refine-from", default=None, metavar="CHECKPOINT",
        help="--student: continue the int8 fine-tuning of this shipped deepened student (with "
        "its manifest.json beside it, e.g. the package's own student.pt) for --qat-steps "
        "(default: the profile's refine_steps) on batches the teacher labels afresh "
        "(--cache-batches, default refine_cache_batches) from the patch stream of --seed",
    )  # fmt: skip
    parser.add_argument(
        "--seed", type=whole_number(0), default=None,
        help="--refine-from: the seed of the freshly labelled batches, their order and the "
        "int8 calibration (default: the profile's refine_seed)",
    )  # fmt: skip
    parser.add_argument(
        "--lr", type=positive_number, default=None,
        help="override the peak lr of the teacher or of --grow-from's or --refine-from's "
        "fine-tuning",
    )  # fmt: skip
    parser.add_argument(
        "--measure-speed", action="store_true",
        help="--student: measure the shipped student's speed again on this machine and record "
        "it in the manifest (no training)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        resolve_profile(args.profile)
    except ValueError as err:
        parser.error(f"--profile: {err}")
    if not args.student:
        for flag, value in (
            ("--cache-batches", args.cache_batches),
            ("--qat-steps", args.qat_steps),
        ):
            if value is not None:
                parser.error(f"{flag} goes with --student")
    if args.measure_speed:
        if not args.student:
            parser.error("--measure-speed goes with --student")
        training = [f for f, v in (("--steps", args.steps), ("--ship", args.ship),
                                   ("--grow-from", args.grow_from), ("--retrain", args.retrain),
                                   ("--scratch-twin", args.scratch_twin)) if v]  # fmt: skip
        if training:
            parser.error(f"--measure-speed trains nothing: drop {', '.join(training)}")
        profile = resolve_profile(args.profile)
        entry = remeasure_student_speed(profile, args.out)
        for form, by_res in entry["served_ms"].items():
            print(f"{form}: " + ", ".join(f"{r} {ms:.1f} ms ({1e3 / ms:.1f} fps)"
                                          for r, ms in by_res.items()))  # fmt: skip
        print(f"served: {entry['served']} on {entry['served_engine']} "
              f"(median of {profile.latency_rounds} measurements each)")  # fmt: skip
        return 0
    if args.scratch_twin and not args.student:
        parser.error("--scratch-twin goes with --student")
    if args.grow_from and not args.student:
        parser.error("--grow-from goes with --student")
    if args.refine_from and not args.student:
        parser.error("--refine-from goes with --student")
    if args.seed is not None and not args.refine_from:
        parser.error("--seed goes with --refine-from")
    if args.refine_from:
        clash = [f for f, v in (("--grow-from", args.grow_from), ("--steps", args.steps),
                                ("--scratch-twin", args.scratch_twin), ("--photos", args.photos))
                 if v]  # fmt: skip
        if clash:
            parser.error(f"--refine-from fine-tunes through the int8 rounding only "
                         f"(--qat-steps): drop {', '.join(clash)}")  # fmt: skip
        if args.qat_steps == 0:
            parser.error("--refine-from needs --qat-steps of 1 or more")
    if args.deepen and not args.grow_from:
        parser.error("--deepen goes with --grow-from")
    if args.kd_seeds != 1 and not args.scratch_twin:
        parser.error("--kd-seeds goes with --scratch-twin")
    profile = resolve_profile(args.profile)
    for folder in args.photos:
        if not Path(folder).is_dir():
            parser.error(f"--photos {folder}: not a folder")
    if args.student:
        if len(args.photos) > 1:
            parser.error("--student takes one --photos folder (the profile's photo_folder)")
        if args.photos:  # learn on these photos as well, as the teacher did
            profile = dataclasses.replace(profile, photo_folder=args.photos[0])
        if args.init_from:
            parser.error("--init-from is for the teacher (a student grows --grow-from)")
        if args.lr and not (args.grow_from or args.refine_from):
            parser.error("--lr goes with the teacher, --grow-from or --refine-from")
        if args.refine_from:
            source = Path(args.refine_from)
            if not source.is_file():
                parser.error(f"--refine-from {source}: no such checkpoint")
            try:  # before --ship could replace it
                source_entry = shipped_entry_beside(source)
            except ValueError as err:
                parser.error(f"--refine-from {err}")
            result, P = refine_student(
                profile, source, args.qat_steps, args.lr, args.cache_batches, args.device,
                args.retrain, args.seed,
            )  # fmt: skip
            last = result.history["val"][-1] if result.history["val"] else None
            print(f"refined student: {result.step} steps through its int8 rounding, "
                  f"{result.seconds / 60:.1f} min"
                  + (f", validation {last[1]:.2f} dB (int8 rounding)" if last else ""))  # fmt: skip
            if args.ship:
                made_by = (
                    f"python -m pixel_utils.training.pretrain --student --profile {P.name} "
                    f"--refine-from {shlex.quote(source.as_posix())} --seed {P.seed} "
                    f"--qat-steps {P.qat_steps} --lr {P.qat_lr:g} "
                    f"--cache-batches {P.cache_batches} --ship"
                )
                entry = ship_refined_student(result, P, source_entry, made_by, args.out)
                print(f"shipped {entry['file']} (served: {entry['served']}): {entry['benchmark']}")
            return 0
        if args.grow_from and args.scratch_twin:
            parser.error("--scratch-twin compares the distilled student, not a grown one")
        batches, growth = None, None
        if args.grow_from:
            if not Path(args.grow_from).is_file():
                parser.error(f"--grow-from {args.grow_from}: no such checkpoint")
            growth = growth_record(Path(args.grow_from))  # before --ship could replace it
            result, P, batches = grow_student(
                profile, Path(args.grow_from), args.steps, args.lr, args.cache_batches,
                args.device, args.retrain, args.deepen,
            )  # fmt: skip
        else:
            result, P = pretrain_student(profile, args.steps, args.cache_batches, args.device,
                                         args.retrain)  # fmt: skip
        last = result.history["val"][-1] if result.history["val"] else None
        print(f"{'grown' if growth else 'distilled'} student: {result.step} steps, "
              f"{result.seconds / 60:.1f} min"
              + (f", validation {last[1]:.2f} dB" if last else ""))  # fmt: skip
        shipped, distilled = result, None
        qat_steps = args.qat_steps
        if qat_steps is None:
            qat_steps = profile.deepen_qat_steps if args.deepen else P.qat_steps
        if qat_steps > 0:
            loss = profile.deepen_qat_loss if args.deepen else None
            shipped = quantisation_aware_student(
                result, P, qat_steps, args.device, args.retrain, batches, loss
            )
            distilled = result
            last = shipped.history["val"][-1] if shipped.history["val"] else None
            print(f"quantisation-aware fine-tuning: {shipped.step} steps, "
                  f"{shipped.seconds / 60:.1f} min"
                  + (f", validation {last[1]:.2f} dB (int8 rounding)" if last else ""))  # fmt: skip
        if args.ship:
            entry = ship_student(shipped, P, args.out, distilled, growth)
            print(f"shipped {entry['file']} (served: {entry['served']}): {entry['benchmark']}")
        if args.scratch_twin:
            twin = compare_with_scratch_twin(result, P, args.out, args.device, args.retrain,
                                             args.kd_seeds, fine_tuned=shipped)  # fmt: skip
            for case, kd in twin["distilled_minus_scratch"].items():
                half, n = kd["ci95_over_images"], kd["images"]
                over_seeds = (f", ± {kd['ci95_over_seeds']:.3f} over {kd['seeds']} seeds"
                              if kd["seeds"] > 1 else ", one seed")  # fmt: skip
                print(f"distilled − scratch, {case}: {kd['mean_db']:+.3f} ± {half:.3f} dB "
                      f"(95% CI over {n} photos{over_seeds})")  # fmt: skip
        return 0
    if args.init_from and not Path(args.init_from).is_file():
        parser.error(f"--init-from {args.init_from}: no such checkpoint")
    init_from = Path(args.init_from) if args.init_from else None
    result = pretrain_teacher(profile, args.photos, args.steps, args.device, args.retrain,
                              init_from, args.lr)  # fmt: skip
    last = result.history["val"][-1] if result.history["val"] else None
    print(f"pretrained teacher: {result.step} steps, {result.seconds / 60:.1f} min"
          + (f", validation {last[1]:.2f} dB" if last else ""))  # fmt: skip
    if args.ship:
        entry = ship(result, profile, args.photos, args.out, init_from)
        print(f"shipped {entry['file']}: {entry['benchmark']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
