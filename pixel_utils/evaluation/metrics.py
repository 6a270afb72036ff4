"""Image-quality metrics, with one convention everywhere.

* Inputs: HWC RGB images of the same shape (numpy, or tensors converted with
  :func:`pixel_utils.data.images.to_numpy`). Float images are taken to lie in ``[0, 1]``. Integer
  images are scaled by their dtype's range: ``uint8`` by 1/255 and ``uint16`` by 1/65535, so
  an 8-bit file and its float version give the same numbers (and can be mixed). Other integer
  dtypes (signed ones, ``uint32``, ``int64``, ...) have no agreed range and raise
  :class:`ValueError` naming the dtype, as do mismatched shapes. Everything is converted to
  float64 before any arithmetic. Grey (``HW`` or ``HW×1``) images are refused: callers expand
  them to three identical channels first, so their numbers are comparable with colour ones.
* PSNR: ``10·log10(1 / MSE)`` with the MSE over all pixels and all three channels (data range
  1.0); identical images give ``inf``.
* SSIM: Wang et al. (2004): an 11×11 Gaussian window with σ = 1.5 (scikit-image's
  ``gaussian_weights=True``, truncated at 3.5σ, giving the 11-pixel window), K1 = 0.01,
  K2 = 0.03, population covariances, data range 1.0, computed per channel and averaged. The
  SSIM map is averaged after cropping ``(win_size - 1) // 2 = 5`` pixels from each border,
  where the window would overhang the image (scikit-image's convention); identical images
  give exactly 1.0. Images smaller than the window on either side have no SSIM: the function
  returns NaN.

Both delegate to ``skimage.metrics`` so they agree with the reference implementation.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

#: integer dtypes with an agreed full-scale value (see the module docstring)
INTEGER_RANGES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def _as_unit_float(image) -> np.ndarray:
    """``image`` as float64 in the [0, 1] convention: uint8/uint16 scaled by their range."""
    arr = np.asarray(image)
    if np.issubdtype(arr.dtype, np.integer):
        top = INTEGER_RANGES.get(arr.dtype)
        if top is None:
            raise ValueError(
                f"unsupported integer dtype {arr.dtype}: metrics take uint8 (0-255), "
                "uint16 (0-65535) or float images in [0, 1]"
            )
        return arr.astype(np.float64) / top
    return arr.astype(np.float64)


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_unit_float(a), _as_unit_float(b)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected HWC RGB images, got shape {a.shape}")
    return a, b


def psnr(image, reference) -> float:
    a, b = _pair(image, reference)
    if np.array_equal(a, b):
        return float("inf")
    return float(peak_signal_noise_ratio(b, a, data_range=1.0))


SSIM_WINDOW = 11


def ssim(image, reference) -> float:
    a, b = _pair(image, reference)
    if min(a.shape[:2]) < SSIM_WINDOW:
        return float("nan")
    if np.array_equal(a, b):
        return 1.0
    return float(
        structural_similarity(
            b,
            a,
            data_range=1.0,
            channel_axis=2,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )
