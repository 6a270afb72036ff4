"""Static figures: image grids and PSF galleries, saved as PNGs for the README and report."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np


def plain_log_ticks(axis) -> None:
    """Label a log axis at 1, 2 and 5 × each power of ten, in plain numbers, and leave the minor
    ticks unlabelled: over less than a decade matplotlib labels the minor ticks in ``a×10^b``
    form, and on a narrow figure those labels run into each other."""
    from matplotlib import ticker

    axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,.10g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def save_figure(fig, path: str | os.PathLike, dpi: int = 80) -> Path:
    """Save ``fig`` as PNG (parent folders created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    return path


def image_grid(
    images: list[np.ndarray],
    titles: list[str] | None = None,
    ncols: int | None = None,
    size: float = 2.6,
    suptitle: str | None = None,
):
    """Show HWC images in a grid with optional titles; returns the figure."""
    n = len(images)
    ncols = ncols or n
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, image in enumerate(images):
        ax = axes.flat[i]
        ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
        if titles:
            ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def psf_gallery(kernels: dict[str, np.ndarray], size: float = 1.8):
    """Each PSF shown on a common 1:1 pixel scale (padded to the largest), brightest = white."""
    side = max(k.shape[0] for k in kernels.values())
    panels = []
    for k in kernels.values():
        o = (side - k.shape[0]) // 2
        canvas = np.zeros((side, side))
        canvas[o : o + k.shape[0], o : o + k.shape[1]] = k / k.max()
        panels.append(np.repeat(canvas[..., None], 3, axis=2))
    return image_grid(panels, list(kernels), size=size)


def training_curves(histories: dict[str, dict], smooth: int = 25):
    """Loss (moving average over ``smooth`` steps) and validation PSNR of one or more runs."""
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 3.6))
    for label, history in histories.items():
        steps, losses = np.array(history["loss"]).T if history["loss"] else ([], [])
        if len(losses) >= smooth:
            kernel = np.ones(smooth) / smooth
            losses = np.convolve(losses, kernel, mode="valid")
            steps = steps[smooth - 1 :]
        ax_loss.plot(steps, losses, label=label)
        if history["val"]:
            val = np.array(history["val"])
            ax_val.plot(val[:, 0], val[:, 1], marker="o", ms=3, label=label)
    ax_loss.set(xlabel="step", ylabel="training loss", yscale="log", title="Loss")
    ax_val.set(xlabel="step", ylabel="PSNR (dB)", title="Validation PSNR")
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def quality_vs_time(runs: dict[str, tuple[list, float, int]]):
    """Validation PSNR against training wall time, one line per run.

    ``runs`` maps a label to ``(validation history [[step, psnr, ...], ...], wall seconds,
    steps)``; a step's time is taken as its share of the run's wall time.
    """
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for label, (val, seconds, steps) in runs.items():
        if not val:
            continue
        val = np.array(val, dtype=float)
        minutes = val[:, 0] / max(steps, 1) * seconds / 60
        ax.plot(minutes, val[:, 1], marker="o", ms=3, label=label)
    ax.set(xscale="log", xlabel="training wall time (minutes, log scale)",
           ylabel="validation PSNR (dB)", title="What training time buys")  # fmt: skip
    plain_log_ticks(ax.xaxis)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    return fig


def kd_gain_over_training(pairs: list[tuple[dict, dict]]):
    """Validation PSNR of distilled − scratch against training step, one thin line per seed
    (``pairs`` of histories) and their mean: when during training does the teacher help?"""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    curves = []
    for distilled, scratch in pairs:
        a, b = np.array(distilled["val"], float), np.array(scratch["val"], float)
        n = min(len(a), len(b))
        if n == 0:
            continue
        curves.append((a[:n, 0], a[:n, 1] - b[:n, 1]))
        ax.plot(*curves[-1], color="tab:blue", alpha=0.35, lw=1)
    if curves:
        n = min(len(c[0]) for c in curves)
        ax.plot(curves[0][0][:n], np.mean([c[1][:n] for c in curves], axis=0), color="tab:blue",
                lw=2.2, marker="o", ms=3, label=f"mean of {len(curves)} seeds")  # fmt: skip
        ax.legend()
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xlabel="training step", ylabel="distilled − scratch (dB)",
           title="What the teacher adds, along training (validation)")  # fmt: skip
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def zoom(image: np.ndarray, center: tuple[float, float] = (0.5, 0.5), size: int = 96) -> np.ndarray:
    """A ``size``×``size`` crop around a relative (y, x) position, for 1:1 pixel comparisons."""
    h, w = image.shape[:2]
    size = min(size, h, w)
    top = int(np.clip(center[0] * h - size / 2, 0, h - size))
    left = int(np.clip(center[1] * w - size / 2, 0, w - size))
    return image[top : top + size, left : left + size]


