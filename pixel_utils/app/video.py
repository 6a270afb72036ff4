"""Video in and out with PyAV (FFmpeg inside its wheel): sharpen a clip as a stream.

:func:`sharpen_video` decodes, sharpens and encodes frame by frame, so memory holds a few frames
whatever the clip's length. Each output frame keeps its input frame's timestamp (so the frame
count, order, timing and frame rate are the input's), the display rotation a phone recorded is
kept (:func:`display_rotation`) and audio packets are copied untouched.
The output is H.264 (``libx264``, ``yuv420p``; ``yuv420p10le``, High 10, for a clip of more than
8 bits) in the input's container (MP4 for containers
that cannot hold H.264 well), written to a temporary file and renamed, so a failure never leaves
half a video and never touches the input. Problems are :class:`VideoError` naming the file.

A *frame function* maps one ``H×W×3`` RGB frame to another of the same type: uint8, or uint16
(0–65535) for a clip of 10 or 12 bits, which would lose its depth and band in 8 bits.
:func:`frame_sharpener` makes one from any model (PyTorch or onnxruntime); temporal methods
(:class:`~pixel_utils.evaluation.temporal.AlignedBlend`) are frame functions with state. A
frame function may come in stages (:class:`StagedFrameFunction`, or an object whose
``staged()`` returns one): :func:`sharpen_video` then runs the work that does not need the model
on its decoding and encoding threads.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from pixel_utils.artefacts import atomic_write
from pixel_utils.data.images import to_uint16
from pixel_utils.progress import tqdm

#: What is read as video: the common camera, phone, screen-recorder and web containers (MPEG
#: program and transport streams, AVCHD's ``.mts``/``.m2ts``, Flash, 3GPP) whose codecs the
#: FFmpeg inside PyAV decodes and whose audio MP4 carries.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts",
                  ".mts", ".m2ts", ".flv", ".3gp")  # fmt: skip
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
    """``path`` with a suffix whose container holds H.264 (``.avi``, ``.webm``, ``.mpg`` and the
    other containers not in :data:`_CONTAINER_FORMATS` become ``.mp4``)."""
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


def display_rotation(path: str | os.PathLike) -> int:
    """The rotation, in degrees counter-clockwise, that players apply to the clip's frames.

    Phone clips are stored sideways with a display matrix that turns them upright when
    played; the sharpened clip must carry the same, or it plays sideways. It is read from the
    first decoded frame (PyAV exposes the matrix there); 0 when there is none, or when that
    frame cannot be decoded (:func:`sharpen_video` then reports why)."""
    av = _av()
    try:
        with _open(Path(path)) as container:
            for frame in container.decode(container.streams.video[0]):
                return round(frame.rotation or 0) % 360
    except (VideoError, av.error.FFmpegError):
        pass
    return 0


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


def spread_frames(path: str | os.PathLike, count: int, min_gap: int = 1) -> list[np.ndarray]:
    """Up to ``count`` frames (``H×W×3`` uint8 RGB) spread evenly over the clip, at least
    ``min_gap`` frames apart: one at the start of each ``count``-th of its duration.

    Each is found by seeking to the keyframe before its time and decoding forward to it, so a
    long clip is not decoded whole. A clip too short for ``count`` frames ``min_gap`` apart, or
    whose container declares no duration, gives one frame in ``min_gap`` from its start.
    """
    path = Path(path)
    av = _av()
    container = _open(path)
    with container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 0)
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = (container.duration or 0) / av.time_base
        try:
            if duration * rate < count * min_gap:
                return [frame.to_ndarray(format="rgb24") for frame in
                        islice(container.decode(stream), 0, count * min_gap, min_gap)]  # fmt: skip
            start = float((stream.start_time or 0) * stream.time_base)
            frames = []
            for k in range(count):
                target = start + duration * k / count
                container.seek(int(target / stream.time_base), stream=stream)
                for frame in container.decode(stream):
                    # half a frame's slack: timestamps are rounded to the stream's time base
                    if frame.time is None or frame.time >= target - 0.5 / rate:
                        frames.append(frame.to_ndarray(format="rgb24"))
                        break
            return frames
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


def _video_stream(
    output, rate: Fraction, width: int, height: int, crf: int, preset: str, threads: int = 1,
    pix_fmt: str = "yuv420p",
):  # fmt: skip
    stream = output.add_stream("libx264", rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
    # No B-frame reordering delay, which a live sharpener does not want. A fixed thread count
    # (zerolatency threads by slices) keeps the bytes the same on every machine.
    stream.options = {"crf": str(crf), "preset": preset, "tune": "zerolatency",
                      "threads": str(threads)}  # fmt: skip
    return stream


def _bits_per_sample(ctx) -> int:
    """The most bits of any component of the decoder's pixel format (8 when it is unknown)."""
    av = _av()
    name = getattr(ctx.format, "name", None) or ctx.pix_fmt
    try:
        return max(c.bits for c in av.VideoFormat(name).components)
    except (TypeError, ValueError):
        return 8


