"""Quantisation-aware fine-tuning: train the student through the rounding its int8 form applies.

Post-training int8 quantisation (:func:`~pixel_utils.app.onnx_export.quantize_int8`) rounds
every convolution's weights and input activations to 8 bits. On the shipped student that
rounding noise is spread over all layers (keeping any one layer in float recovers almost
nothing), and strong deblurring amplifies it. Fine-tuning with the same rounding in the forward
pass (straight-through gradients) lets the weights settle where rounding costs little; the
fine-tuned weights are then quantised by the same onnxruntime tool as before.

The rounding is read from the served graph itself (the starting weights quantised as
:func:`~pixel_utils.training.stages.served_student` does): per-output-channel symmetric int8
weights on onnxruntime's reduced range (±64 steps), and the uint8 grid of every tensor each
convolution reads and writes, including its residual input and the fused ReLU. The weight grid
follows the weights as they train; the activation grids are those of the starting weights, so
a resumed run rounds the same way as an uninterrupted one.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

#: The weight grid of onnxruntime's ``reduce_range`` int8 weights: symmetric, ±64 steps.
WEIGHT_STEPS = 64


class FakeQuantisedWeight(nn.Module):
    """Per-output-channel symmetric rounding of a conv weight onto the served weight grid."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        scale = (weight.detach().abs().amax(dim=(1, 2, 3)) / WEIGHT_STEPS).clamp_min(1e-12)
        zero = torch.zeros(weight.shape[0], dtype=torch.int32, device=weight.device)
        return torch.fake_quantize_per_channel_affine(
            weight, scale.float(), zero, 0, -WEIGHT_STEPS, WEIGHT_STEPS
        )


def rounding_from_onnx(int8_path) -> dict[str, dict]:
    """How a quantised QDQ graph rounds each convolution: ``{module name: {"in": (scale,
    zero_point), "out": (scale, zero_point) or None}}`` for the uint8 tensor each reads and
    the one it writes (with a ReLU fused into it, the ReLU's output). Modules are named by
    their weights (``blocks.0.conv2.weight`` → ``blocks.0.conv2``)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(int8_path)).graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)

    def grid(node) -> tuple[float, int]:
        return float(constants[node.input[1]]), int(constants[node.input[2]])

    table = {}
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        weight = producer.get(node.input[1])
        source = producer.get(node.input[0])
        if weight is None or not weight.input[0].endswith(".weight_quantized"):
            continue  # a fixed conv (the unshuffle), or one left in float
        if source is None or source.op_type != "DequantizeLinear":
            continue
        quantise_out = [r for r in readers.get(node.output[0], []) if r.op_type == "QuantizeLinear"]
        name = weight.input[0].removesuffix(".weight_quantized")
        table[name] = {"in": grid(source), "out": grid(quantise_out[0]) if quantise_out else None}
    return table


def _round(x: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, 0, 255)


def make_quantisation_aware(model: nn.Module, rounding: dict[str, dict]) -> None:
    """Round (in place), in the forward pass, every conv's weight onto the served weight grid
    and each conv's input and output onto the uint8 grids of ``rounding``
    (:func:`rounding_from_onnx` of the served model); gradients pass straight through. The
    weights stay stored in float under ``<conv>.parametrizations.weight.original``
    (:func:`plain_state_dict` gives the usual names)."""
    convs = {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    missing = sorted(set(rounding) - set(convs))
    if missing:
        raise ValueError(f"the quantised graph has convolutions the model lacks: {missing}")
    for name, grids in rounding.items():
        conv = convs[name]
        parametrize.register_parametrization(conv, "weight", FakeQuantisedWeight())
        scale, zero = grids["in"]
        conv.register_forward_pre_hook(
            lambda module, inputs, s=scale, z=zero: (_round(inputs[0], s, z), *inputs[1:])
        )
        if grids["out"] is not None:
            # A ReLU fused into the conv has a grid starting at 0: rounding onto it applies the
            # ReLU too, as the served graph does.
            scale, zero = grids["out"]
            conv.register_forward_hook(
                lambda module, inputs, output, s=scale, z=zero: _round(output, s, z)
            )


def plain_state_dict(state: dict) -> dict:
    """A quantisation-aware model's state under the plain model's names."""
    return {k.replace("parametrizations.weight.original", "weight"): v for k, v in state.items()}
