"""The bad-input matrix, interruption and determinism (issue: robustness).

Every entry point that takes user files gets the same odd inputs; each must either convert the
file or name it and the problem, keep the batch going, and leave the input bytes untouched.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import png
import pytest
import torch
from PIL import Image

from pixel_utils.app.cli import main as cli
from pixel_utils.data.images import ImageReadError, read_image_file
from pixel_utils.models.networks import build_model
from pixel_utils.training.loop import (
    CHECKPOINT_FORMAT,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)


#: name → (bytes writer, expected outcome: "ok" or a phrase of the error message)
def _matrix(folder):
    rng = np.random.default_rng(0)
    rgb = (rng.random((20, 24, 3)) * 255).astype(np.uint8)
    cases = {}

    def save(name, image, **kw):
        Image.fromarray(image).save(folder / name, **kw)

    (folder / "empty.png").write_bytes(b"")
    cases["empty.png"] = "empty"
    save("good.png", rgb)
    full = (folder / "good.png").read_bytes()
    (folder / "truncated.png").write_bytes(full[: len(full) // 2])
    cases["truncated.png"] = "truncated"
    save("photo.jpg", rgb, quality=90)
    (folder / "truncated.jpg").write_bytes((folder / "photo.jpg").read_bytes()[:150])
    cases["truncated.jpg"] = "truncated"
    (folder / "text.png").write_text("not an image at all")
    cases["text.png"] = "not a recognised image"
    save("grey.png", rgb[..., 0])
    save("rgba.png", np.dstack([rgb, rgb[..., :1]]))
    Image.fromarray(rgb).convert("P").save(folder / "palette.png")
    with open(folder / "deep16.png", "wb") as f:
        png.Writer(24, 20, greyscale=False, bitdepth=16).write(
            f, (rng.random((20, 72)) * 65535).astype(np.uint16)
        )
    save("one.png", rgb[:1, :1])
    save("seven_by_five.png", rgb[:5, :7])
    for name in ("good.png", "photo.jpg", "grey.png", "rgba.png", "palette.png", "deep16.png",
                 "one.png", "seven_by_five.png"):  # fmt: skip
        cases[name] = "ok"
    return cases


def _hashes(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    kwargs = {"scale": 4, "channels": 8, "blocks": 1}
    path = tmp_path_factory.mktemp("ck") / "tiny.pt"
    save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "model_name": "unshuffle",
                           "model_kwargs": kwargs, "ema": None, "complete": True,
                           "model": build_model("unshuffle", **kwargs).state_dict()})  # fmt: skip
    return path


def test_matrix_through_the_image_reader(tmp_path):
    cases = _matrix(tmp_path)
    for name, expected in cases.items():
        if expected == "ok":
            image = read_image_file(tmp_path / name)
            assert image.rgb.ndim == 3 and image.rgb.shape[2] == 3, name
        else:
            with pytest.raises(ImageReadError, match=expected) as err:
                read_image_file(tmp_path / name)
            assert name in str(err.value)
    with pytest.raises(ImageReadError, match="does not exist"):
        read_image_file(tmp_path / "missing.png")
    with pytest.raises(ImageReadError, match="is a directory"):
        read_image_file(tmp_path)


def test_matrix_through_the_cli(tmp_path, tiny_checkpoint, capsys):
    src = tmp_path / "in"
    src.mkdir()
    cases = _matrix(src)
    before = _hashes(src)
    code = cli([str(src), str(tmp_path / "nope.png"), "-o", str(tmp_path / "out"),
                "--model", str(tiny_checkpoint)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    bad = [n for n, e in cases.items() if e != "ok"]
    for name in bad:
        assert any(name in line and cases[name] in line for line in err.splitlines()), name
    assert "nope.png: file does not exist" in err
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(n for n, e in cases.items() if e == "ok")
    assert f"{len(bad) + 1} failed" in err
    assert _hashes(src) == before
    with Image.open(tmp_path / "out" / "one.png") as im:
        assert im.size == (1, 1)
    with Image.open(tmp_path / "out" / "seven_by_five.png") as im:
        assert im.size == (7, 5)


def test_cli_folder_without_images(tmp_path, tiny_checkpoint, capsys):
    (tmp_path / "empty_dir").mkdir()
    assert cli([str(tmp_path / "empty_dir"), "-o", str(tmp_path / "o"), "--model",
                str(tiny_checkpoint)]) == 1  # fmt: skip
    assert "folder contains no images" in capsys.readouterr().err


def _three_pictures(folder):
    folder.mkdir()
    for i, name in enumerate(("a.png", "b.png", "c.png")):
        Image.fromarray(np.full((16, 20, 3), 40 * i, np.uint8)).save(folder / name)


def test_a_write_failure_does_not_abort_the_batch(tmp_path, tiny_checkpoint, capsys):
    """An output path that is an existing folder: that file fails, the others are written."""
    _three_pictures(tmp_path / "in")
    out = tmp_path / "out"
    (out / "b.png").mkdir(parents=True)  # in the way of b.png's result
    code = cli([str(tmp_path / "in"), "-o", str(out), "--model", str(tiny_checkpoint),
                "--overwrite"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert any("b.png: cannot write" in line and "Is a directory" in line
               for line in err.splitlines())  # fmt: skip
    assert "1 failed" in err and "sharpened 2 image(s)" in err
    assert (out / "a.png").is_file() and (out / "c.png").is_file() and (out / "b.png").is_dir()
    assert not [p for p in out.rglob("*.tmp")]  # no temporary files left behind


def test_permission_denied_on_one_output_does_not_abort_the_batch(
    tmp_path, tiny_checkpoint, capsys, monkeypatch
):
    """Simulated, so it also holds when the tests run as root (who may write anywhere)."""
    from pixel_utils.app import cli as cli_module

    real_write = cli_module.write_image_file

    def write(path, rgb, like, quality):
        if path.name == "a.png":
            raise PermissionError(13, "Permission denied", str(path))
        return real_write(path, rgb, like, quality)

    monkeypatch.setattr(cli_module, "write_image_file", write)
    _three_pictures(tmp_path / "in")
    out = tmp_path / "out"
    code = cli([str(tmp_path / "in"), "-o", str(out), "--model", str(tiny_checkpoint)])
    err = capsys.readouterr().err
    assert code == 1
    assert any("a.png" in line and "Permission denied" in line for line in err.splitlines())
    assert "1 failed" in err
    assert sorted(p.name for p in out.iterdir()) == ["b.png", "c.png"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_output_folder_is_reported_per_file(tmp_path, tiny_checkpoint, capsys):
    _three_pictures(tmp_path / "in")
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (tmp_path / "in" / "sub").mkdir()
    Image.fromarray(np.zeros((16, 20, 3), np.uint8)).save(tmp_path / "in" / "sub" / "d.png")
    (out / "sub").chmod(0o555)
    try:
        code = cli([str(tmp_path / "in"), "-o", str(out), "--model", str(tiny_checkpoint)])
    finally:
        (out / "sub").chmod(0o755)
    err = capsys.readouterr().err
    assert code == 1 and "1 failed" in err
    assert any("d.png" in line and "Permission denied" in line for line in err.splitlines())
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png", "c.png", "sub"]


def test_bad_checkpoints_are_named_and_explained(tmp_path, tiny_checkpoint):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(tiny_checkpoint.read_bytes()[:500])
    with pytest.raises(ValueError, match="corrupt.pt: not a readable checkpoint"):
        load_checkpoint(corrupt)
    other = load_checkpoint(tiny_checkpoint)
    other["model_kwargs"] = {"scale": 4, "channels": 16, "blocks": 1}  # weights of another model
    mismatched = tmp_path / "other.pt"
    save_checkpoint(mismatched, other)
    with pytest.raises(ValueError, match="other.pt: weights do not fit unshuffle"):
        model_from_checkpoint(mismatched)
    pickled = tmp_path / "code.pt"
    torch.save({"format": 1, "model": {}, "payload": os.system}, pickled)  # code, not data
    with pytest.raises(ValueError, match="not a readable checkpoint") as err:
        load_checkpoint(pickled)  # weights_only refuses to run pickled callables
    assert "objects that are not loaded, for safety" in str(err.value)
    assert "weights_only" not in str(err.value)  # no advice to load it unsafely


def test_huge_image_is_tiled_with_bounded_memory(tmp_path, tiny_checkpoint):
    """An 8000×6000 photo through the CLI in a child process; its peak memory stays far below
    what whole-image float inference would need."""
    script = textwrap.dedent(f"""
        import resource, sys
        import numpy as np
        from PIL import Image
        x = (np.arange(8000) * 255 // 8000).astype(np.uint8)
        y = (np.arange(6000) * 255 // 6000).astype(np.uint8)
        img = np.empty((6000, 8000, 3), np.uint8)
        img[..., 0], img[..., 1] = x[None], y[:, None]
        img[..., 2] = x[None] // 2 + y[:, None] // 2
        Image.fromarray(img).save("{tmp_path}/huge.png", compress_level=1)
        del img
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        from pixel_utils.app.cli import main
        code = main(["{tmp_path}/huge.png", "-o", "{tmp_path}/out", "--model", "{tiny_checkpoint}",
                     "--tile", "1024", "--overlap", "128"])
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(code, base, peak)
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    code, base, peak = map(int, done.stdout.split())
    assert code == 0
    with Image.open(tmp_path / "out" / "huge.png") as im:
        assert im.size == (8000, 6000)
    # The photo itself needs input, output and blend-weight buffers (0.6 + 0.6 + 0.2 GB as
    # float32) and an 8-bit copy to write; the network adds only tile-sized tensors.
    extra_gb = (peak - base) / 1e6
    assert extra_gb < 2.5, f"peak memory rose by {extra_gb:.2f} GB"


def test_tiled_inference_never_feeds_the_network_more_than_a_tile():
    sizes = []

    class Recording(torch.nn.Module):
        stride = 4

        def __init__(self):
            super().__init__()
            self.net = build_model("unshuffle", scale=4, channels=8, blocks=1)

        def forward(self, x):
            sizes.append(x.shape[-2] * x.shape[-1])
            return self.net(x)

    from pixel_utils.evaluation.inference import sharpen_tiled

    image = np.random.default_rng(0).random((1500, 2100, 3), dtype=np.float32)
    out = sharpen_tiled(Recording().eval(), image, tile=256, overlap=64)
    assert out.shape == image.shape and len(sizes) > 50
    assert max(sizes) <= 256 * 256


KILL_SCRIPT = textwrap.dedent("""
    import sys, time, numpy as np, torch
    from pixel_utils.data.datasets import PatchPairDataset
    from pixel_utils.data.sources import dead_leaves
    from pixel_utils.training import loop as training
    images = [dead_leaves(np.random.default_rng(i), size=48) for i in range(2)]
    mode = sys.argv[2]
    if mode == "slow-save":  # the step-6 checkpoint write hangs after its temp file is written
        real_save = torch.save
        def slow_save(obj, f, *a, **k):
            real_save(obj, f, *a, **k)
            if obj.get("step") == 6:
                print("saving", flush=True)
                time.sleep(30)
        training.torch.save = slow_save
    def loss_fn(model, x, y, step):
        print(f"step {step}", flush=True)
        if mode == "slow-step" and step == 6:
            time.sleep(30)
        return torch.nn.functional.l1_loss(model(x), y), {}
    cfg = training.TrainConfig(steps=10, warmup_steps=1, val_every=100, checkpoint_every=3)
    training.train("unshuffle", {"scale": 2, "channels": 8, "blocks": 1},
                   lambda r: PatchPairDataset(images, 16, 2, 10, seed=0), cfg, sys.argv[1],
                   loss_fn=loss_fn)
""")


@pytest.mark.parametrize(
    "mode, marker, last_good", [("slow-step", "step 6", 6), ("slow-save", "saving", 3)]
)
def test_sigkill_resumes_from_the_last_complete_checkpoint(tmp_path, mode, marker, last_good):
    ckpt = tmp_path / "run.pt"
    child = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(ckpt), mode],
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 120
    for line in child.stdout:
        if marker in line or time.time() > deadline:
            break
    time.sleep(0.5)  # mid-step, or mid-write of the checkpoint's temp file
    child.send_signal(signal.SIGKILL)
    child.wait()
    saved = load_checkpoint(ckpt)  # the file on disk is a complete, earlier checkpoint
    assert saved["step"] == last_good and not saved["complete"]
    from pixel_utils.data.datasets import PatchPairDataset
    from pixel_utils.data.sources import dead_leaves
    from pixel_utils.training.loop import TrainConfig, train

    images = [dead_leaves(np.random.default_rng(i), size=48) for i in range(2)]
    cfg = TrainConfig(steps=10, warmup_steps=1, val_every=100, checkpoint_every=3)

    def l1(model, x, y, step):
        return torch.nn.functional.l1_loss(model(x), y), {}

    result = train("unshuffle", {"scale": 2, "channels": 8, "blocks": 1},
                   lambda r: PatchPairDataset(images, 16, 2, 10, seed=0), cfg, ckpt,
                   loss_fn=l1)  # fmt: skip
    assert result.step == 10 and len(result.history["loss"]) == 10
    assert load_checkpoint(ckpt)["complete"]


def test_same_seed_gives_identical_metrics(tmp_path, monkeypatch):
    """The smoke pipeline (teacher, cache, both students, benchmark scores) twice from scratch."""
    from pixel_utils.data.benchmark import build_benchmark
    from pixel_utils.evaluation.scoring import evaluate_models, summarise, summary_json
    from pixel_utils.paths import benchmark_dir
    from pixel_utils.profiles import resolve_profile
    from pixel_utils.training import stages

    def run(root):
        monkeypatch.setenv("PIXEL_ROOT", str(root))
        p = resolve_profile("smoke", teacher_steps=6, student_steps=6, cache_batches=2)
        models = stages.trained_models(p)
        build_benchmark(benchmark_dir(p.name), p.benchmark_crop, p.seed, 1)
        scores = summarise(evaluate_models({"blurred": None, **models}, benchmark_dir(p.name)))
        return json.dumps(summary_json(scores), sort_keys=True)

    assert run(tmp_path / "a") == run(tmp_path / "b")


def test_a_transparent_colour_key_is_kept_as_alpha(tmp_path):
    from pixel_utils.data.images import write_image_file

    grey = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    Image.fromarray(grey, "L").save(tmp_path / "grey.png", transparency=0)
    rgb = np.dstack([grey, grey, 255 - grey])
    Image.fromarray(rgb, "RGB").save(tmp_path / "rgb.png", transparency=(0, 0, 255))
    for name, mode in (("grey.png", "LA"), ("rgb.png", "RGBA")):
        image = read_image_file(tmp_path / name)
        assert image.alpha is not None and image.alpha[0, 0] == 0 and image.alpha[0, 1] == 1
        write_image_file(tmp_path / f"out_{name}", image.rgb, image)
        with Image.open(tmp_path / f"out_{name}") as im:
            assert im.mode == mode and im.getpixel((0, 0))[-1] == 0


def test_lossless_webp_stays_lossless_and_camera_jpegs_keep_their_quality(tmp_path):
    from pixel_utils.data.images import write_image_file

    rng = np.random.default_rng(3)
    noise = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    Image.fromarray(noise).save(tmp_path / "l.webp", lossless=True)
    image = read_image_file(tmp_path / "l.webp")
    assert image.lossless
    write_image_file(tmp_path / "out.webp", image.rgb, image)
    with Image.open(tmp_path / "out.webp") as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), noise)
    Image.fromarray(noise).save(tmp_path / "y.webp", quality=80)
    assert not read_image_file(tmp_path / "y.webp").lossless
    # A camera JPEG with a second (preview) image opens as MPO; it is written as a JPEG at 95.
    Image.fromarray(noise).save(tmp_path / "cam.jpg", format="MPO", save_all=True,
                                append_images=[Image.fromarray(noise[::2, ::2])])  # fmt: skip
    image = read_image_file(tmp_path / "cam.jpg")
    assert image.format == "JPEG"
    write_image_file(tmp_path / "out.jpg", image.rgb, image)
    with Image.open(tmp_path / "out.jpg") as im:
        assert im.format == "JPEG" and im.quantization[0][0] <= 3  # quality 95 (2), not 75 (8)


