"""The pipeline's stages as functions of a profile, so notebooks stay thin and later stages can
load (or, if missing, produce) what earlier ones made."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from pixel_utils.data.datasets import (
    PatchPairDataset,
    leaves_stream,
    training_photos,
    validation_set,
)
from pixel_utils.data.degradations import DegradationMix
from pixel_utils.evaluation.inference import pick_device
from pixel_utils.models.networks import build_model
from pixel_utils.paths import checkpoints_dir, data_dir
from pixel_utils.profiles import Profile
from pixel_utils.seeding import set_seed
from pixel_utils.training.distillation import (
    CachedBatches,
    DistillationLoss,
    DistillWeights,
    FeatureAdapters,
    build_teacher_cache,
    cache_key,
    match_taps,
)
from pixel_utils.training.loop import (
    ArtefactMissing,
    TrainConfig,
    TrainResult,
    load_checkpoint,
    model_from_checkpoint,
    train,
)

#: What to run when an evaluation stage finds an artefact missing.
RUN_NOTEBOOK = {
    "02": "run notebook 02 (python -m pixel_utils.report --only 02) with the same profile",
    "03": "run notebook 03 (python -m pixel_utils.report --only 03) with the same profile",
}


def data_key(profile: Profile, mix: DegradationMix) -> dict:
    """Everything about the training data that changes what a model learns."""
    return {
        "seed": profile.seed,
        "dead_leaves": [
            profile.dead_leaves_size,
            profile.dead_leaves_pool,
            profile.dead_leaves_refresh,
            profile.dead_leaves_fraction,
        ],
        "photo_folder": profile.photo_folder,
        "photo_max_side": profile.photo_max_side,
        "patch_size": profile.patch_size,
        "batch_size": profile.batch_size,
        "mix": asdict(mix),
        "val_crop": profile.val_crop,
    }


def train_config(profile: Profile, steps: int, lr: float) -> TrainConfig:
    """The profile's schedule for a run of ``steps`` steps at peak learning rate ``lr``."""
    return TrainConfig(
        steps=steps,
        lr=lr,
        warmup_steps=min(100, max(1, steps // 20)),
        val_every=profile.val_every,
        checkpoint_every=max(profile.val_every, 250),
        seed=profile.seed,
        time_budget_s=profile.time_cap_minutes * 60,
    )


def train_teacher(
    profile: Profile, retrain: bool = False, device: str | None = None, load_only: bool = False
) -> TrainResult:
    """Train (or reuse) the profile's budget teacher, ``<checkpoints>/teacher.pt``; with
    ``load_only`` only load it (an error naming notebook 02 if it is missing)."""
    mix = DegradationMix()
    steps = profile.teacher_steps
    make_dataset = training_stream(profile, mix, steps) if not load_only else None

    return train(
        profile.teacher,
        profile.teacher_kwargs,
        make_dataset,
        train_config(profile, profile.teacher_steps, profile.teacher_lr),
        checkpoints_dir(profile.run_name) / "teacher.pt",
        val_set=validation_set(profile.val_crop, profile.seed),
        data_key=data_key(profile, mix),
        retrain=retrain,
        device=device or profile.device,
        desc="teacher",
        load_only=RUN_NOTEBOOK["02"] if load_only else None,
    )


def training_stream(
    profile: Profile, mix: DegradationMix, steps: int, seed_offset: int = 0, extra_folders=()
):
    """``make_dataset(rank)`` for :func:`~pixel_utils.training.loop.train`: batches cut from the
    profile's training photos (and ``extra_folders``) and its fresh dead-leaves stream,
    degraded on the fly."""
    photos = training_photos(profile, extra_folders)
    seed = profile.seed + seed_offset

    def make_dataset(rank: int) -> PatchPairDataset:
        return PatchPairDataset(
            photos, profile.patch_size, profile.batch_size, steps, mix, seed, rank,
            leaves=leaves_stream(profile, photos, seed + 1000 * rank),
            leaves_fraction=profile.dead_leaves_fraction,
        )  # fmt: skip

    return make_dataset


@dataclass
class DistillSetup:
    """What the two student runs share: the frozen teacher, the tap pairs and the cache."""

    teacher: nn.Module
    pairs: list[tuple[str, str]]
    cache: Path
    data_key: dict


@dataclass(frozen=True)
class StudentStream:
    """Another stream of batches for a distilled student than the profile's teacher cache
    (``make kd-variants``): ``make_dataset(steps, seed)`` returns it; ``name`` suffixes the
    checkpoint and, with ``key``, says what it is in the checkpoint's key. ``unlabelled``
    says some of its batches have no ground truth (they learn from the teacher alone)."""

    name: str
    make_dataset: Callable[[int, int], Any]
    key: dict
    unlabelled: bool = False


@dataclass(frozen=True)
class StudentNetwork:
    """Another network for a student than the profile's (``make kd-slice``): ``model`` and
    ``kwargs`` build it, ``init_state`` (or ``None``: random) starts it; ``name`` suffixes the
    checkpoint and, with ``key``, says what it is and where its first weights came from."""

    name: str
    model: str
    kwargs: dict
    init_state: dict | None = None
    key: dict = dataclasses.field(default_factory=dict)


def prepare_distillation(
    profile: Profile, teacher: TrainResult, load_only: bool = False
) -> DistillSetup:
    """Match feature taps and cache the teacher's outputs on a fixed set of batches of
    ``distill_patch_size`` patches (with ``load_only``, only work out which cache the students
    were trained on). Features are cached only when the feature loss is on."""
    student = build_model(profile.student, **profile.student_kwargs)
    pairs = []
    if profile.distill_weights.get("feature", 0) > 0:
        pairs = match_taps(student.feature_info(), teacher.model.feature_info())
        if profile.feature_taps == "last" and pairs:
            pairs = pairs[-1:]
    mix = DegradationMix()
    patches = dataclasses.replace(profile, patch_size=profile.distill_patch_size)
    key = data_key(patches, mix) | {"cache_batches": profile.cache_batches}
    taps = [t for _, t in pairs]
    digest = cache_key(teacher.checkpoint, key, taps)
    path = data_dir(profile.run_name) / "cache" / f"teacher_outputs_{digest}.pt"
    if not load_only and not path.exists():
        dataset = training_stream(patches, mix, profile.cache_batches, seed_offset=1)(0)
        build_teacher_cache(
            teacher.model, dataset, profile.cache_batches, taps, path,
            device=pick_device(profile.device),
        )  # fmt: skip
    return DistillSetup(teacher.model, pairs, path, key | {"teacher_cache": digest})


def experiment_setup(profile: Profile) -> tuple[TrainResult, DistillSetup, Path]:
    """What an experiment set against the report's students starts from (``make
    kd-variants``, ``make kd-slice``): the distillation teacher, the students' shared setup with
    that teacher frozen, and the benchmark folder, built if missing."""
    from pixel_utils.data.benchmark import build_benchmark
    from pixel_utils.paths import benchmark_dir
    from pixel_utils.training.distillation import freeze

    teacher = distillation_teacher(profile)
    setup = prepare_distillation(profile, teacher)
    freeze(setup.teacher).eval()
    bench = benchmark_dir(profile.run_name)
    build_benchmark(bench, profile.benchmark_crop, profile.seed, profile.benchmark_max_photos)
    return teacher, setup, bench


def train_student(
    profile: Profile, setup: DistillSetup, distill: bool, retrain: bool = False,
    device: str | None = None, seed: int | None = None, load_only: bool = False,
    quantisation_aware_from: TrainResult | None = None, grown_from: Path | None = None,
    labelled: int | None = None, stream: StudentStream | None = None,
    network: StudentNetwork | None = None,
) -> TrainResult:  # fmt: skip
    """The student trained on the cached batches: distilled (``distill=True``, the profile's
    loss weights) or from scratch (ground truth only). Same data, steps, seed and budget.

    ``seed`` (default: the profile's) sets the initial weights and the order and flips of the
    cached batches; other seeds than the profile's get their own checkpoint, ``..._s<seed>``.

    With ``quantisation_aware_from`` (a finished student run) its weights are fine-tuned
    instead, for ``profile.qat_steps`` at ``profile.qat_lr``, through the int8 rounding of
    its served model (:mod:`~pixel_utils.training.quantisation`), into ``<source>_qat.pt``
    (``<source>_qat_s<seed>.pt`` for another seed than the profile's).
    The returned model is the plain network with the fine-tuned weights.

    With ``grown_from`` (a finished student checkpoint with fewer blocks than the profile's
    student) its weights, grown to the profile's student by
    :func:`~pixel_utils.models.networks.grown_student_state` (the added blocks start as the
    identity), start the run instead of random ones, into ``<name>_grown.pt``.

    With ``labelled``, only the first ``labelled`` cached batches keep their ground truth
    (:class:`~pixel_utils.training.distillation.CachedBatches`): the scratch student trains on
    those alone, the distilled one on every batch, from the teacher alone where there is no
    ground truth; into ``<name>_labelled<n>.pt``.

    With ``stream`` (distilled only) the student learns from that stream of batches instead of
    the cache's, everything else alike, into ``<name>_<stream name>.pt``.

    With ``network`` the student is that network (from its own first weights, if it has
    them) instead of the profile's, everything else alike, into ``<name>_<network name>.pt``.
    """
    if network is not None and (quantisation_aware_from is not None or grown_from is not None):
        raise ValueError(f"network {network.name!r}: its first weights are its own, not "
                         "another student's")  # fmt: skip
    steps, lr = profile.student_steps, profile.student_lr
    seed = profile.seed if seed is None else seed
    name = "student_distilled" if distill else "student_scratch"
    suffix = "" if seed == profile.seed else f"_s{seed}"
    loss_fn, adapters, key = None, None, dict(setup.data_key)
    init_state, prepare = None, None
    if quantisation_aware_from is not None:
        from pixel_utils.artefacts import sha256_file
        from pixel_utils.training.quantisation import make_quantisation_aware, rounding_from_onnx

        rounding = rounding_from_onnx(served_student(profile, quantisation_aware_from))
        init_state = model_from_checkpoint(quantisation_aware_from.checkpoint).state_dict()

        def prepare(model):
            make_quantisation_aware(model, rounding)

        steps, lr = profile.qat_steps, profile.qat_lr
        # The source's own suffixes (``_grown``) and then the seed's: a run of another seed
        # from the same source must not overwrite the profile seed's fine-tuning.
        suffix = quantisation_aware_from.checkpoint.stem.removeprefix(name) + "_qat" + suffix
        key |= {"quantisation_aware_from": sha256_file(quantisation_aware_from.checkpoint),
                "rounding": rounding}  # fmt: skip
    if grown_from is not None:
        from pixel_utils.artefacts import sha256_file
        from pixel_utils.models.networks import grown_student_state

        source = load_checkpoint(grown_from)
        set_seed(seed)  # the added blocks' fresh first convolutions: the same on every rerun
        init_state = grown_student_state(
            model_from_checkpoint(grown_from).state_dict(), source["model_kwargs"],
            profile.student_kwargs,
        )  # fmt: skip
        suffix += "_grown"
        key |= {"grown_from": sha256_file(grown_from)}
    if labelled is not None:
        suffix += f"_labelled{labelled}"
        key |= {"labelled_batches": labelled}
    if stream is not None:
        if not distill:
            raise ValueError(f"stream {stream.name!r}: only a distilled student takes a stream")
        # Before the seed's suffix, as the other sources' suffixes: <name>_<stream>_s<seed>.pt
        suffix = f"_{stream.name}" + suffix
        key |= {"stream": stream.name} | stream.key
    model_name, model_kwargs = profile.student, profile.student_kwargs
    if network is not None:
        model_name, model_kwargs, init_state = network.model, network.kwargs, network.init_state
        suffix = f"_{network.name}" + suffix
        key |= {"network": {"name": network.name, "model": model_name, "kwargs": model_kwargs}}
        key |= network.key
    if distill:
        set_seed(seed)  # the adapters' initial weights must not depend on what ran before
        weights = DistillWeights(**profile.distill_weights)
        student = build_model(model_name, **model_kwargs)
        adapters = FeatureAdapters(
            student.feature_info(), setup.teacher.feature_info(), setup.pairs
        )
        unlabelled = labelled is not None or (stream is not None and stream.unlabelled)
        loss_fn = DistillationLoss(setup.teacher, weights, adapters, profile.student_loss,
                                   allow_unlabelled=unlabelled)  # fmt: skip
        key |= {"weights": asdict(weights), "pairs": setup.pairs}
    config = dataclasses.replace(
        train_config(profile, steps, lr), seed=seed, loss=profile.student_loss
    )
    result = train(
        model_name,
        model_kwargs,
        (lambda rank: stream.make_dataset(steps, seed + rank))
        if stream is not None
        else lambda rank: CachedBatches(
            setup.cache, steps, seed + rank, with_teacher=distill, labelled=labelled
        ),  # fmt: skip
        config,
        checkpoints_dir(profile.run_name) / f"{name}{suffix}.pt",
        val_set=validation_set(profile.val_crop, profile.seed),
        data_key=key,
        loss_fn=loss_fn,
        extra=adapters,
        retrain=retrain,
        device=device or profile.device,
        desc=name.replace("_", " ")
        + (f", {stream.name.replace('_', ' ')}" if stream is not None else "")
        + (f", {network.name.replace('_', ' ')}" if network is not None else "")
        + (f" (seed {seed})" if seed != profile.seed else "")
        + (", quantisation-aware" if prepare is not None else ""),
        load_only=RUN_NOTEBOOK["03"] if load_only else None,
        init_state=init_state,
        prepare_model=prepare,
    )
    if prepare is not None:  # the plain network, not the one that rounds in its forward pass
        result = dataclasses.replace(result, model=model_from_checkpoint(result.checkpoint))
    return result


def int8_calibration_batches(profile: Profile) -> list[np.ndarray]:
    """The degraded training patches (NCHW float32 arrays) that calibrate the int8 model."""
    batches = profile.calibration_batches
    stream = training_stream(profile, DegradationMix(), batches, seed_offset=2)(0)
    return [stream[i][0].numpy() for i in range(len(stream))]


def served_student(profile: Profile, student: TrainResult, load_only: bool = False) -> Path:
    """The student as it is served: exported to ONNX and statically quantised to int8, with
    activation ranges calibrated on degraded training patches (never on test photos).

    Written next to the student checkpoint as ``<name>_int8.onnx`` with a ``.json`` sidecar
    holding the hashes of the checkpoint it came from and of the code that builds the graph
    (the networks and the exporter: the same weights export to another graph when a network's
    forward pass changes), and what draws the calibration patches (the profile's seed and
    training data: another seed calibrates other ranges); reused while they match.
    """
    import json

    from pixel_utils.app import onnx_export
    from pixel_utils.app.onnx_export import export_onnx, quantize_int8
    from pixel_utils.artefacts import atomic_write_json, sha256_file
    from pixel_utils.models import networks

    out = student.checkpoint.with_name(f"{student.checkpoint.stem}_int8.onnx")
    sidecar = out.with_suffix(".json")
    made_from = {
        "source": sha256_file(student.checkpoint),
        "ranges": "asymmetric",
        "calibration_batches": profile.calibration_batches,
        "calibration_data": data_key(profile, DegradationMix()),
        "graph_code": [sha256_file(m.__file__) for m in (networks, onnx_export)],
    }
    made_from = json.loads(json.dumps(made_from))  # as the sidecar reads back: lists, not tuples
    if out.exists() and sidecar.exists() and json.loads(sidecar.read_text()) == made_from:
        return out
    if load_only:
        raise ArtefactMissing(f"{out}: missing or made from another student; {RUN_NOTEBOOK['03']}")
    fp32, _ = export_onnx(student.model, out.with_name(f"{student.checkpoint.stem}.onnx"))
    quantize_int8(fp32, out, int8_calibration_batches(profile))
    atomic_write_json(sidecar, made_from)
    return out


def shipped_teacher(device: str | None = None) -> TrainResult:
    """The pretrained teacher shipped in ``pixel_utils/weights`` (made by ``make weights``),
    with its validation history and training time from the manifest.

    A teacher fine-tuned from an earlier shipped one counts the steps and time of every run
    in that chain (:func:`teacher_runs`); only the last run's validation history is kept, so
    its steps are placed after the earlier runs'."""
    import json

    from pixel_utils.app.pretrained import WEIGHTS_DIR, shipped_path
    from pixel_utils.training.loop import model_from_checkpoint

    path = shipped_path("teacher")
    entry = json.loads((WEIGHTS_DIR / "manifest.json").read_text())["models"]["teacher"]
    model = model_from_checkpoint(path, device=device)
    model.float()  # shipped in fp16
    runs = teacher_runs(entry)
    before = sum(int(run.get("steps") or 0) for run in runs[:-1])
    steps = before + entry["steps"]
    seconds = sum(float(run.get("wall_time_s") or 0.0) for run in runs)
    val = [[step + before, *rest] for step, *rest in entry.get("validation_history", [])]
    return TrainResult(model, {"loss": [], "val": val}, steps, seconds, True, path, info=entry)


def teacher_runs(entry: dict) -> list[dict]:
    """The runs a shipped teacher's manifest entry records, first to last: each fine-tuning
    keeps the teacher it started from under ``fine_tuned_from.shipped_teacher``."""
    runs = [entry]
    while earlier := (runs[0].get("fine_tuned_from") or {}).get("shipped_teacher"):
        runs.insert(0, earlier)
    return runs


def training_time_words(budget: TrainResult, shipped: TrainResult) -> str:
    """Notebook 02's reading of its quality-against-time plot, from both teachers' validation
    histories: how far the budget teacher climbed in its minutes, and where the shipped
    teacher's last (recorded) run started and ended after the runs before it."""
    budget_val, shipped_val = budget.history.get("val"), shipped.history.get("val")
    if not budget_val or not shipped_val:
        return "One of the two teachers has no validation history to compare."
    last_run = shipped.info
    before_min = (shipped.seconds - float(last_run.get("wall_time_s") or 0.0)) / 60
    best = max(v[1] for v in shipped_val)
    first_step, first_min = budget_val[0][0], budget.seconds * budget_val[0][0] / budget.step / 60
    lead = shipped_val[0][1] - budget_val[-1][1]
    return (
        f"The budget teacher went from {budget_val[0][1]:.2f} dB at its first validation (step "
        f"{first_step}, {first_min:.1f} min) to {budget_val[-1][1]:.2f} dB at step "
        f"{budget_val[-1][0]} ({budget.seconds / 60:.1f} min). The shipped teacher's last run "
        f"({last_run['steps']:,} steps, {float(last_run.get('wall_time_s') or 0.0) / 60:.0f} "
        f"min) went from {shipped_val[0][1]:.2f} to {shipped_val[-1][1]:.2f} dB (best "
        f"{best:.2f}): the {before_min:.0f} min of training before it had bought the level it "
        f"starts at, {abs(lead):.2f} dB {'above' if lead >= 0 else 'below'} where the budget "
        "teacher ends."
    )


def distillation_teacher(profile: Profile, load_only: bool = False) -> TrainResult:
    """The teacher the students learn from: the shipped one or the report's budget teacher
    (``profile.distill_teacher``)."""
    if profile.distill_teacher == "shipped":
        return shipped_teacher()
    if profile.distill_teacher == "budget":
        return train_teacher(profile, load_only=load_only)
    raise ValueError(
        f"distill_teacher must be 'shipped' or 'budget', not {profile.distill_teacher!r}"
    )


def trained_models(profile: Profile, load_only: bool = False) -> dict[str, nn.Module]:
    """The distillation teacher, the report's budget teacher, the distilled student (PyTorch
    fp32 and served int8) and the scratch student: trained if missing, or with ``load_only``
    (evaluation) only loaded, with an error naming the notebook to run if one is missing."""
    from pixel_utils.app.onnx_export import OnnxModel

    teacher = distillation_teacher(profile, load_only)
    setup = prepare_distillation(profile, teacher, load_only)
    distilled = train_student(profile, setup, distill=True, load_only=load_only)
    return {
        "teacher": teacher.model,
        "budget_teacher": train_teacher(profile, load_only=load_only).model,
        "distilled": distilled.model,
        "distilled_int8": OnnxModel(served_student(profile, distilled, load_only)),
        "scratch": train_student(profile, setup, distill=False, load_only=load_only).model,
    }


def display_models(profile: Profile) -> dict[str, nn.Module]:
    """Teacher and distilled students for looking at results (notebook 05).

    ``"teacher"``: the distillation teacher (the shipped one by default). ``"this run's
    student"``: the profile's distilled student, as it is served: the int8 ONNX model where
    notebook 04 measured it faster than PyTorch (``results.json``), else the PyTorch one.
    ``"shipped student"``: what ``pixel-sharpen`` serves (``make student``: a larger student of
    the same family, trained far longer than a report can), where the weights are shipped, so a
    reader sees both what this run's budget bought and what the course's student does.

    For the default profile without a student checkpoint, the teacher and the shipped student
    alone (so a fresh clone can open notebook 05 without training); otherwise a missing student
    is an error naming notebook 03.
    """
    import json

    from pixel_utils.app.onnx_export import OnnxModel
    from pixel_utils.app.pretrained import int8_is_faster, load_pretrained, shipped_path
    from pixel_utils.paths import reports_dir

    teacher = distillation_teacher(profile).model
    own = checkpoints_dir(profile.run_name) / "student_distilled.pt"
    if profile.run_name == "default" and not own.exists() and shipped_path("student").exists():
        print(f"no {own}: using the shipped student {shipped_path('student')}")
        return {"teacher": teacher, "shipped student": load_pretrained("student")}
    models = trained_models(profile, load_only=True)
    results = reports_dir(profile.run_name) / "results.json"
    if results.exists() and int8_is_faster(json.loads(results.read_text())):
        student: nn.Module = models["distilled_int8"]
        assert isinstance(student, OnnxModel)
        print(f"student: served int8 ({student.path.name}), measured faster than PyTorch")
    else:
        student = models["distilled"]
    shown = {"teacher": teacher, "this run's student": student}
    if shipped_path("student").exists():
        shown["shipped student"] = load_pretrained("student")
    return shown
