"""The course's numbers: PSF spectra, image spectra, the noise floor, sRGB and the generated
summary text."""

import math

import numpy as np
import pandas as pd
import pytest

from pixel_utils.data import degradations as D
from pixel_utils.report import teaching as T


def test_mtf_of_a_delta_kernel_is_one_everywhere():
    m = T.mtf(np.ones((1, 1)), 32)
    assert m.shape == (32, 32)
    np.testing.assert_allclose(m, 1.0, atol=1e-12)
    delta = np.zeros((5, 5))
    delta[2, 2] = 1
    np.testing.assert_allclose(T.otf(delta, (16, 24)), 1.0, atol=1e-12)  # centred: no phase


def test_otf_is_one_at_zero_frequency_and_real_for_symmetric_kernels():
    k = D.gaussian_kernel(2.0)
    K = T.otf(k, 64)
    assert K[0, 0] == pytest.approx(1.0)
    assert np.abs(K.imag).max() < 1e-12
    with pytest.raises(ValueError, match="does not fit"):
        T.otf(np.ones((9, 9)) / 81, 8)


def test_polar_otf_matches_the_dft_grid():
    k = D.camera_shake_kernel(11, seed=3)  # asymmetric: checks the sign of the phase too
    n = 64
    K = T.otf(k, n)
    freqs = np.arange(8) / n
    along_x = T.otf_polar(k, freqs, 0.0)[0]  # θ = 0: +x
    np.testing.assert_allclose(along_x, K[0, :8], atol=1e-12)
    up = T.otf_polar(k, freqs, 90.0)[0]  # θ = 90°: image "up", i.e. -y
    np.testing.assert_allclose(up, K[(-np.arange(8)) % n, 0], atol=1e-12)


def test_disk_mtf_first_zero_matches_the_bessel_prediction():
    radius = 4.0
    predicted = T.disk_first_zero(radius)
    assert predicted == pytest.approx(3.8317 / (2 * math.pi * radius), rel=1e-4)
    freqs = np.linspace(0, 0.5, 4001)
    measured = T.first_zero(freqs, T.otf_polar(D.disk_kernel(radius), freqs, 0.0)[0].real)
    assert measured == pytest.approx(predicted, rel=0.05)
    # On the FFT grid too: the first local minimum of |K| along the x axis.
    m = T.mtf(D.disk_kernel(radius), 512)[0, :256]
    first_min = np.nonzero((m[1:-1] < m[:-2]) & (m[1:-1] < m[2:]))[0][0] + 1
    assert first_min / 512 == pytest.approx(predicted, rel=0.05)


def test_gaussian_mtf_is_gaussian_with_sigma_f():
    sigma = 2.0
    freqs = np.linspace(0, 0.2, 200)
    m = T.mtf_polar(D.gaussian_kernel(sigma), freqs, [0.0, 30.0])
    curvature = np.polyfit(freqs**2, np.log(m[0]), 1)[0]
    assert math.sqrt(-1 / (2 * curvature)) == pytest.approx(1 / (2 * math.pi * sigma), rel=0.02)
    np.testing.assert_allclose(m[0], m[1], rtol=0.02)  # isotropic, up to the pixel grid


def test_linear_motion_has_zeros_at_multiples_of_one_over_length():
    spec = D.DegradationSpec("motion_linear", {"length": 10.0, "angle": 0.0})
    assert T.predicted_zeros(spec)[:2] == pytest.approx([0.1, 0.2])
    freqs = np.linspace(0, 0.5, 2001)
    K = T.otf_polar(spec.kernel(), freqs, 0.0)[0].real
    assert T.first_zero(freqs, K) == pytest.approx(0.1, rel=0.05)
    assert T.worst_direction(spec.kernel()) in (0.0, 180.0)
    assert T.predicted_zeros(D.DegradationSpec("gaussian", {"sigma": 2.0})) == []


def test_first_zero_interpolates_and_reports_none():
    f = np.array([0.0, 0.1, 0.2, 0.3])
    assert T.first_zero(f, np.array([1.0, 0.5, -0.5, -1.0])) == pytest.approx(0.15)
    assert math.isnan(T.first_zero(f, np.ones(4)))


def test_convolution_theorem_holds_to_rounding(photo):
    error = T.convolution_theorem_error(photo[:40, :48], D.camera_shake_kernel(9, seed=1))
    assert error < 1e-12


def test_sharp_image_spectrum_beats_a_blurred_one(photo):
    f, p = T.radial_profile(T.power_spectrum(photo))
    _, pb = T.radial_profile(T.power_spectrum(D.convolve(photo, D.gaussian_kernel(2.0))))
    high = f > 0.2
    assert (pb[high] < p[high]).all()


