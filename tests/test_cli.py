import hashlib
import importlib
import shutil
from pathlib import Path

import numpy as np
import png
import pytest
import tifffile
from PIL import Image

from pixel_utils.app.cli import fit_tiles, main
from pixel_utils.data.images import read_image_file


def _mixed_folder(folder):
    rng = np.random.default_rng(0)
    rgb = (rng.random((30, 41, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(folder / "colour.jpg", quality=90)
    Image.fromarray(rgb[..., 0]).save(folder / "grey.png")
    Image.fromarray(
        np.dstack([rgb, np.linspace(0, 255, 41, dtype=np.uint8)[None].repeat(30, 0)])
    ).save(folder / "alpha.png")
    deep = (rng.random((30, 41, 3)) * 65535).astype(np.uint16)
    with open(folder / "deep.png", "wb") as f:
        png.Writer(41, 30, greyscale=False, bitdepth=16).write(f, deep.reshape(30, -1))
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    return rgb, deep


def _hashes(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def test_cli_on_a_mixed_folder(tmp_path, checkpoint, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    rgb, deep = _mixed_folder(src)
    before = _hashes(src)
    code = main([str(src), "-o", str(out), "--model", checkpoint])
    err = capsys.readouterr().err
    assert code == 1  # one file failed
    assert "corrupt.png" in err and "images/s" in err and "1 failed" in err
    assert sorted(p.name for p in out.iterdir()) == [
        "alpha.png",
        "colour.jpg",
        "deep.png",
        "grey.png",
    ]
    assert _hashes(src) == before  # inputs untouched
    with Image.open(out / "grey.png") as im:
        assert im.mode == "L" and im.size == (41, 30)
    with Image.open(out / "colour.jpg") as im:
        assert im.format == "JPEG" and im.mode == "RGB"
    alpha_out = read_image_file(out / "alpha.png")
    assert alpha_out.alpha is not None
    with Image.open(src / "alpha.png") as a, Image.open(out / "alpha.png") as b:
        assert np.array_equal(np.asarray(a)[..., 3], np.asarray(b)[..., 3])  # alpha passed through
    deep_out = read_image_file(out / "deep.png")
    assert deep_out.bits == 16 and not deep_out.grey
    assert len(np.unique((deep_out.rgb * 65535).round())) > 256  # really 16-bit, not 8 scaled


def test_cli_never_overwrites_without_permission(tmp_path, checkpoint, capsys):
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    before = image.read_bytes()
    assert main([str(image), "-o", str(tmp_path), "--model", checkpoint]) == 1
    assert "use --overwrite" in capsys.readouterr().err
    assert image.read_bytes() == before
    assert main([str(image), "-o", str(tmp_path), "--model", checkpoint, "--overwrite"]) == 0


def test_cli_missing_inputs_and_globs(tmp_path, checkpoint, capsys):
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "x.png")
    code = main([str(tmp_path / "nope.png"), str(tmp_path / "*.png"), "-o", str(tmp_path / "o"),
                 "--model", checkpoint])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "nope.png: file does not exist" in err
    assert (tmp_path / "o" / "x.png").exists()


def test_two_inputs_with_one_output_name_are_not_silently_merged(tmp_path, checkpoint, capsys):
    for folder, level in (("a", 40), ("b", 200)):
        (tmp_path / folder).mkdir()
        Image.fromarray(np.full((16, 16, 3), level, np.uint8)).save(tmp_path / folder / "x.png")
    a, b, out = tmp_path / "a" / "x.png", tmp_path / "b" / "x.png", tmp_path / "out"
    code = main([str(a), str(b), "-o", str(out), "--model", checkpoint, "--overwrite"])
    err = capsys.readouterr().err
    assert code == 1 and f"{b}: not writing {out / 'x.png'}: the result of {a} goes there" in err
    assert np.asarray(Image.open(out / "x.png")).mean() < 100  # a's result, not b's


def test_a_result_never_replaces_another_input(tmp_path, checkpoint, capsys):
    from pixel_utils.app.cli import plan_outputs

    clip, other = tmp_path / "clip.avi", tmp_path / "clip.mp4"  # clip.avi's result is an .mp4
    clip.write_bytes(b"x")
    other.write_bytes(b"original")
    planned, problems = plan_outputs([clip, other], tmp_path, [tmp_path])
    assert planned == [(other, other)]  # an input may be replaced by its own result only
    assert problems == [f"{clip}: not writing {other}: it is another input, {other}"]
    image = tmp_path / "p.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    code = main([str(tmp_path), "-o", str(tmp_path), "--model", checkpoint, "--overwrite"])
    assert code == 1 and "it is another input" in capsys.readouterr().err
    assert other.read_bytes() == b"original"  # not a video, so not even its own result


def test_an_output_folder_inside_the_input_folder_is_not_sharpened_again(tmp_path, checkpoint):
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "p.png")
    for _ in range(2):
        main([str(tmp_path), "-o", str(tmp_path / "out"), "--model", checkpoint, "--overwrite"])
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png")) == [
        "out/p.png", "p.png"]  # fmt: skip


def test_an_input_folder_inside_the_output_folder_is_still_scanned(tmp_path, checkpoint):
    raw = tmp_path / "photos" / "raw"
    raw.mkdir(parents=True)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(raw / "p.png")
    out = tmp_path / "photos"
    assert main([str(raw), "-o", str(out), "--model", checkpoint]) == 0  # photos/raw -o photos
    assert (out / "p.png").exists()
    (out / "p.png").unlink()
    assert main([str(raw / "*.png"), "-o", str(out), "--model", checkpoint]) == 0
    assert (out / "p.png").exists()


def test_unusable_model_files_and_output_paths_get_one_error_line(tmp_path, checkpoint, capsys):
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "p.png")
    for name, content in (("junk.onnx", b"junk"), ("empty.onnx", b"")):
        (tmp_path / name).write_bytes(content)
        assert main([str(tmp_path / "p.png"), "-o", str(tmp_path / "o"), "--model",
                     str(tmp_path / name)]) == 2  # fmt: skip
        err = capsys.readouterr().err
        assert f"{name}: not a readable ONNX model" in err and "Traceback" not in err
    assert main([str(tmp_path / "p.png"), "-o", str(tmp_path / "p.png"), "--model",
                 checkpoint]) == 2  # fmt: skip
    assert "p.png: exists and is not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "p.png"), "-o", str(tmp_path / "o"), "--quality", "-3"])
    assert "must be 1 to 100, got -3" in capsys.readouterr().err


def test_export_never_replaces_a_file_without_permission(tmp_path, checkpoint, capsys):
    victim = tmp_path / "photo.jpg"
    victim.write_bytes(b"my photo")
    assert main(["export", "--onnx", str(victim), "--model", checkpoint]) == 2
    assert "photo.jpg: exists (use --overwrite)" in capsys.readouterr().err
    assert victim.read_bytes() == b"my photo"
    assert main(["export", "--onnx", str(tmp_path), "--model", checkpoint]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["export", "--onnx", str(tmp_path / "x.onnx"), "--model", "nosuch.pt"]) == 2
    assert "nosuch.pt" in capsys.readouterr().err
    onnx_file = tmp_path / "m.onnx"
    assert main(["export", "--onnx", str(onnx_file), "--model", checkpoint]) == 0
    assert main(["export", "--onnx", str(tmp_path / "again.onnx"), "--model",
                 str(onnx_file)]) == 2  # fmt: skip
    assert "is already an ONNX graph" in capsys.readouterr().err
    assert main(["export", "--onnx", str(victim), "--model", checkpoint, "--overwrite"]) == 0
    assert victim.read_bytes() == onnx_file.read_bytes()  # the same export, written in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "photo.jpg"]  # no temp left


def test_folders_named_like_media_are_scanned_not_read_and_globs_reach_folders(tmp_path):
    from pixel_utils.app.cli import expand_inputs

    (tmp_path / "shots" / "odd.png").mkdir(parents=True)  # a folder with an image's name
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "shots" / "odd.png" / "in.png")
    files, problems, roots = expand_inputs([str(tmp_path / "sh*")])
    assert files == [tmp_path / "shots" / "odd.png" / "in.png"] and problems == []
    assert roots == [tmp_path / "shots"]  # so the result keeps its sub-folder
    files, problems, _ = expand_inputs([str(tmp_path / "none*")])
    assert files == [] and problems == [f"{tmp_path / 'none*'}: pattern matches no files"]


