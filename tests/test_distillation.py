import numpy as np
import pytest
import torch

from pixel_utils.data.datasets import PatchPairDataset
from pixel_utils.data.sources import dead_leaves
from pixel_utils.models.networks import build_model
from pixel_utils.training.distillation import (
    BlurredOnlyDataset,
    CachedBatches,
    DistillationLoss,
    DistillWeights,
    FeatureAdapters,
    build_teacher_cache,
    cache_key,
    feature_loss,
    frequency_loss,
    match_taps,
    response_loss,
)
from pixel_utils.training.loop import TrainConfig, save_checkpoint, train
from tests.test_models import SMALL

STUDENTS = ["unshuffle", "sepconv", "rescnn"]
TEACHERS = ["nafnet", "restormer", "resunet", "rescnn"]


@pytest.mark.parametrize(
    "term", [response_loss, frequency_loss, feature_loss], ids=lambda f: f.__name__
)
def test_each_term_is_zero_for_identical_inputs_and_positive_otherwise(term):
    a = torch.rand(2, 3, 16, 16)
    b = a + 0.1 * torch.randn_like(a)
    assert float(term(a, a.clone())) == pytest.approx(0.0, abs=1e-6)
    assert float(term(a, b)) > 1e-3


def test_combined_loss_is_zero_when_student_equals_teacher_and_ground_truth():
    teacher = build_model("unshuffle", **SMALL["unshuffle"])
    student = build_model("unshuffle", **SMALL["unshuffle"])
    student.load_state_dict(teacher.state_dict())
    info = student.feature_info()
    adapters = FeatureAdapters(info, info, match_taps(info, info))
    with torch.no_grad():  # identity adapters
        for conv in adapters.adapters.values():
            conv.weight.copy_(torch.eye(conv.weight.shape[0])[:, :, None, None])
            conv.bias.zero_()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        target = teacher(x)
    w = DistillWeights(ground_truth=1, response=1, feature=1, frequency=1)
    loss, logs = DistillationLoss(teacher, w, adapters)(student, x, target, 0)
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-5), logs
    assert set(logs) == {"gt", "response", "feature", "frequency"}


def test_gradients_reach_the_student_and_adapters_but_not_the_teacher():
    teacher = build_model("nafnet", **SMALL["nafnet"])
    student = build_model("unshuffle", **SMALL["unshuffle"])
    pairs = match_taps(student.feature_info(), teacher.feature_info())
    assert pairs
    adapters = FeatureAdapters(student.feature_info(), teacher.feature_info(), pairs)
    loss_fn = DistillationLoss(teacher, DistillWeights(1, 1, 1, 1), adapters)
    x, sharp = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    loss, _ = loss_fn(student, x, sharp, 0)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert all(p.grad is not None for p in adapters.parameters())
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert not teacher.training


@pytest.mark.parametrize("student_name", STUDENTS)
@pytest.mark.parametrize("teacher_name", TEACHERS)
def test_adapter_shapes_match_for_every_pair_offered(student_name, teacher_name):
    student = build_model(student_name, **SMALL[student_name])
    teacher = build_model(teacher_name, **SMALL[teacher_name])
    s_info, t_info = student.feature_info(), teacher.feature_info()
    pairs = match_taps(s_info, t_info)
    if not pairs:  # no tap of the same stride: feature distillation is not offered
        strides = {stride for _, stride in t_info.values()}
        assert all(stride not in strides for _, stride in s_info.values()), (s_info, t_info)
        return
    adapters = FeatureAdapters(s_info, t_info, pairs)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        _, s_feats = student(x, return_features=True)
        _, t_feats = teacher(x, return_features=True)
        mapped = adapters(s_feats)
    for s, t in pairs:
        assert s_info[s][1] == t_info[t][1]  # same stride
        assert mapped[s].shape == t_feats[t].shape


