"""Numbers and figures for the course: blur in the Fourier domain, noise floors, linear light and
the power spectra of natural images (used by notebook 01, "Blur and noise").

Conventions: images are numpy ``HWC`` float RGB in ``[0, 1]`` (2-D arrays are taken as one
channel); frequencies are in **cycles per pixel** (Nyquist is 0.5); 2-D spectra are in
``numpy.fft``'s layout, zero frequency at ``[0, 0]`` (``numpy.fft.fftshift`` centres them).

* :func:`otf` / :func:`mtf`: the Fourier transform of a PSF, and its magnitude;
  :func:`mtf_polar` samples the MTF along any direction (exact, from the kernel's taps).
* :func:`power_spectrum`, :func:`radial_profile`, :func:`power_spectrum_slope`: the power
  spectrum of an image, its average over rings of equal frequency, and the exponent of the
  power law it follows (about -2 for natural images).
* :func:`fraction_below_noise_floor`: the share of frequencies a blur pushes under the noise.
* :func:`srgb_to_linear` / :func:`linear_to_srgb`: the sRGB transfer functions (IEC 61966-2-1),
  and :func:`blur_linear_light`, blur done where photons add.
* Figures (each returns a matplotlib figure): :func:`mtf_figure`, :func:`noise_floor_figure`,
  :func:`linear_light_figure`, :func:`spectrum_figure`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np

from pixel_utils.data.degradations import (
    DegradationSpec,
    convolve,
    crop_like,
    degrade,
    linear_to_srgb,
    srgb_to_linear,
)
from pixel_utils.evaluation.metrics import psnr

if TYPE_CHECKING:
    import pandas as pd

#: Spectra are measured on a centre crop of this side (the same in every profile: FFTs of
#: 256² images take milliseconds, and smaller crops give too few rings to fit a power law).
SPECTRUM_CROP = 256


def case_specs(*names: str) -> dict[str, DegradationSpec]:
    """``label → spec`` of the named :data:`~pixel_utils.data.benchmark.BENCHMARK_CASES`."""
    from pixel_utils.data.benchmark import BENCHMARK_CASES

    by_name = {c.name: c for c in BENCHMARK_CASES}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise KeyError(f"unknown benchmark case(s) {unknown}; choose from {sorted(by_name)}")
    return {by_name[n].label: by_name[n].spec for n in names}


def case_label(name: str) -> str:
    """The label of benchmark case ``name``, e.g. ``"gauss3"`` → ``"Gaussian σ=3"``."""
    return next(iter(case_specs(name)))


def case_kernel(name: str) -> np.ndarray:
    """The PSF of benchmark case ``name``."""
    return next(iter(case_specs(name).values())).kernel()


# ----------------------------------------------------------------------------- PSF spectra


def otf(kernel: np.ndarray, shape: int | tuple[int, int] = 256) -> np.ndarray:
    """Optical transfer function: the DFT of ``kernel`` zero-padded to ``shape``.

    The kernel's centre tap is placed at pixel ``(0, 0)`` (circularly), so a symmetric PSF has
    a real OTF and the phase only encodes the PSF's asymmetry. ``K[0, 0] = sum(kernel) = 1``.
    """
    h, w = (shape, shape) if isinstance(shape, int) else shape
    k = np.asarray(kernel, np.float64)
    if k.shape[0] > h or k.shape[1] > w:
        raise ValueError(f"kernel {k.shape} does not fit in {(h, w)}")
    padded = np.zeros((h, w))
    padded[: k.shape[0], : k.shape[1]] = k
    padded = np.roll(padded, (-(k.shape[0] // 2), -(k.shape[1] // 2)), axis=(0, 1))
    return np.fft.fft2(padded)


def mtf(kernel: np.ndarray, shape: int | tuple[int, int] = 256) -> np.ndarray:
    """Modulation transfer function ``|K(f)|``: how much of each frequency the PSF keeps."""
    return np.abs(otf(kernel, shape))


def frequency_radius(shape: tuple[int, ...]) -> np.ndarray:
    """``|f|`` in cycles/pixel at every bin of a 2-D DFT of an image of ``shape`` (H, W, ...)."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    return np.hypot(fy, fx)


