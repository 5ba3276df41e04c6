"""Which part of the camera a model sees: a checkpoint trained on one sensor size runs on a camera of any
size through a region of interest and spatial pooling (:class:`~evstream.representations.SpatialPool`),
chosen from ``LiveConfig.roi`` / ``downscale`` / ``pool``."""

from __future__ import annotations

from evstream.errors import CheckpointError
from evstream.live.config import parse_downscale, parse_roi
from evstream.live.model import check_fit
from evstream.live.records import StatusRecord
from evstream.representations import Pooled, SpatialPool


def pool_for(lm, sensor_size, roi, downscale, mean=False):
    """The pool from a camera of ``sensor_size`` onto ``lm``'s input (None: as is). CheckpointError when the
    region misses the sensor, or when the sizes differ and neither a region nor a factor is set."""
    if tuple(sensor_size) == (0, 0):  # a stream that does not say its size: events outside are dropped
        return None
    rep = getattr(lm.rep, "rep", lm.rep)
    try:
        pool = SpatialPool.fit(sensor_size, rep.sensor_size, roi, downscale, mean)
    except ValueError as exc:  # the region misses the sensor: this model cannot run on it
        raise CheckpointError(str(exc)) from None
    if pool is None:
        try:
            check_fit(lm.path, rep, sensor_size)
        except CheckpointError as exc:
            raise CheckpointError(f"{exc.problem}: choose a region (--roi x,y,w,h, or drag a box on the event "
                                  f"view) or --downscale auto", where=exc.where) from None
    return pool


def fit(lm, sensor_size, roi, downscale, mean=False):
    """``lm`` with its representation seeing the camera through :func:`pool_for`'s pool (a
    :class:`~evstream.representations.Pooled` view; the plain representation when none is needed)."""
    pool = pool_for(lm, sensor_size, roi, downscale, mean)
    rep = getattr(lm.rep, "rep", lm.rep)
    lm.rep = rep if pool is None or pool.identity else Pooled(rep, pool)
    return lm


def region_of(lm):
    """The :class:`~evstream.representations.SpatialPool` a loaded model sees the camera through (None: as is)."""
    return getattr(lm.rep, "pool", None) if lm is not None else None


def set_region(pipe, roi=None, downscale=None) -> None:
    """``pipe``'s new region of interest (x, y, w, h; None: the whole sensor) and downscale factor (int,
    "auto", None) for its running model, from the next input; EvstreamError (nothing changes) when it misses
    the sensor or the model no longer fits. Without a model only the setting changes (the next load uses it)."""
    roi, downscale = parse_roi(roi), parse_downscale(downscale)
    cfg = pipe.config
    if pipe.lm is not None:
        fit(pipe.lm, pipe.sensor_size, roi, downscale, cfg.pool == "mean")
    pipe._update(roi=roi, downscale=downscale)
    pool = region_of(pipe.lm)
    pipe._emit(StatusRecord(f"model input: {pool.describe()}" if pool is not None else "model input: the whole sensor"))
