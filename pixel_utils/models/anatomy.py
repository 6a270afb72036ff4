"""Where a network's parameters and compute go, and how far it sees: for the course.

* :func:`stage_costs`: parameters and MACs of each top-level stage (intro, encoder levels,
  downsamplers, middle, upsamplers, decoder levels, ending) from ``torch.utils.flop_counter``.
* :func:`receptive_field`: how far an output pixel depends on the input, measured from the
  gradient of one output pixel (the *effective* receptive field), next to the support of that
  gradient (the *theoretical* one for convolutions).
* :func:`lr_schedule_figure`: the warm-up + cosine learning-rate schedule of a run.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from pixel_utils.models.networks import count_parameters


def _stages(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Top-level stages, with the U-Net's module lists split into their levels."""
    stages = {}
    for name, child in model.named_children():
        if isinstance(child, torch.nn.ModuleList):
            for i, sub in enumerate(child):
                stages[f"{name}.{i}"] = sub
        else:
            stages[name] = child
    return stages


@torch.no_grad()
def stage_costs(model: torch.nn.Module, size: int = 256):
    """A table: one row per stage with its parameters and GMACs per megapixel (and shares)."""
    import pandas as pd

    model = model.eval()
    x = torch.rand(1, 3, size, size, device=next(model.parameters()).device)
    counter = FlopCounterMode(display=False)
    with counter:
        model(x)
    per_module = counter.get_flop_counts()
    # Keys are "Global", then the model's class name, then dotted paths below it.
    root = type(model).__name__
    rows = []
    for name, module in _stages(model).items():
        flops = sum(per_module.get(f"{root}.{name}", {}).values())
        params = count_parameters(module)
        if params == 0 and flops == 0:
            continue
        rows.append({"stage": name, "parameters": params,
                     "GMAC/MP": flops / 2 / 1e9 / (size * size / 1e6)})  # fmt: skip
    table = pd.DataFrame(rows).set_index("stage")
    table["% params"] = 100 * table["parameters"] / table["parameters"].sum()
    table["% MACs"] = 100 * table["GMAC/MP"] / table["GMAC/MP"].sum()
    return table


def full_resolution_stages(table) -> list[str]:
    """The stages of a :func:`stage_costs` table that run at full resolution: the intro, the
    first encoder level, the last decoder level and the ending. Decoders (and upsamplers) are
    numbered from the bottom of the U, so the full-resolution decoder is the last one."""
    levels = sum(name.startswith("decoders.") for name in table.index)
    names = ("intro", "encoders.0", f"decoders.{levels - 1}", "ending")
    return [name for name in names if name in table.index]


def receptive_field(model: torch.nn.Module, size: int = 129, mass: float = 0.95) -> dict:
    """Measured receptive field of the centre output pixel on a ``size``² input.

    Returns ``{"support": side of the box where the input gradient is non-zero,
    "effective": side of the centred box holding ``mass`` of the absolute gradient}``.
    Global pooling (channel attention) makes the support the whole input: every pixel then
    influences every output, if only a little.
    """
    model = model.eval()
    device = next(model.parameters()).device
    x = torch.rand(1, 3, size, size, device=device, requires_grad=True)
    c = size // 2
    model(x)[0, :, c, c].sum().backward()
    g = x.grad.abs().sum(1)[0].cpu().numpy()
    ys, xs = np.nonzero(g > g.max() * 1e-6)
    support = int(max(np.ptp(ys), np.ptp(xs)) + 1)
    total = g.sum()
    effective = size
    for r in range(size // 2 + 1):
        if g[c - r : c + r + 1, c - r : c + r + 1].sum() >= mass * total:
            effective = 2 * r + 1
            break
    return {"support": support, "effective": effective, "input": size}


def lr_schedule_figure(config, label: str = ""):
    """The learning rate of every step of a :class:`~pixel_utils.training.loop.TrainConfig`."""
    import matplotlib.pyplot as plt

    steps = np.arange(config.steps)
    fig, ax = plt.subplots(figsize=(6.5, 3.0))
    ax.plot(steps, [config.lr_at(int(s)) for s in steps], label=label or None)
    ax.axvline(config.warmup_steps, color="gray", ls=":", lw=0.8)
    ax.text(config.warmup_steps, config.lr * 0.5, " end of warm-up", fontsize=8)
    ax.set(xlabel="step", ylabel="learning rate", title="Warm-up, then cosine decay")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def stage_cost_figure(table):
    """Side-by-side bars: each stage's share of the parameters and of the MACs."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.6))
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["% params"], 0.4, label="% of parameters")
    ax.bar(x + 0.2, table["% MACs"], 0.4, label="% of MACs")
    ax.set_xticks(x, table.index, rotation=60, ha="right", fontsize=8)
    ax.set(ylabel="share (%)", title="Where the teacher's parameters and compute go")
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    fig.tight_layout()
    return fig
