import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from pixel_utils.data.datasets import PatchPairDataset
from pixel_utils.data.sources import dead_leaves
from pixel_utils.training.loop import (
    TrainConfig,
    TrainingDiverged,
    load_checkpoint,
    model_from_checkpoint,
    train,
)

TINY = {"scale": 2, "channels": 8, "blocks": 1}


@pytest.fixture(scope="module")
def images():
    return [dead_leaves(np.random.default_rng(i), size=48) for i in range(3)]


def _dataset(images, steps):
    return lambda rank: PatchPairDataset(images, 24, 4, steps, seed=0, rank=rank)


def _val(images):
    from pixel_utils.data.degradations import DegradationSpec, degrade

    spec = DegradationSpec("gaussian", {"sigma": 1.5}, 0.01)
    return [
        (degrade(im[:32, :32], spec, np.random.default_rng(0))[0], im[:32, :32]) for im in images
    ]


def test_twenty_steps_lower_the_loss(images, tmp_path):
    cfg = TrainConfig(steps=20, lr=3e-3, warmup_steps=2, val_every=10, ema_decay=None)
    result = train("unshuffle", TINY, _dataset(images, 20), cfg, tmp_path / "a.pt", _val(images))
    losses = [v for _, v in result.history["loss"]]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    assert [v[0] for v in result.history["val"]] == [10, 20]
    assert not result.reused


def test_checkpoint_is_safe_to_load_and_carries_its_config(images, tmp_path):
    cfg = TrainConfig(steps=4, warmup_steps=1, val_every=100)
    train("unshuffle", TINY, _dataset(images, 4), cfg, tmp_path / "c.pt", data_key={"x": 1})
    ckpt = torch.load(tmp_path / "c.pt", weights_only=True)
    assert ckpt["model_name"] == "unshuffle" and ckpt["model_kwargs"] == TINY
    assert ckpt["config"]["steps"] == 4 and ckpt["data"] == {"x": 1}
    assert ckpt["step"] == 4 and ckpt["complete"] and "optimizer" in ckpt
    model = model_from_checkpoint(tmp_path / "c.pt")
    assert model(torch.rand(1, 3, 16, 16)).shape == (1, 3, 16, 16)
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temp file


