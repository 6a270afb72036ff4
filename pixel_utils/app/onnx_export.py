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
    import copy

    from pixel_utils.models.networks import fuse_reparameterised

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Re-parameterised branches are fused first, so the served graph has one conv per layer.
    model = fuse_reparameterised(copy.deepcopy(model).cpu().eval())
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
    _set_stride(path, getattr(model, "stride", 1))
    x = torch.rand(1, 3, *check_size)  # off the stride's grid: OnnxModel pads, as served
    with torch.no_grad():
        expected = model(x).numpy()
    got = OnnxModel(path)(x).numpy()
    return path, float(np.abs(got - expected).max())


def _set_stride(path: Path, stride: int) -> None:
    """Record the model's stride in the ONNX metadata: the graph takes H, W on that grid."""
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = "stride", str(int(stride))
    onnx.save(model, str(path))


def onnx_stride(path: str | os.PathLike) -> int:
    """The stride an exported model's input sizes must be multiples of (1 if unrecorded)."""
    import onnx

    meta = {entry.key: entry.value for entry in onnx.load(str(path)).metadata_props}
    return int(meta.get("stride", 1))


def onnx_session(
    graph: str | os.PathLike | bytes, threads: int | None = None, spin: bool = True,
    channels_last: bool = True, profile_prefix: str | None = None,
):  # fmt: skip
    """An onnxruntime CPU session of a graph (a file, or its serialised bytes). ``spin=False``
    stops its idle threads from spin-waiting between runs: slightly slower for one image, much
    faster when other threads (a video decoder and encoder) need the same cores.

    The session runs the graph with its pixel-shuffles and its 8-bit pixel-unshuffle rewritten
    for onnxruntime's channels-last convolutions
    (:func:`~pixel_utils.app.onnx_layout.channels_last_shuffles`,
    :func:`~pixel_utils.app.onnx_layout.channels_last_unshuffle`), and its shapes read from
    8-bit tensors (:func:`~pixel_utils.app.onnx_layout.shapes_before_dequantising`): the same
    numbers, bit for bit; the shuffles' rewrite alone made the shipped int8 student about 12%
    faster at 720p and 1080p (2-core AVX2 EPYC, 7 rounds in alternation). The file itself is
    left as it is.
    ``channels_last=False`` runs the graph as given; ``profile_prefix`` turns on onnxruntime's
    profiler (both for :mod:`pixel_utils.evaluation.onnx_profile`).
    """
    import onnx
    import onnxruntime as ort

    from pixel_utils.app.onnx_layout import (
        channels_last_shuffles,
        channels_last_unshuffle,
        shapes_before_dequantising,
    )

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile_prefix:
        options.enable_profiling, options.profile_file_prefix = True, profile_prefix
    model = onnx.load_from_string(graph) if isinstance(graph, bytes) else onnx.load(str(graph))
    if channels_last:
        model = channels_last_unshuffle(channels_last_shuffles(model))
        model = shapes_before_dequantising(model)
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


