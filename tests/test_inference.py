import numpy as np
import pytest
import torch

from pixel_utils.data.sources import load_photo
from pixel_utils.evaluation.inference import sharpen, sharpen_tiled
from pixel_utils.models.networks import build_model


@pytest.fixture(scope="module")
def student():
    torch.manual_seed(0)
    model = build_model("unshuffle", scale=4, channels=16, blocks=2).eval()
    with torch.no_grad():  # a non-trivial, local (no global pooling) network
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def image():
    return load_photo("coffee")[:301, :457]  # sizes not multiples of the tile or the stride


def test_tiled_equals_whole_image_inference(student, image):
    whole = sharpen(student, image)
    tiled = sharpen_tiled(student, image, tile=192, overlap=128)
    assert tiled.shape == image.shape
    assert np.abs(whole - tiled).max() <= 1e-4


def test_tiles_leave_no_seam_even_for_a_global_model(image):
    torch.manual_seed(0)
    teacher = build_model("nafnet", width=8, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1))
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(0.05 * torch.randn_like(p))
    teacher.eval()
    whole = sharpen(teacher, image)
    tiled = sharpen_tiled(teacher, image, tile=128, overlap=64)
    err = np.abs(whole - tiled).mean(axis=2)
    # A seam would be a step in the error along a tile border: compare the error change across
    # each interior border with the typical change between neighbouring columns.
    col_err = err.mean(axis=0)
    steps = np.abs(np.diff(col_err))
    borders = [s - 1 for s in range(64, image.shape[1] - 128, 64)]
    assert max(steps[b] for b in borders) <= 5 * np.median(steps) + 1e-6


def test_tiled_rejects_misaligned_tiles(student, image):
    with pytest.raises(ValueError, match="multiples of the model stride"):
        sharpen_tiled(student, image, tile=130, overlap=64)
    with pytest.raises(ValueError, match="smaller than the tile"):
        sharpen_tiled(student, image, tile=64, overlap=64)
