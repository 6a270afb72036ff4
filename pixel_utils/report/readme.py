"""Generate the README's results from the report: ``python -m pixel_utils.report.readme``.

Reads ``reports/default/results.json`` (written by notebook 04), keeps the headline numbers in
the committed ``figures/results.json``, and rewrites the README between the
``<!-- results:start -->`` and ``<!-- results:end -->`` markers. A test checks that the README
says exactly what ``figures/results.json`` says, so no number in it is typed by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pixel_utils.app.openvino_engine import ENGINE_WORDS
from pixel_utils.paths import figures_dir, repo_root, reports_dir

START, END = "<!-- results:start -->", "<!-- results:end -->"
CLASSICAL = ("unsharp", "wiener", "richardson_lucy")
CLASSICAL_NAMES = {"unsharp": "unsharp mask", "wiener": "Wiener (true PSF)",
                   "richardson_lucy": "Richardson–Lucy (true PSF)"}  # fmt: skip


def slim(results: dict) -> dict:
    """What the README needs, small enough to commit."""
    keep = ("profile", "seed", "provenance", "headline_case", "headline", "per_case", "speed",
            "headline_ci", "classical_ms", "onnxruntime_ms", "served_int8_ms",
            "teacher_to_student_speedup")  # fmt: skip
    out = {k: results[k] for k in keep if k in results}
    distill = results.get("distillation") or {}
    out["distillation"] = {k: distill.get(k) for k in
                           ("share_of_teacher_gain_kept", "distilled_minus_scratch_db",
                            "fidelity_to_teacher", "steps")}  # fmt: skip
    kd = distill.get("kd_comparison") or {}
    out["distillation"] |= {k: kd.get(k) for k in ("ci95_over_images", "images", "seeds")}
    folder = distill.get("folder_distillation")
    if folder:
        stats = ("mean_db", "ci95_over_images", "ci95_over_seeds", "images", "seeds")
        out["distillation"]["folder"] = {
            "settings": folder["settings"],
            "cases": {
                case: {"gain_db": f["gain_db"]}
                | {k: {s: f[k][s] for s in stats} for k in ("vs_scratch", "vs_unadapted")}
                for case, f in folder["cases"].items()
            },
        }
    teacher = results.get("teacher_training") or {}
    out["teacher_train_minutes"] = teacher.get("train_minutes")
    out["shipped_student"] = shipped_student_summary()
    out["video"] = video_summary(results.get("profile", "default"))
    out["report_timings_s"] = report_timings(results.get("profile", "default"))
    return out


def report_timings(profile: str) -> dict | None:
    """The run's seconds per notebook (``timings.json``, written when a ``make report`` run
    ends), or None where that file is missing or older than the run's results."""
    timings, results = reports_dir(profile) / "timings.json", reports_dir(profile) / "results.json"
    if not timings.exists() or (
        results.exists() and timings.stat().st_mtime < results.stat().st_mtime
    ):
        return None
    return json.loads(timings.read_text())


def timings_sentence(timings: dict | None) -> str:
    """How long the report took, in minutes per notebook (by its number)."""
    if not timings or "total" not in timings:
        return ""
    parts = ", ".join(
        f"{name.split('_')[0]}: {seconds / 60:.1f}"
        for name, seconds in timings.items()
        if name != "total"
    )
    return f"That run took {timings['total'] / 60:.1f} minutes ({parts} minutes per notebook)."


def video_summary(profile: str) -> dict | None:
    """Notebook 06's headline: quality and flicker per method, end-to-end throughput."""
    path = reports_dir(profile) / "06_video_metrics.json"
    if not path.exists():
        return None
    v = json.loads(path.read_text())
    keep = ("psnr", "temporal_error", "psnr_minus_student", "psnr_minus_student_ci95")
    return {
        "clips": len(v["clips"]),
        "frames": v["frames"],
        "size": v["size"],
        "served_student": v["served_student"],
        "summary": {m: {k: row[k] for k in keep if k in row} for m, row in v["summary"].items()},
        "throughput_fps": {res: t["fps"] for res, t in v["throughput"].items()},
        "codec_only_fps": {res: t["codec_only_fps"] for res, t in v["throughput"].items()},
        "shipped_throughput_fps": {
            res: t["fps"] for res, t in v.get("shipped_throughput", {}).items()
        },
        "shipped_engine": v.get("shipped_engine", "onnxruntime"),
        "camera_adaptation": camera_summary(v.get("camera_adaptation")),
        "git_commit": (v.get("provenance") or {}).get("git_commit"),
    }


