"""A DVS event emulator: frames in, events out, as a DVS pixel does it.

Each pixel keeps a reference log intensity; when the log intensity moves by more than the pixel's contrast
threshold (positive or negative, each with per-pixel mismatch) it emits one event per threshold crossed,
timestamps linearly interpolated between the two frames, and the reference moves by the thresholds
crossed. A refractory period, a leak (reference drifting down, i.e. spontaneous ON events) and shot noise
(random events at a rate per pixel) are optional. State is kept across frames, so a video or a webcam is
one continuous stream.

    emu = Emulator((640, 480), EmulatorConfig(pos_threshold=0.2))
    for frame, t_us in frames:
        events = emu.emulate(frame, t_us)          # EVENT_DTYPE, time-ordered

Sources built on it plug into :func:`evstream.sources.open_source`: ``EmulatorSource.from_video(path)``,
``EmulatorSource.from_webcam(index)``, and the N-MNIST-style three-saccade emulation of still images
(:func:`emulate_saccades`, :class:`SaccadeSource`), whose defaults match the real N-MNIST recordings
(docs/emulator.md).
"""

from __future__ import annotations

import gzip
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from evstream.errors import EvstreamError, StreamError
from evstream.events import EVENT_DTYPE, EventChunk
from evstream.jit import nb
from evstream.stream import Source

# ---------------------------------------------------------------------------------------------------
# the pixel model


@dataclass
class EmulatorConfig:
    """DVS pixel parameters. Thresholds are in natural-log intensity units."""

    pos_threshold: float = 0.25
    neg_threshold: float = 0.25
    threshold_sigma: float = 0.03  # per-pixel mismatch (std of each pixel's thresholds)
    refractory_us: int = 0
    leak_rate_hz: float = 0.0  # reference drift in thresholds per second (spontaneous ON events)
    shot_noise_hz: float = 0.0  # random events per pixel per second
    log_eps: float = 1e-3  # log(I + eps) with I in [0, 1]
    seed: int = 0


@nb.njit(cache=True, nogil=True)
def _count(logi, ref, pos, neg):
    n = 0
    for i in range(logi.shape[0]):
        d = logi[i] - ref[i]
        if d > 0:
            n += int(d / pos[i])
        elif d < 0:
            n += int(-d / neg[i])
    return n


@nb.njit(cache=True, nogil=True)
def _emit(logi, ref, pos, neg, last_t, width, t0, t1, refractory, ot, ox, oy, op):
    """Threshold crossings of every pixel between frame times t0 and t1; updates ``ref`` and ``last_t``."""
    n = 0
    span = t1 - t0
    for i in range(logi.shape[0]):
        d = logi[i] - ref[i]
        if d > 0:
            thr = pos[i]
            pol = 1
        elif d < 0:
            thr = neg[i]
            pol = 0
            d = -d
        else:
            continue
        k = int(d / thr)
        for j in range(1, k + 1):
            t = t0 + int(span * (j * thr) / d)
            if refractory > 0 and t - last_t[i] < refractory:
                continue
            ot[n] = t
            ox[n] = i % width
            oy[n] = i // width
            op[n] = pol
            last_t[i] = t
            n += 1
        if pol == 1:
            ref[i] += k * thr
        else:
            ref[i] -= k * thr
    return n


