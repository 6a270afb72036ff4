"""The student design space, measured: ``python -m pixel_utils.training.sweep`` (``make sweep``).

Every candidate student is distilled from the shipped teacher on the profile's teacher cache
(the students of notebook 03 learn from the same batches), scored on the benchmark's headline
case, and timed *as served*: exported to ONNX, quantised to int8 (calibrated on training
patches) and run by onnxruntime on this machine's threads at 720p and 1080p. PyTorch fp32 is
timed too. For :data:`PAY_SIZES`, scratch twins and extra seeds give the "when does
distillation pay" figure: distilled − scratch against student size, and against training
length (read off the validation curves of the same runs).

Writes ``figures/student_sweep.json`` (with the commit and pipeline hash it ran on) and the
figures ``student_pareto.png`` and ``kd_pays.png``. It takes about an hour on a 2-core CPU;
``--quick`` trains a quarter of the steps (a smoke check, not a result).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from pathlib import Path

import torch

from pixel_utils.progress import tqdm

#: Candidates: ``label → UnshuffleStudent`` keyword arguments.
SWEEP_STUDENTS: dict[str, dict] = {
    "×4 16ch 2b": {"scale": 4, "channels": 16, "blocks": 2},
    "×4 32ch 4b": {"scale": 4, "channels": 32, "blocks": 4},
    "×4 32ch 3b U": {"scale": 4, "channels": 32, "blocks": 3, "inner_blocks": 1},
    "×4 32ch 3b U rep": {"scale": 4, "channels": 32, "blocks": 3, "inner_blocks": 1,
                         "reparam": True},
    "×4 24ch 2b U2": {"scale": 4, "channels": 24, "blocks": 2, "inner_blocks": 2},
    "×4 48ch 3b U": {"scale": 4, "channels": 48, "blocks": 3, "inner_blocks": 1},
    "×8 48ch 4b": {"scale": 8, "channels": 48, "blocks": 4},
    "×8 64ch 4b": {"scale": 8, "channels": 64, "blocks": 4},
}  # fmt: skip
#: The sizes whose distilled and scratch twins are trained over several seeds.
PAY_SIZES = ("×4 16ch 2b", "×4 32ch 3b U", "×8 64ch 4b")


def served_latency(model: torch.nn.Module, calibration, resolutions: dict, work: Path,
                   min_run_time: float = 2.0) -> dict:  # fmt: skip
    """Median ms per frame of ``model`` served as int8 onnxruntime and as PyTorch fp32, at each
    ``{label: (h, w)}``, with how many timed runs each median is over (at least 5)."""
    from torch.utils import benchmark

    from pixel_utils.app.onnx_export import OnnxModel, export_onnx, quantize_int8
    from pixel_utils.evaluation.cost import block_times

    fp32, _ = export_onnx(model, work / "student.onnx")
    int8 = quantize_int8(fp32, work / "student_int8.onnx", calibration)
    served = OnnxModel(int8, torch.get_num_threads())
    model.eval()
    out = {}
    for label, (h, w) in resolutions.items():
        x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
        onnx_timer = benchmark.Timer("m(x)", globals={"m": served, "x": x})
        torch_timer = benchmark.Timer("with torch.no_grad(): m(x)",
                                      globals={"m": model, "x": x, "torch": torch})  # fmt: skip
        timed = {}
        for name, timer in (("int8_onnxruntime", onnx_timer), ("pytorch_fp32", torch_timer)):
            blocks = block_times(timer, min_run_time)  # a median of at least 5 blocks
            timed[name] = {"ms": 1e3 * statistics.median(blocks), "runs": len(blocks)}
        out[label] = timed
    return out


#: Distillation recipes compared on the default student (profile's loss weights overridden).
RECIPES: dict[str, dict] = {
    "ground truth + response": {"ground_truth": 1.0, "response": 1.0},
    "response only (pseudo-labels)": {"ground_truth": 0.0, "response": 1.0},
}


def best_real_time(result: dict, fps_720p: float = 30.0, fps_1080p: float = 12.0) -> str | None:
    """The sweep's student with the largest gain that is served at ≥ ``fps_720p`` at 720p and
    ≥ ``fps_1080p`` at 1080p (int8 onnxruntime, median ms), or None."""
    best, best_gain = None, -float("inf")
    for label, row in result["students"].items():
        ms = [row["latency"][r]["int8_onnxruntime"]["ms"] for r in row["latency"]]
        fast = 1e3 / ms[0] >= fps_720p and (len(ms) < 2 or 1e3 / ms[1] >= fps_1080p)
        if fast and row["gain_db"] > best_gain:
            best, best_gain = label, row["gain_db"]
    return best


def run_sweep(profile_name: str = "default", quick: bool = False, seeds: int = 3,
              out_dir: Path | None = None, steps: int | None = None,
              students: dict | None = None, pay_sizes: tuple | None = None) -> dict:  # fmt: skip
    """Train, score and time every student of ``students`` (default :data:`SWEEP_STUDENTS`;
    scratch twins over ``seeds`` for ``pay_sizes``), write the JSON and figures to ``out_dir``
    (default: the profile's figures folder) and return the result."""
    students = students or SWEEP_STUDENTS
    pay_sizes = PAY_SIZES if pay_sizes is None else pay_sizes
    from pixel_utils.data.benchmark import HEADLINE_CASE, build_benchmark
    from pixel_utils.data.degradations import DegradationMix
    from pixel_utils.evaluation.cost import count_macs
    from pixel_utils.evaluation.scoring import evaluate_models, kd_comparison, write_experiment
    from pixel_utils.models.networks import count_parameters
    from pixel_utils.paths import benchmark_dir, checkpoints_dir, figures_dir
    from pixel_utils.profiles import resolve_profile
    from pixel_utils.provenance import provenance
    from pixel_utils.report.viz import kd_pays_figure, pareto_figure
    from pixel_utils.training import stages

    base = resolve_profile(profile_name)
    steps = steps or base.student_steps
    steps = max(20, steps // 4) if quick else steps
    teacher = stages.distillation_teacher(base)
    setup = stages.prepare_distillation(base, teacher)
    bench = benchmark_dir(base.run_name)
    build_benchmark(bench, base.benchmark_crop, base.seed, base.benchmark_max_photos)  # reused
    calibration_set = stages.training_stream(base, DegradationMix(), 16, seed_offset=2)(0)
    calibration = [calibration_set[i][0].numpy() for i in range(len(calibration_set))]
    out_dir = Path(out_dir or figures_dir(base.run_name))
    work = checkpoints_dir(base.run_name) / "sweep"
    seed_list = list(range(base.seed, base.seed + seeds))

    def trained(kwargs: dict, distill: bool, seed: int, weights: dict | None = None):
        prof = dataclasses.replace(base, student_steps=steps, student_kwargs=kwargs)
        if weights:
            prof = dataclasses.replace(prof, distill_weights={**base.distill_weights, **weights})
        return stages.train_student(prof, setup, distill=distill, seed=seed)

    rows, pay_runs, recipes = {}, {}, {}
    for label, kwargs in tqdm(students.items(), desc="sweep"):
        run = trained(kwargs, True, base.seed)
        model = run.model.float().eval()
        methods = {"blurred": None, label: model}
        pairs = []
        if label in pay_sizes:
            runs = {}
            for seed in seed_list:
                runs[seed] = (run if seed == base.seed else trained(kwargs, True, seed),
                              trained(kwargs, False, seed))  # fmt: skip
                methods[f"kd s{seed}"] = runs[seed][0].model.float().eval()
                methods[f"scratch s{seed}"] = runs[seed][1].model.float().eval()
                pairs.append((f"kd s{seed}", f"scratch s{seed}"))
            pay_runs[label] = [(d.history, s.history) for d, s in runs.values()]
        if kwargs == base.student_kwargs:
            for name, weights in RECIPES.items():
                if weights.items() <= base.distill_weights.items():
                    continue  # the profile's own recipe: the "kd" runs above
                for seed in seed_list:
                    methods[f"{name} s{seed}"] = trained(kwargs, True, seed, weights).model.eval()
        scores = evaluate_models(methods, bench, cases=(HEADLINE_CASE,))
        per_method = scores.groupby("method")["psnr"].mean()
        blurred = float(per_method["blurred"])
        rows[label] = {
            "kwargs": kwargs,
            "params": count_parameters(model),
            "gmac_per_mp": count_macs(model, 256, 256) / 256**2 / 1e3,
            "psnr": float(per_method[label]),
            "gain_db": float(per_method[label]) - blurred,
            "latency": served_latency(
                model,
                calibration,
                base.speed_resolutions,
                work,
                min_run_time=2 * base.timing_seconds,
            ),  # fmt: skip
            "final_val_psnr": run.history["val"][-1][1] if run.history["val"] else None,
        }
        if pairs:
            rows[label]["kd_vs_scratch"] = kd_comparison(scores, pairs)
        if kwargs == base.student_kwargs:
            for name, weights in RECIPES.items():
                if weights.items() <= base.distill_weights.items():
                    continue
                recipe_pairs = [(f"{name} s{s}", f"kd s{s}") for s in seed_list]
                recipes[name] = kd_comparison(scores, recipe_pairs) if pairs else None
    result = {
        "profile": base.run_name,
        "steps": steps,
        "quick": quick,
        "seeds": seeds,
        "case": HEADLINE_CASE,
        "teacher": "shipped teacher.pt",
        "default_student": base.student_kwargs,
        "default_recipe": base.distill_weights,
        "blurred_psnr": blurred,
        "students": rows,
        "recipes_vs_default": recipes,
        "command": f"python -m pixel_utils.training.sweep --profile {profile_name} --steps {steps}"
        + (" --quick" if quick else "")
        + f" --seeds {seeds}",
        "provenance": provenance(),
    }
    result["best_real_time"] = best_real_time(result)
    write_experiment(out_dir, "student_sweep", result,
                     {"student_pareto.png": pareto_figure(result),
                      "kd_pays.png": kd_pays_figure(result, pay_runs)})  # fmt: skip
    return result


def design_space_lesson(result: dict | None, student_kwargs: dict) -> str:
    """Notebook 03's "Design space" bullet: the committed sweep's best real-time student, and
    whether ``student_kwargs`` (this run's student) is that design; "" without a sweep."""
    if not result:
        return ""
    best = result.get("best_real_time")
    if not best:
        return (
            "- **Design space** (the committed sweep): no student of it was served at real-time "
            "rates on the machine it ran on (its findings above name the CPU and the fastest)."
        )
    row = result["students"][best]
    resolution, timed = next(iter(row["latency"].items()))
    fps = 1e3 / timed["int8_onnxruntime"]["ms"]
    same = "is" if row["kwargs"] == student_kwargs else "is not"
    return (
        f"- **Design space** (the committed sweep): the best student served at real-time rates is "
        f"{best}, {row['gain_db']:+.2f} dB at {fps:.0f} fps ({resolution}, int8); "
        f"this run's student {same} that design."
    )


def sweep_findings(result: dict) -> str:
    """Markdown sentences about a sweep result, every number read from it."""
    p = result["provenance"]
    rows = result["students"]
    first = next(iter(next(iter(rows.values()))["latency"]))
    from pixel_utils.evaluation.scoring import kd_interval_words, kd_verdict, run_words
    from pixel_utils.report.readme import cpu_words

    lines = [
        f"{run_words(result)}, {result['steps']} "
        f"distillation steps per student, {result['seeds']} seeds for the scratch comparisons, "
        f"{p['machine']['torch_threads']} threads on {cpu_words(p['machine'])}.",
    ]
    best = result.get("best_real_time")
    if not best:
        # Say so rather than stay silent: the served speed hinges on the CPU's int8 instructions.
        fastest = min(rows, key=lambda r: rows[r]["latency"][first]["int8_onnxruntime"]["ms"])
        ms = rows[fastest]["latency"][first]["int8_onnxruntime"]["ms"]
        lines.append(
            f"- **No student is served in real time on this machine** (≥ 30 fps at 720p and "
            f"≥ 12 fps at 1080p, int8): the fastest, {fastest} "
            f"({rows[fastest]['gain_db']:+.2f} dB), runs at {1e3 / ms:.0f} fps ({first})."
        )
    else:
        row = rows[best]
        fps = {r: 1e3 / v["int8_onnxruntime"]["ms"] for r, v in row["latency"].items()}
        lines.append(
            f"- **Best real-time student: {best}** ({row['params']:,} parameters): "
            f"{row['gain_db']:+.2f} dB on `{result['case']}`, served in int8 at "
            + ", ".join(f"{v:.0f} fps ({r})" for r, v in fps.items())
            + (
                " — the profile's default."
                if row["kwargs"] == result["default_student"]
                else " — not the profile's default student."
            )  # fmt: skip
        )
    served = [row["latency"][first] for row in rows.values()]
    speedups = [t["pytorch_fp32"]["ms"] / t["int8_onnxruntime"]["ms"] for t in served]
    lines.append(
        f"- **int8 serving** is {min(speedups):.1f}–{max(speedups):.1f}× faster than PyTorch fp32 "
        f"at {first} across the sweep."
    )
    variants = (
        ("×4 32ch 3b U", "×4 32ch 3b U rep", "Re-parameterised training"),
        ("×4 32ch 4b", "×4 32ch 3b U", "Moving one block to a coarser level"),
    )
    for plain, variant, what in variants:
        if plain in rows and variant in rows:
            d = rows[variant]["gain_db"] - rows[plain]["gain_db"]
            lines.append(f"- **{what}** changes the gain by {d:+.2f} dB ({variant} vs {plain}, "
                         "one seed each, so no interval).")  # fmt: skip
    for label, row in rows.items():
        kd = row.get("kd_vs_scratch")
        if kd:
            lines.append(
                f"- **Distillation at {label}** ({row['params']:,} parameters) "
                f"{kd_verdict(kd)}: {kd['mean_db']:+.3f} dB ({kd_interval_words(kd)})."
            )
    for name, kd in (result.get("recipes_vs_default") or {}).items():
        if kd:
            lines.append(
                f"- **Recipe '{name}'** against the default recipe: {kd['mean_db']:+.3f} dB "
                f"({kd_interval_words(kd)}): it {kd_verdict(kd)}."
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("--profile", default="default")
    parser.add_argument("--quick", action="store_true", help="a quarter of the steps")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None, help="default: the profile's")
    parser.add_argument("--out", type=Path, default=None, help="default: figures/")
    args = parser.parse_args(argv)
    result = run_sweep(args.profile, args.quick, args.seeds, args.out, args.steps)
    for label, row in result["students"].items():
        ms = row["latency"]
        first = next(iter(ms))
        print(f"{label:16s} {row['params']:>8d} params  {row['gain_db']:+.2f} dB  "
              f"int8 {ms[first]['int8_onnxruntime']['ms']:.1f} ms  "
              f"torch {ms[first]['pytorch_fp32']['ms']:.1f} ms ({first})")  # fmt: skip
    print(sweep_findings(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
