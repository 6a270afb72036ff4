"""Model cost: parameters, MACs, latency, frames per second and peak memory.

* MACs come from ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2), counted once at a
  given resolution; convolutions dominate, so MACs scale with pixels for every model here.
* Latency is the median time per call over blocks of calls timed by
  ``torch.utils.benchmark.Timer`` (:func:`median_seconds`), under ``torch.no_grad`` in fp32,
  with the thread count stated (``torch.get_num_threads()`` unless given); CUDA timings
  synchronise (the Timer does).
* Peak memory: the largest total of tensors alive during one forward pass (CUDA:
  ``torch.cuda.max_memory_allocated``; CPU: ``torch.profiler`` memory events).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils import benchmark
from torch.utils.flop_counter import FlopCounterMode

from pixel_utils.models.networks import count_parameters

RESOLUTIONS = {"720p": (720, 1280), "1080p": (1080, 1920)}


def block_times(timer: benchmark.Timer, min_run_time: float, min_blocks: int = 5) -> list[float]:
    """Seconds per call of ``timer``'s statement in each of a run of blocks of calls, timed for
    at least ``min_run_time`` seconds.

    ``Timer.blocked_autorange`` sizes its blocks in steps of ×10 until the timer's overhead is
    under 1e-4 of a block. That suits calls of tens of milliseconds or more (a 720p frame),
    which it times one per block, and it times them here, for long enough to hold
    ``min_blocks`` calls. On a call of a millisecond and a
    budget of 0.05 s (the smoke profile) it ran eight times the budget and ended on a single
    block; so a short probe (a tenth of the budget, which also warms up: OpenVINO compiles for
    the size there) measures the call first, and calls shorter than a twentieth of the budget
    are timed in blocks of about a tenth of it, ``min_blocks`` or more, each by
    ``Timer.timeit`` (which warms up with two calls of its own per block)."""
    probe = timer.blocked_autorange(min_run_time=min_run_time / 10)
    once = max(probe.median, 1e-9)
    if once >= min_run_time:  # one call fills the budget (the teacher at 720p): that was it
        return list(probe.times)
    number = int(min_run_time / 10 / once)
    if number < 2:  # one call per block: a budget that holds min_blocks of them
        budget = max(min_run_time, min_blocks * once)
        return list(timer.blocked_autorange(min_run_time=budget).times)
    per_call, total = [], 0.0
    while total < min_run_time or len(per_call) < min_blocks:
        seconds = timer.timeit(number).median  # per call, within the block
        per_call.append(seconds)
        total += seconds * number
    return per_call


def median_seconds(timer: benchmark.Timer, min_run_time: float) -> float:
    """Median seconds per call over :func:`block_times`' blocks."""
    return statistics.median(block_times(timer, min_run_time))


def count_macs(model: torch.nn.Module, height: int, width: int, probe: int = 256) -> int:
    """MACs of one forward pass at ``height``×``width``.

    Counted once on a ``probe``×``probe`` input and scaled by the pixel ratio: every model here
    is fully convolutional, so its MACs are proportional to the pixel count (global pooling
    adds a negligible term), and counting at 1080p directly would cost a full forward pass.
    """
    device = next(model.parameters()).device
    x = torch.zeros(1, 3, probe, probe, device=device)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return round(counter.get_total_flops() / 2 * height * width / probe**2)


def measure_latency(
    model: torch.nn.Module, height: int, width: int, threads: int | None = None,
    min_run_time: float = 1.0,
) -> float:  # fmt: skip
    """Median seconds per forward pass of one ``1×3×height×width`` image."""
    device = next(model.parameters()).device
    x = torch.rand(1, 3, height, width, device=device)
    threads = threads or torch.get_num_threads()
    with torch.no_grad():
        timer = benchmark.Timer(
            stmt="model(x)", globals={"model": model, "x": x}, num_threads=threads
        )
        return median_seconds(timer, min_run_time)


