"""Provenance: what produced a set of numbers (packages, commit, pipeline sources, machine).

The pipeline-sources hash ties committed results to the code: a test recomputes it for the
checkout and compares it with the one recorded in ``figures/results.json``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

PIPELINE_SOURCES = ("pixel_utils", "notebooks", "pixel_utils/weights/teacher.pt")


def pipeline_sources_hash(root: Path | None = None) -> str:
    """SHA-256 over the pipeline's sources (every ``.py`` under ``pixel_utils/``, every
    notebook, the shipped teacher), by relative path and content: equal hashes mean a result
    was produced by exactly these sources."""
    import hashlib

    from pixel_utils.paths import repo_root

    root = Path(root or repo_root())
    files = sorted(
        [*root.glob("pixel_utils/**/*.py"), *root.glob("notebooks/*.ipynb"),
         root / "pixel_utils" / "weights" / "teacher.pt"]
    )  # fmt: skip
    digest = hashlib.sha256()
    for path in files:
        if path.exists() and "__pycache__" not in path.parts:
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def committed_run_words(recorded: dict, command: str, root: Path | None = None) -> str:
    """A sentence for a committed result made by an earlier checkout: which pipeline sources it
    ran (``recorded``, its provenance), that they are not this checkout's, and the command that
    measures it again. Empty when they are the same sources."""
    theirs, ours = recorded.get("pipeline_sha256") or "?", pipeline_sources_hash(root)
    if theirs == ours:
        return ""
    return (
        f"These figures were measured with pipeline sources `{theirs[:12]}`, not this "
        f"checkout's `{ours[:12]}`: the code has changed since (`{command}` measures them again)."
    )


def cpu_model(cpuinfo: str | None = None) -> dict:
    """The CPU's model name, its int8 dot-product support (AVX-512 VNNI or AVX-VNNI), which
    decides how fast, and with what rounding, onnxruntime's int8 kernels run, and its AMX int8
    tiles, which decide the serving engine
    (:func:`~pixel_utils.app.openvino_engine.served_engine`). ``cpuinfo`` is the text of
    ``/proc/cpuinfo`` (read here when not given); where it cannot be read, all are None."""
    text = cpuinfo
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            return {"cpu_model": None, "int8_vnni": None, "int8_amx": None}
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                 if line.startswith("model name")), None)  # fmt: skip
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines()
                      if line.startswith("flags")), []))  # fmt: skip
    return {"cpu_model": name, "int8_vnni": bool(flags & {"avx512_vnni", "avx_vnni"}),
            "int8_amx": "amx_int8" in flags}  # fmt: skip


def provenance() -> dict:
    """What produced a set of numbers: versions, git commit, machine, threads, time."""
    import datetime
    import platform
    import subprocess
    from importlib.metadata import PackageNotFoundError, version

    def pkg(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    def git(*args):
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                                  cwd=Path(__file__).parent).stdout.strip()  # fmt: skip
        except (OSError, subprocess.CalledProcessError):
            return None

    return {
        "packages": {n: pkg(n) for n in ("torch", "torchvision", "numpy", "scikit-image",
                                         "scipy", "pillow", "papermill", "onnxruntime",
                                         "av")},  # fmt: skip
        "python": platform.python_version(),
        "git_commit": git("rev-parse", "HEAD"),
        # Only the pipeline's own sources count: the figures a run writes do not make it dirty.
        # The paths are the repository's (":(top)"), not relative to this package's folder,
        # where git runs and where they would name nothing (and so never be dirty).
        "git_dirty": bool(
            git("status", "--porcelain", "--", *(f":(top){p}" for p in PIPELINE_SOURCES))
        ),
        "pipeline_sha256": pipeline_sources_hash(),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    **cpu_model(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
        "utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }  # fmt: skip
