"""A student cut from the teacher: ``python -m pixel_utils.training.teacher_slice``
(``make kd-slice``).

#13's last untried recipe is to initialise the student from the teacher. The served student
is another network than the teacher, so nothing of the teacher maps onto it. This experiment
uses a student that *is* a slice of the teacher instead (CSD, Wang et al., CVPR 2021): the
same NAFNet U-Net, the same blocks, with a third of its channels at every level
(:func:`~pixel_utils.models.networks.teacher_slice_state`). It is a study of distillation,
not a served student: in fp32 it takes about 0.8 s per 720p frame on 2 cores.

Six students per seed. Four are 2 × 2: random or teacher-cut first weights, trained from
scratch (ground truth alone) or distilled (the report's recipe), with the report's steps,
schedule, learning rate, cached batches and seeds. Paired by photo and seed on the benchmark,
they separate what the teacher's labels give from what its weights give, and say whether the
labels pay more once the student starts from the teacher. The last two repeat the cut pair at
a fine-tuning learning rate (:data:`FINE_TUNE_LR`), which keeps the student nearer the
teacher it was cut from.

Writes ``figures/kd_slice.json`` (with the commit and pipeline hash it ran on) and
``figures/kd_slice.png``. About 55 minutes on a 2-core CPU after a report, which made the
teacher's cache and the report's students, shown next to these for scale.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from pixel_utils.progress import tqdm

#: The slice's channels at full resolution: a third of the shipped teacher's 24.
SLICE_WIDTH = 8
#: The peak learning rate of the cut students' second pair: the shipped teacher's own last
#: fine-tuning's (its manifest), chosen before any run. At the report's rate the first steps
#: may move a cut start far from the teacher; at a fine-tuning rate it stays closer, as CSD's
#: slices do, and the teacher's labels are then a target its own shape can follow.
FINE_TUNE_LR = 5e-4
#: The students of each seed: (first weights cut from the teacher, distilled, peak learning
#: rate; None: the report's).
ARMS = {
    "scratch": (False, False, None),
    "distilled": (False, True, None),
    "scratch_from_teacher": (True, False, None),
    "distilled_from_teacher": (True, True, None),
    "scratch_from_teacher_fine_lr": (True, False, FINE_TUNE_LR),
    "distilled_from_teacher_fine_lr": (True, True, FINE_TUNE_LR),
}
LABELS = {
    "scratch": "random start, from scratch",
    "distilled": "random start, distilled",
    "scratch_from_teacher": "cut from the teacher, from scratch",
    "distilled_from_teacher": "cut from the teacher, distilled",
    "scratch_from_teacher_fine_lr": "cut from the teacher, from scratch, fine-tuning rate",
    "distilled_from_teacher_fine_lr": "cut from the teacher, distilled, fine-tuning rate",
}
#: The paired differences reported: (name, arm, against, what it measures).
EFFECTS = (
    ("labels", "distilled", "scratch", "the teacher's labels, from a random start"),
    ("labels_from_teacher", "distilled_from_teacher", "scratch_from_teacher",
     "the teacher's labels, from the teacher's weights"),
    ("weights", "scratch_from_teacher", "scratch", "the teacher's weights, without its labels"),
    ("both", "distilled_from_teacher", "scratch", "the teacher's weights and labels together"),
    ("labels_fine_lr", "distilled_from_teacher_fine_lr", "scratch_from_teacher_fine_lr",
     "the teacher's labels, from its weights at a fine-tuning rate"),
    ("weights_fine_lr", "scratch_from_teacher_fine_lr", "scratch",
     "the teacher's weights at a fine-tuning rate, without its labels"),
)  # fmt: skip
CASES = ("gauss3", "shake25", "defocus4", "gauss1", "no_blur")


def slice_networks(teacher_checkpoint: Path, teacher_state: dict, width: int = SLICE_WIDTH):
    """The two :class:`~pixel_utils.training.stages.StudentNetwork` of the experiment: the
    teacher's network at ``width`` from random weights, and from the teacher's cut ones."""
    from pixel_utils.artefacts import sha256_file
    from pixel_utils.models.networks import teacher_slice_state
    from pixel_utils.training.loop import load_checkpoint
    from pixel_utils.training.stages import StudentNetwork

    ckpt = load_checkpoint(teacher_checkpoint)
    if ckpt["model_name"] != "nafnet":
        raise ValueError(f"{teacher_checkpoint}: a slice needs a NAFNet U-Net teacher, "
                         f"not {ckpt['model_name']!r}")  # fmt: skip
    kwargs = dict(ckpt["model_kwargs"]) | {"width": width}
    cut = teacher_slice_state(teacher_state, ckpt["model_kwargs"], width)
    source = {"cut_from": sha256_file(teacher_checkpoint)}
    return (
        StudentNetwork(f"slice{width}", "nafnet", kwargs),
        StudentNetwork(f"slice{width}_cut", "nafnet", kwargs, {k: v.float() for k, v in
                       cut.items()}, source),
    )  # fmt: skip


def run_teacher_slice(
    profile_name: str = "default", seeds: int = 3, cases: tuple[str, ...] = CASES,
    width: int = SLICE_WIDTH, out_dir: Path | None = None,
) -> dict:  # fmt: skip
    """Train the six students of :data:`ARMS` for each seed, score them with the teacher,
    the untrained cut and the report's students on ``cases``, write the JSON and figure to
    ``out_dir`` (default: the profile's figures folder) and return the result."""
    from pixel_utils.evaluation.scoring import (
        SeededScores,
        check_cases,
        evaluate_models,
        write_experiment,
    )
    from pixel_utils.models.networks import build_model, count_parameters, set_test_time_window
    from pixel_utils.paths import figures_dir
    from pixel_utils.profiles import resolve_profile
    from pixel_utils.provenance import provenance
    from pixel_utils.report.viz import kd_slice_figure
    from pixel_utils.training import stages
    from pixel_utils.training.loop import model_from_checkpoint

    cases = check_cases(cases)
    profile = resolve_profile(profile_name)
    teacher, setup, bench = stages.experiment_setup(profile)
    random_start, cut_start = slice_networks(teacher.checkpoint, setup.teacher.state_dict(), width)
    untrained = build_model("nafnet", **cut_start.kwargs)
    untrained.load_state_dict(cut_start.init_state)
    set_test_time_window(untrained, profile.distill_patch_size)  # as its trained siblings
    seed_list = list(range(profile.seed, profile.seed + seeds))
    methods: dict = {"blurred": None, "teacher": setup.teacher, "cut, untrained": untrained.eval()}
    for seed in tqdm(seed_list, desc="kd slice"):
        for kd, arm in ((True, "report distilled"), (False, "report scratch")):  # for scale
            methods[f"{arm} s{seed}"] = stages.train_student(profile, setup, kd, seed=seed).model
        for arm, (from_teacher, kd, lr) in ARMS.items():
            network = cut_start if from_teacher else random_start
            # Another rate is another run (profiles.run_name): its own checkpoints folder.
            arm_profile = profile if lr is None else dataclasses.replace(profile, student_lr=lr)
            run = stages.train_student(arm_profile, setup, kd, seed=seed, network=network)
            # Rebuilt from its checkpoint: TLC's pooling windows for full-size photos.
            methods[f"{arm} s{seed}"] = model_from_checkpoint(run.checkpoint)
    methods = {k: (m.float().eval() if m is not None else None) for k, m in methods.items()}
    scores = evaluate_models(methods, bench, cases=cases, cached=("teacher",))
    seeded = SeededScores(scores, cases, seed_list)
    gain, gains, against = seeded.gain, seeded.gains, seeded.against
    result = {
        "profile": profile_name,
        "run": profile.run_name,
        "steps": profile.student_steps,
        "lr": profile.student_lr,
        "fine_tune_lr": FINE_TUNE_LR,
        "seeds": seeds,
        "cases": list(cases),
        "cached_batches": profile.cache_batches,
        "patches_per_batch": profile.batch_size,
        "recipe": profile.distill_weights,
        "teacher": str(teacher.checkpoint.name),
        "teacher_kwargs": {k: v for k, v in cut_start.kwargs.items() if k != "width"},
        "teacher_width": int(setup.teacher.intro.out_channels),
        "width": width,
        "parameters": {"slice": count_parameters(untrained),
                       "teacher": count_parameters(setup.teacher),
                       "report_student": count_parameters(build_model(profile.student,
                                                                      **profile.student_kwargs))},
        "blurred_psnr": seeded.blurred,
        "teacher_gain_db": gain("teacher"),
        "untrained_cut_gain_db": gain("cut, untrained"),
        "report_gain_db": {"distilled": gains("report distilled"),
                           "scratch": gains("report scratch")},
        "gain_db": {arm: gains(arm) for arm in ARMS},
        "effects": {name: {"arm": arm, "against": other, "what": what,
                           "by_case": against(arm, other)}
                    for name, arm, other, what in EFFECTS},
        "command": f"python -m pixel_utils.training.teacher_slice --profile {profile_name} "
        f"--seeds {seeds} --cases {','.join(cases)} --width {width}",
        "provenance": provenance(),
    }  # fmt: skip
    out_dir = Path(out_dir or figures_dir(profile.run_name))
    write_experiment(out_dir, "kd_slice", result, {"kd_slice.png": kd_slice_figure(result)})
    return result


def kd_slice_findings(result: dict) -> str:
    """Markdown bullets about a result of :func:`run_teacher_slice`, every number read from it."""
    from pixel_utils.evaluation.scoring import kd_interval_words, kd_verdict, run_words
    from pixel_utils.report.readme import cpu_words

    p = result["provenance"]
    head = result["cases"][0]
    n = result["parameters"]
    lines = [
        f"{run_words(result)}: {result['steps']} steps "
        f"per student at the report's peak learning rate {result['lr']:g}"
        + (f" (the last pair at {result['fine_tune_lr']:g})" if "fine_tune_lr" in result else "")
        + f", {result['seeds']} seeds, {p['machine']['torch_threads']} threads on "
        f"{cpu_words(p['machine'])}.",
        f"- **The slice**: the teacher's network with {result['width']} of its "
        f"{result['teacher_width']} channels at full resolution, {n['slice']:,} parameters "
        f"(the teacher {n['teacher']:,}, the report's student {n['report_student']:,}). Cut "
        f"and not trained it gains {result['untrained_cut_gain_db'][head]:+.2f} dB on `{head}`, "
        f"where the teacher gains {result['teacher_gain_db'][head]:+.2f}.",
    ]
    for arm in result["gain_db"]:
        lines.append(f"- **{LABELS[arm].capitalize()}**: {result['gain_db'][arm][head]:+.2f} dB "
                     f"on `{head}`.")  # fmt: skip
    report = result["report_gain_db"]
    lines.append(f"- **The report's students**, for scale: distilled "
                 f"{report['distilled'][head]:+.2f} dB, scratch {report['scratch'][head]:+.2f} "
                 f"dB on `{head}`.")  # fmt: skip
    for effect in result["effects"].values():
        kd = effect["by_case"][head]
        others = ", ".join(f"`{c}` {effect['by_case'][c]['mean_db']:+.2f} "
                           f"(± {effect['by_case'][c]['ci95_over_images']:.2f})"
                           for c in result["cases"][1:])  # fmt: skip
        lines.append(
            f"- **{effect['what'].capitalize()}** ({LABELS[effect['arm']]} − "
            f"{LABELS[effect['against']]}): on `{head}` it {kd_verdict(kd)}, "
            f"{kd['mean_db']:+.3f} dB ({kd_interval_words(kd)}). Other cases, dB: {others}."
        )
    return "\n".join(lines)


def kd_slice_lesson(result: dict) -> str:
    """One Markdown bullet for a notebook's conclusions: what the teacher's labels and its
    weights each gave the slice on the headline case, and whether the labels paid ≥ 0.3 dB."""
    head = result["cases"][0]
    effects = result["effects"]

    def words(name: str) -> str:
        kd = effects[name]["by_case"][head]
        return f"{kd['mean_db']:+.2f} ± {kd['ci95_over_images']:.2f} dB"

    labels = [
        name for name in ("labels", "labels_from_teacher", "labels_fine_lr") if name in effects
    ]  # a run before the fine-tuning rate's pair had two
    paid = [name for name in labels
            if effects[name]["by_case"][head]["ci_excludes_zero"]
            and effects[name]["by_case"][head]["mean_db"] >= 0.3]  # fmt: skip
    verdict = ("So the labels paid #13's 0.3 dB here." if paid else
               "So even a student of the teacher's own shape did not get #13's 0.3 dB from "
               "its labels.")  # fmt: skip
    weights = effects["weights"]["by_case"][head]
    if weights["ci_excludes_zero"] and weights["mean_db"] >= 0.3:
        # Why the weights can pay where the labels do not: they hold the teacher's own long
        # training, where the labels hold only its outputs on the report's cached batches.
        verdict += (" Its weights did: they carry what the teacher learned in its own long "
                    "training, not only its outputs on the cached batches.")  # fmt: skip
    return (
        f"- **A student cut from the teacher** (the committed `make kd-slice` run: "
        f"{result['width']} of the teacher's {result['teacher_width']} channels, "
        f"{result['steps']} steps, {result['seeds']} seeds; `{head}`, 95% CI over photos): "
        f"the teacher's labels gave it {words('labels')} from a random start and "
        f"{words('labels_from_teacher')} from the teacher's weights"
        + (
            f" ({words('labels_fine_lr')} at a fine-tuning rate, {result['fine_tune_lr']:g})"
            if "labels_fine_lr" in effects
            else ""
        )
        + f"; the weights alone gave {words('weights')}, weights and labels together "
        f"{words('both')}. {verdict}"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("--profile", default="default")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES), help="benchmark cases, the first "
                        "is the headline of the findings")  # fmt: skip
    parser.add_argument("--width", type=int, default=SLICE_WIDTH,
                        help="the slice's channels at full resolution")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="default: figures/")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    if args.width < 1:
        parser.error("--width must be at least 1")
    cases = tuple(c.strip() for c in args.cases.split(",") if c.strip())
    result = run_teacher_slice(args.profile, args.seeds, cases, args.width, args.out)
    print(kd_slice_findings(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
