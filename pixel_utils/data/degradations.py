"""Blur, noise and compression: the forward models the networks learn to invert.

Every degradation is a pure function. Deterministic forms take explicit parameters
(:func:`blur`, :func:`add_noise`, :func:`jpeg`); random forms draw them from an explicit
``numpy.random.Generator`` (:func:`random_blur`, :func:`random_noise`, :func:`random_jpeg`).
Each returns ``(image, Degradation)``: the degraded image and a record of what was done, the
blur kernel included.

Images are numpy ``HWC`` or torch ``NCHW`` float RGB in ``[0, 1]``; the output has the input's
type. Blur is a true convolution (the kernel is the point-spread function, PSF) with mirrored
borders: numpy images go through ``scipy.ndimage`` in float64 (exact and bit-reproducible, used
for the benchmark), torch batches through one grouped ``conv2d`` in the batch's dtype with a
different kernel per image (fast; used for on-the-fly training pairs). A test checks the two
paths agree.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# ----------------------------------------------------------------------------- linear light


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] → linear light (IEC 61966-2-1):
    ``v/12.92`` below 0.04045, else ``((v + 0.055)/1.055)^2.4``."""
    v = np.clip(np.asarray(v, np.float64), 0, 1)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] → sRGB encoding: ``12.92·v`` below 0.0031308, else
    ``1.055·v^(1/2.4) - 0.055``. ``linear_to_srgb(0.5) ≈ 0.7354``: half the photons look
    much brighter than mid-grey."""
    v = np.clip(np.asarray(v, np.float64), 0, 1)
    return np.where(v <= 0.0031308, 12.92 * v, 1.055 * v ** (1 / 2.4) - 0.055)


# ----------------------------------------------------------------------------- kernels


def _odd(n: float) -> int:
    n = int(math.ceil(n))
    return n if n % 2 else n + 1


def gaussian_kernel(sigma: float) -> np.ndarray:
    """Isotropic Gaussian PSF, truncated at 3σ."""
    return anisotropic_gaussian_kernel(sigma, sigma, 0.0)


def anisotropic_gaussian_kernel(sigma_x: float, sigma_y: float, angle: float) -> np.ndarray:
    """Gaussian PSF with standard deviations ``sigma_x``/``sigma_y`` along axes rotated by
    ``angle`` degrees (counter-clockwise)."""
    if sigma_x <= 0 or sigma_y <= 0:
        raise ValueError("Gaussian sigmas must be positive")
    size = _odd(2 * 3 * max(sigma_x, sigma_y) + 1)
    r = size // 2
    y, x = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float64)
    t = math.radians(angle)
    u = math.cos(t) * x - math.sin(t) * y  # image y points down, so -y is "up"
    v = math.sin(t) * x + math.cos(t) * y
    k = np.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return k / k.sum()


def _splat(points: np.ndarray) -> np.ndarray:
    """Bilinearly splat (x, y) points, centred on their mean, into an odd square kernel."""
    points = points - points.mean(axis=0)
    r = int(math.ceil(np.abs(points).max())) + 1
    size = 2 * r + 1
    k = np.zeros((size, size))
    xs, ys = points[:, 0] + r, points[:, 1] + r
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                      (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):  # fmt: skip
        np.add.at(k, (y0 + dy, x0 + dx), w)
    return k / k.sum()


def linear_motion_kernel(length: float, angle: float) -> np.ndarray:
    """Uniform straight-line motion of ``length`` pixels at ``angle`` degrees."""
    if length < 1:
        raise ValueError("motion length must be at least 1 pixel")
    s = np.linspace(-length / 2, length / 2, int(8 * length) + 1)
    t = math.radians(angle)
    return _splat(np.stack([s * math.cos(t), -s * math.sin(t)], axis=1))


def trajectory_motion_kernel(length: float, seed: int, inertia: float = 0.7) -> np.ndarray:
    """Camera-shake PSF: a random smooth trajectory of arc length ``length`` pixels.

    The path is a random walk with momentum (each step keeps ``inertia`` of the previous
    direction), in the spirit of Boracchi & Foi's camera-shake model. ``seed`` fixes the path.
    """
    if length < 1:
        raise ValueError("motion length must be at least 1 pixel")
    rng = np.random.default_rng(seed)
    steps = 64
    direction = rng.uniform(0, 2 * math.pi)
    velocity = np.array([math.cos(direction), math.sin(direction)])
    path = [np.zeros(2)]
    for _ in range(steps):
        velocity = inertia * velocity + (1 - inertia) * rng.normal(size=2)
        velocity /= np.linalg.norm(velocity) + 1e-12
        path.append(path[-1] + velocity * (length / steps))
    path = np.array(path)
    # Dense resampling along the path so the splat is continuous.
    t = np.linspace(0, steps, 8 * steps + 1)
    dense = np.stack([np.interp(t, np.arange(steps + 1), path[:, i]) for i in (0, 1)], axis=1)
    return _splat(dense)


def camera_shake_kernel(
    size: float,
    seed: int,
    anxiety: float | None = None,
    jerk_prob: float = 0.03,
    speed_var: float = 0.6,
) -> np.ndarray:
    """Camera-shake PSF of extent about ``size`` pixels, shaped like measured hand-shake kernels.

    Measured kernels (e.g. Levin et al., 2009: 13–27 px) are thin curved paths, often bending
    back on themselves, and uneven in brightness because the hand slows down and speeds up
    during the exposure. This follows Boracchi & Foi's (2012) model: a 2-D random walk whose
    velocity is perturbed by Gaussian noise (``anxiety``), pulled back towards the start and
    hit by occasional impulsive jerks (``jerk_prob``); the exposure then samples the path at a
    randomly varying speed (``speed_var``), so slow stretches collect more light. ``anxiety``
    ``None`` draws it from the seed. The path is
    scaled so that its larger side spans ``size`` pixels and bilinearly splatted (thin
    strokes). ``seed`` fixes everything.
    """
    if size < 1:
        raise ValueError("camera-shake size must be at least 1 pixel")
    rng = np.random.default_rng(seed)
    if anxiety is None:  # how wobbly: from a gentle arc to a tangle, drawn per kernel
        anxiety = float(rng.uniform(0.05, 0.35))
    n = 96
    angle = rng.uniform(0, 2 * math.pi)
    velocity = np.array([math.cos(angle), math.sin(angle)])
    position = np.zeros(2)
    path = [position.copy()]
    for _ in range(n):
        dv = anxiety * rng.normal(size=2) - 0.02 * anxiety * position
        if rng.random() < jerk_prob:
            dv += 2.0 * anxiety * rng.normal(size=2) * np.abs(velocity).sum()
        velocity = velocity + dv
        velocity /= np.linalg.norm(velocity) + 1e-12
        position = position + velocity
        path.append(position.copy())
    path = np.array(path)
    # Exposure: equal time steps along the path at a smoothly varying speed.
    knots = np.exp(speed_var * rng.normal(size=8))
    speed = np.interp(np.linspace(0, 7, 4 * n), np.arange(8), knots)
    arc = np.concatenate([[0.0], np.cumsum(speed)])
    arc *= n / arc[-1]
    dense = np.stack([np.interp(arc, np.arange(n + 1), path[:, i]) for i in (0, 1)], axis=1)
    extent = np.ptp(dense, axis=0).max()
    dense *= (size - 1) / max(extent, 1e-6)
    return _splat(dense)


def disk_kernel(radius: float) -> np.ndarray:
    """Defocus PSF: a uniform disk of ``radius`` pixels, anti-aliased by 8× supersampling."""
    if radius <= 0:
        raise ValueError("defocus radius must be positive")
    r = int(math.ceil(radius))
    ss = 8
    n = (2 * r + 1) * ss
    c = (np.arange(n) + 0.5) / ss - (r + 0.5)
    inside = (c[None, :] ** 2 + c[:, None] ** 2) <= radius**2
    k = inside.reshape(2 * r + 1, ss, 2 * r + 1, ss).mean(axis=(1, 3))
    return k / k.sum()


#: Blur kinds → kernel builders; parameters are keyword arguments of the builder.
def identity_kernel() -> np.ndarray:
    """No blur: a sharp photo that only noise or JPEG touch. A sharpener must learn to leave
    such an image alone; trained only on blurred inputs it sharpens sharp photos too, and
    over-sharpened fine texture (fur, foliage) loses several dB against the photo."""
    return np.ones((1, 1))


KERNELS = {
    "none": identity_kernel,
    "gaussian": gaussian_kernel,
    "anisotropic": anisotropic_gaussian_kernel,
    "motion_linear": linear_motion_kernel,
    "motion_trajectory": trajectory_motion_kernel,
    "camera_shake": camera_shake_kernel,
    "defocus": disk_kernel,
}

#: Default ranges the random forms draw from (uniform; angles in degrees).
BLUR_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "none": {},
    "gaussian": {"sigma": (0.5, 4.0)},
    "anisotropic": {"sigma_x": (0.3, 5.0), "sigma_y": (0.3, 5.0), "angle": (0.0, 180.0)},
    "motion_linear": {"length": (3.0, 35.0), "angle": (0.0, 180.0)},
    "motion_trajectory": {"length": (5.0, 21.0)},
    "camera_shake": {"size": (5.0, 29.0)},
    "defocus": {"radius": (1.0, 6.0)},
}


def make_kernel(kind: str, **params) -> np.ndarray:
    if kind not in KERNELS:
        raise ValueError(f"unknown blur kind {kind!r}; choose one of {sorted(KERNELS)}")
    return KERNELS[kind](**params)


def sample_blur_params(kind: str, rng: np.random.Generator, ranges: dict | None = None) -> dict:
    ranges = ranges or BLUR_RANGES[kind]
    params = {name: float(rng.uniform(lo, hi)) for name, (lo, hi) in ranges.items()}
    if kind in ("motion_trajectory", "camera_shake"):
        params["seed"] = int(rng.integers(2**31))
    return params


# ----------------------------------------------------------------------------- records


@dataclass
class Degradation:
    """What one degradation step did: its kind, parameters and (for blur) the PSF."""

    kind: str
    params: dict = field(default_factory=dict)
    kernel: np.ndarray | None = None

    def to_json(self) -> dict:
        out = asdict(self)
        out.pop("kernel")
        if self.kernel is not None:
            out["kernel_shape"] = list(self.kernel.shape)
        return out


# ----------------------------------------------------------------------------- convolution


def _pad(x: torch.Tensor, r: int) -> torch.Tensor:
    # Reflection needs the image to be larger than the pad; tiny images fall back to replicate.
    mode = "reflect" if r < min(x.shape[-2:]) else "replicate"
    return F.pad(x, (r, r, r, r), mode=mode)


def convolve_batch(x: torch.Tensor, kernels) -> torch.Tensor:
    """Convolve each image of an NCHW batch with its own 2-D kernel (one grouped conv)."""
    kernels = [np.asarray(k, np.float64) for k in kernels]
    if len(kernels) != x.shape[0]:
        raise ValueError(f"{len(kernels)} kernels for a batch of {x.shape[0]}")
    size = max(k.shape[0] for k in kernels)
    weight = np.zeros((len(kernels), size, size))
    for i, k in enumerate(kernels):
        o = (size - k.shape[0]) // 2
        weight[i, o : o + k.shape[0], o : o + k.shape[1]] = k[::-1, ::-1]  # flip: true conv
    n, c, h, w = x.shape
    weight_t = torch.from_numpy(weight).to(x.device, x.dtype)
    weight_t = weight_t.repeat_interleave(c, dim=0)[:, None]
    padded = _pad(x.reshape(1, n * c, h, w), size // 2)
    return F.conv2d(padded, weight_t, groups=n * c).reshape(n, c, h, w)


def convolve(image, kernel: np.ndarray):
    """Convolve one numpy HWC image (float64 scipy) or a torch NCHW/CHW batch with ``kernel``."""
    if isinstance(image, np.ndarray):
        from scipy import ndimage

        img = np.asarray(image, np.float64)
        k = np.asarray(kernel, np.float64)
        channels = [ndimage.convolve(img[..., c], k, mode="mirror") for c in range(img.shape[2])]
        return np.stack(channels, axis=2).astype(np.float32)
    x = image[None] if image.ndim == 3 else image
    out = convolve_batch(x, [kernel] * x.shape[0])
    return out[0] if image.ndim == 3 else out


# ----------------------------------------------------------------------------- the pairs


def blur(image, kind: str, **params):
    """Blur with the PSF of ``kind`` (see :data:`KERNELS`) built from ``params``."""
    kernel = make_kernel(kind, **params)
    return convolve(image, kernel), Degradation(kind, dict(params), kernel)


def random_blur(image, rng: np.random.Generator, kind: str, ranges: dict | None = None):
    return blur(image, kind, **sample_blur_params(kind, rng, ranges))


def add_noise(image, sigma: float, rng: np.random.Generator):
    """Additive white Gaussian noise of standard deviation ``sigma``, then clip to [0, 1]."""
    record = Degradation("noise", {"sigma": float(sigma)})
    if sigma <= 0:
        return image, record
    noise = rng.normal(0.0, sigma, size=tuple(image.shape))
    if isinstance(image, np.ndarray):
        return np.clip(image + noise, 0, 1).astype(np.float32), record
    return (image + torch.from_numpy(noise).to(image)).clamp(0, 1), record


def random_noise(image, rng: np.random.Generator, sigma_range=None):
    """Noise of a σ drawn uniformly from ``sigma_range`` (default: the training mix's)."""
    sigma_range = sigma_range or DegradationMix.noise_sigma
    return add_noise(image, float(rng.uniform(*sigma_range)), rng)


def _jpeg_array(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)).save(
        buffer, format="JPEG", quality=int(quality)
    )
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"), np.float32) / 255.0