def camera_summary(camera: dict | None) -> dict | None:
    """Notebook 06's adaptation to the camera, without its per-seed detail."""
    if not camera:
        return None
    stats = ("mean_db", "ci95_over_images", "ci95_over_seeds", "ci_excludes_zero", "images",
             "images_better", "seeds")  # fmt: skip
    return {k: camera[k] for k in ("settings", "gain_db", "temporal_error")} | {
        k: {s: camera[k][s] for s in stats} for k in ("vs_scratch", "vs_unadapted")
    }


def camera_sentence(camera: dict) -> str:
    """Notebook 06's adaptation to the camera, in one paragraph."""
    from pixel_utils.training.folder import clip_verdict

    g, kd, te = camera["gain_db"], camera["vs_scratch"], camera["temporal_error"]
    settings = camera["settings"]
    over_scratch = f"{kd['mean_db']:+.2f} dB over the scratch students"
    if kd["ci_excludes_zero"]:  # bold only for a difference the clips can tell
        over_scratch = f"**{over_scratch}**"
    return (
        "Adapted to the camera (notebook 06): each distilled student fine-tuned "
        f"{settings['steps']} steps on the teacher's outputs for one frame in every "
        f"{settings['label_every']} of other clips (no sharp frame used), and scored on the "
        f"clips it did not see ({settings['folds']} folds): {g['distilled']:+.2f} → "
        f"{g['distilled+folder']:+.2f} dB over the blurred frames (teacher {g['teacher']:+.2f}), "
        f"{over_scratch} (95% CI ± "
        f"{kd['ci95_over_images']:.2f} over {kd['images']} clips, ± {kd['ci95_over_seeds']:.2f} "
        f"over {kd['seeds']} seeds). {clip_verdict(kd)} Temporal error {te['distilled']:.2f} → "
        f"{te['distilled+folder']:.2f}. `pixel-sharpen clip.mp4 --adapt 300` does this to a "
        "clip of your own."
    )


def video_markdown(v: dict | None) -> list[str]:
    if not v:
        return []
    h, w = v["size"]
    lines = [
        "",
        f"**Video** (notebook 06): {v['clips']} synthetic hand-held clips of {v['frames']} "
        f"frames at {w}×{h} with ground truth (test photos). Temporal error: the RMS change of "
        "the error along the known camera motion, in 8-bit levels (lower is steadier).",
        "",
        "| method | PSNR (dB) | vs. frame-by-frame student (dB, 95% CI over clips) | "
        "temporal error |",
        "| --- | --- | --- | --- |",
    ]
    for method, row in v["summary"].items():
        diff = row.get("psnr_minus_student")
        versus = "–" if diff is None or method == "student" else (
            f"{diff:+.2f} ± {row.get('psnr_minus_student_ci95', 0):.2f}")  # fmt: skip
        lines.append(f"| {method} | {row['psnr']:.2f} | {versus} | {row['temporal_error']:.2f} |")
    rates = ", ".join(f"{fps:.1f} fps at {res}" for res, fps in v["throughput_fps"].items())
    lines += [
        "",
        f"End to end (decode + sharpen + encode, 2 CPU threads), the report's student "
        f"({v['served_student']}): "
        f"{rates}.",
    ]
    shipped = v.get("shipped_throughput_fps") or {}
    if shipped:
        lines[-1] += (
            " The shipped student (what `pixel-sharpen clip.mp4` serves by default, int8 on "
            f"{ENGINE_WORDS.get(v.get('shipped_engine'), 'onnxruntime')}): "
            + ", ".join(f"{fps:.1f} fps at {res}" for res, fps in shipped.items())
            + "."
        )
    if v.get("camera_adaptation"):
        lines += ["", camera_sentence(v["camera_adaptation"])]
    return lines


