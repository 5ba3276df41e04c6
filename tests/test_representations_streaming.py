"""Streaming equals whole-file for any chunking (hypothesis), for frames, SAE / time surfaces and filters."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import data_file
from evstream.events import make_events
from evstream.filters import BackgroundActivityFilter, RefractoryFilter
from evstream.readers import read_events
from evstream.representations import SAE, SlicedFrames, TimeSurface, functional as F

W, H = 6, 5


@st.composite
def event_arrays(draw):
    n = draw(st.integers(0, 200))
    ts = np.sort(np.array(draw(st.lists(st.integers(0, 3000), min_size=n, max_size=n)), dtype=np.int64))
    xs = draw(st.lists(st.integers(0, W - 1), min_size=n, max_size=n))
    ys = draw(st.lists(st.integers(0, H - 1), min_size=n, max_size=n))
    ps = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    return make_events(ts, xs, ys, ps)


def chunked(ev, cuts):
    return np.split(ev, sorted({c % (len(ev) + 1) for c in cuts}))


@settings(max_examples=50, deadline=None)
@given(ev=event_arrays(), cuts=st.lists(st.integers(0, 250), max_size=6), window=st.integers(1, 800))
def test_sliced_frames_equal_tonic_windows(ev, cuts, window):
    stream = SlicedFrames((W, H), window)
    got = [f for part in chunked(ev, cuts) for f in stream.push(part)]
    if len(ev) == 0:
        assert got == []
        return
    whole = F.to_frames(ev, (W, H), time_window=window)
    # tonic returns one (possibly incomplete) frame when the recording is shorter than a window
    complete = int(ev["t"][-1] - ev["t"][0]) >= window
    if complete:
        np.testing.assert_array_equal(np.array(got), whole)
    else:
        assert got == []


@settings(max_examples=50, deadline=None)
@given(ev=event_arrays(), cuts=st.lists(st.integers(0, 250), max_size=6), tau=st.floats(1, 5000))
def test_time_surface_and_sae_any_chunking(ev, cuts, tau):
    whole_ts, whole_sae = TimeSurface((W, H), tau_us=tau), SAE((W, H))
    whole_ts.update(ev)
    whole_sae.update(ev)
    ts, sae = TimeSurface((W, H), tau_us=tau), SAE((W, H))
    for part in chunked(ev, cuts):
        ts.update(part)
        sae.update(part)
    np.testing.assert_array_equal(ts.state, whole_ts.state)
    np.testing.assert_array_equal(ts.read(4000), whole_ts.read(4000))
    np.testing.assert_array_equal(sae.read(3500), whole_sae.read(3500))


@settings(max_examples=50, deadline=None)
@given(ev=event_arrays(), cuts=st.lists(st.integers(0, 250), max_size=6), dt=st.integers(1, 500))
def test_filters_any_chunking(ev, cuts, dt):
    for cls in (BackgroundActivityFilter, RefractoryFilter):
        whole = cls((W, H), dt)(ev)
        f = cls((W, H), dt)
        parts = [f(p) for p in chunked(ev, cuts)]
        got = np.concatenate(parts) if parts else ev[:0]
        np.testing.assert_array_equal(got, whole)


def test_real_recording_streamed_in_chunks():
    c = read_events(data_file("dvs128_aedat2/neal_walking.aedat"))
    ev = c.events
    stream = SlicedFrames(c.sensor_size, 10_000)
    got = [f for part in np.array_split(ev, 37) for f in stream.push(part)]
    np.testing.assert_array_equal(np.array(got), F.to_frames(ev, c.sensor_size, time_window=10_000))
