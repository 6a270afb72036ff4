"""``pixel-sharpen``: sharpen your photos and videos with the distilled student (or the teacher).

The default model is the served student: the shipped int8 ONNX model (run by onnxruntime, or by
OpenVINO where it is installed and the CPU has AMX int8), where ``make student`` or
``make student-speed`` timed it faster than PyTorch (``--model student-fp32`` for PyTorch).

    pixel-sharpen photo.jpg holiday/ 'scans/*.png' -o sharpened/
    pixel-sharpen clip.mp4 -o sharpened/ --temporal blend
    pixel-sharpen big.tif -o out/ --model teacher --tile 512 --overlap 128
    pixel-sharpen blurry_holiday/ -o sharpened/ --adapt 300
    pixel-sharpen nearly_sharp.jpg -o sharpened/ --amount 0.5
    pixel-sharpen export --onnx student.onnx

Each result keeps its input's file name, format, bit depth (8 or 16), grey-ness and alpha
channel (passed through untouched), and its colour profile and EXIF metadata where the format
holds them; EXIF orientation is applied; a JPEG (or lossy WebP) is encoded at ``--quality``
(default 95). Inputs are never overwritten
unless ``--overwrite`` is given, and then only by their own result: two inputs whose results
would share a file, or a result that would replace another input, are reported and skipped.
An output folder inside an input folder is not scanned as input. A file that cannot be read,
sharpened or written gets one error line naming it and the reason, the batch goes on, and the
exit code is non-zero if any file failed. ``--tile`` and ``--overlap`` are rounded up to
multiples of the model's stride (with a note), so any tile size works with any model.

Videos (``.mp4 .m4v .mov .mkv .avi .webm .mpg .mpeg .ts .mts .m2ts .flv .3gp``) are sharpened
as a stream, frame by frame, with memory bounded by a few frames: frame count, timestamps,
frame rate and audio are kept, the video is re-encoded as H.264 (inputs other than ``.mp4
.m4v .mov .mkv`` become ``.mp4``), and a progress bar
shows the achieved frames per second. ``--temporal blend`` steadies the result with a
motion-aligned recurrent blend (see notebook 06).

``--adapt STEPS`` first specialises the student to the blur its inputs share: the teacher labels
centre crops of a few of them, and the student fine-tunes on its outputs (no sharp image or PSF
needed; notebook 03 measures what it buys). See :mod:`pixel_utils.app.adapt`.

``--amount`` (0 to 2, default 1) scales the model's correction, its output minus its input, on
photos and video frames alike: 0 keeps the input, 2 doubles the correction. See
:mod:`pixel_utils.app.amount`.
"""

from __future__ import annotations

import argparse
import glob
import sys
import tempfile
import time
from pathlib import Path

import torch

from pixel_utils.app.adapt import adapt_served_model, samples_of
from pixel_utils.app.amount import MAX_AMOUNT, apply_amount, with_amount
from pixel_utils.app.onnx_export import OnnxModel
from pixel_utils.app.openvino_engine import ENGINE_VARIABLE, ENGINES
from pixel_utils.app.pretrained import MODEL_CHOICES, load_pretrained
from pixel_utils.app.video import (
    VIDEO_SUFFIXES,
    VideoError,
    frame_sharpener,
    is_video,
    sharpen_video,
    video_output_path,
)
from pixel_utils.arguments import number_between, whole_number
from pixel_utils.data.images import (
    DEFAULT_QUALITY,
    IMAGE_SUFFIXES,
    ImageReadError,
    read_image_file,
    writable_format,
    write_image_file,
)
from pixel_utils.evaluation.inference import pick_device, sharpen, sharpen_tiled
from pixel_utils.progress import tqdm


def _output_inside(folder: Path, out_dir: Path | None) -> Path | None:
    """The output folder (resolved) whose contents a scan of ``folder`` must leave out, so
    that a second run does not sharpen the first run's results: only an output folder *inside*
    ``folder``. None when there is no output folder, when it *is* ``folder`` (the user sharpens
    a folder into itself), or when it lies elsewhere, above ``folder`` included
    (``photos/raw -o photos``), where leaving it out would leave out every input."""
    if out_dir is None:
        return None
    inner, outer = out_dir.resolve(), folder.resolve()
    return inner if inner != outer and inner.is_relative_to(outer) else None