def otf_polar(kernel: np.ndarray, freqs: np.ndarray, angles_deg: np.ndarray | float) -> np.ndarray:
    """The OTF sampled exactly on rays: ``K(f·cos θ, -f·sin θ)`` (θ counter-clockwise, image y
    down, as in :mod:`pixel_utils.data.degradations`). Returns ``(len(angles), len(freqs))``
    complex.

    Evaluates the discrete-time Fourier transform of the taps directly, so any direction and
    any frequency can be asked for, not only the DFT grid's."""
    k = np.asarray(kernel, np.float64)
    r0, c0 = k.shape[0] // 2, k.shape[1] // 2
    ys, xs = np.nonzero(k)
    w = k[ys, xs]
    dy, dx = ys - r0, xs - c0
    theta = np.radians(np.atleast_1d(angles_deg))[:, None, None]
    f = np.asarray(freqs, np.float64)[None, :, None]
    phase = -2j * np.pi * f * (np.cos(theta) * dx - np.sin(theta) * dy)
    return (w * np.exp(phase)).sum(axis=-1)


def mtf_polar(kernel: np.ndarray, freqs: np.ndarray, angles_deg: np.ndarray | float) -> np.ndarray:
    """``|otf_polar|``: the MTF along each direction in ``angles_deg`` (rows) at ``freqs``."""
    return np.abs(otf_polar(kernel, freqs, angles_deg))


def first_zero(freqs: np.ndarray, values: np.ndarray) -> float:
    """The first frequency where a real transfer function changes sign (linear interpolation),
    NaN if it never does."""
    v = np.asarray(values, np.float64)
    sign_change = np.nonzero(np.sign(v[:-1]) * np.sign(v[1:]) < 0)[0]
    if not len(sign_change):
        return float("nan")
    i = sign_change[0]
    return float(freqs[i] + (freqs[i + 1] - freqs[i]) * v[i] / (v[i] - v[i + 1]))


def disk_first_zero(radius: float) -> float:
    """Where the MTF of a uniform disk of ``radius`` pixels first vanishes: the disk's OTF is
    ``2·J1(2πrf)/(2πrf)``, zero at the first root of the Bessel function J1, 3.8317."""
    from scipy.special import jn_zeros

    return float(jn_zeros(1, 1)[0] / (2 * math.pi * radius))


def predicted_zeros(spec: DegradationSpec, fmax: float = 0.5) -> list[float]:
    """Zeros of the MTF below ``fmax`` that theory predicts, along the blur's worst direction:
    a disk of radius r at the roots of J1 over 2πr; a straight motion of length L at k/L
    (``sin(πLf)/(πLf)``); none for a Gaussian (it decays but never vanishes) or a shake."""
    if spec.blur_kind == "defocus":
        from scipy.special import jn_zeros

        zeros = jn_zeros(1, 20) / (2 * math.pi * spec.blur_params["radius"])
    elif spec.blur_kind == "motion_linear":
        zeros = np.arange(1, 100) / spec.blur_params["length"]
    else:
        return []
    return [float(z) for z in zeros if z <= fmax]


def worst_direction(kernel: np.ndarray, n_angles: int = 90) -> float:
    """The direction (degrees) along which the PSF removes the most: lowest mean MTF."""
    freqs = np.linspace(0, 0.5, 128)
    angles = np.linspace(0, 180, n_angles, endpoint=False)
    return float(angles[np.argmin(mtf_polar(kernel, freqs, angles).mean(axis=1))])


def blur_direction(spec: DegradationSpec) -> float:
    """The direction (degrees) to read a PSF's MTF along: 0 for isotropic blurs, the blur's
    own ``angle`` (motion direction, long axis) when it has one, else the worst direction."""
    if spec.blur_kind in ("gaussian", "defocus"):
        return 0.0
    if "angle" in spec.blur_params:
        return float(spec.blur_params["angle"]) % 180
    return worst_direction(spec.kernel())