@contextlib.contextmanager
def _native_stderr_silenced():
    """The profiler's C++ backend prints start/stop notes (and, without a GPU, a device-count
    "ERROR") straight to file descriptor 2; keep them out of notebook outputs."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_memory_mib(model: torch.nn.Module, height: int, width: int) -> float | None:
    """Peak memory of the tensors alive during one forward pass, beyond the model's weights.

    On CUDA from ``torch.cuda.max_memory_allocated``; on the CPU from the allocation and free
    events of ``torch.profiler`` (``profile_memory=True``), summed in time order. Also serves
    as the warm-up run before timing.
    """
    from torch.profiler import ProfilerActivity, profile

    device = next(model.parameters()).device
    x = torch.rand(1, 3, height, width, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        with torch.no_grad():
            model(x)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    activities = [ProfilerActivity.CPU]
    with (
        _native_stderr_silenced(),
        torch.no_grad(),
        profile(activities=activities, profile_memory=True) as prof,
    ):
        model(x)
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak / 2**20


@dataclass
class ModelCost:
    name: str
    parameters: int
    gmacs_per_megapixel: float
    gmacs: dict[str, float]
    latency_ms: dict[str, float]
    fps: dict[str, float]
    peak_memory_mib: dict[str, float | None]
    threads: int
    device: str

    def to_json(self) -> dict:
        return asdict(self)


def model_cost(
    model: torch.nn.Module, name: str = "", threads: int | None = None,
    resolutions: dict[str, tuple[int, int]] = RESOLUTIONS, min_run_time: float = 1.0,
    timing: bool = True,
) -> ModelCost:  # fmt: skip
    """Parameters, MACs, latency, fps and peak memory of ``model`` at each resolution
    (``timing=False``: parameters and MACs only, no forward pass at full size)."""
    model = model.eval()
    threads = threads or torch.get_num_threads()
    gmacs, latency, fps, memory = {}, {}, {}, {}
    for label, (h, w) in resolutions.items():
        gmacs[label] = count_macs(model, h, w) / 1e9
        if not timing:
            continue
        memory[label] = peak_memory_mib(model, h, w)  # doubles as the warm-up run
        seconds = measure_latency(model, h, w, threads, min_run_time)
        latency[label] = seconds * 1e3
        fps[label] = 1.0 / seconds
    h, w = next(iter(resolutions.values()))
    return ModelCost(
        name=name,
        parameters=count_parameters(model),
        gmacs_per_megapixel=gmacs[next(iter(resolutions))] / (h * w / 1e6),
        gmacs=gmacs,
        latency_ms=latency,
        fps=fps,
        peak_memory_mib=memory,
        threads=threads,
        device=str(next(model.parameters()).device),
    )


def cost_table(costs: list[ModelCost]):
    """One row per model: parameters, GMACs, latency, fps and peak memory at each resolution."""
    import pandas as pd

    rows = []
    for c in costs:
        row = {"model": c.name, "params": c.parameters, "GMAC/MP": c.gmacs_per_megapixel}
        for res in c.gmacs:
            row[f"GMAC {res}"] = c.gmacs[res]
            if res in c.latency_ms:
                row[f"ms {res}"] = c.latency_ms[res]
                row[f"fps {res}"] = c.fps[res]
                row[f"peak MiB {res}"] = c.peak_memory_mib[res]
        row["threads"] = c.threads
        row["device"] = c.device
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def time_function(fn, image, min_run_time: float = 0.2) -> float:
    """Median seconds of ``fn(image)`` (for classical baselines, which are not torch models)."""
    timer = benchmark.Timer(stmt="fn(image)", globals={"fn": fn, "image": image})
    return median_seconds(timer, min_run_time)


#: What a report's numbers depend on: the package (profiles included), the notebooks and the
#: shipped teacher the students are distilled from.
@dataclass
class SpeedReport:
    costs: list[ModelCost]  # CPU rows first, then GPU rows when CUDA is present
    onnx_ms: dict[str, dict[str, float]]  # model → resolution → onnxruntime latency
    onnx_max_diff: dict[str, float]  # model → max abs difference ONNX vs PyTorch

    def table(self):
        """:func:`cost_table` with onnxruntime latency and fps columns added."""
        table = cost_table(self.costs)
        for name, per_res in self.onnx_ms.items():
            for res, ms in per_res.items():
                table.loc[name, f"onnxruntime ms {res}"] = ms
                table.loc[name, f"onnxruntime fps {res}"] = 1e3 / ms
        return table


def measure_speed(
    models: dict[str, torch.nn.Module], resolutions: dict[str, tuple[int, int]],
    min_run_time: float = 1.0, onnx_dir: Path | None = None, gpu: bool = False,
    onnx_models: tuple[str, ...] | None = None, first_resolution_only: tuple[str, ...] = (),
) -> SpeedReport:  # fmt: skip
    """Cost of each model on the CPU, with ``gpu`` also on CUDA (rows named ``"<model> (GPU)"``,
    only when CUDA is present), and (with ``onnx_dir``) exported to ONNX and timed in
    onnxruntime with the same thread count (only ``onnx_models`` if given: a big teacher's
    ONNX timing costs minutes and serves nobody). Models in ``first_resolution_only`` are
    timed at the first resolution only (a big teacher at 1080p costs minutes of the report).
    Every row records its device and threads."""
    first = dict([next(iter(resolutions.items()))])

    def sizes(name: str) -> dict[str, tuple[int, int]]:
        return first if name in first_resolution_only else resolutions

    costs = [model_cost(m.cpu(), name, resolutions=sizes(name), min_run_time=min_run_time)
             for name, m in models.items()]  # fmt: skip
    if gpu and torch.cuda.is_available():
        for name, model in models.items():
            gpu = model.to("cuda")
            costs.append(model_cost(gpu, f"{name} (GPU)", resolutions=sizes(name),
                                    min_run_time=min_run_time))  # fmt: skip
            model.to("cpu")
    onnx_ms, onnx_diff = {}, {}
    if onnx_dir is not None:
        from pixel_utils.app.onnx_export import export_onnx, onnx_latency

        for name, model in models.items():
            if onnx_models is not None and name not in onnx_models:
                continue
            path, onnx_diff[name] = export_onnx(model, Path(onnx_dir) / f"{name}.onnx")
            onnx_ms[name] = {res: 1e3 * onnx_latency(path, *hw, min_run_time=min_run_time)
                             for res, hw in sizes(name).items()}  # fmt: skip
    return SpeedReport(costs, onnx_ms, onnx_diff)
