"""`python -m pixel_utils.evaluation.generalisation`: scores on a user's folder, and the
mistakes a user can make with it."""

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixel_utils.evaluation.generalisation import main


def _photos(folder, n=2, size=(70, 80), seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray((rng.random((*size, 3)) * 255).astype(np.uint8)).save(folder / f"p{i}.png")
    return folder


def _run(*args):
    return main([*map(str, args), "--cases", "gauss3", "--crop", "64"])


def test_scores_a_folder_and_rescores_a_photo_edited_under_the_same_name(tmp_path, checkpoint):
    photos, out = _photos(tmp_path / "photos"), tmp_path / "scores"
    assert _run(photos, "--models", checkpoint, "--out", out) == 0
    first = json.loads((out / "scores.json").read_text())
    assert first["photos"] == 2 and set(first["per_case"]["gauss3"]) == {"blurred", "tiny"}
    (out / ".scored-set").unlink()  # as a run before the mark left it: its manifest suffices
    degraded = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    assert degraded
    assert _run(photos, "--models", checkpoint, "--out", out) == 0  # reused: the same scores
    assert json.loads((out / "scores.json").read_text())["per_case"] == first["per_case"]
    assert {p: p.stat().st_mtime_ns for p in degraded} == degraded  # the set was not rebuilt
    _photos(photos, n=1, seed=9)  # p0.png replaced by other pixels
    assert _run(photos, "--models", checkpoint, "--out", out) == 0
    edited = json.loads((out / "scores.json").read_text())["per_case"]["gauss3"]["blurred"]
    assert edited["psnr"] != first["per_case"]["gauss3"]["blurred"]["psnr"]


def test_only_the_first_photos_are_read_with_max_photos(tmp_path, checkpoint):
    photos = _photos(tmp_path / "photos", n=3)
    (photos / "z_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")  # after the first two
    out = tmp_path / "scores"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert _run(photos, "--models", checkpoint, "--out", out, "--max-photos", "2") == 0
    assert json.loads((out / "scores.json").read_text())["photos"] == 2
    assert not [w for w in caught if "z_corrupt" in str(w.message)]  # never read


def test_user_mistakes_get_one_error_line_and_touch_nothing(
    tmp_path, checkpoint, capsys, monkeypatch
):
    monkeypatch.setenv("PIXEL_ROOT", str(tmp_path / "root"))  # where default outputs would go
    photos = _photos(tmp_path / "photos")
    mine = tmp_path / "mine"
    (mine / "sharp").mkdir(parents=True)
    (mine / "scores.json").write_text("my own notes")
    (tmp_path / "a_file").write_text("x")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"junk")
    twin = tmp_path / "other" / "tiny.pt"
    twin.parent.mkdir()
    shutil.copy(checkpoint, twin)
    cases = {
        "inside the photo folder": (photos, "--models", checkpoint, "--out", photos / "s"),
        "holds files that are not a scored set": (photos, "--models", checkpoint, "--out", mine),
        "exists and is not a folder": (
            photos,
            "--models",
            checkpoint,
            "--out",
            tmp_path / "a_file",
        ),  # fmt: skip
        "not a readable ONNX model": (photos, "--models", junk, "--out", tmp_path / "o1"),
        "would be called ['tiny']": (
            photos,
            "--models",
            f"{checkpoint},{twin}",
            "--out",
            tmp_path / "o2",
        ),  # fmt: skip
        "folder does not exist": (tmp_path / "nope", "--models", checkpoint),
        "unknown blur kind 'blob'": (
            photos,
            "--models",
            checkpoint,
            "--out",
            tmp_path / "o4",
            "--blur",
            "blob:size=3",
        ),  # fmt: skip
        "defocus needs radius=...": (
            photos,
            "--models",
            checkpoint,
            "--out",
            tmp_path / "o5",
            "--blur",
            "defocus:noise=0.02",
        ),  # fmt: skip
        "a case given twice": (
            photos,
            "--models",
            checkpoint,
            "--out",
            tmp_path / "o6",
            "--blur",
            "defocus:radius=2",
            "--blur",
            "defocus:radius=2.0",
        ),  # fmt: skip
        "unknown case(s) ['nope']": (
            photos,
            "--models",
            checkpoint,
            "--out",
            tmp_path / "o3",
            "--cases",
            "nope",
        ),  # fmt: skip
    }
    for expected, args in cases.items():
        assert main(list(map(str, args))) == 2, expected
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err, (expected, err)
    assert (mine / "scores.json").read_text() == "my own notes"
    assert not (tmp_path / "root").exists()  # no output folder made for a run that failed
    assert sorted(p.name for p in photos.iterdir()) == ["p0.png", "p1.png"]
    for bad in (["--crop", "8"], ["--max-photos", "0"]):
        with pytest.raises(SystemExit):
            main([str(photos), "--models", checkpoint, *bad])
    # A space after a comma is not part of a case's name.
    out = tmp_path / "spaced"
    assert main([str(photos), "--models", checkpoint, "--out", str(out), "--crop", "64",
                 "--cases", "gauss3, gauss1"]) == 0  # fmt: skip
    assert set(json.loads((out / "scores.json").read_text())["per_case"]) == {"gauss1", "gauss3"}