def shipped_student_summary(case: str = "gauss3") -> dict | None:
    """The shipped student's numbers, from the weights manifest (``make student``): headline
    and per-case gains of both forms, its size and its measured speed."""
    from pixel_utils.app.pretrained import WEIGHTS_DIR
    from pixel_utils.evaluation.cost import count_macs, count_parameters
    from pixel_utils.models.networks import build_model

    path = WEIGHTS_DIR / "manifest.json"
    models = json.loads(path.read_text()).get("models", {}) if path.exists() else {}
    student, teacher = models.get("student"), models.get("teacher")
    if not student or "benchmark_int8" not in student:
        return None
    # The int8 forms measured: onnxruntime always, OpenVINO where `make student-speed` ran
    # with it installed; the served one is the engine `pixel-sharpen` picked on that machine.
    int8_forms = {"int8": ("int8_onnxruntime", "benchmark_int8")}
    if "benchmark_int8_openvino" in student and "int8_openvino" in student["served_ms"]:
        int8_forms["int8_openvino"] = ("int8_openvino", "benchmark_int8_openvino")
    engine = student.get("served_engine", "onnxruntime")
    served_form = (
        "int8_openvino" if engine == "openvino" and "int8_openvino" in int8_forms else "int8"
    )
    served_ms = student["served_ms"][int8_forms[served_form][0] if student["served"].endswith(
        ".onnx") else "pytorch_fp32"]  # fmt: skip
    served_benchmark = student[int8_forms[served_form][1]]
    gain_int8 = served_benchmark[case]["gain_db"]
    network = build_model(student["model_name"], **student["model_kwargs"]).eval()
    side = 256  # MACs per pixel do not depend on the size for a fully convolutional network
    # Where the speed was measured: a later --measure-speed, or the run that shipped it.
    speed_measured = student.get("served_ms_provenance") or student.get("provenance") or {}
    return {
        "case": case,
        "made_by": student["made_by"],
        "steps": student["steps"],
        "loss": student.get("train_config", {}).get("loss", "charbonnier"),
        "int8_fine_tuning_loss": (
            (student.get("quantisation_aware") or {}).get("train_config") or {}
        ).get("loss"),
        "model_kwargs": student["model_kwargs"],
        "served": student["served"],
        "served_engine": "openvino" if served_form == "int8_openvino" else "onnxruntime",
        "gain_db": student["benchmark"][case]["gain_db"],
        "gain_db_int8": gain_int8,
        "headline": {
            form: {k: student[key][case][k] for k in ("psnr", "ssim", "gain_db")}
            for form, key in [("fp32", "benchmark")]
            + [(form, bench) for form, (_, bench) in int8_forms.items()]
        },
        "per_case_gain_int8": {c: row["gain_db"] for c, row in served_benchmark.items()},
        "parameters": count_parameters(network),
        "gmacs_per_megapixel": count_macs(network, side, side) / 1e9 / (side * side / 1e6),
        "share_of_teacher_gain": gain_int8 / teacher["benchmark"][case]["gain_db"],
        "served_fps": {res: 1e3 / ms for res, ms in served_ms.items()},
        "fps": {
            form: {res: 1e3 / ms for res, ms in student["served_ms"][key].items()}
            for form, key in [("fp32", "pytorch_fp32")]
            + [(form, timed) for form, (timed, _) in int8_forms.items()]
        },
        "frame_fps": {
            key.removeprefix("frames_int8_"): {res: 1e3 / ms for res, ms in by_res.items()}
            for key, by_res in student["served_ms"].items()
            if key.startswith("frames_int8_")
        },
        "git_commit": (student.get("provenance") or {}).get("git_commit"),
        "machine": speed_measured.get("machine") or {},
        "speed_remeasured": "served_ms_provenance" in student,
        "speed_history": speed_history(student.get("served_ms_history", [])),
        "scratch_twin": twin_summary(student.get("scratch_twin"), case),
        "grown_from": grown_summary(student.get("grown_from"), case),
        "refined": refined_summary(student.get("refined"), case),
    }


def speed_history(history: list[dict]) -> list[dict]:
    """Earlier measurements of the shipped student's int8 speed on float images (the manifest's
    ``served_ms_history``, oldest first): fps per engine and resolution, with the machine and
    when. The same weights measured 23.0 and 49.5 fps at 720p on two hosts that report the same
    CPU name, so the README gives every measurement next to the latest."""
    return [
        {
            "utc": entry.get("utc"),
            "machine": entry.get("machine") or {},
            "fps": {
                key.removeprefix("int8_"): {res: 1e3 / ms for res, ms in by_res.items()}
                for key, by_res in entry["served_ms"].items()
                if key.startswith("int8_")
            },
        }
        for entry in history
    ]


def speed_history_sentence(history: list[dict]) -> str:
    """The earlier int8 speed measurements in words (empty when there are none)."""
    if not history:
        return ""

    def one(entry: dict) -> str:
        rates = "; ".join(
            ", ".join(f"{fps:.1f} fps at {res}" for res, fps in by_res.items())
            + f" ({ENGINE_WORDS.get(engine, engine)})"
            for engine, by_res in entry["fps"].items()
        )
        day = (entry.get("utc") or "")[:10] or "an unrecorded day"
        return f"{rates} on {cpu_words(entry['machine'])}, {day}"

    return (
        " Its int8 speed depends on the CPU and on how busy its host is; measured before (on "
        "float images, median of the rounds each time): " + "; ".join(map(one, history)) + "."
    )


