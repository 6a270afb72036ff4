"""Pixel-shuffles rewritten for onnxruntime's channels-last convolutions: the same numbers."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from pixel_utils.app.onnx_export import (
    FrameModel,
    OnnxModel,
    eight_bit_graph,
    export_onnx,
    quantize_int8,
)
from pixel_utils.app.onnx_layout import (
    channels_last_shuffles,
    channels_last_unshuffle,
    shapes_before_dequantising,
)
from pixel_utils.data.datasets import PatchPairDataset
from pixel_utils.data.sources import dead_leaves
from pixel_utils.models.networks import build_model


def plain_session(model: onnx.ModelProto):
    """onnxruntime on the graph as given (no rewrite)."""
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def ops(model: onnx.ModelProto) -> list[str]:
    return [node.op_type for node in model.graph.node]


@pytest.fixture(scope="module")
def student_graphs(tmp_path_factory):
    """A small two-level student (two pixel-shuffles: the U's and the exit's), in fp32 and in
    QDQ int8 as the project serves it."""
    tmp = tmp_path_factory.mktemp("layout")
    torch.manual_seed(0)
    model = build_model("unshuffle", scale=4, channels=8, blocks=2, inner_blocks=1).eval()
    with torch.no_grad():  # a visible residual, so a wrong channel order cannot hide
        model.exit.weight.mul_(20)
    fp32, _ = export_onnx(model, tmp / "s.onnx")
    images = [dead_leaves(np.random.default_rng(i), size=64) for i in range(2)]
    patches = PatchPairDataset(images, 32, 4, 4, seed=0)
    int8 = quantize_int8(fp32, tmp / "s_int8.onnx", [patches[i][0].numpy() for i in range(4)])
    return {"fp32": fp32, "int8": int8}


@pytest.mark.parametrize("kind", ["fp32", "int8"])
def test_rewritten_student_computes_the_same_bits_without_depth_to_space(student_graphs, kind):
    original = onnx.load(str(student_graphs[kind]))
    rewritten = channels_last_shuffles(onnx.load(str(student_graphs[kind])))
    onnx.checker.check_model(rewritten)
    assert ops(original).count("DepthToSpace") == 2
    assert "DepthToSpace" not in ops(rewritten)
    before, after = plain_session(original), plain_session(rewritten)
    rng = np.random.default_rng(1)
    for shape in [(1, 3, 64, 96), (2, 3, 40, 24), (1, 3, 136, 200)]:  # on the stride-8 grid
        x = rng.random(shape, dtype=np.float32)
        expected = before.run(None, {"image": x})[0]
        assert np.abs(expected - x).max() > 0.01  # the network does change the image
        np.testing.assert_array_equal(after.run(None, {"image": x})[0], expected)


def test_served_models_run_the_rewrite_and_give_the_same_bits(student_graphs):
    """OnnxModel and FrameModel (what the CLI and the video path serve) match onnxruntime on
    the untouched files."""
    x = torch.rand(1, 3, 48, 72, generator=torch.Generator().manual_seed(2))
    for path in student_graphs.values():
        expected = plain_session(onnx.load(str(path))).run(None, {"image": x.numpy()})[0]
        np.testing.assert_array_equal(OnnxModel(path)(x).numpy(), expected)
    frame = (np.random.default_rng(3).random((48, 72, 3)) * 255).astype(np.uint8)
    path = student_graphs["int8"]
    expected = plain_session(onnx.load_from_string(eight_bit_graph(path)))
    expected = expected.run(None, {"frame": frame[None]})[0][0]
    np.testing.assert_array_equal(FrameModel(path)(frame), expected)


@pytest.mark.parametrize("mode", ["CRD", "DCR"])
def test_either_depth_to_space_mode_after_a_conv_is_rewritten_exactly(mode):
    rng = np.random.default_rng(4)
    weight = rng.standard_normal((12, 5, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(12).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1]),
            helper.make_node("DepthToSpace", ["y"], ["z"], blocksize=2, mode=mode),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 5, "h", "w"])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.standard_normal((2, 5, 7, 9)).astype(np.float32)
    expected = plain_session(model).run(None, {"x": x})[0]
    rewritten = channels_last_shuffles(onnx.load_from_string(model.SerializeToString()))
    assert "DepthToSpace" not in ops(rewritten)
    got = plain_session(rewritten).run(None, {"x": x})[0]
    assert got.shape == (2, 3, 14, 18)
    np.testing.assert_array_equal(got, expected)


def test_a_shuffle_not_fed_by_a_conv_or_whose_conv_is_shared_is_left_alone():
    weight = numpy_helper.from_array(np.ones((8, 2, 1, 1), np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("DepthToSpace", ["x"], ["a"], blocksize=2, mode="CRD"),
            helper.make_node("Conv", ["x", "w"], ["y"]),
            helper.make_node("DepthToSpace", ["y"], ["b"], blocksize=2, mode="CRD"),
            helper.make_node("Identity", ["y"], ["c"]),  # a second reader of the conv output
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in "abc"],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    rewritten = channels_last_shuffles(onnx.load_from_string(model.SerializeToString()))
    assert rewritten.SerializeToString() == model.SerializeToString()


def test_layout_profile_compares_the_two_forms_and_states_it(student_graphs):
    from pixel_utils.evaluation.onnx_profile import FORMS, layout_lesson, layout_profile

    profile = layout_profile(student_graphs["int8"], 48, 64, rounds=2, min_run_time=0.01)
    assert profile["identical"]
    exported, served = (profile["ms_by_op"][form] for form in FORMS)
    assert exported["DepthToSpace"] > 0 and "DepthToSpace" not in served
    assert exported["QLinearConv"] > 0 and served["QLinearConv"] > 0
    assert profile["unshuffle_ms"]["as exported"] > 0 and profile["unshuffle_ms"]["as served"] == 0
    assert len(profile["rounds_ms"]) == 2 and all(ms > 0 for ms in profile["latency_ms"].values())
    lesson = layout_lesson(profile, "48×64")
    assert lesson.startswith("- **Layout costs time.** At 48×64") and "the same bits" in lesson
    # The two latencies are medians over rounds; the ratio is the median of the rounds' own.
    ratio = f"round by round it took {profile['served_over_exported']:.2f}× the time"
    assert (
        f"(medians of 2 rounds in alternation; {ratio}, the median of the rounds' ratios)" in lesson
    )


def _conv_kernels(model: onnx.ModelProto) -> list[list[int]]:
    return [
        list(next(a.ints for a in n.attribute if a.name == "kernel_shape"))
        for n in model.graph.node
        if n.op_type == "Conv"
    ]


def test_quantised_unshuffle_becomes_moves_with_the_same_bits(student_graphs):
    original = onnx.load(str(student_graphs["int8"]))
    rewritten = channels_last_unshuffle(onnx.load(str(student_graphs["int8"])))
    onnx.checker.check_model(rewritten)
    assert [4, 4] in _conv_kernels(original) and [4, 4] not in _conv_kernels(rewritten)
    before, after = plain_session(original), plain_session(rewritten)
    rng = np.random.default_rng(5)
    for shape in [(1, 3, 64, 96), (2, 3, 40, 24)]:  # on the stride-8 grid
        x = rng.random(shape, dtype=np.float32)
        np.testing.assert_array_equal(after.run(None, {"image": x})[0],
                                      before.run(None, {"image": x})[0])  # fmt: skip


def test_a_float_unshuffle_or_one_that_rescales_is_left_alone(student_graphs):
    """Only an exact 8-bit copy is rewritten: not the float graph's convolution, and not a
    quantised one whose output scale differs from its input's (then it rounds)."""
    fp32 = onnx.load(str(student_graphs["fp32"]))
    assert channels_last_unshuffle(fp32).SerializeToString() == (
        onnx.load(str(student_graphs["fp32"])).SerializeToString()
    )
    int8 = onnx.load(str(student_graphs["int8"]))
    for tensor in int8.graph.initializer:
        if tensor.name == "/unshuffle/Conv_output_0_scale":
            value = numpy_helper.to_array(tensor) * np.float32(1.5)
            tensor.CopyFrom(numpy_helper.from_array(value, tensor.name))
    before = int8.SerializeToString()
    assert channels_last_unshuffle(int8).SerializeToString() == before