def test_a_glob_skips_the_output_folder_and_a_file_is_counted_once(
    tmp_path, checkpoint, monkeypatch
):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    for path in (photos / "a.png", photos / "sub" / "b.png"):
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(path)
    out = photos / "sharp"
    for _ in range(2):  # the second run must not take the first run's results as input
        code = main([str(photos / "*"), "-o", str(out), "--model", checkpoint, "--overwrite"])
        assert code == 0  # photos/* is photos/a.png and photos/sub, as a shell would give it
    assert sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*.png")) == [
        "a.png", "sharp/a.png", "sharp/b.png", "sub/b.png"]  # fmt: skip
    shutil.rmtree(out)
    monkeypatch.chdir(photos)  # a recursive glob reaches the output folder too: left out
    for _ in range(2):
        assert main(["**/*.png", "-o", "again", "--model", checkpoint, "--overwrite"]) == 0
    again = sorted(p.as_posix() for p in Path("again").rglob("*.png"))
    assert again == ["again/a.png", "again/b.png"]
    assert main(["*.png", "-o", ".", "--model", checkpoint, "--overwrite"]) == 0  # in place
    shutil.rmtree("again")
    monkeypatch.chdir(tmp_path)  # one file, two spellings: one result, no clash
    assert main(["photos/a.png", str(photos / "a.png"), "photos", "-o", "o", "--model",
                 checkpoint]) == 0  # fmt: skip
    assert sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "o").rglob("*.png")) == [
        "o/a.png", "o/sub/b.png"]  # fmt: skip


