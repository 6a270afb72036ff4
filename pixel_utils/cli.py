"""``pixel-sharpen``: sharpen your own photos with the distilled student (or the teacher).

    pixel-sharpen photo.jpg holiday/ 'scans/*.png' -o sharpened/
    pixel-sharpen big.tif -o out/ --model teacher --tile 512 --overlap 128
    pixel-sharpen export --onnx student.onnx

Each result keeps its input's file name, format, bit depth (8 or 16), grey-ness and alpha
channel (passed through untouched); EXIF orientation is applied. Inputs are never overwritten
unless ``--overwrite`` is given. An unreadable file gets one error line naming it, the batch
goes on, and the exit code is non-zero if any file failed.
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .images import IMAGE_SUFFIXES, ImageReadError, read_image_file, write_image_file
from .inference import pick_device, sharpen, sharpen_tiled
from .pretrained import load_pretrained


def expand_inputs(items: list[str]) -> tuple[list[Path], list[str]]:
    """Files, folders (their images, recursively) and globs → (files, problems)."""
    files, problems = [], []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                problems.append(f"{path}: folder contains no images")
            files += found
        elif path.exists():
            files.append(path)
        elif any(ch in item for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True))
            if not matches:
                problems.append(f"{item}: pattern matches no files")
            files += [p for p in matches if p.is_file()]
        else:
            problems.append(f"{path}: file does not exist")
    return list(dict.fromkeys(files)), problems


def output_path(src: Path, out_dir: Path, roots: list[Path]) -> Path:
    """Keep the name; keep sub-folders relative to a folder given on the command line."""
    for root in roots:
        if root.is_dir() and src.is_relative_to(root):
            return out_dir / src.relative_to(root)
    return out_dir / src.name


def sharpen_files(args) -> int:
    device = pick_device(args.device)
    model = load_pretrained(args.model, device=device)
    if args.model.endswith(".onnx") and device.type != "cpu":
        print("note: ONNX models run on the CPU through onnxruntime", file=sys.stderr)
    files, problems = expand_inputs(args.inputs)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    out_dir = Path(args.output)
    roots = [Path(i) for i in args.inputs]
    failed, done, pixels = len(problems), 0, 0
    start = time.perf_counter()
    for src in tqdm(files, desc="sharpening", unit="img", disable=not files):
        dst = output_path(src, out_dir, roots)
        if dst.exists() and not args.overwrite:
            same = dst.resolve() == src.resolve()
            why = "it is the input" if same else "it exists"
            print(f"error: {src}: not writing {dst} ({why}; use --overwrite)", file=sys.stderr)
            failed += 1
            continue
        try:
            image = read_image_file(src)
        except ImageReadError as err:
            print(f"error: {err}", file=sys.stderr)
            failed += 1
            continue
        h, w = image.rgb.shape[:2]
        with torch.inference_mode():
            if args.tile and max(h, w) > args.tile:
                result = sharpen_tiled(model, image.rgb, args.tile, args.overlap)
            else:
                result = sharpen(model, image.rgb)
        write_image_file(dst, result, image)
        done += 1
        pixels += h * w
    seconds = time.perf_counter() - start
    rate = done / seconds if seconds > 0 else 0.0
    print(
        f"sharpened {done} image(s) ({pixels / 1e6:.1f} MP) in {seconds:.1f} s: "
        f"{rate:.2f} images/s; {failed} failed",
        file=sys.stderr,
    )
    return 1 if failed else 0


def export(args) -> int:
    from .onnx_export import export_onnx

    model = load_pretrained(args.model)
    path, max_diff = export_onnx(model, args.onnx)
    print(f"wrote {path}; onnxruntime vs PyTorch max abs difference {max_diff:.2e}")
    return 0


def build_parser(export_mode: bool) -> argparse.ArgumentParser:
    if export_mode:
        p = argparse.ArgumentParser(prog="pixel-sharpen export", description="export to ONNX")
        p.add_argument("--onnx", required=True, metavar="FILE", help="ONNX file to write")
        p.add_argument("--model", default="student", help="student, teacher or a checkpoint")
        return p
    p = argparse.ArgumentParser(
        prog="pixel-sharpen", description=__doc__.split("\n\n")[0],
        epilog="Run `pixel-sharpen export --help` for ONNX export.",
    )  # fmt: skip
    p.add_argument("inputs", nargs="+", help="image files, folders or glob patterns")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--model", default="student", help="student (default), teacher, a .pt or an .onnx file"
    )
    p.add_argument("--tile", type=int, default=1024, help="tile size for large images (0: off)")
    p.add_argument("--overlap", type=int, default=128, help="tile overlap in pixels")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    p.add_argument("--overwrite", action="store_true", help="allow replacing existing files")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "export":
        return export(build_parser(True).parse_args(argv[1:]))
    return sharpen_files(build_parser(False).parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
