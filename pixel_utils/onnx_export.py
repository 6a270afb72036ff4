"""ONNX export with dynamic height and width, checked against PyTorch with onnxruntime."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch


def export_onnx(model: torch.nn.Module, path: str | os.PathLike, check_size=(67, 93)) -> tuple:
    """Write ``model`` to ``path`` (input ``image``: N×3×H×W, any H, W) and return
    ``(path, max_abs_diff)`` between onnxruntime and PyTorch on a random image."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    example = torch.rand(1, 3, 64, 96)
    with warnings.catch_warnings():
        # The tracer notes Python-level branches (padding mode); both depend only on shapes.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # The TorchScript exporter is deprecated in favour of torch.export, which needs the
        # extra onnxscript package; this one handles our dynamic H×W and is checked below.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model, (example,), str(path), input_names=["image"], output_names=["sharpened"],
            dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                          "sharpened": {0: "batch", 2: "height", 3: "width"}},
            opset_version=17, dynamo=False,
        )  # fmt: skip
    x = torch.rand(1, 3, *check_size)
    with torch.no_grad():
        expected = model(x).numpy()
    got = onnx_session(path).run(None, {"image": x.numpy()})[0]
    return path, float(np.abs(got - expected).max())


def onnx_session(path: str | os.PathLike, threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxModel(torch.nn.Module):
    """An exported model run by onnxruntime, usable wherever a PyTorch model is (CPU)."""

    stride = 8  # a multiple of every model's stride, so tiles stay on the model's grid

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        super().__init__()
        self.path = Path(path)
        self.session = onnx_session(path, threads)
        self._device_anchor = torch.nn.Parameter(torch.zeros(()), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {"image": x.detach().cpu().numpy().astype(np.float32)})[0]
        return torch.from_numpy(out)


def onnx_latency(path: str | os.PathLike, height: int, width: int, threads: int | None = None,
                 min_run_time: float = 1.0) -> float:  # fmt: skip
    """Median seconds per onnxruntime forward pass of one ``1×3×height×width`` image."""
    from torch.utils import benchmark

    session = onnx_session(path, threads or torch.get_num_threads())
    feed = {"image": np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)}
    session.run(None, feed)  # warm-up
    timer = benchmark.Timer(
        stmt="session.run(None, feed)", globals={"session": session, "feed": feed}
    )
    return timer.blocked_autorange(min_run_time=min_run_time).median


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over a list of NCHW float arrays."""

    def __init__(self, batches):
        self._batches = iter(batches)

    def get_next(self):
        batch = next(self._batches, None)
        return None if batch is None else {"image": np.ascontiguousarray(batch, np.float32)}


def quantize_int8(fp32_path: str | os.PathLike, int8_path: str | os.PathLike, calibration) -> Path:
    """Static int8 quantisation (QDQ: int8 per-channel weights, uint8 activations) of an
    exported model, with activation ranges calibrated on ``calibration``: NCHW float32 batches
    of real degraded training patches (random inputs give wrong ranges).

    The final residual addition (input + predicted correction) and the input's path into it
    stay in float: quantising the image itself to 8 bits would cost more than all the rest
    together, and would drop a 16-bit photo's precision.
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    prepared = int8_path.with_name(f".{int8_path.stem}.prepared.onnx")
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    graph = onnx.load(str(prepared)).graph
    producers = {o: n for n in graph.node for o in n.output}
    image = graph.input[0].name

    def chain(name: str) -> list:
        """The nodes from ``name`` back along first inputs (stops at the graph input)."""
        nodes = []
        while name in producers:
            nodes.append(producers[name])
            name = producers[name].input[0]
        return nodes

    # The residual Add feeds the output (through the crop's Slice ops). Keep it, the crop after
    # it and the input's path into it (the stride padding) in float, so the image itself is
    # never rounded to 8 bits: only the predicted correction is computed in int8.
    exclude = []
    for node in chain(graph.output[0].name):
        exclude.append(node.name)
        if node.op_type == "Add":
            for operand in node.input:
                path = chain(operand)
                if path and path[-1].input[0] == image:
                    exclude += [n.name for n in path]
            break
    quantize_static(
        str(prepared), str(int8_path), _Calibration(calibration),
        quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=exclude,
    )  # fmt: skip
    prepared.unlink(missing_ok=True)
    return int8_path
