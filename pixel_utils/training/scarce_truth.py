"""Does distillation pay when the ground truth is scarce? ``python -m
pixel_utils.training.scarce_truth`` (``make kd-scarce``).

Synthetic blur gives every training patch its sharp original, so a student trained from scratch
has all the truth the teacher could add, and distillation buys it little. Often a user has
the sharp images of a few photos and many blurred photos nobody has the sharp version of; only
the teacher can label those. This measures that case on the profile's teacher cache: only the
first ``n`` cached batches keep their ground truth. The scratch student trains on those ``n``
alone (cycled, under the same flips), the distilled one on every batch, learning from the
ground truth where it exists and from the teacher everywhere. Same student, steps, schedule
and seeds; distilled − scratch is paired by photo on the benchmark's headline case, for
several ``n`` and seeds.

Writes ``figures/kd_scarce_truth.json`` (with the commit and pipeline hash it ran on) and
``figures/kd_scarce_truth.png``. About an hour on a 2-core CPU with the defaults; each run
is checkpointed, so an interrupted command resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from pixel_utils.progress import tqdm

#: Cached batches that keep their ground truth; ``None`` is all of them (the usual comparison).
LABELLED_BATCHES: tuple[int | None, ...] = (None, 24, 6, 2)
#: Long enough for the students to use what the batches hold: at the report's 600 steps a
#: scratch student on 8 labelled batches scored no worse than on all 120 (one seed, +0.69
#: against +0.54 dB on ``gauss3``); the differences are seed noise there.
STEPS = 3000


def run_scarce_truth(profile_name: str = "default", steps: int = STEPS, seeds: int = 3,
                     labelled: tuple[int | None, ...] = LABELLED_BATCHES,
                     out_dir: Path | None = None) -> dict:  # fmt: skip
    """Train a distilled and a scratch student for every count of ``labelled`` batches and
    seed, score them on the headline case, write the JSON and figure to ``out_dir`` (default:
    the profile's figures folder) and return the result."""
    from statistics import mean

    from pixel_utils.data.benchmark import HEADLINE_CASE, build_benchmark
    from pixel_utils.evaluation.scoring import evaluate_models, kd_comparison, write_experiment
    from pixel_utils.paths import benchmark_dir, figures_dir
    from pixel_utils.profiles import resolve_profile
    from pixel_utils.provenance import provenance
    from pixel_utils.report.viz import scarce_truth_figure
    from pixel_utils.training import stages

    named = resolve_profile(profile_name)
    base = dataclasses.replace(named, student_steps=steps)
    cached = base.cache_batches
    counts = [cached if n is None else n for n in labelled]
    if bad := [n for n in counts if not 1 <= n <= cached]:
        raise ValueError(f"labelled batches {bad}: the cache holds {cached} batches")
    # The teacher, its cache and the benchmark are the named profile's (notebooks 02 to 04 made
    # them; the step count is not part of them), so they are reused, not labelled again under
    # the longer run's name. Only the students' checkpoints live under that name.
    teacher = stages.distillation_teacher(named)
    setup = stages.prepare_distillation(named, teacher)
    bench = benchmark_dir(named.run_name)
    build_benchmark(bench, base.benchmark_crop, base.seed, base.benchmark_max_photos)  # reused
    seed_list = list(range(base.seed, base.seed + seeds))
    methods, pairs, validation = {"blurred": None}, {}, {}
    jobs = [(n, seed, kd) for n in counts for seed in seed_list for kd in (True, False)]
    for n, seed, kd in tqdm(jobs, desc="scarce truth"):
        run = stages.train_student(base, setup, distill=kd, seed=seed, labelled=n)
        methods[f"{'kd' if kd else 'scratch'} {n} s{seed}"] = run.model.float().eval()
        # The validation photos' PSNR at its last step and at its best one: what stopping
        # early would have kept of a student that learns its few batches by heart.
        val = [v for _, v, _ in run.history["val"]]
        validation.setdefault((n, "kd" if kd else "scratch"), []).append((val[-1], max(val)))
    for n in counts:
        pairs[n] = [(f"kd {n} s{seed}", f"scratch {n} s{seed}") for seed in seed_list]
    scores = evaluate_models(methods, bench, cases=(HEADLINE_CASE,))
    per_method = scores.groupby("method")["psnr"].mean()
    blurred = float(per_method["blurred"])
    rows = {}
    for n in counts:
        gains = {arm: [float(per_method[f"{arm} {n} s{s}"]) - blurred for s in seed_list]
                 for arm in ("kd", "scratch")}  # fmt: skip
        rows[str(n)] = {
            "labelled_batches": n,
            "labelled_share": n / cached,
            "gain_db": {arm: mean(v) for arm, v in gains.items()},
            "gain_db_per_seed": gains,
            "validation_psnr": {
                arm: {
                    "last": mean([v[0] for v in validation[n, arm]]),
                    "best": mean([v[1] for v in validation[n, arm]]),
                }
                for arm in ("kd", "scratch")
            },
            "kd_vs_scratch": kd_comparison(scores, pairs[n]),
        }
    command = (f"python -m pixel_utils.training.scarce_truth --profile {profile_name} "
               f"--steps {steps} --seeds {seeds} --labelled "
               + ",".join("all" if n is None else str(n) for n in labelled))  # fmt: skip
    result = {
        "profile": profile_name,
        "run": base.run_name,
        "case": HEADLINE_CASE,
        "steps": steps,
        "seeds": seeds,
        "cached_batches": cached,
        "patches_per_batch": base.batch_size,
        "student": base.student_kwargs,
        "recipe": base.distill_weights,
        "teacher": str(teacher.checkpoint.name),
        "blurred_psnr": blurred,
        "levels": rows,
        "command": command,
        "provenance": provenance(),
    }
    # The named profile's figures (figures/ for `default`), not those of the longer run.
    out_dir = Path(out_dir or figures_dir(named.run_name))
    write_experiment(out_dir, "kd_scarce_truth", result,
                     {"kd_scarce_truth.png": scarce_truth_figure(result)})  # fmt: skip
    return result


def scarce_truth_findings(result: dict) -> str:
    """Markdown sentences about a result of :func:`run_scarce_truth`, every number read from
    it."""
    from pixel_utils.evaluation.scoring import kd_interval_words, kd_verdict, run_words
    from pixel_utils.report.readme import cpu_words

    p = result["provenance"]
    lines = [
        f"{run_words(result)}: {result['steps']} steps "
        f"per student, {result['seeds']} seeds, {p['machine']['torch_threads']} threads on "
        f"{cpu_words(p['machine'])}; the teacher's cache holds {result['cached_batches']} "
        f"batches of {result['patches_per_batch']} patches.",
    ]
    for row in result["levels"].values():
        kd, n = row["kd_vs_scratch"], row["labelled_batches"]
        where = ("Every batch has its ground truth" if n == result["cached_batches"] else
                 f"{n} of {result['cached_batches']} batches have their ground truth "
                 f"({100 * row['labelled_share']:.0f}%)")  # fmt: skip
        val = row["validation_psnr"]
        lines.append(
            f"- **{where}**: distilled {row['gain_db']['kd']:+.2f} dB, scratch "
            f"{row['gain_db']['scratch']:+.2f} dB on `{result['case']}`; distillation "
            f"{kd_verdict(kd)}, {kd['mean_db']:+.3f} dB ({kd_interval_words(kd)}). "
            f"On the validation photos the scratch student's best step scored "
            f"{val['scratch']['best']:.2f} dB and its last {val['scratch']['last']:.2f}; the "
            f"distilled one's last {val['kd']['last']:.2f} (means over seeds)."
        )
    return "\n".join(lines)


def scarce_truth_lesson(result: dict) -> str:
    """One Markdown bullet for a notebook's conclusions: distilled − scratch with the least and
    with all of the ground truth, and what follows from them, every number read from
    ``result``."""
    from pixel_utils.evaluation.scoring import kd_interval_words

    rows = sorted(result["levels"].values(), key=lambda r: r["labelled_share"])
    few, full = rows[0]["kd_vs_scratch"], rows[-1]["kd_vs_scratch"]

    def stated(kd: dict) -> str:
        return f"{kd['mean_db']:+.2f} dB ({kd_interval_words(kd)})"

    pays = few["ci_excludes_zero"] and few["mean_db"] > max(0.0, full["mean_db"])
    moral = (
        "The teacher is worth most where the ground truth does not reach: it labels the "
        "inputs nobody has the sharp version of, which a student from scratch cannot learn from."
        if pays
        else "Even where the ground truth was scarce, the teacher's labels did not measurably "
        "beat training on the labelled batches alone."
    )
    val = rows[0]["validation_psnr"]
    at_last = val["kd"]["last"] - val["scratch"]["last"]
    at_best = val["kd"]["last"] - val["scratch"]["best"]
    closes = ("all of" if at_best <= 0 else "most, not all, of" if at_best < at_last / 2
              else "some of")  # fmt: skip
    early = (
        f"On the validation photos that scratch student peaked at {val['scratch']['best']:.2f} dB "
        f"before ending at {val['scratch']['last']:.2f}, against the distilled one's "
        f"{val['kd']['last']:.2f}: stopping it early would have closed {closes} the gap there."
        if at_last > 0
        else ""
    )
    return (
        f"- **When the ground truth is scarce** (the committed `make kd-scarce` run, "
        f"{result['steps']} steps, {result['seeds']} seeds): with the sharp images of "
        f"{rows[0]['labelled_batches']} of {result['cached_batches']} batches, distilled − scratch "
        f"is {stated(few)}; with all of them, {stated(full)}. {moral} {early}"
    ).rstrip()


def _counts(text: str) -> tuple[int | None, ...]:
    return tuple(None if v.strip() == "all" else int(v) for v in text.split(","))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("--profile", default="default")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--labelled", type=_counts, default=LABELLED_BATCHES,
        help="cached batches that keep their ground truth, e.g. all,12,2",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="default: figures/")
    args = parser.parse_args(argv)
    result = run_scarce_truth(args.profile, args.steps, args.seeds, args.labelled, args.out)
    print(scarce_truth_findings(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
