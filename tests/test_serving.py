"""The served student: ONNX, statically quantised to int8 with calibration on real patches."""

import numpy as np
import torch

from pixel_utils.app.onnx_export import OnnxModel, export_onnx, quantize_int8
from pixel_utils.data.datasets import PatchPairDataset
from pixel_utils.data.sources import dead_leaves
from pixel_utils.models.networks import build_model


def test_int8_student_stays_close_to_fp32(tmp_path):
    torch.manual_seed(0)
    model = build_model("unshuffle", scale=4, channels=8, blocks=1).eval()
    fp32, diff = export_onnx(model, tmp_path / "s.onnx")
    assert diff < 1e-4
    images = [dead_leaves(np.random.default_rng(i), size=64) for i in range(2)]
    ds = PatchPairDataset(images, 32, 4, 4, seed=0)
    int8 = quantize_int8(fp32, tmp_path / "s_int8.onnx", [ds[i][0].numpy() for i in range(4)])
    assert int8.stat().st_size < fp32.stat().st_size  # int8 weights
    x = ds[0][0][:1]
    with torch.no_grad():
        reference = model(x)
    served = OnnxModel(int8)(x)
    error = (served - reference).abs()
    residual = (reference - x).abs()
    assert residual.mean() > 1e-3  # the student does change the image
    assert error.mean() < 0.05 * residual.mean()
    # Quantisation does change the numbers (this is not the fp32 model under another name).
    assert error.max() > 1e-5
    # The residual addition stays in float: a zero residual gives the input back exactly
    # (an 8-bit output would round it to multiples of its quantisation step).
    with torch.no_grad():
        model.exit.weight.zero_()
        model.exit.bias.zero_()
    fp32_id, _ = export_onnx(model, tmp_path / "id.onnx")
    ident = quantize_int8(fp32_id, tmp_path / "id_int8.onnx", [ds[i][0].numpy() for i in range(2)])
    assert (OnnxModel(ident)(x) - x).abs().max() < 1e-6


def test_model_names_always_mean_the_same_file(tmp_path, monkeypatch):
    """The CLI's choice of weights is explicit: no modification-time races."""
    import json
    import os

    import pytest

    from pixel_utils.app import pretrained

    weights = tmp_path / "weights"
    weights.mkdir()
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", weights)
    monkeypatch.setenv("PIXEL_ROOT", str(tmp_path))
    for name in ("student.pt", "teacher.pt", "student_int8.onnx"):
        (weights / name).write_bytes(b"x")
    manifest = {"models": {"student": {"served": "student_int8.onnx"}}}
    (weights / "manifest.json").write_text(json.dumps(manifest))
    assert pretrained.resolve_weights("student") == weights / "student_int8.onnx"
    assert pretrained.resolve_weights("student-fp32") == weights / "student.pt"
    assert pretrained.resolve_weights("teacher") == weights / "teacher.pt"
    # A fresher local checkpoint changes nothing: names are not resolved by date.
    local = tmp_path / "data" / "default" / "checkpoints"
    local.mkdir(parents=True)
    (local / "student_distilled.pt").write_bytes(b"x")
    os.utime(weights / "student.pt", (0, 0))
    assert pretrained.resolve_weights("student-fp32") == weights / "student.pt"
    # When the report found int8 slower, the served student is the PyTorch one.
    manifest["models"]["student"]["served"] = "student.pt"
    (weights / "manifest.json").write_text(json.dumps(manifest))
    assert pretrained.resolve_weights("student") == weights / "student.pt"
    with pytest.raises(FileNotFoundError, match="make report"):
        pretrained.resolve_weights("report-teacher")
    with pytest.raises(FileNotFoundError, match="student-fp32"):
        pretrained.resolve_weights(str(tmp_path / "nope.pt"))