def test_white_noise_power_is_its_variance_and_flat(rng):
    sigma = 0.1
    noise = rng.normal(0, sigma, size=(128, 128, 3))
    f, p = T.radial_profile(T.power_spectrum(noise))
    assert np.median(p[f > 0.05]) == pytest.approx(sigma**2, rel=0.1)
    assert T.power_spectrum_slope(noise) == pytest.approx(0.0, abs=0.15)


@pytest.mark.parametrize("beta", [1.0, 2.0, 3.0])
def test_slope_of_a_power_law_field(rng, beta):
    field = T.power_law_field(256, beta, rng)
    assert field.std() == pytest.approx(1.0)
    assert T.power_spectrum_slope(field) == pytest.approx(-beta, abs=0.15)


def test_radial_profile_rings():
    power = np.ones((16, 16))
    f, p = T.radial_profile(power)
    assert f[0] == 0 and f[1] == pytest.approx(1 / 16)
    np.testing.assert_allclose(p, 1.0)
    assert f.max() <= math.sqrt(2) / 2 + 1 / 16
    with pytest.raises(ValueError, match="fewer than 3"):
        T.power_law_fit(f, p, 0.3, 0.31)


def test_srgb_round_trip_and_reference_values():
    v = np.linspace(0, 1, 10001)
    np.testing.assert_allclose(T.linear_to_srgb(T.srgb_to_linear(v)), v, atol=1e-6)
    np.testing.assert_allclose(T.srgb_to_linear(T.linear_to_srgb(v)), v, atol=1e-6)
    assert float(T.linear_to_srgb(0.5)) == pytest.approx(0.7354, abs=1e-4)
    assert float(T.srgb_to_linear(0.5)) == pytest.approx(0.2140, abs=1e-4)
    assert float(T.srgb_to_linear(0.02)) == pytest.approx(0.02 / 12.92)  # the linear toe
    assert np.all(np.diff(T.linear_to_srgb(v)) > 0)  # monotonic, no jump at the knee


def test_blur_in_linear_light_brightens_the_dark_side_of_an_edge():
    edge = T.step_edge(32)
    kernel = D.gaussian_kernel(2.0)
    in_srgb = D.convolve(edge, kernel)[16, :, 0]
    in_linear = T.blur_linear_light(edge, kernel)[16, :, 0]
    assert in_srgb[16] == pytest.approx(0.5, abs=0.1)
    assert in_linear[16] > in_srgb[16] + 0.1  # light spills into the dark
    assert in_linear[:3] == pytest.approx(0.0, abs=1e-6) and in_linear[-3:] == pytest.approx(1)
    flat = np.full((8, 8, 3), 0.3, np.float32)
    np.testing.assert_allclose(T.blur_linear_light(flat, kernel), 0.3, atol=1e-6)


def test_linear_vs_srgb_reports_both_costs(photo):
    out = T.linear_vs_srgb(photo, "gauss2")
    assert out["blur"] == "Gaussian σ=2"
    assert 10 < out["psnr_srgb_blur"] < 60 and 10 < out["psnr_linear_blur"] < 60
    assert out["psnr_between"] > min(out["psnr_srgb_blur"], out["psnr_linear_blur"])


def test_noise_floor_fraction(photo):
    delta = np.ones((1, 1))
    assert T.fraction_below_noise_floor(photo, delta, 1e-6) == 0.0
    assert T.fraction_below_noise_floor(photo, delta, 10.0) == 1.0
    weak = T.fraction_below_noise_floor(photo, D.gaussian_kernel(1.0), 0.01)
    strong = T.fraction_below_noise_floor(photo, D.gaussian_kernel(3.0), 0.01)
    assert 0 < weak < strong < 1  # more blur, more frequencies lost
    table = T.noise_floor_table(photo, T.case_specs("gauss1", "gauss3"))
    assert list(table.index) == [T.NO_BLUR, "Gaussian σ=1", "Gaussian σ=3"]
    assert table.attrs["noise_sigma"] == 0.01 and table.iloc[2] == pytest.approx(strong)


