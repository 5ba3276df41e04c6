"""Export a recording, or a span of it, to a video drawn as the GUI's event view draws it, or to events
(AEDAT4, ``.npz``, HDF5 through :mod:`evstream.writers`), optionally through the noise filters.

    export(ExportSpec("recordings/demo_digits.aedat4", "out.mp4", t0_us=1_000_000, t1_us=3_000_000))

Video: one frame every 1/``fps`` s of stream time, the :class:`~evstream.live.view.EventView` of the events
so far (``kind``, ``span_us`` accumulation, ``theme``), enlarged ``scale`` x (nearest pixel). MP4 through
OpenCV's ``mp4v`` codec; where that codec is missing the video is written as AVI (MJPG) next to it and the
result names that file. Every output is written under a temporary name and renamed when complete
(:mod:`evstream.fileio`); a cancelled or failed export leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evstream.errors import EvstreamError
from evstream.fileio import check_folder, commit, discard, temp_name

VIDEO = {".mp4": "mp4v", ".avi": "MJPG"}
EVENTS = (".aedat4", ".npz", ".h5", ".hdf5")


@dataclass(frozen=True)
class ExportSpec:
    """What to export: ``source`` (a recording) from ``t0_us`` to ``t1_us`` (stream time after its first
    event; None: to the end) into ``output`` (its extension chooses: .mp4/.avi video, or events)."""

    source: str
    output: str
    t0_us: int = 0
    t1_us: int | None = None
    fps: float = 30.0
    span_us: int = 40_000
    kind: str = "frames"
    theme: str = "dark"
    scale: int | None = None  # None: enough to make the short side at least 240 pixels
    filters: tuple = ()

    def __post_init__(self):
        from evstream.filters import parse_filters

        ext = Path(self.output).suffix.lower()
        if ext not in VIDEO and ext not in EVENTS:
            raise EvstreamError(f"cannot export to {ext or 'a name without extension'}: known outputs are "
                                f"{', '.join([*VIDEO, *EVENTS])}", where=self.output)
        if self.t1_us is not None and self.t1_us <= self.t0_us:
            raise EvstreamError(f"the span {self.t0_us / 1e6:g}..{self.t1_us / 1e6:g} s is empty")
        if not self.fps > 0 or self.span_us < 1:
            raise EvstreamError("fps and the accumulation time must be positive")
        object.__setattr__(self, "filters", parse_filters(self.filters))


class Cancelled(Exception):
    """The export was cancelled: nothing was written."""


def _spans(spec: ExportSpec, progress, cancel):
    """(events of the span, their end time after the first event) chunk by chunk, filtered; the source."""
    from evstream.filters import FilterChain
    from evstream.sources import FileSource

    src = FileSource(spec.source)
    end = min(spec.t1_us if spec.t1_us is not None else src.duration_us + 1, src.duration_us + 1)
    chain = FilterChain(src.sensor_size, spec.filters)
    if spec.t0_us:
        src.seek(spec.t0_us)

    def gen():
        t_first = None
        try:
            for chunk in src:
                if cancel is not None and cancel():
                    raise Cancelled()
                ev = chunk.events
                if t_first is None:
                    t_first = int(ev["t"][-1]) - int(src.position_us)
                rel = ev["t"] - t_first
                ev = ev[(rel >= spec.t0_us) & (rel < end)]
                ev = chain(ev) if chain else ev
                pos = min(int(src.position_us), end)
                if progress is not None:
                    progress(min(1.0, (pos - spec.t0_us) / max(1, end - spec.t0_us)))
                yield ev, t_first, pos
                if src.position_us >= end:
                    return
        finally:
            src.close()

    return src, gen(), end


def export(spec: ExportSpec, progress=None, cancel=None) -> dict:
    """Write ``spec.output``; ``progress(fraction)`` is called as it goes, ``cancel()`` -> True stops it
    (raises :class:`Cancelled`). Returns ``{"path", "frames" or "events", "counts"}``."""
    check_folder(spec.output)
    src, chunks, end = _spans(spec, progress, cancel)
    if Path(spec.output).suffix.lower() in VIDEO:
        return _video(spec, src, chunks, end)
    from evstream.writers import open_writer

    with open_writer(spec.output, src.sensor_size) as w:
        for ev, _, _ in chunks:
            w.write(ev)
    return {"path": str(spec.output), "events": w.count}


class _VideoFile:
    """cv2.VideoWriter on a temporary name; MP4 falls back to AVI/MJPG when its codec is missing."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int], codecs=None):
        import cv2

        codecs = codecs or VIDEO
        self.path = path
        self.tmp = temp_name(path)
        self.w = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*codecs[path.suffix.lower()]), fps, size)
        if not self.w.isOpened() and path.suffix.lower() == ".mp4":
            discard(self.tmp)
            self.path = path.with_suffix(".avi")
            self.tmp = temp_name(self.path)
            self.w = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*VIDEO[".avi"]), fps, size)
        if not self.w.isOpened():
            discard(self.tmp)
            raise EvstreamError("OpenCV cannot write this video (no codec for it)", where=path)

    def write(self, rgb: np.ndarray) -> None:
        self.w.write(np.ascontiguousarray(rgb[..., ::-1]))  # OpenCV wants BGR

    def close(self, keep: bool) -> None:
        self.w.release()
        if keep:
            commit(self.tmp, self.path)
        else:
            discard(self.tmp)


def _video(spec: ExportSpec, src, chunks, end: int, codecs=None) -> dict:
    from evstream.live.view import EventView

    w, h = (int(v) for v in src.sensor_size)
    scale = spec.scale or max(1, -(-240 // min(w, h)))
    view = EventView((w, h), spec.kind, span_us=spec.span_us)
    dt = 1e6 / spec.fps
    out = _VideoFile(Path(spec.output), spec.fps, (w * scale, h * scale), codecs)
    frames, k, ok, last, t_first = 0, 1, False, spec.t0_us, 0
    try:
        for ev, t_first, last in chunks:
            rel = ev["t"] - t_first
            while len(rel) and rel[-1] >= spec.t0_us + k * dt:  # frames whose time this chunk passed
                cut = int(np.searchsorted(rel, spec.t0_us + k * dt))
                view.update(ev[:cut], t_first + int(spec.t0_us + k * dt))
                ev, rel = ev[cut:], rel[cut:]
                out.write(_enlarged(view.image(spec.theme), scale))
                frames, k = frames + 1, k + 1
            if len(ev):
                view.update(ev, int(ev["t"][-1]))
        while spec.t0_us + k * dt <= last + 1:  # the quiet end of the span still has its frames
            view.update(ev[:0], t_first + int(spec.t0_us + k * dt))
            out.write(_enlarged(view.image(spec.theme), scale))
            frames, k = frames + 1, k + 1
        if frames == 0:
            out.write(_enlarged(view.image(spec.theme), scale))  # a span shorter than one frame: one frame
            frames = 1
        ok = True
    finally:
        out.close(keep=ok)
    return {"path": str(out.path), "frames": frames, "size": (w * scale, h * scale)}


def _enlarged(rgb: np.ndarray, scale: int) -> np.ndarray:
    return rgb if scale == 1 else np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)


__all__ = ["Cancelled", "ExportSpec", "export"]