def jpeg(image, quality: int):
    """JPEG round trip at ``quality`` (1–95, Pillow's scale; 4:2:0 chroma subsampling)."""
    record = Degradation("jpeg", {"quality": int(quality)})
    if isinstance(image, np.ndarray):
        return _jpeg_array(image, quality), record
    x = image[None] if image.ndim == 3 else image
    out = torch.stack(
        [
            torch.from_numpy(_jpeg_array(im.permute(1, 2, 0).cpu().numpy(), quality)).permute(
                2, 0, 1
            )
            for im in x
        ]
    ).to(image)
    return (out if image.ndim == 4 else out[0]), record


def random_jpeg(image, rng: np.random.Generator, quality_range=(30, 90)):
    return jpeg(image, int(rng.integers(quality_range[0], quality_range[1] + 1)))


# ----------------------------------------------------------------------------- composites


@dataclass(frozen=True)
class DegradationSpec:
    """A full degradation: one blur, then noise, then (optionally) JPEG."""

    blur_kind: str
    blur_params: dict
    noise_sigma: float = 0.0
    jpeg_quality: int | None = None

    def kernel(self) -> np.ndarray:
        return make_kernel(self.blur_kind, **self.blur_params)

    def describe(self) -> str:
        """A short human-readable label, e.g. ``gaussian σ=2``."""
        symbols = {"sigma": "σ", "sigma_x": "σx", "sigma_y": "σy", "angle": "θ",
                   "length": "L", "radius": "r", "size": "size"}  # fmt: skip
        parts = [f"{symbols[k]}={v:.3g}" for k, v in self.blur_params.items() if k in symbols]
        text = " ".join([self.blur_kind, *parts])
        if self.noise_sigma:
            text += f", noise {self.noise_sigma:.3f}"
        if self.jpeg_quality is not None:
            text += f", JPEG q{self.jpeg_quality}"
        return text


