"""Shipped weights, inside the package: the pretrained teacher and the distilled student.

* ``teacher.pt`` is written by ``make weights`` (:mod:`pixel_utils.pretrain`): hours of
  training, with its data sources, config, wall time, commit and scores in the manifest.
* ``student.pt`` is the default report's distilled student (learnt from that teacher):
  ``python -m pixel_utils.pretrained --update`` copies it from ``data/default/checkpoints``
  after ``make report``, with its benchmark scores.

The CLI and notebook 05 use them when no fresher student checkpoint exists under
``data/default/checkpoints``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from .models import build_model
from .paths import checkpoints_dir, reports_dir
from .training import load_checkpoint, model_from_checkpoint

WEIGHTS_DIR = Path(__file__).parent / "weights"
#: The default report's checkpoint that ``--update`` ships as the student.
CHECKPOINT_NAMES = {"student": "student_distilled.pt"}


SERVED_STUDENT = "student_int8.onnx"


def served_student_path() -> Path | None:
    """The shipped student file the CLI and widgets run by default: the int8 ONNX model when
    the report measured it faster than PyTorch (recorded in the manifest), else None."""
    manifest = WEIGHTS_DIR / "manifest.json"
    if not manifest.exists():
        return None
    entry = json.loads(manifest.read_text()).get("models", {}).get("student", {})
    path = WEIGHTS_DIR / entry.get("served", "")
    return path if entry.get("served", "").endswith(".onnx") and path.exists() else None


def shipped_path(name: str) -> Path:
    return WEIGHTS_DIR / f"{name}.pt"


#: The named models the CLI, widgets and notebooks can ask for. The choice is explicit: a
#: name always means the same file, whatever exists on disk or was written last.
MODEL_CHOICES = {
    "student": "the served student: shipped int8 ONNX where the report measured it faster, "
    "else the shipped PyTorch student",
    "student-fp32": "the shipped distilled student in PyTorch fp32",
    "teacher": "the shipped pretrained teacher (make weights)",
    "report-student": "your `make report` run's distilled student (data/default/checkpoints)",
    "report-teacher": "your `make report` run's budget teacher (data/default/checkpoints)",
}


def resolve_weights(name_or_path: str) -> Path:
    """A name of :data:`MODEL_CHOICES` → its file; anything else must be an existing ``.pt``
    checkpoint or ``.onnx`` file. Missing files are errors that say how to make them."""
    if name_or_path not in MODEL_CHOICES:
        path = Path(name_or_path)
        if not path.exists():
            names = ", ".join(MODEL_CHOICES)
            raise FileNotFoundError(f"{path}: no such model file (or use one of: {names})")
        return path
    if name_or_path == "student":
        served = served_student_path()
        return served if served is not None else resolve_weights("student-fp32")
    if name_or_path.startswith("report-"):
        kind = name_or_path.removeprefix("report-")
        path = checkpoints_dir("default") / ("teacher.pt" if kind == "teacher" else
                                             "student_distilled.pt")  # fmt: skip
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; run `make report` first")
        if not load_checkpoint(path).get("complete", True):
            raise FileNotFoundError(f"{path}: that training run has not finished yet")
        return path
    shipped = shipped_path("student" if name_or_path == "student-fp32" else "teacher")
    if not shipped.exists():
        raise FileNotFoundError(f"{shipped}: missing; run `make weights` / `make report`")
    return shipped


def load_pretrained(name_or_path: str = "student", device=None) -> torch.nn.Module:
    """A model by name (:data:`MODEL_CHOICES`), checkpoint path, or exported ``.onnx`` file
    (run by onnxruntime on the CPU)."""
    path = resolve_weights(str(name_or_path))
    if path.suffix == ".onnx":
        from .onnx_export import OnnxModel

        return OnnxModel(path)
    return model_from_checkpoint(path, device=device).float()


def slim_checkpoint(path: Path, half: bool = False) -> dict:
    """Only what inference needs: model name, kwargs, the (EMA) weights, the config. With
    ``half`` the weights are stored in fp16 (half the bytes; they load into an fp32 model)."""
    ckpt = load_checkpoint(path)
    weights = ckpt["ema"] if ckpt.get("ema") else ckpt["model"]
    build_model(ckpt["model_name"], **ckpt["model_kwargs"]).load_state_dict(weights)  # check
    if half:
        weights = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
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
    """Copy the profile's distilled student into the package and update its manifest entry."""
    from .profiling import provenance

    results_path = reports_dir(profile) / "results.json"
    if not results_path.exists():
        raise FileNotFoundError(f"{results_path}: run the full report first (make report)")
    results = json.loads(results_path.read_text())
    import shutil

    from .artefacts import atomic_torch_save, atomic_write

    slim = slim_checkpoint(checkpoints_dir(profile) / CHECKPOINT_NAMES["student"])
    path = atomic_torch_save(shipped_path("student"), slim)
    int8 = checkpoints_dir(profile) / "student_distilled_int8.onnx"
    served = WEIGHTS_DIR / SERVED_STUDENT
    atomic_write(served, lambda tmp: shutil.copyfile(int8, tmp))
    # Serve int8 where the report measured it faster than PyTorch fp32 at every resolution.
    torch_ms = results["speed"]["student"]["latency_ms"]
    int8_ms = results["served_int8_ms"]
    faster = all(int8_ms[r] < torch_ms[r] for r in int8_ms)
    entry = {
        "file": path.name,
        "made_by": f"make report PROFILE={profile} && python -m pixel_utils.pretrained --update",
        "profile": profile,
        "seed": results["seed"],
        "distilled_from": "teacher.pt",
        "model_name": slim["model_name"],
        "model_kwargs": slim["model_kwargs"],
        "steps": slim["step"],
        "benchmark": {
            case: {**row["distilled"], "gain_db": row["distilled"]["psnr"] - row["blurred"]["psnr"]}
            for case, row in results["per_case"].items()
        },
        "served": SERVED_STUDENT if faster else path.name,
        "served_ms": {"int8_onnxruntime": int8_ms, "pytorch_fp32": torch_ms},
        "int8_calibration": "16 batches of degraded training patches (stages.served_student)",
        "results_commit": results["provenance"]["git_commit"],
        "provenance": provenance(),
        "bytes": path.stat().st_size,
    }
    return update_manifest("student", entry)


def update_manifest(name: str, entry: dict, out_dir: Path | None = None) -> dict:
    """Set ``models[name]`` of the weights manifest to ``entry``, keeping the other models."""
    from .artefacts import atomic_write_json

    path = Path(out_dir or WEIGHTS_DIR) / "manifest.json"
    manifest = json.loads(path.read_text()) if path.exists() else {"models": {}}
    manifest.setdefault("models", {})[name] = entry
    atomic_write_json(path, manifest)
    return manifest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].replace("``", ""))
    parser.add_argument("--update", action="store_true", help="ship the report's student")
    parser.add_argument("--profile", default="default")
    args = parser.parse_args(argv)
    if args.update:
        print(json.dumps(update_shipped(args.profile)["models"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
