"""Representations as pure functions: events in, dense arrays out (the math; state lives in transforms).

Every per-event loop is a numba kernel (``cache=True``: compiled once per machine, not per call). Each
function checks that events lie on the sensor and raises one clear line otherwise. Shapes follow tonic:
frames are ``(n, 2, H, W)`` (polarity 0 = OFF first), flattened to ``(2n, H, W)`` as model input.

Semantics (tested against tonic on real recordings, see docs/representations.md):
- ``frame_windows`` / ``to_frames``: tonic ``ToFrame`` slicing (``time_window``, ``event_count``,
  ``n_time_bins``, ``n_event_bins``, overlap, include_incomplete); ``n_time_bins`` with ``tail=True`` puts the
  events after the last whole bin into the last frame, as SpikingJelly's ``integrate_events_by_fixed_frames``.
- ``to_timesurface``: tonic ``ToTimesurface`` (global surface after each ``dt`` window, decay ``tau``).
- ``to_voxel_grid``: tonic ``ToVoxelGrid`` (bilinear in time, polarity ±1), same summation order.
"""

from __future__ import annotations

import numpy as np

from evstream.errors import EvstreamError
from evstream.jit import nb

# ---------------------------------------------------------------------------------------------------
# numba kernels (return -1, or the index of the first event outside the sensor). They take the event
# record array itself: ``ev[j].x`` loads from the packed record (faster than four field views: docs/representations.md).


@nb.njit(cache=True, nogil=True)
def _accumulate_windows(ev, starts, ends, out, width, height, binary):
    for i in range(starts.shape[0]):
        for j in range(starts[i], ends[i]):
            xi = np.int64(ev[j].x)
            yi = np.int64(ev[j].y)
            if xi >= width or yi >= height:
                return j
            if binary:
                out[i, ev[j].p, yi, xi] = 1
            else:
                out[i, ev[j].p, yi, xi] += 1
    return -1


@nb.njit(cache=True, nogil=True)
def _sae_update(sae, ev, width, height):
    flat = sae.reshape(-1)
    plane = width * height
    for j in range(ev.shape[0]):
        xj = np.int64(ev[j].x)
        yj = np.int64(ev[j].y)
        if xj >= width or yj >= height:
            return j
        flat[np.int64(ev[j].p) * plane + yj * width + xj] = ev[j].t
    return -1


@nb.njit(cache=True, nogil=True)
def _voxel(ev, ts, n_bins, grid, width, height):
    """Two passes in event order (left weights, then right weights), as tonic's two ``np.add.at``."""
    for j in range(ev.shape[0]):
        if ev[j].x >= width or ev[j].y >= height:
            return j
    for j in range(ev.shape[0]):
        ti = int(ts[j])
        if ti < n_bins:
            pol = 1.0 if ev[j].p > 0 else -1.0
            grid[ti, ev[j].y, ev[j].x] += pol * (1.0 - (ts[j] - ti))
    for j in range(ev.shape[0]):
        ti = int(ts[j])
        if ti + 1 < n_bins:
            pol = 1.0 if ev[j].p > 0 else -1.0
            grid[ti + 1, ev[j].y, ev[j].x] += pol * (ts[j] - ti)
    return -1


@nb.njit(cache=True, nogil=True)
def _ts_args(ev, starts, ends, i0, t0, dt, tau, pos, fired, comp, nfired, counts, args, width, height):
    """Time-surface windows ``i0, i0+1, ...``: update the SAE with each window's events, then write the
    exponent ``-(t_ref - sae) / tau`` (tonic's float64 arithmetic) of every fired pixel into ``args``,
    window after window, while they fit (at least one window). Pixels are numbered in order of first
    firing: ``pos[pixel]`` is that number (-1: never fired), ``fired[number]`` the pixel,
    ``comp[number]`` the pixel's last time (the SAE, compacted), so the
    exponents of a window are a contiguous run ``comp[:nfired]``. ``counts[k]``: how many exponents window
    ``i0 + k`` wrote. Returns (next window, exponents written), or (-1 - j, 0) when event ``j`` lies
    outside the sensor."""
    plane = width * height
    nf = nfired[0]
    m = 0
    i = i0
    while i < starts.shape[0]:
        lo = starts[i]
        hi = ends[i]
        if i > i0 and m + nf + (hi - lo) > args.shape[0]:  # the window may add (hi - lo) pixels
            break
        for j in range(lo, hi):
            e = ev[j]
            xj = np.int64(e.x)
            yj = np.int64(e.y)
            if xj >= width or yj >= height:
                return -1 - j, 0
            k = np.int64(e.p) * plane + yj * width + xj
            q = pos[k]
            if q < 0:
                q = nf
                pos[k] = q
                fired[q] = k
                nf += 1
            comp[q] = e.t
        t_ref = np.float64((i + 1) * dt + t0)
        for q in range(nf):
            args[m + q] = -(t_ref - np.float64(comp[q])) / tau
        counts[i - i0] = nf
        m += nf
        i += 1
    nfired[0] = nf
    return i, m


