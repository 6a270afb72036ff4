"""The one training loop, used for the teacher, the distilled student and the scratch student.

AdamW with a linear warm-up and a cosine decay, a reconstruction loss (or any ``loss_fn``),
gradient clipping, optional EMA weights, validation PSNR/SSIM every ``val_every`` steps, a tqdm
bar, a step budget (and an optional wall-time cap). The device is picked automatically (CUDA,
MPS, CPU) with bf16 autocast on CUDA. Launched with ``torchrun`` it trains with
DistributedDataParallel: rank ``r`` draws its own batches and rank 0 writes the checkpoint.

Checkpoints are plain dicts of tensors and Python values (``torch.load(weights_only=True)``
works), written atomically (temp file + rename). They carry the model name and kwargs, the
training config, the data key, the step, optimizer and EMA state, and the history. A run
whose checkpoint has the same *key* (model, config, data) is reused when complete and resumed
when not; ``retrain=True`` starts over.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel

from pixel_utils.artefacts import atomic_torch_save
from pixel_utils.evaluation.inference import pick_device
from pixel_utils.evaluation.metrics import psnr, ssim
from pixel_utils.models.networks import build_model, set_test_time_window
from pixel_utils.progress import tqdm
from pixel_utils.seeding import set_seed
from pixel_utils.training.losses import RECONSTRUCTION_LOSSES
from pixel_utils.training.quantisation import plain_state_dict

CHECKPOINT_FORMAT = 1


class ArtefactMissing(FileNotFoundError):
    """A stage that only loads found no matching, complete artefact."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    lr: float = 1e-3
    final_lr_fraction: float = 0.01  # cosine decays to lr × this
    warmup_steps: int = 50
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.9)
    loss: str = "charbonnier"
    grad_clip: float = 1.0
    ema_decay: float | None = 0.999
    val_every: int = 100
    checkpoint_every: int = 250
    seed: int = 0
    # A wall-time cap in seconds. Stopping on time makes a run depend on machine speed, so the
    # profiles budget in steps and keep this only as a safety net.
    time_budget_s: float | None = None

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
        cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        return self.lr * (self.final_lr_fraction + (1 - self.final_lr_fraction) * cosine)


@dataclass
class TrainResult:
    model: nn.Module  # the weights to use: EMA weights when EMA is on
    history: dict
    step: int
    seconds: float
    reused: bool
    checkpoint: Path | None
    extra: nn.Module | None = None
    info: dict = field(default_factory=dict)


