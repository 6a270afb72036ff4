"""The comparison panel, driven headlessly the way the browser drives it: by setting values."""

import datetime
import io

import numpy as np
import pytest
import torch
from PIL import Image

from pixel_utils.models.networks import build_model
from pixel_utils.report.widgets import REAL_BLUR, UPLOAD, ComparisonPanel, static_swipe, swipe


class Counting(torch.nn.Module):
    """Wraps a model and counts forward passes."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, x):
        self.calls += 1
        return self.model(x)


@pytest.fixture
def panel():
    counted = Counting(build_model("unshuffle", scale=4, channels=8, blocks=1)).eval()
    return ComparisonPanel({"student": counted}, size=64), counted


def test_swipe_moves_cost_no_inference(panel):
    panel, model = panel
    before, image = model.calls, panel.view.value
    panel.position.value = 0.1
    panel.zoom.value = True
    panel.zoom_x.value = 0.2
    assert model.calls == before
    assert panel.view.value != image


def test_blur_change_reruns_each_model_once(panel):
    panel, model = panel
    before = model.calls
    panel.strength.value = 3.0
    assert model.calls == before + 1
    panel.kind.value = "motion_linear"
    assert model.calls == before + 2
    assert "dB" in panel.readout.value and "ms" in panel.readout.value


def test_real_blur_photo_has_no_ground_truth(panel):
    panel, _ = panel
    panel.image_choice.value = REAL_BLUR
    assert panel.state.sharp is None
    assert "no ground truth" in panel.readout.value


def _upload(name: str, content: bytes) -> dict:
    """A FileUpload value entry, as the browser sends it."""
    return {"name": name, "type": "image/png", "size": len(content),
            "content": memoryview(content),
            "last_modified": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)}  # fmt: skip


def test_upload_good_and_bad_files(panel):
    panel, _ = panel
    buffer = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((80, 90, 3)) * 255).astype(np.uint8)).save(
        buffer, format="PNG"
    )
    panel.upload.value = (_upload("mine.png", buffer.getvalue()),)
    assert panel.image_choice.value == UPLOAD and panel.state.degraded.shape == (64, 64, 3)
    panel.upload.value = (_upload("broken.png", b"not an image"),)
    assert "broken.png" in panel.error.value
    assert panel.state.degraded.shape == (64, 64, 3)  # the previous image stays


def test_unusable_uploads_say_why_and_a_stale_message_is_cleared(panel):
    panel, _ = panel
    panel.image_choice.value = UPLOAD  # no file yet
    assert "choose a file" in panel.error.value
    panel.image_choice.value = REAL_BLUR
    assert panel.error.value == ""  # the message was about the earlier choice
    for name, content, why in (
        ("empty.png", b"", "the file is empty"),
        ("text.png", b"not an image", "not a recognised image format"),
    ):
        panel.upload.value = (_upload(name, content),)
        assert name in panel.error.value and why in panel.error.value, panel.error.value
        assert "BytesIO" not in panel.error.value
    assert panel.uploaded is None  # none of them replaced the image
    buffer = io.BytesIO()
    Image.fromarray(np.full((3, 5, 3), 128, np.uint8)).save(buffer, format="PNG")
    panel.upload.value = (_upload("tiny.png", buffer.getvalue()),)
    assert panel.error.value == "" and "nan" not in panel.readout.value
    assert "SSIM n/a (under 7 px)" in panel.readout.value


def test_swipe_composition_and_static_swipe():
    left, right = np.zeros((8, 10, 3), np.float32), np.ones((8, 10, 3), np.float32)
    out = swipe(left, right, 0.5)
    assert out[:, :4].max() == 0 and out[:, 6:].min() == 1
    widget = static_swipe(left, right, frames=3)
    slider, stack = widget.children
    assert len(stack.children) == 3 and stack.selected_index == slider.value == 1
    with pytest.raises(ValueError, match="at least 2 frames"):
        static_swipe(left, right, frames=1)


def test_upload_matrix_of_odd_files(panel, tmp_path):
    from tests.test_robustness import _matrix

    panel, _ = panel
    for name, expected in _matrix(tmp_path).items():
        panel.upload.value = (_upload(name, (tmp_path / name).read_bytes()),)
        if expected == "ok":
            assert panel.error.value == "", name
            assert panel.image_choice.value == UPLOAD and panel.state.degraded.ndim == 3, name
            # This file's own picture, not the one before it: its size, cropped to the panel's.
            with Image.open(tmp_path / name) as im:
                w, h = im.size
            size = (min(h, panel.size), min(w, panel.size))
            assert panel.uploaded.shape == (*size, 3), name
            assert panel.state.degraded.shape[:2] == size, name
        else:
            assert name in panel.error.value, name


def test_upload_is_turned_upright_by_its_exif_orientation(panel):
    panel, _ = panel
    stored = np.zeros((120, 200, 3), np.uint8)
    stored[:60] = 255  # the top half as stored is white
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display (a phone held upright)
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, format="PNG", exif=exif)
    panel.upload.value = (_upload("phone.png", buffer.getvalue()),)
    assert panel.error.value == ""
    upright = panel.uploaded  # the stored top edge is now the right edge
    assert upright[:, :28].max() < 0.1 and upright[:, 36:].min() > 0.9


def test_amount_scales_each_models_correction_without_inference(panel):
    panel, model = panel
    before, scores = model.calls, panel.readout.value
    output = panel.state.outputs["student"]
    panel.amount.value = 0.0
    assert np.array_equal(panel.side("student"), panel.state.degraded)  # none of the correction
    panel.amount.value = 0.5
    halfway = panel.state.degraded + 0.5 * (output - panel.state.degraded)
    np.testing.assert_allclose(panel.side("student"), np.clip(halfway, 0, 1), atol=1e-6)
    assert model.calls == before  # only re-composed and re-scored
    assert panel.readout.value != scores
    panel.amount.value = 1.0
    assert panel.readout.value == scores and panel.side("student") is output
