"""Reading, writing and converting images.

Conventions used across the package:

* numpy images are ``HWC`` float32 RGB in ``[0, 1]``;
* torch tensors are ``NCHW`` (or ``CHW`` for one image) float32 RGB in ``[0, 1]``.

Files are read with Pillow (16-bit PNGs with pypng, TIFFs with tifffile, since Pillow reduces
16-bit RGB to 8 bits): EXIF orientation is applied, grey and palette images become RGB,
16-bit images keep their precision, and an alpha channel is dropped (training and metrics work
on RGB). Anything that cannot be read raises :class:`ImageReadError` naming the file and why.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from pixel_utils.artefacts import atomic_write

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class ImageReadError(ValueError):
    """An input image could not be used; the message names the file and the problem."""


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ImageReadError(f"{path}: file does not exist")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a directory, not an image")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: file is empty")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read ``path`` as an HWC float32 RGB array in ``[0, 1]`` (see :func:`read_image_file`)."""
    return read_image_file(path).rgb


def pil_to_array(im: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to HWC float32 RGB in ``[0, 1]`` (alpha dropped)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit samples whatever their values: a dark 16-bit image (every value under 256,
        # which Pillow gives a 16-bit PGM as mode "I") is dark, not an 8-bit one.
        grey = np.clip(np.asarray(im, dtype=np.float64) / 65535.0, 0.0, 1.0)
        return np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
    if im.mode == "F":
        grey = np.clip(np.asarray(im, dtype=np.float32), 0.0, 1.0)
        return np.repeat(grey[..., None], 3, axis=2)
    if im.mode != "RGB":
        im = im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB")
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.float32) / 255.0


def to_rgb_float(image: np.ndarray) -> np.ndarray:
    """Any numpy image (grey, RGB, RGBA; uint8, uint16 or float) as HWC float32 RGB in [0, 1]."""
    arr = np.asarray(image)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        arr = arr.astype(np.float32) / 65535.0
    else:
        arr = arr.astype(np.float32)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., :3]
    elif arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected a grey, RGB or RGBA image, got shape {image.shape}")
    return np.clip(arr, 0.0, 1.0)


def _quantise(image: np.ndarray, top: float, dtype) -> np.ndarray:
    scaled = np.clip(image, 0.0, 1.0).astype(np.float32)  # one temporary, then in place
    scaled *= top
    scaled += 0.5
    return scaled.astype(dtype)


def to_uint8(image: np.ndarray) -> np.ndarray:
    return _quantise(image, 255.0, np.uint8)


def to_uint16(image: np.ndarray) -> np.ndarray:
    return _quantise(image, 65535.0, np.uint16)


def write_png(path: str | os.PathLike, image: np.ndarray, bits: int = 8) -> Path:
    """Write an HWC RGB float image losslessly as an 8- or 16-bit PNG, atomically.

    Pillow cannot write 16-bit RGB, so 16-bit files go through pypng. The bytes depend only on
    the pixels, so rebuilding gives identical files.
    """
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")

    def write(tmp: Path) -> None:
        if bits == 8:
            Image.fromarray(to_uint8(image)).save(tmp, format="PNG")
        else:
            import png

            rows = to_uint16(image).reshape(image.shape[0], -1)
            writer = png.Writer(image.shape[1], image.shape[0], greyscale=False, bitdepth=16)
            with open(tmp, "wb") as f:
                writer.write(f, rows)

    return atomic_write(path, write)


