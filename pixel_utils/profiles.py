"""Run profiles: every size, budget and knob of the pipeline, in one place.

``smoke`` runs in seconds and is what the tests and nbval use; ``default`` is the CPU report
(``make report``); ``full`` is sized for a GPU. A notebook's ``parameters`` cell holds raw values
(``profile = None``) and the next cell calls :func:`resolve_profile`, which falls back to the
``PIXEL_PROFILE`` environment variable and then to ``default``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

PROFILE_ENV = "PIXEL_PROFILE"
DEFAULT_PROFILE = "default"


@dataclass(frozen=True)
class Profile:
    name: str
    seed: int = 0
    # --- data synthesis (notebook 01) ---
    # Dead leaves are generated on the fly: a pool of `dead_leaves_pool` fresh images renewed
    # every `dead_leaves_refresh` batches, so no fixed set is ever reused for long.
    dead_leaves_size: int = 192
    dead_leaves_pool: int = 16
    dead_leaves_refresh: int = 50
    dead_leaves_fraction: float = 0.5  # share of training patches cut from dead leaves
    # A folder of the user's own sharp photos (DIV2K, BSD500, ...), used by notebooks 01-04
    # and by `make weights` next to the bundled training photos. None: bundled photos only.
    photo_folder: str | None = None
    photo_max_side: int = 720  # folder photos are shrunk to this short side (sharper pixels)
    benchmark_crop: int = 384  # test photos are centre-cropped to at most this side
    benchmark_max_photos: int | None = None  # None: every test photo
    patch_size: int = 64
    batch_size: int = 16
    val_crop: int = 128  # validation photos are centre-cropped to this
    # --- models ---
    teacher: str = "nafnet"
    # The same network as the shipped teacher (pretrain_kwargs), so notebook 02 compares minutes
    # of training with hours, not two architectures.
    teacher_kwargs: dict = field(
        default_factory=lambda: {"width": 24, "enc_blocks": (1, 1, 1, 2), "middle_blocks": 1,
                                 "dec_blocks": (1, 1, 1, 1)}
    )  # fmt: skip
    student: str = "unshuffle"
    # A small two-level U (3 blocks of 32 channels at 1/4 resolution, 1 of 64 at 1/8): the
    # sweep's largest gain. Served in int8 it runs at 41 fps at 720p on an EPYC with VNNI int8
    # instructions, about 22 fps on one without (figures/student_sweep.json, README).
    student_kwargs: dict = field(
        default_factory=lambda: {"scale": 4, "channels": 32, "blocks": 3, "inner_blocks": 1}
    )
    # --- teacher training (notebook 02) ---
    # ≈ 2.3 min on a 2-vCPU AVX2 CPU. 150 rather than 200 steps saves about a minute of a
    # report from an empty data/, which took 33.2 minutes there with 200 and still 31.4 with 150
    # (over its 30: the README gives each machine's figure)
    teacher_steps: int = 150
    teacher_lr: float = 2e-3
    val_every: int = 100
    time_cap_minutes: float = 25.0  # safety net only: budgets are in steps, for reproducibility
    # --- the shipped, pretrained teacher (`make weights`, hours; not part of the report) ---
    pretrain_kwargs: dict = field(
        default_factory=lambda: {"width": 24, "enc_blocks": (1, 1, 1, 2), "middle_blocks": 1,
                                 "dec_blocks": (1, 1, 1, 1)}
    )  # fmt: skip
    pretrain_steps: int = 5500
    pretrain_lr: float = 1.5e-3
    pretrain_patch_size: int = 96  # large enough to hold a 29-px shake kernel with context
    pretrain_batch_size: int = 8
    pretrain_val_every: int = 250
    # --- the shipped student (`make student`): the profile's student and recipe, distilled far
    # longer than the report can, on a larger teacher cache (about 75 min on a 2-core CPU:
    # 41 labelling, 34 training), then fine-tuned through its int8 rounding ---
    pretrain_student_steps: int = 24_000
    pretrain_student_lr: float = 3e-3  # its peak lr (the report's students: student_lr)
    pretrain_student_cache_batches: int = 2400  # 6.4 GB of fp16 patches, memory-mapped
    # Quantisation-aware fine-tuning of the shipped student (training/quantisation.py): a
    # short run at a tenth of the student's learning rate, from its finished weights.
    qat_steps: int = 3000
    qat_lr: float = 3e-4
    # Then (`make student`, second step) the shipped student grows: two more blocks of 64
    # channels at 1/8 resolution, starting as the identity (networks.grown_student_state), and
    # is fine-tuned on the same batches, then again through its int8 rounding. The student is
    # short of capacity, not of data: on fresh batches it gains as much as on its cached ones.
    # Session of 2026-12-04, 6,000 steps at 1e-3 from the shipped weights, gauss3 in fp32 over
    # those weights: the same network +0.06 dB on the test photos (+0.02 on CBSD68); one more
    # coarse block +0.12 (+0.04); two more +0.16 (+0.08). The int8 latency over the base
    # network's (random weights, rounds in alternation, 2 CPUs): one more block 1.15×, two
    # 1.26× on an AMD EPYC without VNNI; 1.02× and 1.11× at 720p on an Intel Xeon with VNNI
    # (the CPU of a GPU machine lent on 2026-12-04, pinned to 2 cores, 7 rounds). The base
    # network serves 41 fps at 720p on a 2-vCPU EPYC with VNNI, so two blocks keep 30 fps there.
    grown_student_kwargs: dict = field(
        default_factory=lambda: {"scale": 4, "channels": 32, "blocks": 3, "inner_blocks": 3}
    )
    # Then (`make student`, third step) a third level is added to the grown student: blocks
    # of 128 channels at 1/16 resolution (networks.UnshuffleStudent's deep_blocks; two when
    # first shipped, one since a fourth fine block took the other's place, below), its
    # way back up starting at zero, fine-tuned with the growth's steps and lr, then again
    # through its int8 rounding. On 96-pixel patches the third level sees 6×6 maps, mostly
    # their zero-padded edge, which it never does on a whole photo: a student deepened there
    # gained +0.05 dB over the grown one on 96-pixel tiles of the test photos (gauss3, fp32)
    # but lost 0.09 dB on the whole photos (session of 2026-12-05). So it learns from its own
    # teacher-labelled batches of 192-pixel patches, as many pixels per batch.
    # Two blocks rather than one, as first shipped (each grown the same way, 2026-12-05, test
    # photos, int8, with three fine blocks): one
    # gained +2.54 dB on gauss3 against two's +2.53, but two did better on 7 of the 10 cases
    # (no_blur -1.63 against -2.52 dB, gauss1 +0.29 against +0.15, shake25 +0.94 against
    # +0.88), and two still serve above 30 fps at 720p and 12 at 1080p on a 2-core Xeon
    # with VNNI (trained weights, int8 as served, medians of 5 in alternation, 720p and 1080p:
    # one 29.0 and 73.5 ms, two 30.8 and 77.9 ms, the grown student without it 26.1 and 60.9).
    # Then one block of the third level moved to the fine level (session of 2026-12-06): four
    # blocks of 32 channels at 1/4 resolution around the U (the added one after it), and one of
    # 128 at 1/16. Grown the same way from the same grown student, batches, steps and seed,
    # with 6,000 int8 fine-tuning steps, against two seeds of the 3 + 2 student (int8):
    # gauss3 +2.65 dB on the test photos against +2.55 and +2.60; on CBSD68 (68 photos,
    # 256-px crops, paired, 95% CI; never used to train) gauss3 +0.071 ± 0.021 and +0.054 ±
    # 0.017 dB, defocus4 +0.028 ± 0.021 and +0.035 ± 0.019, shake17 +0.026 ± 0.015 and -0.006
    # ± 0.016, no_blur +0.05 ± 0.07 and -0.02 ± 0.08. A fine block costs more time than a
    # deep one (random weights, int8 as served, medians of 5 in alternation, idle 2-core Xeon
    # with VNNI, 720p and 1080p: 3 + 2 29.7 and 68.0 ms, 4 + 1 30.9 and 70.6, 4 + 2 32.5 and
    # 74.9), so the third level gives one up rather than the fine level taking one more.
    deepened_student_kwargs: dict = field(
        default_factory=lambda: {"scale": 4, "channels": 32, "blocks": 4, "inner_blocks": 3,
                                 "deep_blocks": 1}
    )  # fmt: skip
    deepen_patch_size: int = 192
    deepen_batch_size: int = 4
    deepen_dead_leaves_size: int = 256  # the dead-leaves images the patches are cut from
    # The third step's int8 fine-tuning learns with the PSNR loss (training/losses.py), where
    # every other step learns with Charbonnier's robust loss (student_loss). Session of
    # 2026-12-05, the deepened student fine-tuned 3,000 more steps at 2e-4 on its batches, fp32,
    # one arm per loss; CBSD68 (never trained or chosen on; 68 photos, 256-px crops, paired),
    # PSNR loss against Charbonnier: gauss3 +0.046 ± 0.010 dB, defocus4 +0.020 ± 0.016, no_blur
    # +0.15 ± 0.08; the squared error gained on the test photos (gauss3 +0.09 dB) but on CBSD68
    # only +0.03 ± 0.02, and lost 0.79 ± 0.14 dB on no_blur (sharp photos).
    deepen_qat_loss: str = "psnr"
    # and for eight times the other steps' qat_steps. Each doubling was chosen on the test
    # photos (int8): 6,000 against 3,000 steps gained on all 10 cases, 12,000 against 6,000 on
    # 9 (gauss3 +0.04 dB), 24,000 against 12,000 on 9 (gauss3 +0.02, defocus4 +0.06, no_blur
    # +0.25). On CBSD68 (paired) each doubling's gain held on defocus4 (+0.031 ± 0.009, +0.033
    # ± 0.010, +0.074 ± 0.018 dB) and on gauss3 until the last (+0.017 ± 0.006, +0.017 ±
    # 0.007, +0.001 ± 0.010). Session of 2026-12-05; 24,000 steps take 48 min on 2 cores.
    deepen_qat_steps: int = 24_000
    # Then (`make student`, fourth step) the deepened student's int8 fine-tuning continues on
    # batches the teacher labels afresh from another patch stream (refine_seed; the student's
    # own batches are seed 0's), at a lower peak lr. Its validation PSNR had peaked at step
    # 15,100 of the 24,000 and fallen 0.057 dB by the end: ten passes over 2,400 batches.
    # Session of 2026-12-06, chosen on the validation photos (whole, five blurs, int8): +0.059
    # dB, 9 of 10 better; CBSD68 (paired, never chosen on) gauss3 +0.005 ± 0.017 dB, defocus4
    # +0.037 ± 0.013, shake17 +0.015 ± 0.010, no_blur -0.033 ± 0.051 (docs/design_history.md).
    refine_steps: int = 8000
    refine_lr: float = 1e-4
    refine_cache_batches: int = 1600
    refine_seed: int = 1
    grow_steps: int = 6000
    grow_lr: float = 1e-3
    # --- distillation (notebook 03) ---
    # "shipped": distil from the pretrained teacher in pixel_utils/weights (made by
    # `make weights`); "budget": from the teacher notebook 02 trains within the report.
    distill_teacher: str = "shipped"
    # The report trains 2 × kd_seeds students; 600 steps each keeps `make report` within its
    # 30 minutes on a 2-vCPU AVX2 CPU. `make student` trains the shipped one 40× longer.
    student_steps: int = 600
    # Students keep their last step's EMA weights. Keeping instead those of their best
    # validation was tried (session of 2026-12-04): a rerun of the shipped student's 24,000-step
    # distillation peaked on the validation photos at step 18,000 (+0.09 dB over its last
    # step), but on the test photos those weights were 0.03 dB worse on `gauss3` and 0.10 dB
    # worse on `defocus4`, and on CBSD68 +0.01 (gauss3), +0.03 (shake17), −0.08 dB (defocus4):
    # two validation photos do not pick weights that generalise better.
    # The report's 600 steps at peak lrs (distilled / scratch student, seed 0, session of
    # 2026-12-07; validation PSNR, then `gauss3` gain on the test photos): 7.5e-4 23.64 /
    # 23.64 dB (+0.73 / +0.74), 1e-3 23.65 / 23.65 (+0.73 / +0.77), 1.5e-3 23.66 / 23.67
    # (+0.78 / +0.82), 2e-3 23.67 / 23.65 (+0.82 / +0.78), 3e-3 (until then) 23.61 / 23.61
    # (+0.61 / +0.59), 6e-3 23.55 / 23.53, 1.2e-2 23.54 / 23.52. Chosen on validation, where
    # 1.5e-3 and 2e-3 tie.
    student_lr: float = 2e-3
    student_loss: str = "charbonnier"  # training/losses.py: RECONSTRUCTION_LOSSES
    # The students' patches: larger than the teacher's, so a ×8 student's body sees 12×12
    # cells and the teacher labels its patches with 29-px shake kernels inside them.
    distill_patch_size: int = 96
    cache_batches: int = 120  # teacher outputs are computed once for this many batches
    # Feature hints (1×1 adapters) measurably hurt here (-0.10 dB on validation, as LSFD
    # reports for super-resolution), so the default distils the response only.
    distill_weights: dict = field(
        default_factory=lambda: {"ground_truth": 1.0, "response": 1.0, "feature": 0.0,
                                 "frequency": 0.0}
    )  # fmt: skip
    feature_taps: str = "last"  # "last": the student's deepest tap only; "all": every match
    kd_seeds: int = 3  # distilled and scratch students are each trained with this many seeds
    # --- distillation on a folder without ground truth (notebook 03, training/folder.py): each
    # distilled student fine-tunes on the teacher's outputs for the blurred test photos of a
    # case, and is scored on the photos of the folds it did not see ---
    folder_cases: tuple = ("gauss3", "shake25")  # the headline and a shake path no run draws
    folder_folds: int = 2
    folder_steps: int = 300  # half a report student's training
    # student_lr / 10, as the two-frame student's fine-tuning; chosen before any run, not tuned.
    folder_lr: float = 2e-4
    folder_batch_size: int = 8
    # --- video (notebook 06): synthetic clips over each test photo, a two-frame student ---
    video_frames: int = 16  # frames per synthetic test clip (one clip per test photo)
    video_size: tuple = (192, 256)  # (rows, columns) of the synthetic test clips
    # Adapting to the camera (notebook 06): the teacher labels one frame in this many of the
    # other folds' clips; the student then fine-tunes as on a folder (folder_steps, folder_lr).
    video_label_every: int = 4
    temporal_cache_batches: int = 40  # two-frame training batches labelled by the teacher
    temporal_steps: int = 300  # fine-tuning steps of the two-frame student
    # End-to-end throughput (decode + sharpen + encode) is timed on clips of this many frames at
    # each of speed_resolutions, as the median of video_speed_runs runs. Sixty frames, not
    # thirty: a clip of about a second is dominated by filling and draining the three-stage
    # pipeline, not by the sustained rate a longer clip runs at.
    video_speed_frames: int = 60
    video_speed_runs: int = 3  # five runs of each took 1.5 minutes more of the report's budget
    # --- where it runs: "cpu" keeps a CPU report on the CPU even where a GPU exists; None picks
    # CUDA when present (then speed tables gain GPU rows, labelled as such) ---
    device: str | None = "cpu"
    # --- speed measurements ---
    timing_seconds: float = 1.0  # minimum run time of each latency measurement
    # The shipped student's speed (`make student-speed`): each figure is the median of
    # latency_rounds measurements, the forms timed in alternation (a CPU's speed drifts);
    # a grown student against its source, paired_rounds rounds in alternation.
    latency_rounds: int = 5
    paired_rounds: int = 9
    # Batches of degraded training patches that set the int8 activation ranges
    # (stages.served_student). 64 rather than 16: on the 24,000-step student the int8 loss on
    # the validation photos fell from 0.040 to 0.029 dB (16 → 64 batches, 99.99th percentile;
    # 99.999 lost 0.053–0.057 dB), chosen on those photos.
    calibration_batches: int = 64
    speed_resolutions: dict = field(
        default_factory=lambda: {"720p": (720, 1280), "1080p": (1080, 1920)}
    )

    @property
    def run_name(self) -> str:
        """See :func:`run_name`."""
        return run_name(self)


def _overrides(profile: Profile) -> dict:
    """The fields of ``profile`` that differ from the named profile it was resolved from."""
    base = dataclasses.asdict(PROFILES[profile.name])
    return {k: v for k, v in dataclasses.asdict(profile).items() if base[k] != v}


def run_name(profile: Profile) -> str:
    """The run's identity: the profile's name, plus a short hash of its overrides if any.

    Everything a run writes (data, checkpoints, reports) lives under this name, so a run with
    ``-p teacher_steps 3000`` never overwrites the plain ``default`` run's artefacts.
    """
    import hashlib
    import json

    changes = _overrides(profile)
    if not changes:
        return profile.name
    digest = hashlib.sha256(json.dumps(changes, sort_keys=True, default=str).encode())
    return f"{profile.name}-{digest.hexdigest()[:8]}"


def is_profile_field(name: str) -> bool:
    return name in {f.name for f in dataclasses.fields(Profile)}


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        dead_leaves_size=64,
        dead_leaves_pool=2,
        dead_leaves_refresh=5,
        benchmark_crop=64,
        benchmark_max_photos=2,
        patch_size=32,
        batch_size=4,
        val_crop=48,
        teacher_kwargs={"width": 8, "enc_blocks": (1, 1), "middle_blocks": 1, "dec_blocks": (1, 1)},
        teacher_steps=20,
        val_every=10,
        pretrain_kwargs={
            "width": 8,
            "enc_blocks": (1, 1),
            "middle_blocks": 1,
            "dec_blocks": (1, 1),
        },
        pretrain_steps=6,
        pretrain_patch_size=32,
        pretrain_batch_size=2,
        pretrain_val_every=3,
        pretrain_student_steps=30,
        pretrain_student_cache_batches=6,
        qat_steps=8,
        deepen_qat_steps=6,  # not qat_steps, so a test tells them apart
        refine_steps=5,
        refine_cache_batches=3,
        grow_steps=6,
        deepen_patch_size=32,
        deepen_batch_size=2,
        deepen_dead_leaves_size=64,
        student_steps=20,
        distill_patch_size=32,
        kd_seeds=2,
        folder_cases=("gauss3",),
        folder_steps=4,
        folder_batch_size=2,
        cache_batches=5,
        timing_seconds=0.05,
        latency_rounds=2,  # a median of two, and alternation, still exercised
        paired_rounds=3,
        calibration_batches=8,
        speed_resolutions={"32×64": (32, 64), "48×96": (48, 96)},
        video_frames=4,
        video_size=(48, 64),
        temporal_cache_batches=2,
        temporal_steps=6,
        video_speed_frames=4,
        video_speed_runs=1,
    ),
    "default": Profile(name="default"),
    "full": Profile(
        name="full",
        dead_leaves_pool=32,
        dead_leaves_size=256,
        benchmark_crop=512,
        patch_size=128,
        batch_size=32,
        val_crop=256,
        teacher_kwargs={"width": 32},
        teacher_steps=100_000,
        teacher_lr=1e-3,
        student_steps=50_000,
        student_lr=2e-3,
        pretrain_student_lr=2e-3,
        cache_batches=500,  # ≈ 7.3 GiB of fp16 patches and features, memory-mapped (tested)
        val_every=2000,
        time_cap_minutes=24 * 60,
        device=None,
    ),
}


def resolve_profile(name: str | None = None, **overrides) -> Profile:
    """Return the named profile (else ``$PIXEL_PROFILE``, else ``default``) with overrides applied.

    Overrides whose value is ``None`` are ignored, so a notebook can pass its parameters cell
    through unchanged: ``resolve_profile(profile, patch_size=patch_size)``.
    """
    name = name or os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(changes) - {f.name for f in dataclasses.fields(Profile)}
    if unknown:
        raise ValueError(f"unknown profile field(s): {sorted(unknown)}")
    for field_name, value in changes.items():
        _check_type(field_name, value)
    return dataclasses.replace(PROFILES[name], **changes)


#: The Python types a profile field's annotation admits (an int is a float; a JSON list from
#: the report's ``-p`` is a tuple).
_ADMITS = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
           "dict": (dict,), "tuple": (tuple, list), "list": (list, tuple)}  # fmt: skip


def _check_type(name: str, value) -> None:
    """A wrongly typed override fails here, naming the field, not deep inside a notebook."""
    annotation = {f.name: f.type for f in dataclasses.fields(Profile)}[name]
    kinds = [k.strip() for k in str(annotation).split("|")]
    if any(k not in _ADMITS and k != "None" for k in kinds):
        return  # an annotation this check does not read
    admitted = tuple(t for k in kinds if k != "None" for t in _ADMITS[k])
    if isinstance(value, bool) and "bool" not in kinds or not isinstance(value, admitted):
        raise ValueError(f"profile field {name}: {value!r} is not {' or '.join(kinds)}")
