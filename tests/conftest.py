import os

import numpy as np
import pytest

os.environ.setdefault("PIXEL_PROFILE", "smoke")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def photo():
    """A small real photo crop (HWC float32 RGB)."""
    from pixel_utils.images import center_crop
    from pixel_utils.sources import load_photo

    return center_crop(load_photo("astronaut"), 96)