#: FFmpeg's matrix codes (AVColorSpace) → the matrix swscale converts RGB with.
_MATRICES = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "ITU601", 7: "SMPTE240M", 9: "BT2020",
             10: "BT2020"}  # fmt: skip


def _colour_tags(ctx) -> dict | None:
    """The input's colour description (matrix, primaries, transfer, range), when it names a
    matrix: the output must be converted from RGB with that matrix and say so, or players
    that assume BT.709 for untagged HD show shifted colours. None for untagged input."""
    matrix = _MATRICES.get(int(ctx.colorspace or 0))
    if matrix is None:
        return None
    full = int(ctx.color_range or 0) == 2  # JPEG (full) range; otherwise the usual limited
    return {"matrix": matrix, "range": "JPEG" if full else "MPEG",
            "codes": {"colorspace": int(ctx.colorspace), "color_range": 2 if full else 1,
                      "color_primaries": int(ctx.color_primaries or 2),
                      "color_trc": int(ctx.color_trc or 2)}}  # fmt: skip


#: Channel layouts for audio whose channels carry no names (PCM in AVI): MP4 refuses those.
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}


def _audio_stream(output, audio):
    """A copy of the ``audio`` stream's settings in ``output``, with a named channel layout
    where the input's channels have none and one is standard for their count."""
    stream = output.add_stream_from_template(audio)
    layout = audio.codec_context.layout
    if all(channel.name == "NONE" for channel in layout.channels):
        named = _DEFAULT_LAYOUTS.get(len(layout.channels))
        if named:
            stream.codec_context.layout = named
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
                picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                picture.pts = i
                output.mux(stream.encode(picture))
            if stream is None:
                raise VideoError(f"{path}: no frames to write")
            output.mux(stream.encode(None))

    return atomic_write(path, write)


def _tagged_end(stream) -> float | None:
    """Where a Matroska stream ends, in seconds on the file's clock, from its ``DURATION``
    tag (``HH:MM:SS.nnnnnnnnn``, possibly with a language suffix); None without one."""
    for key, value in stream.metadata.items():
        if key.upper().split("-")[0] != "DURATION":
            continue
        try:
            hours, minutes, seconds = value.strip().split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        except ValueError:
            return None
    return None


def _end_seconds(pts, duration, time_base, fallback: float = 0.0) -> float:
    """When a packet or frame stops showing, in seconds on the file's clock (``fallback``
    seconds after it starts where it declares no duration)."""
    return float(pts * time_base) + (float(duration * time_base) if duration else fallback)


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