def test_matching_checkpoint_is_reused_and_changed_config_retrains(images, tmp_path):
    cfg = TrainConfig(steps=4, warmup_steps=1, val_every=100)
    path = tmp_path / "r.pt"
    first = train("unshuffle", TINY, _dataset(images, 4), cfg, path)
    again = train("unshuffle", TINY, _dataset(images, 4), cfg, path)
    assert again.reused and again.step == 4
    for a, b in zip(
        first.model.state_dict().values(), again.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    changed = train("unshuffle", TINY, _dataset(images, 4), TrainConfig(steps=4, lr=5e-4), path)
    assert not changed.reused
    forced = train("unshuffle", TINY, _dataset(images, 4), cfg, path, retrain=True)
    assert not forced.reused


def test_resume_continues_from_the_saved_step_and_matches_an_uninterrupted_run(images, tmp_path):
    cfg = TrainConfig(steps=8, warmup_steps=1, val_every=100, checkpoint_every=4)
    straight = train("unshuffle", TINY, _dataset(images, 8), cfg, tmp_path / "s.pt")

    class Interrupt(Exception):
        pass

    def interrupting_loss(model, x, y, step):
        if step == 6:
            raise Interrupt
        return torch.nn.functional.l1_loss(model(x), y), {}

    cfg_l1 = TrainConfig(steps=8, warmup_steps=1, val_every=100, checkpoint_every=4, loss="l1")
    with pytest.raises(Interrupt):
        train(
            "unshuffle",
            TINY,
            _dataset(images, 8),
            cfg_l1,
            tmp_path / "i.pt",
            loss_fn=interrupting_loss,
        )
    assert load_checkpoint(tmp_path / "i.pt")["step"] == 4
    resumed = train("unshuffle", TINY, _dataset(images, 8), cfg_l1, tmp_path / "i.pt")
    assert resumed.step == 8 and len(resumed.history["loss"]) == 8
    uninterrupted = train("unshuffle", TINY, _dataset(images, 8), cfg_l1, tmp_path / "u.pt")
    for a, b in zip(
        resumed.model.state_dict().values(), uninterrupted.model.state_dict().values(), strict=True
    ):
        assert torch.allclose(a, b, atol=1e-6)
    assert straight.step == 8


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(images, tmp_path):
    cfg = TrainConfig(steps=10, warmup_steps=1, val_every=100, checkpoint_every=3)

    def exploding(model, x, y, step):
        loss = torch.nn.functional.l1_loss(model(x), y)
        return (loss * float("nan") if step == 5 else loss), {}

    with pytest.raises(TrainingDiverged, match="step 5"):
        train("unshuffle", TINY, _dataset(images, 10), cfg, tmp_path / "n.pt", loss_fn=exploding)
    assert load_checkpoint(tmp_path / "n.pt")["step"] == 3


def test_corrupt_or_foreign_checkpoints_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt: not a readable checkpoint"):
        load_checkpoint(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(ValueError, match="not a pixel_utils checkpoint"):
        load_checkpoint(foreign)


DDP_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np, torch, torch.distributed as dist
    from pixel_utils.data.datasets import PatchPairDataset
    from pixel_utils.training.distillation import DistillationLoss, DistillWeights, FeatureAdapters
    from pixel_utils.training.distillation import match_taps
    from pixel_utils.models.networks import build_model
    from pixel_utils.data.sources import dead_leaves
    from pixel_utils.training.loop import TrainConfig, train
    images = [dead_leaves(np.random.default_rng(i), size=48) for i in range(3)]
    cfg = TrainConfig(steps=5, warmup_steps=1, val_every=100, ema_decay=None)
    data = lambda rank: PatchPairDataset(images, 24, 4, 5, seed=0, rank=rank)
    student_kwargs = {"scale": 2, "channels": 8, "blocks": 1}
    result = train("unshuffle", student_kwargs, data, cfg, None, device="cpu")
    rank = dist.get_rank()
    torch.save(result.model.state_dict(), f"{sys.argv[1]}/rank{rank}.pt")
    # Distillation with feature adapters, which live outside the DDP-wrapped student. Each
    # rank starts them from different weights: training must bring them (and keep them) equal.
    torch.manual_seed(0)
    teacher = build_model("unshuffle", scale=2, channels=8, blocks=2)
    student = build_model("unshuffle", **student_kwargs)
    pairs = match_taps(student.feature_info(), teacher.feature_info())
    torch.manual_seed(100 + rank)
    adapters = FeatureAdapters(student.feature_info(), teacher.feature_info(), pairs)
    loss = DistillationLoss(teacher, DistillWeights(feature=1.0), adapters)
    kd = train("unshuffle", student_kwargs, data, cfg, None, loss_fn=loss, extra=adapters,
               device="cpu")
    state = {**kd.model.state_dict()}
    state.update({"adapter." + k: v for k, v in adapters.state_dict().items()})
    torch.save(state, f"{sys.argv[1]}/kd_rank{rank}.pt")
    dist.destroy_process_group()
    """
)


def test_ddp_two_cpu_processes_end_with_identical_weights(tmp_path):
    """Plain training and distillation with feature adapters: both gloo ranks end with the
    same student and the same adapters."""
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(script), str(tmp_path)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("rank{}.pt", "kd_rank{}.pt"):
        a = torch.load(tmp_path / name.format(0), weights_only=True)
        b = torch.load(tmp_path / name.format(1), weights_only=True)
        assert a.keys() == b.keys()
        assert any(k.startswith("adapter.") for k in a) == name.startswith("kd")
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)


def test_torchrun_with_more_ranks_than_gpus_is_a_clear_error(monkeypatch):
    """NCCL cannot put two ranks on one GPU; say so before joining the group (found on an
    H200 machine, where the two-rank test above picked CUDA and NCCL failed)."""
    import torch.distributed as dist

    from pixel_utils.training import loop

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(RuntimeError, match="local rank 1, but this node has 1 GPU"):
        loop._distributed(torch.device("cuda"))
    assert not dist.is_initialized()
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert loop._distributed(torch.device("cpu")) == (0, 1, torch.device("cpu"))


def test_a_run_stopped_by_the_time_cap_is_not_finished(images, tmp_path):
    """Cut short by the wall-time cap: saved incomplete, never reused, resumed next time."""
    ckpt = tmp_path / "capped.pt"
    capped = TrainConfig(steps=30, warmup_steps=1, val_every=100, ema_decay=None,
                         time_budget_s=0.0)  # fmt: skip
    first = train("unshuffle", TINY, _dataset(images, 30), capped, ckpt)
    assert "stopped_early" in first.history and first.step == 1
    saved = load_checkpoint(ckpt)
    assert not saved["complete"] and saved["step"] == 1
    # The cap is not part of the run's identity: without it the same run carries on.
    uncapped = TrainConfig(steps=30, warmup_steps=1, val_every=100, ema_decay=None)
    second = train("unshuffle", TINY, _dataset(images, 30), uncapped, ckpt)
    assert not second.reused and second.step == 30 and "stopped_early" not in second.history
    assert [s for s, _ in second.history["loss"]] == list(range(1, 31))
    assert load_checkpoint(ckpt)["complete"]


def test_evaluation_only_loads_and_names_the_notebook_to_run(tmp_path, monkeypatch):
    from pixel_utils.profiles import resolve_profile
    from pixel_utils.training import stages
    from pixel_utils.training.loop import ArtefactMissing

    monkeypatch.setenv("PIXEL_ROOT", str(tmp_path))
    with pytest.raises(ArtefactMissing, match="missing; run notebook 03"):
        stages.trained_models(resolve_profile("smoke"), load_only=True)
    with pytest.raises(ArtefactMissing, match="missing; run notebook 02"):
        stages.train_teacher(resolve_profile("smoke"), load_only=True)
    assert not (tmp_path / "data" / "smoke" / "checkpoints").exists()  # nothing was trained
    # A checkpoint made with other settings is not silently replaced either.
    p = resolve_profile("smoke", teacher_steps=2)
    stages.train_teacher(p)
    ckpt = tmp_path / "data" / p.run_name / "checkpoints" / "teacher.pt"
    target = tmp_path / "data" / "smoke" / "checkpoints" / "teacher.pt"
    target.parent.mkdir(parents=True)
    target.write_bytes(ckpt.read_bytes())
    with pytest.raises(ArtefactMissing, match="other settings"):
        stages.train_teacher(resolve_profile("smoke"), load_only=True)


def test_weights_digest_follows_the_weights_not_the_bytes(tmp_path):
    from pixel_utils.artefacts import weights_sha256
    from pixel_utils.models.networks import build_model

    torch.manual_seed(0)
    model = build_model("unshuffle", scale=4, channels=8, blocks=1)
    same = build_model("unshuffle", scale=4, channels=8, blocks=1)
    same.load_state_dict(model.state_dict())
    assert weights_sha256(model) == weights_sha256(same)
    with torch.no_grad():
        next(same.parameters()).view(-1)[0] += 1e-6
    assert weights_sha256(model) != weights_sha256(same)


def test_the_psnr_loss_is_minus_the_mean_psnr_of_the_batch_images():
    """It agrees with the metrics module's PSNR (float64, peak 1), image by image, and weighs
    images in decibels: halving a small error moves it as much as halving a large one, where
    the squared error barely notices the small one."""
    from pixel_utils.evaluation.metrics import psnr
    from pixel_utils.training.losses import mse, psnr_loss

    rng = np.random.default_rng(0)
    target = torch.from_numpy(0.2 + 0.6 * rng.random((2, 3, 16, 16), dtype=np.float32))
    error = torch.from_numpy(rng.uniform(-1, 1, (2, 3, 16, 16)).astype(np.float32))
    pred = target + error * torch.tensor([0.1, 0.01]).view(2, 1, 1, 1)
    expected = -np.mean([
        psnr(p.permute(1, 2, 0).double().numpy(), t.permute(1, 2, 0).double().numpy())
        for p, t in zip(pred, target, strict=True)
    ])  # fmt: skip
    assert float(psnr_loss(pred, target)) == pytest.approx(expected, abs=1e-3)

    def gain(loss, which):  # how much halving one image's error lowers the loss
        halved = error.clone()
        halved[which] /= 2
        scales = torch.tensor([0.1, 0.01]).view(2, 1, 1, 1)
        return float(loss(pred, target) - loss(target + halved * scales, target))

    assert gain(psnr_loss, 0) == pytest.approx(gain(psnr_loss, 1), rel=1e-3)
    assert gain(mse, 1) < 0.02 * gain(mse, 0)


def test_notebook_05_shows_this_runs_student_next_to_the_shipped_one(tmp_path, monkeypatch):
    """The crops show what this run's budget bought and what `pixel-sharpen` serves; a fresh
    clone of the default profile, with no run of its own, sees the shipped student alone."""
    from pixel_utils.app.pretrained import load_pretrained, shipped_path
    from pixel_utils.evaluation.inference import sharpen
    from pixel_utils.profiles import resolve_profile
    from pixel_utils.training import stages

    if not shipped_path("student").exists():
        pytest.skip("no shipped student (make student)")
    monkeypatch.setenv("PIXEL_ROOT", str(tmp_path))
    fresh = stages.display_models(resolve_profile("default"))
    assert list(fresh) == ["teacher", "shipped student"]
    p = resolve_profile("smoke", teacher_steps=2, student_steps=2, cache_batches=2)
    stages.trained_models(p)
    shown = stages.display_models(p)
    assert list(shown) == ["teacher", "this run's student", "shipped student"]
    image = np.random.default_rng(0).random((32, 48, 3), dtype=np.float32)
    served = sharpen(load_pretrained("student"), image)
    assert np.array_equal(sharpen(shown["shipped student"], image), served)
    assert not np.array_equal(sharpen(shown["this run's student"], image), served)
