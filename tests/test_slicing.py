"""Slicers: a window that spans chunks comes out whole; any chunking equals slicing the whole stream."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from evstream.events import make_events
from evstream.slicing import CountSlicer, TimeSlicer, slice_stream


def events_from(ts):
    ts = np.sort(np.asarray(ts, dtype=np.int64))
    n = len(ts)
    return make_events(ts, np.arange(n) % 7, np.arange(n) % 5, np.arange(n) % 2)


def as_tuples(slices):
    return [(s.t_start, s.t_end, s.events.tobytes()) for s in slices]


def split(ev, cuts):
    cuts = sorted(set(c % (len(ev) + 1) for c in cuts))
    return np.split(ev, cuts)


@settings(max_examples=60, deadline=None)
@given(ts=st.lists(st.integers(0, 5000), min_size=0, max_size=300),
       cuts=st.lists(st.integers(0, 400), max_size=8),
       window=st.integers(1, 700), step=st.one_of(st.none(), st.integers(1, 900)),
       keep=st.booleans())
def test_time_slicer_any_chunking(ts, cuts, window, step, keep):
    ev = events_from(ts)
    whole = list(slice_stream([ev], TimeSlicer(window, step, keep_partial=keep)))
    parts = list(slice_stream(split(ev, cuts), TimeSlicer(window, step, keep_partial=keep)))
    assert as_tuples(whole) == as_tuples(parts)
    for s in whole:  # each window holds exactly the events of [t_start, t_end)
        expect = ev[(ev["t"] >= s.t_start) & (ev["t"] < s.t_end)]
        assert s.events.tobytes() == expect.tobytes()
    if not keep and step is None and len(ev):
        # complete windows: every event except those in the last, partial window is delivered once
        n = sum(len(s) for s in whole)
        last_start = ev["t"][0] + ((ev["t"][-1] - ev["t"][0]) // window) * window
        assert n == int((ev["t"] < last_start).sum())


@settings(max_examples=60, deadline=None)
@given(ts=st.lists(st.integers(0, 5000), max_size=300), cuts=st.lists(st.integers(0, 400), max_size=8),
       n=st.integers(1, 50), step=st.one_of(st.none(), st.integers(1, 60)), keep=st.booleans())
def test_count_slicer_any_chunking(ts, cuts, n, step, keep):
    ev = events_from(ts)
    whole = list(slice_stream([ev], CountSlicer(n, step, keep_partial=keep)))
    parts = list(slice_stream(split(ev, cuts), CountSlicer(n, step, keep_partial=keep)))
    assert as_tuples(whole) == as_tuples(parts)
    full = [s for s in whole if len(s) == n]
    assert all(len(s) == n for s in whole[: len(full)])


def test_window_spanning_chunks_and_empty_windows():
    ev = events_from([0, 5, 10, 15, 45])
    s = TimeSlicer(10)
    out = s.push(ev[:3]) + s.push(ev[3:])
    assert [(w.t_start, len(w)) for w in out] == [(0, 2), (10, 2), (20, 0), (30, 0)]
    assert s.flush() == []
    s = TimeSlicer(10, keep_partial=True)
    out = list(slice_stream([ev], s))
    assert [(w.t_start, len(w)) for w in out][-1] == (40, 1)


def test_live_clock_emits_empty_windows():
    s = TimeSlicer(10)
    assert [w.t_start for w in s.push(events_from([3]))] == []
    out = s.advance_to(40)
    assert [(w.t_start, len(w)) for w in out] == [(3, 1), (13, 0), (23, 0)]


def test_bounded_buffer_on_long_stream():
    s = TimeSlicer(1000)
    for k in range(200):
        s.push(events_from(np.arange(k * 1000, (k + 1) * 1000, 10)))
        assert len(s._buf) <= 200  # at most one window + one chunk