def mtf_table(specs: dict[str, DegradationSpec], n_freqs: int = 2001):
    """Per PSF, along :func:`blur_direction`: the frequency where only 10 % of the contrast is
    left (MTF10, a classic resolution measure), the first zero theory predicts and the first
    one measured (sign change of the OTF; NaN for an asymmetric PSF, whose OTF is complex), and
    the MTF at Nyquist. For a Gaussian, whose ideal MTF ``exp(-2π²σ²f²)`` never vanishes, a
    measured zero comes from truncating the kernel at 3σ: "ideal MTF there" says how small the
    untruncated MTF already is at that frequency."""
    import pandas as pd

    freqs = np.linspace(0, 0.5, n_freqs)
    rows = {}
    for label, spec in specs.items():
        k = spec.kernel()
        angle = blur_direction(spec)
        K = otf_polar(k, freqs, angle)[0]
        below = np.nonzero(np.abs(K) < 0.1)[0]
        symmetric = np.allclose(k, k[::-1, ::-1])
        zeros = predicted_zeros(spec)
        measured = first_zero(freqs, K.real) if symmetric else float("nan")
        ideal = float("nan")
        if spec.blur_kind == "gaussian" and np.isfinite(measured):
            ideal = math.exp(-2 * math.pi**2 * spec.blur_params["sigma"] ** 2 * measured**2)
        rows[label] = {
            "direction (°)": angle,
            "MTF10 (cycles/px)": float(freqs[below[0]]) if len(below) else float("nan"),
            "first zero, theory": zeros[0] if zeros else float("nan"),
            "first zero, measured": measured,
            "ideal MTF there": ideal,
            "MTF at Nyquist": float(np.abs(K[-1])),
        }
    return pd.DataFrame(rows).T


def convolution_theorem_error(image: np.ndarray, kernel: np.ndarray) -> float:
    """Largest difference between a circular convolution done directly (``scipy.ndimage``,
    wrap-around borders) and as a product of spectra, ``ifft(K·X)``: float64 rounding only."""
    from scipy import ndimage

    x = _channels(image)
    direct = np.stack([ndimage.convolve(c, kernel, mode="wrap") for c in x])
    K = otf(kernel, x.shape[1:])
    product = np.real(np.fft.ifft2(np.fft.fft2(x) * K))
    return float(np.abs(direct - product).max())


# ----------------------------------------------------------------------------- image spectra