def read_png(path: str | os.PathLike) -> np.ndarray:
    """Read a PNG written by :func:`write_png` (8- or 16-bit) as HWC float32 RGB.

    8-bit files go through Pillow, which decodes them exactly and in C; 16-bit colour files
    through pypng, since Pillow would cut them to 8 bits (pypng undoes the row filters in
    Python, several times slower)."""
    with open(path, "rb") as f:
        header = f.read(25)  # the signature and the IHDR chunk, whose bit depth is byte 24
    if len(header) == 25 and header[24] == 8:
        with Image.open(path) as im:
            arr = np.asarray(im if im.mode in ("L", "RGB", "RGBA") else im.convert("RGB"))
        return to_rgb_float(arr)
    import png

    with open(path, "rb") as f:
        width, height, rows, info = png.Reader(file=f).asDirect()
        planes = info["planes"]
        arr = np.vstack([np.asarray(row, np.uint32) for row in rows])
    arr = arr.reshape(height, width, planes)
    arr = arr.astype(np.float32) / float(2 ** info["bitdepth"] - 1)
    return to_rgb_float(arr)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HWC numpy image → 1×C×H×W float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """1×C×H×W or C×H×W tensor → HWC float32 numpy image (clipped to [0, 1])."""
    if tensor.ndim == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f"expected a single image, got batch of {tensor.shape[0]}")
        tensor = tensor[0]
    arr = tensor.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(arr)


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Centre crop to at most ``size`` × ``size`` (smaller sides are kept)."""
    h, w = image.shape[:2]
    th, tw = min(h, size), min(w, size)
    top, left = (h - th) // 2, (w - tw) // 2
    return image[top : top + th, left : left + tw]


def downscale_to(image: np.ndarray, max_short_side: int | None) -> np.ndarray:
    """Shrink (anti-aliased) so the short side is at most ``max_short_side``; never enlarges."""
    h, w = image.shape[:2]
    if not max_short_side or min(h, w) <= max_short_side:
        return image
    from skimage.transform import resize

    scale = max_short_side / min(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return resize(image, size, order=1, anti_aliasing=True).astype(np.float32)


# ----------------------------------------------------------------------------- full fidelity


@dataclass
class ImageFile:
    """An image read for sharpening, with what is needed to write the result like it."""

    rgb: np.ndarray  # HWC float32 RGB in [0, 1] (grey replicated to 3 channels)
    alpha: np.ndarray | None  # HW float32 in [0, 1], passed through untouched
    bits: int  # 8 or 16
    grey: bool
    format: str  # Pillow format name, e.g. "PNG", "JPEG"
    frames: int = 1  # pages or frames in the file; only the first is read
    icc_profile: bytes | None = None  # the colour profile, written back where the format can
    exif: bytes | None = None  # camera metadata (orientation already applied and removed)
    lossless: bool = False  # a lossless WebP, written back losslessly
    # A JPEG's chroma subsampling, Pillow's code (0: 4:4:4, 1: 4:2:2, 2: 4:2:0), written back
    # the same: a 4:4:4 photo keeps its sharp colour edges. None: Pillow's default (4:2:0).
    subsampling: int | None = None


def _is_lossless_webp(path: Path) -> bool:
    """Whether a WebP file's image is coded losslessly (a ``VP8L`` chunk, not ``VP8``)."""
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WEBP":
            return False
        while chunk := f.read(8):
            if len(chunk) < 8:
                return False
            kind, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if kind in (b"VP8L", b"VP8 "):
                return kind == b"VP8L"
            f.seek(size + (size & 1), os.SEEK_CUR)  # chunks are padded to even sizes
    return False


def writable_format(fmt: str) -> bool:
    """Whether Pillow (or this module, for TIFF and 16-bit PNG) can write ``fmt``: some formats
    it reads (XPM, PSD, ...) it cannot write."""
    Image.init()
    return fmt in ("TIFF", "PNG") or fmt in Image.SAVE


def _read_png16(path: Path, orientation: int = 1) -> ImageFile | None:
    """16-bit PNGs through pypng (Pillow would reduce 16-bit RGB to 8 bits), turned by their
    EXIF ``orientation``, which pypng does not read."""
    import png

    try:
        with open(path, "rb") as f:  # pypng leaves a file it opened itself unclosed
            reader = png.Reader(file=f)
            reader.preamble()
            if reader.bitdepth != 16:  # the stored depth, whatever sBIT says
                return None
            width, height, rows, info = reader.asDirect()
            planes = info["planes"]
            arr = np.vstack([np.asarray(r, np.uint16) for r in rows])
        arr = arr.reshape(height, width, planes)
    except png.Error as err:
        raise ImageReadError(f"{path}: corrupt or truncated image ({err})") from None
    # asDirect scales to the significant bits (an sBIT chunk: 12-bit data in 16-bit samples).
    top = float(2 ** info["bitdepth"] - 1)
    arr = _orient(arr, orientation).astype(np.float32) / top
    grey = planes in (1, 2)
    colour = arr[..., :1] if grey else arr[..., :3]
    alpha = arr[..., -1] if planes in (2, 4) else None
    rgb = np.repeat(colour, 3, axis=2) if grey else colour
    return ImageFile(np.ascontiguousarray(rgb), alpha, 16, grey, "PNG")


