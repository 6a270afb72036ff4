"""Video in and out with PyAV (FFmpeg inside its wheel): sharpen a clip as a stream.

:func:`sharpen_video` decodes, sharpens and encodes frame by frame, so memory holds a few frames
whatever the clip's length. Each output frame keeps its input frame's timestamp (so the frame
count, order, timing and frame rate are the input's) and audio packets are copied untouched.
The output is H.264 (``libx264``, ``yuv420p``) in the input's container (MP4 for containers
that cannot hold H.264 well), written to a temporary file and renamed, so a failure never leaves
half a video and never touches the input. Problems are :class:`VideoError` naming the file.

A *frame function* maps one ``H×W×3`` uint8 RGB frame to another. :func:`frame_sharpener` makes
one from any model (PyTorch or onnxruntime); temporal methods
(:class:`~pixel_utils.evaluation.temporal.AlignedBlend`) are frame functions with state.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from pixel_utils.artefacts import atomic_write
from pixel_utils.progress import tqdm

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm")
#: Containers the output keeps; any other input is written as MP4.
_CONTAINER_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}

FrameFunction = Callable[[np.ndarray], np.ndarray]


class VideoError(ValueError):
    """A clip that cannot be read or written: the message names the file and the reason."""


def _av():
    try:
        import av
    except ImportError as err:  # the package depends on it; a broken install lands here
        raise VideoError("PyAV is not installed: pip install av") from err
    return av


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def video_output_path(path: Path) -> Path:
    """``path`` with a suffix whose container holds H.264 (``.avi``/``.webm`` become ``.mp4``)."""
    return path if path.suffix.lower() in _CONTAINER_FORMATS else path.with_suffix(".mp4")


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: Fraction
    frames: int  # as the container declares it; 0 where it does not say
    codec: str
    has_audio: bool


def _open(path: Path):
    av = _av()
    if not path.is_file():
        raise VideoError(f"{path}: file does not exist")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as err:
        raise VideoError(f"{path}: not a readable video ({err.strerror or err})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: has no video stream")
    return container


def probe(path: str | os.PathLike) -> VideoInfo:
    """Size, frame rate, declared frame count, codec and audio of a clip."""
    path = Path(path)
    container = _open(path)
    with container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(0)
        return VideoInfo(
            path, stream.codec_context.width, stream.codec_context.height, Fraction(rate),
            int(stream.frames or 0), stream.codec_context.name, bool(container.streams.audio),
        )  # fmt: skip


def read_video(path: str | os.PathLike, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """The clip's frames as ``H×W×3`` uint8 RGB arrays, in presentation order."""
    path = Path(path)
    av = _av()
    container = _open(path)
    with container:
        try:
            for i, frame in enumerate(container.decode(video=0)):
                if max_frames is not None and i >= max_frames:
                    return
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as err:
            raise VideoError(f"{path}: unreadable video data ({err.strerror or err})") from None


def _check_size(path: Path, width: int, height: int) -> None:
    if width < 2 or height < 2:
        raise VideoError(f"{path}: frame size {width}×{height} is too small")
    if width % 2 or height % 2:
        raise VideoError(
            f"{path}: frame size {width}×{height} has an odd side; H.264 in yuv420p needs even "
            "sides (crop or pad the clip first, e.g. ffmpeg -vf crop=trunc(iw/2)*2:trunc(ih/2)*2)"
        )


def _video_stream(output, rate: Fraction, width: int, height: int, crf: int, preset: str):
    stream = output.add_stream("libx264", rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    # Deterministic output (the same frames give the same bytes) and no B-frame reordering
    # delay, which a live sharpener does not want.
    stream.options = {"crf": str(crf), "preset": preset, "tune": "zerolatency"}
    return stream


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float | Fraction = 24,
    crf: int = 18,
    preset: str = "medium",
) -> Path:
    """Encode uint8 RGB frames as an H.264 clip at ``fps``, atomically. With the same frames
    the file is byte-identical (a test checks it)."""
    av = _av()
    path = video_output_path(Path(path))
    rate = Fraction(fps).limit_denominator(1001)

    def write(tmp: Path) -> None:
        with av.open(str(tmp), "w", format=_CONTAINER_FORMATS[path.suffix.lower()]) as output:
            output.metadata.clear()
            stream = None
            for i, frame in enumerate(frames):
                if stream is None:
                    height, width = frame.shape[:2]
                    _check_size(path, width, height)
                    stream = _video_stream(output, rate, width, height, crf, preset)
                    stream.codec_context.options["threads"] = "1"  # bit-exact across machines
                picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                picture.pts = i
                output.mux(stream.encode(picture))
            if stream is None:
                raise VideoError(f"{path}: no frames to write")
            output.mux(stream.encode(None))

    return atomic_write(path, write)