def degrade(image, spec: DegradationSpec, rng: np.random.Generator, crop: int | None = None):
    """Apply ``spec`` to one image; returns the image and the list of records.

    With ``crop`` (numpy images only) the *whole photo* is blurred and then centre-cropped to
    at most ``crop``² before noise and JPEG, as a camera would: the crop's borders hold real
    blurred content from outside it, not a mirrored copy that a border-aware method could
    exploit. (Only a margin of the PSF radius around the crop is blurred: the result is the
    same and much faster.) Use :func:`crop_like` to cut the matching sharp image.
    """
    if crop is not None:
        kernel = spec.kernel()
        r = kernel.shape[0] // 2
        h, w = image.shape[:2]
        (top, left), (th, tw) = _centre_box(h, w, crop)
        t0, l0 = max(top - r, 0), max(left - r, 0)
        t1, l1 = min(top + th + r, h), min(left + tw + r, w)
        blurred = convolve(image[t0:t1, l0:l1], kernel)
        out = blurred[top - t0 : top - t0 + th, left - l0 : left - l0 + tw]
        blur_record = Degradation(spec.blur_kind, dict(spec.blur_params), kernel)
    else:
        out, blur_record = blur(image, spec.blur_kind, **spec.blur_params)
    out, noise_record = add_noise(out, spec.noise_sigma, rng)
    records = [blur_record, noise_record]
    if spec.jpeg_quality is not None:
        out, jpeg_record = jpeg(out, spec.jpeg_quality)
        records.append(jpeg_record)
    return out, records