_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF


def _is_tiff(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) in _TIFF_MAGIC


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply a TIFF/EXIF orientation (1-8) to an H×W(×C) array, as ``ImageOps.exif_transpose``."""
    ops = {
        2: lambda a: a[:, ::-1],  # mirror left-right
        3: lambda a: a[::-1, ::-1],  # rotate 180°
        4: lambda a: a[::-1],  # mirror top-bottom
        5: lambda a: a.swapaxes(0, 1),  # transpose
        6: lambda a: np.rot90(a, -1),  # rotate 90° clockwise
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),  # transverse
        8: lambda a: np.rot90(a, 1),  # rotate 90° anticlockwise
    }
    op = ops.get(orientation)
    return arr if op is None else np.ascontiguousarray(op(arr))


def _read_tiff(path: Path) -> ImageFile | None:
    """8- and 16-bit grey or RGB TIFFs (optionally with alpha; premultiplied colour is divided
    by it) through tifffile, which keeps 16-bit colour (Pillow reduces it to 8 bits). Other
    8-bit layouts (palette, CMYK, 1-bit, ...) return None and are left to Pillow; other 16-bit
    ones are refused, since Pillow would keep only 8 of their bits. So are
    compressions that tifffile cannot decode without the optional ``imagecodecs`` package (LZW,
    JPEG, ...), except for 16-bit colour, where Pillow would silently lose the low 8 bits."""
    import tifffile
    from tifffile import EXTRASAMPLE, PHOTOMETRIC, TIFF

    try:
        with tifffile.TiffFile(path) as tif:
            if not len(tif.pages):
                raise ImageReadError(f"{path}: corrupt or truncated image (a TIFF header "
                                     "without an image)")  # fmt: skip
            page = tif.pages.first
            colour_planes = {PHOTOMETRIC.MINISBLACK: 1, PHOTOMETRIC.RGB: 3}.get(page.photometric)
            if (
                colour_planes is None
                or page.dtype not in (np.uint8, np.uint16)
                or page.axes not in ("YX", "YXS", "SYX")
            ):
                if page.dtype == np.uint16:  # Pillow would silently keep 8 of its 16 bits
                    raise ImageReadError(
                        f"{path}: 16-bit {page.photometric.name} TIFF cannot be read at full "
                        "depth; convert it to 16-bit RGB or grey first"
                    )
                return None
            if page.compression not in TIFF.DECOMPRESSORS or (
                page.predictor != 1 and page.predictor not in TIFF.PREDICTORS
            ):
                if page.dtype == np.uint16 and colour_planes == 3:
                    raise ImageReadError(
                        f"{path}: 16-bit colour TIFF compressed with "
                        f"{page.compression.name}, which needs the imagecodecs package to be "
                        "read at full depth (pip install imagecodecs)"
                    )
                return None
            extras = page.samplesperpixel - colour_planes
            kinds = tuple(page.extrasamples)
            if extras < 0 or len(kinds) != extras:
                return None
            arr = page.asarray()
            tag = page.tags.get("Orientation")
            orientation = int(tag.value) if tag is not None else 1
            pages = len(tif.pages)
            icc = page.tags.get("InterColorProfile")
            icc = bytes(icc.value) if icc is not None else None
    except ImageReadError:
        raise
    except (tifffile.TiffFileError, ValueError, OSError) as err:
        raise ImageReadError(f"{path}: corrupt or truncated image ({err})") from None
    if page.axes == "YX":
        arr = arr[..., None]
    elif page.axes == "SYX":
        arr = np.moveaxis(arr, 0, -1)
    arr = _orient(arr, orientation)
    top = 65535.0 if arr.dtype == np.uint16 else 255.0
    colour = arr[..., :colour_planes].astype(np.float32) / top
    alpha = None
    if extras and kinds[0] in (EXTRASAMPLE.UNASSALPHA, EXTRASAMPLE.ASSOCALPHA):
        alpha = arr[..., colour_planes].astype(np.float32) / top
    if extras and kinds[0] == EXTRASAMPLE.ASSOCALPHA:
        # Premultiplied colour: divided by alpha, to be sharpened and written back (with
        # unassociated alpha) as the colour it stands for.
        colour = np.where(alpha[..., None] > 0, colour / np.maximum(alpha[..., None], 1e-12), 0)
        colour = np.clip(colour, 0, 1).astype(np.float32)
    grey = colour_planes == 1
    rgb = np.repeat(colour, 3, axis=2) if grey else colour
    bits = 16 if arr.dtype == np.uint16 else 8
    icc = _profile_for(icc, grey)
    return ImageFile(np.ascontiguousarray(rgb), alpha, bits, grey, "TIFF", pages, icc)


def _unsupported_tiff(path: Path) -> str:
    """Why neither tifffile's path (:func:`_read_tiff`) nor Pillow reads a TIFF, in words."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            layout = (f"{page.dtype} samples, {page.samplesperpixel} per pixel, "
                      f"{page.photometric.name} colour")  # fmt: skip
    except Exception as err:  # noqa: BLE001 - tifffile's own failure on a malformed file
        return f"corrupt or truncated TIFF ({type(err).__name__}: {err})"
    return f"unsupported TIFF layout ({layout}); 8- and 16-bit grey or RGB TIFFs can be read"