class Emulator:
    """Stateful frame-to-event converter for a ``sensor_size`` (w, h) stream (see module docstring)."""

    def __init__(self, sensor_size, config: EmulatorConfig | None = None):
        self.sensor_size = (int(sensor_size[0]), int(sensor_size[1]))
        self.config = config or EmulatorConfig()
        self.reset()

    def reset(self) -> None:
        w, h = self.sensor_size
        c = self.config
        self._rng = np.random.default_rng(c.seed)
        n = w * h
        self.pos = np.maximum(self._rng.normal(c.pos_threshold, c.threshold_sigma, n), 0.01)
        self.neg = np.maximum(self._rng.normal(c.neg_threshold, c.threshold_sigma, n), 0.01)
        self.ref: np.ndarray | None = None
        self.last_t = np.full(n, np.iinfo(np.int64).min // 2, np.int64)
        self.t_prev: int | None = None

    def log_intensity(self, frame: np.ndarray) -> np.ndarray:
        """Grey frame (uint8 0-255 or float 0-1, (h, w) or (h, w, 3)) to flat log intensity."""
        w, h = self.sensor_size
        f = np.asarray(frame)
        if f.ndim == 3:
            import cv2

            f = cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) if f.shape[2] == 3 else f[..., 0]
        if f.shape != (h, w):
            raise EvstreamError(f"frame of shape {f.shape} does not fit the {w}x{h} emulator (expected ({h}, {w}))")
        f = f.astype(np.float64) / 255.0 if f.dtype == np.uint8 else f.astype(np.float64)
        return np.log(f.ravel() + self.config.log_eps)

    def emulate(self, frame: np.ndarray, t_us: int) -> np.ndarray:
        """Events between the previous frame and this one (the first frame only sets the reference)."""
        logi = self.log_intensity(frame)
        t_us = int(t_us)
        if self.ref is None:
            self.ref = logi.copy()
            self.t_prev = t_us
            return np.zeros(0, EVENT_DTYPE)
        if t_us <= self.t_prev:
            raise EvstreamError(f"frame time {t_us} us is not after the previous frame's {self.t_prev} us")
        c = self.config
        dt = t_us - self.t_prev
        if c.leak_rate_hz:
            self.ref -= c.leak_rate_hz * dt * 1e-6 * self.pos
        n = _count(logi, self.ref, self.pos, self.neg)
        ev = np.empty(n, EVENT_DTYPE)
        k = _emit(logi, self.ref, self.pos, self.neg, self.last_t, self.sensor_size[0], self.t_prev, t_us,
                  c.refractory_us, ev["t"], ev["x"], ev["y"], ev["p"])
        ev = ev[:k]
        if c.shot_noise_hz:
            ev = np.concatenate([ev, self._shot_noise(self.t_prev, t_us)])
        self.t_prev = t_us
        return ev[np.argsort(ev["t"], kind="stable")]

    def _shot_noise(self, t0, t1) -> np.ndarray:
        w, h = self.sensor_size
        lam = self.config.shot_noise_hz * (t1 - t0) * 1e-6 * w * h
        m = self._rng.poisson(lam)
        ev = np.empty(m, EVENT_DTYPE)
        ev["t"] = self._rng.integers(t0 + 1, t1 + 1, m)
        ev["x"] = self._rng.integers(0, w, m)
        ev["y"] = self._rng.integers(0, h, m)
        ev["p"] = self._rng.integers(0, 2, m)
        return ev


# ---------------------------------------------------------------------------------------------------
# N-MNIST-style saccades of still images

# The three saccades of N-MNIST (Orchard et al. 2015): the sensor moves along an isosceles triangle,
# each side in about 100 ms; the image is seen shifted by up to a few pixels.
SACCADE_PATH = ((0.0, 0.0), (3.0, 6.0), (6.0, 0.0), (0.0, 0.0))


@dataclass
class SaccadeConfig:
    """Three-saccade motion of a still image in front of the emulated sensor."""

    saccade_us: int = 85_000  # duration of each of the three saccades
    between_us: int = 15_000  # still time between two saccades
    frame_rate_hz: float = 1000.0  # internal rendering rate
    amplitude: float = 1.0  # scales SACCADE_PATH (pixels)
    pause_us: int = 10_000  # still time after the last saccade (no events)

    @property
    def sample_us(self) -> int:
        """Duration of one sample: three saccades, the pauses between them and the final pause."""
        return 3 * self.saccade_us + 2 * self.between_us + self.pause_us


def _render(image: np.ndarray, sensor_size, dx: float, dy: float) -> np.ndarray:
    """The image centred on the sensor, shifted by (dx, dy) pixels with bilinear interpolation."""
    import cv2

    w, h = sensor_size
    ih, iw = image.shape
    m = np.float32([[1, 0, (w - iw) / 2 + dx - 3.0], [0, 1, (h - ih) / 2 + dy - 3.0]])
    return cv2.warpAffine(image.astype(np.float32) / 255.0, m, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)


def saccade_frames(image: np.ndarray, sensor_size=(34, 34), config: SaccadeConfig | None = None,
                   t0_us: int = 0) -> Iterator[tuple[np.ndarray, int]]:
    """Frames of ``image`` moved along the three-saccade path, with their timestamps (µs)."""
    c = config or SaccadeConfig()
    image = np.asarray(image)
    if image.ndim != 2 or min(image.shape) < 2:
        raise EvstreamError(f"a still image must be a 2-D grey image, got shape {image.shape}")
    w, h = sensor_size
    if image.shape[0] > h or image.shape[1] > w:
        raise EvstreamError(f"image of shape {image.shape} is larger than the {w}x{h} sensor")
    step = 1e6 / c.frame_rate_hz
    n = int(round(c.saccade_us / step))
    t = t0_us
    yield _render(image, sensor_size, 0.0, 0.0), int(t)
    for leg, ((x0, y0), (x1, y1)) in enumerate(zip(SACCADE_PATH[:-1], SACCADE_PATH[1:])):
        if leg:  # hold still between saccades: the next motion starts after the pause
            t += c.between_us
            yield _render(image, sensor_size, c.amplitude * x0, c.amplitude * y0), int(round(t))
        for k in range(1, n + 1):
            s = 0.5 - 0.5 * np.cos(np.pi * k / n)  # smooth start and stop, like an eye or a pan-tilt unit
            dx = c.amplitude * (x0 + (x1 - x0) * s)
            dy = c.amplitude * (y0 + (y1 - y0) * s)
            t += step
            yield _render(image, sensor_size, dx, dy), int(round(t))