def test_tiled_cli_matches_untiled(tmp_path, checkpoint):
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((300, 420, 3)) * 255).astype(np.uint8)).save(tmp_path / "big.png")
    assert main([str(tmp_path / "big.png"), "-o", str(tmp_path / "t"), "--model", checkpoint,
                 "--tile", "256", "--overlap", "128"]) == 0  # fmt: skip
    assert main([str(tmp_path / "big.png"), "-o", str(tmp_path / "w"), "--model", checkpoint,
                 "--tile", "0"]) == 0  # fmt: skip
    a = np.asarray(Image.open(tmp_path / "t" / "big.png"), np.int16)
    b = np.asarray(Image.open(tmp_path / "w" / "big.png"), np.int16)
    assert np.abs(a - b).max() <= 1


def test_onnx_export_matches_pytorch(tmp_path, checkpoint, capsys):
    assert main(["export", "--onnx", str(tmp_path / "s.onnx"), "--model", checkpoint]) == 0
    out = capsys.readouterr().out
    diff = float(out.rsplit("difference", 1)[1])
    assert diff <= 1e-4


def test_cli_runs_an_exported_onnx_model_like_pytorch(tmp_path, checkpoint):
    onnx_file = tmp_path / "m.onnx"
    assert main(["export", "--onnx", str(onnx_file), "--model", checkpoint]) == 0
    rng = np.random.default_rng(2)
    Image.fromarray((rng.random((70, 90, 3)) * 255).astype(np.uint8)).save(tmp_path / "p.png")
    assert main([str(tmp_path / "p.png"), "-o", str(tmp_path / "a"), "--model", checkpoint]) == 0
    assert (
        main([str(tmp_path / "p.png"), "-o", str(tmp_path / "b"), "--model", str(onnx_file)]) == 0
    )
    a = np.asarray(Image.open(tmp_path / "a" / "p.png"), np.int16)
    b = np.asarray(Image.open(tmp_path / "b" / "p.png"), np.int16)
    assert np.abs(a - b).max() <= 1