def _write_tiff(path: str, colour: np.ndarray, bits: int, icc_profile: bytes | None = None):
    """Write H×W×{1,2,3,4} (grey, grey+alpha, RGB, RGBA) as a lossless Deflate TIFF, with
    ``icc_profile`` when given."""
    import tifffile

    arr = to_uint16(colour) if bits == 16 else to_uint8(colour)
    planes = arr.shape[2]
    tifffile.imwrite(
        path,
        arr[..., 0] if planes == 1 else arr,
        photometric="minisblack" if planes in (1, 2) else "rgb",
        planarconfig=None if planes == 1 else "contig",
        extrasamples=("unassalpha",) if planes in (2, 4) else None,
        compression="zlib",
        predictor=True,
        iccprofile=icc_profile,
    )


_ORIENTATION = 0x0112  # the EXIF tag


def _profile_for(icc: bytes | None, grey: bool) -> bytes | None:
    """``icc`` if it describes the pixels as they are written (an RGB profile for colour, a
    grey one for grey), else None: a CMYK JPEG's profile must not be attached to its RGB
    result, where it would shift every colour."""
    space = icc[16:20] if icc and len(icc) >= 20 else None  # the header's data colour space
    return icc if space == (b"GRAY" if grey else b"RGB ") else None


def _exif_to_write(im: Image.Image) -> bytes | None:
    """The EXIF of an image already turned upright, as bytes to write with its result: the
    orientation (applied) dropped, the pixel dimensions those of the upright image. None when
    there is none, or when Pillow cannot write back what it read (a malformed tag): the
    metadata is then lost rather than the photo refused."""
    exif = im.getexif()
    if not len(exif):
        return None
    exif.pop(_ORIENTATION, None)  # applied: a viewer must not turn the result again
    details = exif.get_ifd(0x8769)  # the Exif sub-IFD
    for tag, size in ((0xA002, im.width), (0xA003, im.height)):  # PixelX/YDimension
        if tag in details:
            details[tag] = size
    try:
        return exif.tobytes()
    except Exception:  # noqa: BLE001 - Pillow's serialiser fails in many ways on odd tags
        return None