def test_case_specs_and_mtf_table():
    specs = T.case_specs("gauss3", "defocus4", "motion15", "shake17")
    assert list(specs) == [
        "Gaussian σ=3",
        "Defocus r=4",
        "Linear motion 15 px",
        "Camera shake 17 px",
    ]
    with pytest.raises(KeyError, match="unknown benchmark case"):
        T.case_specs("nope")
    assert T.case_label("gauss3") == "Gaussian σ=3"
    np.testing.assert_array_equal(T.case_kernel("gauss3"), D.gaussian_kernel(3.0))
    table = T.mtf_table(specs)
    disk = table.loc["Defocus r=4"]
    assert disk["first zero, measured"] == pytest.approx(disk["first zero, theory"], rel=0.05)
    motion = table.loc["Linear motion 15 px"]
    assert motion["direction (°)"] == 45
    assert motion["first zero, measured"] == pytest.approx(1 / 15, rel=0.05)
    gauss = table.loc["Gaussian σ=3"]  # truncation at 3σ makes a zero the ideal Gaussian lacks
    assert gauss["ideal MTF there"] == pytest.approx(
        math.exp(-2 * math.pi**2 * 9 * gauss["first zero, measured"] ** 2)
    )
    assert math.isnan(table.loc["Camera shake 17 px", "first zero, measured"])
    assert (
        table.loc["Gaussian σ=3", "MTF10 (cycles/px)"]
        < table.loc["Defocus r=4", "MTF10 (cycles/px)"]
    )


def test_figures_build(photo):
    import matplotlib.pyplot as plt

    specs = T.case_specs("gauss1", "defocus4")
    figs = [
        T.mtf_figure(specs, n_freqs=32, n_angles=8),
        T.noise_floor_figure(photo, specs, seed=0, crop=64),
        T.linear_light_figure(photo, "gauss1"),
        T.spectrum_figure({"photo": photo}),
    ]
    assert [len(f.axes) for f in figs] == [2, 2, 3, 1]
    for f in figs:
        plt.close(f)


def _facts(floor_a=0.9, floor_b=0.7, between=28.0, leaves=(-2.2, -2.4), photos=-2.7):
    mtf = pd.DataFrame(
        {"first zero, theory": [0.1524, np.nan], "first zero, measured": [0.1527, 0.19],
         "ideal MTF there": [np.nan, 1.7e-3], "MTF10 (cycles/px)": [0.1, 0.07],
         "MTF at Nyquist": [0.01, 1e-5]},
        index=["Defocus r=4", "Gaussian σ=3"],
    )  # fmt: skip
    floor = pd.Series({T.NO_BLUR: 0.001, "Gaussian σ=3": floor_a, "Camera shake 17 px": floor_b,
                       "Defocus r=4": 0.8})  # fmt: skip
    floor.attrs["noise_sigma"] = 0.01
    scores = pd.DataFrame({"PSNR (dB)": [21.0, 24.0, 23.0]},
                          index=["Gaussian σ=3", "Camera shake 17 px", "Defocus r=4"])  # fmt: skip
    linear = {"blur": "Gaussian σ=3", "psnr_srgb_blur": 21.3, "psnr_linear_blur": 20.1,
              "psnr_between": between}  # fmt: skip
    return dict(conv_error=2e-15, mtf=mtf, floor=floor, linear=linear, leaf_slopes=list(leaves),
                photo_slopes={"a": photos}, scores=scores, headline="Gaussian σ=3")  # fmt: skip


def test_lessons_markdown_states_the_numbers_and_follows_them():
    text = T.lessons_markdown(**_facts())
    assert "90%" in text and "70%" in text and "loses more frequencies than" in text
    assert "0.1524" in text and "0.1527" in text and "agreeing" in text
    assert "crosses zero at 0.190 cycles/pixel" in text and "1.7e-03" in text
    assert "Gaussian σ=3 0.070, Defocus r=4 0.100" in text  # sorted by MTF10
    assert "**Gaussian σ=3** keeps the least, 1.0e-05" in text
    assert "-2.30" in text and "-2.70" in text and "shallower than" in text
    assert "harsher (-1.20 dB)" in text and "Linear light matters" in text
    assert "24.00 dB for Camera shake 17 px" in text and "21.00 dB for Gaussian σ=3" in text
    assert "ρ = -1.00" in text and "the more frequencies a blur sinks, the lower" in text
    flipped = T.lessons_markdown(**_facts(floor_a=0.5, between=45.0, leaves=(-3.1,), photos=-2.7))
    assert "loses fewer frequencies than" in flipped and "steeper than" in flipped
    assert "barely matters" in flipped and "Linear light matters" not in flipped
    same = T.lessons_markdown(**_facts(floor_a=0.702, leaves=(-2.68,)))
    assert "about as many frequencies as" in same and "about as steep as" in same


def test_compare_words():
    assert T.compare(2, 1) == "higher than" and T.compare(1, 2) == "lower than"
    assert T.compare(1, 1.05, tol=0.1) == "about the same as"