def test_the_default_output_is_named_after_the_folder_itself(tmp_path, monkeypatch):
    from pixel_utils.evaluation.generalisation import default_out

    monkeypatch.setenv("PIXEL_ROOT", str(tmp_path / "root"))
    monkeypatch.chdir(_photos(tmp_path / "holiday"))
    assert default_out(Path(".")) == tmp_path / "root" / "data" / "folders" / "holiday"


def test_skipped_photos_are_one_warning_without_source_lines(tmp_path, checkpoint, capsys):
    # Python's warning format printed the file, line and source line of the package code.
    photos = _photos(tmp_path / "photos")
    (photos / "broken.png").write_bytes(b"not a png")
    assert _run(photos, "--models", checkpoint, "--out", tmp_path / "scores") == 0
    err = capsys.readouterr().err
    assert "warning: skipped 1 unusable image(s):" in err and "broken.png" in err
    assert "UserWarning" not in err and "warnings.warn" not in err


def test_blurs_of_ones_own_are_scored_as_cases(tmp_path, checkpoint):
    """``--blur`` scores kernels the benchmark does not have, alone or beside named cases, and
    its parameters (noise included) reach the degraded photos."""
    from pixel_utils.evaluation.generalisation import parse_blur

    photos = _photos(tmp_path / "photos")
    out = tmp_path / "own"
    blurs = ["--blur", "defocus:radius=6", "--blur", "gaussian:sigma=4, noise=0.03"]
    assert main([str(photos), "--models", checkpoint, "--out", str(out), "--crop", "64",
                 *blurs]) == 0  # fmt: skip
    scores = json.loads((out / "scores.json").read_text())["per_case"]
    assert set(scores) == {"defocus_radius6_noise0.01", "gaussian_sigma4_noise0.03"}
    manifest = json.loads((out / "manifest.json").read_text())["settings"]["cases"]
    assert [(c["blur_kind"], c["blur_params"], c["noise_sigma"]) for c in manifest] == [
        ("defocus", {"radius": 6.0}, 0.01), ("gaussian", {"sigma": 4.0}, 0.03)]  # fmt: skip
    both = tmp_path / "both"
    assert main([str(photos), "--models", checkpoint, "--out", str(both), "--crop", "64",
                 "--cases", "gauss3", *blurs[:2]]) == 0  # fmt: skip
    assert set(json.loads((both / "scores.json").read_text())["per_case"]) == {
        "gauss3", "defocus_radius6_noise0.01"}  # fmt: skip
    shake = parse_blur("camera_shake:size=21,seed=4242,jpeg=40")
    assert shake.spec.blur_params == {"size": 21.0, "seed": 4242}
    assert (
        shake.spec.jpeg_quality == 40
        and shake.label == "camera_shake size=21, noise 0.010, JPEG q40"
    )
    for bad, says in {
        "defocus:radius=-1": "must be positive",
        "defocus:radius=x": "is not a number",
        "defocus:r=1": "NAME one of radius, noise, jpeg",
        "gaussian:sigma=40": "at most 129 pixels wide",
        "gaussian:sigma=1,noise=2": "outside 0–0.5",
        "gaussian:sigma=1,jpeg=3.5": "not a JPEG quality",
        "camera_shake:size=5,seed=-1": "not a whole number",
        "gaussian:sigma=inf": "not a finite number",
    }.items():
        with pytest.raises(ValueError, match=says):
            parse_blur(bad)


def test_photos_made_worse_are_counted_per_case_and_model(tmp_path, capsys):
    """A mean gain can hide harm: each model's photos scored below the degraded input are
    counted, for the summary and the printed table."""
    import torch

    from pixel_utils.evaluation.generalisation import evaluate_folder

    class Scaled(torch.nn.Module):  # a "sharpener" that only scales the image
        def __init__(self, factor):
            super().__init__()
            self.factor = torch.nn.Parameter(torch.tensor(factor), requires_grad=False)

        def forward(self, x):
            return x * self.factor

    photos = _photos(tmp_path / "photos", n=3)
    result = evaluate_folder({"same": Scaled(1.0), "darker": Scaled(0.5)}, photos,
                             ("gauss3",), 64, tmp_path / "out")  # fmt: skip
    row = result["per_case"]["gauss3"]
    assert row["same"]["photos_worse"] == 0 and row["darker"]["photos_worse"] == 3
    assert "photos_worse" not in row["blurred"]
