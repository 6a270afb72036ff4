"""Classical deconvolution, explained with numbers and figures (notebook 04's lesson).

The forward model is ``y = k * x + n``: the sharp image ``x`` convolved with the point-spread
function (PSF) ``k``, plus white noise ``n`` of standard deviation σ. On a periodic image the
discrete Fourier transform turns it into a product per frequency, ``Y = K·X + N``, where ``K``
is the optical transfer function (OTF, :func:`~pixel_utils.report.teaching.otf`); its modulus
``|K|`` is the MTF.

* The **inverse filter** ``1/K`` (:func:`inverse_filter_response`) undoes the blur exactly and
  multiplies the noise by ``1/|K|``, which is enormous where ``|K|`` is near zero.
* The **Wiener filter** ``K*/(|K|² + NSR)`` (:func:`wiener_response`) is the linear filter of
  least mean-square error when the noise-to-signal power ratio ``NSR(f) = 1/SNR(f)`` is known;
  its gain never exceeds ``1/(2·√NSR)``. :func:`predicted_mse` gives its expected error in
  closed form; :func:`wiener_fft` applies it.
* **Richardson–Lucy** iterates ``x ← x · (k♭ * (y / (k * x)))``; :func:`richardson_lucy_curve`
  follows its PSNR as the iterations grow.

The second half reads the benchmark's per-image table (``method, case, photo, psnr, ssim``):
gains over the blurred input with 95% confidence intervals (:func:`gain_ci`), the worst
(photo, case) items (:func:`worst_cases`, :func:`worst_case_gallery`) and the generated
"what we learned" sentences (:func:`what_we_learned`), whose comparison words are computed
from the numbers. Everything is numpy float64; images are HWC RGB or 2-D grey in ``[0, 1]``.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd

from pixel_utils.report.teaching import (
    otf,  # the OTF of notebook 01's lesson: one definition for both
)

# ----------------------------------------------------------------------------- transfer functions


def laplacian_otf(shape: tuple[int, int]) -> np.ndarray:
    """Transfer function of the 5-point Laplacian, ``4 − 2cos(2πf_y) − 2cos(2πf_x)``: the
    default regulariser of ``skimage.restoration.wiener`` (0 at DC, 8 at the highest
    frequency)."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    return (4 - 2 * np.cos(2 * np.pi * fy) - 2 * np.cos(2 * np.pi * fx)).astype(np.complex128)


def skimage_nsr(shape: tuple[int, int], balance: float) -> np.ndarray:
    """The ``1/SNR(f)`` that ``skimage.restoration.wiener(image, psf, balance)`` assumes:
    ``balance · |Λ(f)|²`` with Λ the Laplacian (:func:`laplacian_otf`). Zero at DC, so the mean
    brightness is kept; growing with frequency, as the noise-to-signal ratio of a natural
    image does (its power falls roughly as 1/f²)."""
    return balance * np.abs(laplacian_otf(shape)) ** 2


