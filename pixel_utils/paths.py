"""Where generated data, checkpoints, figures and reports live.

Everything a run writes is separated by profile, so the ``smoke`` runs of the test-suite never
touch the ``default`` report's artefacts. Only the ``default`` profile writes into the committed
``figures/`` folder; the other profiles keep their figures under ``reports/<profile>/figures``.
Set ``PIXEL_ROOT`` to put everything under another folder.
"""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    if os.environ.get("PIXEL_ROOT"):
        return Path(os.environ["PIXEL_ROOT"]).resolve()
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").exists():
        return here
    return Path.cwd()


def notebooks_dir() -> Path:
    return repo_root() / "notebooks"


def data_dir(profile: str) -> Path:
    return repo_root() / "data" / profile


def benchmark_dir(profile: str) -> Path:
    return data_dir(profile) / "benchmark"


def checkpoints_dir(profile: str) -> Path:
    return data_dir(profile) / "checkpoints"


def reports_dir(profile: str) -> Path:
    return repo_root() / "reports" / profile


def figures_dir(profile: str) -> Path:
    if profile == "default":
        return repo_root() / "figures"
    return reports_dir(profile) / "figures"


def ensure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
