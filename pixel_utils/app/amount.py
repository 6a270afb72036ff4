"""How much of the sharpening to apply: ``--amount`` of ``pixel-sharpen``.

A sharpening network adds a correction to its input. Scaling that correction by ``s`` gives
every amount between the input (``s = 0``) and the network's output (``s = 1``), or beyond it
(``s > 1``): the "amount" of an unsharp mask. Less suits a photo that was nearly sharp, which
the networks over-sharpen (the `no_blur` row of the README's per-case table); more exaggerates
edges, and past a point draws the halos notebook 05 teaches to spot.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

#: The largest ``--amount``: twice the network's correction.
MAX_AMOUNT = 2.0


def check_amount(amount: float) -> float:
    """``amount`` if it is a number in [0, :data:`MAX_AMOUNT`], else a ``ValueError``
    saying so."""
    if not (isinstance(amount, numbers.Real) and math.isfinite(amount)):
        raise ValueError(f"amount must be a number, not {amount!r}")
    if not 0 <= amount <= MAX_AMOUNT:
        raise ValueError(f"amount must be between 0 and {MAX_AMOUNT:g}, not {amount:g}")
    return float(amount)


def apply_amount(source: np.ndarray, sharpened: np.ndarray, amount: float) -> np.ndarray:
    """``source + amount · (sharpened − source)``, clipped to the image's range, in the
    type of ``sharpened``: float images in [0, 1], or uint8 / uint16 frames (rounded).
    ``amount`` 1 returns ``sharpened`` itself."""
    amount = check_amount(amount)
    if source.shape != sharpened.shape:
        raise ValueError(f"source {source.shape} and sharpened {sharpened.shape} differ in shape")
    if amount == 1:
        return sharpened
    top = np.iinfo(sharpened.dtype).max if sharpened.dtype.kind in "ui" else 1.0
    # One float32 image in place, not one per operation: a 48-megapixel photo's is 0.6 GB.
    out = np.subtract(sharpened, source, dtype=np.float32)
    out *= np.float32(amount)
    out += source
    np.clip(out, 0, top, out=out)
    if sharpened.dtype.kind in "ui":
        return np.rint(out, out=out).astype(sharpened.dtype)
    return out.astype(sharpened.dtype, copy=False)


def with_amount(process, amount: float):
    """The frame function ``process`` (a video's, :mod:`pixel_utils.app.video`) with its
    correction scaled by ``amount``, in stages like ``process``: the input frame travels with
    it from ``prepare`` to ``finish``, where it is blended. ``amount`` 1 returns ``process``."""
    from pixel_utils.app.video import staged_around

    amount = check_amount(amount)
    if amount == 1:
        return process
    # The decoder gives each frame its own array, and no prepare writes into it: carry it as is.
    return staged_around(process, lambda frame: frame,
                         lambda output, frame: apply_amount(frame, output, amount))  # fmt: skip