def test_eight_bit_graph_of_an_int8_student_has_integer_ends(student_graphs):
    """The int8 student's frame graph reads the frame's bytes directly and adds the correction
    in 8 bits: no float conversion over the frame; the float graph keeps the float path."""
    int8 = onnx.load_from_string(eight_bit_graph(student_graphs["int8"]))
    assert "QLinearAdd" in ops(int8) and not {"Cast", "Div"} & set(ops(int8))
    assert not any("image" in node.input for node in int8.graph.node)  # no float image
    fp32 = onnx.load_from_string(eight_bit_graph(student_graphs["fp32"]))
    assert {"Cast", "Div"} <= set(ops(fp32)) and "QLinearAdd" not in ops(fp32)


def test_integer_ends_are_refused_where_the_levels_would_not_survive(student_graphs, tmp_path):
    """An image scale under which level / 255 does not round back to its level (here 1/200):
    the frame graph keeps the float front and back, and still gives the float graph's bytes."""
    model = onnx.load(str(student_graphs["int8"]))
    for tensor in model.graph.initializer:
        if tensor.name == "image_scale":
            tensor.CopyFrom(numpy_helper.from_array(np.array(1 / 200, np.float32), tensor.name))
    path = tmp_path / "rescaled.onnx"
    onnx.save(model, str(path))
    graph = onnx.load_from_string(eight_bit_graph(path))
    assert "QLinearAdd" not in ops(graph) and {"Cast", "Div"} <= set(ops(graph))
    frame = (np.random.default_rng(6).random((48, 72, 3)) * 255).astype(np.uint8)
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float().div(255)
    expected = (OnnxModel(path)(x)[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(FrameModel(path)(frame), expected)


def test_the_exactness_checks_can_fail():
    """The two checks behind the integer ends say no where the 8-bit path would differ."""
    from pixel_utils.app.onnx_export import (
        _eight_bit_addition_is_exact,
        _levels_survive_quantisation,
    )

    assert _levels_survive_quantisation(np.float32(1 / 255), np.uint8(0))
    assert not _levels_survive_quantisation(np.float32(1 / 200), np.uint8(0))
    assert not _levels_survive_quantisation(np.float32(1 / 255), np.uint8(3))
    assert _eight_bit_addition_is_exact(np.float32(0.0022685372), np.uint8(127))
    # a correction step of exactly half a level: every odd correction lands on a tie, which
    # the float path and the 8-bit addition need not break the same way
    assert not _eight_bit_addition_is_exact(np.float32(0.5 / 255 * 1.0000001), np.uint8(128))


def test_integer_ends_give_the_float_graphs_bytes_on_every_level(student_graphs):
    """The int8 student's frame graph against the float graph between numpy conversions, on a
    frame that holds every 8-bit level in every channel."""
    path = student_graphs["int8"]
    assert "QLinearAdd" in ops(onnx.load_from_string(eight_bit_graph(path)))
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    frame = np.stack([levels, levels.T, levels[::-1]], axis=2)
    frame = np.ascontiguousarray(np.tile(frame, (3, 5, 1)))  # 48 × 80, on the stride grid
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float().div(255)
    expected = (OnnxModel(path)(x)[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(FrameModel(path)(frame), expected)


def test_integer_ends_fall_back_for_a_signed_image_zero_point(student_graphs, tmp_path):
    """An image quantised to int8 cannot take the frame's unsigned bytes: the float ends are
    kept, without an error."""
    model = onnx.load(str(student_graphs["int8"]))
    for tensor in model.graph.initializer:
        if tensor.name == "image_zero_point":
            tensor.CopyFrom(numpy_helper.from_array(np.array(0, np.int8), tensor.name))
    path = tmp_path / "signed.onnx"
    onnx.save(model, str(path))
    graph = onnx.load_from_string(eight_bit_graph(path))
    assert "QLinearAdd" not in ops(graph) and {"Cast", "Div"} <= set(ops(graph))


def test_an_unshuffle_whose_output_is_read_twice_is_left_alone(student_graphs):
    model = onnx.load(str(student_graphs["int8"]))
    unshuffled = "/unshuffle/Conv_output_0"
    out = next(
        n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == unshuffled
    )
    model.graph.output.append(helper.make_tensor_value_info(out.output[0], TensorProto.UINT8, None))
    before = model.SerializeToString()
    assert channels_last_unshuffle(model).SerializeToString() == before


def test_shapes_read_before_dequantising_free_the_float_copy_and_keep_the_bits(tmp_path):
    """A deepened student's crop reads the coarse map's shape: read from the 8-bit map, the
    map's float copy is no longer computed (onnxruntime drops its DequantizeLinear), and the
    outputs are the same bits, on and off the third level's stride grid."""
    torch.manual_seed(0)
    kwargs = {"scale": 4, "channels": 8, "blocks": 2, "inner_blocks": 1, "deep_blocks": 1}
    model = build_model("unshuffle", **kwargs).eval()
    with torch.no_grad():
        model.exit.weight.mul_(20)
    fp32, _ = export_onnx(model, tmp_path / "d.onnx")
    images = [dead_leaves(np.random.default_rng(i), size=64) for i in range(2)]
    patches = PatchPairDataset(images, 32, 4, 4, seed=0)
    int8 = quantize_int8(fp32, tmp_path / "d_int8.onnx", [patches[i][0].numpy() for i in range(4)])

    def dequantised_shapes(model):
        producers = {out: node for node in model.graph.node for out in node.output}
        return [node for node in model.graph.node if node.op_type == "Shape"
                and producers.get(node.input[0], node).op_type == "DequantizeLinear"]  # fmt: skip

    def optimised_dequantisations(model):
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return ops(onnx.load(options.optimized_model_filepath)).count("DequantizeLinear")

    original = channels_last_unshuffle(channels_last_shuffles(onnx.load(str(int8))))
    assert dequantised_shapes(original)  # the crop's Shape reads a float copy
    rewritten = shapes_before_dequantising(onnx.load_from_string(original.SerializeToString()))
    onnx.checker.check_model(rewritten)
    assert not dequantised_shapes(rewritten)
    assert optimised_dequantisations(rewritten) < optimised_dequantisations(original)
    before, after = plain_session(original), plain_session(rewritten)
    rng = np.random.default_rng(5)
    for shape in [(1, 3, 64, 96), (1, 3, 72, 40), (2, 3, 24, 56)]:  # 72, 24: odd coarse sides
        x = rng.random(shape, dtype=np.float32)
        expected = before.run(None, {"image": x})[0]
        assert np.abs(expected - x).max() > 0.01
        np.testing.assert_array_equal(after.run(None, {"image": x})[0], expected)
    # The float graph has no DequantizeLinear: nothing to rewrite, nothing changed.
    plain = onnx.load(str(fp32))
    assert shapes_before_dequantising(onnx.load(str(fp32))) == plain
