"""Teacher and student networks.

Every model maps an ``N×3×H×W`` image in ``[0, 1]`` to a sharpened image of the same shape (any
H, W: inputs are reflect-padded to the model's stride and the output cropped back) and predicts
a *residual* added to its input, so an untrained model starts as the identity.

``model(x, return_features=True)`` also returns a dict of intermediate feature maps, and
``model.feature_info()`` documents them as ``name → (channels, stride)`` where stride is the
downsampling factor relative to the input. Distillation matches teacher and student taps of
the same stride.

Models:

* ``nafnet`` (default teacher): a NAFNet-style U-Net (Chen et al., 2022): LayerNorm, depthwise
  conv, SimpleGate and simplified channel attention, no non-linear activations.
* ``unshuffle`` (default student): pixel-unshuffle ×4 at the entry, so a few narrow residual
  blocks run at 1/16 of the pixels, then pixel-shuffle back; built for real-time CPU use.
* ``rescnn``: a plain residual-block CNN at full resolution (the Pixel seed: 8 blocks teacher,
  3 blocks student).
* ``resunet``: a U-Net with residual blocks (the FALCONS seed's teacher).
* ``sepconv``: a depthwise-separable encoder–decoder student (the Restormer seed's student).
* ``restormer``: a small Restormer-style transformer teacher (transposed channel attention and
  gated-dconv feed-forward; Zamir et al., 2022).

Pick one with :func:`build_model` (``name`` → class, keyword arguments passed through).

For full-size photos, :func:`set_test_time_window` switches NAFNet's global-pooling channel
attention to TLC's local pooling over a window the size of the training patches.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def pad_to_stride(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Pad the bottom and right of ``x`` (reflect, or replicate for tiny images) to multiples
    of ``stride``; crop ``[..., :h, :w]`` to undo."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % stride, (-w) % stride
    if not (ph or pw):
        return x
    return F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")


def pad_image_to_stride(image: np.ndarray, stride: int) -> np.ndarray:
    """:func:`pad_to_stride` for an ``H×W×C`` numpy image (any dtype): the same pixels, no torch."""
    h, w = image.shape[:2]
    ph, pw = (-h) % stride, (-w) % stride
    if not (ph or pw):
        return image
    mode = "reflect" if min(h, w) > max(ph, pw) else "edge"
    return np.pad(image, ((0, ph), (0, pw)) + ((0, 0),) * (image.ndim - 2), mode=mode)


class SharpeningNet(nn.Module):
    """Shared plumbing: pad to the stride, predict a residual, crop back, expose features."""

    stride = 1
    in_channels = 3  # RGB; a model that sees more (two frames) says so

    def body(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, return_features: bool = False):
        if torch.onnx.is_in_onnx_export():
            # The exported graph takes sizes on the stride's grid: padding and cropping the
            # full-resolution frame inside it cost onnxruntime a fifth of a served student's
            # time, so :class:`~pixel_utils.app.onnx_export.OnnxModel` pads only when needed.
            residual, features = self.body(x)
            return (x + residual, features) if return_features else x + residual
        padded = pad_to_stride(x, self.stride)
        residual, features = self.body(padded)
        out = (padded + residual)[..., : x.shape[-2], : x.shape[-1]]
        return (out, features) if return_features else out

    @torch.no_grad()
    def feature_info(self, size: int = 64) -> dict[str, tuple[int, int]]:
        device = next(self.parameters()).device
        x = torch.zeros(1, 3, size, size, device=device)
        was_training = self.training
        self.eval()
        _, feats = self.forward(x, return_features=True)
        self.train(was_training)
        return {k: (v.shape[1], size // v.shape[-1]) for k, v in feats.items()}


# ----------------------------------------------------------------------------- blocks


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        x = (x - mu) / torch.sqrt(var + self.eps)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class SimpleGate(nn.Module):
    def forward(self, x):
        a, b = x.chunk(2, dim=1)
        return a * b


def local_mean(x: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """Mean of ``x`` over a ``window`` (kh, kw) around each pixel, same shape as ``x``.

    Computed with an integral image (two cumulative sums, O(1) per pixel) over the windows
    that lie fully inside the map; the result is replicate-padded back to full size, so pixels
    within half a window of the border share the mean of the nearest full window (TLC's border
    clamping). A window at least as large as the map in one dimension uses the full extent
    there; one at least as large in both gives exactly the global mean.
    """
    h, w = x.shape[-2:]
    kh, kw = min(int(window[0]), h), min(int(window[1]), w)
    if kh >= h and kw >= w:
        return F.adaptive_avg_pool2d(x, 1).expand_as(x)
    # Centre on the global mean and accumulate in float32 (at least): the cumulative sums of a
    # full-size map are large, and their differences would otherwise lose precision.
    mean = x.mean((-2, -1), keepdim=True)
    centred = (x - mean).to(torch.promote_types(x.dtype, torch.float32))
    s = F.pad(centred.cumsum(-2).cumsum(-1), (1, 0, 1, 0))
    box = s[..., kh:, kw:] - s[..., :-kh, kw:] - s[..., kh:, :-kw] + s[..., :-kh, :-kw]
    box = box / (kh * kw)
    dh, dw = h - box.shape[-2], w - box.shape[-1]
    box = F.pad(box, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), mode="replicate")
    return box.to(x.dtype) + mean


class LocalMeanPool(nn.Module):
    """The pooling of NAFNet's channel attention, with TLC (Chu et al., ECCV 2022).

    ``window=None`` (training, default) is global average pooling to ``N×C×1×1``. At test time
    :func:`set_test_time_window` sets ``window = (kh, kw)``: each pixel then gets the mean over
    a local window about the size the block saw in training (:func:`local_mean`), so a
    full-size photo sees the same statistic as a training patch. On maps no larger than the
    window the output is the global mean, as before.
    """

    def __init__(self, window: tuple[int, int] | None = None):
        super().__init__()
        self.window = window

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.window is None:
            return F.adaptive_avg_pool2d(x, 1)
        h, w = x.shape[-2:]
        if self.window[0] >= h and self.window[1] >= w:
            return F.adaptive_avg_pool2d(x, 1)
        return local_mean(x, self.window)

    def extra_repr(self) -> str:
        return f"window={self.window}"


class NAFBlock(nn.Module):
    """NAFNet block. ``stride`` is the block's downsampling factor in its U-Net (set by
    :class:`_UNet`), used by :func:`set_test_time_window`."""

    def __init__(self, c: int, expand: int = 2, ffn_expand: int = 2):
        super().__init__()
        dw = c * expand
        self.stride = 1
        self.norm1 = LayerNorm2d(c)
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.gate = SimpleGate()
        # Index 0 pools, index 1 is the conv: checkpoint keys stay ``sca.1.weight``/``sca.1.bias``.
        self.sca = nn.Sequential(LocalMeanPool(), nn.Conv2d(dw // 2, dw // 2, 1))
        self.conv3 = nn.Conv2d(dw // 2, c, 1)
        self.norm2 = LayerNorm2d(c)
        self.conv4 = nn.Conv2d(c, c * ffn_expand, 1)
        self.conv5 = nn.Conv2d(c * ffn_expand // 2, c, 1)
        # Zero-initialised branch scales: each block starts as the identity (NAFNet's init).
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x):
        y = self.gate(self.conv2(self.conv1(self.norm1(x))))
        y = self.conv3(y * self.sca(y))
        x = x + self.beta * y
        y = self.conv5(self.gate(self.conv4(self.norm2(x))))
        return x + self.gamma * y


class ResBlock(nn.Module):
    """conv–ReLU–conv with an identity skip."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x), inplace=True))


