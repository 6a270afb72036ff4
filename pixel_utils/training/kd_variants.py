"""Three more distillation recipes, at the report's scale: ``python -m
pixel_utils.training.kd_variants`` (``make kd-variants``).

Each is set against the report's own distilled and scratch students: the same network, steps,
schedule, seeds and order of the cached batches, paired by photo and seed on the benchmark.

* **Ensemble labels.** The target is the teacher's ×8 geometric self-ensemble (the mean of its
  outputs over the 8 flips and rotations) instead of its single pass. That ensemble is a better
  teacher (the shipped manifest's ``test_time_options``), so its labels are closer to the truth.
* **Unlabelled views.** Every other step is a batch that no sharp image labels, only the
  teacher: half its patches mix the inputs of two cached batches (mixup), half enlarge the
  centre of a cached input ×2, a zoom-in that doubles its blur (DUKD's "upcycled" inputs).
  The student sees inputs beyond its stream, as "patient and consistent" distillation asks;
  the scratch student has no target for them. Over the same steps, the labelled batches get
  half the steps.
* **Assistant labels.** The target is a teacher assistant's (TAKD): the shipped student, a
  network between the teacher and the report's student in size, trained far longer. Its
  function is closer to what the report's student can represent, if further from the truth.

Writes ``figures/kd_variants.json`` (with the commit and pipeline hash it ran on) and
``figures/kd_variants.png``. About 15 minutes on a 2-core CPU after a report (which made the
teacher's cache and the students it is compared with), most of it the ×8 labelling.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from pixel_utils.progress import tqdm

#: The variants, in the order the figure and the findings give them.
VARIANTS = ("ensemble_labels", "unlabelled_views", "assistant_labels")
LABELS = {
    "distilled": "distilled (the report's recipe)",
    "ensemble_labels": "ensemble labels",
    "unlabelled_views": "unlabelled views",
    "assistant_labels": "assistant labels",
}
#: The headline, a shake path no run draws, defocus, light blur and a sharp photo.
CASES = ("gauss3", "shake25", "defocus4", "gauss1", "no_blur")
#: The mixing weight of the first batch's inputs, drawn per patch (mixup with a flat prior
#: away from the ends, so that neither input dominates).
MIX_RANGE = (0.3, 0.7)


def unlabelled_views(a: torch.Tensor, b: torch.Tensor, rng) -> torch.Tensor:
    """A batch no sharp image labels, from two degraded batches ``a`` and ``b`` (NCHW, the
    same shape): the first half of ``a``'s patches mixed with ``b``'s, the second half the
    centre half of ``a``'s patches enlarged ×2 (bicubic, clipped to [0, 1])."""
    half, side = a.shape[0] // 2, a.shape[-1]
    lam = torch.from_numpy(rng.uniform(*MIX_RANGE, size=(half, 1, 1, 1))).to(a.dtype)
    mixed = lam * a[:half] + (1 - lam) * b[:half]
    lo, hi = side // 4, side // 4 + side // 2
    centre = a[half:, :, lo:hi, lo:hi]
    zoomed = F.interpolate(centre, size=a.shape[-2:], mode="bicubic", align_corners=False)
    return torch.cat([mixed, zoomed.clamp(0, 1)])


@torch.no_grad()
def _label(count: int, out: Path, batches, desc: str) -> Path:
    """Write ``out``: a teacher cache's layout (inputs, sharp, teacher; no features) with what
    ``batches(j)`` returns for each of ``count`` batches: ``(inputs, sharp or None, labels)``."""
    from pixel_utils.artefacts import atomic_torch_save

    if out.exists():
        return out
    rows: dict[str, list] = {"inputs": [], "sharp": [], "teacher": []}
    for j in tqdm(range(count), desc=desc):
        inputs, sharp, labels = batches(j)
        rows["inputs"].append(inputs.half())
        # A view has no sharp image: zeros keep the cache's layout, and the stream that serves
        # it drops them (AlternatingBatches), so they never reach a loss.
        rows["sharp"].append((torch.zeros_like(inputs) if sharp is None else sharp).half())
        rows["teacher"].append(labels.clamp(0, 1).half())
    payload = {k: torch.stack(v) for k, v in rows.items()} | {"features": {}}
    return atomic_torch_save(out, payload)


def ensemble_label_cache(source: Path, teacher: torch.nn.Module) -> Path:
    """The teacher cache at ``source`` with the teacher's ×8 self-ensemble as its labels,
    next to it (its name carries the source's, which carries the teacher's weights)."""
    from pixel_utils.evaluation.inference import SelfEnsemble

    cache = torch.load(source, weights_only=True, mmap=True)
    ensemble = SelfEnsemble(teacher)

    def batch(j):
        inputs = cache["inputs"][j].float()
        return inputs, cache["sharp"][j].float(), ensemble(inputs)

    return _label(len(cache["inputs"]), source.with_name(f"{source.stem}_ensemble.pt"), batch,
                  "ensemble labels")  # fmt: skip


