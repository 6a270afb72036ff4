"""TLC local pooling for NAFNet's channel attention and the ×8 geometric self-ensemble."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pixel_utils
from pixel_utils.data.sources import load_photo
from pixel_utils.evaluation.inference import sharpen, sharpen_tiled
from pixel_utils.models.networks import LocalMeanPool, build_model, local_mean, set_test_time_window
from pixel_utils.training.loop import model_from_checkpoint

TEACHER = Path(pixel_utils.__file__).parent / "weights" / "teacher.pt"


def _small_nafnet(seed: int = 0):
    torch.manual_seed(seed)
    model = build_model("nafnet", width=8, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1))
    with torch.no_grad():  # non-zero branch scales, so the channel attention matters
        for name, p in model.named_parameters():
            if name.endswith(("beta", "gamma")):
                p.fill_(0.5)
            else:
                p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def _brute_local_mean(x: torch.Tensor, kh: int, kw: int) -> torch.Tensor:
    """Per pixel, the mean over the window of size (kh, kw) centred as TLC does, shifted to lie
    inside the map at the borders (window clamped to the map where it is larger)."""
    h, w = x.shape[-2:]
    kh, kw = min(kh, h), min(kw, w)
    out = torch.empty_like(x)
    for i in range(h):
        top = min(max(i - (kh - 1) // 2, 0), h - kh)
        for j in range(w):
            left = min(max(j - (kw - 1) // 2, 0), w - kw)
            out[..., i, j] = x[..., top : top + kh, left : left + kw].mean((-2, -1))
    return out


def test_window_at_least_the_input_is_exactly_global_pooling():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 13, 21)
    glob = F.adaptive_avg_pool2d(x, 1)
    for window in [(13, 21), (40, 40), (13, 100)]:
        out = LocalMeanPool(window)(x)
        assert torch.allclose(out.expand_as(x), glob.expand_as(x), atol=1e-6)
        assert torch.allclose(local_mean(x, window), glob.expand_as(x), atol=1e-6)
    # A whole model on a training-size patch is unchanged by the switch to TLC.
    model = _small_nafnet()
    patch = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        before = model(patch)
        assert set_test_time_window(model, 32) == 5
        after = model(patch)
    assert torch.allclose(before, after, atol=1e-6)


@pytest.mark.parametrize("kh, kw", [(3, 3), (4, 5), (1, 7), (9, 2), (20, 4), (4, 30)])
def test_integral_image_matches_brute_force(kh, kw):
    torch.manual_seed(1)
    x = torch.rand(1, 3, 11, 17) * 4 - 1
    fast = local_mean(x, (kh, kw))
    slow = _brute_local_mean(x, kh, kw)
    assert fast.shape == x.shape
    assert torch.allclose(fast, slow, atol=1e-5)
    # It really is local: away from the global mean somewhere (unless the window covers all).
    if kh < 11 or kw < 17:
        assert (fast - x.mean((-2, -1), keepdim=True)).abs().max() > 1e-3


def test_local_mean_is_precise_on_a_large_map():
    torch.manual_seed(2)
    x = torch.rand(1, 1, 600, 900) + 10.0  # a big offset stresses the cumulative sums
    fast = local_mean(x, (48, 48))
    ref = F.avg_pool2d(x.double(), 48, stride=1)  # windows fully inside, as a reference
    assert torch.allclose(fast[..., 23:-24, 23:-24].double(), ref, atol=1e-4)


def test_set_test_time_window_sets_per_stride_windows_and_resets():
    model = _small_nafnet()
    assert set_test_time_window(model, 64) == 5
    windows = {b.stride: b.sca[0].window for b, _ in model.blocks_with_stride()}
    assert windows == {1: (96, 96), 2: (48, 48), 4: (24, 24)}
    assert set_test_time_window(model, None) == 5
    assert all(b.sca[0].window is None for b, _ in model.blocks_with_stride())
    assert set_test_time_window(build_model("unshuffle"), 64) == 0
    assert set_test_time_window(build_model("resunet", width=8), 64) == 0


def test_tlc_brings_tiled_closer_to_whole_image():
    image = load_photo("coffee")[:200, :330]
    model = _small_nafnet()
    gaps = {}
    for train_size in (None, 32):
        set_test_time_window(model, train_size)
        whole = sharpen(model, image)
        tiled = sharpen_tiled(model, image, tile=128, overlap=64)
        gaps[train_size] = np.abs(whole - tiled).mean()
    assert gaps[None] > 2e-4  # global pooling: the tiles see other statistics
    assert gaps[32] < 0.1 * gaps[None]


class _Blur(nn.Module):
    """An exactly flip/rotation-equivariant model: a symmetric 3×3 blur per channel."""

    def __init__(self):
        super().__init__()
        k = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16
        self.weight = nn.Parameter(k.expand(3, 1, 3, 3).clone())

    def forward(self, x):
        return F.conv2d(x, self.weight, padding=1, groups=3)


def test_ensemble_of_an_equivariant_model_is_the_model():
    image = load_photo("coffee")[:45, :70]
    identity = build_model("nafnet", width=8, enc_blocks=(1,), middle_blocks=1, dec_blocks=(1,))
    with torch.no_grad():
        identity.ending.weight.zero_()
        identity.ending.bias.zero_()
    assert np.allclose(sharpen(identity, image, ensemble=True), image, atol=1e-6)
    blur = _Blur()
    assert np.allclose(sharpen(blur, image, ensemble=True), sharpen(blur, image), atol=1e-6)


def test_ensemble_changes_a_random_model():
    image = load_photo("coffee")[:45, :70]
    model = _small_nafnet()
    plain = sharpen(model, image)
    ens = sharpen(model, image, ensemble=True)
    assert ens.shape == image.shape
    assert np.abs(ens - plain).mean() > 1e-4
    tiled = sharpen_tiled(model, image, tile=32, overlap=16, ensemble=True)
    assert tiled.shape == image.shape
    assert np.abs(tiled - plain).mean() > 1e-4


def test_shipped_teacher_loads_with_unchanged_keys():
    model = model_from_checkpoint(TEACHER)
    keys = model.state_dict().keys()
    assert "encoders.0.0.sca.1.weight" in keys and "encoders.0.0.sca.1.bias" in keys
    assert not any(".sca.0." in k for k in keys)
    assert isinstance(model.encoders[0][0].sca[0], LocalMeanPool)
    image = load_photo("coffee")[:64, :64]
    before = sharpen(model, image)
    assert set_test_time_window(model, 64) > 0
    # A training-size patch is no larger than any window: TLC leaves it unchanged.
    assert np.allclose(sharpen(model, image), before, atol=1e-6)
    set_test_time_window(model, None)


def test_stage_costs_add_up_to_the_whole_teacher():
    from torch.utils.flop_counter import FlopCounterMode

    from pixel_utils.models.anatomy import stage_costs
    from pixel_utils.models.networks import build_model

    model = build_model("nafnet", width=8, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1))
    table = stage_costs(model, 32)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.rand(1, 3, 32, 32))
    total = counter.get_total_flops() / 2 / 1e9 / (32 * 32 / 1e6)
    assert (table["GMAC/MP"] > 0).all()
    assert abs(table["GMAC/MP"].sum() - total) < 1e-6 * total


def test_the_shipped_teacher_counts_every_run_it_was_fine_tuned_from():
    import json

    import pytest

    from pixel_utils.app.pretrained import WEIGHTS_DIR
    from pixel_utils.training.stages import shipped_teacher, teacher_runs

    entry = json.loads((WEIGHTS_DIR / "manifest.json").read_text())["models"]["teacher"]
    runs = teacher_runs(entry)
    # The chain reaches back to a run that started from scratch (for these weights, commit
    # a58729b's 5,500 steps, then two fine-tunings); every later run was a fine-tuning.
    assert runs[-1] is entry and "--init-from" not in runs[0]["made_by"]
    assert all("--init-from" in run["made_by"] for run in runs[1:])
    earlier = sum(run["steps"] for run in runs[:-1])
    teacher = shipped_teacher()
    assert teacher.step == earlier + entry["steps"]
    assert teacher.seconds == pytest.approx(sum(run["wall_time_s"] for run in runs))
    assert teacher.history["val"][0][0] == earlier + entry["validation_history"][0][0]
    assert teacher_runs({"steps": 3}) == [{"steps": 3}]


def test_full_resolution_stages_are_the_top_of_the_u():
    from pixel_utils.models.anatomy import full_resolution_stages, stage_costs
    from pixel_utils.models.networks import build_model

    model = build_model("nafnet", width=8, enc_blocks=(1, 1, 1), middle_blocks=1,
                        dec_blocks=(1, 1, 1))  # fmt: skip
    # Decoders count from the bottom of the U: decoders.2 is the full-resolution one.
    assert full_resolution_stages(stage_costs(model, 32)) == [
        "intro", "encoders.0", "decoders.2", "ending"
    ]  # fmt: skip


def test_training_time_words_read_both_curves():
    from pixel_utils.training.loop import TrainResult
    from pixel_utils.training.stages import training_time_words

    budget = TrainResult(None, {"val": [[50, 20.0, 0.5], [200, 21.5, 0.6]]}, 200, 120.0, True, None)
    last_run = {"steps": 4000, "wall_time_s": 3000.0}
    val = [[7600, 24.8, 0.7], [9000, 24.95, 0.7], [11500, 24.7, 0.7]]
    shipped = TrainResult(None, {"val": val}, 11500, 9000.0, True, None, info=last_run)
    words = training_time_words(budget, shipped)
    assert (
        "from 20.00 dB at its first validation (step 50, 0.5 min) to 21.50 dB at step 200 "
        "(2.0 min)" in words
    )
    assert "(4,000 steps, 50 min) went from 24.80 to 24.70 dB (best 24.95)" in words
    assert "the 100 min of training before it" in words and "3.30 dB above where" in words
    behind = TrainResult(None, {"val": [[200, 26.0, 0.7]]}, 200, 120.0, True, None)
    assert "1.20 dB below where" in training_time_words(behind, shipped)
    empty = TrainResult(None, {"val": []}, 0, 0.0, True, None)
    assert "no validation history" in training_time_words(empty, shipped)