# ----------------------------------------------------------------------------- U-Nets


class _UNet(SharpeningNet):
    """A U-Net skeleton: ``block(c)`` at every level, stride-2 conv down, pixel-shuffle up,
    additive skips. Features: ``enc{i}`` (stride 2**i), ``mid``, ``dec{i}`` (stride 2**i)."""

    def __init__(self, block, width, enc_blocks, middle_blocks, dec_blocks):
        super().__init__()
        self.stride = 2 ** len(enc_blocks)
        self.intro = nn.Conv2d(3, width, 3, padding=1)
        self.encoders, self.downs, self.ups, self.decoders = (nn.ModuleList() for _ in range(4))
        c = width
        for n in enc_blocks:
            self.encoders.append(nn.Sequential(*[block(c) for _ in range(n)]))
            self.downs.append(nn.Conv2d(c, 2 * c, 2, stride=2))
            c *= 2
        self.middle = nn.Sequential(*[block(c) for _ in range(middle_blocks)])
        for n in dec_blocks:
            self.ups.append(nn.Sequential(nn.Conv2d(c, 2 * c, 1, bias=False), nn.PixelShuffle(2)))
            c //= 2
            self.decoders.append(nn.Sequential(*[block(c) for _ in range(n)]))
        self.ending = nn.Conv2d(width, 3, 3, padding=1)
        for block, stride in self.blocks_with_stride():
            if isinstance(block, NAFBlock):
                block.stride = stride

    def blocks_with_stride(self):
        """``(block, stride)`` for every block of the encoders, middle and decoders."""
        n = len(self.encoders)
        for i, enc in enumerate(self.encoders):
            yield from ((b, 2**i) for b in enc)
        yield from ((b, 2**n) for b in self.middle)
        for j, dec in enumerate(self.decoders):
            yield from ((b, 2 ** (n - 1 - j)) for b in dec)

    def body(self, x):
        feats = {}
        x = self.intro(x)
        skips = []
        for i, (enc, down) in enumerate(zip(self.encoders, self.downs, strict=True)):
            x = enc(x)
            feats[f"enc{i}"] = x
            skips.append(x)
            x = down(x)
        x = self.middle(x)
        feats["mid"] = x
        for i, (up, dec, skip) in enumerate(zip(self.ups, self.decoders, skips[::-1], strict=True)):
            x = dec(up(x) + skip)
            feats[f"dec{len(skips) - 1 - i}"] = x
        return self.ending(x), feats


