"""Quantisation-aware fine-tuning rounds the way the served int8 graph does."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from pixel_utils.app.onnx_export import OnnxModel, export_onnx, quantize_int8
from pixel_utils.data.datasets import PatchPairDataset
from pixel_utils.data.sources import dead_leaves
from pixel_utils.models.networks import build_model
from pixel_utils.training.quantisation import (
    WEIGHT_STEPS,
    FakeQuantisedWeight,
    make_quantisation_aware,
    plain_state_dict,
    rounding_from_onnx,
)

KWARGS = {"scale": 4, "channels": 8, "blocks": 2, "inner_blocks": 1}


def _served(tmp_path):
    torch.manual_seed(0)
    model = build_model("unshuffle", **KWARGS).eval()
    images = [dead_leaves(np.random.default_rng(i), size=96) for i in range(2)]
    ds = PatchPairDataset(images, 48, 4, 6, seed=0)
    fp32, _ = export_onnx(model, tmp_path / "s.onnx")
    int8 = quantize_int8(fp32, tmp_path / "s_int8.onnx", [ds[i][0].numpy() for i in range(4)])
    return model, int8, ds[5][0]


def test_weights_are_rounded_per_channel_onto_the_served_grid():
    weight = torch.randn(4, 3, 3, 3) * torch.tensor([1.0, 0.1, 3.0, 0.01]).view(4, 1, 1, 1)
    rounded = FakeQuantisedWeight()(weight)
    scale = weight.abs().amax(dim=(1, 2, 3), keepdim=True) / WEIGHT_STEPS
    steps = rounded / scale
    assert torch.allclose(steps, steps.round(), atol=1e-3)
    assert steps.abs().max() <= WEIGHT_STEPS + 1e-3
    assert torch.allclose(rounded.abs().amax(dim=(1, 2, 3)), weight.abs().amax(dim=(1, 2, 3)))
    assert 0 < (rounded - weight).abs().max() <= scale.max() / 2 + 1e-6
    # Straight-through: the gradient reaches the stored weights.
    weight.requires_grad_(True)
    FakeQuantisedWeight()(weight).sum().backward()
    assert torch.equal(weight.grad, torch.ones_like(weight))


def test_the_rounding_table_covers_every_trained_conv(tmp_path):
    model, int8, _ = _served(tmp_path)
    table = rounding_from_onnx(int8)
    convs = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}
    assert set(table) == convs
    for name, grids in table.items():
        scale, zero = grids["in"]
        assert scale > 0 and 0 <= zero <= 255, name
    # A ReLU fused into conv1 gives its output a grid that starts at 0.
    assert table["blocks.0.conv1"]["out"][1] == 0


def test_the_quantisation_aware_model_matches_the_served_graph(tmp_path):
    """On the shipped student, the rounded PyTorch forward pass is far closer to onnxruntime's
    int8 output than the float model is: it simulates the served rounding, not other noise."""
    from pixel_utils.app.pretrained import shipped_path
    from pixel_utils.training.loop import model_from_checkpoint

    model = model_from_checkpoint(shipped_path("student"))
    images = [dead_leaves(np.random.default_rng(i), size=128) for i in range(2)]
    ds = PatchPairDataset(images, 64, 4, 5, seed=0)
    fp32, _ = export_onnx(model, tmp_path / "s.onnx")
    int8 = quantize_int8(fp32, tmp_path / "s_int8.onnx", [ds[i][0].numpy() for i in range(4)])
    aware = model_from_checkpoint(shipped_path("student"))
    make_quantisation_aware(aware, rounding_from_onnx(int8))
    x = ds[4][0]
    with torch.no_grad():
        float_error = (model(x) - OnnxModel(int8)(x)).pow(2).mean()
        aware_error = (aware(x) - OnnxModel(int8)(x)).pow(2).mean()
    assert float_error > 0
    # (Independent noise of the same size would double the error; 0.3–0.5 was measured.)
    assert aware_error < 0.7 * float_error
    # Its state loads into the plain network under the usual names.
    plain = model_from_checkpoint(shipped_path("student"))
    plain.load_state_dict(plain_state_dict(aware.state_dict()))
    assert torch.equal(plain.entry.weight, model.entry.weight)


def test_a_graph_from_another_network_is_refused(tmp_path):
    _, int8, _ = _served(tmp_path)
    other = build_model("unshuffle", scale=4, channels=8, blocks=1)
    with pytest.raises(ValueError, match="lacks"):
        make_quantisation_aware(other, rounding_from_onnx(int8))


def test_the_served_int8_model_is_remade_when_its_graph_code_or_calibration_changes(
    tmp_path, monkeypatch
):
    """The same weights export to another graph when a network's forward pass changes (the
    third level's crop did), and calibrate to other ranges on another seed's patches: the int8
    model beside a checkpoint is reused only while the checkpoint, the network and exporter
    sources and the calibration patches' seed and data are those it was made from."""
    from pixel_utils.app import onnx_export
    from pixel_utils.models import networks
    from pixel_utils.profiles import PROFILES
    from pixel_utils.training import stages
    from pixel_utils.training.loop import TrainResult

    made = []

    def fake_export(model, path):
        path.write_bytes(b"fp32")
        return path, 0.0

    def fake_quantize(fp32, int8, calibration):
        made.append(int8)
        int8.write_bytes(b"int8")
        return int8

    monkeypatch.setattr(onnx_export, "export_onnx", fake_export)
    monkeypatch.setattr(onnx_export, "quantize_int8", fake_quantize)
    monkeypatch.setattr(stages, "int8_calibration_batches", lambda profile: [])
    checkpoint = tmp_path / "student.pt"
    checkpoint.write_bytes(b"weights")
    student = TrainResult(build_model("unshuffle", **KWARGS), {}, 0, 0.0, False, checkpoint)
    profile = PROFILES["smoke"]

    first = stages.served_student(profile, student)
    assert stages.served_student(profile, student) == first and len(made) == 1  # reused
    edited = tmp_path / "networks.py"
    edited.write_text(Path(networks.__file__).read_text() + "\n# a changed forward pass\n")
    monkeypatch.setattr(networks, "__file__", str(edited))
    assert stages.served_student(profile, student) == first and len(made) == 2  # remade
    reseeded = dataclasses.replace(profile, seed=profile.seed + 1)  # other calibration patches
    assert stages.served_student(reseeded, student) == first and len(made) == 3  # remade
    assert stages.served_student(reseeded, student) == first and len(made) == 3  # reused
    with pytest.raises(stages.ArtefactMissing):  # evaluation only loads: it never remakes one
        monkeypatch.setattr(networks, "__file__", str(checkpoint))
        stages.served_student(profile, student, load_only=True)


