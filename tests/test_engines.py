"""The two engines that run the exported int8 student: onnxruntime and OpenVINO."""

import numpy as np
import pytest
import torch

from pixel_utils.app import openvino_engine
from pixel_utils.app.onnx_export import FrameModel, OnnxModel, export_onnx, quantize_int8
from pixel_utils.data.datasets import PatchPairDataset
from pixel_utils.data.sources import dead_leaves
from pixel_utils.models.networks import build_model

needs_openvino = pytest.mark.skipif(
    not openvino_engine.openvino_available(), reason="openvino is not installed"
)


@pytest.fixture(scope="module")
def int8_student(tmp_path_factory):
    """A small trained-shape student exported and quantised as the shipped one is, with its
    fp32 PyTorch model and a patch to run."""
    tmp = tmp_path_factory.mktemp("engines")
    torch.manual_seed(0)
    model = build_model("unshuffle", scale=4, channels=8, blocks=1).eval()
    fp32, _ = export_onnx(model, tmp / "s.onnx")
    images = [dead_leaves(np.random.default_rng(i), size=64) for i in range(2)]
    ds = PatchPairDataset(images, 32, 4, 4, seed=0)
    int8 = quantize_int8(fp32, tmp / "s_int8.onnx", [ds[i][0].numpy() for i in range(4)])
    return model, int8


def test_amx_is_read_from_the_cpu_flags():
    from pixel_utils.provenance import cpu_model

    flags = "processor\t: 0\nmodel name\t: Xeon\nflags\t\t: fpu avx512_vnni {}\n"
    assert cpu_model(flags.format("amx_int8")) == {
        "cpu_model": "Xeon", "int8_vnni": True, "int8_amx": True
    }  # fmt: skip
    assert cpu_model(flags.format("amx_tile"))["int8_amx"] is False
    assert cpu_model("model name\t: Apple M2\n")["int8_amx"] is False


def test_served_engine_follows_the_cpu_and_the_environment(monkeypatch):
    monkeypatch.delenv(openvino_engine.ENGINE_VARIABLE, raising=False)
    monkeypatch.setattr(openvino_engine, "openvino_available", lambda: True)
    monkeypatch.setattr(openvino_engine.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(openvino_engine, "has_amx_int8", lambda: True)
    assert openvino_engine.served_engine() == "openvino"
    monkeypatch.setattr(openvino_engine, "has_amx_int8", lambda: False)
    assert openvino_engine.served_engine() == "onnxruntime"  # measured faster without AMX
    monkeypatch.setenv(openvino_engine.ENGINE_VARIABLE, "OpenVINO")
    assert openvino_engine.served_engine() == "openvino"
    monkeypatch.setenv(openvino_engine.ENGINE_VARIABLE, "onnxruntime")
    assert openvino_engine.served_engine() == "onnxruntime"
    monkeypatch.setenv(openvino_engine.ENGINE_VARIABLE, "tensorrt")
    with pytest.raises(ValueError, match=r"\$PIXEL_ENGINE: unknown engine 'tensorrt'"):
        openvino_engine.served_engine()
    monkeypatch.delenv(openvino_engine.ENGINE_VARIABLE)
    monkeypatch.setattr(openvino_engine, "has_amx_int8", lambda: True)
    monkeypatch.setattr(openvino_engine, "openvino_available", lambda: False)
    assert openvino_engine.served_engine() == "onnxruntime"  # nothing else to serve with
    monkeypatch.setenv(openvino_engine.ENGINE_VARIABLE, "openvino")
    with pytest.raises(ValueError, match="openvino is not installed"):
        openvino_engine.served_engine()


def test_unknown_engine_is_refused_by_name(int8_student):
    with pytest.raises(ValueError, match="unknown engine 'cuda'"):
        OnnxModel(int8_student[1], engine="cuda")


@needs_openvino
def test_openvino_runs_the_int8_graph_as_onnxruntime_does(int8_student):
    """Both engines serve the same quantised graph: on a patch off the stride grid they agree
    to within a few 8-bit steps and both stay close to the fp32 network, which they differ
    from (this is int8, not the fp32 model under another name)."""
    model, int8 = int8_student
    x = torch.rand(1, 3, 37, 53, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = model(x)
    by_ort = OnnxModel(int8, engine="onnxruntime")(x)
    served = OnnxModel(int8, engine="openvino")
    by_ov = served(x)
    assert by_ov.shape == x.shape and by_ov.dtype == torch.float32
    assert served.stride == 4 and served.engine == "openvino"
    assert (by_ov - by_ort).abs().max() < 4 / 255
    residual = (reference - x).abs().mean()
    for out in (by_ort, by_ov):
        assert (out - reference).abs().mean() < 0.1 * residual
    assert (by_ov - reference).abs().max() > 1e-5


@needs_openvino
def test_openvino_frames_are_bytes_close_to_onnxruntimes(int8_student):
    _, int8 = int8_student
    frame = np.random.default_rng(2).integers(0, 256, (30, 45, 3), dtype=np.uint8)
    by_ort = FrameModel(int8, engine="onnxruntime")(frame)
    by_ov = FrameModel(int8, engine="openvino", spin=False)(frame)
    assert by_ov.shape == frame.shape and by_ov.dtype == np.uint8
    assert np.abs(by_ov.astype(int) - by_ort).max() <= 3


@needs_openvino
def test_openvino_keeps_a_few_compiled_shapes(int8_student):
    runner = openvino_engine.OpenVinoRunner(int8_student[1], threads=1)
    sizes = [(8 * k, 8) for k in range(1, openvino_engine.SHAPES_KEPT + 3)]
    outputs = [runner.run(np.zeros((1, 3, h, w), np.float32)) for h, w in sizes]
    assert [o.shape[2:] for o in outputs] == sizes
    assert len(runner._compiled) == openvino_engine.SHAPES_KEPT
    again = runner.run(np.zeros((1, 3, *sizes[-1]), np.float32))
    np.testing.assert_array_equal(again, outputs[-1])  # a fresh array, not the engine's buffer
    again[:] = 7
    assert not np.array_equal(runner.run(np.zeros((1, 3, *sizes[-1]), np.float32)), again)


@needs_openvino
def test_openvino_adds_the_image_outside_its_graph(int8_student):
    """The float path hands OpenVINO the graph without its last addition (image + correction)
    and adds the image itself: the same sums as the whole graph on OpenVINO, to float32's
    last bits."""
    import onnx

    from pixel_utils.app.onnx_export import _without_residual_addition

    _, int8 = int8_student
    graph, split = _without_residual_addition(onnx.load(str(int8)))
    assert split
    assert onnx.load_from_string(graph).graph.node[-1].op_type != "Add"
    x = np.random.default_rng(3).random((1, 3, 32, 48), dtype=np.float32)
    whole = openvino_engine.OpenVinoRunner(int8).run(x)
    served = OnnxModel(int8, engine="openvino").run_array(x)
    np.testing.assert_allclose(served, whole, atol=1e-6)
    assert np.abs(served - x).max() > 1e-3  # the correction is there


def test_frame_latency_times_the_frame_path(int8_student):
    from pixel_utils.app.onnx_export import frame_latency

    seconds = frame_latency(int8_student[1], 16, 24, threads=1, min_run_time=0.01)
    assert 0 < seconds < 1