class NAFNetUNet(_UNet):
    def __init__(self, width=16, enc_blocks=(1, 1, 2), middle_blocks=2, dec_blocks=(1, 1, 1)):
        super().__init__(NAFBlock, width, enc_blocks, middle_blocks, dec_blocks)


class ResUNet(_UNet):
    def __init__(self, width=32, enc_blocks=(1, 1, 1), middle_blocks=2, dec_blocks=(1, 1, 1)):
        super().__init__(ResBlock, width, enc_blocks, middle_blocks, dec_blocks)


# ----------------------------------------------------------------------------- Restormer


class TransposedAttention(nn.Module):
    """MDTA: attention across channels (a C×C map per head), linear in the pixel count."""

    def __init__(self, c: int, heads: int):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(c, 3 * c, 1, bias=False)
        self.qkv_dw = nn.Conv2d(3 * c, 3 * c, 3, padding=1, groups=3 * c, bias=False)
        self.project = nn.Conv2d(c, c, 1, bias=False)

    def forward(self, x):
        n, c, h, w = x.shape
        q, k, v = self.qkv_dw(self.qkv(x)).chunk(3, dim=1)
        q, k, v = (t.reshape(n, self.heads, c // self.heads, h * w) for t in (q, k, v))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1) * self.temperature).softmax(dim=-1)
        return self.project((attn @ v).reshape(n, c, h, w))


class GatedFeedForward(nn.Module):
    """GDFN: 1×1 expand, depthwise 3×3, GELU gate, 1×1 back."""

    def __init__(self, c: int, expand: float = 2.0):
        super().__init__()
        hidden = int(c * expand)
        self.expand = nn.Conv2d(c, 2 * hidden, 1, bias=False)
        self.dw = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden, bias=False)
        self.project = nn.Conv2d(hidden, c, 1, bias=False)

    def forward(self, x):
        a, b = self.dw(self.expand(x)).chunk(2, dim=1)
        return self.project(F.gelu(a) * b)


class TransformerBlock(nn.Module):
    def __init__(self, c: int, heads: int):
        super().__init__()
        self.norm1, self.attn = LayerNorm2d(c), TransposedAttention(c, heads)
        self.norm2, self.ffn = LayerNorm2d(c), GatedFeedForward(c)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class RestormerLite(_UNet):
    def __init__(self, width=16, enc_blocks=(1, 1, 2), middle_blocks=2, dec_blocks=(1, 1, 1)):
        heads = {width * 2**i: 2**i for i in range(len(enc_blocks) + 1)}
        super().__init__(
            lambda c: TransformerBlock(c, heads[c]), width, enc_blocks, middle_blocks, dec_blocks
        )


# ----------------------------------------------------------------------------- students


class Unshuffle(nn.Module):
    """Pixel-unshuffle written as a strided convolution with fixed one-hot weights.

    The same numbers as :class:`torch.nn.PixelUnshuffle`, but ONNX exports it as one ``Conv``
    instead of a Reshape–Transpose–Reshape chain over the full-resolution image, which cost
    onnxruntime more than the whole student (measured: 12 of 54 ms at 720p).
    """

    def __init__(self, scale: int, channels: int = 3):
        super().__init__()
        self.scale = scale
        weight = torch.zeros(channels * scale**2, channels, scale, scale)
        for c in range(channels):
            for i in range(scale):
                for j in range(scale):
                    weight[(c * scale + i) * scale + j, c, i, j] = 1.0
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, x):
        if torch.onnx.is_in_onnx_export():
            return F.conv2d(x, self.weight, stride=self.scale)
        return F.pixel_unshuffle(x, self.scale)  # faster in PyTorch; the same numbers


