"""The one way artefacts are written: atomically (a temp file in the same folder, then a
rename), so an interrupted write never leaves a half-written checkpoint, JSON or image."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` and rename the result onto ``path`` (creating its folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_torch_save(path: str | os.PathLike, payload) -> Path:
    import torch

    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_json(path: str | os.PathLike, data) -> Path:
    """Indented JSON; numpy/pandas numbers are converted to float."""
    return atomic_write_text(path, json.dumps(data, indent=1, default=float))


def weights_sha256(model) -> str:
    """Hex SHA-256 of a module's weights (its state dict: names, shapes and float32 values),
    not of any file's bytes: a rebuilt checkpoint holds the same weights next to other
    timings, and a slim shipped copy drops the optimiser state."""
    import numpy as np

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        values = tensor.detach().float().cpu().contiguous().numpy()
        digest.update(f"{name}:{tuple(values.shape)}\n".encode())
        digest.update(np.ascontiguousarray(values, dtype="<f4").tobytes())
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks (checkpoints can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
