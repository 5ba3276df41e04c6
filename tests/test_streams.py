"""Continuous streams from labelled recordings and the scoring of decisions on them (hand-made cases)."""

import numpy as np
import pytest

from evstream.events import EVENT_DTYPE
from evstream.streams import (Segment, StreamConfig, build_stream, coverage, last_decision_right, sample_windows,
                              score_decisions, truth_of, window_events, write_labels_csv)


def rec(n, span_us, t0=5_000, seed=0):
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, EVENT_DTYPE)
    ev["t"] = np.sort(rng.integers(t0, t0 + span_us, n))
    ev["t"][0], ev["t"][-1] = t0, t0 + span_us - 1
    ev["x"], ev["y"], ev["p"] = rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n)
    return ev


def test_stream_puts_recordings_back_to_back_with_gaps_from_the_range():
    recs = [rec(100, 300_000, seed=i) for i in range(5)]
    st = build_stream(recs, list("abcde"), StreamConfig(gap_us=(0, 200_000), seed=3, shuffle=True))
    assert sorted(s.index for s in st.segments) == list(range(5))
    assert st.segments[0].t_start == 0 and np.all(np.diff(st.events["t"]) >= 0)
    assert len(st.events) == 500
    for a, b in zip(st.segments, st.segments[1:]):
        assert 0 <= b.t_start - a.t_end <= 200_000
        assert b.t_end - b.t_start == 300_000  # each recording keeps its own span
    for s in st.segments:  # every recording's events sit inside its segment, in order
        ev = window_events(st.events, s.t_start, s.t_end)
        assert np.array_equal(ev["x"], recs[s.index]["x"]) and s.label == "abcde"[s.index]
    again = build_stream(recs, list("abcde"), StreamConfig(gap_us=(0, 200_000), seed=3, shuffle=True))
    assert again.segments == st.segments  # seeded
    ordered = build_stream(recs, list("abcde"), StreamConfig(gap_us=(10_000, 10_000), shuffle=False))
    assert [s.index for s in ordered.segments] == [0, 1, 2, 3, 4]
    assert [b.t_start - a.t_end for a, b in zip(ordered.segments, ordered.segments[1:])] == [10_000] * 4


def test_noise_fills_the_gaps_and_keeps_time_order():
    recs = [rec(50, 100_000, seed=i) for i in range(2)]
    st = build_stream(recs, ["a", "b"], StreamConfig(gap_us=(500_000, 500_000), noise_hz=2_000, shuffle=False))
    gap = window_events(st.events, st.segments[0].t_end, st.segments[1].t_start)
    assert 700 < len(gap) < 1300  # ~2,000 events/s over 0.5 s
    assert np.all(np.diff(st.events["t"]) >= 0)


SEGS = [Segment(0, "3", 0, 300_000), Segment(1, "7", 310_000, 610_000), Segment(2, "1", 800_000, 1_100_000)]


def test_coverage_and_truth_follow_the_60_percent_rule():
    assert coverage(SEGS, 200_000, 300_000) == (SEGS[0], 1.0)
    seg, f = coverage(SEGS, 250_000, 350_000)
    assert seg is SEGS[0] and f == pytest.approx(0.5)
    assert truth_of(SEGS, 350_000, 100_000) is None  # 50 % / 40 %: not scored
    assert truth_of(SEGS, 370_000, 100_000) is SEGS[1]  # 60 % of the span is recording 1
    assert truth_of(SEGS, 700_000, 100_000) is None  # a gap
    assert coverage(SEGS, 620_000, 790_000) == (None, 0.0)


def test_scores_hand_made_decisions():
    d = [  # t_us, window, class
        {"t_us": 100_000, "window_us": 100_000, "class": "3", "energy_uJ": 10.0, "timesteps": 4},  # right, onset 100
        {"t_us": 200_000, "window_us": 100_000, "class": "8", "energy_uJ": 10.0, "timesteps": 4},  # wrong: a false switch (no 8 in the span)
        {"t_us": 300_000, "window_us": 100_000, "class": "3", "energy_uJ": 10.0, "timesteps": 4},  # right: back to the truth
        {"t_us": 350_000, "window_us": 100_000, "class": "7", "energy_uJ": 10.0, "timesteps": 4},  # unscored (50/40); switching to the incoming 7 is not false
        {"t_us": 450_000, "window_us": 100_000, "class": None, "energy_uJ": 10.0, "timesteps": 4},  # undecided: wrong
        {"t_us": 560_000, "window_us": 100_000, "class": "7", "energy_uJ": 10.0, "timesteps": 4},  # right, onset 250
        {"t_us": 700_000, "window_us": 100_000, "class": "7", "energy_uJ": 10.0, "timesteps": 4},  # gap: unscored
        {"t_us": 1_000_000, "window_us": 100_000, "class": "4", "energy_uJ": 10.0, "timesteps": 4},  # wrong: false switch
    ]
    r = score_decisions(d, SEGS, duration_us=1_200_000, ann_energy_uJ=40.0)
    assert (r["decisions"], r["scored"], r["right"], r["undecided"]) == (8, 6, 3, 1)
    assert r["accuracy"] == pytest.approx(0.5)
    assert r["found"] == 2 and r["recordings"] == 3
    assert r["onset_ms_median"] == pytest.approx(175.0)  # (100 + 250) / 2
    assert r["false_switches"] == 2  # 3 -> 8 and 7 -> 4: classes no recording in the span has
    assert r["false_switches_per_min"] == pytest.approx(2 / 0.02)
    assert r["decisions_per_s"] == pytest.approx(8 / 1.2)
    assert r["energy_uJ_per_decision"] == 10.0 and r["energy_vs_ann"] == pytest.approx(0.25)
    assert r["steps_per_decision"] == 4.0


