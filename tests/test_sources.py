import hashlib
import warnings

import numpy as np
import pytest
from PIL import Image

from pixel_utils.data import sources
from pixel_utils.data.datasets import PatchPairDataset


def test_split_is_by_image_with_no_overlap():
    splits = {k: set(v) for k, v in sources.PHOTO_SPLITS.items()}
    assert not splits["train"] & splits["val"]
    assert not splits["train"] & splits["test"]
    assert not splits["val"] & splits["test"]
    assert set().union(*splits.values()) == set(sources.PHOTOS)
    # Both stereo views of one scene stay in one split.
    assert {"motorcycle_left", "motorcycle_right"} <= splits["train"]


def test_every_photo_loads_as_rgb_float():
    for name in sources.PHOTOS:
        img = sources.load_photo(name)
        assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.float32, name
        assert img.min() >= 0.0 and img.max() <= 1.0


def test_dead_leaves_is_deterministic_and_varied():
    a = sources.dead_leaves(np.random.default_rng(5), size=64)
    b = sources.dead_leaves(np.random.default_rng(5), size=64)
    c = sources.dead_leaves(np.random.default_rng(6), size=64)
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, c)
    assert a.shape == (64, 64, 3) and a.std() > 0.1


def _write_bad_folder(folder):
    rng = np.random.default_rng(0)
    rgb = (rng.random((40, 50, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(folder / "good.png")
    Image.fromarray(rgb[..., 0]).save(folder / "grey.png")
    Image.fromarray(np.dstack([rgb, np.full((40, 50), 128, np.uint8)])).save(folder / "rgba.png")
    Image.fromarray((rng.random((40, 50)) * 65535).astype(np.uint16)).save(folder / "deep16.png")
    Image.fromarray(rgb).convert("P").save(folder / "palette.png")
    Image.fromarray(rgb[:8, :8]).save(folder / "tiny.png")
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.jpg").write_text("this is not an image")
    full = (folder / "good.png").read_bytes()
    (folder / "truncated.png").write_bytes(full[: len(full) // 2])
    buffer = folder / "photo.jpg"
    Image.fromarray(rgb).save(buffer, quality=90)
    (folder / "truncated.jpg").write_bytes(buffer.read_bytes()[:200])


def test_folder_loader_converts_what_it_can_and_names_what_it_skips(tmp_path):
    _write_bad_folder(tmp_path)
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    with pytest.warns(UserWarning) as caught:
        images = sources.load_folder(tmp_path, min_size=16)
    assert set(images) == {"good.png", "grey.png", "rgba.png", "deep16.png", "palette.png",
                           "photo.jpg"}  # fmt: skip
    for img in images.values():
        assert img.shape == (40, 50, 3) and img.dtype == np.float32
    assert images["deep16.png"].max() > 0.9  # 16-bit scaled by 65535, not clipped at 255
    message = str(caught[0].message)
    for name, why in [("empty.png", "empty"), ("notes.jpg", "not a recognised image"),
                      ("truncated.png", "truncated"), ("truncated.jpg", "truncated"),
                      ("tiny.png", "smaller than")]:  # fmt: skip
        line = next(line for line in message.splitlines() if name in line)
        assert why in line, line
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    assert before == after  # inputs untouched


def test_folder_with_no_usable_image_is_an_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(ValueError, match="no usable images"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sources.load_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sources.load_folder(tmp_path / "missing")


def test_gopro_pairs(tmp_path):
    for sub in ("blur", "sharp"):
        (tmp_path / sub).mkdir()
    img = (np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "blur" / "0001.png")
    Image.fromarray(img).save(tmp_path / "sharp" / "0001.png")
    Image.fromarray(img).save(tmp_path / "blur" / "0002.png")  # no sharp partner
    with pytest.warns(UserWarning, match="0002.png"):
        pairs = sources.load_pairs(tmp_path)
    assert [name for name, _, _ in pairs] == ["0001.png"]


def test_patch_dataset_is_reproducible_and_shaped():
    images = [sources.dead_leaves(np.random.default_rng(i), size=64) for i in range(3)]
    ds = PatchPairDataset(images, patch_size=32, batch_size=5, length=4, seed=9)
    blurred, sharp = ds[2]
    assert blurred.shape == sharp.shape == (5, 3, 32, 32)
    again, _ = PatchPairDataset(images, patch_size=32, batch_size=5, length=4, seed=9)[2]
    assert blurred.numpy().tobytes() == again.numpy().tobytes()
    other, _ = ds[3]
    assert not np.array_equal(blurred.numpy(), other.numpy())
    assert float((blurred - sharp).abs().mean()) > 0.005  # it is degraded
    with pytest.raises(IndexError):
        ds[4]


def test_dead_leaves_stream_is_fresh_and_reproducible():
    from pixel_utils.data.datasets import DeadLeavesStream

    stream = DeadLeavesStream(size=48, pool=2, refresh=3, seed=4)
    first = [im.copy() for im in stream.images_for(0)]
    assert all(np.array_equal(a, b) for a, b in zip(first, stream.images_for(2), strict=True))
    later = stream.images_for(3)  # a new block: new images
    assert not any(np.array_equal(a, b) for a, b in zip(first, later, strict=True))
    resumed = DeadLeavesStream(size=48, pool=2, refresh=3, seed=4)  # e.g. after a restart
    assert all(np.array_equal(a, b) for a, b in zip(later, resumed.images_for(4), strict=True))


def test_patch_pairs_mix_photos_and_dead_leaves():
    from pixel_utils.data.datasets import DeadLeavesStream

    photo = np.full((80, 80, 3), 0.5, np.float32)  # flat: easy to tell from dead leaves
    stream = DeadLeavesStream(size=64, pool=2, refresh=100, seed=0)
    ds = PatchPairDataset([photo], 16, 40, 1, seed=0, leaves=stream, leaves_fraction=0.5)
    _, sharp = ds[0]
    flat = (sharp.flatten(1).std(dim=1) < 1e-6).float().mean().item()
    assert 0.2 < flat < 0.8