def _centre_box(h: int, w: int, crop: int) -> tuple[tuple[int, int], tuple[int, int]]:
    th, tw = min(h, crop), min(w, crop)
    return ((h - th) // 2, (w - tw) // 2), (th, tw)


def crop_like(image: np.ndarray, crop: int) -> np.ndarray:
    """The centre crop :func:`degrade` cuts with the same ``crop``."""
    (top, left), (th, tw) = _centre_box(*image.shape[:2], crop)
    return image[top : top + th, left : left + tw]


def degrade_batch(
    sharp: torch.Tensor, specs: list[DegradationSpec], rng: np.random.Generator, crop: int = 0
) -> torch.Tensor:
    """Degrade an NCHW batch, one spec per image; blur in one grouped convolution.

    ``crop`` pixels are removed from every side after blurring and before noise/JPEG, so a
    caller that cut its patches with that margin gets blur free of any border effect.
    """
    out = convolve_batch(sharp, [s.kernel() for s in specs])
    if crop:
        out = out[..., crop:-crop, crop:-crop]
    sigmas = torch.tensor([s.noise_sigma for s in specs], dtype=out.dtype)[:, None, None, None]
    noise = torch.from_numpy(rng.normal(size=tuple(out.shape))).to(out.dtype)
    out = (out + sigmas * noise).clamp(0, 1)
    for i, spec in enumerate(specs):
        if spec.jpeg_quality is not None:
            out[i] = jpeg(out[i], spec.jpeg_quality)[0]
    return out


@dataclass(frozen=True)
class DegradationMix:
    """How training pairs are degraded: blur kinds with weights, each with its ranges, then
    noise σ drawn uniformly from ``noise_sigma`` and JPEG with probability ``jpeg_prob``."""

    # Motion gets a fair share: real photos are blurred by hand shake at least as often as by
    # focus, and shake is the hardest case to learn. About one pair in eleven is not blurred at
    # all, so that a photo that is already sharp comes back (nearly) as it went in. Directional
    # blur (anisotropic, linear motion) and the ranges were widened after the shipped models,
    # trained on narrower ones, gained nothing on motion longer than 21 px or on thin
    # anisotropic blur, and lost half their gain at noise σ 0.03 (docs/design_history.md).
    blur_weights: dict = field(
        default_factory=lambda: {
            "none": 0.1,
            "gaussian": 0.2,
            "anisotropic": 0.15,
            "motion_linear": 0.15,
            "camera_shake": 0.35,
            "defocus": 0.2,
        }
    )
    blur_ranges: dict = field(default_factory=lambda: dict(BLUR_RANGES))
    noise_sigma: tuple[float, float] = (0.0, 0.03)
    jpeg_prob: float = 0.1
    jpeg_quality: tuple[int, int] = (40, 90)

    def sample(self, rng: np.random.Generator) -> DegradationSpec:
        kinds = sorted(self.blur_weights)
        p = np.array([self.blur_weights[k] for k in kinds], dtype=np.float64)
        kind = kinds[rng.choice(len(kinds), p=p / p.sum())]
        params = sample_blur_params(kind, rng, self.blur_ranges.get(kind))
        sigma = float(rng.uniform(*self.noise_sigma))
        quality = None
        if rng.random() < self.jpeg_prob:
            quality = int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1))
        return DegradationSpec(kind, params, sigma, quality)

    def max_kernel_radius(self) -> int:
        """The largest PSF radius this mix can produce (patch margins are cut to it)."""
        radius = 0
        for kind in self.blur_weights:
            ranges = self.blur_ranges.get(kind, BLUR_RANGES[kind])
            worst = {name: hi for name, (lo, hi) in ranges.items()}
            if kind == "motion_trajectory":
                radius = max(radius, int(math.ceil(worst["length"])) + 1)
                continue
            if kind == "camera_shake":
                # Centred on its centroid, an uneven path can reach its full extent to one side.
                radius = max(radius, int(math.ceil(worst["size"])) + 1)
                continue
            radius = max(radius, make_kernel(kind, **worst).shape[0] // 2)
        return radius
