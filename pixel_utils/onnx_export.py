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
