"""Shipped weights: the default-profile teacher and distilled student, inside the package.

``python -m pixel_utils.pretrained --update`` copies the default profile's checkpoints (as
produced by ``make report``) into ``pixel_utils/weights/`` as slim fp32 weight files with a
``manifest.json`` (profile, seed, git commit, model config, benchmark metrics). The CLI and
notebook 05 use them when no fresher checkpoint exists under ``data/default/checkpoints``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from .models import build_model
from .paths import checkpoints_dir, reports_dir
from .training import load_checkpoint, model_from_checkpoint

WEIGHTS_DIR = Path(__file__).parent / "weights"
CHECKPOINT_NAMES = {"student": "student_distilled.pt", "teacher": "teacher.pt"}


def shipped_path(name: str) -> Path:
    return WEIGHTS_DIR / f"{name}.pt"


def resolve_weights(name_or_path: str) -> Path:
    """``student``/``teacher`` → the fresher of the local checkpoint and the shipped weights;
    anything else is a checkpoint path."""
    if name_or_path not in CHECKPOINT_NAMES:
        path = Path(name_or_path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such checkpoint (or use 'student'/'teacher')")
        return path
    local = checkpoints_dir("default") / CHECKPOINT_NAMES[name_or_path]
    shipped = shipped_path(name_or_path)
    candidates = [p for p in (local, shipped) if p.exists()]
    if not candidates:
        raise FileNotFoundError(
            f"no {name_or_path} weights: neither {local} nor {shipped} exists; run `make report`"
        )
    if local.exists() and not load_checkpoint(local).get("complete", True):
        candidates.remove(local)  # a run still in progress
    return max(candidates, key=lambda p: p.stat().st_mtime)


def load_pretrained(name_or_path: str = "student", device=None) -> torch.nn.Module:
    """A model by name (``student``/``teacher``), checkpoint path, or exported ``.onnx`` file
    (run by onnxruntime on the CPU)."""
    if str(name_or_path).endswith(".onnx"):
        from .onnx_export import OnnxModel

        if not Path(name_or_path).exists():
            raise FileNotFoundError(f"{name_or_path}: no such ONNX file")
        return OnnxModel(name_or_path)
    return model_from_checkpoint(resolve_weights(name_or_path), device=device)


def slim_checkpoint(path: Path) -> dict:
    """Only what inference needs: model name, kwargs, the (EMA) weights, the config."""
    ckpt = load_checkpoint(path)
    weights = ckpt["ema"] if ckpt.get("ema") else ckpt["model"]
    build_model(ckpt["model_name"], **ckpt["model_kwargs"]).load_state_dict(weights)  # check
    return {
        "format": ckpt["format"],
        "model_name": ckpt["model_name"],
        "model_kwargs": ckpt["model_kwargs"],
        "config": ckpt["config"],
        "data": ckpt["data"],
        "step": ckpt["step"],
        "complete": True,
        "model": weights,
        "ema": None,
    }


def update_shipped(profile: str = "default") -> dict:
    """Copy the profile's final checkpoints into the package and write the manifest."""
    from .evaluation import write_json
    from .profiling import provenance

    results_path = reports_dir(profile) / "results.json"
    if not results_path.exists():
        raise FileNotFoundError(f"{results_path}: run the full report first (make report)")
    results = json.loads(results_path.read_text())
    WEIGHTS_DIR.mkdir(exist_ok=True)
    manifest = {"profile": profile, "seed": results["seed"], "provenance": provenance(),
                "results_commit": results["provenance"]["git_commit"], "models": {}}  # fmt: skip
    for name, file in CHECKPOINT_NAMES.items():
        slim = slim_checkpoint(checkpoints_dir(profile) / file)
        tmp = shipped_path(name).with_suffix(".tmp")
        torch.save(slim, tmp)
        os.replace(tmp, shipped_path(name))
        method = "distilled" if name == "student" else "teacher"
        manifest["models"][name] = {
            "file": shipped_path(name).name,
            "model_name": slim["model_name"],
            "model_kwargs": slim["model_kwargs"],
            "steps": slim["step"],
            "benchmark": {"case": results["headline_case"], **results["headline"][method]},
            "bytes": shipped_path(name).stat().st_size,
        }
    write_json(WEIGHTS_DIR / "manifest.json", manifest)
    return manifest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="copy data/default checkpoints")
    parser.add_argument("--profile", default="default")
    args = parser.parse_args(argv)
    if args.update:
        print(json.dumps(update_shipped(args.profile)["models"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
