"""Interactive comparisons for notebook 05, built from ipywidgets.

:class:`ComparisonPanel` shows two of {degraded, each model, ground truth} with a swipe
slider between them, a 1:1 zoom, an ``amount`` slider that scales every model's correction
(``pixel-sharpen --amount``), and live PSNR/SSIM and per-model latency. Outputs are cached:
moving the swipe, zoom or amount sliders costs no inference; changing the image or the blur
re-runs each model once.

:func:`static_swipe` is the kernel-free version for the exported report: a few pre-rendered
frames in a ``Stack`` whose page is linked to a slider in the browser (``jslink``), so it still
works when the saved HTML is opened with no Python behind it.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field

import ipywidgets as W
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from pixel_utils.app.amount import MAX_AMOUNT, apply_amount
from pixel_utils.data.degradations import DegradationSpec, degrade
from pixel_utils.data.images import center_crop, pil_to_array, to_uint8
from pixel_utils.data.sources import PHOTO_SPLITS, load_photo
from pixel_utils.evaluation.inference import sharpen
from pixel_utils.evaluation.metrics import psnr, ssim

#: The slider of each blur kind: (parameter, min, max, step, default).
STRENGTH = {
    "gaussian": ("sigma", 0.5, 4.0, 0.25, 2.0),
    "motion_linear": ("length", 3.0, 25.0, 1.0, 11.0),
    "defocus": ("radius", 1.0, 6.0, 0.5, 3.0),
}
#: Parameters the panel keeps fixed (a horizontal camera move for linear motion).
FIXED = {"motion_linear": {"angle": 0.0}}
REAL_BLUR = "clock (real motion blur, no ground truth)"
UPLOAD = "your upload"


def _reading_failure(err: Exception) -> str:
    """Why Pillow could not read an upload, in the words the file reader
    (:func:`~pixel_utils.data.images.read_image_file`) uses, without the in-memory buffer's
    address."""
    if isinstance(err, UnidentifiedImageError):
        return "not a recognised image format"
    return f"corrupt or truncated image ({err})"


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def swipe(left: np.ndarray, right: np.ndarray, position: float) -> np.ndarray:
    """``left`` up to ``position`` (0–1 of the width), ``right`` after, with a thin divider."""
    out = right.copy()
    x = int(round(position * left.shape[1]))
    out[:, :x] = left[:, :x]
    if 0 < x < out.shape[1]:
        out[:, max(x - 1, 0) : x + 1] = (1.0, 0.85, 0.0)
    return out


def load_choice(name: str, size: int = 512) -> tuple[np.ndarray, bool]:
    """A panel image: ``(image, is_already_blurred)``."""
    if name == REAL_BLUR:
        from skimage import data

        from pixel_utils.data.images import to_rgb_float

        return center_crop(to_rgb_float(data.clock()), size), True
    return center_crop(load_photo(name), size), False


@dataclass
class PanelState:
    sharp: np.ndarray | None
    degraded: np.ndarray
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    scores_html: str = ""  # computed once per image, blur or amount, not on every swipe


class ComparisonPanel:
    """The interactive comparison. ``panel.widget`` is what a notebook displays."""

    def __init__(self, models: dict[str, torch.nn.Module], size: int = 512, seed: int = 0,
                 photos: tuple[str, ...] = PHOTO_SPLITS["test"]):  # fmt: skip
        self.models, self.size, self.seed = models, size, seed
        self.uploaded: np.ndarray | None = None
        self.image_choice = W.Dropdown(options=[*photos, REAL_BLUR, UPLOAD], description="image")
        self.upload = W.FileUpload(accept="image/*", multiple=False, description="upload")
        self.kind = W.Dropdown(options=list(STRENGTH), value="gaussian", description="blur")
        self.strength = W.FloatSlider(description="σ", continuous_update=False)
        self.noise = W.FloatSlider(value=0.01, min=0, max=0.05, step=0.005,
                                   description="noise σ", continuous_update=False)  # fmt: skip
        sides = ["degraded", *models, "ground truth"]
        self.left = W.Dropdown(options=sides, value="degraded", description="left")
        self.right = W.Dropdown(options=sides, value=next(iter(models), "ground truth"),
                                description="right")  # fmt: skip
        self.amount = W.FloatSlider(value=1.0, min=0, max=MAX_AMOUNT, step=0.25,
                                    description="amount", continuous_update=False)  # fmt: skip
        self.position = W.FloatSlider(value=0.5, min=0, max=1, step=0.01, description="swipe",
                                      readout=False, layout=W.Layout(width="512px"))  # fmt: skip
        self.zoom = W.Checkbox(value=False, description="zoom 1:1 (128 px)")
        self.zoom_x = W.FloatSlider(value=0.5, min=0, max=1, step=0.01, description="zoom x")
        self.zoom_y = W.FloatSlider(value=0.5, min=0, max=1, step=0.01, description="zoom y")
        self.view = W.Image(format="png", layout=W.Layout(width="512px"))
        self.readout = W.HTML()
        self.error = W.HTML()
        self._quiet = False  # set while one control adjusts another, to recompute only once
        self._set_strength_slider()
        self.state: PanelState | None = None
        self.recompute()
        self.image_choice.observe(lambda _: self.recompute(), "value")
        self.upload.observe(self._on_upload, "value")
        self.kind.observe(self._on_kind, "value")
        for w in (self.strength, self.noise):
            w.observe(lambda _: self._quiet or self.recompute(), "value")
        for w in (self.left, self.right, self.position, self.zoom, self.zoom_x, self.zoom_y):
            w.observe(lambda _: self.render(), "value")
        self.amount.observe(lambda _: self.rescore(), "value")
        controls = W.VBox([W.HBox([self.image_choice, self.upload]),
                           W.HBox([self.kind, self.strength, self.noise]),
                           W.HBox([self.left, self.right, self.amount]),
                           W.HBox([self.zoom, self.zoom_x, self.zoom_y])])  # fmt: skip
        self.widget = W.VBox([controls, self.position, self.view, self.readout, self.error])

    # -- state changes ------------------------------------------------------------------
    def _on_kind(self, _change):
        self._quiet = True
        try:
            self._set_strength_slider()
        finally:
            self._quiet = False
        self.recompute()

    def _set_strength_slider(self):
        param, lo, hi, step, default = STRENGTH[self.kind.value]
        with self.strength.hold_trait_notifications():
            self.strength.min, self.strength.max = lo, hi
            self.strength.step, self.strength.value = step, default
        self.strength.description = {"sigma": "σ", "length": "length", "radius": "radius"}[param]

    def _on_upload(self, change):
        files = change["new"]
        if not files:
            return
        item = files[0] if isinstance(files, list | tuple) else next(iter(files.values()))
        name = item.get("name", "upload")
        content = bytes(item["content"])
        try:
            if not content:
                raise ValueError("the file is empty")
            with Image.open(io.BytesIO(content)) as im:
                im.load()
                # upright as the camera meant it (phone photos store the rotation in EXIF)
                self.uploaded = center_crop(pil_to_array(ImageOps.exif_transpose(im)), self.size)
        except Exception as err:  # any unreadable upload: say so, keep the current image
            reason = err if isinstance(err, ValueError) else _reading_failure(err)
            self.error.value = f"<b style='color:#c0392b'>{name}: cannot use it ({reason})</b>"
            return
        self.error.value = ""
        if self.image_choice.value == UPLOAD:
            self.recompute()
        else:
            self.image_choice.value = UPLOAD  # triggers recompute

    def recompute(self):
        """Re-degrade the image and run every model once; cache the outputs."""
        choice = self.image_choice.value
        if choice == UPLOAD and self.uploaded is None:
            self.error.value = "choose a file with the upload button"
            return
        self.error.value = ""  # a message about an earlier choice no longer applies
        if choice == UPLOAD:
            sharp, already_blurred = self.uploaded, False
        else:
            sharp, already_blurred = load_choice(choice, self.size)
        if already_blurred:
            degraded, sharp = sharp, None
        else:
            param = STRENGTH[self.kind.value][0]
            params = {param: float(self.strength.value), **FIXED.get(self.kind.value, {})}
            spec = DegradationSpec(self.kind.value, params, float(self.noise.value))
            degraded, _ = degrade(sharp, spec, np.random.default_rng(self.seed))
        state = PanelState(sharp=sharp, degraded=degraded)
        for name, model in self.models.items():
            start = time.perf_counter()
            state.outputs[name] = sharpen(model, degraded)
            state.latency_ms[name] = 1e3 * (time.perf_counter() - start)
        self.state = state
        self.rescore()

    def rescore(self):
        """Scores for the current amount, then the view (no inference)."""
        if self.state is None:
            return
        self.state.scores_html = self._scores_html()
        self.render()

    def side(self, name: str) -> np.ndarray:
        s = self.state
        if name == "degraded":
            return s.degraded
        if name == "ground truth":
            return s.sharp if s.sharp is not None else np.zeros_like(s.degraded)
        return apply_amount(s.degraded, s.outputs[name], self.amount.value)

    def render(self):
        """Compose the swipe view from cached images (no inference)."""
        if self.state is None:
            return
        left, right = self.side(self.left.value), self.side(self.right.value)
        if self.zoom.value:
            from pixel_utils.report.viz import zoom

            centre = (self.zoom_y.value, self.zoom_x.value)
            left, right = zoom(left, centre, 128), zoom(right, centre, 128)
            left, right = (np.repeat(np.repeat(im, 4, 0), 4, 1) for im in (left, right))
        self.view.value = png_bytes(swipe(left, right, self.position.value))
        self.readout.value = self.state.scores_html

    def _scores_html(self) -> str:
        s = self.state
        rows = []
        for name in ["degraded", *self.models]:
            image = self.side(name)
            if s.sharp is not None:
                similarity = ssim(image, s.sharp)
                # SSIM's 7-pixel window does not fit an image smaller than that
                shown = f"{similarity:.3f}" if np.isfinite(similarity) else "n/a (under 7 px)"
                q = f"{psnr(image, s.sharp):.2f} dB · SSIM {shown}"
            else:
                q = "no ground truth"
            t = f" · {s.latency_ms[name]:.0f} ms" if name in s.latency_ms else ""
            rows.append(f"<b>{name}</b>: {q}{t}")
        return "<br>".join(rows)


def static_swipe(left: np.ndarray, right: np.ndarray, frames: int = 11,
                 labels: tuple[str, str] = ("left", "right")) -> W.Widget:  # fmt: skip
    """A swipe comparison that works without a kernel: ``frames`` pre-rendered positions in a
    ``Stack`` whose visible page follows a slider through a browser-side ``jslink``."""
    if frames < 2:
        raise ValueError(f"static_swipe needs at least 2 frames (both ends), got {frames}")
    pages = [
        W.Image(value=png_bytes(swipe(left, right, i / (frames - 1))), format="png",
                layout=W.Layout(width=f"{min(left.shape[1], 512)}px"))
        for i in range(frames)
    ]  # fmt: skip
    stack = W.Stack(pages, selected_index=frames // 2)
    slider = W.IntSlider(value=frames // 2, min=0, max=frames - 1, readout=False,
                         description=f"{labels[0]} ⇆ {labels[1]}",
                         style={"description_width": "initial"})  # fmt: skip
    W.jslink((slider, "value"), (stack, "selected_index"))
    return W.VBox([slider, stack])


def side_by_side(frames: dict[str, np.ndarray], index: int, gap: int = 4) -> np.ndarray:
    """Frame ``index`` of every clip in ``frames`` (name → ``T×H×W×3`` uint8) next to each
    other, separated by a white gap."""
    tiles = [clip[index] for clip in frames.values()]
    h = tiles[0].shape[0]
    spacer = np.full((h, gap, 3), 255, np.uint8)
    row = [t for tile in tiles for t in (tile, spacer)][:-1]
    return np.concatenate(row, axis=1)


def frame_player(frames: dict[str, np.ndarray], fps: float = 8.0, width: int = 1024) -> W.Widget:
    """A video player that works without a kernel: every frame of every clip side by side,
    pre-rendered as JPEG pages of a ``Stack`` whose visible page follows a frame slider and a
    play button, both linked in the browser (``jslink``). Works in JupyterLab and in the
    exported HTML report alike."""
    count = len(next(iter(frames.values())))
    pages = []
    for t in range(count):
        buffer = io.BytesIO()
        Image.fromarray(side_by_side(frames, t)).save(buffer, format="JPEG", quality=88)
        pages.append(W.Image(value=buffer.getvalue(), format="jpeg",
                             layout=W.Layout(width=f"{width}px")))  # fmt: skip
    stack = W.Stack(pages, selected_index=0)
    slider = W.IntSlider(value=0, min=0, max=count - 1, description="frame")
    play = W.Play(value=0, min=0, max=count - 1, interval=int(1000 / fps), repeat=True)
    W.jslink((play, "value"), (slider, "value"))
    W.jslink((slider, "value"), (stack, "selected_index"))
    names = "".join(f"<div style='flex:1;text-align:center'><b>{n}</b></div>" for n in frames)
    header = W.HTML(f"<div style='display:flex;width:{width}px'>{names}</div>")
    return W.VBox([W.HBox([play, slider]), header, stack])