def refined_summary(refined: dict | None, case: str) -> dict | None:
    """The last fine-tuning of a refined shipped student (``pretrain --refine-from``): its
    steps, fresh batches, and the headline gain as served before it."""
    if not refined:
        return None
    before = (refined.get("source") or {}).get("benchmark_int8") or {}
    return {"steps": refined["steps"], "cache_batches": refined["cache_batches"],
            "gain_db_int8_before": (before.get(case) or {}).get("gain_db")}  # fmt: skip


def grown_summary(grown: dict | None, case: str) -> dict | None:
    """What a grown shipped student grew from: that network, its headline gain as served,
    its served speed where it was measured, its scratch twin, and the grown network's
    latency against it where both were timed on one machine (``make student-speed``)."""
    if not grown:
        return None
    source = grown.get("shipped_entry") or {}
    # Each network it grew through, first the one distilled (a grown student may grow again)
    lineage, record = [], grown
    while record:
        lineage.insert(0, record["model_kwargs"])
        record = (record.get("shipped_entry") or {}).get("grown_from")
    out = {"model_kwargs": grown["model_kwargs"], "made_by": source.get("made_by"),
           "steps": source.get("steps"), "lineage": lineage}  # fmt: skip
    if "benchmark_int8" in source:
        out["gain_db_int8"] = source["benchmark_int8"][case]["gain_db"]
    if "served_ms" in source:
        ms = source["served_ms"]["int8_onnxruntime"]
        out["served_fps"] = {res: 1e3 / v for res, v in ms.items()}
        # served_ms is from the last `make student-speed` where there was one, else from shipping.
        measured = source.get("served_ms_provenance") or source.get("provenance") or {}
        out["machine"] = measured.get("machine") or {}
    here = grown.get("int8_same_machine")
    if here:
        out["latency_ratio"] = here["latency_ratio"]
        out["ratio_machine"] = here.get("machine") or {}
    out["scratch_twin"] = twin_summary(source.get("scratch_twin"), case)
    # The network distilled first (the start of the lineage), which the report's network may be
    origin, record = source, grown
    while record:
        origin = record.get("shipped_entry") or {}
        record = origin.get("grown_from")
    out["origin"] = {"model_kwargs": lineage[0], "steps": origin.get("steps"),
                     "scratch_twin": twin_summary(origin.get("scratch_twin"), case)}  # fmt: skip
    if "benchmark_int8" in origin:
        out["origin"]["gain_db_int8"] = origin["benchmark_int8"][case]["gain_db"]
    return out


#: How the README names each serving engine (app/openvino_engine.py).
#: How the README names the students' reconstruction losses (training/losses.py).
LOSS_WORDS = {"charbonnier": "Charbonnier's loss", "l1": "the L1 loss", "mse": "the squared error",
              "psnr": "the PSNR loss"}  # fmt: skip


def network_words(kwargs: dict) -> str:
    """An unshuffle student's blocks in words."""
    words = f"{kwargs['blocks']} blocks of {kwargs['channels']} channels at 1/{kwargs['scale']}"
    if kwargs.get("inner_blocks"):
        words += (f"{',' if kwargs.get('deep_blocks') else ''} and {kwargs['inner_blocks']} "
                  f"of {2 * kwargs['channels']} at 1/{2 * kwargs['scale']}")  # fmt: skip
    if kwargs.get("deep_blocks"):
        words += (f" around {kwargs['deep_blocks']} of {4 * kwargs['channels']} at "
                  f"1/{4 * kwargs['scale']}")  # fmt: skip
    return words + " resolution"


def cpu_words(machine: dict) -> str:
    """The CPU a speed was measured on, with what int8 speed hinges on: whether it has the
    int8 dot-product instructions (AVX-512 VNNI or AVX-VNNI): the served int8 student measured
    about 4× faster on a 2-vCPU EPYC with them than on one without."""
    name = machine.get("cpu_model") or machine.get("processor") or machine.get("platform")
    cores = f"{machine['cpu_count']} cores" if machine.get("cpu_count") else None
    vnni, amx = machine.get("int8_vnni"), machine.get("int8_amx")
    int8 = None if vnni is None else (
        "with" if vnni else "without") + " VNNI int8 instructions"  # fmt: skip
    if vnni and amx:  # recorded since the OpenVINO engine (absent: not known)
        int8 = "with VNNI and AMX int8 instructions"
    details = ", ".join(w for w in (cores, int8) if w)
    return f"{name or 'an unrecorded CPU'}" + (f" ({details})" if details else "")