def unlabelled_view_cache(source: Path, teacher: torch.nn.Module, seed: int) -> Path:
    """One batch of :func:`unlabelled_views` per cached batch of ``source`` (each with
    another cached batch drawn by ``(seed, j)``), labelled by the teacher, next to it."""
    from pixel_utils.seeding import child_rng

    cache = torch.load(source, weights_only=True, mmap=True)
    count = cache["inputs"].shape[0]

    def batch(j):
        rng = child_rng(seed, j)
        other = (j + 1 + int(rng.integers(max(count - 1, 1)))) % count
        views = unlabelled_views(cache["inputs"][j].float(), cache["inputs"][other].float(), rng)
        return views, None, teacher(views)

    return _label(count, source.with_name(f"{source.stem}_views{seed}.pt"), batch,
                  "unlabelled views")  # fmt: skip


def assistant_label_cache(source: Path, assistant_checkpoint: Path) -> Path:
    """The teacher cache at ``source`` labelled instead by the network in
    ``assistant_checkpoint`` (fp32), next to it; its name carries the assistant's weights."""
    from pixel_utils.artefacts import sha256_file
    from pixel_utils.training.loop import model_from_checkpoint

    cache = torch.load(source, weights_only=True, mmap=True)
    assistant = model_from_checkpoint(assistant_checkpoint).float().eval()
    digest = sha256_file(assistant_checkpoint)[:12]

    def batch(j):
        inputs = cache["inputs"][j].float()
        return inputs, cache["sharp"][j].float(), assistant(inputs)

    return _label(len(cache["inputs"]), source.with_name(f"{source.stem}_assistant{digest}.pt"),
                  batch,
                  "assistant labels")  # fmt: skip


