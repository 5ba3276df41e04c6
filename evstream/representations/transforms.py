"""Representations as thin transform objects: a serialisable ``config``, streaming state, ``reset()``.

Every transform maps one window of events to a dense ``float32 (C, H, W)`` array:

    rep = PolarityFrames(sensor_size=(34, 34), n_frames=4, out_size=(32, 32))
    x = rep(events)                       # (8, 32, 32): [frame0 OFF, frame0 ON, frame1 OFF, ...]
    x = rep(events, t_start, t_end)       # frames = 4 equal sub-windows of [t_start, t_end)
    from_config(rep.config)               # the same transform again (checkpoints store the config)

SAE and time surfaces also keep state across chunks: ``update(events)`` then ``read(t)`` at any time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from evstream.representations import functional as F
from evstream.slicing import TimeSlicer


def _resize(x: np.ndarray, out_size) -> np.ndarray:
    """Resize ``(C, H, W)`` to ``out_size`` ``(w, h)`` with OpenCV (area averaging when shrinking)."""
    if out_size is None:
        return x
    import cv2

    w, h = int(out_size[0]), int(out_size[1])
    if x.shape[1:] == (h, w):
        return x
    interp = cv2.INTER_AREA if w <= x.shape[2] and h <= x.shape[1] else cv2.INTER_LINEAR
    out = np.empty((x.shape[0], h, w), np.float32)
    for i in range(x.shape[0]):  # cv2.resize takes at most 4 channels per call with INTER_AREA
        out[i] = cv2.resize(x[i], (w, h), interpolation=interp)
    return out


@dataclass
class Representation:
    """Base: ``sensor_size`` (w, h) and optional ``out_size`` (w, h) for the OpenCV resize."""

    sensor_size: tuple[int, int]
    out_size: tuple[int, int] | None = field(default=None, kw_only=True)
    kind: str = field(default="", init=False)

    def __post_init__(self):
        self.sensor_size = (int(self.sensor_size[0]), int(self.sensor_size[1]))
        if self.sensor_size[0] < 1 or self.sensor_size[1] < 1:
            raise ValueError(f"sensor_size must be positive, got {self.sensor_size}")
        if self.out_size is not None:
            self.out_size = (int(self.out_size[0]), int(self.out_size[1]))

    @property
    def config(self) -> dict:
        d = asdict(self)
        d["sensor_size"] = list(self.sensor_size)
        d["out_size"] = None if self.out_size is None else list(self.out_size)
        return d

    @property
    def out_hw(self) -> tuple[int, int]:
        w, h = self.out_size or self.sensor_size
        return h, w

    def reset(self) -> None:
        pass


@dataclass(kw_only=True)
class PolarityFrames(Representation):
    """``n_frames`` x 2 polarity frames per window, split by time or by event count.

    ``split_by="time"``: without ``t_start``/``t_end`` the window is [first event, last event] cut into
    ``n_frames`` bins of ``(t_last - t_first) // n_frames`` µs (tonic ``n_time_bins``); ``tail=True`` (the
    default) adds the events after the last whole bin to the last frame, as SpikingJelly does, so no
    event is lost. With ``t_start``/``t_end`` the bins are equal sub-windows of ``[t_start, t_end)``.
    ``split_by="number"``: equal event counts (tonic ``n_event_bins``; ``tail`` as above).
    ``mode``: "count" or "binary"; ``normalize``: None, "max" (divide by the window's maximum) or a
    number (counts / number, clipped to 1).
    """

    n_frames: int = 4
    split_by: str = "time"
    mode: str = "count"
    normalize: str | float | None = None
    tail: bool = True

    def __post_init__(self):
        super().__post_init__()
        self.kind = "frames"
        if self.split_by not in ("time", "number"):
            raise ValueError(f"split_by must be 'time' or 'number', got {self.split_by!r}")
        if self.mode not in ("count", "binary"):
            raise ValueError(f"mode must be 'count' or 'binary', got {self.mode!r}")

    @property
    def channels(self) -> int:
        return 2 * self.n_frames

    def frames(self, events, t_start=None, t_end=None) -> np.ndarray:
        """Integer frames ``(n_frames, 2, H, W)`` before normalisation and resizing."""
        if t_start is not None and t_end is not None and self.split_by == "time":
            starts, ends = F.frames_in_window(events, self.sensor_size, self.n_frames, t_start, t_end)
        else:
            key = "n_time_bins" if self.split_by == "time" else "n_event_bins"
            starts, ends = F.frame_windows(events["t"], **{key: self.n_frames}, tail=self.tail)
        return F.accumulate_frames(events, self.sensor_size, starts, ends, self.mode == "binary")

    def __call__(self, events, t_start=None, t_end=None) -> np.ndarray:
        fr = self.frames(events, t_start, t_end).astype(np.float32)
        x = fr.reshape(-1, *fr.shape[2:])
        if self.normalize == "max":
            m = x.max()
            if m > 0:
                x /= m
        elif self.normalize is not None:
            x = np.minimum(x / float(self.normalize), 1.0)
        return _resize(x, self.out_size)


@dataclass(kw_only=True)
class EventCount(Representation):
    """Event counts per polarity, ``(2, H, W)``."""

    def __post_init__(self):
        super().__post_init__()
        self.kind = "count"

    channels = 2

    def __call__(self, events, t_start=None, t_end=None) -> np.ndarray:
        return _resize(F.count_image(events, self.sensor_size).astype(np.float32), self.out_size)


@dataclass(kw_only=True)
class SAE(Representation):
    """Surface of Active Events: per pixel and polarity the time of the last event, kept across chunks.

    ``read(t)`` gives the age ``t - SAE`` in µs clipped to ``horizon_us`` and scaled to [0, 1] as
    ``1 - age / horizon`` (1 = just fired, 0 = older than the horizon or never).
    """

    horizon_us: int = 50_000

    def __post_init__(self):
        super().__post_init__()
        self.kind = "sae"
        self.reset()

    channels = 2

    def reset(self):
        self.state = F.new_sae(self.sensor_size)
        self.t_last = None

    def update(self, events) -> None:
        F.update_sae(self.state, events)
        if len(events):
            self.t_last = int(events["t"][-1])

    def read(self, t=None) -> np.ndarray:
        t = self.t_last if t is None else t
        if t is None:
            return np.zeros((2, *self.sensor_size[::-1]), np.float32)
        age = t - self.state
        return np.clip(1.0 - age / self.horizon_us, 0.0, 1.0).astype(np.float32)

    def __call__(self, events, t_start=None, t_end=None) -> np.ndarray:
        self.reset()
        self.update(events)
        return _resize(self.read(None if t_end is None else t_end), self.out_size)


@dataclass(kw_only=True)
class TimeSurface(Representation):
    """Exponentially decayed time surface ``exp(-(t - SAE) / tau)``, readable at any time ``t``."""

    tau_us: float = 20_000.0

    def __post_init__(self):
        super().__post_init__()
        self.kind = "time_surface"
        self.reset()

    channels = 2

    def reset(self):
        self.state = F.new_sae(self.sensor_size)
        self.t_last = None

    def update(self, events) -> None:
        F.update_sae(self.state, events)
        if len(events):
            self.t_last = int(events["t"][-1])

    def read(self, t=None) -> np.ndarray:
        t = self.t_last if t is None else t
        if t is None:
            return np.zeros((2, *self.sensor_size[::-1]), np.float32)
        return F.decay_surface(self.state, t, self.tau_us, np.float32)

    def __call__(self, events, t_start=None, t_end=None) -> np.ndarray:
        self.reset()
        self.update(events)
        return _resize(self.read(t_end), self.out_size)


@dataclass(kw_only=True)
class VoxelGrid(Representation):
    """Voxel grid with bilinear weighting in time (tonic ``ToVoxelGrid``), ``(n_bins, H, W)``."""

    n_bins: int = 5

    def __post_init__(self):
        super().__post_init__()
        self.kind = "voxel"

    @property
    def channels(self) -> int:
        return self.n_bins

    def __call__(self, events, t_start=None, t_end=None) -> np.ndarray:
        g = F.to_voxel_grid(events, self.sensor_size, self.n_bins)[:, 0].astype(np.float32)
        return _resize(g, self.out_size)


class SlicedFrames:
    """Streaming polarity frames of fixed ``window_us`` (tonic ``ToFrame(time_window=...)`` windows) over
    any chunking: ``push(events)`` returns the ``(2, H, W)`` int16 frames of the windows now complete."""

    def __init__(self, sensor_size, window_us: int, binary: bool = False):
        self.sensor_size = (int(sensor_size[0]), int(sensor_size[1]))
        self.binary = binary
        self.slicer = TimeSlicer(window_us)

    def reset(self):
        self.slicer.reset()

    def push(self, events) -> list[np.ndarray]:
        slices = self.slicer.push(events)
        w, h = self.sensor_size
        out = np.zeros((len(slices), 2, h, w), np.int16)  # one allocation for the push, not one per frame
        for i, s in enumerate(slices):
            F.accumulate_frames(s.events, self.sensor_size, [0], [len(s.events)], self.binary, out=out[i:i + 1])
        return list(out)


@dataclass
class SpatialPool:
    """A region of ``sensor_size`` (w, h) mapped onto ``out_size`` (w, h), the sensor a model was trained on:
    ``roi`` (x, y, w, h) cut out, pooled ``factor`` x ``factor`` (:func:`~functional.pool_events`), centred
    in ``out_size`` (cropped or padded as tonic ``CenterCrop``); with ``mean`` only every ``factor``-squared-th
    event of each pooled pixel is kept (:func:`~functional.decimate`: counts as a camera of the model's
    resolution would give). :meth:`fit` chooses it; ``pool(events)``."""

    sensor_size: tuple[int, int]
    out_size: tuple[int, int]
    roi: tuple[int, int, int, int]
    factor: int = 1
    mean: bool = False
    kind: str = field(default="spatial_pool", init=False)

    def __post_init__(self):
        self.sensor_size = (int(self.sensor_size[0]), int(self.sensor_size[1]))
        self.out_size = (int(self.out_size[0]), int(self.out_size[1]))
        self.roi = tuple(int(v) for v in self.roi)
        self.factor = int(self.factor)
        if self.factor < 1 or min(self.out_size) < 1 or min(self.roi[2:]) < 1:
            raise ValueError(f"bad spatial pool {self.roi} / {self.factor} -> {self.out_size}")

    @property
    def pooled_size(self) -> tuple[int, int]:
        """The region's size after pooling (before the centre crop or padding)."""
        f = self.factor
        return -(-self.roi[2] // f), -(-self.roi[3] // f)

    @property
    def shift(self) -> tuple[int, int]:
        (pw, ph), (ow, oh) = self.pooled_size, self.out_size
        return -((pw - ow) // 2), -((ph - oh) // 2)  # tonic CenterCrop's offsets

    @property
    def identity(self) -> bool:
        return self.factor == 1 and self.roi == (0, 0, *self.sensor_size) and self.sensor_size == self.out_size

    @property
    def config(self) -> dict:
        return {"kind": self.kind, "sensor_size": list(self.sensor_size), "out_size": list(self.out_size),
                "roi": list(self.roi), "factor": self.factor, "mean": self.mean}

    def describe(self) -> str:
        x, y, w, h = self.roi
        (pw, ph), (ow, oh) = self.pooled_size, self.out_size
        fit = "" if (pw, ph) == (ow, oh) else (", centre-cropped" if pw >= ow and ph >= oh else ", centred")
        how = "averaged" if self.mean and self.factor > 1 else "pooled"
        return f"region {x},{y} {w}x{h} {how} {self.factor}x{self.factor} -> {pw}x{ph}{fit} into {ow}x{oh}"

    def __call__(self, events: np.ndarray) -> np.ndarray:
        if self.identity:
            return events
        out = F.pool_events(events, self.factor, self.roi, self.shift, self.out_size)
        return F.decimate(out, self.factor * self.factor) if self.mean and self.factor > 1 else out

    @classmethod
    def fit(cls, sensor_size, out_size, roi=None, downscale=None, mean=False) -> "SpatialPool | None":
        """The pool from a camera of ``sensor_size`` onto a model's ``out_size``: ``roi`` (None: the whole
        sensor, clipped to it), ``downscale`` an int factor, ``"auto"`` (the largest factor whose pooled
        region still covers ``out_size``: the region is then centre-cropped by less than one factor) or None
        (``"auto"`` when a ``roi`` is given; without one the sensor must already be ``out_size``: None when
        it is not). ``ValueError`` when the region misses the sensor."""
        sw, sh = int(sensor_size[0]), int(sensor_size[1])
        if roi is None:
            region = (0, 0, sw, sh)
        else:
            x0, y0 = max(0, int(roi[0])), max(0, int(roi[1]))
            x1, y1 = min(sw, int(roi[0]) + int(roi[2])), min(sh, int(roi[1]) + int(roi[3]))
            if x1 <= x0 or y1 <= y0:
                raise ValueError(f"region {tuple(roi)} lies outside the {sw}x{sh} sensor")
            region = (x0, y0, x1 - x0, y1 - y0)
        if downscale is None and roi is None:
            return cls((sw, sh), out_size, region, 1) if (sw, sh) == tuple(out_size) else None
        if downscale is None or downscale == "auto":
            factor = max(1, min(region[2] // int(out_size[0]), region[3] // int(out_size[1])))
        else:
            factor = int(downscale)
        return cls((sw, sh), out_size, region, factor, bool(mean))


class Pooled:
    """A representation of a camera's events through a :class:`SpatialPool`: ``sensor_size`` is the camera's,
    the output (``channels``, ``out_hw``, ``config``...) the wrapped representation's."""

    def __init__(self, rep, pool: SpatialPool):
        self.rep, self.pool = rep, pool
        self.sensor_size = pool.sensor_size

    def __call__(self, events, t_start=None, t_end=None) -> np.ndarray:
        return self.rep(self.pool(events), t_start, t_end)

    def __getattr__(self, name):
        if name in ("rep", "pool"):
            raise AttributeError(name)
        return getattr(self.rep, name)


KINDS = {"frames": PolarityFrames, "count": EventCount, "sae": SAE, "time_surface": TimeSurface,
         "voxel": VoxelGrid}


def from_config(cfg: dict) -> Representation:
    """Rebuild a representation from its ``config`` dict (as stored in checkpoints)."""
    cfg = dict(cfg)
    kind = cfg.pop("kind", "frames")
    if kind not in KINDS:
        raise ValueError(f"unknown representation kind {kind!r} (known: {', '.join(KINDS)})")
    return KINDS[kind](**cfg)