def twin_summary(twin: dict | None, case: str) -> dict | None:
    if not twin or case not in twin["distilled_minus_scratch"]:
        return None
    kd = twin["distilled_minus_scratch"][case]
    return {"steps": twin["steps"], "mean_db": kd["mean_db"], "ci95": kd["ci95_over_images"],
            "images": kd["images"], "seeds": kd.get("seeds", 1),
            "ci95_over_seeds": kd.get("ci95_over_seeds"),
            "stopped_early": twin["stopped_early"]}  # fmt: skip


def twin_words(twin: dict) -> str:
    """How the scratch-twin comparison was paired and how wide its interval is, in words."""
    if twin.get("seeds", 1) > 1:  # results written before several seeds were recorded
        return (
            f"mean of {twin['seeds']} seeds; 95% CI ± {twin['ci95']:.2f} dB over "
            f"{twin['images']} photos, ± {twin['ci95_over_seeds']:.2f} dB over the seeds"
        )
    return f"95% CI ± {twin['ci95']:.2f} dB over {twin['images']} photos, one seed"


def training_length_lesson(
    shipped: dict | None, student_kwargs: dict, report_gain_db: float, report_steps: int,
    report_kd_db: float,
) -> str:  # fmt: skip
    """Notebook 03's lesson from the shipped student (:func:`shipped_student_summary`) when it
    is this run's network trained longer, or grown from it: its gain against this run's
    ``report_steps``-step student's, and its scratch twin's margin against this run's
    distilled − scratch. Empty when the shipped student is another network."""
    if not shipped:
        return ""
    grown = shipped.get("grown_from") or {}
    # The shipped student may have grown more than once: the lesson starts from the network
    # distilled first, which may be this run's, not from the one it grew from last.
    origin = grown.get("origin") or grown
    if shipped["model_kwargs"] == student_kwargs:
        lesson = (
            f"- **Training length matters most.** The same student and recipe distilled for "
            f"{shipped['steps']:,} steps (`make student`, the shipped weights) gains "
            f"{shipped['gain_db']:+.2f} dB in fp32 ({shipped['gain_db_int8']:+.2f} dB served in "
            f"int8), against {report_gain_db:+.2f} dB after this run's {report_steps:,} steps."
        )
        twin = shipped.get("scratch_twin")
    elif origin.get("model_kwargs") == student_kwargs and "gain_db_int8" in origin:
        times = len(grown.get("lineage") or []) or 1  # the networks it grew through
        how = {1: "", 2: " twice"}.get(times, f" {times} times")
        lesson = (
            f"- **Training length matters most, then capacity.** This network and recipe "
            f"distilled for {origin['steps']:,} steps (`make student`, its first step) gains "
            f"{origin['gain_db_int8']:+.2f} dB served in int8, against {report_gain_db:+.2f} dB "
            f"after this run's {report_steps:,} steps. Grown{how} (to "
            f"{network_words(shipped['model_kwargs'])}) and fine-tuned, the shipped weights "
            f"gain {shipped['gain_db_int8']:+.2f} dB served "
            f"({shipped['gain_db']:+.2f} dB in fp32)."
        )
        twin = origin.get("scratch_twin")
    else:
        return ""
    if twin and not twin["stopped_early"]:
        lesson += (
            f" At {twin['steps']:,} steps, distilled − scratch is {twin['mean_db']:+.2f} dB "
            f"(its scratch twin, `make student-twin`; {twin_words(twin)}), against "
            f"{report_kd_db:+.3f} dB for this run's {report_steps:,}-step students."
        )
    return lesson


def shipped_rows(shipped: dict | None, res: list[str]) -> list[str]:
    """Main-table rows for the shipped student (its manifest has means only, so no CI)."""
    if not shipped or "headline" not in shipped:
        return []
    lines = []
    forms = (("fp32", "PyTorch fp32"), ("int8", "served (int8, onnxruntime)"),
             ("int8_openvino", "served (int8, OpenVINO)"))  # fmt: skip
    for form, label in forms:
        if form not in shipped["headline"]:
            continue
        h, fps = shipped["headline"][form], shipped["fps"][form]
        rates = " | ".join(f"{fps[x]:.1f}" if x in fps else "–" for x in res)
        lines.append(
            f"| shipped student (`make student`), {label} | {h['psnr']:.2f} | {h['ssim']:.4f} | "
            f"{h['gain_db']:+.2f} | {shipped['parameters']:,} | "
            f"{shipped['gmacs_per_megapixel']:.1f} | {rates} |"
        )
    return lines


