"""``pixel-sharpen --adapt``: the student specialised to its inputs on the teacher's labels."""

import hashlib

import numpy as np
import pytest
from PIL import Image

from pixel_utils.app import adapt
from pixel_utils.app.cli import main
from pixel_utils.app.video import write_video
from pixel_utils.data.images import read_image_file


def _smooth_photos(folder, count=2, shape=(56, 72)):
    rng = np.random.default_rng(1)
    folder.mkdir()
    for k in range(count):
        small = rng.random((shape[0] // 8, shape[1] // 8, 3))
        big = np.kron(small, np.ones((8, 8, 1)))  # blocky, then softened by JPEG-free resizing
        image = Image.fromarray((big * 255).astype(np.uint8)).resize(shape[::-1], Image.BILINEAR)
        image.save(folder / f"photo{k}.png")


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def test_adapt_fine_tunes_a_pytorch_student_before_sharpening(tmp_path, checkpoint, capsys):
    src = tmp_path / "in"
    _smooth_photos(src)
    before = _digests(src)
    assert main([str(src), "-o", str(tmp_path / "plain"), "--model", checkpoint]) == 0
    capsys.readouterr()
    assert main([str(src), "-o", str(tmp_path / "adapted"), "--model", checkpoint,
                 "--adapt", "4"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "adapting the student to 2 crop(s)" in err and "4 steps" in err
    assert _digests(src) == before  # the inputs are only read
    for name in before:
        plain = read_image_file(tmp_path / "plain" / name).rgb
        adapted = read_image_file(tmp_path / "adapted" / name).rgb
        assert plain.shape == adapted.shape
        assert np.abs(plain - adapted).max() > 1 / 255  # another student sharpened it


def test_adapt_keeps_an_int8_student_in_int8(tmp_path, monkeypatch, capsys):
    from pixel_utils.app.onnx_export import OnnxModel

    src = tmp_path / "in"
    _smooth_photos(src, count=1)
    served = []
    real = adapt.adapt_served_model

    def recording(*args):
        import onnx

        model = real(*args)  # its graph lives in a folder the CLI removes when it is done
        ops = [node.op_type for node in onnx.load(str(model.path)).graph.node]
        served.append((model, ops))
        return model

    monkeypatch.setattr("pixel_utils.app.cli.adapt_served_model", recording)
    assert main([str(src), "-o", str(tmp_path / "out"), "--adapt", "2"]) == 0
    assert (tmp_path / "out" / "photo0.png").exists()
    # Served as it was before adapting: an int8 graph (quantised convolutions), of its own.
    model, ops = served[0]
    assert isinstance(model, OnnxModel) and model.path.name == "adapted_student_int8.onnx"
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > ops.count("Conv") > 0


@pytest.mark.parametrize(
    ("model", "message"),
    [("teacher", "is a teacher"), ("onnx", "not a PyTorch checkpoint")],
)
def test_adapt_refuses_what_it_cannot_fine_tune(tmp_path, model, message, capsys):
    src = tmp_path / "in"
    _smooth_photos(src, count=1)
    if model == "onnx":
        model = str(tmp_path / "mine.onnx")
        assert main(["export", "--onnx", model]) == 0
    code = main([str(src), "-o", str(tmp_path / "out"), "--model", model, "--adapt", "2"])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_samples_spread_over_the_inputs_take_video_frames_and_skip_unreadable_files(tmp_path):
    _smooth_photos(tmp_path / "many", count=10, shape=(40, 48))
    photos = sorted((tmp_path / "many").iterdir())
    crops, notes = adapt.samples_of(photos, count=4)
    assert len(crops) == 4 and not notes
    assert all(c.shape == (40, 48, 3) and c.dtype == np.float32 for c in crops)
    first, last = read_image_file(photos[0]).rgb, read_image_file(photos[-1]).rgb
    assert np.array_equal(crops[0], first) and np.array_equal(crops[-1], last)

    frames = [np.full((32, 48, 3), 2 * i, np.uint8) for i in range(2 * adapt.FRAME_GAP + 20)]
    clip = write_video(tmp_path / "clip.mp4", frames, fps=24)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    crops, notes = adapt.samples_of([broken, clip], count=4)
    assert len(notes) == 1 and "broken.png" in notes[0]
    assert len(crops) == 2  # frames 0 and 40: the start of each half of the 80-frame clip
    assert [round(255 * c.mean() / 2) for c in crops] == pytest.approx([0, 40], abs=2)


def test_samples_are_centre_crops_that_keep_small_images_whole(tmp_path):
    _smooth_photos(tmp_path / "big", count=1, shape=(500, 300))
    _smooth_photos(tmp_path / "small", count=1, shape=(100, 300))
    big = next((tmp_path / "big").iterdir())
    crops, _ = adapt.samples_of([big, next((tmp_path / "small").iterdir())])
    assert crops[0].shape == (adapt.LABEL_CROP, 300, 3)
    assert crops[1].shape == (100, 300, 3)
    top = (500 - adapt.LABEL_CROP) // 2
    assert np.array_equal(crops[0], read_image_file(big).rgb[top : top + adapt.LABEL_CROP])