def reconstruction_loss_fn(name: str) -> Callable:
    criterion = RECONSTRUCTION_LOSSES[name]

    def loss_fn(model, blurred, target, step):
        loss = criterion(model(blurred), target)
        return loss, {}

    return loss_fn


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write ``payload`` to ``path`` atomically: a killed write never leaves a broken file."""
    atomic_torch_save(path, payload)


def _load_failure(err: Exception) -> str:
    """Why ``torch.load`` refused a file, without its advice to load it unsafely."""
    text = str(err)
    if text.startswith("Weights only load failed"):  # a pickle of other objects than tensors
        marker = "WeightsUnpickler error:"
        if marker in text:
            detail = text.split(marker, 1)[1]
        else:  # the advice, then the reason, then a pointer to the documentation
            paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
            detail = next((p for p in paragraphs[1:] if not p.startswith("Check the")), "")
        detail = detail.strip().split(". ")[0].rstrip(".")
        why = "it holds objects that are not loaded, for safety"
        return f"{why}: {detail}" if detail else why
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint safely (no pickled code runs); errors name the file and the problem."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for corrupt files
        raise ValueError(f"{path}: not a readable checkpoint ({_load_failure(err)})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT or "model" not in ckpt:
        raise ValueError(f"{path}: not a pixel_utils checkpoint (missing format/model entries)")
    return ckpt


def model_from_checkpoint(
    path: str | os.PathLike, use_ema: bool = True, device=None, tlc: bool = True
) -> nn.Module:
    """Rebuild the model a checkpoint describes and load its (EMA) weights, in eval mode.

    With ``tlc`` (the default), global channel-attention pooling is replaced by local pooling
    over 1.5× the training patch (TLC,
    :func:`~pixel_utils.models.networks.set_test_time_window`), so a full-size photo is seen
    with the statistics the network learnt on. Inputs no larger than that window are unaffected.
    """
    ckpt = load_checkpoint(path)
    model = build_model(ckpt["model_name"], **ckpt["model_kwargs"])
    patch = (ckpt.get("data") or {}).get("patch_size")
    if tlc and patch:
        set_test_time_window(model, int(patch))
    state = plain_state_dict(ckpt["ema"] if use_ema and ckpt.get("ema") else ckpt["model"])
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not fit {ckpt['model_name']} ({err})") from None
    return model.to(device or "cpu").eval()


def _ema_with_warmup(decay: float) -> Callable:
    """EMA whose decay ramps up as min(decay, (1 + n) / (10 + n)): early averages are not
    dominated by the random initial weights, which matters for short CPU runs."""

    def average(averaged, current, num_averaged):
        n = float(num_averaged)
        d = min(decay, (1 + n) / (10 + n))
        return d * averaged + (1 - d) * current

    return average


def _ema_weights(ema: AveragedModel) -> dict:
    return {k.removeprefix("module."): v for k, v in ema.state_dict().items() if k != "n_averaged"}


# ----------------------------------------------------------------------------- validation


@torch.no_grad()
def validate(model: nn.Module, val_set: list[tuple[np.ndarray, np.ndarray]], device) -> tuple:
    """Mean PSNR and SSIM of ``model`` over ``(degraded, sharp)`` HWC pairs."""
    model.eval()
    scores = []
    for degraded, sharp in val_set:
        x = torch.from_numpy(np.ascontiguousarray(degraded)).permute(2, 0, 1)[None].to(device)
        out = model(x).float().clamp(0, 1)[0].permute(1, 2, 0).cpu().numpy()
        scores.append((psnr(out, sharp), ssim(out, sharp)))
    model.train()
    return tuple(float(np.mean(s)) for s in zip(*scores, strict=True))


# ----------------------------------------------------------------------------- the loop


def _to_device(batch, device):
    """Move tensors (also inside tuples, lists and dicts) to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """(rank, world size, this rank's device); joins the process group when launched by
    torchrun. The backend follows the device: NCCL with one GPU per rank (rank ``r`` of a
    node on GPU ``r``; NCCL refuses two ranks on one GPU), gloo on the CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            local_rank, gpus = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
            if local_rank >= gpus:
                raise RuntimeError(
                    f"torchrun started local rank {local_rank}, but this node has {gpus} GPU(s) "
                    f"and each rank needs its own: launch --nproc_per_node={gpus}, or train on "
                    "the CPU (device='cpu')"
                )
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if dist.is_initialized():
        if device.type == "cuda":
            device = torch.device("cuda", torch.cuda.current_device())
        return dist.get_rank(), dist.get_world_size(), device
    return 0, 1, device


def train(
    model_name: str,
    model_kwargs: dict,
    make_dataset: Callable[[int], torch.utils.data.Dataset],
    config: TrainConfig,
    checkpoint: str | os.PathLike | None,
    val_set: list | None = None,
    data_key: dict | None = None,
    loss_fn: Callable | None = None,
    extra: nn.Module | None = None,
    retrain: bool = False,
    device: str | None = None,
    desc: str = "train",
    load_only: str | None = None,
    init_state: dict | None = None,
    prepare_model: Callable[[nn.Module], None] | None = None,
) -> TrainResult:
    """Train ``model_name(**model_kwargs)`` for ``config.steps`` steps.

    With ``load_only`` (a hint such as ``"run notebook 02"``) nothing is trained: a complete
    checkpoint with the same key is loaded, and anything else raises :class:`ArtefactMissing`
    naming the checkpoint, what is wrong with it and the hint.

    ``make_dataset(rank)`` returns a Dataset whose item ``i`` is batch ``i`` (see
    :class:`~pixel_utils.data.datasets.PatchPairDataset`); at least ``config.steps`` items long.
    ``loss_fn(model, inputs, targets, step) -> (loss, logs)`` defaults to the config's
    reconstruction loss; ``extra`` holds further trainable modules (distillation adapters),
    optimised and checkpointed with the model. ``init_state`` starts a fresh model from these
    weights (through the model's ``load_single_frame`` where it has one); say where they come
    from in ``data_key``, so a checkpoint from other starting weights is not reused.
    ``prepare_model(model)`` changes the model in place before training (quantisation-aware
    rounding, :mod:`~pixel_utils.training.quantisation`); say so in ``data_key`` too.
    """
    rank, world, device = _distributed(pick_device(device))
    checkpoint = Path(checkpoint) if checkpoint else None
    key = {
        "model_name": model_name,
        "model_kwargs": dict(model_kwargs),
        "config": {k: v for k, v in asdict(config).items() if k != "time_budget_s"},
        "data": data_key or {},
        "world_size": world,
    }
    start_step, history, elapsed = 0, {"loss": [], "val": []}, 0.0

    set_seed(config.seed)
    model = build_model(model_name, **model_kwargs)
    if init_state is not None:
        getattr(model, "load_single_frame", model.load_state_dict)(init_state)
    if prepare_model is not None:
        prepare_model(model)
    model = model.to(device)
    ema = None
    if config.ema_decay:
        ema = AveragedModel(model, avg_fn=_ema_with_warmup(config.ema_decay))
    if extra is not None:
        extra = extra.to(device)
    params = list(model.parameters()) + (list(extra.parameters()) if extra is not None else [])
    optimizer = torch.optim.AdamW(
        params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
    )

    ckpt = None
    if checkpoint and checkpoint.exists() and not retrain:
        ckpt = load_checkpoint(checkpoint, map_location=device)
        if ckpt.get("key") != key:
            if load_only:
                raise ArtefactMissing(f"{checkpoint}: made with other settings; {load_only}")
            if rank == 0:
                print(f"{checkpoint}: settings changed since it was written; training afresh")
            ckpt = None
    if load_only and (ckpt is None or not ckpt["complete"]):
        why = "missing" if ckpt is None else f"unfinished (step {ckpt['step']} of {config.steps})"
        raise ArtefactMissing(f"{checkpoint}: {why}; {load_only}")
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        if ema is not None and ckpt.get("ema_state"):
            ema.load_state_dict(ckpt["ema_state"])
        if extra is not None and ckpt.get("extra"):
            extra.load_state_dict(ckpt["extra"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start_step, history, elapsed = ckpt["step"], ckpt["history"], ckpt["elapsed_s"]
        history.pop("stopped_early", None)  # this call carries on from where that one stopped
        if ckpt["complete"]:
            final = ema.module if ema is not None else model
            return TrainResult(final.eval(), history, start_step, elapsed, True, checkpoint, extra)
        if rank == 0:
            print(f"resuming {checkpoint} from step {start_step}")

    train_model = model
    if world > 1:
        train_model = nn.parallel.DistributedDataParallel(model)
        if extra is not None:  # DDP only syncs the model: start every rank's extra from rank 0's
            for tensor in extra.state_dict().values():
                dist.broadcast(tensor, src=0)
    loss_fn = loss_fn or reconstruction_loss_fn(config.loss)
    dataset = make_dataset(rank)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")

    def payload(step: int, complete: bool) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "model_name": model_name,
            "model_kwargs": dict(model_kwargs),
            "config": asdict(config),
            "data": data_key or {},
            "key": key,
            "step": step,
            "complete": complete,
            "model": model.state_dict(),
            "ema": plain_state_dict(_ema_weights(ema)) if ema is not None else None,
            "ema_state": ema.state_dict() if ema is not None else None,
            "extra": extra.state_dict() if extra is not None else None,
            "optimizer": optimizer.state_dict(),
            "history": history,
            "elapsed_s": elapsed,
        }

    model.train()
    began = time.perf_counter() - elapsed
    smoothed = None
    last_val = history["val"][-1][1] if history["val"] else float("nan")
    bar = tqdm(
        range(start_step, config.steps), desc=desc, initial=start_step, total=config.steps,
        disable=rank != 0, dynamic_ncols=True,
    )  # fmt: skip
    step = start_step
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = config.lr_at(step)
        inputs, targets = _to_device(dataset[step], device)
        with autocast:
            loss, logs = loss_fn(train_model, inputs, targets, step)
        if not torch.isfinite(loss):
            where = f"; the last good checkpoint is {checkpoint}" if checkpoint else ""
            raise TrainingDiverged(f"{desc}: loss became {loss.item()} at step {step}{where}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if world > 1 and extra is not None:
            # The distillation adapters live outside DDP, so average their gradients here too;
            # otherwise each rank's adapters drift apart while the student stays in sync.
            for param in extra.parameters():
                if param.grad is not None:
                    dist.all_reduce(param.grad)
                    param.grad /= world
        if config.grad_clip:
            nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        if ema is not None:
            ema.update_parameters(model)
        value = loss.item()
        smoothed = value if smoothed is None else 0.95 * smoothed + 0.05 * value
        history["loss"].append([step + 1, value])
        done = step + 1
        elapsed = time.perf_counter() - began
        out_of_time = config.time_budget_s is not None and elapsed > config.time_budget_s
        if rank == 0 and val_set and (done % config.val_every == 0 or done == config.steps):
            last_val, last_ssim = validate(
                ema.module if ema is not None else model, val_set, device
            )
            history["val"].append([done, last_val, last_ssim])
        if rank == 0:
            # A run without validation photos (a folder adaptation) shows its loss alone.
            shown = {"val_psnr": f"{last_val:.2f}"} if val_set else {}
            bar.set_postfix(loss=f"{smoothed:.4f}", **shown, refresh=False)
        if out_of_time:
            history["stopped_early"] = (
                f"time budget {config.time_budget_s:.0f} s reached at step {done}"
            )
            break
        if rank == 0 and checkpoint and done % config.checkpoint_every == 0 and done < config.steps:
            save_checkpoint(checkpoint, payload(done, complete=False))
    bar.close()
    done = min(step + 1, config.steps) if config.steps > start_step else start_step
    if rank == 0 and checkpoint:
        # A run cut short by the time cap is saved as incomplete: never reused as finished,
        # resumed by the next call instead.
        save_checkpoint(checkpoint, payload(done, complete=done >= config.steps))
    final = ema.module if ema is not None else model
    return TrainResult(final.eval(), history, done, elapsed, False, checkpoint, extra)
