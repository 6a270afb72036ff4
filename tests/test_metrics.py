import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

from pixel_utils.evaluation.metrics import psnr, ssim


def _closed_form_psnr(a, b) -> float:
    """10·log10(1 / MSE) over all pixels and channels, for float images in [0, 1]."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return 10 * math.log10(1 / mse)


def _hand_ssim(a, b) -> float:
    """The documented SSIM written out: Gaussian window σ = 1.5 truncated at 3.5σ (11 pixels),
    K1 = 0.01, K2 = 0.03, population covariances, data range 1, map cropped by 5 pixels on
    each side, averaged per channel and then over the channels."""
    c1, c2 = 0.01**2, 0.03**2
    scores = []
    for ch in range(a.shape[2]):
        x, y = a[..., ch].astype(np.float64), b[..., ch].astype(np.float64)

        def blur(im):
            return gaussian_filter(im, sigma=1.5, truncate=3.5, mode="reflect")

        mx, my = blur(x), blur(y)
        vx, vy, vxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
        s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        scores.append(s[5:-5, 5:-5].mean())
    return float(np.mean(scores))


def test_identical_images():
    img = np.random.default_rng(0).random((32, 40, 3))
    assert psnr(img, img) == math.inf
    assert ssim(img, img) == 1.0


def test_known_noise_level_gives_the_expected_psnr(photo):
    # Without clipping, noise of σ gives MSE σ², i.e. PSNR = -20 log10 σ = 40 dB for σ = 0.01.
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 0.01, photo.shape)
    noise *= 0.01 / noise.std()  # exactly σ over this image
    assert psnr(photo.astype(np.float64) + noise, photo) == pytest.approx(40.0, abs=0.01)


def test_psnr_matches_the_closed_form_in_float64_rgb(photo):
    noisy = np.clip(photo + np.random.default_rng(1).normal(0, 0.05, photo.shape), 0, 1)
    expected = _closed_form_psnr(noisy, photo)
    assert 20 < expected < 35  # a real, finite difference
    assert psnr(noisy, photo) == pytest.approx(expected, rel=1e-12)
    assert psnr(photo, noisy) == pytest.approx(expected, rel=1e-12)  # symmetric


def test_ssim_matches_the_documented_settings_on_a_random_pair():
    rng = np.random.default_rng(5)
    a = rng.random((40, 52, 3))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    reference = structural_similarity(b, a, data_range=1.0, channel_axis=2, gaussian_weights=True,
                                      sigma=1.5, use_sample_covariance=False)  # fmt: skip
    assert ssim(b, a) == pytest.approx(reference, rel=1e-10)
    assert ssim(b, a) == pytest.approx(_hand_ssim(b, a), rel=1e-10)
    # Sample covariances or a uniform window give other numbers: the settings matter.
    default_settings = structural_similarity(b, a, data_range=1.0, channel_axis=2)
    assert abs(_hand_ssim(b, a) - default_settings) > 1e-3


def test_ssim_of_different_images_is_below_one(photo):
    blurred = gaussian_filter(photo, sigma=(1.5, 1.5, 0))
    value = ssim(blurred, photo)
    assert 0 < value < 1
    assert value == pytest.approx(_hand_ssim(blurred, photo), rel=1e-6)
    assert ssim(photo, photo) == 1.0


def test_float32_and_float64_inputs_are_treated_alike(photo):
    blurred = photo * 0.9 + 0.05
    assert psnr(blurred.astype(np.float32), photo) == pytest.approx(psnr(blurred, photo), abs=1e-4)


def test_uint8_images_are_scaled_by_255():
    rng = np.random.default_rng(7)
    a = rng.integers(0, 255, (24, 30, 3), dtype=np.uint8)  # at most 254, so a + 1 fits
    b = a + np.uint8(1)
    assert psnr(a, b) == pytest.approx(20 * math.log10(255), rel=1e-12)
    assert psnr(a, b) == pytest.approx(48.13, abs=0.01)
    assert psnr(a, a / 255.0) == math.inf  # a uint8 file and its float version are the same
    assert ssim(a, a / 255.0) == 1.0
    c = rng.integers(0, 256, a.shape, dtype=np.uint8)
    assert psnr(a, c) == pytest.approx(psnr(a / 255.0, c / 255.0), rel=1e-12)
    assert ssim(a, c) == pytest.approx(ssim(a / 255.0, c / 255.0), rel=1e-12)
    assert ssim(a, c) < 0.1  # unrelated noise images


def test_uint16_images_are_scaled_by_65535():
    rng = np.random.default_rng(8)
    a = rng.integers(0, 65536, (24, 30, 3), dtype=np.uint16)
    b = np.clip(a.astype(np.int64) + rng.integers(-300, 301, a.shape), 0, 65535).astype(np.uint16)
    expected = _closed_form_psnr(a / 65535.0, b / 65535.0)
    assert psnr(a, b) == pytest.approx(expected, rel=1e-12)
    assert psnr(a, b) == pytest.approx(psnr(a / 65535.0, b / 65535.0), rel=1e-12)
    assert ssim(a, b) == pytest.approx(ssim(a / 65535.0, b / 65535.0), rel=1e-12)
    assert 0.9 < ssim(a, b) < 1
    assert psnr(a, a / 65535.0) == math.inf


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint32, np.uint64])
def test_other_integer_dtypes_are_refused(dtype):
    a = np.zeros((16, 16, 3), dtype)
    for metric in (psnr, ssim):
        with pytest.raises(ValueError, match=np.dtype(dtype).name):
            metric(a, a)
        with pytest.raises(ValueError, match=np.dtype(dtype).name):
            metric(np.zeros((16, 16, 3)), a)


def test_grey_as_three_channels_and_errors():
    grey = np.random.default_rng(0).random((20, 20, 1)).repeat(3, axis=2)
    # grey vs half of it: MSE = mean(0.25 g²) over the single grey plane.
    expected = -10 * math.log10(np.mean((0.5 * grey[..., 0]) ** 2))
    assert psnr(grey, grey * 0.5) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="shape mismatch"):
        psnr(grey, grey[:10])
    with pytest.raises(ValueError, match="shape mismatch"):
        ssim(np.zeros((20, 20, 3), np.uint8), np.zeros((20, 21, 3), np.uint8))
    with pytest.raises(ValueError, match="HWC RGB"):
        psnr(grey[..., 0], grey[..., 0])


def test_ssim_is_nan_below_its_window():
    tiny = np.zeros((5, 7, 3))
    assert math.isnan(ssim(tiny, tiny + 0.1))
