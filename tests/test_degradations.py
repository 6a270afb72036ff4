import numpy as np
import pytest
import torch

from pixel_utils.data import degradations as D
from pixel_utils.evaluation.metrics import psnr


@pytest.mark.parametrize(
    "kind, params",
    [
        ("gaussian", {"sigma": 2.0}),
        ("anisotropic", {"sigma_x": 3.0, "sigma_y": 0.7, "angle": 30.0}),
        ("motion_linear", {"length": 11.0, "angle": 20.0}),
        ("motion_trajectory", {"length": 15.0, "seed": 3}),
        ("defocus", {"radius": 3.5}),
    ],
)
def test_kernels_are_normalised_odd_square_and_nonnegative(kind, params):
    k = D.make_kernel(kind, **params)
    assert k.ndim == 2 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
    assert k.min() >= 0
    assert k.sum() == pytest.approx(1.0, abs=1e-12)


def test_gaussian_kernel_size_and_spread():
    k = D.gaussian_kernel(2.0)
    assert k.shape == (13, 13)  # truncated at 3σ
    r = np.arange(13) - 6
    var_x = (k.sum(axis=0) * r**2).sum()
    assert var_x == pytest.approx(4.0, rel=0.02)


def test_anisotropic_kernel_is_longer_along_its_axis():
    k = D.anisotropic_gaussian_kernel(4.0, 1.0, 0.0)
    r = np.arange(k.shape[0]) - k.shape[0] // 2
    var_x, var_y = (k.sum(axis=0) * r**2).sum(), (k.sum(axis=1) * r**2).sum()
    assert var_x == pytest.approx(16.0, rel=0.05) and var_y == pytest.approx(1.0, rel=0.05)


def test_linear_motion_kernel_extent_matches_length():
    k = D.linear_motion_kernel(15.0, 0.0)
    row_support = np.nonzero(k.sum(axis=0) > 1e-6)[0]
    assert 15 <= np.ptp(row_support) + 1 <= 17
    assert np.count_nonzero(k.sum(axis=1) > 1e-6) <= 2  # horizontal line stays one row thick


def test_disk_kernel_radius():
    k = D.disk_kernel(4.0)
    assert k.shape == (9, 9)
    assert k[4, 4] == pytest.approx(k.max())
    assert k[0, 0] == 0.0


def test_trajectory_kernel_is_deterministic_per_seed():
    a, b, c = (D.trajectory_motion_kernel(15.0, s) for s in (1, 1, 2))
    assert np.array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_blur_preserves_mean_and_shape(photo):
    out, record = D.blur(photo, "gaussian", sigma=2.0)
    assert out.shape == photo.shape and out.dtype == np.float32
    assert out.mean() == pytest.approx(photo.mean(), abs=2e-3)
    assert record.kind == "gaussian" and record.params == {"sigma": 2.0}
    assert record.kernel.shape == (13, 13)


def test_numpy_and_torch_convolution_agree(photo):
    k = D.trajectory_motion_kernel(13.0, 5)  # asymmetric: catches a missing kernel flip
    a = D.convolve(photo, k)
    b = D.convolve(torch.from_numpy(photo).permute(2, 0, 1)[None], k)[0].permute(1, 2, 0)
    assert np.abs(a - b.numpy()).max() < 1e-5


def test_convolution_is_true_convolution_not_correlation():
    impulse = np.zeros((15, 15, 3), np.float32)
    impulse[7, 7] = 1.0
    k = np.zeros((5, 5))
    k[0, 0] = 1.0  # PSF mass up-left of the centre
    out = D.convolve(impulse, k)
    assert out[5, 5, 0] == pytest.approx(1.0)  # the impulse lands up-left


def test_batched_degradation_uses_one_kernel_per_image(photo):
    batch = torch.from_numpy(np.stack([photo, photo])).permute(0, 3, 1, 2)
    specs = [
        D.DegradationSpec("gaussian", {"sigma": 0.5}),
        D.DegradationSpec("defocus", {"radius": 4}),
    ]
    out = D.degrade_batch(batch, specs, np.random.default_rng(0))
    single = [D.convolve(photo, s.kernel()) for s in specs]
    for i in range(2):
        assert np.abs(out[i].permute(1, 2, 0).numpy() - single[i]).max() < 1e-5