def _glob_base(pattern: str) -> Path:
    """The folder a glob pattern searches from: its leading parts without wildcards."""
    parts = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def _files_in(folder: Path, suffixes, out_dir: Path | None = None) -> list[Path]:
    """The files under ``folder``, recursively, whose suffix is one of ``suffixes``, except
    those in the output folder (:func:`_output_inside`)."""
    skip = _output_inside(folder, out_dir)
    return sorted(
        p for p in folder.rglob("*")
        if p.suffix.lower() in suffixes and p.is_file()
        and not (skip is not None and p.resolve().is_relative_to(skip))
    )  # fmt: skip


def _media_in(folder: Path, out_dir: Path | None = None) -> list[Path]:
    """The image and video files under ``folder``, recursively, except those in the output
    folder (:func:`_output_inside`)."""
    return _files_in(folder, IMAGE_SUFFIXES + VIDEO_SUFFIXES, out_dir)


def left_out_of_folders(roots: list[Path], out_dir: Path | None = None) -> list[str]:
    """A note for each named folder holding files that Pillow reads but a folder scan leaves
    out (GIF, PPM, ICO...: their results would be palette-reduced or unusual), so a user is
    not left wondering why they were not sharpened; named one by one, they are."""
    from PIL import Image

    Image.init()
    scanned = set(IMAGE_SUFFIXES + VIDEO_SUFFIXES)
    # Formats Pillow opens itself: not those it only writes (PDF) nor its stubs that need an
    # outside handler (scientific data, Windows metafiles).
    stubs = {"BUFR", "GRIB", "HDF5", "FITS", "WMF"}
    pillow_only = {ext for ext, fmt in Image.registered_extensions().items()
                   if fmt in Image.OPEN and fmt not in stubs and ext not in scanned}  # fmt: skip
    notes = []
    for folder in (r for r in roots if r.is_dir()):
        left = _files_in(folder, pillow_only, out_dir)
        if left:
            names = ", ".join(p.name for p in left[:3]) + (", ..." if len(left) > 3 else "")
            notes.append(f"{folder}: left out {len(left)} file(s) that a folder scan does not "
                         f"sharpen ({names}); name them one by one to sharpen them")  # fmt: skip
    return notes


def expand_inputs(
    items: list[str], out_dir: Path | None = None
) -> tuple[list[Path], list[str], list[Path]]:
    """Files, folders (their images and videos, recursively, leaving out ``out_dir``: see
    :func:`_media_in`) and globs (each match taken as if it were named, except matches in the
    output folder, as for a folder) → (files, problems, roots). ``roots`` are the named or
    matched paths, whose folders keep their sub-folders in the output. A file reached
    twice (two spellings, or a folder and a file in it) is kept once, first spelling first."""
    problems, named = [], []
    for item in items:
        if Path(item).exists():
            named.append(Path(item))
        elif any(ch in item for ch in "*?["):
            matches = [Path(p) for p in sorted(glob.glob(item, recursive=True))]
            skip = _output_inside(_glob_base(item), out_dir)
            matches = [m for m in matches if not (skip and m.resolve().is_relative_to(skip))]
            if not matches:
                problems.append(f"{item}: pattern matches no files")
            named += matches
        else:
            problems.append(f"{item}: file does not exist")
    files = []
    for path in named:
        if path.is_dir():
            found = _media_in(path, out_dir)
            if not found:
                problems.append(f"{path}: folder contains no images or videos")
            files += found
        else:
            files.append(path)
    unique = {}
    for path in files:
        unique.setdefault(path.resolve(), path)
    return list(unique.values()), problems, named


def output_path(src: Path, out_dir: Path, roots: list[Path]) -> Path:
    """Keep the name; keep sub-folders relative to a folder given on the command line."""
    for root in roots:
        if root.is_dir() and src.is_relative_to(root):
            return out_dir / src.relative_to(root)
    return out_dir / src.name


