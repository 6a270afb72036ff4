"""Score models on any folder of sharp photos.

``python -m pixel_utils.evaluation.generalisation DIR``

Measures how the networks generalise to photos the project never saw (CBSD68, a user's own
photos): every image of the folder, blurred whole and centre-cropped like the benchmark, under
the chosen benchmark cases and any blur of one's own (``--blur defocus:radius=6``). The
degraded set is written once under ``--out`` (default ``data/folders/<folder name>``) and
reused; scores go to ``<out>/scores.json``. The folder is only read: nothing is trained or
tuned on it.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from pixel_utils.arguments import plain_warnings, whole_number
from pixel_utils.data.benchmark import (
    BENCHMARK_CASES,
    BENCHMARK_NOISE,
    FOLDER_MIN_SIDE,
    BenchmarkCase,
    build_benchmark,
    load_manifest,
)
from pixel_utils.data.degradations import BLUR_RANGES, DegradationSpec
from pixel_utils.data.sources import check_folder
from pixel_utils.evaluation.scoring import evaluate_models, summarise, summary_json, write_json
from pixel_utils.paths import repo_root

#: The smallest ``--crop``: the photos' own minimum side (a crop smaller than the largest
#: blur would score mostly border).
MIN_CROP = FOLDER_MIN_SIDE


def default_out(folder: Path) -> Path:
    """``data/folders/<folder name>``, named after the folder itself (``.`` included)."""
    return repo_root() / "data" / "folders" / folder.resolve().name


#: Written first into a new or empty output folder: a run stopped before its manifest leaves
#: a folder that the next run still recognises as its own.
OUT_MARKER = ".scored-set"


def check_out(out: Path, folder: Path) -> None:
    """Refuse an output folder that would mix with the photos or replace a user's files: one
    inside the photo folder (a second run would score its own results as photos), a file, or
    a folder that holds files but no mark of this tool (:data:`OUT_MARKER`); then mark it."""
    if out.resolve().is_relative_to(Path(folder).resolve()):
        raise ValueError(f"--out {out}: inside the photo folder {folder}, which is only read; "
                         "choose a folder outside it")  # fmt: skip
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not _scored_set(out):
        raise ValueError(f"--out {out}: holds files that are not a scored set of this tool; "
                         "choose a new or empty folder")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / OUT_MARKER).touch()


def _scored_set(out: Path) -> bool:
    """Whether ``out`` is this tool's: marked, or (written before the mark) holding the
    manifest of a folder's degraded set."""
    if (out / OUT_MARKER).exists():
        return True
    try:
        return "folder" in load_manifest(out)["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


#: ``--blur`` kinds and the parameters each needs (the shaken paths also take a ``seed``,
#: which draws the path: 0 unless given).
BLUR_PARAMETERS = {kind: tuple(ranges) for kind, ranges in BLUR_RANGES.items()}
SEEDED_KINDS = ("motion_trajectory", "camera_shake")
#: The widest blur kernel ``--blur`` accepts (pixels): wider ones would take minutes to apply
#: and leave little of a crop unaffected by its border.
MAX_BLUR_SIDE = 129


def _blur_form(kind: str) -> str:
    """How ``--blur`` writes a blur of ``kind``, e.g. ``defocus:radius=R``."""
    params = (*BLUR_PARAMETERS[kind], *(("seed",) if kind in SEEDED_KINDS else ()))
    return kind + (":" + ",".join(f"{p}=..." for p in params) if params else "")


BLUR_HELP = "; ".join(map(_blur_form, BLUR_PARAMETERS))


def parse_blur(text: str) -> BenchmarkCase:
    """The case a ``--blur`` argument describes: ``KIND:NAME=VALUE,...``, e.g.
    ``defocus:radius=6`` or ``anisotropic:sigma_x=4.5,sigma_y=0.8,angle=100,noise=0.03``.
    Besides the kind's own parameters, ``noise`` (the noise σ, the benchmark's
    :data:`~pixel_utils.data.benchmark.BENCHMARK_NOISE` unless given) and ``jpeg`` (a JPEG
    quality, 1–100) may follow. Its name, ``KIND_NAMEVALUE_...``, is where its files go."""
    where = f"--blur {text!r}"
    kind, _, rest = text.strip().partition(":")
    if kind not in BLUR_PARAMETERS:
        raise ValueError(f"{where}: unknown blur kind {kind!r}; choose from "
                         f"{sorted(BLUR_PARAMETERS)}")  # fmt: skip
    needed = BLUR_PARAMETERS[kind]
    allowed = (*needed, *(("seed",) if kind in SEEDED_KINDS else ()), "noise", "jpeg")
    values: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        name, equals, value = (part.strip() for part in item.partition("="))
        if not equals or name not in allowed:
            raise ValueError(f"{where}: {item!r} is not NAME=VALUE with NAME one of "
                             f"{', '.join(allowed)}")  # fmt: skip
        if name in values:
            raise ValueError(f"{where}: {name} given twice")
        try:
            values[name] = float(value)
        except ValueError:
            raise ValueError(f"{where}: {name}={value!r} is not a number") from None
        if not math.isfinite(values[name]):
            raise ValueError(f"{where}: {name}={value!r} is not a finite number")
    missing = [p for p in needed if p not in values]
    if missing:
        raise ValueError(f"{where}: {kind} needs {', '.join(f'{p}=...' for p in missing)}")
    noise = values.pop("noise", BENCHMARK_NOISE)
    if not 0 <= noise <= 0.5:
        raise ValueError(f"{where}: noise={noise:g} is outside 0–0.5 (σ on the 0–1 scale)")
    jpeg = values.pop("jpeg", None)
    if jpeg is not None and (jpeg != int(jpeg) or not 1 <= jpeg <= 100):
        raise ValueError(f"{where}: jpeg={jpeg:g} is not a JPEG quality from 1 to 100")
    if kind in SEEDED_KINDS:
        seed = values.pop("seed", 0)
        if seed != int(seed) or not 0 <= seed < 2**31:
            raise ValueError(f"{where}: seed={seed:g} is not a whole number from 0 to 2^31 - 1")
        values["seed"] = int(seed)
    spec = DegradationSpec(kind, values, noise, None if jpeg is None else int(jpeg))
    try:
        side = spec.kernel().shape[0]
    except ValueError as err:  # the kernel's own check, e.g. a radius that is not positive
        raise ValueError(f"{where}: {err}") from None
    if side > MAX_BLUR_SIDE:
        raise ValueError(f"{where}: a {side}-pixel kernel; at most {MAX_BLUR_SIDE} pixels wide")
    extras = {"noise": noise} | ({"jpeg": int(jpeg)} if jpeg is not None else {})
    name = "_".join([kind, *(f"{k}{v:g}" for k, v in (values | extras).items())])
    return BenchmarkCase(name, spec, spec.describe())


def model_names(specs: list[str]) -> list[str]:
    """The names models are reported under (file stems), checked distinct and not the
    ``blurred`` baseline's."""
    names = [Path(m).stem for m in specs]
    taken = [n for n in set(names) if names.count(n) > 1 or n == "blurred"]
    if taken:
        raise ValueError(f"--models: more than one model (or the baseline) would be called "
                         f"{sorted(taken)}; copy or rename a file so the names differ")  # fmt: skip
    return names


#: The cases scored unless ``--cases`` or ``--blur`` says otherwise.
DEFAULT_CASES = ("gauss3", "shake17", "shake25")


def evaluate_folder(
    models: dict, folder, cases=DEFAULT_CASES, crop: int = 512,
    out: Path | None = None, seed: int = 0, max_photos: int | None = None,
) -> dict:  # fmt: skip
    """``{case: {method: {psnr, ssim, gain_db}}}`` plus the per-image table, for ``models``
    (name → model, or ``None`` for the degraded input) on every photo of ``folder``, under
    ``cases``: benchmark case names, or cases of one's own (:func:`parse_blur`)."""
    known = {c.name: c for c in BENCHMARK_CASES}
    unknown = [c for c in cases if not isinstance(c, BenchmarkCase) and c not in known]
    if unknown:
        raise ValueError(f"unknown case(s) {unknown}; choose from {sorted(known)}")
    chosen = tuple(c if isinstance(c, BenchmarkCase) else known[c] for c in cases)
    names = [c.name for c in chosen]
    if len(set(names)) < len(names):
        raise ValueError(f"a case given twice: {sorted({n for n in names if names.count(n) > 1})}")
    folder = check_folder(folder)  # before an output folder is made for it
    out = Path(out or default_out(folder))
    check_out(out, folder)
    build_benchmark(out, crop, seed, max_photos, chosen, folder=folder)
    scores = evaluate_models({"blurred": None, **models}, out)
    summary = summary_json(summarise(scores))
    # A mean gain can hide photos made worse: count them, per case and model.
    psnr = scores.pivot_table(index=["case", "photo"], columns="method", values="psnr")
    for case, row in summary.items():
        for name, method in row.items():
            method["gain_db"] = method["psnr"] - row["blurred"]["psnr"]
            if name != "blurred":
                worse = psnr.loc[case, name] < psnr.loc[case, "blurred"]
                method["photos_worse"] = int(worse.sum())
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
    parser.add_argument(
        "--cases", default=None,
        help=f"comma-separated benchmark cases (default: {','.join(DEFAULT_CASES)}, or none "
        f"when --blur is given); from {', '.join(c.name for c in BENCHMARK_CASES)}",
    )  # fmt: skip
    parser.add_argument(
        "--blur", action="append", default=[], metavar="KIND:NAME=VALUE,...",
        help="a blur of your own, scored as one more case (repeatable), with noise=σ (default "
        f"{BENCHMARK_NOISE:g}) and jpeg=quality optional: {BLUR_HELP}",
    )  # fmt: skip
    parser.add_argument(
        "--crop", type=whole_number(MIN_CROP), default=512,
        help=f"centre crop side (pixels, at least {MIN_CROP})",
    )  # fmt: skip
    parser.add_argument(
        "--max-photos", type=whole_number(1), default=None,
        help="score only the first N usable photos, by path",
    )  # fmt: skip
    parser.add_argument(
        "--out", default=None,
        help="where the degraded set and scores go (default: data/folders/<folder name>); a new "
        "or empty folder, or one this tool wrote, outside the photo folder",
    )  # fmt: skip
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else default_out(Path(args.folder))
    specs = [m.strip() for m in args.models.split(",") if m.strip()]
    named = args.cases if args.cases is not None else "" if args.blur else ",".join(DEFAULT_CASES)
    try:
        cases = (*(c.strip() for c in named.split(",") if c.strip()), *map(parse_blur, args.blur))
        if not cases:
            raise ValueError("--cases: no case to score")
        with plain_warnings():
            models = dict(zip(model_names(specs), map(load_pretrained, specs), strict=True))
            result = evaluate_folder(
                models, args.folder, cases, args.crop, out, max_photos=args.max_photos
            )
    except (OSError, ValueError) as err:  # a missing folder or model, a bad argument
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_json(out / "scores.json", result)
    photos = result["photos"]
    print(f"{photos} photos from {args.folder}:")
    for case, row in result["per_case"].items():
        cells = ", ".join(
            f"{m} {v['psnr']:.2f} dB ({v['gain_db']:+.2f}"
            + (f"; worse on {v['photos_worse']} of {photos}" if "photos_worse" in v else "")
            + ")"
            for m, v in row.items()
        )
        print(f"  {case}: {cells}")
    print(f"scores: {out / 'scores.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