def results_markdown(r: dict) -> str:
    head, speed = r["headline"], r["speed"]
    best = max((m for m in CLASSICAL if m in head), key=lambda m: head[m]["psnr"])
    res = list(speed["student"]["fps"])
    steps = (r.get("distillation") or {}).get("steps")
    report = f"report's student ({steps:,} steps)" if steps else "report's student"
    rows = [
        ("degraded input", "blurred", None),
        (f"best classical: {CLASSICAL_NAMES[best]}", best, None),
        ("shipped teacher (`make weights`)", "teacher", "teacher"),
        ("budget teacher (trained in the report)", "budget_teacher", None),
        (f"{report}, distilled, PyTorch fp32", "distilled", "student"),
        (f"{report}, distilled, served (int8, onnxruntime)", "distilled_int8", "served"),
        (f"{report}, trained from scratch", "scratch", "student"),
    ]
    lines = [
        "| method | PSNR (dB) | SSIM | gain (dB, 95% CI over images) | parameters | GMAC/MP | "
        + " | ".join(f"fps {x}" for x in res)
        + " |",
        "|" + " --- |" * (6 + len(res)),
    ]
    for label, method, model in rows:
        if method not in head:
            continue
        h = head[method]
        cost = speed.get("student" if model == "served" else model) if model else None
        params = f"{cost['parameters']:,}" if cost else "–"
        macs = f"{cost['gmacs_per_megapixel']:.1f}" if cost else "–"
        fps = [f"{cost['fps'][x]:.1f}" if cost and x in cost["fps"] else "–" for x in res]
        if model == "served":
            fps = [f"{1e3 / r['served_int8_ms'][x]:.1f}" for x in res]
        ci = r.get("headline_ci", {}).get(method, {})
        gain = f"{h['gain_db']:+.2f}" + (f" ± {ci['gain_ci95']:.2f}" if ci.get("gain_ci95") else "")
        lines.append(f"| {label} | {h['psnr']:.2f} | {h['ssim']:.4f} | {gain} | "
                     f"{params} | {macs} | " + " | ".join(fps) + " |")  # fmt: skip
    lines += shipped_rows(r.get("shipped_student"), res)
    lines += ["", *per_case_markdown(r)]
    p = r["provenance"]
    machine = p["machine"]
    d = r["distillation"]
    notes = [
        "",
        f"Headline case `{r['headline_case']}` (Gaussian σ = 3 + noise 0.01) on the test photos, "
        f"profile `{r['profile']}`, seed {r['seed']}. Speed: {machine['torch_threads']} CPU "
        f"threads on {cpu_words(machine)}, torch {p['packages']['torch']}, PyTorch fp32 where "
        "a row does not say int8"
        + (
            "; the shipped student's rows come from its manifest, timed on the CPU named below"
            if shipped_rows(r.get("shipped_student"), res)
            else ""
        )  # fmt: skip
        + ". These numbers "
        f"come from a `make report` run of commit `{(p['git_commit'] or 'unknown')[:10]}` with "
        f"pipeline sources `{(p.get('pipeline_sha256') or 'unknown')[:12]}` (a test checks that "
        "they are this checkout's).",
    ]
    took = timings_sentence(r.get("report_timings_s"))
    if took:
        notes[-1] += " " + took
    if d.get("share_of_teacher_gain_kept") is not None:
        notes.append(
            f"The report's distilled student (seed {r.get('seed', 0)}, the one in the table) keeps "
            f"{100 * d['share_of_teacher_gain_kept']:.0f}% of the "
            f"teacher's gain and is {d['distilled_minus_scratch_db']:+.2f} dB"
            + (
                f" (mean of {d['seeds']} seeds, 95% CI ± {d['ci95_over_images']:.2f} dB over "
                f"{d['images']} photos)"
                if d.get("seeds")
                else ""
            )
            + " from the same student trained without the teacher; it runs "
            f"{r['teacher_to_student_speedup']:.0f}× faster than the teacher."
        )
    folder = d.get("folder")
    if folder:
        notes.append(folder_sentence(folder))
    onnx = r.get("onnxruntime_ms", {}).get("student")
    if onnx:
        rates = ", ".join(f"{1e3 / ms:.1f} fps at {res}" for res, ms in onnx.items())
        notes.append(f"The student exported to ONNX (fp32) runs at {rates} in onnxruntime.")
    shipped = r.get("shipped_student")
    if shipped:
        engine = shipped.get("served_engine", "onnxruntime")
        if not shipped["served"].endswith(".onnx"):
            form = "PyTorch fp32"
        else:
            # `served_engine` picks OpenVINO on a CPU with AMX int8 and onnxruntime elsewhere
            # (unless asked), so the engine that timed it is not every CPU's.
            other, amx = (
                ("onnxruntime", "without") if engine == "openvino" else ("openvino", "with")
            )
            form = (f"int8 ({ENGINE_WORDS[engine]} on the CPU that timed it; "
                    f"{ENGINE_WORDS[other]} on a CPU {amx} AMX int8)")  # fmt: skip
        rates = ", ".join(f"{fps:.1f} fps at {res}" for res, fps in shipped["served_fps"].items())
        grown = shipped.get("grown_from")
        recipe = f"the same network and recipe, {shipped['steps']:,} steps"
        if grown:
            lineage = grown.get("lineage") or [grown["model_kwargs"]]
            recipe = (
                f"the report's network ({network_words(lineage[0])}) distilled, then "
                + "".join(
                    f"grown to {network_words(kw)} and fine-tuned, then " for kw in lineage[1:]
                )  # fmt: skip
                + f"grown to {network_words(shipped['model_kwargs'])}, the added blocks "
                f"starting as the identity, and fine-tuned for {shipped['steps']:,} steps"
            )
            qat_loss = shipped["int8_fine_tuning_loss"]
            if qat_loss and qat_loss != shipped["loss"]:
                recipe += (
                    f", then through its int8 rounding on {LOSS_WORDS.get(qat_loss, qat_loss)} "
                    f"(the steps before: {LOSS_WORDS.get(shipped['loss'], shipped['loss'])})"
                )
        refined = shipped.get("refined")
        if refined:
            recipe += (
                f", then {refined['steps']:,} more steps through its int8 rounding on "
                f"{refined['cache_batches']:,} batches the teacher labelled afresh"
                + (f" ({refined['gain_db_int8_before']:+.2f} dB as served before them)"
                   if refined.get("gain_db_int8_before") is not None else "")
            )  # fmt: skip
        notes += [
            "",
            f"**The shipped student** (`make student`: {recipe}; manifest written at commit "
            f"`{(shipped['git_commit'] or 'unknown')[:10]}`), "
            f"which `pixel-sharpen` serves in {form}: {shipped['gain_db_int8']:+.2f} dB on "
            f"`{shipped['case']}` as served ({shipped['gain_db']:+.2f} dB in fp32), "
            f"{100 * shipped['share_of_teacher_gain']:.1f}% of the shipped teacher's gain, "
            f"at {rates} on {cpu_words(shipped['machine'])} ("
            + (
                "measured again by `make student-speed`; "
                if shipped.get("speed_remeasured")
                else ""
            )
            + "from `pixel_utils/weights/manifest.json`)."
            + speed_history_sentence(shipped.get("speed_history") or []),
        ]
        if shipped.get("frame_fps"):
            notes[-1] += " On 8-bit video frames (the video path's model stage) it runs " + (
                "; ".join(
                    ", ".join(f"{f:.1f} fps at {r}" for r, f in by_res.items())
                    + f" on {ENGINE_WORDS.get(engine, engine)}"
                    for engine, by_res in shipped["frame_fps"].items()
                )
                + "."
            )
        if grown and "gain_db_int8" in grown:
            notes[-1] += (
                f" The network it grew from gained {grown['gain_db_int8']:+.2f} dB as served"
                + (
                    " and served at "
                    + ", ".join(f"{f:.1f} fps at {r}" for r, f in grown["served_fps"].items())
                    + f" on {cpu_words(grown['machine'])}"
                    if grown.get("served_fps")
                    else ""
                )
                + "."
            )
        if grown and grown.get("latency_ratio"):
            ratios = ", ".join(f"{v:.2f}× at {r}" for r, v in grown["latency_ratio"].items())
            notes[-1] += (
                f" Timed in alternation on {cpu_words(grown['ratio_machine'])}, the grown "
                f"network's int8 latency is {ratios} that network's (median of the rounds)."
            )
            if grown.get("served_fps"):
                guess = ", ".join(
                    f"{fps / grown['latency_ratio'][r]:.0f} fps at {r}"
                    for r, fps in grown["served_fps"].items()
                    if r in grown["latency_ratio"]
                )
                notes[-1] += (
                    f" Scaled by those ratios, the grown one would serve at about {guess} on "
                    f"{cpu_words(grown['machine'])}: an estimate, not a measurement; "
                    "`make student-speed` measures it on your CPU."
                )
        twin = shipped.get("scratch_twin")
        of = "its scratch twin"
        if not twin and grown and grown.get("scratch_twin"):
            twin, of = grown["scratch_twin"], "the scratch twin of the network it grew from"
        if twin and not twin["stopped_early"]:
            notes[-1] += (
                f" Against {of} (`make student-twin`: the same network, batches, "
                f"{twin['steps']:,} steps and seed, ground truth only), distillation gains "
                f"{twin['mean_db']:+.2f} dB on `{shipped['case']}` ({twin_words(twin)})."
            )
    notes += video_markdown(r.get("video"))
    return "\n".join(lines + notes)