class RepConv(nn.Module):
    """A 3×3 convolution trained as three parallel branches (3×3, 1×1 and identity), which are
    all linear and so fuse into one 3×3 kernel for inference (RepVGG, ECBSR): the extra
    branches ease optimisation and cost nothing once fused (:func:`fuse_reparameterised`)."""

    def __init__(self, c: int):
        super().__init__()
        self.conv3 = nn.Conv2d(c, c, 3, padding=1)
        self.conv1 = nn.Conv2d(c, c, 1)

    def fused(self) -> nn.Conv2d:
        c = self.conv3.in_channels
        kernel = self.conv3.weight.detach().clone()
        kernel[:, :, 1, 1] += self.conv1.weight.detach()[:, :, 0, 0]
        kernel[:, :, 1, 1] += torch.eye(c, device=kernel.device, dtype=kernel.dtype)
        conv = nn.Conv2d(c, c, 3, padding=1).to(kernel.device)
        conv.weight.data.copy_(kernel)
        conv.bias.data.copy_(self.conv3.bias.detach() + self.conv1.bias.detach())
        return conv

    def forward(self, x):
        return self.conv3(x) + self.conv1(x) + x


def fuse_reparameterised(model: nn.Module) -> nn.Module:
    """Replace every :class:`RepConv` of ``model`` (in place) by its fused 3×3 convolution."""
    for name, child in list(model.named_children()):
        if isinstance(child, RepConv):
            setattr(model, name, child.fused())
        else:
            fuse_reparameterised(child)
    return model


class StudentBlock(nn.Module):
    """conv–ReLU–conv with an identity skip; with ``reparam`` the convolutions are
    :class:`RepConv` while training."""

    def __init__(self, c: int, reparam: bool = False):
        super().__init__()
        conv = RepConv if reparam else (lambda c: nn.Conv2d(c, c, 3, padding=1))
        self.conv1, self.conv2 = conv(c), conv(c)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x), inplace=True))


