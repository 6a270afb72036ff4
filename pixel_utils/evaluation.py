"""Scoring models on the fixed benchmark set."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from .artefacts import atomic_write_json
from .benchmark import HEADLINE_CASE, iter_benchmark
from .inference import sharpen
from .metrics import psnr, ssim


def evaluate_models(
    methods: dict[str, torch.nn.Module | None], bench_dir: str | os.PathLike,
    reference: str | None = None,
) -> pd.DataFrame:  # fmt: skip
    """PSNR/SSIM of every method on every benchmark image (``None``: the degraded input).

    Returns a long table with columns ``method, case, photo, psnr, ssim``. Each image is read
    once and passed through every method once. With ``reference`` (a method name, e.g. the
    teacher) each output is also scored against that method's output, in columns
    ``psnr_vs_ref, ssim_vs_ref``: how faithfully a student imitates its teacher.
    """
    rows = []
    items = list(iter_benchmark(bench_dir))
    for item in tqdm(items, desc="benchmark", leave=False):
        outputs = {
            label: item.blurred if model is None else sharpen(model, item.blurred)
            for label, model in methods.items()
        }
        for label, out in outputs.items():
            row = {"method": label, "case": item.case, "photo": item.photo,
                   "psnr": psnr(out, item.sharp), "ssim": ssim(out, item.sharp)}  # fmt: skip
            if reference is not None:
                row["psnr_vs_ref"] = psnr(out, outputs[reference])
                row["ssim_vs_ref"] = ssim(out, outputs[reference])
            rows.append(row)
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
    return atomic_write_json(path, data)


def summary_json(summary: pd.DataFrame) -> dict:
    """``{case: {method: {"psnr", "ssim"}}}`` from a :func:`summarise` table."""
    out: dict = {}
    for case, row in summary.iterrows():
        for (metric, method), value in row.items():
            out.setdefault(case, {}).setdefault(method, {})[metric] = float(value)
    return out


def fidelity(scores: pd.DataFrame, case: str = HEADLINE_CASE) -> dict:
    """``{method: {"psnr", "ssim"}}`` of each output measured against the reference method's
    output (not the ground truth) on ``case``, from ``evaluate_models(..., reference=...)``."""
    rows = scores[scores["case"] == case]
    means = rows.groupby("method", sort=False)[["psnr_vs_ref", "ssim_vs_ref"]].mean()
    return {m: {"psnr": float(r["psnr_vs_ref"]), "ssim": float(r["ssim_vs_ref"])}
            for m, r in means.iterrows()}  # fmt: skip
