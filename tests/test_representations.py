"""Representations equal tonic's on real recordings; edge cases (empty windows, 1-pixel sensors, border
events, events outside the configured sensor) behave."""

from __future__ import annotations

import numpy as np
import pytest
import tonic.transforms as T

from conftest import data_file
from evstream.errors import EvstreamError
from evstream.events import make_events
from evstream.readers import read_events
from evstream.representations import (SAE, EventCount, PolarityFrames, TimeSurface, VoxelGrid, from_config,
                                      functional as F)

RECORDINGS = ["dvs128_aedat2/neal_walking.aedat", "tonic_samples/sample_nmnist.bin",
              "prophesee/NCARS_obj_004397_td.dat"]


def load(rel, limit=None):
    c = read_events(data_file(rel))
    ev = c.events if limit is None else c.events[:limit]
    tev = np.zeros(len(ev), dtype=[("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    for k in "xytp":
        tev[k] = ev[k]
    return ev, tev, c.sensor_size


@pytest.mark.parametrize("rel", RECORDINGS)
@pytest.mark.parametrize("params", [
    {"time_window": 10_000}, {"time_window": 20_000, "overlap": 5_000},
    {"time_window": 15_000, "include_incomplete": True}, {"n_time_bins": 5}, {"n_event_bins": 7},
    {"event_count": 1000}, {"event_count": 900, "overlap": 100, "include_incomplete": True},
])
def test_to_frames_equals_tonic(rel, params):
    ev, tev, ss = load(rel)
    expect = T.ToFrame(sensor_size=(*ss, 2), **params)(tev)
    got = F.to_frames(ev, ss, **params)
    assert got.shape == expect.shape
    np.testing.assert_array_equal(got, expect)


@pytest.mark.parametrize("rel", RECORDINGS)
def test_timesurface_equals_tonic(rel):
    ev, tev, ss = load(rel, limit=20_000)
    expect = T.ToTimesurface(sensor_size=(*ss, 2), dt=50_000, tau=30_000)(tev)
    got = F.to_timesurface(ev, ss, 50_000, 30_000)
    np.testing.assert_array_equal(got, expect)


@pytest.mark.parametrize("rel", RECORDINGS)
def test_voxel_grid_equals_tonic(rel):
    ev, tev, ss = load(rel)
    expect = T.ToVoxelGrid(sensor_size=(*ss, 2), n_time_bins=6)(tev.copy())
    np.testing.assert_array_equal(F.to_voxel_grid(ev, ss, 6), expect)


def test_polarity_frames_tail_keeps_every_event():
    ev, _, ss = load("tonic_samples/sample_nmnist.bin")
    rep = PolarityFrames(ss, n_frames=4)
    x = rep(ev)
    assert x.shape == (8, 34, 34) and x.sum() == len(ev)  # SpikingJelly semantics: no event dropped
    no_tail = PolarityFrames(ss, n_frames=4, tail=False)(ev)
    assert no_tail.sum() < len(ev)  # tonic n_time_bins drops the remainder after the last whole bin
    # channel order: [frame0 OFF, frame0 ON, frame1 OFF, ...]
    fr = rep.frames(ev)
    np.testing.assert_array_equal(x[1], fr[0, 1]) and np.testing.assert_array_equal(x[2], fr[1, 0])


def test_window_bins_are_equal_subwindows():
    ev = make_events([0, 9, 10, 19, 25, 39], [0, 1, 2, 3, 0, 1], [0] * 6, [1, 0, 1, 0, 1, 1])
    rep = PolarityFrames((4, 1), n_frames=4)
    x = rep(ev, t_start=0, t_end=40).reshape(4, 2, 1, 4)
    assert x.sum(axis=(1, 2, 3)).tolist() == [2, 2, 1, 1]


def test_binary_and_normalize_and_resize():
    ev = make_events([0, 1, 2, 3], [1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 0])
    assert PolarityFrames((2, 2), n_frames=1, mode="binary")(ev).max() == 1
    assert PolarityFrames((2, 2), n_frames=1, normalize="max")(ev).max() == 1
    assert PolarityFrames((2, 2), n_frames=1, normalize=2)(ev).max() == 1
    x = PolarityFrames((34, 34), n_frames=2, out_size=(32, 32))(load("tonic_samples/sample_nmnist.bin")[0])
    assert x.shape == (4, 32, 32) and x.dtype == np.float32


@pytest.mark.parametrize("cls,kw", [(PolarityFrames, {"n_frames": 3}), (EventCount, {}), (SAE, {}),
                                    (TimeSurface, {"tau_us": 5_000}), (VoxelGrid, {"n_bins": 3})])
def test_config_roundtrip_and_edge_cases(cls, kw):
    rep = cls((5, 4), out_size=(3, 3), **kw)
    again = from_config(rep.config)
    assert type(again) is cls and again.config == rep.config
    import json
    assert json.loads(json.dumps(rep.config)) == rep.config
    empty = rep(make_events([], [], [], []))  # a window with zero events
    assert empty.shape == (rep.channels, 3, 3) and not np.any(empty)
    border = make_events([1, 2], [0, 4], [0, 3], [1, 0])  # both corners of a 5x4 sensor
    assert cls((5, 4), **kw)(border).shape[1:] == (4, 5)
    with pytest.raises(EvstreamError, match="outside the configured 5x4 sensor"):
        cls((5, 4), **kw)(make_events([1], [5], [0], [1]))


def test_single_pixel_sensor():
    ev = make_events([0, 5, 7], [0, 0, 0], [0, 0, 0], [1, 0, 1])
    assert PolarityFrames((1, 1), n_frames=1)(ev).ravel().tolist() == [1, 2]
    ts = TimeSurface((1, 1), tau_us=10.0)
    ts.update(ev)
    np.testing.assert_allclose(ts.read(7).ravel(), [np.exp(-2 / 10), 1.0])


def test_sae_age_scaling():
    sae = SAE((2, 1), horizon_us=100)
    sae.update(make_events([10, 60], [0, 1], [0, 0], [1, 1]))
    np.testing.assert_allclose(sae.read(110)[1, 0], [0.0, 0.5])
    assert not sae.read(110)[0].any()


def test_dv_time_surface_matches_where_semantics_match():
    """dv.TimeSurface stores the last timestamp per pixel (both polarities in one surface): equal to our
    SAE merged over polarity (max of the two), on the same events."""
    import dv_processing as dv
    from evstream.writers import to_dv_store

    ev, _, ss = load("dvs128_aedat2/alex_walking_again.aedat", limit=5_000)
    surf = dv.TimeSurface((ss[0], ss[1]))
    surf.accept(to_dv_store(ev))
    ours = SAE(ss)
    ours.update(ev)
    merged = ours.state.max(axis=0)
    ys, xs = np.nonzero(merged > F.NEVER)
    assert len(ys) > 100
    theirs = np.array([surf.at(int(y), int(x)) for y, x in zip(ys, xs)])
    np.testing.assert_array_equal(theirs, merged[ys, xs])