class UnshuffleStudent(SharpeningNet):
    """Pixel-unshuffle ×``scale`` → conv → residual blocks → conv → pixel-shuffle.

    The body runs at 1/scale² of the pixels with ``channels`` channels. With ``inner_blocks``
    the network is a small two-level U: half of the ``blocks`` run first, then a stride-2 conv
    to twice the channels, ``inner_blocks`` blocks at that coarser level, pixel-shuffle back
    onto a skip connection, and the other half of the blocks. A coarse block costs the same
    MACs as a fine one but grows the receptive field twice as fast, which blind deblurring of
    large kernels needs. ``reparam`` trains each 3×3 conv as a :class:`RepConv`.
    With ``deep_blocks`` the coarse level is itself a U: a third level, at half its resolution
    again with twice its channels, sits after its first half of blocks (the same MACs per block
    again, four times the weights of a fine block, and onnxruntime's int8 convolution runs
    such wide, small maps faster per MAC).
    Features ``block{i}`` are the fine-level blocks' outputs (stride ``scale``).
    """

    def __init__(self, scale=4, channels=32, blocks=2, inner_blocks=0, reparam=False,
                 deep_blocks=0):  # fmt: skip
        super().__init__()
        if deep_blocks and not inner_blocks:
            raise ValueError("deep_blocks needs inner_blocks: the third level sits in the second")
        # A third level does not double the stride: its way back up is cropped to the coarse
        # map (_third_level), so sizes on the coarse level's grid need no more padding.
        self.stride = scale * (2 if inner_blocks else 1)
        self.unshuffle = Unshuffle(scale)
        self.entry = nn.Conv2d(3 * scale**2, channels, 3, padding=1)
        self.blocks = nn.ModuleList(StudentBlock(channels, reparam) for _ in range(blocks))
        self.inner = nn.ModuleList(StudentBlock(2 * channels, reparam) for _ in range(inner_blocks))
        if inner_blocks:
            self.down = nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1)
            self.up = nn.Sequential(nn.Conv2d(2 * channels, 4 * channels, 1), nn.PixelShuffle(2))
        self.deep = nn.ModuleList(StudentBlock(4 * channels, reparam) for _ in range(deep_blocks))
        if deep_blocks:
            self.deep_down = nn.Conv2d(2 * channels, 4 * channels, 3, stride=2, padding=1)
            self.deep_up = nn.Sequential(
                nn.Conv2d(4 * channels, 8 * channels, 1), nn.PixelShuffle(2)
            )
        self.exit = nn.Conv2d(channels, 3 * scale**2, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)

    def body(self, x):
        feats = {}
        # No activation at the entry: every non-linearity sits inside a residual block, so the
        # identity path always carries gradient (a ReLU here died in training, freezing the net).
        y = self.entry(self.unshuffle(x))
        half = (len(self.blocks) + 1) // 2 if self.inner else len(self.blocks)
        for i, block in enumerate(self.blocks):
            if i == half and self.inner:
                y = y + self.up(self._coarse(self.down(y)))
            y = block(y)
            feats[f"block{i}"] = y
        if self.inner and half == len(self.blocks):
            y = y + self.up(self._coarse(self.down(y)))
        return self.shuffle(self.exit(y)), feats

    def _coarse(self, z):
        half = (len(self.inner) + 1) // 2 if self.deep else len(self.inner)
        for i, block in enumerate(self.inner):
            if i == half and self.deep:
                z = self._third_level(z)
            z = block(z)
        if self.deep and half == len(self.inner):
            z = self._third_level(z)
        return z

    def _third_level(self, z):
        # Cropped back to the coarse map, whose odd sides (a side on the 8-pixel grid but not
        # on the 16-pixel one: 1080 rows) the stride-2 conv has zero-padded. Padding the image
        # to the 16-pixel grid instead cost the served int8 student about 5 ms of a 1080p
        # frame (6%), and computed rows that are thrown away.
        y = self.deep_down(z)
        for block in self.deep:
            y = block(y)
        return z + self.deep_up(y)[..., : z.shape[-2], : z.shape[-1]]


def grown_student_state(state: dict, old_kwargs: dict, new_kwargs: dict) -> dict:
    """The weights of an :class:`UnshuffleStudent` with more blocks (``new_kwargs``) that
    computes exactly what ``state`` (an ``old_kwargs`` student) computes.

    The old blocks keep their weights and their side of the U; each added block, fine or
    coarse, gets fresh first-conv weights and a zero second conv, so it starts as the identity
    and training grows it from there (function-preserving growth, as in Net2Net). Used to give
    a trained student more capacity without losing what it learned.
    """
    fixed = ("scale", "channels", "reparam")
    if any(old_kwargs.get(k) != new_kwargs.get(k) for k in fixed):
        raise ValueError(f"growth keeps {fixed}: {old_kwargs} → {new_kwargs}")
    old_blocks, new_blocks = old_kwargs["blocks"], new_kwargs["blocks"]
    old_inner, new_inner = old_kwargs.get("inner_blocks", 0), new_kwargs.get("inner_blocks", 0)
    old_deep, new_deep = old_kwargs.get("deep_blocks", 0), new_kwargs.get("deep_blocks", 0)
    if new_blocks < old_blocks or new_inner < old_inner or (old_inner == 0) != (new_inner == 0):
        raise ValueError(f"growth only adds blocks (and keeps the U or its absence): "
                         f"{old_kwargs} → {new_kwargs}")  # fmt: skip
    # A third level may be added (its output starts at zero, so the coarse level is unchanged)
    # or deepened; once it exists the coarse level's blocks stay as they are, around it.
    if new_deep < old_deep or (old_deep and new_inner != old_inner):
        raise ValueError(f"growth adds a third level or blocks to it, and then keeps the "
                         f"second level's blocks: {old_kwargs} → {new_kwargs}")  # fmt: skip
    grown = UnshuffleStudent(**new_kwargs).state_dict()  # fresh weights for the added blocks
    old_half = (old_blocks + 1) // 2 if old_inner else old_blocks
    # Blocks before the U stay first; those after it stay last, so the U sits between them.
    moved = {i: i if i < old_half else new_blocks - (old_blocks - i) for i in range(old_blocks)}
    for name, value in state.items():
        parts = name.split(".")
        if parts[0] == "blocks":
            parts[1] = str(moved[int(parts[1])])
        target = ".".join(parts)
        if target not in grown or grown[target].shape != value.shape:
            raise ValueError(f"{name}: not a weight of an unshuffle student {old_kwargs}")
        grown[target] = value.clone()
    added = [f"blocks.{i}" for i in sorted(set(range(new_blocks)) - set(moved.values()))]
    added += [f"inner.{i}" for i in range(old_inner, new_inner)]
    if old_deep:
        added += [f"deep.{i}" for i in range(old_deep, new_deep)]
    for block in added:
        for tensor in ("conv2.weight", "conv2.bias"):
            grown[f"{block}.{tensor}"] = torch.zeros_like(grown[f"{block}.{tensor}"])
    if new_deep and not old_deep:
        # A new third level: its blocks keep their fresh weights, and its way back up starts
        # at zero, so it adds nothing until training opens it.
        for tensor in ("deep_up.0.weight", "deep_up.0.bias"):
            grown[tensor] = torch.zeros_like(grown[tensor])
    return grown


