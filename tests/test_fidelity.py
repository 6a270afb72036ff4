"""TIFFs through :func:`read_image_file` / :func:`write_image_file`: bit depth, grey-ness,
alpha and orientation survive (Pillow alone reads 16-bit RGB TIFFs as 8-bit)."""

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

from pixel_utils.data.images import ImageReadError, read_image_file, write_image_file


def _round_trip(tmp_path, array, **kw):
    tifffile.imwrite(tmp_path / "in.tif", array, **kw)
    image = read_image_file(tmp_path / "in.tif")
    write_image_file(tmp_path / "out.tif", image.rgb, image)
    return image, tifffile.imread(tmp_path / "out.tif")


def test_16_bit_rgb_tiff_keeps_every_bit(tmp_path):
    deep = (np.random.default_rng(0).random((23, 31, 3)) * 65535).astype(np.uint16)
    image, back = _round_trip(tmp_path, deep, photometric="rgb")
    assert (image.bits, image.grey, image.alpha, image.format) == (16, False, None, "TIFF")
    assert np.array_equal(np.round(image.rgb * 65535).astype(np.uint16), deep)
    assert back.dtype == np.uint16 and np.array_equal(back, deep)


def test_16_bit_planar_tiff_is_read_like_a_contiguous_one(tmp_path):
    deep = (np.random.default_rng(1).random((3, 12, 17)) * 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "planar.tif", deep, photometric="rgb", planarconfig="separate")
    image = read_image_file(tmp_path / "planar.tif")
    assert image.bits == 16 and image.rgb.shape == (12, 17, 3)
    assert np.array_equal(np.round(image.rgb * 65535).astype(np.uint16), np.moveaxis(deep, 0, 2))


def test_16_bit_grey_and_alpha_tiffs(tmp_path):
    rng = np.random.default_rng(2)
    grey = (rng.random((14, 19)) * 65535).astype(np.uint16)
    image, back = _round_trip(tmp_path, grey, photometric="minisblack")
    assert image.grey and image.bits == 16 and image.rgb.shape == (14, 19, 3)
    assert back.shape == grey.shape and back.dtype == np.uint16 and np.array_equal(back, grey)
    grey_alpha = (rng.random((14, 19, 2)) * 65535).astype(np.uint16)
    image, back = _round_trip(tmp_path, grey_alpha, photometric="minisblack",
                              planarconfig="contig", extrasamples=("unassalpha",))  # fmt: skip
    assert image.grey and image.alpha is not None
    assert back.shape == (14, 19, 2) and np.array_equal(back, grey_alpha)
    rgba = (rng.random((14, 19, 4)) * 65535).astype(np.uint16)
    image, back = _round_trip(tmp_path, rgba, photometric="rgb", extrasamples=("unassalpha",))
    assert not image.grey and image.alpha is not None
    assert back.shape == (14, 19, 4) and np.array_equal(back, rgba)
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        assert tif.pages.first.extrasamples == (tifffile.EXTRASAMPLE.UNASSALPHA,)


def test_8_bit_tiff_stays_8_bit_and_agrees_with_pillow(tmp_path):
    rgb = (np.random.default_rng(3).random((9, 13, 3)) * 255).astype(np.uint8)
    image, back = _round_trip(tmp_path, rgb, photometric="rgb")
    assert image.bits == 8 and back.dtype == np.uint8 and np.array_equal(back, rgb)
    with Image.open(tmp_path / "in.tif") as im:
        assert np.array_equal(image.rgb, np.asarray(im, np.float32) / 255.0)
    with Image.open(tmp_path / "out.tif") as im:  # the written file is an ordinary TIFF
        assert im.mode == "RGB" and np.array_equal(np.asarray(im), rgb)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_tiff_orientation_is_applied_like_pillow(tmp_path, orientation):
    rgb = (np.random.default_rng(4).random((7, 5, 3)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "o.tif", rgb, photometric="rgb",
                     extratags=[(274, "H", 1, orientation, False)])  # fmt: skip
    image = read_image_file(tmp_path / "o.tif")
    with Image.open(tmp_path / "o.tif") as im:
        expected = np.asarray(ImageOps.exif_transpose(im), np.float32) / 255.0
    assert image.rgb.shape == expected.shape and np.array_equal(image.rgb, expected)


def test_tiffs_tifffile_leaves_alone_still_read_through_pillow(tmp_path):
    rgb = (np.random.default_rng(5).random((9, 13, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "lzw.tif", compression="tiff_lzw")  # needs imagecodecs
    image = read_image_file(tmp_path / "lzw.tif")
    assert image.bits == 8 and np.array_equal(image.rgb, rgb / np.float32(255))
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.tif")
    assert read_image_file(tmp_path / "palette.tif").rgb.shape == (9, 13, 3)


def test_truncated_tiff_is_named(tmp_path):
    deep = (np.random.default_rng(6).random((40, 50, 3)) * 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "full.tif", deep, photometric="rgb")
    data = (tmp_path / "full.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cut.tif: corrupt or truncated"):
        read_image_file(tmp_path / "cut.tif")
    (tmp_path / "header.tif").write_bytes(data[:100])
    with pytest.raises(ImageReadError, match="header.tif"):
        read_image_file(tmp_path / "header.tif")


def test_tiffs_no_reader_takes_are_named_with_what_is_wrong(tmp_path):
    # A TIFF header without an image made tifffile raise IndexError, which stopped a batch.
    (tmp_path / "empty_ifd.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(ImageReadError, match="empty_ifd.tif: corrupt or truncated image"):
        read_image_file(tmp_path / "empty_ifd.tif")
    # A float TIFF is a valid file this reader does not take: say which layout it is.
    tifffile.imwrite(tmp_path / "float.tif", np.zeros((8, 9, 3), np.float32), photometric="rgb")
    with pytest.raises(ImageReadError, match=r"float.tif: unsupported TIFF layout \(float32"):
        read_image_file(tmp_path / "float.tif")


def test_a_decoder_failure_of_any_kind_becomes_an_image_read_error(tmp_path, monkeypatch):
    import pixel_utils.data.images as images

    def decoder_bug(path):
        raise KeyError("a malformed chunk")

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "x.png")
    monkeypatch.setattr(images, "_read_png16", decoder_bug)
    with pytest.raises(ImageReadError, match=r"x.png: corrupt or unreadable image \(KeyError"):
        read_image_file(tmp_path / "x.png")