@nb.njit(cache=True, nogil=True)
def _ts_scatter(out, i0, i1, fired, counts, vals):
    """Frames ``out[i0:i1]``: 0 everywhere (tonic's exp(-inf)), then the value of each pixel numbered
    below the window's count (the frame stays in L2 between the two passes)."""
    m = 0
    for i in range(i0, i1):
        frame = out[i].reshape(-1)
        frame[:] = 0.0
        nf = counts[i - i0]
        for q in range(nf):
            frame[fired[q]] = vals[m + q]
        m += nf


@nb.njit(cache=True, nogil=True)
def _fired_args(sae, t_ref, tau, idx, args):
    """Flat indices of the fired pixels and their exponents ``-(t_ref - sae) / tau``; returns the count."""
    flat = sae.reshape(-1)
    never = np.iinfo(np.int64).min // 2
    tr = np.float64(t_ref)
    m = 0
    for k in range(flat.shape[0]):
        if flat[k] != never:
            idx[m] = k
            args[m] = -(tr - np.float64(flat[k])) / tau
            m += 1
    return m


@nb.njit(cache=True, nogil=True)
def _scatter(out, idx, vals):
    flat = out.reshape(-1)
    for q in range(idx.shape[0]):
        flat[idx[q]] = vals[q]


def _outside(events, j, sensor_size):
    w, h = sensor_size
    raise EvstreamError(f"event {j} at (x={int(events['x'][j])}, y={int(events['y'][j])}) lies outside "
                        f"the configured {w}x{h} sensor")


# ---------------------------------------------------------------------------------------------------
# polarity frames


