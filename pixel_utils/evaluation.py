"""Scoring models on the fixed benchmark set."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .benchmark import HEADLINE_CASE, iter_benchmark
from .inference import sharpen
from .metrics import psnr, ssim


def evaluate_models(
    methods: dict[str, torch.nn.Module | None], bench_dir: str | os.PathLike
) -> pd.DataFrame:
    """PSNR/SSIM of every method on every benchmark image (``None``: the degraded input).

    Returns a long table with columns ``method, case, photo, psnr, ssim``. Each image is read
    once and passed through every method.
    """
    rows = []
    items = list(iter_benchmark(bench_dir))
    for item in tqdm(items, desc="benchmark", leave=False):
        for label, model in methods.items():
            out = item.blurred if model is None else sharpen(model, item.blurred)
            rows.append(
                {"method": label, "case": item.case, "photo": item.photo,
                 "psnr": psnr(out, item.sharp), "ssim": ssim(out, item.sharp)}
            )  # fmt: skip
    return pd.DataFrame(rows)


def summarise(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean PSNR/SSIM: one row per case, columns ``(metric, method)``."""
    means = scores.groupby(["case", "method"], sort=False)[["psnr", "ssim"]].mean()
    return means.unstack("method")


def headline(summary: pd.DataFrame, case: str = HEADLINE_CASE) -> dict:
    """``{method: {"psnr", "ssim", "gain_db"}}`` on ``case``; the gain is over ``blurred``."""
    row = summary.loc[case]
    base = row[("psnr", "blurred")] if ("psnr", "blurred") in row.index else float("nan")
    return {
        method: {
            "psnr": float(row[("psnr", method)]),
            "ssim": float(row[("ssim", method)]),
            "gain_db": float(row[("psnr", method)] - base),
        }
        for method in row["psnr"].index
    }


def write_json(path: str | os.PathLike, data: dict) -> Path:
    """Write ``data`` as indented JSON (numpy/pandas numbers converted), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=float))
    os.replace(tmp, path)
    return path


def summary_json(summary: pd.DataFrame) -> dict:
    """``{case: {method: {"psnr", "ssim"}}}`` from a :func:`summarise` table."""
    out: dict = {}
    for case, row in summary.iterrows():
        for (metric, method), value in row.items():
            out.setdefault(case, {}).setdefault(method, {})[metric] = float(value)
    return out


def fidelity(
    student: torch.nn.Module, teacher: torch.nn.Module, bench_dir: str | os.PathLike,
    case: str = HEADLINE_CASE,
) -> dict:  # fmt: skip
    """How closely the student imitates the teacher: mean PSNR/SSIM of the student's output
    measured against the teacher's output (not the ground truth) on ``case``."""
    scores = []
    for item in iter_benchmark(bench_dir, case):
        target = sharpen(teacher, item.blurred)
        out = sharpen(student, item.blurred)
        scores.append((psnr(out, target), ssim(out, target)))
    return {
        "psnr": float(np.mean([s[0] for s in scores])),
        "ssim": float(np.mean([s[1] for s in scores])),
    }
