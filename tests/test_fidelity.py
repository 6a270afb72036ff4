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

    def decoder_bug(path, *rest):
        raise KeyError("a malformed chunk")

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "x.png")
    monkeypatch.setattr(images, "_read_png16", decoder_bug)
    with pytest.raises(ImageReadError, match=r"x.png: corrupt or unreadable image \(KeyError"):
        read_image_file(tmp_path / "x.png")


def _png_with_exif_orientation(path, image16, orientation):
    """A 16-bit RGB PNG (pypng) carrying an eXIf chunk with ``orientation``."""
    import struct
    import zlib

    import png

    h, w, _ = image16.shape
    with open(path, "wb") as f:
        png.Writer(w, h, greyscale=False, bitdepth=16).write(f, image16.reshape(h, -1))
    exif = Image.Exif()
    exif[0x0112] = orientation
    body = exif.tobytes()[len(b"Exif\x00\x00") :]
    chunk = b"eXIf" + body
    chunk = struct.pack(">I", len(body)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    data = path.read_bytes()
    cut = data.index(b"IDAT") - 4  # the eXIf chunk goes before the image data
    path.write_bytes(data[:cut] + chunk + data[cut:])
    return path


def test_a_16_bit_png_is_turned_upright_by_its_exif_orientation(tmp_path):
    image16 = np.random.default_rng(0).integers(0, 65536, (6, 10, 3)).astype(np.uint16)
    path = _png_with_exif_orientation(tmp_path / "o.png", image16, orientation=6)
    read = read_image_file(path)
    assert read.bits == 16 and read.rgb.shape == (10, 6, 3)
    np.testing.assert_array_equal(
        np.round(read.rgb * 65535).astype(np.uint16), np.rot90(image16, -1)
    )


@pytest.mark.parametrize(
    "dtype, words", [(np.float32, "floating-point"), (np.int16, "signed"), (np.int32, "32-bit")]
)
def test_float_and_signed_samples_are_refused_not_clipped(tmp_path, dtype, words):
    values = np.linspace(-3000, 3000, 64).reshape(8, 8).astype(dtype)
    tifffile.imwrite(tmp_path / "s.tif", values)
    with pytest.raises(ImageReadError, match=rf"s\.tif: .*{words}.* not supported"):
        read_image_file(tmp_path / "s.tif")


def test_pages_are_counted_and_colour_profile_and_exif_are_written_back(tmp_path):
    tifffile.imwrite(tmp_path / "m.tif", np.zeros((3, 8, 8), np.uint8), photometric="minisblack")
    assert read_image_file(tmp_path / "m.tif").frames == 3
    frames = [Image.new("RGB", (8, 8), (40 * i, 0, 0)) for i in range(3)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    assert read_image_file(tmp_path / "a.gif").frames == 3
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F], exif[0x0112] = "TestCam", 6  # make, orientation
    Image.new("RGB", (10, 6), (90, 120, 150)).save(
        tmp_path / "p.jpg", icc_profile=icc, exif=exif.tobytes()
    )
    for name in ("p.jpg",):
        read = read_image_file(tmp_path / name)
        out = write_image_file(tmp_path / "out" / name, read.rgb, read)
        with Image.open(out) as im:
            assert im.info.get("icc_profile") == icc and im.size == (6, 10)
            assert im.getexif().get(0x010F) == "TestCam"
            assert 0x0112 not in im.getexif()  # applied once, not again by a viewer
    rgb16 = np.zeros((8, 8, 3), np.uint16)
    tifffile.imwrite(tmp_path / "c.tif", rgb16, photometric="rgb", iccprofile=icc)
    read = read_image_file(tmp_path / "c.tif")
    out = write_image_file(tmp_path / "out" / "c.tif", read.rgb, read)
    with tifffile.TiffFile(out) as tif:
        assert bytes(tif.pages.first.tags["InterColorProfile"].value) == icc


def test_a_profile_that_does_not_describe_the_written_pixels_is_left_out(tmp_path):
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    cmyk = srgb[:16] + b"CMYK" + srgb[20:]  # the header's colour space is all that is read
    Image.new("CMYK", (8, 8), (0, 50, 100, 0)).save(tmp_path / "c.jpg", icc_profile=cmyk)
    read = read_image_file(tmp_path / "c.jpg")  # its result is RGB: a CMYK profile would lie
    assert read.icc_profile is None
    out = write_image_file(tmp_path / "out.jpg", read.rgb, read)
    with Image.open(out) as im:
        assert "icc_profile" not in im.info or not im.info["icc_profile"]


def test_exif_pillow_cannot_write_back_is_dropped_not_the_photo(tmp_path):
    import struct

    # A little-endian TIFF header and one IFD entry: XResolution stored as ASCII "72", which
    # Pillow reads but cannot serialise again.
    ifd = struct.pack("<H", 1) + struct.pack("<HHI", 0x011A, 2, 4) + b"72\x00\x00"
    exif = b"Exif\x00\x00II*\x00" + struct.pack("<I", 8) + ifd + b"\x00" * 4
    Image.new("RGB", (12, 8), (10, 20, 30)).save(tmp_path / "x.jpg", exif=exif)
    read = read_image_file(tmp_path / "x.jpg")
    assert read.exif is None and read.rgb.shape == (8, 12, 3)
    write_image_file(tmp_path / "out.jpg", read.rgb, read)
    with Image.open(tmp_path / "out.jpg") as im:  # the photo itself is written
        assert im.size == (12, 8)
        assert np.abs(np.asarray(im.convert("RGB"), float) - (10, 20, 30)).max() <= 3


def test_the_written_exif_gives_the_upright_pixel_dimensions(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    exif.get_ifd(0x8769).update({0xA002: 12, 0xA003: 8})
    Image.new("RGB", (12, 8), (10, 20, 30)).save(tmp_path / "r.jpg", exif=exif.tobytes())
    read = read_image_file(tmp_path / "r.jpg")
    with Image.open(write_image_file(tmp_path / "out.jpg", read.rgb, read)) as im:
        assert im.size == (8, 12) and 0x0112 not in im.getexif()
        assert dict(im.getexif().get_ifd(0x8769)) == {0xA002: 8, 0xA003: 12}
