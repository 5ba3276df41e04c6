"""Filters give tonic's decisions on real recordings; simple ones do what they say."""

from __future__ import annotations

import numpy as np
import pytest
import tonic.functional as TF

from conftest import data_file
from evstream.errors import EvstreamError
from evstream.events import make_events
from evstream.filters import BackgroundActivityFilter, RefractoryFilter, downsample, roi, select_polarity
from evstream.readers import read_events


def tonic_events(ev):
    tev = np.zeros(len(ev), dtype=[("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    for k in "xytp":
        tev[k] = ev[k]
    return tev


@pytest.mark.parametrize("rel", ["dvs128_aedat2/neal_walking.aedat", "tonic_samples/sample.aedat4"])
@pytest.mark.parametrize("dt", [1_000, 10_000])
def test_background_activity_equals_tonic(rel, dt):
    c = read_events(data_file(rel))
    ev = c.events
    assert ev["t"][0] > dt  # tonic's memory starts at filter_time: equal only after that (documented)
    expect = TF.denoise_numpy(tonic_events(ev), filter_time=dt)
    got = BackgroundActivityFilter(c.sensor_size, dt)(ev)
    assert 0 < len(got) < len(ev)
    for k in "txyp":
        np.testing.assert_array_equal(got[k], expect[k])


@pytest.mark.parametrize("period", [100, 5_000])
def test_refractory_equals_tonic(period):
    c = read_events(data_file("dvs128_aedat2/neal_walking.aedat"))
    expect = TF.refractory_period_numpy(tonic_events(c.events), period)
    got = RefractoryFilter(c.sensor_size, period)(c.events)
    assert 0 < len(got) < len(c.events)
    np.testing.assert_array_equal(got["t"], expect["t"])
    np.testing.assert_array_equal(got["x"], expect["x"])


def test_roi_polarity_downsample():
    ev = make_events([1, 2, 3, 4], [0, 5, 6, 9], [0, 5, 6, 9], [1, 0, 1, 0])
    r = roi(ev, 5, 5, 3, 3)
    assert r["x"].tolist() == [0, 1] and r["t"].tolist() == [2, 3]
    assert select_polarity(ev, 1)["t"].tolist() == [1, 3]
    assert downsample(ev, 2)["x"].tolist() == [0, 2, 3, 4]


def test_outside_sensor_is_clear():
    with pytest.raises(EvstreamError, match="outside the configured 4x4 sensor"):
        BackgroundActivityFilter((4, 4), 100)(make_events([1], [4], [0], [1]))


def test_dv_noise_filter_documented_difference():
    """dv's BackgroundActivityNoiseFilter looks at all 8 neighbours, tonic/ours at 4: ours keeps a subset."""
    import dv_processing as dv
    from datetime import timedelta
    from evstream.writers import from_dv_store, to_dv_store

    c = read_events(data_file("dvs128_aedat2/alex_walking_again.aedat"))
    ev = c.events[:8000]
    f = dv.noise.BackgroundActivityNoiseFilter(c.sensor_size, timedelta(microseconds=5000))
    f.accept(to_dv_store(ev))
    theirs = from_dv_store(f.generateEvents())
    ours = BackgroundActivityFilter(c.sensor_size, 5000)(ev)
    assert 0 < len(ours) <= len(theirs) <= len(ev)


def test_filter_chain_counts_what_each_filter_removes():
    from evstream.filters import FilterChain, parse_filters

    ev = read_events(data_file("dvs128_aedat2/neal_walking.aedat")).events[:200_000]
    chain = FilterChain((128, 128), "refractory=2000,ba=5000")
    half = len(ev) // 2
    out = np.concatenate([chain(ev[:half]), chain(ev[half:])])  # chunk by chunk = all at once
    step1 = RefractoryFilter((128, 128), 2000)(ev)
    step2 = BackgroundActivityFilter((128, 128), 5000)(step1)
    assert np.array_equal(out, step2)
    c = chain.counts()
    assert c == {"in": len(ev), "refractory": len(ev) - len(step1), "ba": len(step1) - len(step2)}
    assert c["refractory"] > 0 and c["ba"] > 0
    assert parse_filters("ba") == (("ba", 10_000),) and parse_filters(None) == ()
    for bad, words in (("median=3", "unknown filter"), ("ba=ten", "whole number"), ("ba=0", ">= 1"),
                       ("ba,ba=5", "twice")):
        with pytest.raises(EvstreamError, match=words):
            parse_filters(bad)