def inverse_filter_response(kernel: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``1/K``: the inverse filter's complex response (``inf`` where ``K`` is exactly 0).
    Applied to ``Y = KX + N`` it returns ``X + N/K``: the noise is multiplied by ``1/|K|``."""
    k = otf(kernel, shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(k == 0, np.inf, 1 / np.where(k == 0, 1, k))


def wiener_response(kernel: np.ndarray, shape: tuple[int, int], nsr) -> np.ndarray:
    """``K* / (|K|² + NSR)``: the Wiener filter for noise-to-signal power ratio ``nsr`` (a
    scalar, or an array of ``shape`` for a frequency-dependent ``1/SNR(f)``). With ``nsr → 0``
    it tends to the inverse filter wherever ``|K|² ≫ nsr``; where ``|K|² ≪ nsr`` it tends to 0
    instead of exploding. Its gain ``|K|/(|K|² + nsr)`` peaks at ``|K| = √nsr`` at
    ``1/(2√nsr)``."""
    k = otf(kernel, shape)
    return np.conj(k) / (np.abs(k) ** 2 + np.asarray(nsr, np.float64))


def max_wiener_gain(nsr: float) -> float:
    """The largest gain a Wiener filter with constant ``nsr`` can have: ``1/(2√nsr)`` (from
    ``|K|² + nsr ≥ 2|K|√nsr``)."""
    return 1 / (2 * math.sqrt(nsr))


def _apply(image: np.ndarray, response: np.ndarray) -> np.ndarray:
    """Multiply the 2-D spectrum of ``image`` (grey, or each channel of HWC) by ``response``."""
    image = np.asarray(image, np.float64)
    if image.ndim == 3:
        return np.stack([_apply(image[..., c], response) for c in range(image.shape[2])], 2)
    return np.real(np.fft.ifft2(np.fft.fft2(image) * response))


def blur_periodic(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Circular convolution ``k * x`` through the FFT (the model the formulas are exact for)."""
    return _apply(image, otf(kernel, np.shape(image)[:2]))


def inverse_filter(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``Y/K`` on a periodic image, with ``1/K`` replaced by 0 where ``K`` is exactly 0."""
    h = inverse_filter_response(kernel, np.shape(image)[:2])
    return _apply(image, np.where(np.isfinite(h), h, 0))


def wiener_fft(image: np.ndarray, kernel: np.ndarray, nsr) -> np.ndarray:
    """The Wiener filter applied in the Fourier domain (periodic borders, no clipping)."""
    return _apply(image, wiener_response(kernel, np.shape(image)[:2], nsr))


def oracle_nsr(sharp: np.ndarray, noise_sigma: float) -> np.ndarray:
    """The true ``1/SNR(f) = E|N(f)|² / |X(f)|² = M·σ² / |X(f)|²`` of a grey image of ``M``
    pixels: with it the Wiener filter is the best linear filter for *this* image."""
    sharp = np.asarray(sharp, np.float64)
    power = np.abs(np.fft.fft2(sharp)) ** 2
    return sharp.size * noise_sigma**2 / np.maximum(power, 1e-30)


def predicted_mse(
    sharp: np.ndarray, kernel: np.ndarray, noise_sigma: float, response: np.ndarray
) -> dict:
    """Expected per-pixel MSE of ``response`` (a filter ``H``) applied to ``y = k * x + n``
    (circular blur, white noise σ, no clipping), for a grey image ``x`` of ``M`` pixels.

    Parseval: ``MSE = (1/M²) Σ_f E|Ê(f)|²``, and ``Ê = (HK − 1)X + HN`` with
    ``E|N(f)|² = Mσ²``, so ``MSE = (1/M²) Σ |HK − 1|²|X|²  +  (σ²/M) Σ |H|²``: the blur left in
    (``"blur"``) plus the noise let through (``"noise"``). ``H = 1`` is the blurred input
    itself.
    """
    sharp = np.asarray(sharp, np.float64)
    m = sharp.size
    k = otf(kernel, sharp.shape)
    h = np.broadcast_to(np.asarray(response, np.complex128), sharp.shape)
    x = np.fft.fft2(sharp)
    blur = float(np.sum(np.abs(h * k - 1) ** 2 * np.abs(x) ** 2) / m**2)
    noise = float(noise_sigma**2 * np.sum(np.abs(h) ** 2) / m)
    return {"blur": blur, "noise": noise, "total": blur + noise}


def predicted_wiener_mse(sharp: np.ndarray, kernel: np.ndarray, noise_sigma: float, nsr) -> dict:
    """:func:`predicted_mse` of the Wiener filter with ``nsr``."""
    return predicted_mse(sharp, kernel, noise_sigma, wiener_response(kernel, sharp.shape, nsr))


def synthetic_grey(size: int = 128, seed: int = 0) -> np.ndarray:
    """A natural-looking grey test image: a dead-leaves picture (``pixel_utils.data.sources``),
    channel-averaged, float64 in [0, 1]."""
    from pixel_utils.data.sources import dead_leaves

    return dead_leaves(np.random.default_rng(seed), size=size).astype(np.float64).mean(axis=2)


def wiener_gain_check(
    sigma: float = 1.0, noise_sigma: float = 0.01, nsr: float = 1e-3, size: int = 128, seed: int = 0
) -> dict:
    """Predict, then measure, the PSNR gain of the Wiener filter over the blurred input for a
    Gaussian PSF of ``sigma`` on a periodic synthetic image (one noise draw).

    Returns ``{"predicted_db", "measured_db", "predicted_mse", "measured_mse"}``.
    """
    from pixel_utils.data.degradations import gaussian_kernel

    x = synthetic_grey(size, seed)
    k = gaussian_kernel(sigma)
    rng = np.random.default_rng(seed + 1)
    y = blur_periodic(x, k) + rng.normal(0, noise_sigma, x.shape)
    restored = wiener_fft(y, k, nsr)
    mse_in = predicted_mse(x, k, noise_sigma, np.ones(x.shape))["total"]
    mse_out = predicted_wiener_mse(x, k, noise_sigma, nsr)["total"]
    measured_in, measured_out = np.mean((y - x) ** 2), np.mean((restored - x) ** 2)
    return {
        "predicted_db": 10 * math.log10(mse_in / mse_out),
        "measured_db": float(10 * np.log10(measured_in / measured_out)),
        "predicted_mse": mse_out,
        "measured_mse": float(measured_out),
    }


def radial_cut(response: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies ``0 … 0.5`` cycles/pixel and ``|response|`` along the horizontal axis."""
    n = response.shape[1]
    half = n // 2 + 1
    return np.arange(half) / n, np.abs(response[0, :half])


def first_zero(kernel: np.ndarray, n: int = 1024) -> tuple[float, float]:
    """The first local minimum of the MTF ``|K|`` along the horizontal frequency axis (the
    first zero of a disk's Airy-like OTF): ``(frequency in cycles/pixel, |K| there)``."""
    f, mtf = radial_cut(otf(kernel, (n, n)))
    for i in range(1, len(mtf) - 1):
        if mtf[i] <= mtf[i - 1] and mtf[i] < mtf[i + 1]:
            return float(f[i]), float(mtf[i])
    raise ValueError("the MTF has no interior minimum")


def attenuated_fraction(kernel: np.ndarray, threshold: float = 0.01, n: int = 256) -> float:
    """Share of the 2-D spectrum where the MTF ``|K|`` is below ``threshold``: a PSF-only proxy
    for what the blur destroys. Whether a frequency is truly lost also depends on the photo:
    it is where the blurred signal's power ``|K|²·S`` falls under the noise's ``σ²``
    (:func:`pixel_utils.report.teaching.fraction_below_noise_floor`)."""
    return float(np.mean(np.abs(otf(kernel, (n, n))) < threshold))


# ----------------------------------------------------------------------------- figures


def wiener_response_figure(
    kernel: np.ndarray,
    nsrs=(1e-1, 1e-2, 1e-3, 1e-4),
    n: int = 256,
    balance: float | None = 0.01,
    title: str = "Gaussian σ = 3",
):
    """Gain ``|H(f)|`` against frequency of the inverse filter and of Wiener filters with
    constant ``nsr`` (left, log scale, each bounded by ``1/(2√nsr)``), and the restored MTF
    ``|H·K|`` (right: how much of each frequency comes back). With ``balance``, the curve
    scikit-image's ``wiener`` uses (``nsr = balance·|Λ|²``) is added, dashed."""
    import matplotlib.pyplot as plt

    shape = (n, n)
    f, mtf = radial_cut(otf(kernel, shape))
    fig, (ax, ax_r) = plt.subplots(1, 2, figsize=(11, 3.8))
    with np.errstate(divide="ignore"):
        ax.plot(f, 1 / mtf, "k", lw=2, label="inverse filter 1/|K|")
    ax.plot(f, mtf, color="grey", ls=":", lw=2, label="blur MTF |K|")
    ax_r.plot(f, mtf, color="grey", ls=":", lw=2, label="blurred: |K|")
    responses = {f"Wiener, 1/SNR = {v:g}": wiener_response(kernel, shape, v) for v in nsrs}
    if balance is not None:
        label = f"scikit-image, balance = {balance:g}"
        responses[label] = wiener_response(kernel, shape, skimage_nsr(shape, balance))
    for i, (label, h) in enumerate(responses.items()):
        _, gain = radial_cut(h)
        style = "--" if label.startswith("scikit") else "-"
        ax.plot(f, gain, ls=style, color=f"C{i}", label=label)
        ax_r.plot(f, gain * mtf, ls=style, color=f"C{i}", label=label)
        if not label.startswith("scikit"):
            ax.axhline(max_wiener_gain(nsrs[i]), color=f"C{i}", lw=0.6, ls=":")
    ax.set(
        yscale="log",
        ylim=(1e-3, 1e4),
        xlabel="frequency (cycles/pixel)",
        ylabel="gain |H(f)|",
        title=f"Filter gain, {title} PSF",
    )
    ax_r.set(
        ylim=(0, 1.05),
        xlabel="frequency (cycles/pixel)",
        ylabel="|H(f)·K(f)|",
        title="Restored MTF: share of each frequency recovered",
    )
    for a in (ax, ax_r):
        a.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    ax_r.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def deconvolution_demo(
    sharp: np.ndarray,
    kernel: np.ndarray,
    noise_sigma: float = 0.01,
    nsr: float = 1e-2,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Sharp crop → circularly blurred (noise-free and noisy) → inverse filter and Wiener:
    ``{title: image}`` for :func:`demo_figure`. Circular blur makes the inverse filter exact
    on noise-free input, so any damage on the noisy input is the noise, amplified by
    ``1/|K|``."""
    from pixel_utils.evaluation.metrics import psnr

    sharp = np.asarray(sharp, np.float64)
    clean = blur_periodic(sharp, kernel)
    noisy = clean + np.random.default_rng(seed).normal(0, noise_sigma, sharp.shape)
    panels = {
        "sharp": sharp,
        f"blurred + noise σ={noise_sigma:g}": noisy,
        "inverse filter,\nnoise-free input": inverse_filter(clean, kernel),
        "inverse filter,\nnoisy input": inverse_filter(noisy, kernel),
        f"Wiener 1/SNR={nsr:g},\nnoisy input": wiener_fft(noisy, kernel, nsr),
    }
    return {
        (t if t == "sharp" else f"{t}\n{psnr(np.clip(im, 0, 1), sharp):.1f} dB"): np.clip(im, 0, 1)
        for t, im in panels.items()
    }


def demo_figure(panels: dict[str, np.ndarray], size: float = 2.4):
    """The panels of :func:`deconvolution_demo` side by side."""
    from pixel_utils.report.viz import image_grid

    return image_grid(list(panels.values()), list(panels), size=size)


def inverse_filter_figure(case: str = "gauss3", crop: int = 128, nsr: float = 0.01, seed: int = 0):
    """:func:`demo_figure` of :func:`deconvolution_demo` on the sharp :func:`validation_crop`
    with benchmark ``case``'s PSF and noise level."""
    from pixel_utils.data.benchmark import BENCHMARK_CASES

    spec = next(c.spec for c in BENCHMARK_CASES if c.name == case)
    sharp = validation_crop(case, crop, seed=seed)[1]
    return demo_figure(deconvolution_demo(sharp, spec.kernel(), spec.noise_sigma, nsr, seed))


def validation_crop(
    case: str = "gauss3", crop: int = 64, margin: int = 0, seed: int = 0, noise: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(blurred, sharp, psf)`` from the first validation photo, degraded like the benchmark
    (blurred whole by benchmark ``case``, centre-cropped, then noise): ``sharp`` is the central
    ``crop``², ``blurred`` the central ``(crop + 2·margin)``², so a method can be run with
    ``margin`` pixels of *real* surroundings and scored on the centre. With ``noise=False``,
    the same blur without noise. Images are HWC float32."""
    import dataclasses

    from pixel_utils.data.benchmark import BENCHMARK_CASES
    from pixel_utils.data.degradations import crop_like, degrade
    from pixel_utils.data.sources import PHOTO_SPLITS, load_photo

    spec = next(c.spec for c in BENCHMARK_CASES if c.name == case)
    if not noise:
        spec = dataclasses.replace(spec, noise_sigma=0.0)
    photo = load_photo(PHOTO_SPLITS["val"][0])
    blurred, _ = degrade(photo, spec, np.random.default_rng(seed), crop=crop + 2 * margin)
    return blurred, crop_like(photo, crop), spec.kernel()


RL_ITERATIONS = (1, 2, 5, 10, 20, 50, 100, 200, 500)


def richardson_lucy_curve(
    blurred: np.ndarray,
    sharp: np.ndarray,
    kernel: np.ndarray,
    iterations=RL_ITERATIONS,
    margin: int = 0,
) -> pd.DataFrame:
    """PSNR of scikit-image's ``restoration.richardson_lucy`` after each count of
    ``iterations`` (restarted for every count, from its flat 0.5 start), run on the 2-D grey
    ``blurred`` and scored on its centre (``margin`` pixels cut from each side) against the
    grey ``sharp``. Columns ``iterations, psnr``."""
    from skimage import restoration

    blurred = np.asarray(blurred, np.float64)
    inner = (slice(margin, blurred.shape[0] - margin), slice(margin, blurred.shape[1] - margin))
    rows = [
        (n, _grey_psnr(restoration.richardson_lucy(blurred, kernel, num_iter=n)[inner], sharp))
        for n in iterations
    ]
    return pd.DataFrame(rows, columns=["iterations", "psnr"])


def _grey_psnr(image: np.ndarray, reference: np.ndarray) -> float:
    """:func:`pixel_utils.evaluation.metrics.psnr` of grey images (as three identical channels)."""
    from pixel_utils.evaluation.metrics import psnr

    def rgb(a):
        return np.repeat(np.clip(np.asarray(a, np.float64), 0, 1)[..., None], 3, axis=2)

    return psnr(rgb(image), rgb(reference))


def richardson_lucy_experiment(
    case: str = "gauss1", crop: int = 64, seed: int = 0, iterations=RL_ITERATIONS
) -> dict[str, pd.DataFrame]:
    """:func:`richardson_lucy_curve` on a grey (channel-mean) :func:`validation_crop` with a
    margin of three PSF widths of real surroundings, with the benchmark's noise and without:
    ``{"with noise": curve, "noise-free": curve}``; the blurred input's PSNR is in
    ``curve.attrs["blurred_psnr"]``.
    Without noise the forward model is exact but for the far borders, so the PSNR keeps
    rising with iterations; with noise it peaks and then falls as the noise is amplified."""
    from pixel_utils.data.benchmark import BENCHMARK_CASES

    spec = next(c.spec for c in BENCHMARK_CASES if c.name == case)
    margin = 3 * spec.kernel().shape[0]
    out = {}
    for noise in (True, False):
        blurred, sharp, k = validation_crop(case, crop, margin, seed, noise)
        grey, target = blurred.mean(axis=2), sharp.mean(axis=2)
        curve = richardson_lucy_curve(grey, target, k, iterations, margin)
        curve.attrs["blurred_psnr"] = _grey_psnr(grey[margin:-margin, margin:-margin], target)
        curve.attrs["label"] = f"noise σ = {spec.noise_sigma:g}" if noise else "noise-free"
        out["with noise" if noise else "noise-free"] = curve
    return out


def best_iteration(curve: pd.DataFrame) -> int:
    """The iteration count of highest PSNR on a :func:`richardson_lucy_curve`."""
    return int(curve.loc[curve["psnr"].idxmax(), "iterations"])


def richardson_lucy_summary(curves: dict[str, pd.DataFrame]) -> str:
    """Generated Markdown reading :func:`richardson_lucy_experiment`'s curves: where each
    peaks, and where the noisy one ends relative to the blurred input."""
    lines = []
    for label, c in curves.items():
        best, last = c.loc[c["psnr"].idxmax()], c.iloc[-1]
        base = c.attrs.get("blurred_psnr", float("nan"))
        where = (
            f"is still rising at the last count, {int(last['iterations'])}"
            if best["iterations"] == last["iterations"]
            else f"peaks at **{int(best['iterations'])}** iterations"
        )
        text = (
            f"- **{c.attrs.get('label', label)}**: the PSNR {where} ({best['psnr']:.2f} dB, "
            f"{best['psnr'] - base:+.2f} dB over the blurred input's {base:.2f} dB)"
        )
        if best["iterations"] != last["iterations"]:
            side = "below" if last["psnr"] < base else "still above"
            text += (
                f", then falls to {last['psnr']:.2f} dB at {int(last['iterations'])} iterations, "
                f"{side} the blurred input"
            )
        lines.append(text + ".")
    return "\n".join(lines)


def richardson_lucy_figure(curves: dict[str, pd.DataFrame], tuned: int | None = None):
    """PSNR against Richardson–Lucy iterations (log scale), best count marked, the blurred
    input's PSNR dotted; ``tuned``: the count the benchmark's validation tuning chose."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for i, (label, c) in enumerate(curves.items()):
        label = c.attrs.get("label", label)
        ax.plot(c["iterations"], c["psnr"], marker="o", ms=3, color=f"C{i}", label=label)
        best = c.loc[c["psnr"].idxmax()]
        ax.plot(best["iterations"], best["psnr"], "*", ms=12, color=f"C{i}")
        if "blurred_psnr" in c.attrs:
            ax.axhline(c.attrs["blurred_psnr"], color=f"C{i}", lw=0.8, ls=":")
    if tuned is not None:
        ax.axvline(tuned, color="grey", ls="--", lw=1, label=f"tuned on validation: {tuned}")
    ax.set(
        xscale="log",
        xlabel="iterations (log scale)",
        ylabel="PSNR (dB)",
        title="Richardson–Lucy: early stopping is the regulariser",
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- reading results

#: The methods whose gains the notebook tabulates with confidence intervals.
MAIN_METHODS = (
    "teacher",
    "distilled",
    "distilled_int8",
    "scratch",
    "wiener",
    "richardson_lucy",
    "unsharp",
)
#: How the generated sentences name the methods.
NAMES = {
    "teacher": "shipped teacher",
    "budget_teacher": "budget teacher",
    "distilled": "distilled student",
    "distilled_int8": "int8 student",
    "scratch": "scratch student",
    "wiener": "Wiener filter (true PSF)",
    "richardson_lucy": "Richardson–Lucy (true PSF)",
    "unsharp": "unsharp mask",
    "blurred": "blurred input",
}


def paired_gains(scores: pd.DataFrame, method: str, reference: str = "blurred") -> pd.DataFrame:
    """Per (case, photo): PSNR of ``method`` minus that of ``reference`` (column ``gain``),
    with both PSNRs (``psnr`` and ``reference_psnr``)."""
    table = scores.pivot_table(index=["case", "photo"], columns="method", values="psnr")
    out = pd.DataFrame({"psnr": table[method], "reference_psnr": table[reference]})
    out["gain"] = out["psnr"] - out["reference_psnr"]
    return out.reset_index()


def compare(scores: pd.DataFrame, a: str, b: str, case: str | None = None) -> dict:
    """Mean PSNR difference ``a − b`` over the images of ``case`` (all cases if ``None``),
    paired by image, with its 95% CI half-width (:func:`pixel_utils.evaluation.scoring.ci95`)."""
    from pixel_utils.evaluation.scoring import ci95

    d = paired_gains(scores, a, b)
    if case is not None:
        d = d[d["case"] == case]
    d = d.dropna(subset=["gain"])
    return {"diff": float(d["gain"].mean()), "ci95": ci95(d["gain"]), "images": len(d)}


def verdict(
    diff: float,
    ci: float,
    better: str = "beats",
    worse: str = "trails",
    same: str = "cannot be told apart from",
) -> str:
    """``better``/``worse`` when the 95% CI of a difference excludes zero, else ``same``. With
    no interval (a single image), the sign decides and the words say so."""
    if not math.isfinite(ci):
        if diff == 0:
            return same
        return f"{better if diff > 0 else worse} (one image, no interval)"
    if diff - ci > 0:
        return better
    if diff + ci < 0:
        return worse
    return same


def gain_ci(scores: pd.DataFrame, methods, reference: str = "blurred") -> pd.DataFrame:
    """Long table ``case, method, gain, ci95, images``: each method's mean PSNR gain over
    ``reference`` per case, with the half-width of its paired 95% confidence interval."""
    cases = list(dict.fromkeys(scores["case"]))
    rows = [
        {
            "case": case,
            "method": m,
            "gain": (c := compare(scores, m, reference, case))["diff"],
            "ci95": c["ci95"],
            "images": c["images"],
        }
        for case in cases
        for m in methods
        if m in set(scores["method"])
    ]
    return pd.DataFrame(rows)


def gain_ci_table(scores: pd.DataFrame, methods, labels: dict | None = None) -> pd.DataFrame:
    """:func:`gain_ci` as a case × method table of ``"+1.23 ± 0.45"`` strings (dB)."""
    table = gain_ci(scores, methods)
    table["gain (dB) ± 95% CI"] = [
        f"{g:+.2f} ± {c:.2f}" if math.isfinite(c) else f"{g:+.2f}"
        for g, c in zip(table["gain"], table["ci95"], strict=True)
    ]
    out = table.pivot(index="case", columns="method", values="gain (dB) ± 95% CI")
    out = out.loc[list(dict.fromkeys(table["case"])), [m for m in methods if m in out.columns]]
    out.index = [(labels or {}).get(c, c) for c in out.index]
    return out


def worst_cases(scores: pd.DataFrame, method: str = "distilled", n: int = 3) -> pd.DataFrame:
    """The ``n`` (photo, case) items where ``method`` gains least over the blurred input
    (lowest first): columns ``case, photo, psnr, reference_psnr, gain``."""
    gains = paired_gains(scores, method).dropna(subset=["gain"])
    return gains.nsmallest(n, "gain").reset_index(drop=True)


def worst_case_gallery(
    worst: pd.DataFrame,
    bench_dir: str | os.PathLike,
    models: dict,
    labels: dict | None = None,
    size: int = 96,
):
    """One row per item of :func:`worst_cases`: blurred, each model of ``models`` (label →
    network) and sharp, cropped ``size``² around where the last model's error is largest."""
    from scipy import ndimage

    from pixel_utils.data.benchmark import iter_benchmark
    from pixel_utils.evaluation.inference import sharpen
    from pixel_utils.evaluation.metrics import psnr
    from pixel_utils.report.viz import image_grid, zoom

    images, titles = [], []
    for _, row in worst.iterrows():
        item = next(it for it in iter_benchmark(bench_dir, row["case"]) if it.photo == row["photo"])
        outs = {"blurred": item.blurred} | {k: sharpen(m, item.blurred) for k, m in models.items()}
        err = ndimage.uniform_filter(
            ((outs[list(outs)[-1]] - item.sharp) ** 2).mean(axis=2),
            min(size, *item.sharp.shape[:2]),
        )
        y, x = np.unravel_index(np.argmax(err), err.shape)
        centre = (y / err.shape[0], x / err.shape[1])
        case = (labels or {}).get(row["case"], row["case"])
        for name, out in outs.items():
            images.append(zoom(out, centre, size))
            titles.append(f"{name}: {psnr(out, item.sharp):.2f} dB")
        images.append(zoom(item.sharp, centre, size))
        titles.append(f"sharp\n{row['photo']}, {case}")
    return image_grid(images, titles, ncols=len(models) + 2, size=2.4)


_WHY = {
    "camera_shake": "a long, thin, curved PSF: each point is smeared along a path spanning up "
    "to {extent} px, which the networks must infer from the blurred image alone (Wiener and "
    "Richardson–Lucy are given it)",
    "motion_linear": "a straight smear of {extent} px whose OTF has zeros along whole lines "
    "of the spectrum: those frequencies are gone and must be guessed",
    "defocus": "a disk PSF, whose OTF has rings of zeros: frequencies on them are gone",
    "gaussian": "a smooth PSF whose OTF falls steeply: fine detail is attenuated below the noise",
    "anisotropic": "an elongated Gaussian: detail across its long axis is attenuated below the "
    "noise",
}


def worst_cases_markdown(
    worst: pd.DataFrame, scores: pd.DataFrame, method: str = "distilled", other: str = "teacher"
) -> str:
    """Generated prose for :func:`worst_cases`: per item the gain of ``method`` and ``other``,
    whether the blurred input was easier or harder than the case's average, how much of the
    spectrum the PSF attenuates below 1%, and why such a blur is hard (for the noise-only case,
    that there was nothing to undo)."""
    from pixel_utils.data.benchmark import BENCHMARK_CASES

    cases = {c.name: c for c in BENCHMARK_CASES}
    lines = []
    for _, row in worst.iterrows():
        case = cases.get(row["case"])
        label = case.label if case else row["case"]
        pair = scores[(scores["case"] == row["case"]) & (scores["photo"] == row["photo"])]
        by = pair.set_index("method")["psnr"]
        other_gain = by.get(other, float("nan")) - row["reference_psnr"]
        case_mean = scores[(scores["case"] == row["case"]) & (scores["method"] == "blurred")]
        mean_in = float(case_mean["psnr"].mean())
        easier = "above" if row["reference_psnr"] > mean_in else "below"
        text = (
            f"- **{row['photo']}, {label}**: the {NAMES.get(method, method)} "
            f"{'gains' if row['gain'] >= 0 else 'loses'} {abs(row['gain']):.2f} dB "
            f"({NAMES.get(other, other)}: {other_gain:+.2f} dB). The blurred input scores "
            f"{row['reference_psnr']:.2f} dB, {easier} this case's mean of {mean_in:.2f} dB"
        )
        if case is not None and case.spec.blur_kind == "none":
            lines.append(
                text + ": there is no blur to undo, only noise, so whatever the network changes "
                "beyond removing that noise is over-sharpening of an already sharp photo."
            )
            continue
        text += (
            " (an already sharp-looking input leaves little to gain)"
            if easier == "above"
            else " (a hard photo for this blur)"
        )
        if case is not None:
            k = case.spec.kernel()
            extent = int(np.ptp(np.argwhere(k > 0.01 * k.max()), axis=0).max()) + 1
            why = _WHY.get(case.spec.blur_kind, "").format(extent=extent)
            frac = attenuated_fraction(k)
            text += (
                f". The PSF keeps less than 1% of the contrast over {frac:.0%} of the spectrum "
                f"(|K| < 0.01), where only the photo's strongest detail stays above the noise "
                f"(σ = {case.spec.noise_sigma:g})"
            )
            if why:
                text += f"; {why}"
            if case.spec.jpeg_quality is not None:
                text += (
                    f"; JPEG q{case.spec.jpeg_quality} then quantises the remaining detail in "
                    "8×8 blocks, which no blur model describes"
                )
        lines.append(text + ".")
    return "\n".join(lines)


def folder_table(result: dict, labels: dict | None = None) -> pd.DataFrame:
    """:func:`pixel_utils.evaluation.generalisation.evaluate_folder`'s ``per_case`` as a table: rows
    cases, columns ``(psnr | gain_db, method)``."""
    rows = {
        (labels or {}).get(case, case): {
            (k, m): v[k] for m, v in row.items() for k in ("psnr", "gain_db")
        }
        for case, row in result["per_case"].items()
    }
    return pd.DataFrame(rows).T.sort_index(axis=1).round(2)


# ----------------------------------------------------------------------------- conclusions


def _fmt(c: dict) -> str:
    ci = f" ± {c['ci95']:.2f}" if math.isfinite(c["ci95"]) else ""
    return f"{c['diff']:+.2f}{ci} dB"


def what_we_learned(
    scores: pd.DataFrame,
    labels: dict | None = None,
    speedup: float | None = None,
    headline_case: str = "gauss3",
    mac_ratio: float | None = None,
    peak_mib: tuple[float, float] | None = None,
) -> str:
    """The notebook's conclusions as Markdown, every comparison word computed from ``scores``
    (paired differences and their 95% CIs, see :func:`verdict`), so the text cannot claim
    that one method beats another when this run's numbers do not say so. A difference under
    ``NEGLIGIBLE_DB`` is called negligible even where its interval excludes zero.
    ``mac_ratio`` (teacher MACs / student MACs) puts the measured ``speedup`` next to it, and
    ``peak_mib`` (teacher, student: peak memory of that measurement) says why they differ."""
    from pixel_utils.data.benchmark import BENCHMARK_CASES

    labels = labels or {}
    methods = set(scores["method"])
    present = [c for c in BENCHMARK_CASES if c.name in set(scores["case"])]
    n_images = scores[scores["method"] == "blurred"].groupby("case").size()
    lines = []
    lines.append(
        f"*Generated from this run: {int(n_images.max()) if len(n_images) else 0} test photos per "
        "case; differences are paired by image, ± the half-width of their 95% confidence "
        "interval. A comparison is called a win only when that interval excludes zero.*"
    )
    lines.append("")
    if {"teacher", "wiener"} <= methods:
        smooth = [
            c
            for c in present
            if c.spec.blur_kind in ("gaussian", "anisotropic", "defocus")
            and c.spec.jpeg_quality is None
        ]
        words = []
        for c in smooth:
            cmp = compare(scores, "teacher", "wiener", c.name)
            words.append(verdict(cmp["diff"], cmp["ci95"]))
            lines.append(
                f"- **{c.label}**: the shipped teacher {words[-1]} Wiener deconvolution (which is "
                f"given the true PSF): teacher − Wiener = {_fmt(cmp)}."
            )
        wins = sum(w.startswith("beats") for w in words)
        losses = sum(w.startswith("trails") for w in words)
        lines.append(
            f"- Of these {len(smooth)} smooth-blur cases, the blind teacher beats the non-blind "
            f"Wiener filter on {wins}, trails it on {losses} and cannot be told apart from it on "
            f"{len(smooth) - wins - losses}."
        )
    for c in (c for c in present if c.spec.blur_kind == "camera_shake"):
        parts = []
        for m in ("teacher", "distilled", "wiener"):
            if m in methods:
                g = compare(scores, m, "blurred", c.name)
                word = verdict(
                    g["diff"], g["ci95"], "raises", "lowers", "does not measurably change"
                )
                parts.append(f"the {NAMES[m]} {word} PSNR ({_fmt(g)})")
        if parts:
            lines.append(f"- **{c.label}**: " + "; ".join(parts) + ".")
    if {"distilled", "distilled_int8"} <= methods:
        q = compare(scores, "distilled_int8", "distilled")
        word = _sized_verdict(q, "gains", "loses", "neither gains nor loses measurably")
        lines.append(
            f"- **Quantisation**: over all {q['images']} benchmark images, the int8 student "
            f"{word} against the fp32 student (int8 − fp32 = {_fmt(q)}); {_size_words(q)}."
        )
    if {"teacher", "distilled", "blurred"} <= methods:
        t = compare(scores, "teacher", "blurred", headline_case)["diff"]
        s = compare(scores, "distilled", "blurred", headline_case)["diff"]
        label = labels.get(headline_case, headline_case)
        if t > 0 and s > 0:
            lines.append(
                f"- **Distillation** on {label}: the student gains {s:+.2f} dB where the teacher "
                f"gains {t:+.2f} dB, i.e. it keeps {s / t:.0%} of the teacher's gain."
            )
        elif t > 0:
            lines.append(
                f"- **Distillation** on {label}: the teacher gains {t:+.2f} dB but the student "
                f"does not improve on the blurred input ({s:+.2f} dB): it keeps none of the "
                "teacher's gain."
            )
        else:
            lines.append(
                f"- **Distillation** on {label}: the teacher does not improve on the blurred "
                f"input in this run ({t:+.2f} dB), so there is no gain for the student to share "
                f"(student: {s:+.2f} dB)."
            )
        if "scratch" in methods:
            d = compare(scores, "distilled", "scratch", headline_case)
            word = _sized_verdict(d)
            lines.append(
                f"- The distilled student {word} the same student trained from scratch on "
                f"{label} (distilled − scratch = {_fmt(d)}); {_size_words(d)}."
            )
    if speedup is not None and math.isfinite(speedup):
        word = "faster" if speedup >= 1 else "slower"
        factor = speedup if speedup >= 1 else 1 / speedup
        line = (
            f"- The student runs {factor:.1f}× {word} than the teacher in this run's "
            "latency measurement"
        )
        if mac_ratio is not None and math.isfinite(mac_ratio) and mac_ratio > 0:
            per_mac = speedup / mac_ratio
            line += (
                f", though the teacher needs only {mac_ratio:.1f}× the student's multiply–adds: "
                f"the student does {per_mac:.1f}× "
                f"{'more' if per_mac >= 1 else 'fewer'} multiply–adds per second"
            )
            if per_mac > 1.5:
                line += (
                    ". The teacher's layer norms, gates, depthwise convolutions, local averages "
                    "and narrow 1×1 convolutions do little arithmetic for each byte they move"
                )
                if peak_mib is not None and all(math.isfinite(m) and m > 0 for m in peak_mib):
                    line += (
                        f", and it runs the whole frame at full resolution (a peak of "
                        f"{peak_mib[0]:.0f} MiB against the student's {peak_mib[1]:.0f}), so those "
                        "bytes stream from main memory; the student works at a fraction of the "
                        "pixels, and its dense 3×3 convolutions keep the multipliers busy"
                    )
        lines.append(line + ".")
    return "\n".join(lines)


NEGLIGIBLE_DB = 0.1  # the size under which the conclusions call a difference negligible


def _size_words(comparison: dict) -> str:
    """Whether a paired difference is big enough to matter, beside whether it is real."""
    size = abs(comparison["diff"])
    where = "below" if size < NEGLIGIBLE_DB else "above"
    return (
        f"the difference, {size:.2f} dB, is {where} the {NEGLIGIBLE_DB:g} dB under which we call "
        "one negligible"
    )


def _sized_verdict(
    comparison: dict,
    better: str = "beats",
    worse: str = "trails",
    same: str = "cannot be told apart from",
) -> str:
    """:func:`verdict` on a paired comparison, qualified when the difference is real but
    negligible: "beats, by a negligible margin,". Any other verdict (no measurable difference,
    or one image with no interval) is left as it is."""
    word = verdict(comparison["diff"], comparison["ci95"], better, worse, same)
    negligible = abs(comparison["diff"]) < NEGLIGIBLE_DB
    return f"{word}, by a negligible margin," if word in (better, worse) and negligible else word