def test_an_unwritable_format_and_a_huge_panorama_do_not_stop_the_batch(
    tmp_path, tiny_checkpoint, capsys
):
    src = tmp_path / "in"
    src.mkdir()
    (src / "0icon.xpm").write_text(
        '/* XPM */\nstatic char *x[] = {\n"2 2 1 1",\n"a c #ff0000",\n"aa",\n"aa"};\n'
    )
    Image.fromarray(np.full((8, 12, 3), 90, np.uint8)).save(src / "a.png")
    code = cli([str(src / "*"), "-o", str(tmp_path / "out"), "--model", str(tiny_checkpoint)])
    err = capsys.readouterr().err
    assert code == 1 and "0icon.xpm: XPM files cannot be written" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]
    # Beyond Pillow's decompression-bomb guard (179 MP), yet a valid photo: read, not refused.
    limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = 100
        Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "pano.png")
        assert read_image_file(tmp_path / "pano.png").rgb.shape == (20, 30, 3)
        assert Image.MAX_IMAGE_PIXELS == 100  # the guard is restored for everyone else
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def test_overlapping_reads_leave_the_pixel_guard_as_they_found_it(tmp_path):
    from pixel_utils.data.images import _no_pixel_limit

    limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = 100
        first, second = _no_pixel_limit(), _no_pixel_limit()
        # Two threads' reads, interleaved: the second starts while the first is lifted and
        # ends after it. Saving and restoring per read would leave None behind.
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)
        assert Image.MAX_IMAGE_PIXELS is None  # the second read is still going on
        second.__exit__(None, None, None)
        assert Image.MAX_IMAGE_PIXELS == 100
        # Also when a read fails.
        Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "pano.png")
        (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot a png")
        with pytest.raises(ImageReadError):
            read_image_file(tmp_path / "bad.png")
        assert Image.MAX_IMAGE_PIXELS == 100
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(4) as pool:
            shapes = list(pool.map(lambda _: read_image_file(tmp_path / "pano.png").rgb.shape,
                                   range(16)))  # fmt: skip
        assert shapes == [(20, 30, 3)] * 16 and Image.MAX_IMAGE_PIXELS == 100
    finally:
        Image.MAX_IMAGE_PIXELS = limit


@pytest.mark.parametrize("subsampling", [0, 1, 2])
def test_jpegs_keep_their_chroma_subsampling(tmp_path, subsampling):
    from PIL import JpegImagePlugin

    from pixel_utils.data.images import write_image_file

    rng = np.random.default_rng(subsampling)
    noise = (rng.random((32, 48, 3)) * 255).astype(np.uint8)
    Image.fromarray(noise).save(tmp_path / "in.jpg", quality=90, subsampling=subsampling)
    image = read_image_file(tmp_path / "in.jpg")
    assert image.subsampling == subsampling
    write_image_file(tmp_path / "out.jpg", image.rgb, image)
    with Image.open(tmp_path / "out.jpg") as im:
        assert JpegImagePlugin.get_sampling(im) == subsampling
    # A grey JPEG has no chroma to subsample, and is written grey.
    Image.fromarray(noise[..., 0]).save(tmp_path / "grey.jpg", quality=90)
    grey = read_image_file(tmp_path / "grey.jpg")
    assert grey.grey and grey.subsampling is None
    write_image_file(tmp_path / "grey_out.jpg", grey.rgb, grey)
    with Image.open(tmp_path / "grey_out.jpg") as im:
        assert im.mode == "L"


def test_a_dark_16_bit_image_read_as_mode_i_stays_dark(tmp_path):
    # Pillow opens a 16-bit PGM as mode "I"; one whose samples are all under 256 is a dark
    # 16-bit image, not an 8-bit one to be stretched 257 times brighter.
    samples = np.array([[0, 100, 200, 255], [1, 2, 3, 4]], ">u2")
    (tmp_path / "dark.pgm").write_bytes(b"P5\n4 2\n65535\n" + samples.tobytes())
    image = read_image_file(tmp_path / "dark.pgm")
    assert image.bits == 16 and image.grey
    np.testing.assert_allclose(image.rgb[..., 0], samples.astype(np.float32) / 65535, atol=1e-7)


def test_outputs_follow_the_users_umask(tmp_path, tiny_checkpoint):
    Image.fromarray(np.full((8, 12, 3), 90, np.uint8)).save(tmp_path / "a.png")
    old = os.umask(0o077)
    try:
        assert cli([str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--model",
                    str(tiny_checkpoint)]) == 0  # fmt: skip
    finally:
        os.umask(old)
    assert (tmp_path / "out" / "a.png").stat().st_mode & 0o777 == 0o600


def test_a_missing_model_or_bad_device_is_one_error_line(tmp_path, tiny_checkpoint, capsys):
    Image.fromarray(np.full((8, 12, 3), 90, np.uint8)).save(tmp_path / "a.png")
    assert cli([str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--model",
                str(tmp_path / "nope.pt")]) == 2  # fmt: skip
    assert "nope.pt" in capsys.readouterr().err
    assert cli([str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--model",
                str(tiny_checkpoint), "--device", "cdua"]) == 2  # fmt: skip
    assert "error:" in capsys.readouterr().err


def test_sixteen_bit_files_keep_their_depth_and_profile(tmp_path):
    import zlib

    from pixel_utils.data.images import write_image_file

    rng = np.random.default_rng(5)
    deep = (rng.random((6, 8, 3)) * 4095).astype(np.uint16)  # 12-bit data, declared by sBIT
    plain = tmp_path / "plain.png"
    with open(plain, "wb") as f:
        png.Writer(8, 6, greyscale=False, bitdepth=16).write(f, (deep << 4).reshape(6, -1))
    chunks = list(png.Reader(filename=str(plain)).chunks())
    profile = bytes(16) + b"RGB " + b"the rest of an RGB profile" * 3  # its colour space: RGB
    with open(tmp_path / "sbit.png", "wb") as f:
        iccp = (b"iCCP", b"p\0\0" + zlib.compress(profile))
        png.write_chunks(f, [chunks[0], (b"sBIT", bytes([12, 12, 12])), iccp, *chunks[1:]])
    image = read_image_file(tmp_path / "sbit.png")
    assert image.bits == 16
    assert np.allclose(image.rgb, deep / 4095.0, atol=1e-6)
    assert image.icc_profile == profile
    write_image_file(tmp_path / "out.png", image.rgb, image)
    with Image.open(tmp_path / "out.png") as im:
        assert im.info.get("icc_profile") == profile  # pypng alone would drop it
    assert png.Reader(filename=str(tmp_path / "out.png")).read()[3]["bitdepth"] == 16


def test_premultiplied_16_bit_tiff_is_read_at_full_depth_and_cmyk16_refused(tmp_path):
    import tifffile

    colour, alpha = 12345, 40000
    rgba = np.zeros((4, 5, 4), np.uint16)
    rgba[..., :3] = round(colour * alpha / 65535)  # premultiplied
    rgba[..., 3] = alpha
    tifffile.imwrite(tmp_path / "assoc.tif", rgba, photometric="rgb",
                     extrasamples=("assocalpha",))  # fmt: skip
    image = read_image_file(tmp_path / "assoc.tif")
    assert image.bits == 16
    assert np.allclose(image.rgb, colour / 65535, atol=2e-5)
    assert np.allclose(image.alpha, alpha / 65535)
    tifffile.imwrite(tmp_path / "cmyk.tif", np.zeros((4, 5, 4), np.uint16),
                     photometric="separated")  # fmt: skip
    with pytest.raises(ImageReadError, match="cmyk.tif: 16-bit SEPARATED TIFF"):
        read_image_file(tmp_path / "cmyk.tif")


def test_quality_sets_the_jpeg_and_lossy_webp_encoders_and_is_checked(tmp_path, tiny_checkpoint):
    from pixel_utils.data.images import write_image_file

    noise = (np.random.default_rng(0).random((32, 48, 3)) * 255).astype(np.uint8)
    inputs = [tmp_path / "in.jpg", tmp_path / "in.webp"]
    for path in inputs:
        Image.fromarray(noise).save(path, quality=90)
    for quality in (95, 40):
        out = tmp_path / f"q{quality}"
        args = ["-o", str(out), "--model", str(tiny_checkpoint), "--quality", str(quality)]
        assert cli([*map(str, inputs), *args]) == 0
        with Image.open(out / "in.jpg") as im:  # the first luminance step: 2 at 95, 20 at 40
            assert im.quantization[0][0] == (2 if quality == 95 else 20)
    webp_bytes = {q: (tmp_path / f"q{q}" / "in.webp").stat().st_size for q in (95, 40)}
    assert webp_bytes[40] < webp_bytes[95]
    with pytest.raises(SystemExit):
        cli([str(inputs[0]), "-o", str(tmp_path / "bad"), "--quality", "101"])
    image = read_image_file(inputs[0])
    with pytest.raises(ValueError, match="quality 0"):
        write_image_file(tmp_path / "x.jpg", image.rgb, image, quality=0)