def plan_outputs(
    files: list[Path], out_dir: Path, roots: list[Path]
) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Each input's output path, and problems for the inputs that must not be written: a
    second input whose result would land on the same file as an earlier one's (``a/x.jpg`` and
    ``b/x.jpg``, or ``clip.avi`` and ``clip.mp4``, which both become ``clip.mp4``), and an
    input whose result would replace *another* input of the batch. Decided before any work,
    so no result silently replaces another and no input is lost before it is read."""
    inputs = {f.resolve(): f for f in files}
    planned, problems, taken = [], [], {}
    for src in files:
        dst = output_path(src, out_dir, roots)
        if is_video(src):
            dst = video_output_path(dst)
        key = dst.resolve()
        if key in taken:
            problems.append(f"{src}: not writing {dst}: the result of {taken[key]} goes there "
                            "(rename one, or sharpen them into separate folders)")  # fmt: skip
            continue
        if key in inputs and key != src.resolve():
            problems.append(f"{src}: not writing {dst}: it is another input, {inputs[key]}")
            continue
        taken[key] = src
        planned.append((src, dst))
    return planned, problems


def _report(message: str) -> None:
    """One line on stderr that does not tear the progress bar."""
    tqdm.write(message, file=sys.stderr)


def _plain(text: str) -> str:
    """Docstring text for ``--help``: RST double back-ticks dropped."""
    return text.replace("``", "")


def fit_tiles(tile: int, overlap: int, stride: int) -> tuple[int, int]:
    """Round ``tile`` and ``overlap`` up to multiples of ``stride``; overlap stays below the
    tile. A tile of 0 (tiling off) is left alone."""
    if not tile:
        return tile, overlap
    tile = -(-tile // stride) * stride
    overlap = min(-(-overlap // stride) * stride, tile - stride)
    return tile, overlap


def sharpen_files(args) -> int:
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        print(f"error: -o {out_dir}: exists and is not a folder", file=sys.stderr)
        return 2
    try:
        device = pick_device(args.device)
        model = load_pretrained(args.model, device=device, engine=args.engine)
    except (OSError, ValueError, RuntimeError) as err:  # a missing file, a bad --device
        print(f"error: {err}", file=sys.stderr)
        return 2
    if isinstance(model, OnnxModel) and device.type != "cpu":
        print(f"note: ONNX models run on the CPU through {model.engine}", file=sys.stderr)
    stride = int(getattr(model, "stride", 1))
    tile, overlap = fit_tiles(args.tile, args.overlap, stride)
    if (tile, overlap) != (args.tile, args.overlap):
        print(
            f"note: --tile {args.tile} --overlap {args.overlap} rounded to --tile {tile} "
            f"--overlap {overlap}: multiples of the model's stride {stride}",
            file=sys.stderr,
        )
    files, problems, roots = expand_inputs(args.inputs, out_dir)
    for note in left_out_of_folders(roots, out_dir):
        print(f"note: {note}", file=sys.stderr)
    planned, clashes = plan_outputs(files, out_dir, roots)
    for problem in problems + clashes:
        print(f"error: {problem}", file=sys.stderr)
    if args.adapt and planned:
        # Removed with this object, when the function returns; the adapted int8 model's files.
        workdir = tempfile.TemporaryDirectory(prefix="pixel-adapt-")
        samples, notes = samples_of([src for src, _ in planned])
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        try:
            model = adapt_served_model(args.model, model, samples, args.adapt, device,
                                       Path(workdir.name))  # fmt: skip
        except (OSError, ValueError, RuntimeError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    failed, done, pixels = len(problems) + len(clashes), 0, 0
    start = time.perf_counter()
    videos = [(src, dst) for src, dst in planned if is_video(src)]
    files = [(src, dst) for src, dst in planned if not is_video(src)]
    for src, dst in videos:
        process = with_amount(frame_sharpener(model), args.amount)
        if args.temporal == "blend":
            from pixel_utils.evaluation.temporal import AlignedBlend

            process = AlignedBlend(process)
        try:
            result = sharpen_video(src, dst, process, overwrite=args.overwrite)
        except VideoError as err:
            _report(f"error: {err}")
            failed += 1
            continue
        except OSError as err:  # the output folder cannot be written
            _report(f"error: {src}: cannot write {dst} ({err.strerror or err})")
            failed += 1
            continue
        except Exception as err:  # noqa: BLE001 - the model failed on a frame (onnxruntime's
            # errors are not RuntimeErrors)
            _report(f"error: {src}: sharpening failed ({type(err).__name__}: {err})")
            failed += 1
            continue
        print(
            f"{src} -> {result.output}: {result.frames} frames, {result.audio_packets} audio "
            f"packets copied, {result.fps:.1f} fps end to end",
            file=sys.stderr,
        )
    start = time.perf_counter()
    for src, dst in tqdm(files, desc="sharpening", unit="img", disable=not files):
        if dst.exists() and not args.overwrite:
            same = dst.resolve() == src.resolve()
            why = "it is the input" if same else "it exists"
            _report(f"error: {src}: not writing {dst} ({why}; use --overwrite)")
            failed += 1
            continue
        try:
            image = read_image_file(src)
        except ImageReadError as err:
            _report(f"error: {err}")
            failed += 1
            continue
        except MemoryError:
            _report(f"error: {src}: too large to read into memory")
            failed += 1
            continue
        if not writable_format(image.format):  # said before, not after, the sharpening
            _report(f"error: {src}: {image.format} files cannot be written; sharpen a PNG or "
                    "TIFF copy")  # fmt: skip
            failed += 1
            continue
        if image.frames > 1:
            _report(f"note: {src}: {image.frames} pages or frames; only the first is sharpened")
        h, w = image.rgb.shape[:2]
        try:
            with torch.inference_mode():
                if tile and max(h, w) > tile:
                    result = sharpen_tiled(model, image.rgb, tile, overlap)
                else:
                    result = sharpen(model, image.rgb)
            result = apply_amount(image.rgb, result, args.amount)
        except Exception as err:  # noqa: BLE001 - out of (GPU) memory, onnxruntime's own errors
            _report(f"error: {src}: sharpening failed ({type(err).__name__}: {err})")
            failed += 1
            continue
        try:
            write_image_file(dst, result, image, args.quality)
        except (OSError, ValueError) as err:  # a folder in the way, no permission, disk full
            reason = err.strerror if isinstance(err, OSError) and err.strerror else err
            _report(f"error: {src}: cannot write {dst} ({reason})")
            failed += 1
            continue
        done += 1
        pixels += h * w
    seconds = time.perf_counter() - start
    rate = done / seconds if seconds > 0 else 0.0
    if not files and videos:
        return 1 if failed else 0
    print(
        f"sharpened {done} image(s) ({pixels / 1e6:.1f} MP) in {seconds:.1f} s: "
        f"{rate:.2f} images/s; {failed} failed",
        file=sys.stderr,
    )
    return 1 if failed else 0


def export(args) -> int:
    """Export a PyTorch model to ONNX; an existing file is replaced only with ``--overwrite``,
    and then atomically (an interrupted export leaves the old file)."""
    from pixel_utils.app.onnx_export import export_onnx
    from pixel_utils.artefacts import atomic_write

    target = Path(args.onnx)
    if target.is_dir():
        print(f"error: --onnx {target}: is a folder; name the .onnx file to write", file=sys.stderr)
        return 2
    if target.exists() and not args.overwrite:
        print(f"error: --onnx {target}: exists (use --overwrite)", file=sys.stderr)
        return 2
    try:
        model = load_pretrained(args.model)
    except (OSError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if isinstance(model, OnnxModel):
        print(f"error: --model {args.model}: {model.path} is already an ONNX graph; export a "
              "PyTorch model (student-fp32, teacher, report-student, report-teacher or a .pt "
              "file)", file=sys.stderr)  # fmt: skip
        return 2
    result = {}

    def write(tmp: Path) -> None:
        result["max_diff"] = export_onnx(model, tmp)[1]

    try:
        path = atomic_write(target, write)
    except OSError as err:
        print(f"error: --onnx {target}: cannot write ({err.strerror or err})", file=sys.stderr)
        return 2
    print(f"wrote {path}; onnxruntime vs PyTorch max abs difference {result['max_diff']:.2e}")
    return 0


DEFAULT_OVERLAP = 128


def build_parser(export_mode: bool) -> argparse.ArgumentParser:
    if export_mode:
        p = argparse.ArgumentParser(prog="pixel-sharpen export", description="export to ONNX")
        p.add_argument("--onnx", required=True, metavar="FILE", help="ONNX file to write")
        p.add_argument(
            "--model", default="student-fp32",
            help="student-fp32 (default), teacher, report-student, report-teacher or a .pt file",
        )  # fmt: skip
        p.add_argument("--overwrite", action="store_true", help="allow replacing an existing file")
        return p
    p = argparse.ArgumentParser(
        prog="pixel-sharpen", description=_plain(__doc__.split("\n\n")[0]),
        epilog="Run 'pixel-sharpen export --help' for ONNX export.",
    )  # fmt: skip
    p.add_argument("inputs", nargs="+", help="image or video files, folders or glob patterns")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--model", default="student", metavar="MODEL",
        help="; ".join(f"{k}: {v}" for k, v in MODEL_CHOICES.items())
        + "; or a .pt checkpoint or .onnx file (default: student)",
    )  # fmt: skip
    p.add_argument(
        "--tile", type=whole_number(0), default=1024,
        help="tile size for large images (0: off); rounded up to a multiple of the model's "
        "stride, with a note",
    )  # fmt: skip
    p.add_argument(
        "--overlap", type=whole_number(0), default=None,
        help="tile overlap in pixels (default: 128, or half a smaller tile); rounded up to a "
        "multiple of the model's stride and kept below the tile",
    )  # fmt: skip
    p.add_argument(
        "--temporal", choices=("none", "blend"), default="none",
        help="videos: 'blend' steadies frame-to-frame flicker with a motion-aligned recurrent "
        "blend (default: none, each frame on its own)",
    )  # fmt: skip
    p.add_argument(
        "--quality", type=whole_number(1, 100), default=DEFAULT_QUALITY, metavar="1-100",
        help=f"JPEG and lossy WebP results: encoder quality (default: {DEFAULT_QUALITY}; a "
        "lossless WebP stays lossless, PNG and TIFF are lossless anyway)",
    )  # fmt: skip
    p.add_argument(
        "--adapt", type=whole_number(0), default=0, metavar="STEPS",
        help="first specialise the student to the inputs' shared blur: the teacher labels "
        "centre crops of up to 8 of them (video: frames), and the student fine-tunes STEPS "
        "steps on its outputs (300 is a good start; about a minute on 2 CPU cores); an int8 "
        "student stays int8 (default: 0, off)",
    )  # fmt: skip
    p.add_argument(
        "--amount", type=number_between(0, MAX_AMOUNT), default=1.0, metavar="0-2",
        help="how much of the sharpening to apply: 0 keeps the input, 1 the model's output "
        "(default), up to 2 exaggerates it; less suits photos that were nearly sharp, more "
        "draws halos along edges",
    )  # fmt: skip
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    p.add_argument(
        "--engine", choices=ENGINES, default=None,
        help="what runs an ONNX model (the int8 student) on the CPU (default: "
        f"${ENGINE_VARIABLE} if set, else openvino on an x86-64 CPU with AMX int8 where "
        "installed, else onnxruntime)",
    )  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="allow replacing existing files")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "export":
        return export(build_parser(True).parse_args(argv[1:]))
    parser = build_parser(False)
    args = parser.parse_args(argv)
    if args.overlap is None:
        args.overlap = min(DEFAULT_OVERLAP, args.tile // 2)
    elif args.tile and args.overlap >= args.tile:
        parser.error(f"--overlap ({args.overlap}) must be smaller than --tile ({args.tile})")
    return sharpen_files(args)


if __name__ == "__main__":
    raise SystemExit(main())