#: Methods of the per-case gain table, in column order.
PER_CASE_METHODS = {
    "wiener": "Wiener (true PSF)",
    "teacher": "shipped teacher",
    "budget_teacher": "budget teacher",
    "distilled": "report's distilled student",
}


def folder_sentence(folder: dict) -> str:
    """Notebook 03's distillation on a folder without ground truth, in one paragraph."""
    parts = []
    for case, f in folder["cases"].items():
        g, kd = f["gain_db"], f["vs_scratch"]
        parts.append(
            f"`{case}` {g['distilled']:+.2f} → {g['distilled+folder']:+.2f} dB (teacher "
            f"{g['teacher']:+.2f}), **{kd['mean_db']:+.2f} dB over the scratch students** "
            f"(95% CI ± {kd['ci95_over_images']:.2f} over {kd['images']} photos, "
            f"± {kd['ci95_over_seeds']:.2f} over {kd['seeds']} seeds)"
        )
    return (
        "Where no ground truth reaches (notebook 03): each distilled student fine-tuned "
        f"{folder['settings']['steps']} steps on the teacher's outputs for a folder of blurred "
        "photos that share one blur (neither their sharp images nor their PSF used), and scored "
        f"on photos of the folder it did not see ({folder['settings']['folds']} folds): "
        + "; ".join(parts)
        + ". The scratch students have no target there."
    )