@dataclass(frozen=True)
class StagedFrameFunction:
    """A frame function in three steps: ``prepare`` (frame → model input), ``infer`` and
    ``finish`` (model output → frame of the input's type). Called, it runs all three;
    :func:`sharpen_video` runs ``prepare`` on its decoding thread and ``finish`` on its
    encoding thread, so the layout conversions overlap with the model instead of waiting.

    ``concurrent``, where given, makes the model stage frame-parallel: ``concurrent(n)``
    returns an ``infer`` that ``n`` threads may call at once, each call on its own share of the
    cores (the same results as ``infer``). Only for an ``infer`` without state between frames.
    """

    prepare: Callable
    infer: Callable
    finish: Callable
    concurrent: Callable[[int], Callable] | None = None

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return self.finish(self.infer(self.prepare(frame)))


def as_staged(process: FrameFunction) -> StagedFrameFunction:
    """``process`` in stages: itself if staged; its own :meth:`staged` form if it offers one
    (a recurrent blend splits into an input side and an output side); otherwise the whole
    function as the model stage."""
    if isinstance(process, StagedFrameFunction):
        return process
    if callable(getattr(process, "staged", None)):
        return process.staged()
    return StagedFrameFunction(_unchanged, process, _unchanged)


def staged_around(process: FrameFunction, before: Callable, after: Callable) -> StagedFrameFunction:
    """``process`` in stages, with something of each frame carried alongside it: ``before(frame)``
    on the decoding thread (ahead of ``process``'s own ``prepare``), then
    ``after(output, carried)`` on the encoding thread. Frame-parallel where ``process`` is, as
    long as ``before`` and ``after`` keep any state between frames to themselves."""
    inner = as_staged(process)

    def prepare(frame: np.ndarray):
        carried = before(frame)
        return inner.prepare(frame), carried

    def carrying(infer: Callable) -> Callable:
        return lambda prepared: (infer(prepared[0]), prepared[1])

    def finish(inferred) -> np.ndarray:
        return after(inner.finish(inferred[0]), inferred[1])

    concurrent = None
    if inner.concurrent is not None:

        def concurrent(n: int) -> Callable:
            return carrying(inner.concurrent(n))

    return StagedFrameFunction(prepare, carrying(inner.infer), finish, concurrent)


def frame_sharpener(model: torch.nn.Module) -> StagedFrameFunction:
    """A frame function running ``model`` (PyTorch, or an onnxruntime ``OnnxModel``) on its
    device: uint8 (or uint16) → float in [0, 1] → model → rounded to the frame's type.

    An ``OnnxModel`` runs in a session that does not spin-wait (decoding and encoding share
    the cores), on contiguous arrays: both measured faster on video.
    """
    from pixel_utils.app.onnx_export import OnnxModel

    if isinstance(model, OnnxModel):
        return _onnx_frame_sharpener(model)
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    model.eval()

    @torch.inference_mode()
    def prepare(frame: np.ndarray) -> tuple[torch.Tensor, bool]:
        deep = frame.dtype == np.uint16
        x = torch.from_numpy(frame.astype(np.float32) if deep else frame).to(device)
        return x.permute(2, 0, 1)[None].float().div_(65535 if deep else 255), deep

    @torch.inference_mode()
    def infer(prepared: tuple[torch.Tensor, bool]) -> tuple[torch.Tensor, bool]:
        return model(prepared[0])[0], prepared[1]

    @torch.inference_mode()
    def finish(inferred: tuple[torch.Tensor, bool]) -> np.ndarray:
        y, deep = inferred
        if deep:
            return to_uint16(y.permute(1, 2, 0).cpu().numpy())
        y = y.clamp_(0, 1).mul_(255).round_().to(torch.uint8)
        return y.permute(1, 2, 0).cpu().numpy()

    return StagedFrameFunction(prepare, infer, finish)