class OnnxModel(torch.nn.Module):
    """An exported model run by onnxruntime (or OpenVINO, ``engine="openvino"``: see
    :mod:`~pixel_utils.app.openvino_engine`), usable wherever a PyTorch model is (CPU).

    The graph takes sizes on the model's stride grid (recorded in its metadata); other sizes
    are padded here the way the PyTorch model pads them, and the output cropped back.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None, spin: bool = True,
                 engine: str = "onnxruntime"):  # fmt: skip
        super().__init__()
        from pixel_utils.app.openvino_engine import OpenVinoRunner, check_engine

        check_engine(engine)
        self.path = Path(path)
        self.threads, self.spin, self.engine = threads, spin, engine
        if engine == "openvino":
            import onnx

            graph, self._adds_input = _without_residual_addition(onnx.load(str(path)))
            self.session = None
            self.runner = OpenVinoRunner(graph, threads, pinned=spin)
            self.stride = onnx_stride(path)
        else:
            self.session = onnx_session(path, threads, spin)
            meta = self.session.get_modelmeta().custom_metadata_map
            self.stride = int(meta.get("stride", 1))
        self._device_anchor = torch.nn.Parameter(torch.zeros(()), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from pixel_utils.models.networks import pad_to_stride

        h, w = x.shape[-2:]
        padded = pad_to_stride(x.detach().cpu().float(), self.stride)
        return torch.from_numpy(self.run_array(padded.numpy()))[..., :h, :w]

    def run_array(self, x: np.ndarray) -> np.ndarray:
        """The graph on an N×3×H×W float32 array whose H, W are on the stride grid (no torch
        in the way: what the video path calls per frame)."""
        x = np.ascontiguousarray(x, np.float32)
        if self.session is None:
            y = self.runner.run(x)
            if self._adds_input:
                y += x
            return y
        return self.session.run(None, {"image": x})[0]


def _without_residual_addition(model) -> tuple[bytes, bool]:
    """``model`` serialised without its last node where that adds the input image to a
    correction (``y = image + r``): ``(graph of r, True)``; otherwise ``(graph, False)``.

    Why, for OpenVINO: it runs the int8 layers channels-last, so the float addition at the
    end made it transpose the whole float image in and the float result back out, about a
    sixth of a 720p image's time in its profile; numpy adds the image in the caller's layout
    instead (the same float32 sum, up to the last bit where OpenVINO fuses the dequantisation
    into it).
    """
    graph = model.graph
    image, output = graph.input[0].name, graph.output[0].name
    last = next((n for n in graph.node if output in n.output), None)
    if last is None or last.op_type != "Add" or list(last.input).count(image) != 1:
        return model.SerializeToString(), False
    correction = next(name for name in last.input if name != image)
    if any(correction == o.name for o in graph.input):
        return model.SerializeToString(), False  # input + input: nothing computed to keep
    graph.node.remove(last)
    graph.output[0].name = correction
    return model.SerializeToString(), True


def eight_bit_graph(path: str | os.PathLike) -> bytes:
    """The exported model at ``path`` wrapped to take and give 8-bit frames: ``frame`` and
    ``sharpened_frame`` are N×H×W×3 uint8 (H, W on the stride grid), serialised for
    :func:`onnx_session`. Its bytes are those of the float graph between numpy conversions
    (``frame / 255`` in, ``round(255 · clamp(y, 0, 1))`` out).

    For an int8 graph whose ends allow it (:func:`_integer_ends`), the frame's bytes go
    straight into the first quantised layer and the residual addition is one 8-bit addition;
    otherwise the wrapper runs the float path's own steps: uint8 → float32 ÷ 255 in front (a
    Cast and a Div: the DequantizeLinear shortcut is one ulp off for some levels); behind,
    × 255 then QuantizeLinear with scale 1, which rounds half to even and saturates to 0–255,
    the same as clamping to [0, 1] first. Why: on a 2-core CPU the layout and type
    conversions around a 720p frame cost numpy about 10 ms, a seventh of the int8 student
    itself, and inside the float graph they still cost a quarter of it.
    """
    import onnx

    from pixel_utils.app.onnx_layout import channels_last_shuffles

    integer = _integer_ends(channels_last_shuffles(onnx.load(str(path))))
    if integer is not None:
        return integer
    return _float_ends(onnx.load(str(path)))


def _float_ends(model) -> bytes:
    """:func:`eight_bit_graph` through float: the float graph's steps around ``model``."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    image, output = graph.input[0].name, graph.output[0].name
    for node in graph.node:  # the float output becomes an inner tensor
        node.output[:] = [f"{output}_float" if name == output else name for name in node.output]
    constants = {
        "frame_levels": np.array(255, np.float32),
        "frame_unit_scale": np.array(1, np.float32),
        "frame_zero_point": np.array(0, np.uint8),
    }
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in constants.items())
    front = [
        helper.make_node("Transpose", ["frame"], ["frame_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Cast", ["frame_nchw"], ["frame_float"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["frame_float", "frame_levels"], [image]),
    ]
    back = [
        helper.make_node("Mul", [f"{output}_float", "frame_levels"], [f"{output}_levels"]),
        helper.make_node("QuantizeLinear", [f"{output}_levels", "frame_unit_scale",
                                            "frame_zero_point"], [f"{output}_8bit"]),
        helper.make_node("Transpose", [f"{output}_8bit"], ["sharpened_frame"], perm=[0, 2, 3, 1]),
    ]  # fmt: skip
    return _frame_io(model, front + list(graph.node) + back)


def _frame_io(model, nodes: list) -> bytes:
    """``model`` with ``nodes`` and 8-bit ``frame`` → ``sharpened_frame`` as its interface."""
    import onnx
    from onnx import TensorProto, helper

    graph = model.graph
    del graph.node[:], graph.input[:], graph.output[:], graph.value_info[:]
    graph.node.extend(nodes)
    dims = ["batch", "height", "width", 3]
    graph.input.append(helper.make_tensor_value_info("frame", TensorProto.UINT8, dims))
    graph.output.append(helper.make_tensor_value_info("sharpened_frame", TensorProto.UINT8, dims))
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _integer_ends(model) -> bytes | None:
    """:func:`eight_bit_graph` without float at the ends, or None where ``model`` (an int8
    graph, its shuffles already moved onto 8-bit values) does not compute the same bytes so.

    Front: the graph quantises the image once (``q = round(x / s) + z``); where that maps
    ``level / 255`` back onto ``level`` for all 256 levels, the frame's bytes *are* ``q``, so
    the Cast, Div and QuantizeLinear over the full frame go. Back: the output is
    ``image + DequantizeLinear(r)`` for an 8-bit correction ``r``; then the 8-bit frame is
    ``QLinearAdd(frame, r)`` with the frame's scale 1/255 for the sum, one pass over 8-bit
    values instead of five over floats. Both are checked here on every possible input (all
    levels; all 65,536 pairs of level and correction), by onnxruntime itself, against the
    float path's own operators: the rewrite is taken only when every byte agrees. On the
    shipped student at 720p this cuts a frame's time by about a fifth (one thread, a 2-core
    Xeon with VNNI).
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    image, output = graph.input[0].name, graph.output[0].name
    initializers = {t.name: t for t in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    readers = [n for n in graph.node if image in n.input]
    quantize = [n for n in readers if n.op_type == "QuantizeLinear"]
    add = producers.get(output)
    if len(readers) != 2 or len(quantize) != 1 or add is None or add.op_type != "Add":
        return None
    quantize, correction = quantize[0], next((i for i in add.input if i != image), None)
    dequantize = producers.get(correction)
    if dequantize is None or dequantize.op_type != "DequantizeLinear" or add.input[0] != image:
        return None
    constants = [*quantize.input[1:3], *dequantize.input[1:3]]
    if len(constants) != 4 or any(n not in initializers or initializers[n].dims
                                  for n in constants):  # fmt: skip
        return None  # per-tensor scales and zero points only
    value = {n: numpy_helper.to_array(initializers[n]) for n in constants}
    if any(value[n].dtype != np.float32 for n in constants[0::2]) or any(
        value[n].dtype != np.uint8 for n in constants[1::2]
    ):
        return None  # 8-bit unsigned image and correction, as the frame is
    try:
        exact = _levels_survive_quantisation(*(value[n] for n in quantize.input[1:3]))
        exact = exact and _eight_bit_addition_is_exact(*(value[n] for n in dequantize.input[1:3]))
    except Exception:  # noqa: BLE001 - e.g. an onnxruntime without its contrib operators
        return None
    if not exact:
        return None
    graph.initializer.extend([
        numpy_helper.from_array(np.array(1 / 255, np.float32), "frame_scale"),
        numpy_helper.from_array(np.array(0, np.uint8), "frame_zero_point"),
    ])  # fmt: skip
    kept = [n for n in graph.node if n is not quantize and n is not add]
    for node in kept:
        node.input[:] = ["frame_nchw" if n == quantize.output[0] else n for n in node.input]
    if not any(correction in n.input for n in kept if n is not dequantize):
        kept.remove(dequantize)
    front = [helper.make_node("Transpose", ["frame"], ["frame_nchw"], perm=[0, 3, 1, 2])]
    back = [
        # onnxruntime cancels this against the channels-last shuffle in front of it
        helper.make_node("Transpose", [dequantize.input[0]], ["correction_nhwc"],
                         perm=[0, 2, 3, 1]),  # fmt: skip
        helper.make_node("QLinearAdd", ["frame", "frame_scale", "frame_zero_point",
                                        "correction_nhwc", *dequantize.input[1:3],
                                        "frame_scale", "frame_zero_point"],
                         ["sharpened_frame"], domain="com.microsoft"),
    ]  # fmt: skip
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return _frame_io(model, front + kept + back)


def _run_tiny(nodes, inputs: dict, constants: dict) -> np.ndarray:
    """onnxruntime on a graph of ``nodes`` (one output, ``out``) over ``inputs``."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes, "check",
        [helper.make_tensor_value_info(k, TensorProto.UINT8, v.shape) for k, v in inputs.items()],
        [helper.make_tensor_value_info("out", TensorProto.UINT8, None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in constants.items()
         if any(k in node.input for node in nodes)],
    )  # fmt: skip
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])  # fmt: skip
    return session.run(None, inputs)[0]