def test_single_recording_is_scored_by_its_last_decision():
    segs = [Segment(0, "5", 0, 300_000)]
    assert last_decision_right([{"class": "2"}, {"class": "5"}, {"class": None}], segs) is True
    assert last_decision_right([{"class": "5"}, {"class": "2"}], segs) is False
    assert last_decision_right([{"class": None}], segs) is None


def test_training_windows_are_labelled_by_the_recording_covering_most():
    recs = [rec(200, 300_000, seed=i) for i in range(6)]
    st = build_stream(recs, list("abcdef"), StreamConfig(gap_us=(0, 50_000), seed=1))
    rng = np.random.default_rng(0)
    wins = sample_windows(st, 200, 100_000, rng)
    assert len(wins) == 200
    straddling = 0
    for a, b, label in wins:
        seg, frac = coverage(st.segments, a, b)
        assert b - a == 100_000 and seg.label == label and frac >= 0.5
        straddling += frac < 1.0
    assert straddling > 10  # windows across two recordings are part of the mix


def test_labels_csv_is_what_run_labels_reads(tmp_path):
    from evstream.cli.run import read_labels

    write_labels_csv(tmp_path / "l.csv", SEGS)
    assert read_labels(tmp_path / "l.csv") == [(0, 300_000, "3"), (310_000, 610_000, "7"), (800_000, 1_100_000, "1")]


def test_window_set_is_a_dataset_of_labelled_stream_windows():
    from evstream.streams import WindowSet

    recs = [rec(300, 300_000, seed=i) for i in range(8)]
    ws = WindowSet(recs, [0, 1, 2, 3, 0, 1, 2, 3], (34, 34), 40, window_us=(100_000, 150_000), seed=2)
    assert len(ws) == 40 and set(ws.labels) <= {0, 1, 2, 3}
    for i in range(len(ws)):
        a, b = ws.span_of(i)
        ev = ws.events_of(i)
        assert 100_000 <= b - a <= 150_000 and len(ev) > 0
        assert ev["t"].min() >= a and ev["t"].max() < b
    again = WindowSet(recs, [0, 1, 2, 3, 0, 1, 2, 3], (34, 34), 40, window_us=(100_000, 150_000), seed=2)
    assert np.array_equal(again.spans, ws.spans) and np.array_equal(again.labels, ws.labels)


def test_fresh_windows_draw_new_labelled_windows_each_epoch():
    from evstream.loader import SampleSet
    from evstream.streams import FreshWindows

    # each recording fires only at its own pixel column, so a window's events say which recordings it holds
    recs = []
    for i in range(6):
        ev = rec(400, 300_000, seed=i)
        ev["x"] = i
        recs.append(ev)
    labels = [0, 1, 2, 3, 4, 5]
    fw = FreshWindows(recs, labels, (34, 34), 50, window_us=(100_000, 150_000), gap_us=(0, 200_000))
    assert len(fw) == 50
    straddling = 0
    for i in range(200):
        ev, (a, b), label = fw.draw(i, np.random.default_rng([1, 0, 0, i]))
        assert 100_000 <= b - a <= 150_000 and len(ev) > 0
        assert ev["t"].min() >= a and ev["t"].max() < b
        counts = np.bincount(ev["x"], minlength=6)
        assert counts[label] == counts.max()  # labelled by the recording that holds most of it
        straddling += (counts > 0).sum() > 1
    assert straddling > 0  # windows across two recordings are part of the mix, rare with long gaps
    across = FreshWindows(recs, labels, (34, 34), 50, window_us=(100_000, 150_000), gap_us=(0, 200_000),
                          straddle=0.5)
    both = 0
    for i in range(200):
        ev, (a, b), label = across.draw(i, np.random.default_rng([2, 0, 0, i]))
        counts = np.bincount(ev["x"], minlength=6)
        assert counts[label] == counts.max() and 100_000 <= b - a <= 150_000
        both += (counts > 0).sum() > 1
    assert both > 70 and both > 4 * straddling  # about half of them are drawn across a change of recording
    # the training loader's generator is per (epoch, sample): another epoch, another window; none: fixed
    one = fw.draw(3, np.random.default_rng([0, 0, 0, 3]))
    other = fw.draw(3, np.random.default_rng([0, 0, 1, 3]))
    assert one[1] != other[1] or not np.array_equal(one[0], other[0])
    assert np.array_equal(fw.draw(3)[0], fw.draw(3)[0])

    class Rep:  # the input: the event count per column
        def __call__(self, ev, t_start=None, t_end=None):
            return np.bincount(ev["x"], minlength=34).astype(np.float32)[None, None, :]

    x, y = SampleSet([fw], Rep())[(0, 5, [0, 0, 2, 5])]
    assert y == fw.draw(5, np.random.default_rng([0, 0, 2, 5]))[2]  # the loader returns the drawn window's label
    assert x.shape == (1, 1, 34) and x.sum() > 0