def test_cli_keeps_16_bit_tiffs_16_bit(tmp_path, checkpoint):
    rng = np.random.default_rng(4)
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    deep = (rng.random((30, 41, 3)) * 65535).astype(np.uint16)
    tifffile.imwrite(src / "deep.tif", deep, photometric="rgb")
    grey = (rng.random((30, 41)) * 65535).astype(np.uint16)
    tifffile.imwrite(src / "grey.tiff", grey, photometric="minisblack")
    rgba = (rng.random((30, 41, 4)) * 65535).astype(np.uint16)
    tifffile.imwrite(src / "rgba.tif", rgba, photometric="rgb", extrasamples=("unassalpha",))
    tifffile.imwrite(src / "eight.tif", (deep >> 8).astype(np.uint8), photometric="rgb")
    assert main([str(src), "-o", str(out), "--model", checkpoint]) == 0
    result = tifffile.imread(out / "deep.tif")
    assert result.dtype == np.uint16 and result.shape == deep.shape
    assert np.any(result % 257)  # not 8-bit values stretched to 16 bits
    assert len(np.unique(result)) > 256
    assert not np.array_equal(result, deep)  # it went through the model
    with tifffile.TiffFile(out / "grey.tiff") as tif:
        page = tif.pages.first
        assert page.dtype == np.uint16 and page.shape == (30, 41)  # grey stays grey
        assert np.any(page.asarray() % 257)
    result = tifffile.imread(out / "rgba.tif")
    assert result.dtype == np.uint16 and result.shape == (30, 41, 4)
    assert np.array_equal(result[..., 3], rgba[..., 3])  # alpha passed through bit for bit
    result = tifffile.imread(out / "eight.tif")
    assert result.dtype == np.uint8 and result.shape == deep.shape


@pytest.mark.parametrize(
    "tile, overlap, stride, expected",
    [(256, 128, 4, (256, 128)), (250, 62, 4, (252, 64)), (250, 250, 8, (256, 248)),
     (0, 128, 8, (0, 128)), (3, 1, 4, (4, 0))],
)  # fmt: skip
def test_fit_tiles_rounds_up_to_the_stride(tile, overlap, stride, expected):
    assert fit_tiles(tile, overlap, stride) == expected


def test_tile_not_a_multiple_of_the_stride_is_rounded_up(tmp_path, checkpoint, capsys):
    """The tiny model has stride 4: a 250-pixel tile used to abort the whole batch."""
    rng = np.random.default_rng(1)
    for name in ("big.png", "other.png"):
        Image.fromarray((rng.random((300, 420, 3)) * 255).astype(np.uint8)).save(tmp_path / name)
    code = main([str(tmp_path / "big.png"), str(tmp_path / "other.png"), "-o", str(tmp_path / "t"),
                 "--model", checkpoint, "--tile", "250", "--overlap", "62"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    assert "rounded to --tile 252 --overlap 64" in err and "stride 4" in err
    assert main([str(tmp_path / "big.png"), "-o", str(tmp_path / "w"), "--model", checkpoint,
                 "--tile", "0"]) == 0  # fmt: skip
    a = np.asarray(Image.open(tmp_path / "t" / "big.png"), np.int16)
    b = np.asarray(Image.open(tmp_path / "w" / "big.png"), np.int16)
    assert np.abs(a - b).max() <= 1
    assert (tmp_path / "t" / "other.png").exists()


def test_small_tile_gets_a_smaller_default_overlap(tmp_path, checkpoint, capsys):
    Image.fromarray(np.zeros((70, 90, 3), np.uint8)).save(tmp_path / "p.png")
    assert main([str(tmp_path / "p.png"), "-o", str(tmp_path / "o"), "--model", checkpoint,
                 "--tile", "64"]) == 0  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "p.png"), "-o", str(tmp_path / "o2"), "--model", checkpoint,
              "--tile", "64", "--overlap", "64"])  # fmt: skip
    assert exc.value.code == 2
    assert "must be smaller than --tile" in capsys.readouterr().err


HELP_MODULES = [
    pytest.param("pixel_utils.app.cli", [[], ["export"]], id="cli"),
    *(
        pytest.param(name, [[]], id=name.rsplit(".", 1)[1])
        for name in ("pixel_utils.report.runner", "pixel_utils.training.pretrain",
                     "pixel_utils.evaluation.generalisation", "pixel_utils.app.pretrained",
                     "pixel_utils.report.readme", "pixel_utils.training.sweep")
    ),
]  # fmt: skip


