"""Scoring models on the fixed benchmark set."""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pixel_utils.artefacts import atomic_write_json
from pixel_utils.data.benchmark import HEADLINE_CASE, BenchmarkItem, iter_benchmark
from pixel_utils.evaluation.inference import sharpen
from pixel_utils.evaluation.metrics import psnr, ssim
from pixel_utils.progress import tqdm


def score_benchmark(
    methods: dict[str, Callable[[BenchmarkItem], np.ndarray]], bench_dir: str | os.PathLike,
    reference: str | None = None, cases: tuple[str, ...] | None = None, desc: str = "benchmark",
) -> pd.DataFrame:  # fmt: skip
    """The one scoring loop: PSNR/SSIM of every method on every benchmark item.

    ``methods`` maps a label to a function of a :class:`~pixel_utils.data.benchmark.BenchmarkItem`
    returning its HWC output (networks, classical methods with the true PSF, or the degraded
    input itself). Returns a long table with columns ``method, case, photo, psnr, ssim``; each
    image is read once and passed through every method once. With ``reference`` (a method
    label, e.g. the teacher) each output is also scored against that method's output, in
    columns ``psnr_vs_ref, ssim_vs_ref``. ``cases`` restricts the items to those cases.
    """
    rows = []
    items = [it for it in iter_benchmark(bench_dir) if cases is None or it.case in cases]
    for item in tqdm(items, desc=desc, leave=False):
        outputs = {label: method(item) for label, method in methods.items()}
        for label, out in outputs.items():
            row = {"method": label, "case": item.case, "photo": item.photo,
                   "psnr": psnr(out, item.sharp), "ssim": ssim(out, item.sharp)}  # fmt: skip
            if reference is not None:
                row["psnr_vs_ref"] = psnr(out, outputs[reference])
                row["ssim_vs_ref"] = ssim(out, outputs[reference])
            rows.append(row)
    return pd.DataFrame(rows)


def cached_sharpen(model: torch.nn.Module, cache_dir: str | os.PathLike) -> Callable:
    """``sharpen(model, item.blurred)`` for benchmark items, each output stored once under
    ``cache_dir``, keyed by the model's weights and the input's bytes, and read back on the
    next call: notebooks 02, 03 and 04 score the same teachers on the same benchmark, and a
    teacher's pass over it takes half a minute on 2 cores where reading it back takes a second.
    Other weights or another input make another key, so a stale output is never read."""
    from pixel_utils.artefacts import atomic_write, weights_sha256

    folder = Path(cache_dir) / weights_sha256(model)[:16]

    def run(item: BenchmarkItem) -> np.ndarray:
        blurred = np.ascontiguousarray(item.blurred)
        key = hashlib.sha256(f"{blurred.dtype}{blurred.shape}".encode() + blurred.tobytes())
        path = folder / f"{item.case}_{item.photo}_{key.hexdigest()[:16]}.npy"
        if path.exists():
            return np.load(path)
        out = sharpen(model, item.blurred)

        def save(tmp: Path) -> None:
            with open(tmp, "wb") as f:  # a file object: np.save would add ".npy" to a name
                np.save(f, out)

        atomic_write(path, save)
        return out

    return run


def evaluate_models(
    methods: dict[str, torch.nn.Module | None], bench_dir: str | os.PathLike,
    reference: str | None = None, cases: tuple[str, ...] | None = None,
    cached: tuple[str, ...] = (),
) -> pd.DataFrame:  # fmt: skip
    """:func:`score_benchmark` for networks (``None``: the degraded input itself): each runs
    through :func:`~pixel_utils.evaluation.inference.sharpen` on the whole image at once (the
    benchmark's crops are small enough; the CLI tiles larger photos, which gives the same
    result for the students, whose receptive field is within a quarter of its tile overlap).
    The outputs of the methods named in ``cached`` (the slow teachers) are kept in the
    benchmark's ``outputs`` folder by :func:`cached_sharpen` and reused."""

    def as_method(label, model):
        if model is None:
            return lambda item: item.blurred
        if label in cached:
            return cached_sharpen(model, Path(bench_dir) / "outputs")
        return lambda item: sharpen(model, item.blurred)

    methods = {label: as_method(label, model) for label, model in methods.items()}
    return score_benchmark(methods, bench_dir, reference=reference, cases=cases)


