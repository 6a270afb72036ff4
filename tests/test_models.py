import numpy as np
import pytest
import torch

from pixel_utils.evaluation.cost import count_macs
from pixel_utils.models.networks import MODELS, build_model, count_parameters

# Small configurations of every model so the suite stays fast; the defaults are checked once.
SMALL = {
    "nafnet": {"width": 8, "enc_blocks": (1, 1), "middle_blocks": 1, "dec_blocks": (1, 1)},
    "unshuffle": {"scale": 4, "channels": 8, "blocks": 1},
    "two_frame": {"scale": 4, "channels": 8, "blocks": 1},
    "rescnn": {"channels": 8, "blocks": 2},
    "resunet": {"width": 8, "enc_blocks": (1, 1), "middle_blocks": 1, "dec_blocks": (1, 1)},
    "sepconv": {"widths": (8, 16, 16)},
    "restormer": {"width": 8, "enc_blocks": (1, 1), "middle_blocks": 1, "dec_blocks": (1, 1)},
}


def test_every_model_has_a_small_test_config():
    assert set(SMALL) == set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("size", [(37, 53), (64, 64), (5, 7)])
def test_output_shape_matches_input_for_any_size(name, size):
    model = build_model(name, **SMALL[name]).eval()
    x = torch.rand(1, model.in_channels, *size)  # the two-frame student sees 2 RGB frames
    with torch.no_grad():
        y = model(x)
    assert y.shape == (1, 3, *size)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_feature_taps_have_the_documented_shapes(name):
    model = build_model(name, **SMALL[name]).eval()
    info = model.feature_info(64)
    with torch.no_grad():
        _, feats = model(torch.rand(2, model.in_channels, 64, 64), return_features=True)
    assert set(feats) == set(info) and feats
    for tap, (channels, stride) in info.items():
        assert feats[tap].shape == (2, channels, 64 // stride, 64 // stride), tap


def test_nafnet_starts_as_the_identity():
    from pixel_utils.models.networks import NAFBlock

    # Zero-initialised block scales: every block passes its input through unchanged ...
    model = build_model("nafnet", **SMALL["nafnet"]).eval()
    blocks = [m for m in model.modules() if isinstance(m, NAFBlock)]
    assert blocks
    with torch.no_grad():
        for block in blocks:
            z = torch.randn(1, block.beta.shape[1], 8, 8)
            assert torch.equal(block(z), z)
        # ... and a trained block does not, so the check above can fail.
        blocks[0].beta.fill_(0.5)
        z = torch.randn(1, blocks[0].beta.shape[1], 8, 8)
        assert not torch.allclose(blocks[0](z), z)
    # The residual output: with the ending's convolution at zero the network returns its input.
    model = build_model("nafnet", **SMALL["nafnet"]).eval()
    with torch.no_grad():
        torch.nn.init.zeros_(model.ending.weight)
        torch.nn.init.zeros_(model.ending.bias)
        x = torch.rand(1, 3, 32, 32)
        assert torch.allclose(model(x), x)


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("vgg")


def test_default_student_is_much_cheaper_than_default_teacher():
    from pixel_utils.profiles import PROFILES

    p = PROFILES["default"]
    teacher = build_model(p.teacher, **p.teacher_kwargs)
    student = build_model(p.student, **p.student_kwargs)
    ratio = count_macs(teacher, 128, 128) / count_macs(student, 128, 128)
    # The student spends its budget in int8 (several times cheaper per MAC than the teacher's
    # fp32), so it may take a larger share of the teacher's MACs than its parameters.
    assert ratio >= 5, ratio
    assert count_parameters(student) * 10 < count_parameters(teacher)


def test_unshuffle_as_a_convolution_is_exactly_pixel_unshuffle():
    from pixel_utils.models.networks import Unshuffle

    x = torch.rand(2, 3, 16, 24)
    as_conv = torch.nn.functional.conv2d(x, Unshuffle(4).weight, stride=4)
    assert torch.equal(as_conv, torch.nn.functional.pixel_unshuffle(x, 4))


@pytest.mark.parametrize("inner", [0, 1])
def test_reparameterised_student_fuses_into_plain_convs_with_the_same_output(inner):
    from pixel_utils.models.networks import RepConv, fuse_reparameterised

    torch.manual_seed(0)
    model = build_model("unshuffle", scale=4, channels=8, blocks=2, inner_blocks=inner,
                        reparam=True).eval()  # fmt: skip
    for p in model.parameters():  # move off the identity so every branch matters
        p.data.add_(0.05 * torch.randn_like(p))
    x = torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        before = model(x)
        fused = fuse_reparameterised(model)
        after = fused(x)
    assert not any(isinstance(m, RepConv) for m in fused.modules())
    assert (before - after).abs().max() < 1e-5
    plain = build_model("unshuffle", scale=4, channels=8, blocks=2, inner_blocks=inner)
    assert count_parameters(fused) == count_parameters(plain)  # nothing left of the branches


def test_two_level_student_doubles_its_stride_and_grows_its_receptive_field():
    flat = build_model("unshuffle", scale=4, channels=8, blocks=4).eval()
    u = build_model("unshuffle", scale=4, channels=8, blocks=3, inner_blocks=1).eval()
    assert (flat.stride, u.stride) == (4, 8)

    def reach(model):  # how far from the centre an impulse changes the output
        x = torch.zeros(1, 3, 128, 128, requires_grad=True)
        model(x)[0, :, 64, 64].sum().backward()
        rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero()
        return int(rows.max() - rows.min())

    for model in (flat, u):
        for p in model.parameters():
            p.data.normal_(0, 0.1)
    assert reach(u) > reach(flat)


@pytest.mark.parametrize("size", [(45, 61), (16, 24), (5, 3)])  # reflect, none, replicate
def test_numpy_padding_to_the_stride_is_the_models_own(size):
    from pixel_utils.models.networks import pad_image_to_stride, pad_to_stride

    image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    expected = pad_to_stride(torch.from_numpy(image).permute(2, 0, 1)[None].float(), 8)
    got = pad_image_to_stride(image, 8)
    assert got.dtype == np.uint8 and got.shape[:2] == tuple(expected.shape[-2:])
    np.testing.assert_array_equal(got, expected[0].permute(1, 2, 0).numpy())


@pytest.mark.parametrize(
    "new",
    [
        {"blocks": 3, "inner_blocks": 3},  # coarse blocks added
        {"blocks": 5, "inner_blocks": 1},  # fine blocks added on both sides of the U
        {"blocks": 4, "inner_blocks": 2},
        {"blocks": 3, "inner_blocks": 1, "deep_blocks": 2},  # a third level added
        {"blocks": 3, "inner_blocks": 3, "deep_blocks": 1},  # and coarse blocks with it
        {"blocks": 4, "inner_blocks": 3, "deep_blocks": 1},  # fine, coarse and third, as shipped
    ],
)
def test_a_grown_student_computes_what_it_grew_from(new):
    from pixel_utils.models.networks import UnshuffleStudent, grown_student_state

    old_kwargs = {"scale": 2, "channels": 8, "blocks": 3, "inner_blocks": 1}
    torch.manual_seed(0)
    old = UnshuffleStudent(**old_kwargs).eval()
    for p in old.parameters():  # trained-looking weights: no block is the identity already
        torch.nn.init.normal_(p, std=0.1)
    new_kwargs = old_kwargs | new
    grown = UnshuffleStudent(**new_kwargs).eval()
    grown.load_state_dict(grown_student_state(old.state_dict(), old_kwargs, new_kwargs))
    # off the stride's grid (padded), and a third level's coarsest map has odd sides
    x = torch.rand(2, 3, 20, 28)
    with torch.no_grad():
        torch.testing.assert_close(grown(x), old(x), rtol=0, atol=1e-6)
    # the added blocks can learn: their first convolutions are not zero
    assert all(b.conv1.weight.abs().sum() > 0 for b in [*grown.inner, *grown.deep])
    if new.get("deep_blocks"):
        assert grown.stride == old.stride  # the third level is cropped, not padded for
        # ... and so can the third level, once its zero way back up has learned
        assert grown.deep_up[0].weight.abs().sum() == 0


def test_a_deepened_student_grows_its_third_level():
    from pixel_utils.models.networks import UnshuffleStudent, grown_student_state

    old_kwargs = {"scale": 2, "channels": 8, "blocks": 3, "inner_blocks": 3, "deep_blocks": 1}
    torch.manual_seed(0)
    old = UnshuffleStudent(**old_kwargs).eval()
    for p in old.parameters():
        torch.nn.init.normal_(p, std=0.1)
    new_kwargs = old_kwargs | {"deep_blocks": 3}
    grown = UnshuffleStudent(**new_kwargs).eval()
    grown.load_state_dict(grown_student_state(old.state_dict(), old_kwargs, new_kwargs))
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        torch.testing.assert_close(grown(x), old(x), rtol=0, atol=1e-6)
    torch.testing.assert_close(grown.deep_up[0].weight, old.deep_up[0].weight)


def test_a_third_level_takes_sizes_on_the_coarse_grid_as_if_padded_to_its_own():
    """A side on the coarse level's grid but not on the third level's (1080 rows for a ×4
    student) runs unpadded: the third level's way back up is cropped to the coarse map. On the
    third level's own grid the crop takes nothing away."""
    from pixel_utils.models.networks import UnshuffleStudent

    torch.manual_seed(0)
    model = UnshuffleStudent(scale=2, channels=8, blocks=2, inner_blocks=2, deep_blocks=1).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    assert model.stride == 4
    with torch.no_grad():
        odd = model(torch.rand(1, 3, 36, 44))  # a 9×11 coarse map: 5×6 at the third level
        assert odd.shape == (1, 3, 36, 44) and torch.isfinite(odd).all()
        # The third level on a 9×11 map is the same as on that map zero-padded to 10×12.
        z = torch.randn(1, 16, 9, 11)
        padded = torch.nn.functional.pad(z, (0, 1, 0, 1))
        torch.testing.assert_close(model._third_level(z), model._third_level(padded)[..., :9, :11])
        # on the 8-pixel grid: the same as the network without the crop
        x = torch.rand(1, 3, 32, 40)
        z = model.down(model.blocks[0](model.entry(model.unshuffle(x))))
        z = model.inner[0](z)
        deep = model.deep_down(z)
        for block in model.deep:
            deep = block(deep)
        assert model.deep_up(deep).shape[-2:] == z.shape[-2:]
        torch.testing.assert_close(model._third_level(z), z + model.deep_up(deep))


def test_a_third_level_needs_a_second():
    from pixel_utils.models.networks import UnshuffleStudent

    with pytest.raises(ValueError, match="deep_blocks needs inner_blocks"):
        UnshuffleStudent(scale=2, channels=8, blocks=2, inner_blocks=0, deep_blocks=1)


@pytest.mark.parametrize(
    "new",
    [
        {"blocks": 2, "inner_blocks": 1},  # fewer blocks
        {"blocks": 3, "inner_blocks": 0},  # the U removed
        {"blocks": 3, "inner_blocks": 1, "channels": 16},  # wider: not growth by blocks
        {"blocks": 3, "inner_blocks": 1, "deep_blocks": 1},  # the third level shrunk
        {"blocks": 3, "inner_blocks": 2, "deep_blocks": 2},  # coarse blocks moved around it
    ],
)
def test_growth_refuses_what_is_not_adding_blocks(new):
    from pixel_utils.models.networks import UnshuffleStudent, grown_student_state

    old_kwargs = {"scale": 2, "channels": 8, "blocks": 3, "inner_blocks": 1, "deep_blocks": 2}
    state = UnshuffleStudent(**old_kwargs).state_dict()
    with pytest.raises(ValueError, match="growth"):
        grown_student_state(state, old_kwargs, old_kwargs | new)