def teacher_slice_state(state: dict, kwargs: dict, width: int) -> dict:
    """The weights of a narrower NAFNet U-Net, ``width`` channels at full resolution instead
    of ``kwargs["width"]``, cut from a trained one's ``state``: every layer keeps its first
    channels (a slice of the teacher, as in CSD, Wang et al., CVPR 2021).

    Where a SimpleGate multiplies the two halves of a layer's outputs, each half keeps its
    first channels, so channel ``k`` of the slice's gate is channel ``k`` of the teacher's.
    The pixel-shuffle of the way up takes four consecutive channels per output channel, so its
    first channels come from the first ones before it. The slice does not compute what the
    teacher computes (its LayerNorms see fewer channels, and the dropped channels' messages
    are lost); it starts training from the teacher's weights instead of random ones.
    """
    full = int(kwargs["width"])
    if not 0 < width <= full:
        raise ValueError(f"a slice's width must be between 1 and the teacher's {full}: {width}")
    sliced = NAFNetUNet(**(kwargs | {"width": width})).state_dict()
    gated = ("conv1", "conv2", "conv4")  # the layers whose outputs a SimpleGate halves

    def first(n_old: int, n_new: int, halves: bool) -> torch.Tensor:
        if not halves:
            return torch.arange(n_new)
        return torch.cat([torch.arange(n_new // 2), n_old // 2 + torch.arange(n_new // 2)])

    for name, shape in ((k, v.shape) for k, v in sliced.items()):
        if name not in state:
            raise ValueError(f"{name}: missing from a NAFNet U-Net's weights {kwargs}")
        value = state[name]
        if value.ndim != len(shape):
            raise ValueError(f"{name}: {tuple(value.shape)} does not slice to {tuple(shape)}")
        parts = name.split(".")
        in_block = parts[0] in ("encoders", "middle", "decoders")
        for dim, (n_old, n_new) in enumerate(zip(value.shape, shape, strict=True)):
            if n_new > n_old:
                raise ValueError(f"{name}: {tuple(value.shape)} does not slice to {tuple(shape)}")
            if n_new < n_old:
                halves = in_block and dim == 0 and parts[-2] in gated
                value = value.index_select(dim, first(n_old, n_new, halves))
        sliced[name] = value.clone()
    return sliced


class TwoFrameStudent(UnshuffleStudent):
    """An :class:`UnshuffleStudent` that sees two frames: the current one and the previous one
    aligned onto it (``N×6×H×W``, current first), and sharpens the current one.

    The previous frame brings a second, differently blurred view of the same content (and the
    same content the previous output was made from, which steadies the output). Only the entry
    convolution differs from the single-frame student, so :meth:`load_single_frame` starts it
    as an exact copy of a trained student that ignores the previous frame.
    """

    in_channels = 6

    def __init__(self, scale=4, channels=32, blocks=2, inner_blocks=0, reparam=False):
        super().__init__(scale, channels, blocks, inner_blocks, reparam)
        self.unshuffle = Unshuffle(scale, channels=6)
        self.entry = nn.Conv2d(6 * scale**2, channels, 3, padding=1)

    def load_single_frame(self, state: dict) -> None:
        """Copy a single-frame student's weights; the previous frame's entry weights are zero."""
        state = dict(state)
        entry = state.pop("entry.weight")
        weight = torch.zeros_like(self.entry.weight)
        weight[:, : entry.shape[1]] = entry
        state["entry.weight"] = weight
        self.load_state_dict(state)

    def forward(self, x: torch.Tensor, return_features: bool = False):
        padded = pad_to_stride(x, self.stride)
        residual, features = self.body(padded)
        out = (padded[:, :3] + residual)[..., : x.shape[-2], : x.shape[-1]]
        return (out, features) if return_features else out

    @torch.no_grad()
    def feature_info(self, size: int = 64) -> dict[str, tuple[int, int]]:
        x = torch.zeros(1, 6, size, size, device=next(self.parameters()).device)
        _, feats = self.forward(x, return_features=True)
        return {k: (v.shape[1], size // v.shape[-1]) for k, v in feats.items()}


class ResidualCNN(SharpeningNet):
    """conv → ``blocks`` residual blocks of ``channels`` → conv, all at full resolution."""

    def __init__(self, channels: int = 64, blocks: int = 8):
        super().__init__()
        self.entry = nn.Conv2d(3, channels, 3, padding=1)
        self.blocks = nn.ModuleList(ResBlock(channels) for _ in range(blocks))
        self.exit = nn.Conv2d(channels, 3, 3, padding=1)

    def body(self, x):
        feats = {}
        y = self.entry(x)
        for i, block in enumerate(self.blocks):
            y = block(y)
            feats[f"block{i}"] = y
        return self.exit(y), feats


def _sepconv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, padding=1, groups=cin), nn.Conv2d(cin, cout, 1), nn.ReLU(True)
    )


class SeparableEncoderDecoder(SharpeningNet):
    """SepConv(32) → SepConv(64) → max-pool → SepConv(128)×2 → upsample → SepConv(64) →
    SepConv(32) → conv(3), as in the Restormer seed's student. Features: ``enc`` (stride 1),
    ``mid`` (stride 2), ``dec`` (stride 1)."""

    stride = 2

    def __init__(self, widths=(32, 64, 128)):
        super().__init__()
        a, b, c = widths
        self.enc = nn.Sequential(_sepconv(3, a), _sepconv(a, b))
        self.mid = nn.Sequential(_sepconv(b, c), _sepconv(c, c))
        self.dec = nn.Sequential(_sepconv(c, b), _sepconv(b, a))
        self.out = nn.Conv2d(a, 3, 3, padding=1)

    def body(self, x):
        e = self.enc(x)
        m = self.mid(F.max_pool2d(e, 2))
        d = self.dec(F.interpolate(m, scale_factor=2, mode="bilinear", align_corners=False))
        return self.out(d), {"enc": e, "mid": m, "dec": d}


#: name → constructor. Keyword arguments go straight to the constructor.
MODELS: dict[str, type[SharpeningNet]] = {
    "nafnet": NAFNetUNet,
    "unshuffle": UnshuffleStudent,
    "two_frame": TwoFrameStudent,
    "rescnn": ResidualCNN,
    "resunet": ResUNet,
    "sepconv": SeparableEncoderDecoder,
    "restormer": RestormerLite,
}


def build_model(name: str, **kwargs) -> SharpeningNet:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](**kwargs)


def set_test_time_window(model: nn.Module, train_size: int | None, factor: float = 1.5) -> int:
    """Switch the channel attention of a NAFNet U-Net to TLC's local pooling, or back.

    Each :class:`NAFBlock` at stride ``s`` gets a pooling window of
    ``round(factor * train_size / s)`` pixels of its feature map (TLC uses 1.5 × the training
    patch size); ``train_size=None`` restores global pooling. Returns the number of blocks
    changed; models without NAFNet blocks are left unchanged (0).
    """
    if not isinstance(model, _UNet):
        return 0
    changed = 0
    for block, stride in model.blocks_with_stride():
        if not isinstance(block, NAFBlock) or not isinstance(block.sca[0], LocalMeanPool):
            continue
        if train_size is None:
            block.sca[0].window = None
        else:
            k = max(1, round(factor * train_size / stride))
            block.sca[0].window = (k, k)
        changed += 1
    return changed


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