def _onnx_frame_sharpener(model) -> StagedFrameFunction:
    """The model on 8-bit frames inside its engine (:class:`FrameModel`, onnxruntime or
    OpenVINO, as ``model`` runs): the conversions to and from float run in its graph, not in
    numpy, and no torch runs on the decoding and encoding threads (its thread pool would
    compete with the engine's for the same cores, measured slower). Frame-parallel
    (``concurrent``): ``n`` sessions of the same graph, each with 1/n of the model's threads.
    A 16-bit frame (a 10- or 12-bit clip) runs on the float graph (:class:`OnnxModel`, the
    photo path) instead, whose sessions are made when such a frame first comes."""

    from pixel_utils.app.onnx_export import FrameModel, OnnxModel
    from pixel_utils.models.networks import pad_image_to_stride

    engine = model.engine
    served = FrameModel(model.path, model.threads, spin=False, engine=engine)

    def prepare(frame: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        if frame.dtype == np.uint16:
            padded = pad_image_to_stride(frame, served.stride).astype(np.float32)
            padded *= np.float32(1 / 65535)
            return padded.transpose(2, 0, 1)[None], frame.shape[:2]
        return served.pad(frame), frame.shape[:2]

    def sessions_for(threads: int) -> tuple[Callable, queue.Queue]:
        """An ``infer`` over free sessions of ``threads`` threads each, and the queue its
        8-bit sessions are to be put in (one per caller); its float sessions are made on first
        need (at most one per caller)."""
        eight_bit: queue.Queue = queue.Queue()
        floating: queue.Queue = queue.Queue()

        def infer_on_a_free_session(prepared: tuple[np.ndarray, tuple[int, int]]) -> np.ndarray:
            frame, (h, w) = prepared
            if frame.dtype == np.float32:
                try:
                    session = floating.get_nowait()
                except queue.Empty:
                    session = OnnxModel(model.path, threads, spin=False, engine=engine)
                try:
                    return to_uint16(session.run_array(frame)[0].transpose(1, 2, 0)[:h, :w])
                finally:
                    floating.put(session)
            session = eight_bit.get()  # as many sessions as callers: one is always free
            try:
                return session.run_padded(frame)[:h, :w]
            finally:
                eight_bit.put(session)

        return infer_on_a_free_session, eight_bit

    infer, first = sessions_for(model.threads)
    first.put(served)

    def finish(y: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(y)

    def concurrent(n: int) -> Callable:
        threads = max(1, (model.threads or torch.get_num_threads()) // n)
        infer_on_a_free_session, sessions = sessions_for(threads)
        for _ in range(n):
            sessions.put(
                FrameModel(model.path, threads, spin=False, graph=served.graph, engine=engine)
            )
        return infer_on_a_free_session

    return StagedFrameFunction(prepare, infer, finish, concurrent)


def _unchanged(x):
    return x


#: libx264 threads for sharpened video (fixed, so the bytes do not depend on the machine).
ENCODER_THREADS = 2
#: Frames held between two pipeline stages: enough to smooth their jitter, memory stays small.
PIPELINE_DEPTH = 4
#: Frames the model sharpens at once when its frame function allows it (``concurrent``), each
#: on half the cores. On 2 cores one single-threaded onnxruntime run per core beats two threads
#: on one frame: the int8 student's layers are too small to keep two threads busy between
#: their synchronisations (measured on a 2-core AVX2 EPYC at 720p: 15.2 against 12.5 frames/s
#: for the model alone, 12.2 against 10.0 end to end; on a 2-core Xeon with VNNI, 41.2 against
#: 36.7 for the model alone).
FRAMES_IN_FLIGHT = 2


class _Pipeline:
    """Runs ``source`` (an iterator) on a reader thread and ``sink`` on a writer thread; the
    caller iterates over what the reader yields and ``send``s results to the writer, in order.
    An exception on either thread is raised in the caller's; leaving the ``with`` block waits
    for the writer to finish (or, after an error, stops both threads)."""

    _END = object()

    def __init__(self, source: Iterator, sink: Callable[[object], None]):
        self._source, self._sink = source, sink
        self._inbox: queue.Queue = queue.Queue(PIPELINE_DEPTH)
        self._outbox: queue.Queue = queue.Queue(PIPELINE_DEPTH)
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._threads = [threading.Thread(target=self._read, daemon=True),
                         threading.Thread(target=self._write, daemon=True)]  # fmt: skip

    def _put(self, box: queue.Queue, item) -> bool:
        while not self._stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        try:
            for item in self._source:
                if not self._put(self._inbox, item):
                    return
        except BaseException as err:  # raised again in the caller's thread
            self._errors.append(err)
        self._put(self._inbox, self._END)

    def _write(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    item = self._outbox.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is self._END:
                    return
                self._sink(item)
        except BaseException as err:
            self._errors.append(err)
            self._stop.set()

    def _raise(self) -> None:
        if self._errors:
            raise self._errors[0]

    def __enter__(self) -> _Pipeline:
        for thread in self._threads:
            thread.start()
        return self

    def __iter__(self) -> Iterator:
        while True:
            self._raise()
            try:
                item = self._inbox.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is self._END:
                self._raise()  # the reader failed before its end
                return
            yield item

    def send(self, item) -> None:
        if not self._put(self._outbox, item):
            self._raise()

    def __exit__(self, kind, error, tb) -> None:
        if kind is None:
            self._put(self._outbox, self._END)
            self._threads[1].join()
        self._stop.set()
        for thread in self._threads:
            thread.join()
        if kind is None:
            self._raise()


def sharpen_video(
    source: str | os.PathLike,
    output: str | os.PathLike,
    process: FrameFunction,
    crf: int = 18,
    preset: str = "ultrafast",
    overwrite: bool = False,
    progress: bool = True,
    frames_in_flight: int = FRAMES_IN_FLIGHT,
) -> VideoResult:
    """Decode ``source``, apply ``process`` to each frame, encode to ``output``, as a stream.

    Timestamps, frame rate and audio are the input's. Decoding, the model and encoding run on
    three threads with a few frames between them; a model stage that allows it (a
    :class:`StagedFrameFunction` with ``concurrent``) sharpens ``frames_in_flight`` frames at
    once, each on its share of the cores, and hands them on in order. The default x264
    preset, ``ultrafast``, is the one that keeps 720p real-time on 2 cores (measured: veryfast
    costs ~20% of the fps for files ~13% smaller at the same ``crf``). ``output`` gets the
    suffix of :func:`video_output_path`; an existing file, ``source`` itself included, is
    replaced only with ``overwrite``, and only once the whole result is written (atomically:
    a failure leaves it as it was).
    Raises :class:`VideoError` for unreadable, truncated, stream-less or odd-sized input; then no
    output is written.
    """
    av = _av()
    source, output = Path(source), video_output_path(Path(output))
    if output.exists() and not overwrite:
        why = "it is the input" if output.resolve() == source.resolve() else "it exists"
        raise VideoError(f"{source}: not writing {output}: {why} (use --overwrite)")
    rotation = display_rotation(source)
    container = _open(source)
    frames_out, audio_packets, start = 0, 0, time.perf_counter()

    def write(tmp: Path) -> None:
        nonlocal frames_out, audio_packets
        fmt = _CONTAINER_FORMATS[output.suffix.lower()]
        with container, av.open(str(tmp), "w", format=fmt) as out:
            video = container.streams.video[0]
            # One decoding thread: the cores are better spent on the model (measured).
            video.thread_type = "AUTO"
            video.codec_context.thread_count = 1
            ctx = video.codec_context
            _check_size(source, ctx.width, ctx.height)
            rate = video.average_rate or video.guessed_rate or Fraction(24)
            # A clip of more than 8 bits (an HDR phone clip) is sharpened in 16-bit RGB and
            # written in 10 bits, the most H.264 (x264) holds: in 8 bits it would band.
            deep = _bits_per_sample(ctx) > 8
            rgb_format, yuv_format = ("rgb48le", "yuv420p10le") if deep else ("rgb24", "yuv420p")
            out_video = _video_stream(out, rate, ctx.width, ctx.height, crf, preset,
                                      threads=ENCODER_THREADS, pix_fmt=yuv_format)  # fmt: skip
            # The input's time base for the stream and for the encoder itself, so every input
            # timestamp carries over exactly: an encoder at 1/rate would round a variable
            # frame rate clip's times onto a grid, and two frames rounded onto one tick stop
            # the muxer.
            out_video.time_base = out_video.codec_context.time_base = video.time_base
            if rotation:
                out_video.set_display_rotation(rotation)  # upright when played, as the input
            if ctx.sample_aspect_ratio:  # anamorphic clips keep their displayed shape
                out_video.codec_context.sample_aspect_ratio = ctx.sample_aspect_ratio
            colour = _colour_tags(ctx)
            if colour:
                for name, code in colour["codes"].items():
                    setattr(out_video.codec_context, name, code)
            # Every audio track (a second language, a commentary) is copied as it is.
            out_audio = {a.index: _audio_stream(out, a) for a in container.streams.audio}
            declared = int(video.frames or 0)
            # How far the decoded video, and it or any other stream, reach on the file's clock.
            decoded = {"frames": 0, "video_end": 0.0, "end": 0.0}
            staged = as_staged(process)
            prepare, infer, finish = staged.prepare, staged.infer, staged.finish

            def demux() -> Iterator[tuple]:
                """("video", RGB array, pts, time_base) and ("audio", packet), in file order."""
                try:
                    for packet in container.demux():  # every stream, for where they end
                        if packet.stream.index != video.index:
                            stamp = packet.pts if packet.pts is not None else packet.dts
                            if stamp is None:  # the demuxer's final flush
                                continue
                            end = _end_seconds(stamp, packet.duration, packet.time_base)
                            decoded["end"] = max(decoded["end"], end)
                            if packet.stream.index in out_audio:
                                yield ("audio", packet)
                            continue
                        for frame in packet.decode():
                            decoded["frames"] += 1
                            if frame.pts is not None:
                                end = _end_seconds(frame.pts, frame.duration, frame.time_base,
                                                   fallback=1 / float(rate))  # fmt: skip
                                decoded["video_end"] = max(decoded["video_end"], end)
                                decoded["end"] = max(decoded["end"], end)
                            rgb = frame.to_ndarray(format=rgb_format)
                            yield ("video", prepare(rgb), frame.pts, frame.time_base)
                except av.error.FFmpegError as err:
                    raise VideoError(
                        f"{source}: unreadable video data after {decoded['frames']} frames "
                        f"({err.strerror or err}); the file may be truncated or corrupt"
                    ) from None

            def mux(item: tuple) -> None:
                nonlocal audio_packets
                if item[0] == "audio":
                    item[1].stream = out_audio[item[1].stream.index]
                    out.mux(item[1])
                    audio_packets += 1
                    return
                _, result, pts, time_base = item
                rgb = finish(result)
                if deep and rgb.dtype == np.uint8:  # a frame function that only gives 8 bits
                    rgb = rgb.astype(np.uint16) * np.uint16(257)
                picture = av.VideoFrame.from_ndarray(rgb, format=rgb_format)
                if colour:  # back to YUV with the matrix the frames were decoded with
                    picture = picture.reformat(format=yuv_format, dst_colorspace=colour["matrix"],
                                               dst_color_range=colour["range"])  # fmt: skip
                picture.pts, picture.time_base = pts, time_base
                out.mux(out_video.encode(picture))

            bar = tqdm(total=declared or None, desc=source.name, unit="frame",
                       disable=not progress)  # fmt: skip
            parallel = staged.concurrent is not None and frames_in_flight > 1
            workers = frames_in_flight if parallel else 1
            model_stage = staged.concurrent(workers) if parallel else infer
            # Three stages on their own threads (decode → model → encode), a few frames
            # between them: FFmpeg and onnxruntime release the GIL, so they overlap. The model
            # stage runs on ``workers`` threads; results leave it in the order frames came.
            with (
                bar,  # closed however the run ends, so a failure leaves no half-drawn bar
                _Pipeline(demux(), mux) as pipeline,
                ThreadPoolExecutor(workers, thread_name_prefix="sharpen") as pool,
            ):
                in_flight: deque = deque()  # (future or None for audio, item), in file order
                frames_in_model = 0  # the video items of in_flight

                def pass_on(keep: int) -> None:
                    """Send on, in order, what leads in_flight until at most ``keep`` frames
                    are left in the model (audio at the front goes at once)."""
                    nonlocal frames_out, frames_in_model
                    while in_flight and (in_flight[0][0] is None or frames_in_model > keep):
                        future, item = in_flight.popleft()
                        if future is not None:
                            frames_in_model -= 1
                            item = ("video", future.result(), *item[2:])
                            frames_out += 1
                            bar.update()
                            if frames_out % 10 == 0:
                                seconds = time.perf_counter() - start
                                bar.set_postfix_str(f"{frames_out / seconds:.1f} fps")
                        pipeline.send(item)

                for item in pipeline:
                    video_frame = item[0] == "video"
                    future = pool.submit(model_stage, item[1]) if video_frame else None
                    in_flight.append((future, item))
                    frames_in_model += video_frame
                    # In parallel, one frame more than the workers: a worker that finishes
                    # early finds the next frame waiting instead of idling until the oldest
                    # frame is done (2-core Xeon with VNNI, shipped student, 60 frames at 720p,
                    # median of 5 runs: 27.1 against 25.3 fps end to end).
                    pass_on(keep=workers if parallel else 0)
                pass_on(keep=0)
            frame_s = 1 / float(rate)
            if declared and frames_out < declared:
                # AVI counts the ticks a variable-rate clip skips as frames: fewer frames
                # than declared are missing only if the decoded ones stop short of the end.
                video_end = (
                    float(((video.start_time or 0) + video.duration) * video.time_base)
                    if video.duration else (container.duration or 0) / 1e6
                )  # fmt: skip
                # Other containers time their frames exactly: half a frame of slack.
                slack = (1.5 if container.format.name == "avi" else 0.5) * frame_s
                if not video_end or decoded["video_end"] < video_end - slack:
                    raise VideoError(
                        f"{source}: only {frames_out} of its {declared} frames could be "
                        "decoded; the file looks truncated"
                    )
            # Matroska written by FFmpeg or mkvmerge records where each stream ends (a
            # DURATION tag, at the head of the file): the video must reach it within half a
            # frame, so a clip missing even its last frame is refused.
            tagged_end = _tagged_end(video)
            if not declared and tagged_end and decoded["video_end"] < tagged_end - frame_s / 2:
                raise VideoError(
                    f"{source}: its video ends at {decoded['video_end']:.3f} s, short of the "
                    f"{tagged_end:.3f} s its container records; the file looks truncated"
                )
            # Containers that declare no frame count (Matroska) still declare a duration,
            # which the decoded video or another stream must reach, on the file's clock,
            # within two frames (a tenth of the duration once let a long clip lose a minute).
            # Matroska's duration counts from 0, not from the first timestamp: taking it so is
            # never stricter than the other reading.
            if not declared and container.duration:
                expected = container.duration / 1e6
                if decoded["end"] < expected - 2 * frame_s:
                    raise VideoError(
                        f"{source}: its streams end at {decoded['end']:.2f} s of the "
                        f"declared {expected:.2f} s; the file looks truncated"
                    )
            if frames_out == 0:
                raise VideoError(f"{source}: no frame could be decoded")
            out.mux(out_video.encode(None))

    try:
        atomic_write(output, write)
    except av.error.FFmpegError as err:
        if isinstance(err, OSError):  # the output folder cannot be written: the caller says so
            raise
        raise VideoError(f"{source}: encoding {output} failed ({err.strerror or err})") from None
    return VideoResult(source, output, frames_out, audio_packets, time.perf_counter() - start)