def frame_windows(t: np.ndarray, *, time_window=None, event_count=None, n_time_bins=None,
                  n_event_bins=None, overlap=0, include_incomplete=False, start_time=None, end_time=None,
                  tail=False) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) event indices of each frame, exactly as tonic slices (see module docstring)."""
    given = [v is not None for v in (time_window, event_count, n_time_bins, n_event_bins)]
    if sum(given) != 1:
        raise ValueError("give exactly one of time_window, event_count, n_time_bins, n_event_bins")
    n = len(t)
    if time_window is not None:
        stride = time_window - overlap
        if stride <= 0:
            raise ValueError("overlap must be smaller than time_window")
        if n == 0 and (start_time is None or end_time is None):
            return np.zeros(1, np.int64), np.zeros(1, np.int64)
        t0 = t[0] if start_time is None else start_time
        t1 = t[-1] if end_time is None else end_time
        dur = t1 - t0
        k = (dur - time_window) / stride
        n_slices = max(int(np.ceil(k) + 1 if include_incomplete else np.floor(k) + 1), 1)
        st = np.arange(n_slices) * stride + t0
        return np.searchsorted(t, st), np.searchsorted(t, st + time_window)
    if event_count is not None:
        count = min(event_count, n)
        stride = event_count - overlap
        if stride <= 0:
            raise ValueError("overlap must be smaller than event_count")
        k = (n - count) / stride
        n_slices = int(np.ceil(k) + 1 if include_incomplete else np.floor(k) + 1)
        starts = (np.arange(n_slices) * stride).astype(np.int64)
        return np.minimum(starts, n), np.minimum(starts + count, n)  # python slicing clips the same way
    if n_time_bins is not None:
        if n == 0:
            z = np.zeros(n_time_bins, np.int64)
            return z, z
        window = (t[-1] - t[0]) // n_time_bins * (1 + overlap)
        stride = window * (1 - overlap)
        st = np.arange(n_time_bins) * stride + t[0]
        starts, ends = np.searchsorted(t, st), np.searchsorted(t, st + window)
        if tail:
            ends[-1] = n
        return starts, ends
    spike_count = int(n // n_event_bins * (1 + overlap))
    stride = int(spike_count * (1 - overlap))
    starts = np.arange(n_event_bins) * stride
    ends = starts + spike_count
    if tail:
        ends[-1] = n
    return starts, ends


def frames_in_window(events: np.ndarray, sensor_size, n_frames: int, t_start: int, t_end: int) -> tuple:
    """(start, end) indices of ``n_frames`` equal sub-windows of ``[t_start, t_end)`` (integer edges)."""
    edges = t_start + (np.arange(n_frames + 1, dtype=np.int64) * (t_end - t_start)) // n_frames
    idx = np.searchsorted(events["t"], edges)
    return idx[:-1], idx[1:]


def accumulate_frames(events: np.ndarray, sensor_size, starts, ends, binary=False, dtype=np.int16,
                      out=None) -> np.ndarray:
    """Frames ``(n, 2, H, W)``: events ``starts[i]:ends[i]`` counted (or marked) in frame ``i``; into
    ``out`` (zeroed by the caller) when given."""
    w, h = sensor_size
    if out is None:
        out = np.zeros((len(starts), 2, h, w), dtype=dtype)
    j = _accumulate_windows(events, np.asarray(starts, np.int64), np.asarray(ends, np.int64), out, w, h, binary)
    if j >= 0:
        _outside(events, j, sensor_size)
    return out


def to_frames(events: np.ndarray, sensor_size, **slicing) -> np.ndarray:
    """tonic ``ToFrame`` semantics: ``(n, 2, H, W)`` int16 counts (``binary=True`` for 0/1)."""
    binary = slicing.pop("binary", False)
    starts, ends = frame_windows(events["t"], **slicing)
    return accumulate_frames(events, sensor_size, starts, ends, binary)


def count_image(events: np.ndarray, sensor_size) -> np.ndarray:
    """Event counts per polarity and pixel, ``(2, H, W)`` int32."""
    n = len(events)
    return accumulate_frames(events, sensor_size, [0], [n], dtype=np.int32)[0]


# ---------------------------------------------------------------------------------------------------
# SAE and time surfaces

NEVER = np.iinfo(np.int64).min // 2  # SAE value of a pixel that has not fired


def new_sae(sensor_size) -> np.ndarray:
    w, h = sensor_size
    return np.full((2, h, w), NEVER, dtype=np.int64)


def update_sae(sae: np.ndarray, events: np.ndarray) -> np.ndarray:
    """Write each event's time into the Surface of Active Events ``(2, H, W)`` in place (last wins)."""
    _, h, w = sae.shape
    j = _sae_update(sae, events, w, h)
    if j >= 0:
        _outside(events, j, (w, h))
    return sae


def decay_surface(sae: np.ndarray, t_ref: float, tau: float, dtype=np.float64) -> np.ndarray:
    """``exp(-(t_ref - sae) / tau)`` per pixel (0 where the pixel never fired): tonic's float64
    arithmetic and numpy's ``exp`` (numba's differs in the last bit), evaluated only at fired pixels."""
    n = sae.size
    idx = np.empty(n, np.int64)
    args = np.empty(n, np.float64)
    m = _fired_args(sae, t_ref, float(tau), idx, args)
    out = np.zeros(sae.shape, dtype)
    _scatter(out, idx[:m], np.exp(args[:m]))
    return out


TS_CHUNK = 1 << 16  # exponents per numpy exp call in to_timesurface (fits in L2)