class AlternatingBatches(torch.utils.data.Dataset):
    """Even steps: the cached batches with their ground truth and teacher labels; odd steps:
    the unlabelled views with the teacher's labels alone. Each stream keeps its own order and
    flips (:class:`~pixel_utils.training.distillation.CachedBatches`)."""

    def __init__(self, cache: Path, views: Path, length: int, seed: int):
        from pixel_utils.training.distillation import CachedBatches

        self.labelled = CachedBatches(cache, (length + 1) // 2, seed)
        self.views = CachedBatches(views, length // 2, seed + 1_000_003)
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int):
        if not 0 <= i < self.length:
            raise IndexError(i)
        if i % 2 == 0:
            return self.labelled[i // 2]
        inputs, targets = self.views[i // 2]
        del targets["sharp"]
        return inputs, targets


def variant_stream(variant: str, cache: Path, labelled_cache: Path):
    """The :class:`~pixel_utils.training.stages.StudentStream` of ``variant``, whose own
    labels are at ``cache`` (``labelled_cache``: the profile's teacher cache)."""
    from pixel_utils.training.distillation import CachedBatches
    from pixel_utils.training.stages import StudentStream

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    key = {"variant_cache": cache.name}
    if variant == "unlabelled_views":
        return StudentStream(
            variant, lambda steps, seed: AlternatingBatches(labelled_cache, cache, steps, seed),
            key, unlabelled=True,
        )  # fmt: skip
    return StudentStream(variant, lambda steps, seed: CachedBatches(cache, steps, seed), key)


def run_kd_variants(
    profile_name: str = "default", seeds: int = 3, cases: tuple[str, ...] = CASES,
    out_dir: Path | None = None,
) -> dict:  # fmt: skip
    """Train every variant for each seed, score them with the report's distilled and scratch
    students on ``cases``, write the JSON and figure to ``out_dir`` (default: the profile's
    figures folder) and return the result."""
    from pixel_utils.app.pretrained import shipped_path
    from pixel_utils.artefacts import sha256_file
    from pixel_utils.evaluation.scoring import (
        SeededScores,
        check_cases,
        evaluate_models,
        write_experiment,
    )
    from pixel_utils.paths import figures_dir
    from pixel_utils.profiles import resolve_profile
    from pixel_utils.provenance import provenance
    from pixel_utils.report.viz import kd_variants_figure
    from pixel_utils.training import stages

    cases = check_cases(cases)
    profile = resolve_profile(profile_name)
    teacher, setup, bench = stages.experiment_setup(profile)
    assistant = shipped_path("student")
    caches = {
        "ensemble_labels": ensemble_label_cache(setup.cache, setup.teacher),
        "unlabelled_views": unlabelled_view_cache(setup.cache, setup.teacher, profile.seed),
        "assistant_labels": assistant_label_cache(setup.cache, assistant),
    }
    seed_list = list(range(profile.seed, profile.seed + seeds))
    methods: dict = {"blurred": None}
    for seed in tqdm(seed_list, desc="kd variants"):
        for kd, arm in ((True, "distilled"), (False, "scratch")):  # the report's students
            run = stages.train_student(profile, setup, distill=kd, seed=seed)
            methods[f"{arm} s{seed}"] = run.model.float().eval()
        for variant in VARIANTS:
            stream = variant_stream(variant, caches[variant], setup.cache)
            run = stages.train_student(profile, setup, distill=True, seed=seed, stream=stream)
            methods[f"{variant} s{seed}"] = run.model.float().eval()
    seeded = SeededScores(evaluate_models(methods, bench, cases=cases), cases, seed_list)
    gains, against = seeded.gains, seeded.against
    arms = {
        "distilled": {"gain_db": gains("distilled"), "vs_scratch": against("distilled", "scratch")}
    }
    for variant in VARIANTS:
        arms[variant] = {"gain_db": gains(variant), "vs_scratch": against(variant, "scratch"),
                         "vs_distilled": against(variant, "distilled")}  # fmt: skip
    result = {
        "profile": profile_name,
        "run": profile.run_name,
        "steps": profile.student_steps,
        "seeds": seeds,
        "cases": list(cases),
        "cached_batches": profile.cache_batches,
        "patches_per_batch": profile.batch_size,
        "student": profile.student_kwargs,
        "recipe": profile.distill_weights,
        "teacher": str(teacher.checkpoint.name),
        "mix_range": list(MIX_RANGE),
        "assistant": {"file": assistant.name, "sha256": sha256_file(assistant)},
        "blurred_psnr": seeded.blurred,
        "scratch_gain_db": gains("scratch"),
        "arms": arms,
        "command": f"python -m pixel_utils.training.kd_variants --profile {profile_name} "
        f"--seeds {seeds} --cases {','.join(cases)}",
        "provenance": provenance(),
    }
    out_dir = Path(out_dir or figures_dir(profile.run_name))
    write_experiment(out_dir, "kd_variants", result,
                     {"kd_variants.png": kd_variants_figure(result)})  # fmt: skip
    return result


def kd_variants_findings(result: dict) -> str:
    """Markdown bullets about a result of :func:`run_kd_variants`, every number read from it."""
    from pixel_utils.evaluation.scoring import kd_interval_words, kd_verdict, run_words
    from pixel_utils.report.readme import cpu_words

    p = result["provenance"]
    head = result["cases"][0]
    lines = [
        f"{run_words(result)}: {result['steps']} steps "
        f"per student, {result['seeds']} seeds, {p['machine']['torch_threads']} threads on "
        f"{cpu_words(p['machine'])}; scratch students gain "
        f"{result['scratch_gain_db'][head]:+.2f} dB on `{head}`.",
    ]
    for arm, row in result["arms"].items():
        kd = row["vs_scratch"][head]
        text = (f"- **{LABELS[arm].capitalize()}**: {row['gain_db'][head]:+.2f} dB on `{head}`; "
                f"against scratch it {kd_verdict(kd)}, {kd['mean_db']:+.3f} dB "
                f"({kd_interval_words(kd)})")  # fmt: skip
        if "vs_distilled" in row:
            plain = row["vs_distilled"][head]
            text += (f"; against the report's recipe {plain['mean_db']:+.3f} dB "
                     f"({kd_interval_words(plain)})")  # fmt: skip
            others = [
                f"`{c}` {row['vs_distilled'][c]['mean_db']:+.2f} "
                f"(± {row['vs_distilled'][c]['ci95_over_images']:.2f})"
                for c in result["cases"][1:]
            ]
            text += f". Against the report's recipe on the other cases, dB: {', '.join(others)}"
        lines.append(text + ".")
    return "\n".join(lines)


def kd_variants_lesson(result: dict) -> str:
    """One Markdown bullet for a notebook's conclusions: what each variant did to the headline
    case against the report's recipe, and whether any beat it."""
    head = result["cases"][0]
    parts, better = [], []
    measured = [v for v in VARIANTS if v in result["arms"]]  # a run before a variant existed
    for variant in measured:
        kd = result["arms"][variant]["vs_distilled"][head]
        parts.append(f"{LABELS[variant]} {kd['mean_db']:+.2f} ± {kd['ci95_over_images']:.2f} dB")
        if kd["ci_excludes_zero"] and kd["mean_db"] > 0:
            better.append(LABELS[variant])
    verdict = (f"{' and '.join(better)} beat the report's recipe on these photos."
               if better else
               "None beat the report's recipe: with every patch labelled, a better target, a "
               "closer one or inputs beyond the stream did not buy the student more.")  # fmt: skip
    return (f"- **{len(measured)} more recipes** (the committed `make kd-variants` run, "
            f"{result['steps']} "
            f"steps, {result['seeds']} seeds), against the report's distilled students on "
            f"`{head}`: {', '.join(parts)} (95% CI over photos). {verdict}")  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("--profile", default="default")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES), help="benchmark cases, the first "
                        "is the headline of the findings")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="default: figures/")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    cases = tuple(c.strip() for c in args.cases.split(",") if c.strip())
    result = run_kd_variants(args.profile, args.seeds, cases, args.out)
    print(kd_variants_findings(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
