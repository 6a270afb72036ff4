"""``pixel-sharpen --adapt STEPS``: specialise the student to the inputs' own blur first.

Photos from one camera, one lens or one shaky hand share a blur that nobody measured. The
teacher is blind, so its outputs on a few of them describe that blur; the student fine-tunes
on those outputs (:mod:`pixel_utils.training.folder`, measured in notebook 03) and then
sharpens every input. The teacher labels a centre crop of at most :data:`MAX_SAMPLES` inputs
(video: frames spread over the clip, at least :data:`FRAME_GAP` apart), which bounds its time
on a CPU to about a minute.

An int8 student comes back as int8 (exported again and calibrated on the inputs' own crops), so
it keeps its speed; a PyTorch student comes back in PyTorch.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from pixel_utils.app.pretrained import load_pretrained, resolve_weights
from pixel_utils.app.video import VideoError, is_video, spread_frames
from pixel_utils.data.images import ImageReadError, center_crop, read_image_file, to_rgb_float
from pixel_utils.training.folder import (
    FolderAdaptation,
    LabelledPatches,
    adapt_to_folder,
    teacher_labels,
)
from pixel_utils.training.loop import load_checkpoint, model_from_checkpoint

MAX_SAMPLES = 8  # inputs (or video frames) the teacher labels
LABEL_CROP = 384  # the centre crop of each that it labels: a few seconds each on 2 CPU cores
FRAME_GAP = 30  # video frames are taken spread over the clip, at least this many apart
CALIBRATION_BATCHES = 16  # batches of the inputs' crops that set an int8 student's ranges
#: Steps come from ``--adapt``; the lr is the shipped student's own refinement lr
#: (``profiles.refine_lr``), which the probes of notebook 03's design used for it.
SETTINGS = FolderAdaptation(steps=300, lr=1e-4, patch_size=96, batch_size=8)


def samples_of(paths: list[Path], count: int = MAX_SAMPLES) -> tuple[list[np.ndarray], list[str]]:
    """Centre crops of up to ``count`` inputs, spread over the list (video: its frames), and a
    note for each input that could not be read (it is reported again when it is sharpened)."""
    chosen = [paths[int(k)] for k in np.linspace(0, len(paths) - 1, min(count, len(paths)))]
    crops, notes = [], []
    for path in dict.fromkeys(chosen):  # a short list repeats nothing
        try:
            if is_video(path):
                frames = spread_frames(path, max(1, count // len(chosen)), FRAME_GAP)
                images = [to_rgb_float(frame) for frame in frames]
            else:
                images = [read_image_file(path).rgb]
        except (ImageReadError, VideoError, OSError) as err:
            notes.append(f"{path}: not used to adapt ({err})")
            continue
        crops += [np.ascontiguousarray(center_crop(im, LABEL_CROP)) for im in images]
    return crops[:count], notes


def adapt_served_model(
    model_name: str, model: torch.nn.Module, samples: list[np.ndarray], steps: int, device,
    workdir: Path,
) -> torch.nn.Module:  # fmt: skip
    """The student ``model_name`` fine-tuned ``steps`` steps on the teacher's outputs for
    ``samples``, in the form ``model`` was served in (int8 ONNX written under ``workdir``, which
    must outlive the returned model's use)."""
    from pixel_utils.app.onnx_export import OnnxModel, export_onnx, quantize_int8

    if not samples:
        raise ValueError("--adapt: none of the inputs could be read to adapt the student")
    onnx = isinstance(model, OnnxModel)
    source = resolve_weights("student-fp32" if model_name == "student" else model_name)
    if source.suffix != ".pt":
        raise ValueError(f"--adapt: {source} is not a PyTorch checkpoint to fine-tune; "
                         "use --model student, student-fp32 or a .pt file")  # fmt: skip
    ckpt = load_checkpoint(source)
    if ckpt["model_name"] == "nafnet":
        raise ValueError("--adapt fine-tunes a student on the teacher's outputs; "
                         f"{source} is a teacher")  # fmt: skip
    stride = int(getattr(model, "stride", 1))
    settings = replace(SETTINGS, steps=steps,
                       patch_size=-(-SETTINGS.patch_size // stride) * stride)  # fmt: skip
    print(f"adapting the student to {len(samples)} crop(s) of the inputs: the teacher labels "
          f"them, then {steps} steps of fine-tuning", file=sys.stderr)  # fmt: skip
    teacher = load_pretrained("teacher", device=device)
    labels = teacher_labels(teacher, samples)
    state = model_from_checkpoint(source).float().state_dict()  # the weights it serves
    adapted = adapt_to_folder(ckpt["model_name"], ckpt["model_kwargs"], state, samples, labels,
                              settings, device=device).model  # fmt: skip
    if not onnx:
        return adapted.float()
    crops = LabelledPatches(samples, labels, settings, CALIBRATION_BATCHES, seed=1)
    fp32, _ = export_onnx(adapted.cpu(), workdir / "adapted_student.onnx")
    int8 = quantize_int8(fp32, workdir / "adapted_student_int8.onnx",
                         [crops[i][0].numpy() for i in range(len(crops))])  # fmt: skip
    return OnnxModel(int8, engine=model.engine)