def distillation_diagram():
    """Boxes and arrows: where response and feature distillation attach to the two networks."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig, ax = plt.subplots(figsize=(10, 4.2))
    ax.set(xlim=(0, 10), ylim=(0, 4.4))
    ax.axis("off")

    def box(x, y, w, h, text, color):
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05", fc=color, ec="k"))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=9)

    def arrow(a, b, color="k", style="-|>", ls="-"):
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle=style, mutation_scale=12, color=color, ls=ls))

    box(0.1, 1.7, 1.3, 1.0, "degraded\ninput", "#eeeeee")
    box(2.0, 3.0, 3.2, 1.0, "teacher (frozen)\nU-Net, many MACs", "#cfe3ff")
    box(2.0, 0.4, 3.2, 1.0, "student\nunshuffle ×4, few MACs", "#ffe0c2")
    box(6.0, 3.0, 1.4, 1.0, "teacher\noutput", "#cfe3ff")
    box(6.0, 0.4, 1.4, 1.0, "student\noutput", "#ffe0c2")
    box(8.3, 0.4, 1.5, 1.0, "sharp\n(ground truth)", "#d8f5d0")
    box(3.0, 1.85, 1.2, 0.7, "1×1 adapter", "#f3e8ff")
    arrow((1.4, 2.3), (2.0, 3.4))
    arrow((1.4, 2.1), (2.0, 0.9))
    arrow((5.2, 3.5), (6.0, 3.5))
    arrow((5.2, 0.9), (6.0, 0.9))
    arrow((3.6, 1.4), (3.6, 1.85), color="#7b3fb0")
    arrow((3.6, 2.55), (3.6, 3.0), color="#7b3fb0", style="<|-|>", ls="--")
    ax.text(3.75, 2.75, "feature loss", color="#7b3fb0", fontsize=9)
    arrow((6.7, 1.4), (6.7, 3.0), color="#c0392b", style="<|-|>", ls="--")
    ax.text(6.8, 2.2, "response loss\n(+ frequency)", color="#c0392b", fontsize=9)
    arrow((7.4, 0.9), (8.3, 0.9), color="#27ae60", style="<|-|>", ls="--")
    ax.text(7.5, 1.55, "ground-truth\nloss", color="#27ae60", fontsize=8)
    ax.set_title("Response distillation matches outputs; feature distillation matches insides")
    return fig


def bars_by_case(summary, metric: str = "psnr", relative_to: str | None = None, labels=None):
    """Grouped bars: one group per degradation case, one bar per method.

    ``summary`` is :func:`pixel_utils.evaluation.scoring.summarise`'s table; with
    ``relative_to`` the bars show the difference to that method (e.g. the gain over ``"blurred"``).
    """
    table = summary[metric].copy()
    if relative_to:
        table = table.sub(table[relative_to], axis=0).drop(columns=relative_to)
    if labels:
        table.index = [labels.get(c, c) for c in table.index]
    fig, ax = plt.subplots(figsize=(12, 4))
    table.plot.bar(ax=ax, width=0.85, rot=20)
    unit = " (dB)" if metric == "psnr" else ""
    ylabel = f"{metric.upper()} gain over {relative_to}{unit}" if relative_to else metric.upper()
    ax.set(ylabel=ylabel, xlabel="")
    if relative_to:
        ax.axhline(0, color="k", lw=0.8)
    elif metric == "psnr":
        ax.set_ylim(table.min().min() - 2, table.max().max() + 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(ncol=4, fontsize=8)
    fig.tight_layout()
    return fig


def quality_vs_speed(points: dict[str, tuple[float, float]], real_time_fps: float = 30.0):
    """PSNR against frames per second (log scale), one labelled point per method."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, (fps, quality) in points.items():
        ax.scatter(fps, quality, s=40)
        ax.annotate(label, (fps, quality), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.axvline(real_time_fps, color="grey", ls="--", lw=1)
    ax.text(real_time_fps, ax.get_ylim()[0], f" {real_time_fps:.0f} fps", color="grey", va="bottom")
    ax.set(xscale="log", xlabel="frames per second at 720p (CPU, log scale)",
           ylabel="PSNR on the headline case (dB)", title="Quality vs speed")  # fmt: skip
    plain_log_ticks(ax.xaxis)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def artefact_examples(blurred: np.ndarray, psf: np.ndarray) -> dict[str, np.ndarray]:
    """Deliberately pushed classical restorations, each showing one artefact to learn to see:
    ringing (Wiener with almost no regularisation), halos (strong unsharp masking) and noise
    amplification (Richardson–Lucy run far past its best iteration)."""
    from pixel_utils.evaluation.baselines import richardson_lucy, unsharp_mask, wiener

    return {
        "ringing\n(Wiener, balance 0.0005)": wiener(blurred, psf, balance=0.0005),
        "halos\n(unsharp mask, amount 4)": unsharp_mask(blurred, amount=4.0, radius=3.0),
        "noise amplification\n(Richardson–Lucy, 150 it.)": richardson_lucy(blurred, psf, 150),
    }


def error_map(image: np.ndarray, sharp: np.ndarray, scale: float = 0.15) -> np.ndarray:
    """|image − sharp| averaged over channels, shown as grey with ``scale`` mapped to white:
    structured errors (rings, halos, invented texture) stand out from the noise."""
    err = np.abs(np.asarray(image, np.float64) - np.asarray(sharp, np.float64)).mean(axis=2)
    return np.repeat(np.clip(err / scale, 0, 1)[..., None], 3, axis=2).astype(np.float32)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points ``(speed, quality)`` that no other point beats on both."""
    front = []
    for i, (s, q) in enumerate(points):
        dominated = any(s2 >= s and q2 >= q and (s2, q2) != (s, q) for s2, q2 in points)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def pareto_figure(sweep: dict, real_time_fps: float = 30.0):
    """Headline gain against served fps at 720p (int8 onnxruntime, hollow: PyTorch fp32) for
    every student of a :mod:`pixel_utils.training.sweep` result, with the Pareto front drawn."""
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    labels, points = [], []
    for label, row in sweep["students"].items():
        first = next(iter(row["latency"]))
        fps = 1e3 / row["latency"][first]["int8_onnxruntime"]["ms"]
        torch_fps = 1e3 / row["latency"][first]["pytorch_fp32"]["ms"]
        ax.scatter(fps, row["gain_db"], s=45, color="tab:blue", zorder=3)
        ax.scatter(torch_fps, row["gain_db"], s=30, facecolors="none", edgecolors="tab:grey")
        ax.plot([torch_fps, fps], [row["gain_db"]] * 2, color="tab:grey", lw=0.6, alpha=0.6)
        ax.annotate(label, (fps, row["gain_db"]), textcoords="offset points", xytext=(5, 4),
                    fontsize=8)  # fmt: skip
        labels.append(label)
        points.append((fps, row["gain_db"]))
    front = pareto_front(points)
    ax.plot([points[i][0] for i in front], [points[i][1] for i in front], color="tab:blue",
            lw=1.2, ls="--", label="Pareto front (served int8)")  # fmt: skip
    ax.axvline(real_time_fps, color="grey", ls=":", lw=1)
    ax.scatter([], [], s=30, facecolors="none", edgecolors="tab:grey", label="same, PyTorch fp32")
    ax.set(xscale="log", xlabel=f"frames per second at {first}, 2 CPU threads (log scale)",
           ylabel=f"gain on {sweep['case']} (dB)",
           title=f"Students after {sweep['steps']} distillation steps")  # fmt: skip
    plain_log_ticks(ax.xaxis)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _kd_gap_panel(ax, xs: list, comparisons: list[dict], xlabel: str, case: str) -> None:
    """Distilled − scratch (``kd_comparison`` results) against ``xs`` on a log axis: mean ±
    95% CI over images, with the zero line."""
    means = [kd["mean_db"] for kd in comparisons]
    halves = [kd["ci95_over_images"] for kd in comparisons]
    ax.errorbar(xs, means, yerr=halves, fmt="o-", capsize=4)
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xscale="log", xlabel=xlabel, ylabel="distilled − scratch (dB)",
           title=f"{case}, benchmark: mean ± 95% CI")  # fmt: skip
    plain_log_ticks(ax.xaxis)
    ax.grid(alpha=0.3)


def kd_pays_figure(sweep: dict, pay_runs: dict[str, list[tuple[dict, dict]]]):
    """Left: distilled − scratch on the benchmark against student size, mean ± 95% CI over
    images (paired, averaged over seeds). Right: the same difference on validation along
    training, one line per size (mean over seeds)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.9))
    sizes = [label for label in sweep["students"] if "kd_vs_scratch" in sweep["students"][label]]
    params = [sweep["students"][s]["params"] for s in sizes]
    comparisons = [sweep["students"][s]["kd_vs_scratch"] for s in sizes]
    _kd_gap_panel(left, params, comparisons, "student parameters (log scale)", sweep["case"])
    for s, x, kd in zip(sizes, params, comparisons, strict=True):
        left.annotate(s, (x, kd["mean_db"]), textcoords="offset points", xytext=(5, 5),
                      fontsize=8)  # fmt: skip
    for label, pairs in pay_runs.items():
        curves = []
        for distilled, scratch in pairs:
            a, b = np.array(distilled["val"], float), np.array(scratch["val"], float)
            n = min(len(a), len(b))
            if n:
                curves.append((a[:n, 0], a[:n, 1] - b[:n, 1]))
        if curves:
            n = min(len(c[0]) for c in curves)
            right.plot(curves[0][0][:n], np.mean([c[1][:n] for c in curves], axis=0),
                       marker="o", ms=3, label=label)  # fmt: skip
    right.axhline(0, color="k", lw=0.8)
    right.set(xlabel="training step", ylabel="distilled − scratch (dB)",
              title="along training (validation, mean of seeds)")  # fmt: skip
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def scarce_truth_figure(result: dict):
    """Left: distilled − scratch against the share of the training batches that have their
    ground truth, mean ± 95% CI over images (paired, averaged over seeds). Right: both
    students' gains over the degraded input (mean over seeds, each seed a dot)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.9))
    rows = sorted(result["levels"].values(), key=lambda r: r["labelled_share"])
    share = [100 * r["labelled_share"] for r in rows]
    axis = "batches with ground truth (% of the stream, log scale)"
    _kd_gap_panel(left, share, [r["kd_vs_scratch"] for r in rows], axis, result["case"])
    for arm, label in (("kd", "distilled (teacher on every batch)"),
                       ("scratch", "scratch (labelled batches only)")):  # fmt: skip
        line = right.plot(share, [r["gain_db"][arm] for r in rows], "o-", label=label)[0]
        for x, r in zip(share, rows, strict=True):
            seeds = r["gain_db_per_seed"][arm]
            right.scatter([x] * len(seeds), seeds, s=9, color=line.get_color(), alpha=0.5)
    right.set(xscale="log", xlabel=axis, ylabel="gain over the degraded input (dB)",
              title=f"{result['steps']} steps, {result['seeds']} seeds")  # fmt: skip
    plain_log_ticks(right.xaxis)
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def camera_path_figure(path: np.ndarray, fps: float, frames: int = 6):
    """The virtual camera's path (rows, columns in pixels; ``frames × samples × 2``): the whole
    path with each exposure drawn thick, and the first ``frames`` exposures' blur kernels."""
    fig = plt.figure(figsize=(2.2 * (frames + 2), 2.6))
    grid = fig.add_gridspec(1, frames + 2)
    ax = fig.add_subplot(grid[0, :2])
    whole = path.reshape(-1, 2)
    ax.plot(whole[:, 1], whole[:, 0], color="0.7", lw=0.8)
    for exposure in path:
        ax.plot(exposure[:, 1], exposure[:, 0], lw=2.2)
    ax.invert_yaxis()
    ax.set_aspect("equal")
    ax.set_title(f"camera path over {len(path)} frames ({fps:g} fps)", fontsize=9)
    ax.set_xlabel("columns (px)")
    ax.set_ylabel("rows (px)")
    from pixel_utils.data.degradations import _splat

    for i in range(min(frames, len(path))):
        k = _splat(path[i][:, ::-1])  # (x, y) points
        a = fig.add_subplot(grid[0, 2 + i])
        a.imshow(k, cmap="magma", interpolation="nearest")
        a.set_title(f"frame {i} PSF", fontsize=9)
        a.axis("off")
    fig.tight_layout()
    return fig