def test_a_quantisation_aware_run_of_another_seed_writes_its_own_checkpoint(tmp_path, monkeypatch):
    """The int8 fine-tuning of one source under two seeds gives two checkpoints: another seed's
    run must not overwrite (or be reused as) the profile seed's."""
    from pixel_utils.profiles import PROFILES
    from pixel_utils.training import quantisation, stages
    from pixel_utils.training.loop import TrainResult

    written = []

    def fake_train(name, kwargs, data, config, checkpoint, **options):
        written.append((checkpoint.name, config.seed))
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        checkpoint.write_bytes(b"fine-tuned")
        return TrainResult(build_model(name, **kwargs), {}, 1, 0.0, False, checkpoint)

    monkeypatch.setattr(stages, "train", fake_train)
    monkeypatch.setattr(stages, "served_student", lambda profile, student: student.checkpoint)
    monkeypatch.setattr(quantisation, "rounding_from_onnx", lambda path: {})
    monkeypatch.setattr(stages, "model_from_checkpoint", lambda path: build_model("unshuffle"))
    monkeypatch.setenv("PIXEL_ROOT", str(tmp_path))
    source_path = tmp_path / "student_scratch_grown.pt"
    source_path.write_bytes(b"distilled")
    source = TrainResult(build_model("unshuffle"), {}, 1, 0.0, False, source_path)
    setup = stages.DistillSetup(None, [], tmp_path / "cache", {})
    profile = PROFILES["smoke"]

    for seed in (profile.seed, profile.seed + 1, profile.seed + 2):
        stages.train_student(profile, setup, distill=False, seed=seed,
                             quantisation_aware_from=source)  # fmt: skip
    names = [name for name, _ in written]
    assert [seed for _, seed in written] == [profile.seed, profile.seed + 1, profile.seed + 2]
    assert names[0] == "student_scratch_grown_qat.pt"
    assert names[1:] == [f"student_scratch_grown_qat_s{profile.seed + s}.pt" for s in (1, 2)]