def test_pseudo_label_mode_trains_on_images_without_ground_truth(tmp_path):
    teacher = build_model("unshuffle", **SMALL["unshuffle"])
    blurry_only = [dead_leaves(np.random.default_rng(i), size=40) for i in range(2)]
    weights = DistillWeights(ground_truth=0.0, response=1.0, feature=0.0)
    result = train(
        "unshuffle", SMALL["unshuffle"],
        lambda rank: BlurredOnlyDataset(blurry_only, 24, 2, 3, seed=rank),
        TrainConfig(steps=3, warmup_steps=1, val_every=100), tmp_path / "p.pt",
        loss_fn=DistillationLoss(teacher, weights),
    )  # fmt: skip
    assert result.step == 3 and all(np.isfinite(v) for _, v in result.history["loss"])
    with pytest.raises(ValueError, match="no sharp images"):
        DistillationLoss(teacher, DistillWeights(ground_truth=1.0))(
            teacher, torch.rand(1, 3, 16, 16), {}, 0
        )


def test_teacher_cache_roundtrip_and_key(tmp_path):
    teacher = build_model("nafnet", **SMALL["nafnet"])
    images = [dead_leaves(np.random.default_rng(0), size=48)]
    ds = PatchPairDataset(images, 16, 2, 3, seed=0)
    path = build_teacher_cache(teacher, ds, 3, ["mid"], tmp_path / "cache.pt")
    cached = CachedBatches(path, length=7, seed=0)
    inputs, targets = cached[4]
    assert inputs.shape == (2, 3, 16, 16) and targets["teacher"].shape == (2, 3, 16, 16)
    assert targets["features"]["mid"].shape[1] == teacher.feature_info()["mid"][0]
    plain_inputs, sharp = CachedBatches(path, length=7, seed=0, with_teacher=False)[4]
    assert torch.equal(plain_inputs, inputs) and torch.equal(sharp, targets["sharp"])
    # The key follows the teacher's weights and the data settings.
    ckpt = tmp_path / "t.pt"
    save_checkpoint(ckpt, {"format": 1, "model": teacher.state_dict()})
    k1 = cache_key(ckpt, {"a": 1}, ["mid"])
    assert k1 == cache_key(ckpt, {"a": 1}, ["mid"]) and k1 != cache_key(ckpt, {"a": 2}, ["mid"])
    with torch.no_grad():
        next(teacher.parameters()).add_(1.0)
    save_checkpoint(ckpt, {"format": 1, "model": teacher.state_dict()})
    assert cache_key(ckpt, {"a": 1}, ["mid"]) != k1


def test_partly_labelled_cache_serves_truth_only_on_its_first_batches(tmp_path):
    teacher = build_model("nafnet", **SMALL["nafnet"])
    images = [dead_leaves(np.random.default_rng(0), size=48)]
    ds = PatchPairDataset(images, 16, 2, 4, seed=0)
    path = build_teacher_cache(teacher, ds, 4, [], tmp_path / "cache.pt")
    mixed = CachedBatches(path, length=8, seed=0, labelled=1)
    assert "sharp" in mixed[0][1] and "sharp" in mixed[4][1]  # cached batch 0, twice
    assert all("sharp" not in mixed[i][1] and "teacher" in mixed[i][1] for i in (1, 2, 3, 5))
    # Without the teacher (the scratch student) only the labelled batch is served, cycled.
    scratch = CachedBatches(path, length=8, seed=0, with_teacher=False, labelled=1)
    whole = CachedBatches(path, length=8, seed=0, with_teacher=False)

    def flips(t):
        turned = [torch.rot90(t, k, dims=(-2, -1)) for k in range(4)]
        return turned + [torch.flip(f, dims=(-1,)) for f in turned]

    for i in range(8):
        inputs, sharp = scratch[i]
        # The same flip of the labelled batch's inputs and of its ground truth: a matching pair.
        matches = [k for k, f in enumerate(flips(whole[0][0])) if torch.equal(inputs, f)]
        assert matches
        assert torch.equal(sharp, flips(whole[0][1])[matches[0]])
    with pytest.raises(ValueError, match="5 labelled batches asked of 4 cached"):
        CachedBatches(path, length=8, labelled=5)


