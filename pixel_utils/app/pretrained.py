"""Shipped weights, inside the package: the pretrained teacher and the distilled student.

* ``teacher.pt`` is written by ``make weights`` (:mod:`pixel_utils.training.pretrain`): hours of
  training, with its data sources, config, wall time, commit and scores in the manifest.
* ``student.pt`` and ``student_int8.onnx`` are written by ``make student``
  (:func:`pixel_utils.training.pretrain.ship_student`): the report's student grown larger
  and distilled from that teacher far longer than the report can, with its scores, both
  forms' latencies and which one is served.

``python -m pixel_utils.app.pretrained`` lists them. The CLI serves them by name
(:data:`MODEL_CHOICES`); notebook 05 shows the shipped student next to the run's own.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from pixel_utils.models.networks import build_model
from pixel_utils.paths import checkpoints_dir
from pixel_utils.training.loop import load_checkpoint, model_from_checkpoint
from pixel_utils.training.quantisation import plain_state_dict

WEIGHTS_DIR = Path(__file__).parent.parent / "weights"
SERVED_STUDENT = "student_int8.onnx"


def served_student_path() -> Path | None:
    """The shipped student file the CLI and widgets run by default: the int8 ONNX model when
    ``make student`` or ``make student-speed`` timed it faster than PyTorch (the manifest's
    ``served``), else None."""
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
    "student": "the served student: shipped int8 ONNX where make student timed it faster, "
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


def load_pretrained(name_or_path: str = "student", device=None,
                    engine: str | None = None) -> torch.nn.Module:  # fmt: skip
    """A model by name (:data:`MODEL_CHOICES`), checkpoint path, or exported ``.onnx`` file
    (run on the CPU by ``engine``: onnxruntime or OpenVINO; by default
    :func:`~pixel_utils.app.openvino_engine.served_engine`)."""
    path = resolve_weights(str(name_or_path))
    if path.suffix == ".onnx":
        from pixel_utils.app.onnx_export import OnnxModel
        from pixel_utils.app.openvino_engine import served_engine

        engine = engine or served_engine()
        try:
            return OnnxModel(path, engine=engine)
        except Exception as err:  # noqa: BLE001 - onnx's protobuf and onnxruntime's errors
            # derive from none of the built-in types a caller would catch
            reason = f"{type(err).__name__}: {err}"
            raise ValueError(f"{path}: not a readable ONNX model ({reason})") from None
    return model_from_checkpoint(path, device=device).float()


def slim_checkpoint(path: Path, half: bool = False) -> dict:
    """Only what inference needs: model name, kwargs, the (EMA) weights, the config. With
    ``half`` the weights are stored in fp16 (half the bytes; they load into an fp32 model)."""
    ckpt = load_checkpoint(path)
    weights = plain_state_dict(ckpt["ema"] if ckpt.get("ema") else ckpt["model"])
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


def int8_is_faster(results: dict) -> bool:
    """Whether a report run (its ``results.json``) measured the int8 student faster than the
    PyTorch fp32 student at every resolution: then the int8 model is the one served."""
    torch_ms = results["speed"]["student"]["latency_ms"]
    int8_ms = results.get("served_int8_ms") or {}
    return bool(int8_ms) and all(int8_ms[r] < torch_ms[r] for r in int8_ms)


def update_manifest(name: str, entry: dict, out_dir: Path | None = None) -> dict:
    """Set ``models[name]`` of the weights manifest to ``entry``, keeping the other models."""
    from pixel_utils.artefacts import atomic_write_json

    path = Path(out_dir or WEIGHTS_DIR) / "manifest.json"
    manifest = json.loads(path.read_text()) if path.exists() else {"models": {}}
    manifest.setdefault("models", {})[name] = entry
    atomic_write_json(path, manifest)
    return manifest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].replace("``", ""))
    parser.parse_args(argv)
    manifest = WEIGHTS_DIR / "manifest.json"
    models = json.loads(manifest.read_text())["models"] if manifest.exists() else {}
    for name, entry in models.items():
        gain = (entry.get("benchmark") or {}).get("gauss3", {}).get("gain_db")
        print(f"{name}: {entry['file']} ({entry.get('model_name')} {entry.get('model_kwargs')}), "
              f"{entry.get('steps')} steps, gauss3 gain {gain:+.2f} dB, served "
              f"{entry.get('served', entry['file'])}; made by: {entry.get('made_by')}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