@pytest.mark.parametrize("module, prefixes", HELP_MODULES)
def test_help_has_no_rst_double_back_ticks(module, prefixes, capsys):
    try:
        entry = importlib.import_module(module).main
    except ImportError as err:  # pragma: no cover - an optional module that does not import
        pytest.skip(f"{module} does not import: {err}")
    for prefix in prefixes:
        with pytest.raises(SystemExit) as exc:
            entry([*prefix, "--help"])
        assert exc.value.code == 0
        text = capsys.readouterr().out
        assert "usage:" in text
        assert "``" not in text, text


def test_packaging_metadata_installs_without_deprecation_warnings():
    """SPDX ``license = "MIT"`` (setuptools >= 77), not the deprecated TOML table."""
    import tomllib
    import warnings
    from pathlib import Path

    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    config = tomllib.loads(pyproject.read_text())
    assert config["project"]["license"] == "MIT"
    assert "setuptools>=77" in config["build-system"]["requires"]
    assert "tifffile" in config["project"]["dependencies"]  # 16-bit TIFFs depend on it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        apply_configuration(Distribution(), pyproject)
    assert not [w for w in caught if "license" in str(w.message).lower()]


def test_a_multi_page_file_says_only_its_first_page_is_sharpened(tmp_path, checkpoint, capsys):
    import tifffile

    tifffile.imwrite(tmp_path / "m.tif", np.zeros((3, 16, 16), np.uint8), photometric="minisblack")
    assert main([str(tmp_path / "m.tif"), "-o", str(tmp_path / "o"), "--model", checkpoint]) == 0
    assert "m.tif: 3 pages or frames; only the first is sharpened" in capsys.readouterr().err


def test_a_folder_scan_says_which_readable_files_it_leaves_out(tmp_path, checkpoint, capsys):
    # GIFs (and other formats Pillow reads) in a folder were skipped without a word, though
    # named one by one they are sharpened.
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(src / "p.png")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(src / "sub" / "anim.gif")
    (src / "notes.txt").write_text("not an image")  # not readable as one: no note
    (src / "scan.pdf").write_bytes(b"%PDF-1.4")  # Pillow writes PDFs but cannot read them
    assert main([str(src), "-o", str(out), "--model", checkpoint]) == 0
    err = capsys.readouterr().err
    assert f"note: {src}: left out 1 file(s)" in err and "(anim.gif)" in err
    assert "notes.txt" not in err and "scan.pdf" not in err
    assert sorted(p.name for p in out.rglob("*.*")) == ["p.png"]
    assert main([str(src / "sub" / "anim.gif"), "-o", str(out), "--model", checkpoint]) == 0
    assert (out / "anim.gif").exists() and "left out" not in capsys.readouterr().err


def test_amount_scales_the_models_correction_and_is_checked(tmp_path, checkpoint, capsys):
    pixels = (np.random.default_rng(5).random((40, 52, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "p.png")
    out = {}
    for amount in (None, "0", "0.5", "1"):
        folder = tmp_path / str(amount)
        extra = [] if amount is None else ["--amount", amount]
        assert main([str(tmp_path / "p.png"), "-o", str(folder), "--model", checkpoint,
                     *extra]) == 0  # fmt: skip
        out[amount] = np.asarray(Image.open(folder / "p.png"), np.int16)
    assert not np.array_equal(out[None], pixels)  # the (untrained) model changes the photo
    assert np.array_equal(out["1"], out[None])  # the default
    assert np.array_equal(out["0"], pixels)  # none of its correction
    assert np.abs(out["0.5"] - (pixels + out[None]) / 2).max() <= 0.5  # half of it, rounded
    for bad in ("2.5", "-0.1", "nan", "lots"):
        with pytest.raises(SystemExit) as stopped:
            main([str(tmp_path / "p.png"), "-o", str(tmp_path / "x"), "--amount", bad])
        assert stopped.value.code == 2 and "--amount" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
