"""OpenVINO as a second engine for the exported int8 models, and which engine serves them.

The int8 student is quantised by onnxruntime's tool (:func:`~pixel_utils.app.onnx_export.
quantize_int8`) and its ONNX file is what ships. Two engines can run that file on a CPU:

* **onnxruntime**, whose int8 convolutions use AVX-512 VNNI (or AVX2) kernels;
* **OpenVINO**, whose CPU plugin (oneDNN underneath) runs the same quantised graph with AMX
  tile instructions where the CPU has them (Intel Xeon since Sapphire Rapids) and with its own
  VNNI kernels elsewhere.

On the 2-core Xeon with AMX this project is measured on, OpenVINO served the shipped student's
8-bit video frames at 720p in 0.79× onnxruntime's time (the median of 9 per-round ratios, each
engine in its own process, in alternation; the host's speed drifted so much that single rounds
ran from 0.48× to 1.17×), but photos (float images, where it must transpose the float image
into its channels-last layout) in about the same time; it scored a little higher on the
benchmark. ``make student-speed`` records both engines, both paths, in the weights manifest.
The two round differently inside the graph, so their outputs are not the same bytes (most
pixels agree; the rest differ by one or two levels of 255).

:func:`served_engine` picks the engine ``pixel-sharpen`` and the video path use: ``$PIXEL_ENGINE``
when set, otherwise OpenVINO on an x86-64 CPU with AMX int8 where it is installed, otherwise
onnxruntime.
"""

from __future__ import annotations

import os
import platform
from collections import OrderedDict

import numpy as np

ENGINES = ("onnxruntime", "openvino")
#: How the report and the README write each engine's name.
ENGINE_WORDS = {"onnxruntime": "onnxruntime", "openvino": "OpenVINO"}
#: Environment variable that chooses the serving engine (one of :data:`ENGINES`).
ENGINE_VARIABLE = "PIXEL_ENGINE"
#: Compiled input shapes an :class:`OpenVinoRunner` keeps: a static shape compiles in about
#: 0.4 s and then runs about a third faster than one graph compiled for any shape.
SHAPES_KEPT = 4


def openvino_available() -> bool:
    """Whether the ``openvino`` package can be imported."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def has_amx_int8() -> bool:
    """Whether the CPU has AMX int8 tiles (:func:`~pixel_utils.provenance.cpu_model`, which
    reads ``/proc/cpuinfo``: False where that cannot be read)."""
    from pixel_utils.provenance import cpu_model

    return bool(cpu_model()["int8_amx"])


def served_engine() -> str:
    """The engine that serves exported models: ``$PIXEL_ENGINE`` if set (an unknown or
    unavailable one is an error that says so), else OpenVINO where it is installed and the CPU
    has AMX int8 tiles (where it was measured faster), else onnxruntime (measured on CPUs
    without AMX by every session before OpenVINO came)."""
    chosen = os.environ.get(ENGINE_VARIABLE, "").strip().lower()
    if chosen:
        check_engine(chosen, source=f"${ENGINE_VARIABLE}")
        return chosen
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    return "openvino" if x86 and has_amx_int8() and openvino_available() else "onnxruntime"


def check_engine(engine: str, source: str = "engine") -> None:
    """Raise ``ValueError`` naming ``source`` unless ``engine`` is known and installed."""
    if engine not in ENGINES:
        raise ValueError(f"{source}: unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "openvino" and not openvino_available():
        raise ValueError(f"{source}: openvino is not installed (pip install openvino)")


class OpenVinoRunner:
    """An ONNX graph (a file, or its serialised bytes) on OpenVINO's CPU plugin, compiled for
    each input shape it meets (the last :data:`SHAPES_KEPT` are kept). ``run`` takes and returns
    numpy arrays, as an onnxruntime session's ``run`` does for the graph's one input and output.

    Non-quantised operations run in float32 (OpenVINO's default on CPUs with bf16 would round
    them to bfloat16). ``pinned=False`` leaves the threads unpinned, for callers that share the
    cores with other threads (a video's decoder and encoder)."""

    def __init__(self, graph, threads: int | None = None, pinned: bool = True):
        import openvino as ov
        import torch

        self.core = ov.Core()
        source = graph if isinstance(graph, bytes) else str(graph)
        self.model = self.core.read_model(source)
        if len(self.model.inputs) != 1 or len(self.model.outputs) != 1:
            raise ValueError("OpenVinoRunner runs graphs of one input and one output")
        self.config = {
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()),
            "INFERENCE_PRECISION_HINT": "f32",
            "ENABLE_CPU_PINNING": bool(pinned),
        }
        self._compiled: OrderedDict = OrderedDict()

    def _request(self, shape: tuple):
        request = self._compiled.pop(shape, None)
        if request is None:
            model = self.model.clone()
            model.reshape({model.inputs[0].get_any_name(): list(shape)})
            request = self.core.compile_model(model, "CPU", self.config).create_infer_request()
            while len(self._compiled) >= SHAPES_KEPT:
                self._compiled.popitem(last=False)
        self._compiled[shape] = request  # most recently used last
        return request

    def run(self, x: np.ndarray) -> np.ndarray:
        """The graph on ``x`` (its input's element type and layout); a fresh output array."""
        request = self._request(tuple(x.shape))
        return np.array(request.infer({0: np.ascontiguousarray(x)})[0], copy=True)
