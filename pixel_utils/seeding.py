"""The one place randomness is seeded.

Library functions never use global random state: they take a ``numpy.random.Generator``
explicitly. :func:`set_seed` seeds Python, NumPy and torch for the code that cannot (weight
initialisation, dropout) and returns a fresh Generator for the caller to pass on.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def set_seed(seed: int) -> np.random.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def child_rng(seed: int, *keys: int) -> np.random.Generator:
    """A Generator determined by ``seed`` and integer keys (e.g. a step or sample index).

    Used where work must be reproducible independently of order: sample ``i`` of a dataset is
    the same whether it is drawn first, last, on another worker or after a resume.
    """
    return np.random.default_rng([seed, *keys])