def _check_samples(path: Path, im: Image.Image) -> None:
    """Refuse floating-point and signed samples, which 8- and 16-bit output would clip or
    quantise without a word (Pillow reads such TIFFs as mode F or I)."""
    kind = None
    if im.mode.startswith("F"):
        kind = "floating-point"
    elif im.mode.endswith("S"):
        kind = "signed"
    elif im.mode.startswith("I") and not im.mode.startswith("I;16"):
        values = np.asarray(im)
        if values.size and (values.min() < 0 or values.max() > 65535):
            kind = "signed or 32-bit"
    if kind:
        raise ImageReadError(f"{path}: {kind} samples (mode {im.mode}) are not supported; "
                             "8- and 16-bit unsigned images can be read")  # fmt: skip


def read_image_file(path: str | os.PathLike) -> ImageFile:
    """Read ``path`` keeping bit depth, alpha and grey-ness (EXIF orientation applied).

    Every failure is an :class:`ImageReadError` naming the file: the decoders (Pillow,
    tifffile, pypng) raise other exceptions on some malformed files (tifffile an IndexError
    for a TIFF without an image), and one bad file must not stop a batch."""
    path = Path(path)
    try:
        with _no_pixel_limit():
            return _read_image_file(path)
    except (ImageReadError, MemoryError):
        raise
    except Exception as err:  # noqa: BLE001 - a decoder's own failure on a malformed file
        raise ImageReadError(f"{path}: corrupt or unreadable image ({type(err).__name__}: "
                             f"{err})") from None  # fmt: skip


_pixel_limit_lock = threading.Lock()
_pixel_limit_readers = 0
_pixel_limit_saved = None


@contextlib.contextmanager
def _no_pixel_limit():
    """Lift Pillow's decompression-bomb guard while a user's file is read: a user's own
    panorama or scan is not a bomb, yet the guard (179 MP) refused them as corrupt, while
    tiling exists for exactly such sizes. Pillow has only the process-wide
    ``Image.MAX_IMAGE_PIXELS``. Reads in several threads of one program (a caller's thread
    pool over a folder) share one lifting, and the last reader out restores the value the
    first one found, so the guard is never left off, as two overlapping save-and-restore pairs
    could leave it (the second saves the first's None and restores it last)."""
    global _pixel_limit_readers, _pixel_limit_saved
    with _pixel_limit_lock:
        if _pixel_limit_readers == 0:
            _pixel_limit_saved = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
        _pixel_limit_readers += 1
    try:
        yield
    finally:
        with _pixel_limit_lock:
            _pixel_limit_readers -= 1
            if _pixel_limit_readers == 0:
                Image.MAX_IMAGE_PIXELS = _pixel_limit_saved


def _read_image_file(path: Path) -> ImageFile:
    _check_file(path)
    if _is_tiff(path):
        deep = _read_tiff(path)
        if deep is not None:
            return deep
    try:
        with Image.open(path) as im:
            source = im  # exif_transpose below returns a new image, without the JPEG's tables
            fmt = im.format or path.suffix.lstrip(".").upper()
            if fmt == "MPO":  # a camera JPEG with a preview or depth image after the photo
                fmt = "JPEG"
            frames = getattr(im, "n_frames", 1)
            icc = im.info.get("icc_profile") or None
            deep = _read_png16(path, im.getexif().get(_ORIENTATION, 1)) if fmt == "PNG" else None
            if deep is not None:
                return replace(deep, frames=frames, icc_profile=_profile_for(icc, deep.grey))
            _check_samples(path, im)
            im.load()
            im = ImageOps.exif_transpose(im)
            exif = _exif_to_write(im) if fmt != "TIFF" else None  # TIFF is written without
            bits = 16 if im.mode in ("I;16", "I;16B", "I;16L", "I") else 8
            alpha = None
            # A transparent colour (tRNS, as PNG optimisers write) is alpha too.
            keyed = im.mode in ("P", "L", "RGB") and "transparency" in im.info
            if im.mode in ("RGBA", "LA", "PA") or keyed:
                rgba = im.convert("RGBA")
                alpha = np.asarray(rgba, np.float32)[..., 3] / 255.0
            grey = im.mode in ("L", "LA", "I;16", "I;16B", "I;16L", "I", "1")
            icc = _profile_for(icc, grey)
            lossless = fmt == "WEBP" and _is_lossless_webp(path)
            subsampling = _jpeg_subsampling(source) if fmt == "JPEG" else None
            return ImageFile(pil_to_array(im), alpha, bits, grey, fmt, frames, icc, exif,
                             lossless, subsampling)  # fmt: skip
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        if _is_tiff(path):
            raise ImageReadError(f"{path}: {_unsupported_tiff(path)}") from None
        raise ImageReadError(f"{path}: not a recognised image format") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"{path}: corrupt or truncated image ({err})") from None


