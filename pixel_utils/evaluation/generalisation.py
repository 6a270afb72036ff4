"""Score models on any folder of sharp photos.

``python -m pixel_utils.evaluation.generalisation DIR``

Measures how the networks generalise to photos the project never saw (CBSD68, a user's own
photos): every image of the folder, blurred whole and centre-cropped like the benchmark, under
the chosen benchmark cases. The degraded set is written once under ``--out`` (default
``data/folders/<folder name>``) and reused; scores go to ``<out>/scores.json``. The folder is
only read: nothing is trained or tuned on it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pixel_utils.data.benchmark import BENCHMARK_CASES, build_benchmark
from pixel_utils.evaluation.scoring import evaluate_models, summarise, summary_json, write_json
from pixel_utils.paths import repo_root


def evaluate_folder(
    models: dict, folder, cases=("gauss3", "shake17", "shake25"), crop: int = 512,
    out: Path | None = None, seed: int = 0, max_photos: int | None = None,
) -> dict:  # fmt: skip
    """``{case: {method: {psnr, ssim, gain_db}}}`` plus the per-image table, for ``models``
    (name → model, or ``None`` for the degraded input) on every photo of ``folder``."""
    known = {c.name: c for c in BENCHMARK_CASES}
    unknown = [c for c in cases if c not in known]
    if unknown:
        raise ValueError(f"unknown case(s) {unknown}; choose from {sorted(known)}")
    folder = Path(folder)
    out = Path(out or repo_root() / "data" / "folders" / folder.name)
    build_benchmark(out, crop, seed, max_photos, tuple(known[c] for c in cases), folder=folder)
    scores = evaluate_models({"blurred": None, **models}, out)
    summary = summary_json(summarise(scores))
    for row in summary.values():
        for method in row.values():
            method["gain_db"] = method["psnr"] - row["blurred"]["psnr"]
    return {"folder": str(folder), "photos": int(scores["photo"].nunique()), "crop": crop,
            "per_case": summary, "per_image": scores.to_dict(orient="records")}  # fmt: skip


def main(argv=None) -> int:
    from pixel_utils.app.pretrained import load_pretrained

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("folder", help="a folder of sharp photos (read only)")
    parser.add_argument(
        "--models", default="teacher,student",
        help="comma-separated: teacher, student or checkpoint paths (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--cases", default="gauss3,shake17,shake25", help="benchmark cases")
    parser.add_argument("--crop", type=int, default=512, help="centre crop side (pixels)")
    parser.add_argument("--max-photos", type=int, default=None)
    parser.add_argument("--out", default=None, help="where the degraded set and scores go")
    args = parser.parse_args(argv)
    models = {Path(m).stem: load_pretrained(m) for m in args.models.split(",") if m}
    result = evaluate_folder(
        models, args.folder, tuple(args.cases.split(",")), args.crop,
        Path(args.out) if args.out else None, max_photos=args.max_photos,
    )  # fmt: skip
    out = Path(args.out or repo_root() / "data" / "folders" / Path(args.folder).name)
    write_json(out / "scores.json", result)
    print(f"{result['photos']} photos from {args.folder}:")
    for case, row in result["per_case"].items():
        cells = ", ".join(f"{m} {v['psnr']:.2f} dB ({v['gain_db']:+.2f})" for m, v in row.items())
        print(f"  {case}: {cells}")
    print(f"scores: {out / 'scores.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