def _levels_survive_quantisation(scale: np.ndarray, zero_point: np.ndarray) -> bool:
    """Whether QuantizeLinear(``scale``, ``zero_point``) of ``level / 255`` is ``level`` for
    every 8-bit level, as onnxruntime computes both."""
    from onnx import TensorProto, helper

    levels = np.arange(256, dtype=np.uint8)[None]
    got = _run_tiny(
        [helper.make_node("Cast", ["level"], ["f"], to=TensorProto.FLOAT),
         helper.make_node("Div", ["f", "levels"], ["x"]),
         helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["out"])],
        {"level": levels},
        {"levels": np.float32(255), "scale": scale, "zero": zero_point},
    )  # fmt: skip
    return zero_point.dtype == np.uint8 and np.array_equal(got, levels)


def _eight_bit_addition_is_exact(scale: np.ndarray, zero_point: np.ndarray) -> bool:
    """Whether QLinearAdd(frame, correction) gives the float path's byte for every pair of
    a frame level and an 8-bit correction (``scale``, ``zero_point``), in onnxruntime: once
    as they come, once shifted by one element (so each pair meets another lane of the vector
    code), and once with 63 more pairs at the end, where the vector code's tail runs. On x86
    onnxruntime computes that tail with the same vector code, so each byte depends on its pair
    alone and the check is exhaustive; elsewhere the tail is only spot-checked (the tests
    compare the served bytes with the float graph's on whole frames as well)."""
    from onnx import TensorProto, helper

    frame, correction = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    frame, correction = frame.astype(np.uint8).ravel(), correction.astype(np.uint8).ravel()
    constants = {"levels": np.float32(255), "unit": np.float32(1), "scale": scale,
                 "zero": zero_point, "frame_scale": np.float32(1 / 255),
                 "frame_zero": np.uint8(0)}  # fmt: skip
    float_path = [
        helper.make_node("Cast", ["a"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["f", "levels"], ["x"]),
        helper.make_node("DequantizeLinear", ["b", "scale", "zero"], ["r"]),
        helper.make_node("Add", ["x", "r"], ["y"]),
        helper.make_node("Mul", ["y", "levels"], ["z"]),
        helper.make_node("QuantizeLinear", ["z", "unit", "frame_zero"], ["out"]),
    ]
    eight_bit = [helper.make_node("QLinearAdd", ["a", "frame_scale", "frame_zero", "b", "scale",
                                                 "zero", "frame_scale", "frame_zero"], ["out"],
                                  domain="com.microsoft")]  # fmt: skip
    for shift, extra in ((0, 0), (1, 0), (0, 63)):
        a, b = np.roll(frame, shift), np.roll(correction, shift)
        spread = slice(7, None, 1031)  # pairs from all over the grid, not one frame level
        inputs = {"a": np.concatenate([a, a[spread][:extra]])[None],
                  "b": np.concatenate([b, b[spread][:extra]])[None]}  # fmt: skip
        expected = _run_tiny(float_path, inputs, constants)
        if not np.array_equal(_run_tiny(eight_bit, inputs, constants), expected):
            return False
    return True


class FrameModel:
    """An exported model on 8-bit RGB frames (H×W×3 uint8 in and out), run by onnxruntime on
    :func:`eight_bit_graph` (or, ``engine="openvino"``, by OpenVINO on the float graph's own
    steps around the model, :func:`_float_ends`: standard operators only). Sizes off the
    stride grid are padded as the PyTorch model pads them
    (:func:`~pixel_utils.models.networks.pad_image_to_stride`) and cropped back.

    ``graph`` (the wrapped bytes) may be shared, so that several sessions skip rebuilding it;
    it must be the one built for the same engine.
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None, spin: bool = True,
                 graph: bytes | None = None, engine: str = "onnxruntime"):  # fmt: skip
        import onnx

        from pixel_utils.app.openvino_engine import OpenVinoRunner, check_engine

        check_engine(engine)
        self.path, self.threads, self.engine = Path(path), threads, engine
        if engine == "openvino":
            self.graph = graph if graph is not None else _float_ends(onnx.load(str(path)))
            self.session, self.runner = None, OpenVinoRunner(self.graph, threads, pinned=spin)
            self.stride = onnx_stride(path)
        else:
            self.graph = graph if graph is not None else eight_bit_graph(path)
            self.session = onnx_session(self.graph, threads, spin)
            meta = self.session.get_modelmeta().custom_metadata_map
            self.stride = int(meta.get("stride", 1))

    def pad(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` padded at the bottom and right onto the stride grid."""
        from pixel_utils.models.networks import pad_image_to_stride

        return pad_image_to_stride(frame, self.stride)

    def run_padded(self, frame: np.ndarray) -> np.ndarray:
        """The graph on a frame already on the stride grid (:meth:`pad`)."""
        batch = np.ascontiguousarray(frame[None])
        if self.session is None:
            return self.runner.run(batch)[0]
        return self.session.run(None, {"frame": batch})[0][0]

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        return np.ascontiguousarray(self.run_padded(self.pad(frame))[:h, :w])


def served_latency(model, height: int, width: int, min_run_time: float = 1.0) -> float:
    """Median seconds per call of a served ``model`` already built: an :class:`OnnxModel` on
    one ``1×3×height×width`` float image, or a :class:`FrameModel` on one ``height×width``
    8-bit frame (what the video path runs per frame, without its decoding and encoding).
    Building a model (onnxruntime's session, OpenVINO's compilation) is not timed, so that a
    caller timing it again and again builds it once."""
    from torch.utils import benchmark

    from pixel_utils.evaluation.cost import median_seconds

    if isinstance(model, FrameModel):
        x = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    else:
        x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    timer = benchmark.Timer(stmt="model(x)", globals={"model": model, "x": x})
    return median_seconds(timer, min_run_time)  # its first call compiles OpenVINO's shape


def onnx_latency(path: str | os.PathLike, height: int, width: int, threads: int | None = None,
                 min_run_time: float = 1.0, engine: str = "onnxruntime") -> float:  # fmt: skip
    """Median seconds per served forward pass (:class:`OnnxModel` on ``engine``, plus padding
    to the stride where the size needs it) of one ``1×3×height×width`` image."""
    model = OnnxModel(path, threads or torch.get_num_threads(), engine=engine)
    return served_latency(model, height, width, min_run_time)


def frame_latency(path: str | os.PathLike, height: int, width: int, threads: int | None = None,
                  min_run_time: float = 1.0, engine: str = "onnxruntime") -> float:  # fmt: skip
    """Median seconds per served 8-bit frame (:class:`FrameModel` on ``engine``) of
    ``height×width``."""
    model = FrameModel(path, threads or torch.get_num_threads(), engine=engine)
    return served_latency(model, height, width, min_run_time)


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over a list of NCHW float arrays."""

    def __init__(self, batches):
        self._batches = iter(batches)

    def get_next(self):
        batch = next(self._batches, None)
        return None if batch is None else {"image": np.ascontiguousarray(batch, np.float32)}


def quantize_int8(
    fp32_path: str | os.PathLike, int8_path: str | os.PathLike, calibration,
    percentile: float = 99.99, symmetric: bool = False,
) -> Path:  # fmt: skip
    """Static int8 quantisation (QDQ: int8 per-channel weights, uint8 activations) of an
    exported model, with activation ranges calibrated on ``calibration``: NCHW float32 batches
    of real degraded training patches (random inputs give wrong ranges).

    Weights use 7 of their 8 bits (``reduce_range``): without VNNI (AVX2-only CPUs) the int8
    convolution's 16-bit intermediate sums saturate on full-range weights, which measured
    4.7× the rounding error of 7-bit weights on an AMD EPYC (AVX2); with VNNI it costs little.

    Activation ranges are onnxruntime's 0.01st–99.99th percentiles of the calibration values,
    not their extremes (MinMax): a few outliers then no longer stretch every step of a layer's
    8-bit scale. They are asymmetric (``symmetric=False``): onnxruntime's percentile default is
    a range symmetric about 0, which spends half the 256 levels of a mostly positive residual
    tensor on values it never takes; on the shipped student asymmetric ranges cut the int8 loss
    on held-out training patches from 0.077 to 0.066 dB (mean over the five blur families).
    Percentiles against MinMax (an earlier student): the int8 loss on validation photos fell
    from 0.025 to 0.018 dB, and on the test photos' headline case from 0.13 to 0.09 dB; a
    tighter 99.9th percentile scored better on validation but clipped the strong corrections
    that large blur needs (its headline loss was 0.18 dB), so it was not taken.

    The final residual addition (input + predicted correction) and the input's path into it
    stay in float: quantising the image itself to 8 bits would cost more than all the rest
    together, and would drop a 16-bit photo's precision.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
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

    # The residual Add feeds the output. Keep it (and the input's path into it, if any) in
    # float, so the image itself is never rounded to 8 bits: only the predicted correction is
    # computed in int8. The operand that holds the network (any Conv on its path) is quantised.
    exclude = []
    for node in chain(graph.output[0].name):
        exclude.append(node.name)
        if node.op_type == "Add":
            for operand in node.input:
                path = chain(operand)
                if path and path[-1].input[0] == image and all(n.op_type != "Conv" for n in path):
                    exclude += [n.name for n in path]
            break
    quantize_static(
        str(prepared), str(int8_path), _Calibration(calibration),
        quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
        nodes_to_exclude=exclude, calibrate_method=CalibrationMethod.Percentile,
        extra_options={"CalibPercentile": percentile, "CalibTensorRangeSymmetric": symmetric},
    )  # fmt: skip
    prepared.unlink(missing_ok=True)
    _float_image_into(int8_path, exclude)
    _set_stride(int8_path, onnx_stride(fp32_path))
    return int8_path


def _float_image_into(path: Path, node_names: list[str]) -> None:
    """Feed the float input image, not its 8-bit round trip, to the nodes kept in float.

    The quantiser puts one Quantize/Dequantize pair on a graph input that a quantised node
    reads (the first conv) and rewires *every* reader to the dequantised copy, including the
    residual Add we excluded; this undoes that for the excluded nodes."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    image = graph.input[0].name
    quantized = {n.output[0] for n in graph.node
                 if n.op_type == "QuantizeLinear" and n.input[0] == image}  # fmt: skip
    rounded = {n.output[0] for n in graph.node
               if n.op_type == "DequantizeLinear" and n.input[0] in quantized}  # fmt: skip
    keep = set(node_names)
    for node in graph.node:
        if node.name in keep:
            for i, name in enumerate(node.input):
                if name in rounded:
                    node.input[i] = image
    onnx.save(model, str(path))
