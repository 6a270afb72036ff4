"""Where an exported model's onnxruntime time goes, as exported and as the project serves it.

:func:`layout_profile` times one image through the graph as exported and through the same graph
with its pixel-shuffles and its 8-bit pixel-unshuffle rewritten for onnxruntime's channels-last
convolutions (:func:`~pixel_utils.app.onnx_layout.channels_last_shuffles` and
:func:`~pixel_utils.app.onnx_layout.channels_last_unshuffle`, and its shapes read from 8-bit
tensors, :func:`~pixel_utils.app.onnx_layout.shapes_before_dequantising`: what every served
session runs):

* milliseconds per operator type, from onnxruntime's own profiler (mean over the timed runs; the
  profiler adds a little time to each operator, so compare columns, not absolute totals), and
  those of the unshuffle convolution alone (``unshuffle_ms``: 0 once rewritten into moves);
* the latency of each form, ``torch.utils.benchmark`` medians timed in alternation over several
  rounds, and the median of the per-round ratios (a CPU's speed drifts between rounds);
* whether the two outputs are the same bits.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

FORMS = ("as exported", "as served")


def layout_profile(
    path: str | os.PathLike, height: int, width: int, rounds: int = 5,
    min_run_time: float = 0.5, threads: int | None = None,
) -> dict:  # fmt: skip
    """Profile and time the model at ``path`` on one ``1×3×height×width`` image in both forms
    (:data:`FORMS`); see the module docstring for what is measured."""
    import onnx
    import torch
    from torch.utils import benchmark

    from pixel_utils.app.onnx_export import onnx_session
    from pixel_utils.evaluation.cost import median_seconds

    name = onnx.load(str(path)).graph.input[0].name
    feed = {name: np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)}
    threads = threads or torch.get_num_threads()
    rewritten = {FORMS[0]: False, FORMS[1]: True}

    ms_by_op, unshuffle_ms, outputs = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for form, channels_last in rewritten.items():
            prefix = str(Path(tmp) / form.replace(" ", "_"))
            profiled = onnx_session(path, threads, channels_last=channels_last,
                                    profile_prefix=prefix)  # fmt: skip
            outputs[form] = profiled.run(None, feed)[0]  # warm-up: left out of the sums
            for _ in range(rounds):
                profiled.run(None, feed)
            trace = json.loads(Path(profiled.end_profiling()).read_text())
            runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in trace if e["name"] == "model_run")
            warm_up_end = runs[0][1]
            per_op: Counter = Counter()
            unshuffle_us = 0
            for event in trace:
                if (event.get("cat") == "Node" and event["name"].endswith("_kernel_time")
                        and event["ts"] >= warm_up_end):  # fmt: skip
                    op = event["args"]["op_name"]
                    per_op[op] += event["dur"]  # microseconds
                    # the exported unshuffle convolution (networks.Unshuffle) keeps its name
                    if op in ("Conv", "QLinearConv") and "/unshuffle/" in event["name"]:
                        unshuffle_us += event["dur"]
            ms_by_op[form] = {op: us / 1e3 / rounds for op, us in per_op.most_common()}
            unshuffle_ms[form] = unshuffle_us / 1e3 / rounds
    sessions = {form: onnx_session(path, threads, channels_last=cl)
                for form, cl in rewritten.items()}  # fmt: skip
    rounds_ms = []
    for _ in range(rounds):
        rounds_ms.append({
            form: 1e3 * median_seconds(
                benchmark.Timer(stmt="s.run(None, feed)", globals={"s": s, "feed": feed}),
                min_run_time,
            )
            for form, s in sessions.items()
        })  # fmt: skip
    return {
        "size": [height, width],
        "threads": threads,
        "ms_by_op": ms_by_op,
        "unshuffle_ms": unshuffle_ms,
        "latency_ms": {f: statistics.median(r[f] for r in rounds_ms) for f in FORMS},
        "rounds_ms": rounds_ms,
        "served_over_exported": statistics.median(r[FORMS[1]] / r[FORMS[0]] for r in rounds_ms),
        "identical": bool(np.array_equal(outputs[FORMS[0]], outputs[FORMS[1]])),
    }


def layout_lesson(profile: dict, resolution: str, model: str = "the served int8 student") -> str:
    """One "What we learned" sentence from :func:`layout_profile`'s numbers of ``model``."""
    moved = ("DepthToSpace", "Transpose")
    ms = {
        form: sum(profile["ms_by_op"][form].get(op, 0.0) for op in moved)
        + profile["unshuffle_ms"][form]
        for form in FORMS
    }
    before, after = ms[FORMS[0]], ms[FORMS[1]]
    latency = profile["latency_ms"]
    same = "the same bits" if profile["identical"] else "NOT the same bits"
    return (
        f"- **Layout costs time.** At {resolution} {model}, as exported, spends "
        f"{before:.1f} ms of its profile moving pixels: pixel-shuffles (DepthToSpace), its "
        f"pixel-unshuffle convolution ({profile['unshuffle_ms'][FORMS[0]]:.1f} ms) and layout "
        f"transposes; with them rewritten for onnxruntime's channels-last convolutions, "
        f"{after:.1f} ms. It runs in {latency[FORMS[1]]:.1f} instead of "
        f"{latency[FORMS[0]]:.1f} ms (medians of {len(profile['rounds_ms'])} rounds in "
        f"alternation; round by round it took {profile['served_over_exported']:.2f}× the time, "
        f"the median of the rounds' ratios), with {same}."
    )
