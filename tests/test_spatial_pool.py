"""Region of interest + spatial downscaling (issue 17): ``pool_events`` against tonic (``Downsample``,
``CenterCrop``) and dv-processing (``roiFilter``, ``scale``) on a real recording; how ``SpatialPool.fit``
maps a camera onto a model's sensor; the flags' one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import data_file

from evstream.errors import EvstreamError
from evstream.live.config import LiveConfig, parse_downscale, parse_roi
from evstream.readers import read_events
from evstream.representations import SpatialPool
from evstream.representations.functional import pool_events


def recording(limit=60_000):
    c = read_events(data_file("dvs128_aedat2/alex_walking_again.aedat"))
    return c.events[:limit], c.sensor_size


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_pooling_matches_tonic_downsample_and_dv_scale(factor):
    import dv_processing as dv
    import tonic

    from evstream.writers import from_dv_store, to_dv_store

    ev, (w, h) = recording()
    ours = pool_events(ev, factor)
    theirs = tonic.transforms.Downsample(spatial_factor=1 / factor)(ev)
    assert len(ours) == len(ev)  # every event kept: sum pooling of counts
    for k in ("t", "x", "y", "p"):
        np.testing.assert_array_equal(ours[k], theirs[k])
    dvs = from_dv_store(dv.scale(to_dv_store(ev), float(factor), float(factor)))
    np.testing.assert_array_equal(ours["x"], dvs["x"])
    np.testing.assert_array_equal(ours["y"], dvs["y"])
    # counts pool: the pooled count image is the block sum of the full-resolution one
    full = np.zeros((h, w), np.int64)
    np.add.at(full, (ev["y"], ev["x"]), 1)
    pooled = np.zeros((-(-h // factor), -(-w // factor)), np.int64)
    np.add.at(pooled, (ours["y"], ours["x"]), 1)
    hh, ww = h // factor * factor, w // factor * factor
    np.testing.assert_array_equal(pooled[: h // factor, : w // factor],
                                  full[:hh, :ww].reshape(h // factor, factor, w // factor, factor).sum((1, 3)))


def test_mean_pooling_is_tonic_decimation_after_the_pooling():
    import tonic

    from evstream.representations.functional import decimate

    ev, (w, h) = recording(20_000)
    pooled = pool_events(ev, 2)
    ours = decimate(pooled, 4)
    theirs = tonic.transforms.Decimation(n=4)(pooled)
    assert 0 < len(ours) < len(pooled) // 3
    for k in ("t", "x", "y", "p"):
        np.testing.assert_array_equal(ours[k], theirs[k])
    pool = SpatialPool((w, h), (64, 64), (0, 0, w, h), 2, mean=True)
    np.testing.assert_array_equal(pool(ev)["t"], ours["t"])
    assert "averaged 2x2" in pool.describe()


def test_region_matches_dv_roi_filter_and_the_centre_crop_matches_tonic():
    import dv_processing as dv
    import tonic

    from evstream.writers import from_dv_store, to_dv_store

    ev, (w, h) = recording()
    roi = (20, 30, 70, 50)
    ours = pool_events(ev, 1, roi)
    theirs = from_dv_store(dv.roiFilter(to_dv_store(ev), roi))
    np.testing.assert_array_equal(ours["t"], theirs["t"])
    np.testing.assert_array_equal(ours["x"], theirs["x"] - 20)
    np.testing.assert_array_equal(ours["y"], theirs["y"] - 30)
    # the whole chain (region, 2x2 pooling, centre crop into 34x34) against tonic's transforms in a row
    pool = SpatialPool((w, h), (34, 34), roi, 2)
    assert pool.pooled_size == (35, 25) and "centre" in pool.describe()
    got = pool(ev)
    cut = ev[(ev["x"] >= 20) & (ev["x"] < 90) & (ev["y"] >= 30) & (ev["y"] < 80)].copy()
    cut["x"] -= 20
    cut["y"] -= 30
    down = tonic.transforms.Downsample(spatial_factor=0.5)(cut)
    # tonic's CenterCrop pads by shifting (its filter keeps every event of the smaller axis); ours then drops
    # what lies outside 34x34, which tonic leaves to the caller
    ref = tonic.transforms.CenterCrop(sensor_size=(35, 25, 2), size=(34, 34))(down.astype(
        [("t", "<i8"), ("x", "<i8"), ("y", "<i8"), ("p", "<i8")]))
    ref = ref[(ref["x"] >= 0) & (ref["x"] < 34) & (ref["y"] >= 0) & (ref["y"] < 34)]
    assert len(got) > 1000
    for k in ("t", "x", "y", "p"):
        np.testing.assert_array_equal(got[k].astype(np.int64), ref[k])


def test_fit_maps_cameras_of_any_size_onto_the_model():
    assert SpatialPool.fit((34, 34), (34, 34)).identity
    assert SpatialPool.fit((640, 480), (34, 34)) is None  # no region, no factor: it does not fit
    auto = SpatialPool.fit((640, 480), (34, 34), downscale="auto")
    assert auto.factor == 14 and auto.roi == (0, 0, 640, 480)  # 480 // 34: the largest that fills 34 rows
    assert auto.pooled_size == (46, 35) and auto.shift == (-6, 0)
    roi = SpatialPool.fit((346, 260), (34, 34), roi=(100, 50, 68, 68))
    assert (roi.factor, roi.pooled_size, roi.shift) == (2, (34, 34), (0, 0))  # a ROI alone: auto
    assert SpatialPool.fit((346, 260), (34, 34), roi=(100, 50, 68, 68), downscale=1).shift == (-17, -17)
    small = SpatialPool.fit((128, 128), (34, 34), roi=(10, 10, 28, 28))
    assert small.factor == 1 and small.shift == (3, 3)  # a region smaller than the model's input: centred
    clipped = SpatialPool.fit((346, 260), (34, 34), roi=(330, 250, 68, 68))
    assert clipped.roi == (330, 250, 16, 10)
    with pytest.raises(ValueError, match="outside the 346x260 sensor"):
        SpatialPool.fit((346, 260), (34, 34), roi=(400, 10, 20, 20))


def test_flags_parse_or_say_what_is_wrong_in_one_line(capsys):
    assert parse_roi("10, 20,30,40") == (10, 20, 30, 40) and parse_roi(None) is None
    assert parse_downscale("auto") == "auto" and parse_downscale("3") == 3 and parse_downscale(None) is None
    for bad in ("1,2,3", "a,b,c,d", "0,0,0,5", "-1,0,4,4"):
        with pytest.raises(EvstreamError, match="region of interest"):
            parse_roi(bad)
    for bad in ("0", "1.5", "big"):
        with pytest.raises(EvstreamError, match="downscale"):
            parse_downscale(bad)
    assert LiveConfig(roi="1,2,3,4", downscale="2").roi == (1, 2, 3, 4)
    from evstream.cli import main

    assert main(["run", "recordings/demo_digits.aedat4", "--roi", "1,2,3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "x,y,w,h" in err