def per_case_markdown(r: dict) -> list[str]:
    """Gain over the degraded input (dB) for every benchmark case and the main methods."""
    per_case = r.get("per_case") or {}
    if not per_case:
        return []
    methods = [m for m in PER_CASE_METHODS if m in next(iter(per_case.values()))]
    shipped = (r.get("shipped_student") or {}).get("per_case_gain_int8")
    names = [PER_CASE_METHODS[m] for m in methods] + (["shipped student (int8)"] if shipped else [])
    lines = [
        "| case | degraded (dB) | " + " | ".join(names) + " |",
        "|" + " --- |" * (2 + len(names)),
    ]
    for case, row in per_case.items():
        base = row["blurred"]["psnr"]
        gains = " | ".join(f"{row[m]['psnr'] - base:+.2f}" for m in methods)
        if shipped:
            gains += " | " + (f"{shipped[case]:+.2f}" if case in shipped else "–")
        lines.append(f"| `{case}` | {base:.2f} | {gains} |")
    return ["Gain in PSNR over the degraded input, every benchmark case (test photos):", "", *lines]


def update_readme(readme: Path, results: dict) -> str:
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme}: missing the {START} / {END} markers")
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    new = f"{before}{START}\n{results_markdown(results)}\n{END}{after}"
    readme.write_text(new)
    return new


def readme_results(readme_text: str) -> str:
    return readme_text.split(START, 1)[1].split(END, 1)[0].strip()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("--profile", default="default")
    args = parser.parse_args(argv)
    source = reports_dir(args.profile) / "results.json"
    if not source.exists():
        raise SystemExit(f"{source}: missing; run `make report` first")
    results = slim(json.loads(source.read_text()))
    target = figures_dir(args.profile) / "results.json"
    target.write_text(json.dumps(results, indent=1) + "\n")
    update_readme(repo_root() / "README.md", results)
    print(f"README results regenerated from {source} (kept in {target})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