def _covered_seconds(video, last_pts, rate: Fraction) -> float:
    """Seconds from the stream's start to the end of the last decoded frame."""
    if last_pts is None:
        return 0.0
    start = video.start_time or 0
    return float((last_pts - start) * video.time_base + 1 / Fraction(rate))


@dataclass
class VideoResult:
    """What :func:`sharpen_video` did: frames written, audio packets copied, wall time."""

    source: Path
    output: Path
    frames: int
    audio_packets: int
    seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def frame_sharpener(model: torch.nn.Module) -> FrameFunction:
    """A frame function running ``model`` (PyTorch, or an onnxruntime ``OnnxModel``) on its
    device: uint8 → float in [0, 1] → model → rounded uint8."""
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    model.eval()

    @torch.inference_mode()
    def run(frame: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(frame).to(device).permute(2, 0, 1)[None].float().div_(255)
        y = model(x)[0].clamp_(0, 1).mul_(255).round_().to(torch.uint8)
        return y.permute(1, 2, 0).cpu().numpy()

    return run


def sharpen_video(
    source: str | os.PathLike,
    output: str | os.PathLike,
    process: FrameFunction,
    crf: int = 18,
    preset: str = "veryfast",
    overwrite: bool = False,
    progress: bool = True,
) -> VideoResult:
    """Decode ``source``, apply ``process`` to each frame, encode to ``output``, as a stream.

    Timestamps, frame rate and audio are the input's. ``output`` gets the suffix of
    :func:`video_output_path`; it must not be ``source`` and is replaced only with ``overwrite``.
    Raises :class:`VideoError` for unreadable, truncated, stream-less or odd-sized input; then no
    output is written.
    """
    av = _av()
    source, output = Path(source), video_output_path(Path(output))
    if output.exists() and output.resolve() == source.resolve():
        raise VideoError(f"{source}: not writing {output}: it is the input")
    if output.exists() and not overwrite:
        raise VideoError(f"{source}: not writing {output}: it exists (use --overwrite)")
    container = _open(source)
    frames_out, audio_packets, start = 0, 0, time.perf_counter()

    def write(tmp: Path) -> None:
        nonlocal frames_out, audio_packets
        fmt = _CONTAINER_FORMATS[output.suffix.lower()]
        with container, av.open(str(tmp), "w", format=fmt) as out:
            video = container.streams.video[0]
            video.thread_type = "AUTO"
            ctx = video.codec_context
            _check_size(source, ctx.width, ctx.height)
            rate = video.average_rate or video.guessed_rate or Fraction(24)
            out_video = _video_stream(out, rate, ctx.width, ctx.height, crf, preset)
            out_video.time_base = video.time_base  # so input timestamps carry over exactly
            audio = container.streams.audio[0] if container.streams.audio else None
            out_audio = out.add_stream_from_template(audio) if audio is not None else None
            declared = int(video.frames or 0)
            bar = tqdm(total=declared or None, desc=source.name, unit="frame",
                       disable=not progress)  # fmt: skip
            streams = [s for s in (video, audio) if s is not None]
            last_pts = None
            try:
                for packet in container.demux(streams):
                    if packet.stream.type == "audio":
                        if packet.dts is not None:  # the demuxer's final flush packet has none
                            packet.stream = out_audio
                            out.mux(packet)
                            audio_packets += 1
                        continue
                    for frame in packet.decode():
                        sharpened = process(frame.to_ndarray(format="rgb24"))
                        picture = av.VideoFrame.from_ndarray(sharpened, format="rgb24")
                        picture.pts, picture.time_base = frame.pts, frame.time_base
                        out.mux(out_video.encode(picture))
                        frames_out += 1
                        last_pts = frame.pts if frame.pts is not None else last_pts
                        bar.update()
                        if frames_out % 10 == 0:
                            seconds = time.perf_counter() - start
                            bar.set_postfix_str(f"{frames_out / seconds:.1f} fps")
            except av.error.FFmpegError as err:
                raise VideoError(
                    f"{source}: unreadable video data after {frames_out} frames "
                    f"({err.strerror or err}); the file may be truncated or corrupt"
                ) from None
            finally:
                bar.close()
            if declared and frames_out < declared:
                raise VideoError(
                    f"{source}: only {frames_out} of its {declared} frames could be decoded; "
                    "the file looks truncated"
                )
            # Containers that declare no frame count (Matroska) still declare a duration.
            covered = _covered_seconds(video, last_pts, rate)
            expected = container.duration / 1e6 if container.duration else None
            if not declared and expected and covered < expected - max(0.5, 0.1 * expected):
                raise VideoError(
                    f"{source}: decoded frames cover {covered:.2f} s of its declared "
                    f"{expected:.2f} s; the file looks truncated"
                )
            if frames_out == 0:
                raise VideoError(f"{source}: no frame could be decoded")
            out.mux(out_video.encode(None))

    atomic_write(output, write)
    return VideoResult(source, output, frames_out, audio_packets, time.perf_counter() - start)
