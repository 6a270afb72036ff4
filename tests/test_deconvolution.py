"""The classical-deconvolution lesson's helpers: transfer functions, the Wiener filter's
theory against measurement, and the readers of the benchmark's per-image table."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from scipy.special import jn_zeros

from pixel_utils.data.degradations import disk_kernel, gaussian_kernel, linear_motion_kernel
from pixel_utils.evaluation import deconvolution as dc
from pixel_utils.evaluation.scoring import headline_ci


def test_otf_is_true_circular_convolution(rng):
    """An asymmetric PSF catches a missing flip or an off-by-one centre."""
    x = rng.random((40, 48))
    k = linear_motion_kernel(7.0, 30.0)
    expected = ndimage.convolve(x, k, mode="wrap")
    assert np.allclose(dc.blur_periodic(x, k), expected, atol=1e-12)
    assert dc.otf(k, (40, 48))[0, 0] == pytest.approx(1.0)  # a PSF keeps the mean


def test_inverse_filter_is_exact_without_noise(rng):
    x = rng.random((32, 32))
    k = gaussian_kernel(1.0)
    assert np.abs(dc.inverse_filter(dc.blur_periodic(x, k), k) - x).max() < 1e-9


def test_wiener_tends_to_the_inverse_filter_where_K_is_large():
    k, shape = gaussian_kernel(3.0), (128, 128)
    large = np.abs(dc.otf(k, shape)) > 0.1
    inverse = dc.inverse_filter_response(k, shape)
    wiener = dc.wiener_response(k, shape, 1e-12)
    assert large.sum() > 100
    assert np.allclose(wiener[large], inverse[large], rtol=1e-9)
    # ...and to zero where |K|² ≪ nsr, instead of exploding
    tiny = np.abs(dc.otf(k, shape)) < 1e-3
    assert np.abs(dc.wiener_response(k, shape, 1e-2)[tiny]).max() < 0.11


@pytest.mark.parametrize("nsr", [1e-1, 1e-2, 1e-3, 1e-4])
@pytest.mark.parametrize("kernel", [gaussian_kernel(3.0), disk_kernel(4.0)], ids=["gauss", "disk"])
def test_wiener_gain_never_exceeds_its_bound(nsr, kernel):
    gain = np.abs(dc.wiener_response(kernel, (128, 128), nsr))
    bound = dc.max_wiener_gain(nsr)
    assert bound == pytest.approx(1 / (2 * math.sqrt(nsr)))
    assert gain.max() <= bound * (1 + 1e-12)
    # The MTF of these PSFs passes near √nsr, where the bound is (nearly) reached.
    assert gain.max() > 0.9 * bound


def test_skimage_balance_is_a_laplacian_shaped_nsr(rng):
    from skimage import restoration

    x = dc.blur_periodic(rng.random((48, 48)), gaussian_kernel(2.0))
    k = gaussian_kernel(2.0)
    expected = restoration.wiener(x, k, 0.03, clip=False)
    ours = dc.wiener_fft(x, k, dc.skimage_nsr(x.shape, 0.03))
    assert np.allclose(ours, expected, atol=1e-10)
    assert dc.skimage_nsr(x.shape, 0.03)[0, 0] == 0  # DC: brightness kept


@pytest.mark.parametrize("sigma,nsr", [(1.0, 1e-2), (2.0, 1e-3), (3.0, 1e-4)])
def test_predicted_wiener_mse_matches_measurement(sigma, nsr):
    """Closed form (Parseval) against the FFT-domain Wiener filter on a periodic image."""
    x = dc.synthetic_grey(96, seed=3)
    k = gaussian_kernel(sigma)
    noise = 0.01
    y = dc.blur_periodic(x, k) + np.random.default_rng(4).normal(0, noise, x.shape)
    measured = np.mean((dc.wiener_fft(y, k, nsr) - x) ** 2)
    predicted = dc.predicted_wiener_mse(x, k, noise, nsr)
    assert predicted["total"] == pytest.approx(predicted["blur"] + predicted["noise"])
    assert measured == pytest.approx(predicted["total"], rel=0.1)
    # H = 1 predicts the blurred input's own error
    blurred = dc.predicted_mse(x, k, noise, np.ones(x.shape))["total"]
    assert np.mean((y - x) ** 2) == pytest.approx(blurred, rel=0.1)


def test_oracle_wiener_beats_any_constant_nsr():
    x = dc.synthetic_grey(64, seed=5)
    k, noise = gaussian_kernel(2.0), 0.01
    oracle = dc.predicted_wiener_mse(x, k, noise, dc.oracle_nsr(x, noise))["total"]
    for nsr in (1e-1, 1e-2, 1e-3, 1e-4):
        assert oracle < dc.predicted_wiener_mse(x, k, noise, nsr)["total"]


def test_wiener_gain_check_agrees_and_has_a_best_nsr():
    checks = {n: dc.wiener_gain_check(1.0, 0.01, n, size=96) for n in (1e-1, 1e-2, 1e-3)}
    for c in checks.values():
        assert abs(c["predicted_db"] - c["measured_db"]) < 0.2
    assert max(checks, key=lambda n: checks[n]["predicted_db"]) == 1e-2


def test_first_zero_of_a_disk_is_the_bessel_zero():
    for r in (4.0, 6.0):
        f0, mtf0 = dc.first_zero(disk_kernel(r))
        assert f0 == pytest.approx(jn_zeros(1, 1)[0] / (2 * math.pi * r), abs=2 / 1024)
        assert mtf0 < 0.01
    with pytest.raises(ValueError):
        dc.first_zero(np.ones((1, 1)), n=64)


def test_richardson_lucy_curve_improves_noise_free():
    x = dc.synthetic_grey(48, seed=1)
    k = gaussian_kernel(1.0)
    m = 3 * k.shape[0]
    big = np.pad(x, m, mode="wrap")
    y = dc.blur_periodic(big, k)
    curve = dc.richardson_lucy_curve(y, x, k, iterations=(1, 5, 20), margin=m)
    assert list(curve.columns) == ["iterations", "psnr"]
    assert curve["psnr"].is_monotonic_increasing
    assert dc.best_iteration(curve) == 20


def test_richardson_lucy_tuning_grid_reaches_the_noisy_optimum():
    # The baseline's iteration grid must reach past the count where the benchmark's noise starts
    # to win, or tuning picks its last value by default (it once ended at 40, and the noisy
    # gauss1 crop of notebook 04 peaks at 50).
    from pixel_utils.evaluation.baselines import BASELINES

    grid = BASELINES["richardson_lucy"][2]
    curves = dc.richardson_lucy_experiment("gauss1", crop=64, seed=0, iterations=(20, 50, 100))
    best = dc.best_iteration(curves["with noise"])
    assert min(grid) < best <= max(grid)


def _scores():
    rows = []
    gains = {
        ("gauss3", "a"): 1.0,
        ("gauss3", "b"): -0.5,
        ("shake17", "a"): 3.0,
        ("shake17", "b"): 0.2,
        ("shake17", "c"): 2.0,
    }
    for (case, photo), gain in gains.items():
        base = 20.0 + len(photo)
        rows.append({"method": "blurred", "case": case, "photo": photo, "psnr": base})
        rows.append({"method": "distilled", "case": case, "photo": photo, "psnr": base + gain})
        rows.append({"method": "teacher", "case": case, "photo": photo, "psnr": base + 2 * gain})
    return pd.DataFrame(rows)


def test_worst_cases_returns_the_n_lowest_gains():
    worst = dc.worst_cases(_scores(), "distilled", n=3)
    assert list(worst["gain"]) == pytest.approx([-0.5, 0.2, 1.0])
    assert list(zip(worst["case"], worst["photo"], strict=True)) == [
        ("gauss3", "b"),
        ("shake17", "b"),
        ("gauss3", "a"),
    ]
    assert len(dc.worst_cases(_scores(), "teacher", n=10)) == 5


def test_gain_ci_agrees_with_headline_ci():
    scores = _scores()
    table = dc.gain_ci(scores, ["distilled", "teacher", "absent"])
    assert set(table["method"]) == {"distilled", "teacher"}
    row = table[(table["case"] == "shake17") & (table["method"] == "teacher")].iloc[0]
    assert row["gain"] == pytest.approx(2 * (3.0 + 0.2 + 2.0) / 3)
    assert row["ci95"] == pytest.approx(headline_ci(scores, "shake17")["teacher"]["gain_ci95"])
    shown = dc.gain_ci_table(scores, ["teacher", "distilled"], {"gauss3": "Gaussian σ=3"})
    assert list(shown.columns) == ["teacher", "distilled"]
    assert shown.loc["Gaussian σ=3", "distilled"].startswith("+0.25 ± ")


def test_verdict_needs_the_interval_to_exclude_zero():
    assert dc.verdict(0.5, 0.2) == "beats"
    assert dc.verdict(-0.5, 0.2) == "trails"
    assert dc.verdict(0.5, 0.6) == "cannot be told apart from"
    assert dc.verdict(0.5, float("nan")).startswith("beats (one image")


def _learned_scores(teacher_minus_wiener: float, int8_minus_fp32: float):
    rows = []
    rng = np.random.default_rng(0)
    for case in ("gauss1", "gauss3", "shake17"):
        for photo in "abcde":
            base = 25.0 + rng.normal()
            wiener = base + 1.0
            values = {
                "blurred": base,
                "wiener": wiener,
                "teacher": wiener + teacher_minus_wiener + 0.001 * rng.normal(),
                "distilled": base + 0.5,
                "scratch": base + 0.3,
            }
            values["distilled_int8"] = values["distilled"] + int8_minus_fp32
            rows += [
                {"method": m, "case": case, "photo": photo, "psnr": v} for m, v in values.items()
            ]
    return pd.DataFrame(rows)


def test_what_we_learned_words_follow_the_numbers():
    text = dc.what_we_learned(_learned_scores(-0.8, -0.02), speedup=12.0)
    assert "the shipped teacher trails Wiener" in text
    assert "teacher beats Wiener" not in text
    assert "on 0, trails it on 2 and cannot be told apart from it on 0" in text
    assert "below the 0.1 dB" in text
    assert "12.0× faster" in text
    flipped = dc.what_we_learned(_learned_scores(+0.8, -0.5), speedup=0.5)
    assert "the shipped teacher beats Wiener" in flipped and "trails Wiener" not in flipped
    assert "int8 student loses" in flipped and "above the 0.1 dB" in flipped
    assert "2.0× slower" in flipped
    # Distilled − scratch is +0.2 dB on every photo: real, and above the negligible size ...
    assert (
        "beats the same student trained from scratch on gauss3 (distilled − scratch = +0.20" in text
    )
    assert "); the difference, 0.20 dB, is above the 0.1 dB" in text
    # ... and at +0.05 dB real but negligible, which the words must say.
    small = _learned_scores(-0.8, -0.02)
    small.loc[small["method"] == "scratch", "psnr"] += 0.15
    said = dc.what_we_learned(small)
    assert "beats, by a negligible margin, the same student trained from scratch" in said
    assert "); the difference, 0.05 dB, is below the 0.1 dB" in said
    # The speed-up beside the MAC ratio: per multiply–add, and why, only when it differs.
    slow_teacher = dc.what_we_learned(small, speedup=90.0, mac_ratio=7.5, peak_mib=(750, 42))
    assert "the teacher needs only 7.5× the student's multiply–adds" in slow_teacher
    assert "the student does 12.0× more multiply–adds per second. The teacher's" in slow_teacher
    assert "(a peak of 750 MiB against the student's 42)" in slow_teacher
    even = dc.what_we_learned(small, speedup=7.6, mac_ratio=7.5)
    assert "1.0× more multiply–adds per second." in even and "depthwise" not in even
    assert "multiply–adds" not in dc.what_we_learned(small, speedup=7.6)


def test_share_of_the_teachers_gain_is_guarded():
    scores = _learned_scores(-2.0, 0.0)  # teacher − blurred = 1 − 2 = −1 dB on gauss3
    text = dc.what_we_learned(scores)
    assert "no gain for the student to share" in text
    scores = _learned_scores(0.0, 0.0)  # teacher +1, student +0.5: half the gain
    assert "keeps 50% of the teacher's gain" in dc.what_we_learned(scores)
    scores.loc[scores["method"] == "distilled", "psnr"] -= 1.0  # student −0.5 dB
    assert "keeps none of the teacher's gain" in dc.what_we_learned(scores)


def test_sized_verdict_qualifies_only_a_real_negligible_difference():
    """The "negligible margin" words follow verdict's rule for a real difference (the CI
    excludes zero), with the caller's own words, and leave the no-interval case alone."""
    sized = dc._sized_verdict
    assert sized({"diff": 0.05, "ci95": 0.03}) == "beats, by a negligible margin,"
    assert sized({"diff": -0.05, "ci95": 0.03}) == "trails, by a negligible margin,"
    assert sized({"diff": 0.05, "ci95": 0.08}) == "cannot be told apart from"
    assert sized({"diff": 0.5, "ci95": 0.1}) == "beats"
    assert sized({"diff": 0.05, "ci95": float("nan")}) == "beats (one image, no interval)"
    words = ("gains", "loses", "neither gains nor loses measurably")
    assert sized({"diff": -0.04, "ci95": 0.01}, *words) == "loses, by a negligible margin,"
    assert sized({"diff": -0.04, "ci95": 0.05}, *words) == words[2]


@pytest.mark.parametrize(
    "name, param",
    [("wiener", {"balance": 0.03}), ("richardson_lucy", {"num_iter": 5})],
)
def test_classical_baselines_deconvolve_each_channel_on_its_own(name, param):
    # The channels run in a thread pool; the result must be what each channel gives alone,
    # in its place.
    from skimage import restoration

    from pixel_utils.evaluation import baselines

    rng = np.random.default_rng(3)
    image = rng.random((40, 48, 3)).astype(np.float32)
    psf = np.ones((5, 5)) / 25
    out = baselines.run(name, image, psf, param)
    pad = 3 * psf.shape[0]
    for c in range(3):
        padded = np.pad(image[..., c].astype(np.float64), pad, mode="reflect")
        if name == "wiener":
            alone = restoration.wiener(padded, psf, **param)
        else:
            alone = restoration.richardson_lucy(
                padded.astype(np.float32), psf.astype(np.float32), **param
            )
        alone = np.clip(alone[pad:-pad, pad:-pad], 0, 1).astype(np.float32)
        np.testing.assert_array_equal(out[..., c], alone)