def per_frame_psnr(table, clip: str):
    """PSNR of each frame of ``clip`` for each method (the notebook 06 table's rows)."""
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    for _, row in table[table["clip"] == clip].iterrows():
        ax.plot(row["psnr_per_frame"], marker=".", label=row["method"])
    ax.set_xlabel("frame")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"per-frame PSNR on the '{clip}' clip")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def quality_vs_flicker(summary: dict):
    """Mean PSNR against temporal error (lower is steadier), one point per method."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, s in summary.items():
        ax.scatter(s["temporal_error"], s["psnr"], s=40)
        ax.annotate(name, (s["temporal_error"], s["psnr"]), fontsize=8,
                    xytext=(4, 3), textcoords="offset points")  # fmt: skip
    ax.set_xlabel("temporal error (8-bit levels, lower = steadier)")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("quality and steadiness on the synthetic clips")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def folder_gain_chart(
    findings: dict, title: str = "The teacher's labels on a folder without ground truth",
    adapted: str = "distilled + folder",
):  # fmt: skip
    """Gain over the blurred input per case: scratch, distilled, distilled and adapted to the
    folder on the teacher's labels (the bar named ``adapted``), and the teacher itself (means
    over seeds)."""
    methods = [("scratch", "tab:gray"), ("distilled", "tab:blue"),
               ("distilled+folder", "tab:green"), ("teacher", "tab:orange")]  # fmt: skip
    cases = list(findings)
    fig, ax = plt.subplots(figsize=(3.4 + 2.6 * len(cases), 3.6))
    width = 0.8 / len(methods)
    for k, (method, color) in enumerate(methods):
        values = [findings[c]["gain_db"].get(method, np.nan) for c in cases]
        ax.bar(np.arange(len(cases)) + (k - 1.5) * width, values, width, color=color,
               label=adapted if method == "distilled+folder" else method)  # fmt: skip
    ax.set_xticks(np.arange(len(cases)), cases)
    ax.axhline(0, color="k", lw=0.8)
    ax.set(ylabel="gain over the blurred input (dB)", title=title)
    # beside the axes: inside, it covers a bar whatever the gains
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def grouped_bars(
    ax,
    groups: list[str],
    series: dict[str, list[float]],
    errors: dict[str, list[float]] | None = None,
) -> None:
    """One bar per series side by side in each group (``series``: label → one value per
    group), with ``errors`` (label → half-widths) as error bars where given; a line at zero."""
    xs, width = np.arange(len(groups)), 0.8 / len(series)
    for i, (label, values) in enumerate(series.items()):
        yerr = (errors or {}).get(label)
        ax.bar(xs + (i - (len(series) - 1) / 2) * width, values, width, label=label, yerr=yerr,
               capsize=3 if yerr is not None else 0)  # fmt: skip
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(xs, groups)
    ax.grid(alpha=0.3, axis="y")


def _paired(rows: dict) -> tuple[list[float], list[float]]:
    """Means and 95% CI half-widths (over images) of :func:`kd_comparison` results."""
    return [r["mean_db"] for r in rows], [r["ci95_over_images"] for r in rows]


def kd_slice_figure(result: dict):
    """``make kd-slice``: left, each student's gain over the blurred input per case (mean
    over seeds; the teacher and the report's distilled student as marks); right, the paired
    differences (labels, weights, both) with 95% CIs over photos."""
    cases = result["cases"]
    xs = np.arange(len(cases))
    fig, (left, right) = plt.subplots(1, 2, figsize=(2.6 * len(cases) + 3, 4.2))
    grouped_bars(left, cases, {arm.replace("_", " "): [gains[c] for c in cases]
                               for arm, gains in result["gain_db"].items()})  # fmt: skip
    left.plot(xs, [result["teacher_gain_db"][c] for c in cases], "k_", ms=22, mew=2,
              label="teacher")  # fmt: skip
    left.plot(xs, [result["report_gain_db"]["distilled"][c] for c in cases], "r_", ms=22,
              mew=2, label="report's student, distilled")  # fmt: skip
    left.set(
        ylabel="gain over the blurred input (dB)",
        title=f"slice of {result['width']} channels: gain, mean of {result['seeds']} seeds",
    )
    left.legend(fontsize=7)
    paired = {e["what"]: _paired([e["by_case"][c] for c in cases])
              for e in result["effects"].values()}  # fmt: skip
    grouped_bars(right, cases, {k: v[0] for k, v in paired.items()},
                 {k: v[1] for k, v in paired.items()})  # fmt: skip
    right.axhline(0.3, color="gray", lw=0.8, ls="--")
    right.set(ylabel="paired difference (dB)", title="what the teacher gives: mean ± 95% CI")
    right.legend(fontsize=7)
    fig.tight_layout()
    return fig


def kd_variants_figure(result: dict):
    """Each recipe of ``make kd-variants`` (and the report's own) minus the scratch student,
    per benchmark case: mean ± 95% CI over images (paired, averaged over seeds)."""
    cases = result["cases"]
    fig, ax = plt.subplots(figsize=(1.9 * len(cases) + 2, 3.9))
    paired = {arm.replace("_", " "): _paired([row["vs_scratch"][c] for c in cases])
              for arm, row in result["arms"].items()}  # fmt: skip
    grouped_bars(ax, cases, {k: v[0] for k, v in paired.items()},
                 {k: v[1] for k, v in paired.items()})  # fmt: skip
    title = f"{result['steps']} steps, {result['seeds']} seeds: mean ± 95% CI over photos"
    ax.set(ylabel="recipe − scratch (dB)", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
