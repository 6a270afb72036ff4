"""Pixel-shuffles rewritten for onnxruntime's channels-last convolutions (same numbers, faster).

onnxruntime runs an int8 convolution channels-last (N×H×W×C) and converts to and from the
graph's N×C×H×W around any node it cannot run that way. ``DepthToSpace`` (the exported
:class:`torch.nn.PixelShuffle`) is one of them, and its own kernel moves one element at a
time: on the shipped student at 720p (2-core AVX2 EPYC, onnxruntime profile) its two
pixel-shuffles took 13 of 80 ms and the layout conversions around them 4 more.

:func:`channels_last_shuffles` rewrites each ``DepthToSpace`` that a ``Conv`` feeds:

* the convolution's output channels are reordered from ``(c, i, j)`` (PyTorch's CRD order)
  to ``(i, j, c)`` (its weights, their per-channel scales and zero points, and its bias), so
* the shuffle becomes Transpose → Reshape → Transpose → Reshape → Transpose in which every
  move copies runs of ``b·C`` contiguous values instead of single elements, and whose first
  and last transposes onnxruntime cancels against its own layout conversions.

In a quantised (QDQ) graph the shuffle is moved in front of the DequantizeLinear (or replaces
a DequantizeLinear → DepthToSpace → QuantizeLinear with equal scales), so it moves 8-bit
values. It only moves values, so the rewritten graph computes bit for bit what the original
does (``tests/test_onnx_layout.py``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["channels_last_shuffles"]


def channels_last_shuffles(model):
    """Rewrite ``model`` (an ``onnx.ModelProto``, changed in place and returned): every
    ``DepthToSpace`` fed by a ``Conv`` (directly, or through QuantizeLinear → DequantizeLinear)
    becomes a channels-last reshuffle; others are left as they are."""
    from onnx import NodeProto

    graph = model.graph
    nodes = []
    for node in graph.node:  # copies: the graph's own list is rebuilt at the end
        nodes.append(NodeProto())
        nodes[-1].CopyFrom(node)
    initializers = {t.name: t for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    rewritten = 0
    for shuffle in [n for n in nodes if n.op_type == "DepthToSpace"]:
        producers = {out: node for node in nodes for out in node.output}
        readers: dict[str, list] = {}
        for node in nodes:
            for name in node.input:
                readers.setdefault(name, []).append(node)

        def only_reader_of(name: str, readers=readers):
            found = readers.get(name, [])
            return found[0] if len(found) == 1 and name not in outputs else None

        block = next(a.i for a in shuffle.attribute if a.name == "blocksize")
        mode = next((a.s.decode() for a in shuffle.attribute if a.name == "mode"), "DCR")
        # Walk back: DepthToSpace ← [DequantizeLinear ← QuantizeLinear ←] Conv.
        conv, quantize, dequantize = producers.get(shuffle.input[0]), None, None
        if conv is not None and conv.op_type == "DequantizeLinear":
            dequantize, quantize = conv, producers.get(conv.input[0])
            if quantize is None or quantize.op_type != "QuantizeLinear":
                continue
            if only_reader_of(quantize.output[0]) is not dequantize:
                continue
            if only_reader_of(dequantize.output[0]) is not shuffle:
                continue
            conv = producers.get(quantize.input[0])
        if conv is None or conv.op_type != "Conv" or only_reader_of(conv.output[0]) is None:
            continue
        constants = _output_channel_constants(conv, producers, readers, initializers)
        if constants is None:
            continue
        channels = constants[0][1] // block**2
        # New channel k = (i·b + j)·C + c holds the old channel of that (c, i, j).
        c, i, j = np.meshgrid(np.arange(channels), np.arange(block), np.arange(block),
                              indexing="ij")  # fmt: skip
        old = c * block**2 + i * block + j if mode == "CRD" else (i * block + j) * channels + c
        order = old.transpose(1, 2, 0).reshape(-1)
        for name, length in constants:
            if length:
                _permute_initializer(initializers[name], order)
        prefix = f"{shuffle.name or shuffle.output[0]}/channels_last"
        dropped = [shuffle]
        if dequantize is None:
            source, target = shuffle.input[0], shuffle.output[0]
        else:
            # Move 8-bit values: the shuffle goes in front of the DequantizeLinear, or, where a
            # QuantizeLinear with the same scale and zero point follows, replaces the round trip.
            source = quantize.output[0]
            after = only_reader_of(shuffle.output[0])
            requantized = after is not None and after.op_type == "QuantizeLinear"
            if requantized and all(
                _same_constant(initializers, after.input[k], dequantize.input[k]) for k in (1, 2)
            ):
                target = after.output[0]
                dropped += [dequantize, after]
            else:
                target = f"{prefix}/8bit"
                dequantize.input[0], dequantize.output[0] = target, shuffle.output[0]
        chain, chain_constants = _channels_last_chain(source, target, block, channels, prefix)
        graph.initializer.extend(chain_constants)
        nodes = [n for n in nodes if all(n is not d for d in dropped)] + chain
        rewritten += 1
    if rewritten:
        from onnxruntime.quantization.onnx_model import ONNXModel

        del graph.node[:]
        graph.node.extend(nodes)
        ONNXModel(model).topological_sort()  # the new chains were appended at the end
    return model


def _output_channel_constants(conv, producers, readers, initializers):
    """``[(name, length)]`` of the constants that hold ``conv``'s output channels along axis 0
    (weight, bias, or the quantised weight with its per-channel scales and zero points;
    length 0 for a per-tensor scalar), each read by that node only; None when any is not."""
    found = []
    for name in conv.input[1:3]:
        if name in initializers:
            names = [name]
        else:
            source = producers.get(name)
            if source is None or source.op_type != "DequantizeLinear":
                return None
            axis = next((a.i for a in source.attribute if a.name == "axis"), 1)
            scale = initializers.get(source.input[1])
            if scale is None or (len(scale.dims) and axis != 0):
                return None
            names = list(source.input)
        for constant in names:
            tensor = initializers.get(constant)
            if tensor is None or len(readers.get(constant, [])) != 1:
                return None
            found.append((constant, tensor.dims[0] if len(tensor.dims) else 0))
    if not found or found[0][1] == 0:
        return None
    return found


def _permute_initializer(tensor, order: np.ndarray) -> None:
    from onnx import numpy_helper

    value = numpy_helper.to_array(tensor)
    tensor.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value[order]), tensor.name))


def _same_constant(initializers: dict, a: str, b: str) -> bool:
    from onnx import numpy_helper

    if a not in initializers or b not in initializers:
        return False
    x, y = numpy_helper.to_array(initializers[a]), numpy_helper.to_array(initializers[b])
    return x.dtype == y.dtype and x.shape == y.shape and bool(np.all(x == y))


def _channels_last_chain(source: str, target: str, block: int, channels: int, prefix: str):
    """Nodes taking ``source`` (N×(b·b·C)×h×w, channels in (i, j, c) order) to ``target``
    (N×C×(h·b)×(w·b)), the same as DepthToSpace, through channels-last moves of b·C values."""
    from onnx import helper, numpy_helper

    def name(part: str) -> str:
        return f"{prefix}/{part}"

    constants = [
        numpy_helper.from_array(
            np.array([0, 0, 0, block, block * channels], np.int64), name("split_rows")
        ),
        numpy_helper.from_array(np.array([0, 2, 3], np.int64), name("nhw_axes")),
        numpy_helper.from_array(np.array([1, block, block], np.int64), name("nhw_scale")),
        numpy_helper.from_array(np.array([channels], np.int64), name("channels")),
    ]
    nodes = [
        # N×h×w×(i·j·c): the layout onnxruntime's convolution produced anyway
        helper.make_node("Transpose", [source], [name("nhwc")], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", [name("nhwc"), name("split_rows")], [name("rows")]),
        # N×h×i×w×(j·c): each output row i of each input row h, runs of b·C values
        helper.make_node("Transpose", [name("rows")], [name("moved")], perm=[0, 1, 3, 2, 4]),
        helper.make_node("Shape", [source], [name("shape")]),
        helper.make_node("Gather", [name("shape"), name("nhw_axes")], [name("nhw")], axis=0),
        helper.make_node("Mul", [name("nhw"), name("nhw_scale")], [name("out_nhw")]),
        helper.make_node(
            "Concat", [name("out_nhw"), name("channels")], [name("out_shape")], axis=0
        ),
        helper.make_node("Reshape", [name("moved"), name("out_shape")], [name("out_nhwc")]),
        helper.make_node("Transpose", [name("out_nhwc")], [target], perm=[0, 3, 1, 2]),
    ]
    return nodes, constants