def test_unlabelled_batches_learn_from_the_teacher_alone_when_allowed():
    teacher = build_model("unshuffle", **SMALL["unshuffle"])
    student = build_model("unshuffle", **SMALL["unshuffle"])
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        t_out = teacher(x)
    weights = DistillWeights(ground_truth=1.0, response=1.0, feature=0.0)
    loss, logs = DistillationLoss(teacher, weights, allow_unlabelled=True)(
        student, x, {"teacher": t_out}, 0
    )
    assert set(logs) == {"response"} and float(loss.detach()) == pytest.approx(logs["response"])
    loss, logs = DistillationLoss(teacher, weights, allow_unlabelled=True)(
        student, x, {"teacher": t_out, "sharp": x}, 0
    )
    assert set(logs) == {"gt", "response"}
    with pytest.raises(ValueError, match="no sharp images"):  # the default stays strict
        DistillationLoss(teacher, weights)(student, x, {"teacher": t_out}, 0)


def test_every_profiles_teacher_cache_is_bounded():
    """The cache is memory-mapped, so its size bounds disk and pinned RAM: at most 8 GiB for
    any profile (the `full` profile once asked for ~90 GB, stacked in RAM)."""
    from pixel_utils.models.networks import build_model
    from pixel_utils.profiles import PROFILES
    from pixel_utils.training.distillation import cache_bytes, match_taps

    for profile in PROFILES.values():
        student = build_model(profile.student, **profile.student_kwargs)
        teacher = build_model(profile.teacher, **profile.pretrain_kwargs)  # the shipped one
        info = teacher.feature_info()
        pairs = match_taps(student.feature_info(), info)
        if profile.feature_taps == "last":
            pairs = pairs[-1:]
        size = cache_bytes(profile, {t: info[t] for _, t in pairs})
        assert 0 < size <= 8 * 2**30, (profile.name, size / 2**30)


def test_cache_is_memory_mapped_and_matches_what_the_teacher_made(tmp_path):
    import torch

    from pixel_utils.models.networks import build_model
    from pixel_utils.training.distillation import CachedBatches, build_teacher_cache

    teacher = build_model("nafnet", width=8, enc_blocks=(1,), middle_blocks=1, dec_blocks=(1,))
    images = [dead_leaves(np.random.default_rng(0), size=48)]
    ds = PatchPairDataset(images, 16, 2, 3, seed=0)
    path = build_teacher_cache(teacher, ds, 3, ["enc0"], tmp_path / "c.pt")
    cached = CachedBatches(path, 3, seed=0)
    assert cached.data["inputs"].shape == (3, 2, 3, 16, 16)
    with torch.no_grad():
        expected = teacher(ds[1][0]).clamp(0, 1).half()
    assert torch.equal(cached.data["teacher"][1], expected)
    assert torch.equal(cached.data["inputs"][2], ds[2][0].half())


def test_teacher_cache_resumes_after_an_interruption(tmp_path):
    """A long cache is labelled in shards: after a crash only the missing ones are labelled,
    and the joined cache is the one an uninterrupted build makes."""
    teacher = build_model("nafnet", width=8, enc_blocks=(1,), middle_blocks=1, dec_blocks=(1,))
    images = [dead_leaves(np.random.default_rng(0), size=48)]
    ds = PatchPairDataset(images, 16, 2, 5, seed=0)
    whole = build_teacher_cache(teacher, ds, 5, ["enc0"], tmp_path / "whole.pt", shard_batches=2)
    assert not (tmp_path / "whole.pt.partial").exists()

    asked = []

    class Crashing:
        def __init__(self, crash_at=None):
            self.crash_at = crash_at

        def __getitem__(self, i):
            asked.append(i)
            if i == self.crash_at:
                raise KeyboardInterrupt
            return ds[i]

    path = tmp_path / "resumed.pt"
    with pytest.raises(KeyboardInterrupt):
        build_teacher_cache(teacher, Crashing(3), 5, ["enc0"], path, shard_batches=2)
    assert not path.exists() and len(list((tmp_path / "resumed.pt.partial").glob("*.pt"))) == 1
    asked.clear()
    build_teacher_cache(teacher, Crashing(), 5, ["enc0"], path, shard_batches=2)
    assert asked == [2, 3, 4]  # the first shard (batches 0-1) was kept
    a, b = torch.load(whole, weights_only=True), torch.load(path, weights_only=True)
    for key in ("inputs", "sharp", "teacher"):
        assert torch.equal(a[key], b[key])
    assert torch.equal(a["features"]["enc0"], b["features"]["enc0"])
    assert not (tmp_path / "resumed.pt.partial").exists()
