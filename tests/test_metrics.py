import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pixel_utils.metrics import psnr, ssim


def test_identical_images():
    img = np.random.default_rng(0).random((32, 40, 3))
    assert psnr(img, img) == math.inf
    assert ssim(img, img) == pytest.approx(1.0)


def test_known_noise_level_gives_the_expected_psnr(photo):
    # Without clipping, noise of σ gives MSE σ², i.e. PSNR = -20 log10 σ = 40 dB for σ = 0.01.
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 0.01, photo.shape)
    noise *= 0.01 / noise.std()  # exactly σ over this image
    assert psnr(photo.astype(np.float64) + noise, photo) == pytest.approx(40.0, abs=0.01)


def test_agrees_with_scikit_image_in_float64_rgb(photo):
    noisy = np.clip(photo + np.random.default_rng(1).normal(0, 0.05, photo.shape), 0, 1)
    a, b = noisy.astype(np.float64), photo.astype(np.float64)
    assert psnr(noisy, photo) == pytest.approx(peak_signal_noise_ratio(b, a, data_range=1.0))
    reference = structural_similarity(b, a, data_range=1.0, channel_axis=2, gaussian_weights=True,
                                      sigma=1.5, use_sample_covariance=False)  # fmt: skip
    assert ssim(noisy, photo) == pytest.approx(reference)
    assert 0 < ssim(noisy, photo) < 1


def test_float32_and_uint8_range_inputs_are_treated_alike(photo):
    blurred = photo * 0.9 + 0.05
    assert psnr(blurred.astype(np.float32), photo) == pytest.approx(psnr(blurred, photo), abs=1e-4)


def test_grey_as_three_channels_and_errors():
    grey = np.random.default_rng(0).random((20, 20, 1)).repeat(3, axis=2)
    assert psnr(grey, grey * 0.5) > 0
    with pytest.raises(ValueError, match="shape mismatch"):
        psnr(grey, grey[:10])
    with pytest.raises(ValueError, match="HWC RGB"):
        psnr(grey[..., 0], grey[..., 0])


def test_ssim_is_nan_below_its_window():
    tiny = np.zeros((5, 7, 3))
    assert math.isnan(ssim(tiny, tiny + 0.1))