def to_timesurface(events: np.ndarray, sensor_size, dt: int, tau: float, overlap: int = 0,
                   include_incomplete: bool = False) -> np.ndarray:
    """tonic ``ToTimesurface``: the global time surface after each ``dt`` window, ``(n, 2, H, W)`` float64.

    Bit for bit equal to tonic: the same float64 exponent per fired pixel, numpy's ``exp`` on a compact
    array of them (numba kernels do the SAE update, gather and scatter; never-fired pixels are 0)."""
    w, h = sensor_size
    starts, ends = frame_windows(events["t"], time_window=dt, overlap=overlap,
                                 include_incomplete=include_incomplete)
    n = len(starts)
    out = np.empty((n, 2, h, w), np.float64)
    pos = np.full(2 * h * w, -1, np.int32)
    fired = np.empty(2 * h * w, np.int64)
    comp = np.empty(2 * h * w, np.int64)
    nfired = np.zeros(1, np.int64)
    counts = np.empty(n, np.int64)
    cap = max(TS_CHUNK, 2 * h * w)
    args = np.empty(cap, np.float64)
    vals = np.empty(cap, np.float64)
    t0 = int(events["t"][0])
    i = 0
    while i < n:
        i1, m = _ts_args(events, starts, ends, i, t0, dt, float(tau), pos, fired, comp, nfired, counts,
                         args, w, h)
        if i1 < 0:
            _outside(events, -1 - i1, sensor_size)
        np.exp(args[:m], out=vals[:m])
        _ts_scatter(out, i, i1, fired, counts, vals)
        i = i1
    return out


# ---------------------------------------------------------------------------------------------------
# voxel grid


def to_voxel_grid(events: np.ndarray, sensor_size, n_time_bins: int) -> np.ndarray:
    """tonic ``ToVoxelGrid``: ``(n, 1, H, W)`` float64, bilinear in normalised time, polarity ±1."""
    w, h = sensor_size
    grid = np.zeros((n_time_bins, h, w), np.float64)
    if len(events) == 0:
        return grid[:, None]
    t = events["t"]
    span = t[-1] - t[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        ts = n_time_bins * (t.astype(np.float64) - t[0]) / span
    if span == 0:
        ts = np.zeros(len(t))  # tonic divides by zero here (NaN bins); we put every event in bin 0
    j = _voxel(events, ts, n_time_bins, grid, w, h)
    if j >= 0:
        _outside(events, j, sensor_size)
    return grid[:, None]


# ---------------------------------------------------------------------------------------------------
# spatial pooling (region of interest + downscaling)


def pool_events(events: np.ndarray, factor: int = 1, roi=None, shift=(0, 0), out_size=None) -> np.ndarray:
    """A camera's events mapped onto a smaller sensor: the events inside ``roi`` (x, y, w, h; None: all),
    their coordinates made relative to its corner and floor-divided by ``factor`` (every event kept, several
    may land on one pixel: sum pooling of counts, as tonic ``Downsample(spatial_factor=1/factor)`` and
    dv-processing's ``scale``), then moved by ``shift`` (dx, dy: a centre crop or padding, as tonic
    ``CenterCrop``); those left of or above the origin and, with ``out_size`` (w, h), outside it are dropped. A new array; order kept."""
    factor = int(factor)
    if factor < 1:
        raise EvstreamError(f"downscale factor must be >= 1, not {factor}")
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    keep = None
    if roi is not None:
        x0, y0, w, h = (int(v) for v in roi)
        keep = (x >= x0) & (x < x0 + w) & (y >= y0) & (y < y0 + h)
        x, y = x - x0, y - y0
    x = x // factor + int(shift[0])
    y = y // factor + int(shift[1])
    if out_size is not None or min(shift) < 0:
        inside = (x >= 0) & (y >= 0)
        if out_size is not None:
            inside &= (x < int(out_size[0])) & (y < int(out_size[1]))
        keep = inside if keep is None else keep & inside
    if keep is not None:
        events, x, y = events[keep], x[keep], y[keep]
    out = events.copy()
    out["x"], out["y"] = x, y
    return out


def decimate(events: np.ndarray, n: int) -> np.ndarray:
    """Every ``n``-th event of each pixel (both polarities counted together), in order: tonic ``Decimation``.
    After ``pool_events`` by ``f``, ``n = f * f`` turns the pooled sums into means (a ``f`` times finer camera
    sees a scene with about ``f * f`` times the events)."""
    n = int(n)
    if n < 1:
        raise EvstreamError(f"decimation must keep 1 of n >= 1 events, not {n}")
    if n == 1 or not len(events):
        return events.copy()
    key = events["x"].astype(np.int64) * 65536 + events["y"].astype(np.int64)
    order = np.argsort(key, kind="stable")
    ks = key[order]
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    rank = np.arange(len(ks)) - np.repeat(starts, np.diff(np.r_[starts, len(ks)]))
    keep = np.zeros(len(events), bool)
    keep[order[(rank + 1) % n == 0]] = True
    return events[keep]