@pytest.mark.parametrize("sigma", [0.01, 0.05])
def test_noise_has_the_requested_std(sigma, rng):
    grey = np.full((256, 256, 3), 0.5, np.float32)
    noisy, record = D.add_noise(grey, sigma, rng)
    assert (noisy - grey).std() == pytest.approx(sigma, rel=0.02)
    assert record.params["sigma"] == sigma
    noisy_t, _ = D.add_noise(torch.full((1, 3, 256, 256), 0.5), sigma, rng)
    assert float((noisy_t - 0.5).std()) == pytest.approx(sigma, rel=0.02)


def test_jpeg_quality_orders_the_error(photo):
    errors = [psnr(D.jpeg(photo, q)[0], photo) for q in (10, 30, 60, 90)]
    assert errors == sorted(errors), errors  # higher quality → higher PSNR
    assert D.jpeg(photo, 40)[1].params == {"quality": 40}


def test_random_forms_are_reproducible(photo):
    a, ra = D.random_blur(photo, np.random.default_rng(7), "motion_trajectory")
    b, rb = D.random_blur(photo, np.random.default_rng(7), "motion_trajectory")
    assert np.array_equal(a, b) and ra.params == rb.params
    n1, _ = D.random_noise(photo, np.random.default_rng(3))
    n2, _ = D.random_noise(photo, np.random.default_rng(3))
    assert n1.tobytes() == n2.tobytes()


def test_mix_samples_every_kind_and_bounds_the_kernel():
    mix = D.DegradationMix(jpeg_prob=0.5)
    rng = np.random.default_rng(0)
    specs = [mix.sample(rng) for _ in range(300)]
    assert {s.blur_kind for s in specs} == set(mix.blur_weights)
    assert any(s.jpeg_quality is not None for s in specs)
    radius = mix.max_kernel_radius()
    assert all(s.kernel().shape[0] // 2 <= radius for s in specs)


def test_unknown_kind_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown blur kind"):
        D.make_kernel("swirl")


def test_camera_shake_kernels_look_like_measured_ones():
    """Thin, uneven, the requested extent, and fixed by the seed."""
    for size, seed in ((13, 0), (19, 1), (27, 2)):
        k = D.camera_shake_kernel(size, seed)
        assert k.sum() == pytest.approx(1.0)
        assert np.array_equal(k, D.camera_shake_kernel(size, seed))
        ys, xs = np.nonzero(k > 1e-6)
        extent = max(np.ptp(ys), np.ptp(xs)) + 1
        assert size - 1 <= extent <= size + 2
        box = (np.ptp(ys) + 1) * (np.ptp(xs) + 1)
        assert len(ys) / box < 0.65  # a thin path, not a filled blob
        values = k[k > 1e-6]
        assert values.max() / np.median(values) > 2  # uneven speed: bright slow stretches
    assert not np.array_equal(D.camera_shake_kernel(17, 3), D.camera_shake_kernel(17, 4))


def test_whole_photo_is_blurred_before_cropping():
    """degrade(..., crop=) equals blurring the full photo and then cropping, and differs from
    blurring the crop alone with mirrored borders (what a border-aware method could invert)."""
    rng = np.random.default_rng(0)
    photo = rng.random((90, 110, 3)).astype(np.float32)
    spec = D.DegradationSpec("camera_shake", {"size": 15.0, "seed": 5}, 0.0)
    out, _ = D.degrade(photo, spec, np.random.default_rng(1), crop=48)
    full = D.convolve(photo, spec.kernel())
    assert np.allclose(out, D.crop_like(full, 48), atol=1e-6)
    mirrored = D.convolve(D.crop_like(photo, 48), spec.kernel())
    assert np.abs(out - mirrored)[:4].max() > 0.05  # borders hold real outside content
    assert np.allclose(out[10:-10, 10:-10], mirrored[10:-10, 10:-10], atol=1e-6)


def test_the_training_mix_leaves_some_pairs_unblurred():
    """A sharpener that never saw a sharp input sharpens sharp photos too (and loses dB)."""
    from pixel_utils.data.degradations import DegradationMix, DegradationSpec, degrade

    rng = np.random.default_rng(0)
    kinds = [DegradationMix().sample(rng).blur_kind for _ in range(2000)]
    assert 0.05 < kinds.count("none") / len(kinds) < 0.15
    image = rng.random((24, 24, 3))
    out, records = degrade(image, DegradationSpec("none", {}), rng)
    assert np.allclose(out, image) and records[0].kernel.shape == (1, 1)