def _channels(image: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` float64 view of an HWC image or a 2-D array."""
    a = np.asarray(image, np.float64)
    return a[None] if a.ndim == 2 else np.moveaxis(a, -1, 0)


def power_spectrum(image: np.ndarray, window: bool = True) -> np.ndarray:
    """Power spectrum ``|X(f)|²`` per pixel, averaged over the channels (numpy.fft layout).

    Each channel's mean is removed and, with ``window``, a 2-D Hann window is applied so the
    image's borders (a photo is not periodic) do not leak a false ``1/f²`` cross into the
    spectrum. The normalisation makes white noise of standard deviation σ come out flat at
    ``σ²``: the noise floor of a spectrum is simply the noise variance.
    """
    x = _channels(image)
    x = x - x.mean(axis=(1, 2), keepdims=True)
    h, w = x.shape[1:]
    win = np.outer(np.hanning(h), np.hanning(w)) if window else np.ones((h, w))
    spectra = np.abs(np.fft.fft2(x * win)) ** 2 / (win**2).sum()
    return spectra.mean(axis=0)


def radial_profile(power2d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average of a 2-D spectrum (numpy.fft layout) over rings of equal ``|f|``.

    Ring ``k`` holds the bins whose ``|f|`` rounds to ``k / N`` (``N`` the shorter side), from
    0 up to the corners (``|f|`` ≈ 0.707). Returns ``(frequencies, means)``; empty rings are
    dropped."""
    n = min(power2d.shape)
    ring = np.rint(frequency_radius(power2d.shape) * n).astype(int)
    sums = np.bincount(ring.ravel(), weights=np.asarray(power2d, np.float64).ravel())
    counts = np.bincount(ring.ravel())
    keep = counts > 0
    return np.arange(len(counts))[keep] / n, sums[keep] / counts[keep]


def power_law_fit(
    freqs: np.ndarray, power: np.ndarray, fmin: float, fmax: float = 0.25
) -> tuple[float, float]:
    """Least-squares line through ``log10 power`` against ``log10 f`` for ``fmin ≤ f ≤ fmax``.
    Returns ``(slope, intercept)``: ``power ≈ 10**intercept · f**slope``."""
    band = (freqs >= fmin) & (freqs <= fmax) & (power > 0)
    if band.sum() < 3:
        raise ValueError(f"fewer than 3 frequencies in [{fmin}, {fmax}] to fit")
    slope, intercept = np.polyfit(np.log10(freqs[band]), np.log10(power[band]), 1)
    return float(slope), float(intercept)


def default_fit_band(shape: tuple[int, ...]) -> tuple[float, float]:
    """The band the spectral slope is fitted on: from 4 cycles per image (lower, the window
    and the image's mean colour dominate) to 0.25 cycles/pixel (higher, the camera's
    anti-aliasing, demosaicking and JPEG bend a photo's spectrum)."""
    return 4 / min(shape[:2]), 0.25


def power_spectrum_slope(image: np.ndarray, fmin: float | None = None, fmax: float = 0.25) -> float:
    """The exponent of the image's radially averaged power spectrum, ``|X(f)|² ∝ f^slope``:
    about 0 for white noise, about -2 (β = 2) for natural images."""
    lo, hi = default_fit_band(np.shape(image))
    f, p = radial_profile(power_spectrum(image))
    return power_law_fit(f, p, fmin if fmin is not None else lo, fmax if fmax else hi)[0]


def power_law_field(size: int, beta: float, rng: np.random.Generator) -> np.ndarray:
    """A ``size``² Gaussian random field with power spectrum ``∝ 1/f^beta`` (2-D array,
    zero mean, unit standard deviation): ``beta = 0`` is white noise."""
    f = frequency_radius((size, size))
    f[0, 0] = 1.0
    amplitude = f ** (-beta / 2)
    amplitude[0, 0] = 0.0
    field = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=(size, size))) * amplitude))
    return field / field.std()


# ----------------------------------------------------------------------------- noise floor


def snr_per_frequency(
    sharp: np.ndarray, kernel: np.ndarray, noise_sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """``|K(f)|²·S(|f|) / σ²`` at every DFT bin of ``sharp``, and the smooth signal spectrum
    ``S`` used: the sharp image's radially averaged power spectrum (a single image's spectrum
    is too noisy bin by bin), so only the blur's direction dependence remains."""
    f_ring, s_ring = radial_profile(power_spectrum(sharp))
    signal = np.interp(frequency_radius(sharp.shape), f_ring, s_ring)
    blurred = mtf(kernel, sharp.shape[:2]) ** 2 * signal
    return blurred / noise_sigma**2, signal


def fraction_below_noise_floor(sharp: np.ndarray, kernel: np.ndarray, noise_sigma: float) -> float:
    """Share of the frequencies of ``sharp``'s DFT grid where the blurred signal's power,
    ``|K(f)|²·S(f)``, falls below the power ``σ²`` of white noise: there the measurement holds
    more noise than signal and no method can tell what the scene was.

    A delta kernel gives the floor of the sharp image itself (the noise alone)."""
    snr, _ = snr_per_frequency(sharp, kernel, noise_sigma)
    return float((snr < 1).mean())


NO_BLUR = "no blur (noise only)"


def noise_floor_table(sharp: np.ndarray, specs: dict[str, DegradationSpec]):
    """Per degradation, the share of ``sharp``'s frequencies its blur sinks under its noise
    floor, with a first row for the noise alone (no blur, the first spec's σ)."""
    import pandas as pd

    sigma = next(iter(specs.values())).noise_sigma
    rows = {NO_BLUR: fraction_below_noise_floor(sharp, np.ones((1, 1)), sigma)}
    for label, spec in specs.items():
        rows[label] = fraction_below_noise_floor(sharp, spec.kernel(), spec.noise_sigma)
    table = pd.Series(rows, name="share of frequencies below the noise floor")
    table.attrs["noise_sigma"] = sigma
    return table


# ----------------------------------------------------------------------------- linear light

# srgb_to_linear and linear_to_srgb live with the other forward models in data.degradations.


def blur_linear_light(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Blur as the optics does it: decode sRGB to linear light, convolve, encode again."""
    return linear_to_srgb(convolve(srgb_to_linear(image), kernel)).astype(np.float32)


def linear_vs_srgb(sharp: np.ndarray, case: str = "gauss3") -> dict:
    """PSNRs of the two ways of simulating the blur of benchmark ``case`` on ``sharp``: what
    each costs against the sharp image, and how far apart the two simulations are."""
    label, kernel = case_label(case), case_kernel(case)
    in_srgb, in_linear = convolve(sharp, kernel), blur_linear_light(sharp, kernel)
    return {
        "blur": label,
        "psnr_srgb_blur": psnr(in_srgb, sharp),
        "psnr_linear_blur": psnr(in_linear, sharp),
        "psnr_between": psnr(in_srgb, in_linear),
    }


def step_edge(size: int = 48, dark: float = 0.0, bright: float = 1.0) -> np.ndarray:
    """A vertical edge, ``dark`` on the left and ``bright`` on the right (sRGB values)."""
    row = np.where(np.arange(size) < size // 2, dark, bright)
    return np.repeat(np.tile(row, (size, 1))[..., None], 3, axis=2).astype(np.float32)


# ----------------------------------------------------------------------------- figures


def mtf_figure(specs: dict[str, DegradationSpec], n_freqs: int = 256, n_angles: int = 90):
    """One panel per PSF: its MTF against frequency along :func:`blur_direction` (line; the
    most blurred direction), the range over all directions (band), and the zeros theory
    predicts (dotted). Log scale: 1e-3 means a thousandth of the contrast survives."""
    freqs = np.linspace(0, 0.5, n_freqs)
    angles = np.linspace(0, 180, n_angles, endpoint=False)
    fig, axes = plt.subplots(1, len(specs), figsize=(3.3 * len(specs), 3.3), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, (label, spec) in zip(axes, specs.items(), strict=True):
        k, angle = spec.kernel(), blur_direction(spec)
        m = np.maximum(mtf_polar(k, freqs, angles), 1e-7)
        line = np.maximum(mtf_polar(k, freqs, angle)[0], 1e-7)
        ax.fill_between(freqs, m.min(axis=0), m.max(axis=0), alpha=0.25, label="all directions")
        ax.plot(freqs, line, lw=1.5, label="along the blur")
        for z in predicted_zeros(spec):
            ax.axvline(z, color="k", ls=":", lw=0.8)
        ax.set(yscale="log", ylim=(1e-6, 2), xlabel="frequency (cycles/pixel)")
        ax.set_title(f"{label}\n(line: along {angle:.0f}°)", fontsize=10)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("MTF |K(f)|")
    axes[0].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def degraded_crops(
    photo: np.ndarray, specs: dict[str, DegradationSpec], seed: int, crop: int = SPECTRUM_CROP
) -> dict[str, np.ndarray]:
    """``photo`` under each spec (whole photo blurred, then centre-cropped, then noise)."""
    return {
        label: degrade(photo, spec, np.random.default_rng(seed), crop=crop)[0]
        for label, spec in specs.items()
    }


def noise_floor_figure(
    photo: np.ndarray, specs: dict[str, DegradationSpec], seed: int, crop: int = SPECTRUM_CROP
):
    """One panel per degradation: the radially averaged power spectra of the sharp crop and
    of the degraded one (measured), the prediction ``|K|²·S`` without noise, and the noise
    floor ``σ²``, up to Nyquist. Where the prediction sinks under the floor (shaded) the
    degraded spectrum goes flat: it shows the noise, not the scene. The share of frequencies
    lost in the titles counts the whole DFT grid, corners beyond 0.5 included."""
    sharp = crop_like(photo, crop)
    degraded = degraded_crops(photo, specs, seed, crop)
    fig, axes = plt.subplots(1, len(specs), figsize=(5.2 * len(specs), 3.8), sharey=True)
    axes = np.atleast_1d(axes)
    f_s, p_s = radial_profile(power_spectrum(sharp))
    for ax, (label, spec) in zip(axes, specs.items(), strict=True):
        sigma = spec.noise_sigma
        snr, _ = snr_per_frequency(sharp, spec.kernel(), sigma)
        f_p, p_pred = radial_profile(snr * sigma**2)
        f_d, p_d = radial_profile(power_spectrum(degraded[label]))
        s_, d_, p_ = ((f > 0) & (f <= 0.5) for f in (f_s, f_d, f_p))
        ax.loglog(f_s[s_], p_s[s_], color="C0", label="sharp photo")
        ax.loglog(f_d[d_], p_d[d_], color="C3", label="blurred + noise (measured)")
        ax.loglog(f_p[p_], p_pred[p_], "--", color="C1", label="|K|²·S: blur alone (predicted)")
        ax.axhline(sigma**2, color="k", lw=1, label=f"noise floor σ² (σ = {sigma:g})")
        below = f_p[p_][p_pred[p_] < sigma**2]
        if len(below):
            ax.axvspan(below.min(), 0.5, color="grey", alpha=0.15)
        lost = fraction_below_noise_floor(sharp, spec.kernel(), sigma)
        ax.set(xlabel="frequency (cycles/pixel)", title=f"{label}: {lost:.0%} of frequencies lost")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("power |X(f)|²")
    axes[0].set_ylim(min(s.noise_sigma for s in specs.values()) ** 2 / 100, None)
    axes[0].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def linear_light_figure(sharp: np.ndarray, case: str = "gauss3", gain: float = 5.0):
    """The blur of benchmark ``case`` done both ways. Left: a black/white edge (one row of
    pixels). Middle: the photo blurred in linear light. Right: ``gain`` × (linear − sRGB)."""
    kernel = case_kernel(case)
    edge = step_edge(size=max(kernel.shape[0] * 2, 24))
    row = edge.shape[0] // 2
    edge_srgb = convolve(edge, kernel)[row, :, 0]
    edge_linear = blur_linear_light(edge, kernel)[row, :, 0]
    photo_srgb, photo_linear = convolve(sharp, kernel), blur_linear_light(sharp, kernel)
    fig, axes = plt.subplots(1, 3, figsize=(12.5, 3.8), gridspec_kw={"width_ratios": [1.5, 1, 1]})
    x = np.arange(len(edge_srgb)) - len(edge_srgb) // 2
    axes[0].step(x, edge[row, :, 0], where="mid", color="grey", lw=1, label="sharp edge")
    axes[0].plot(x, edge_srgb, "o-", ms=3, label="blurred in sRGB (our simulation)")
    axes[0].plot(x, edge_linear, "s-", ms=3, label="blurred in linear light (physics)")
    axes[0].axhline(0.5, color="k", lw=0.5, ls=":")
    axes[0].set(xlabel="pixel", ylabel="sRGB value", title="A black/white edge, one row")
    axes[0].legend(fontsize=8, loc="upper left")
    axes[0].grid(alpha=0.3)
    axes[1].imshow(np.clip(photo_linear, 0, 1))
    axes[1].set_title("photo blurred in linear light", fontsize=10)
    diff = (photo_linear - photo_srgb).mean(axis=2)
    axes[2].imshow(np.clip(0.5 + gain * diff, 0, 1), cmap="RdBu_r", vmin=0, vmax=1)
    axes[2].set_title(f"(linear − sRGB blur) × {gain:g}; red: brighter", fontsize=10)
    for ax in axes[1:]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def spectrum_figure(images: dict[str, np.ndarray]):
    """Radially averaged power spectra on log-log axes, each with its power law fitted over
    :func:`default_fit_band` (dashed); the legend gives the fitted slopes."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    at_tenth = []
    for i, (label, image) in enumerate(images.items()):
        f, p = radial_profile(power_spectrum(image))
        lo, hi = default_fit_band(image.shape)
        slope, intercept = power_law_fit(f, p, lo, hi)
        keep = (f > 0) & (f <= 0.5)
        ax.loglog(f[keep], p[keep], color=f"C{i}", lw=1.2, label=f"{label}: slope {slope:.2f}")
        band = np.array([lo, hi])
        ax.loglog(band, 10**intercept * band**slope, "--", color=f"C{i}", lw=1.5)
        at_tenth.append(intercept + slope * -1)  # log10 of the fit at f = 0.1
    ref = np.array([0.01, 0.5])
    anchor = 10 ** (min(at_tenth) - 1)  # a decade below the lowest curve, parallel to the eye
    ax.loglog(ref, anchor * (ref / 0.1) ** -2.0, ":", color="k", label="a 1/f² line (β = 2)")
    ax.set(xlabel="frequency (cycles/pixel)", ylabel="power |X(f)|²",
           title="Power spectra: straight lines on log-log axes are power laws")  # fmt: skip
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- summaries


def compare(
    a: float,
    b: float,
    words: tuple[str, str, str] = ("higher than", "lower than", "about the same as"),
    tol: float = 0.0,
) -> str:
    """``words[0]`` if ``a`` exceeds ``b`` by more than ``tol``, ``words[1]`` if it falls short
    by more than ``tol``, else ``words[2]``: comparisons in generated text follow the numbers."""
    if abs(a - b) <= tol:
        return words[2]
    return words[0] if a > b else words[1]


def lessons_markdown(
    conv_error: float,
    mtf: pd.DataFrame,
    floor: pd.Series,
    linear: dict[str, float],
    leaf_slopes: list[float],
    photo_slopes: dict[str, float],
    scores: pd.DataFrame,
    headline: str,
    blurs: tuple[str, str] = ("Gaussian σ=3", "Camera shake 17 px"),
) -> str:
    """The "What we learned" text, every number in it taken from the arguments (this run's
    results) and every comparison worded from the numbers, never assumed.

    ``mtf`` is :func:`mtf_table`'s, ``floor`` :func:`noise_floor_table`'s, ``linear``
    :func:`linear_vs_srgb`'s, ``scores`` :func:`~pixel_utils.data.benchmark.score_degraded`'s table
    (column ``"PSNR (dB)"``, one row per case label); ``blurs`` are the two cases compared."""
    lines = []
    lines.append(
        f"- **Blur is a product of spectra.** Convolving directly and multiplying spectra gave "
        f"the same image to within {conv_error:.1e}, float64 rounding: $y = k * x$ and "
        f"$Y = K \\cdot X$ are one operation."
    )
    zeros = mtf.dropna(subset=["first zero, theory"])
    for label, row in zeros.iterrows():
        theory, measured = row["first zero, theory"], row["first zero, measured"]
        if np.isfinite(measured):
            gap = abs(measured - theory) / theory
            agree = "agreeing" if gap < 0.05 else "disagreeing"
            lines.append(
                f"- **{label}** destroys frequencies outright: theory puts the first zero of its "
                f"MTF at {theory:.4f} cycles/pixel, the FFT of our kernel at {measured:.4f} "
                f"({agree}, {gap:.1%} apart). Whatever the scene held there is gone for good."
            )
    mtf10 = mtf["MTF10 (cycles/px)"].dropna().sort_values()
    if len(mtf10):
        listed = ", ".join(f"{label} {f:.3f}" for label, f in mtf10.items())
        least = mtf["MTF at Nyquist"].idxmin()
        lines.append(
            f"- Along the blur, contrast falls to 10 % at (cycles/pixel): {listed}. At Nyquist, "
            f"**{least}** keeps the least, {mtf.loc[least, 'MTF at Nyquist']:.1e} of the contrast."
        )
    for label, row in mtf[np.isfinite(mtf["ideal MTF there"])].iterrows():
        lines.append(
            f"- The ideal MTF of **{label}** never reaches zero, but our kernel, cut off at 3σ, "
            f"crosses zero at {row['first zero, measured']:.3f} cycles/pixel, where the ideal "
            f"one has already fallen to {row['ideal MTF there']:.1e}."
        )
    a, b = blurs
    more = compare(floor[a], floor[b], ("more frequencies than", "fewer frequencies than",
                                        "about as many frequencies as"), 0.005)  # fmt: skip
    sigma = floor.attrs.get("noise_sigma", float("nan"))
    lines.append(
        f"- **The noise floor decides what is lost.** With noise σ = {sigma:g}, {floor[a]:.0%} of "
        f"the photo's frequencies sink below the floor under {a} and {floor[b]:.0%} under {b}: "
        f"{a} loses {more} {b}. Without blur, the noise alone hides {floor[NO_BLUR]:.1%} of them."
    )
    diff = linear["psnr_linear_blur"] - linear["psnr_srgb_blur"]
    milder = compare(diff, 0, ("milder", "harsher", "as harsh"), 0.05)
    matters = linear["psnr_between"] < 40
    size = (
        "a difference one can measure: our sRGB shortcut is an approximation, not the physics"
        if matters
        else "below what the eye notices: our sRGB shortcut is a fair approximation"
    )
    lines.append(
        f"- **{'Linear light matters' if matters else 'Linear light barely matters here'}.** "
        f"The same {linear['blur']} blur scores "
        f"{linear['psnr_srgb_blur']:.2f} dB against the sharp photo when done on sRGB values and "
        f"{linear['psnr_linear_blur']:.2f} dB when done in linear light: the physical blur is "
        f"{milder} ({diff:+.2f} dB) by this measure. The two simulations differ from each other "
        f"by a PSNR of {linear['psnr_between']:.1f} dB, {size}."
    )
    leaves = float(np.mean(leaf_slopes))
    photos = float(np.mean(list(photo_slopes.values())))
    alike = abs(leaves - photos) < 0.5
    steep = compare(-leaves, -photos, ("steeper than", "shallower than", "about as steep as"), 0.1)
    lines.append(
        f"- **{'Dead leaves have photo-like spectra' if alike else 'Dead leaves and photos differ'}"
        f".** The fitted power-law slope of "
        f"{len(leaf_slopes)} dead-leaves images averages {leaves:.2f} (from {min(leaf_slopes):.2f}"
        f" to {max(leaf_slopes):.2f}), i.e. β = {-leaves:.2f}; the {len(photo_slopes)} test "
        f"photos average {photos:.2f} (β = {-photos:.2f}). The dead leaves' spectra are {steep} "
        f"the photos'. The textbook value β = 2 is {abs(leaves + 2):.2f} away from the dead "
        f"leaves' and {abs(photos + 2):.2f} from the photos'."
    )
    psnr_col = scores["PSNR (dB)"]
    best, worst = psnr_col.idxmax(), psnr_col.idxmin()
    lines.append(
        f"- **What each case costs** (degraded input against the sharp photo, mean over the "
        f"benchmark): from {psnr_col[best]:.2f} dB for {best} down to {psnr_col[worst]:.2f} dB "
        f"for {worst}; the headline case, {headline}, scores {psnr_col[headline]:.2f} dB. "
        f"That is the bar every sharpening method of the next notebooks has to clear."
    )
    common = [c for c in psnr_col.index if c in floor.index]
    if len(common) >= 3:
        rho = _spearman(floor[common].to_numpy(), psnr_col[common].to_numpy())
        if rho <= -0.5:
            verdict = "as a rule, the more frequencies a blur sinks, the lower its PSNR"
        elif rho >= 0.5:
            verdict = "surprisingly, the blurs that sink more frequencies score higher PSNRs"
        else:
            verdict = (
                "the share of lost frequencies alone does not order the cases by PSNR. PSNR "
                "counts errors in power, and a photo's power sits mostly at low frequencies, so "
                "what a blur does there weighs more than how many fine frequencies it drowns"
            )
        lines.append(
            f"- Across the {len(common)} blur cases, the rank correlation between the share of "
            f"frequencies lost and the PSNR is ρ = {rho:.2f}: {verdict}."
        )
    return "\n".join(lines)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])