def summarise(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean PSNR/SSIM: one row per case, columns ``(metric, method)``."""
    means = scores.groupby(["case", "method"], sort=False)[["psnr", "ssim"]].mean()
    return means.unstack("method")


def headline(summary: pd.DataFrame, case: str = HEADLINE_CASE) -> dict:
    """``{method: {"psnr", "ssim", "gain_db"}}`` on ``case``; the gain is over ``blurred``."""
    row = summary.loc[case]
    base = row[("psnr", "blurred")] if ("psnr", "blurred") in row.index else float("nan")
    return {
        method: {
            "psnr": float(row[("psnr", method)]),
            "ssim": float(row[("ssim", method)]),
            "gain_db": float(row[("psnr", method)] - base),
        }
        for method in row["psnr"].index
    }


def ci95(values) -> float:
    """Half-width of the 95% confidence interval of the mean of ``values`` (Student's t; NaN
    for fewer than two values). Over benchmark images it says how much the mean would move
    with other photos of the same kind."""
    import numpy as np
    from scipy import stats

    values = np.asarray(values, np.float64)
    if len(values) < 2:
        return float("nan")
    return float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))


def headline_ci(scores: pd.DataFrame, case: str = HEADLINE_CASE) -> dict:
    """95% CIs over the images of ``case``: of each method's mean PSNR, and of its gain over
    the degraded input (paired by image, so photo-to-photo difficulty cancels)."""
    rows = scores[scores["case"] == case].pivot_table(index="photo", columns="method",
                                                      values="psnr")  # fmt: skip
    out = {}
    for method in rows.columns:
        gain = rows[method] - rows["blurred"] if "blurred" in rows else rows[method] * float("nan")
        out[method] = {"psnr_ci95": ci95(rows[method]), "gain_ci95": ci95(gain),
                       "images": int(rows[method].notna().sum())}  # fmt: skip
    return out


def kd_comparison(
    scores: pd.DataFrame, pairs: list[tuple[str, str]], case: str = HEADLINE_CASE
) -> dict:
    """Distilled − scratch PSNR on ``case``, paired by image and by seed.

    ``pairs`` lists ``(distilled method, scratch method)``, one pair per seed (same student,
    data stream, steps and seed within a pair). The mean is over images and seeds; the 95% CI
    over images uses each image's difference averaged over seeds, the CI over seeds each seed's
    difference averaged over images. ``images_better`` counts the images whose difference,
    averaged over seeds, is above zero.
    """
    rows = scores[scores["case"] == case].pivot_table(index="photo", columns="method",
                                                      values="psnr")  # fmt: skip
    diffs = pd.DataFrame({a: rows[a] - rows[b] for a, b in pairs})
    per_image, per_seed = diffs.mean(axis=1), diffs.mean(axis=0)
    mean, half = float(diffs.to_numpy().mean()), ci95(per_image)
    return {
        "case": case,
        "mean_db": mean,
        "ci95_over_images": half,
        "ci95_over_seeds": ci95(per_seed),
        "ci_excludes_zero": bool(abs(mean) > half) if half == half else False,
        "per_seed_db": {a: float(v) for a, v in per_seed.items()},
        "images": int(len(per_image)),
        "images_better": int((per_image > 0).sum()),
        "seeds": len(pairs),
    }


def kd_verdict(kd: dict) -> str:
    """Words for a :func:`kd_comparison` result that follow its numbers: "helps" or "hurts"
    when the 95% CI over images excludes zero, qualified when the CI over seeds (where there
    is one) does not; else "is indistinguishable from zero"."""
    if not kd["ci_excludes_zero"]:
        return "is indistinguishable from zero"
    word = "helps" if kd["mean_db"] > 0 else "hurts"
    over_seeds = kd.get("ci95_over_seeds")
    if over_seeds is not None and math.isfinite(over_seeds) and abs(kd["mean_db"]) <= over_seeds:
        word += " on these photos, though not beyond its spread over seeds"
    return word


def kd_interval_words(kd: dict) -> str:
    """A :func:`kd_comparison`'s intervals in words: over images, and over seeds with how many
    seeds agree on the sign, where there are several."""
    words = f"95% CI ± {kd['ci95_over_images']:.3f} dB over {kd['images']} photos"
    over_seeds = kd.get("ci95_over_seeds")
    if kd.get("seeds", 1) > 1 and over_seeds is not None and math.isfinite(over_seeds):
        per_seed = list((kd.get("per_seed_db") or {}).values())
        words += f", ± {over_seeds:.3f} over {kd['seeds']} seeds"
        if len(per_seed) == kd["seeds"]:
            positive = sum(v > 0 for v in per_seed)
            words += f"; {positive} of {kd['seeds']} seeds above zero"
    return words


def where_it_loses(summary: pd.DataFrame, method: str, who: str, reference: str = "blurred") -> str:
    """A bullet naming the cases of a :func:`summarise` table where ``method`` scores below
    ``reference`` (mean PSNR), with the difference, or saying it is above on every case."""
    psnr_by_case = summary["psnr"]
    below = psnr_by_case[psnr_by_case[method] < psnr_by_case[reference]]
    if below.empty:
        return (
            f"- {who} scores above the degraded input on all {len(psnr_by_case)} benchmark cases."
        )

    def by(row) -> str:  # a loss that rounds to -0.00 dB gets a third decimal
        d = row[method] - row[reference]
        return f"{d:+.2f} dB" if d <= -0.005 else f"{d:+.3f} dB"

    cases = ", ".join(f"`{case}` ({by(row)})" for case, row in below.iterrows())
    return f"- **Where it loses.** {who} scores below the degraded input on {cases}."


def write_json(path: str | os.PathLike, data: dict) -> Path:
    """Write ``data`` as indented JSON (numpy/pandas numbers converted), atomically."""
    return atomic_write_json(path, data)


def check_cases(cases: tuple[str, ...]) -> tuple[str, ...]:
    """``cases`` if each is a benchmark case; else a ``ValueError`` naming the unknown ones and
    the known ones (the experiments' ``--cases``)."""
    from pixel_utils.data.benchmark import BENCHMARK_CASES

    known = [c.name for c in BENCHMARK_CASES]
    if not cases or (unknown := [c for c in cases if c not in known]):
        raise ValueError(
            f"benchmark cases {list(cases)}: unknown {unknown if cases else 'none given'};"
            f" known: {', '.join(known)}"
        )
    return tuple(cases)


class SeededScores:
    """Benchmark scores of students trained once per seed, labelled ``"<arm> s<seed>"``, with
    ``"blurred"`` (the degraded input): gains over the input and paired comparisons per case."""

    def __init__(self, scores: pd.DataFrame, cases: tuple[str, ...], seeds: list[int]):
        self.scores, self.cases, self.seeds = scores, tuple(cases), list(seeds)
        self._by_case = scores.groupby(["case", "method"])["psnr"].mean()
        self.blurred = {c: float(self._by_case[c, "blurred"]) for c in self.cases}

    def gain(self, method: str) -> dict:
        """One method's mean PSNR over the input, per case (dB)."""
        return {c: float(self._by_case[c, method]) - self.blurred[c] for c in self.cases}

    def gains(self, arm: str) -> dict:
        """An arm's :meth:`gain`, averaged over its seeds, per case (dB)."""
        from statistics import mean

        per_seed = [self.gain(f"{arm} s{s}") for s in self.seeds]
        return {c: mean(g[c] for g in per_seed) for c in self.cases}

    def against(self, arm: str, other: str) -> dict:
        """:func:`kd_comparison` of ``arm`` against ``other``, paired by seed, per case."""
        pairs = [(f"{arm} s{s}", f"{other} s{s}") for s in self.seeds]
        return {c: kd_comparison(self.scores, pairs, c) for c in self.cases}


def run_words(result: dict) -> str:
    """The start of an experiment's first finding: the command, the commit and the pipeline
    sources it ran on (from its ``provenance``)."""
    p = result["provenance"]
    return (f"- **The run.** `{result['command']}` on commit `{(p.get('git_commit') or '?')[:10]}` "
            f"(pipeline sources `{(p.get('pipeline_sha256') or '?')[:12]}`)")  # fmt: skip


def write_experiment(out_dir: Path, name: str, result: dict, figures: dict) -> None:
    """An experiment's ``<name>.json`` and its figures (``{file name: figure}``) in
    ``out_dir``, each written atomically."""
    from pixel_utils.report.viz import save_figure

    write_json(out_dir / f"{name}.json", result)
    for file, figure in figures.items():
        save_figure(figure, out_dir / file)


def summary_json(summary: pd.DataFrame) -> dict:
    """``{case: {method: {"psnr", "ssim"}}}`` from a :func:`summarise` table."""
    out: dict = {}
    for case, row in summary.iterrows():
        for (metric, method), value in row.items():
            out.setdefault(case, {}).setdefault(method, {})[metric] = float(value)
    return out


def fidelity(scores: pd.DataFrame, case: str = HEADLINE_CASE) -> dict:
    """``{method: {"psnr", "ssim"}}`` of each output measured against the reference method's
    output (not the ground truth) on ``case``, from ``evaluate_models(..., reference=...)``."""
    rows = scores[scores["case"] == case]
    means = rows.groupby("method", sort=False)[["psnr_vs_ref", "ssim_vs_ref"]].mean()
    return {m: {"psnr": float(r["psnr_vs_ref"]), "ssim": float(r["ssim_vs_ref"])}
            for m, r in means.iterrows()}  # fmt: skip
