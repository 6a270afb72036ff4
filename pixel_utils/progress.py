"""Progress bars: ``from .progress import tqdm`` everywhere in the package.

In JupyterLab and the terminal this is :mod:`tqdm.auto` (widget or text bars). Under the report
runner, which sets ``PIXEL_PROGRESS=terminal`` for its kernels, bars go to the kernel's own
stderr, which is the runner's terminal: a reader watching ``make report`` sees the training and
evaluation bars with their ETA, while the executed notebooks stay free of progress noise.
"""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm as _auto_tqdm
from tqdm.std import tqdm as _text_tqdm

PROGRESS_ENV = "PIXEL_PROGRESS"


def tqdm(*args, **kwargs):
    if os.environ.get(PROGRESS_ENV) == "terminal":
        kwargs.setdefault("file", sys.__stderr__)
        kwargs.setdefault("mininterval", 2.0)
        kwargs.setdefault("dynamic_ncols", False)
        kwargs["leave"] = True  # a finished stage stays visible as one line
        return _text_tqdm(*args, **kwargs)
    return _auto_tqdm(*args, **kwargs)


tqdm.write = _auto_tqdm.write  # print a line without breaking an open bar, as tqdm.write does