def _jpeg_subsampling(im: Image.Image) -> int | None:
    """The chroma subsampling of an opened JPEG, as Pillow's ``subsampling`` code, or None
    where it is none of 4:4:4, 4:2:2 and 4:2:0 (or a grey or CMYK file)."""
    from PIL import JpegImagePlugin

    if im.mode not in ("RGB", "YCbCr"):
        return None
    code = JpegImagePlugin.get_sampling(im)
    return code if code in (0, 1, 2) else None


def _add_png_profile(path, profile: bytes) -> None:
    """Insert an ``iCCP`` chunk (the colour profile, which pypng does not write) after the
    header of the PNG at ``path``."""
    import zlib

    import png

    with open(path, "rb") as f:
        chunks = list(png.Reader(file=f).chunks())
    iccp = (b"iCCP", b"ICC profile\0\0" + zlib.compress(profile))  # name, method 0 (zlib)
    with open(path, "wb") as f:
        png.write_chunks(f, [chunks[0], iccp, *chunks[1:]])


#: Quality of a lossy JPEG or WebP result unless asked otherwise: high enough that the encoder
#: does not blur away what the sharpening restored.
DEFAULT_QUALITY = 95


def write_image_file(
    path: str | os.PathLike, rgb: np.ndarray, like: ImageFile, quality: int = DEFAULT_QUALITY
) -> Path:
    """Write ``rgb`` in the layout of ``like``: same bit depth, grey-ness and alpha, atomically,
    with its colour profile and EXIF metadata where the format holds them (not EXIF in TIFF
    nor in 16-bit PNG, which is written by pypng). A JPEG, or a WebP that is not lossless, is
    encoded at ``quality`` (1-100, Pillow's scale)."""
    if not writable_format(like.format):
        raise ValueError(f"{like.format} files cannot be written; sharpen a PNG or TIFF copy")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality {quality}: must be 1 to 100")
    colour = rgb.mean(axis=2, keepdims=True) if like.grey else rgb
    if like.alpha is not None:
        colour = np.concatenate([colour, like.alpha[..., None]], axis=2)

    def write(tmp: Path) -> None:
        # The pixels stay in the input's colour space, so its profile still describes them.
        metadata = {"icc_profile": like.icc_profile, "exif": like.exif}
        metadata = {k: v for k, v in metadata.items() if v}
        if like.format == "TIFF":
            _write_tiff(tmp, colour, like.bits, like.icc_profile)
        elif like.bits == 16 and like.format == "PNG":
            import png

            h, w, planes = colour.shape
            writer = png.Writer(w, h, greyscale=planes in (1, 2), alpha=planes in (2, 4),
                                bitdepth=16)  # fmt: skip
            with open(tmp, "wb") as f:
                writer.write(f, to_uint16(colour).reshape(h, -1))
            if like.icc_profile:
                _add_png_profile(tmp, like.icc_profile)
        elif like.bits == 16 and like.grey and like.alpha is None:
            Image.fromarray(to_uint16(colour[..., 0])).save(tmp, format=like.format, **metadata)
        else:
            arr = to_uint8(colour[..., 0] if colour.shape[2] == 1 else colour)
            options = {"quality": quality} if like.format in ("JPEG", "WEBP") else {}
            if like.format == "JPEG" and like.subsampling is not None and colour.shape[2] > 1:
                options["subsampling"] = like.subsampling
            if like.format == "WEBP" and like.lossless:
                options = {"lossless": True}
            Image.fromarray(arr).save(tmp, format=like.format, **options, **metadata)

    # Through the project's one atomic writer: its temporary file is created like any new file
    # of the user's (the umask decides who may read it), then renamed onto ``path``.
    return atomic_write(path, write)