def emulate_saccades(image: np.ndarray, sensor_size=(34, 34), seed: int = 0,
                     config: EmulatorConfig | None = None, saccade: SaccadeConfig | None = None,
                     t0_us: int = 0) -> np.ndarray:
    """Events of ``image`` seen through three saccades on a ``sensor_size`` emulated sensor."""
    cfg = config or EmulatorConfig(**{**asdict(NMNIST_EMULATOR), "seed": seed})
    emu = Emulator(sensor_size, cfg)
    parts = [emu.emulate(f, t) for f, t in saccade_frames(image, sensor_size, saccade, t0_us)]
    return np.concatenate(parts)


FONTS = (0, 2, 3, 4, 6, 7)  # OpenCV Hershey simplex, duplex, complex, triplex, script simplex / complex


def font_digit(digit: int, rng: np.random.Generator) -> np.ndarray:
    """A printed ``digit`` as MNIST shows a handwritten one: a 28x28 white-on-black ``uint8`` image, the
    glyph (an OpenCV Hershey font, random stroke width, scale and slant) fitted into a 20x20 box and centred
    by its mass, with up to a pixel of jitter; every draw from ``rng``."""
    import cv2

    canvas = np.zeros((64, 64), np.uint8)
    font = int(rng.choice(FONTS))
    scale = rng.uniform(1.4, 1.9)
    thick = int(rng.integers(3, 7))
    (tw, th), _ = cv2.getTextSize(str(digit), font, scale, thick)
    org = (int((64 - tw) / 2), int((64 + th) / 2))
    cv2.putText(canvas, str(digit), org, font, scale, 255, thick, cv2.LINE_AA)
    shear = rng.uniform(-0.3, 0.3)
    m = np.float32([[1, shear, -shear * 32], [0, 1, 0]])
    canvas = cv2.warpAffine(canvas, m, (64, 64))
    ys, xs = np.nonzero(canvas > 30)
    crop = canvas[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    h, w = crop.shape
    s = 20.0 / max(h, w)
    crop = cv2.resize(crop, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    out = np.zeros((28, 28), np.float32)
    h, w = crop.shape
    y0, x0 = (28 - h) // 2, (28 - w) // 2
    out[y0:y0 + h, x0:x0 + w] = crop
    cy, cx = np.array(np.nonzero(out > 0)).mean(axis=1)  # centre of mass, as MNIST
    jx, jy = rng.uniform(-1, 1, 2)
    m = np.float32([[1, 0, 14 - cx + jx], [0, 1, 14 - cy + jy]])
    return np.clip(cv2.warpAffine(out, m, (28, 28)), 0, 255).astype(np.uint8)


# Defaults chosen to match the real N-MNIST recordings (docs/emulator.md, scripts/validate_emulator.py).
NMNIST_EMULATOR = EmulatorConfig(pos_threshold=0.45, neg_threshold=0.45, threshold_sigma=0.03,
                                 refractory_us=0, log_eps=0.1)


def read_mnist_idx(folder) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images ``uint8 (N, 28, 28)`` and labels ``int64 (N,)`` from gzipped IDX files in ``folder``."""
    folder = Path(folder)
    imgs = sorted(folder.glob("*images*idx3*"))
    labs = sorted(folder.glob("*labels*idx1*"))
    if not imgs or not labs:
        raise EvstreamError("no MNIST '*images*idx3*' and '*labels*idx1*' files", where=folder)

    def load(path, magic):
        opener = gzip.open if path.suffix == ".gz" else open
        try:
            with opener(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise EvstreamError(f"cannot read IDX file ({exc})", where=path) from None
        if len(data) < 8 or int.from_bytes(data[:4], "big") != magic:
            raise EvstreamError("not an IDX file (wrong magic)", where=path, offset=0)
        return data

    d = load(imgs[0], 2051)
    n, rows, cols = (int.from_bytes(d[i:i + 4], "big") for i in (4, 8, 12))
    if len(d) < 16 + n * rows * cols:
        raise EvstreamError("truncated IDX image file", where=imgs[0])
    images = np.frombuffer(d, np.uint8, n * rows * cols, 16).reshape(n, rows, cols)
    d = load(labs[0], 2049)
    labels = np.frombuffer(d, np.uint8, int.from_bytes(d[4:8], "big"), 8).astype(np.int64)
    if len(labels) != n:
        raise EvstreamError(f"{n} images but {len(labels)} labels", where=folder)
    return images, labels


# ---------------------------------------------------------------------------------------------------
# sources


class EmulatorSource(Source):
    """Events from a video file or a webcam through the emulator: a :class:`~evstream.stream.Source`
    (live for a webcam; a video is a recording that cannot seek)."""

    def __init__(self, capture, name: str, live: bool, config: EmulatorConfig | None = None,
                 size: tuple[int, int] | None = None, speed: float | None = None, **_ignored):
        import cv2

        self._cap = capture
        self.name = name
        self.is_live = live
        self.speed = speed
        ok, frame = capture.read()
        if not ok or frame is None:
            capture.release()
            raise EvstreamError("no frames (empty or unreadable video)" if not live else "no frames from webcam",
                                where=name)
        if size is not None:
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        self._size = size
        h, w = frame.shape[:2]
        self.sensor_size = (w, h)
        self.meta = {"format": "emulator", "path": name}
        self.fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
        if not (0 < self.fps < 10_000):
            self.fps = 30.0
        self.emulator = Emulator(self.sensor_size, config)
        self._first = frame
        self._closed = False
        self._index = 0

    @classmethod
    def from_video(cls, path, **opts) -> "EmulatorSource":
        import cv2

        p = Path(path)
        if not p.is_file():
            raise EvstreamError("no such video file", where=p)
        cap = cv2.VideoCapture(str(p))
        if not cap.isOpened():
            raise EvstreamError("OpenCV cannot open this video", where=p)
        return cls(cap, str(p), live=False, **opts)

    @classmethod
    def from_webcam(cls, index: int = 0, **opts) -> "EmulatorSource":
        import cv2

        cap = cv2.VideoCapture(int(index))
        if not cap.isOpened():
            raise StreamError(f"no webcam at index {index}")
        return cls(cap, f"webcam:{index}", live=True, **opts)

    def _time(self) -> int:
        if self.is_live:
            return int(time.monotonic() * 1e6)
        return int(round(self._index * 1e6 / self.fps))

    def __iter__(self) -> Iterator[EventChunk]:
        import cv2

        frame = self._first
        wall0 = time.perf_counter()
        while not self._closed:
            t = self._time()
            ev = self.emulator.emulate(frame, t)
            if len(ev):
                yield EventChunk(ev, self.sensor_size, self.meta)
            ok, frame = self._cap.read()
            if not ok or frame is None:
                return  # end of the video, or the webcam went away: the stream ends cleanly
            if self._size is not None:
                frame = cv2.resize(frame, self._size, interpolation=cv2.INTER_AREA)
            self._index += 1
            if self.speed and not self.is_live:
                delay = wall0 + self._index / self.fps / self.speed - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class SaccadeSource(Source):
    """Still images, each moved through the three saccades, one after another as one event stream (a
    :class:`~evstream.stream.Source`, not live)."""

    is_live = False

    def __init__(self, images, sensor_size=(34, 34), gap_us: int = 20_000, seed: int = 0,
                 config: EmulatorConfig | None = None, saccade: SaccadeConfig | None = None):
        self.images = list(images)
        self.sensor_size = (int(sensor_size[0]), int(sensor_size[1]))
        self.gap_us = gap_us
        self.seed = seed
        self.config = config
        self.saccade = saccade or SaccadeConfig()
        self.meta = {"format": "saccades", "path": "saccades"}
        self.spans: list[tuple[int, int]] = []  # (t_start, t_end) of each image
        self._closed = False

    def __iter__(self) -> Iterator[EventChunk]:
        t0 = 0
        sample_us = self.saccade.sample_us
        for i, img in enumerate(self.images):
            if self._closed:
                return
            cfg = self.config or EmulatorConfig(**{**asdict(NMNIST_EMULATOR), "seed": self.seed + i})
            ev = emulate_saccades(img, self.sensor_size, config=cfg, saccade=self.saccade, t0_us=t0)
            self.spans.append((t0, t0 + sample_us))
            if len(ev):
                yield EventChunk(ev, self.sensor_size, self.meta)
            t0 += sample_us + self.gap_us
