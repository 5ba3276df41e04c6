"""Continuous streams from labelled recordings, and how decisions on them are scored.

A camera never sends one clean, aligned sample: objects come and go. This module turns a labelled dataset
split into such a stream and scores a live pipeline's decisions on it (``evstream eval --stream``,
``evstream run --labels``):

    stream = build_stream(recordings, labels, StreamConfig(gap_us=(0, 200_000), seed=0), sensor_size)
    stream.events, stream.segments          # one time-ordered event array; where each recording plays
    report = score_decisions(decisions, stream.segments, duration_us=stream.duration_us)

Scoring (docs/model.md "Streaming evaluation"): a decision at stream time ``t_us`` summarises the events in
``[t_us - window_us, t_us]``; it is *scored* when one recording covers at least ``cover`` (0.6) of that
span, against that recording's label. A recording is *found* when a right decision falls while it plays;
its *onset latency* is the time from its first event to that first right decision. A *false switch* is a
change of the decided class to one that no recording in the decision's span has.

Training windows for streams (``window_batch``) are cut at random offsets from such streams: some inside
one recording, some straddling two, labelled by the recording that covers most of the window.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field

import numpy as np

from evstream.events import EVENT_DTYPE


@dataclass(frozen=True)
class StreamConfig:
    """How recordings are put back to back: seeded order, gaps drawn uniformly from ``gap_us`` (µs), and
    background noise (``noise_hz`` events per second over the whole sensor) everywhere, gaps included."""

    gap_us: tuple[int, int] = (10_000, 10_000)
    shuffle: bool = True
    seed: int = 0
    noise_hz: float = 0.0


@dataclass(frozen=True)
class Segment:
    """Where one recording plays in a stream (µs from the stream's first event, end exclusive)."""

    index: int
    label: str
    t_start: int
    t_end: int


@dataclass
class Stream:
    events: np.ndarray
    segments: list[Segment]
    sensor_size: tuple[int, int]
    config: StreamConfig = field(default_factory=StreamConfig)

    def window(self, t_start: int, t_end: int) -> np.ndarray:
        """Events in ``[t_start, t_end)``."""
        if getattr(self, "_times", None) is None or len(self._times) != len(self.events):
            self._times = np.ascontiguousarray(self.events["t"])
        return window_events(self.events, t_start, t_end, self._times)

    @property
    def duration_us(self) -> int:
        return int(self.events["t"][-1]) + 1 if len(self.events) else 0

    def write_labels(self, path) -> None:
        """The segments as a labels CSV (``index,label,t_start_us,t_end_us``), as ``run --labels`` reads it."""
        write_labels_csv(path, self.segments)


def build_stream(recordings, labels, config: StreamConfig = StreamConfig(), sensor_size=(34, 34)) -> Stream:
    """Put ``recordings`` (event arrays, any time origin) back to back as one stream starting at t = 0."""
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(recordings)) if config.shuffle else np.arange(len(recordings))
    lo, hi = int(config.gap_us[0]), int(config.gap_us[1])
    parts, segments, t = [], [], 0
    for k, i in enumerate(order):
        ev = np.asarray(recordings[int(i)])
        if not len(ev):
            continue
        if k:
            t += int(rng.integers(lo, hi + 1)) if hi > lo else lo
        ev = ev.astype(EVENT_DTYPE, copy=True)
        ev["t"] = ev["t"] - ev["t"][0] + t
        parts.append(ev)
        end = int(ev["t"][-1]) + 1
        segments.append(Segment(int(i), str(labels[int(i)]), t, end))
        t = end
    events = np.concatenate(parts) if parts else np.zeros(0, EVENT_DTYPE)
    if config.noise_hz > 0 and len(events):
        events = add_noise(events, sensor_size, config.noise_hz, rng)
    return Stream(events, segments, tuple(int(s) for s in sensor_size), config)


def add_noise(events: np.ndarray, sensor_size, rate_hz: float, rng) -> np.ndarray:
    """``events`` plus uniform background activity at ``rate_hz`` events/s over the sensor, time-sorted."""
    t0, t1 = int(events["t"][0]), int(events["t"][-1])
    n = rng.poisson(rate_hz * (t1 - t0) * 1e-6)
    noise = np.zeros(n, EVENT_DTYPE)
    noise["t"] = rng.integers(t0, t1 + 1, n)
    noise["x"] = rng.integers(0, sensor_size[0], n)
    noise["y"] = rng.integers(0, sensor_size[1], n)
    noise["p"] = rng.integers(0, 2, n)
    out = np.concatenate([events, noise])
    return out[np.argsort(out["t"], kind="stable")]


# ------------------------------------------------------------------------------------------- labels files
def write_labels_csv(path, segments) -> None:
    from evstream.fileio import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "label", "t_start_us", "t_end_us"])
        for s in segments:
            w.writerow([s.index, s.label, s.t_start, s.t_end])


# ------------------------------------------------------------------------------------------- scoring
def coverage(segments, a: int, b: int, starts=None) -> tuple[Segment | None, float]:
    """The segment covering most of ``[a, b]`` and the fraction of the span it covers (``segments`` sorted by
    start and not overlapping; ``starts`` their start times, to skip the search's set-up)."""
    import bisect

    if starts is None:
        starts = [s.t_start for s in segments]
    best, frac = None, 0.0
    span = max(1, b - a)
    i = bisect.bisect_left(starts, b) - 1  # the last segment starting before b
    while i >= 0 and segments[i].t_end > a:
        s = segments[i]
        f = (min(b, s.t_end) - max(a, s.t_start)) / span
        if f > frac:
            best, frac = s, f
        i -= 1
    return best, frac


def truth_of(segments, t_us: int, window_us: int, cover: float = 0.6, starts=None) -> Segment | None:
    """The recording a decision summarising ``[t_us - window_us, t_us]`` is scored against, if any."""
    seg, frac = coverage(segments, int(t_us) - int(window_us), int(t_us), starts)
    return seg if seg is not None and frac >= cover else None


def present(segments, a: int, b: int, starts) -> set[str]:
    """Labels of the recordings that overlap ``[a, b]``."""
    import bisect

    out, i = set(), bisect.bisect_left(starts, b) - 1
    while i >= 0 and segments[i].t_end > a:
        out.add(segments[i].label)
        i -= 1
    return out


def score_decisions(decisions, segments, duration_us: int | None = None, cover: float = 0.6,
                    ann_energy_uJ: float | None = None) -> dict:
    """Stream metrics of ``decisions`` (dicts with ``t_us``, ``window_us``, ``class``; ``energy_uJ``,
    ``timesteps`` when known; ``class`` None = undecided) against ``segments`` (time-sorted)."""
    segments = sorted(segments, key=lambda s: s.t_start)
    starts = [s.t_start for s in segments]
    duration_us = duration_us or (segments[-1].t_end if segments else 0)
    scored = right = undecided = false_switches = 0
    first_right: dict[int, int] = {}
    prev = None  # the last decided class
    for d in decisions:
        t, w, cls = int(d["t_us"]), int(d.get("window_us") or 0), d.get("class")
        cls = None if cls is None else str(cls)
        if cls is None:
            undecided += 1
        truth = truth_of(segments, t, w, cover, starts)
        if truth is not None:
            scored += 1
            if cls == truth.label:
                right += 1
        main, _ = coverage(segments, t - w, t, starts)
        if cls is not None and cls == getattr(main, "label", None) and main is not None \
                and main.t_start <= t < main.t_end and main.index not in first_right:
            first_right[main.index] = t - main.t_start
        if cls is not None:
            if prev is not None and cls != prev and cls not in present(segments, t - w, t, starts):
                false_switches += 1
            prev = cls
    n = len(decisions)
    onsets = sorted(first_right.values())
    minutes = duration_us / 60e6 if duration_us else 0.0
    energies = [float(d["energy_uJ"]) for d in decisions if d.get("energy_uJ") is not None]
    steps = [int(d["timesteps"]) for d in decisions if d.get("timesteps") is not None]
    out = {
        "decisions": n, "scored": scored, "right": right,
        "accuracy": right / scored if scored else None,
        "undecided": undecided,
        "decisions_per_s": n / (duration_us / 1e6) if duration_us else None,
        "recordings": len(segments), "found": len(first_right),
        "found_fraction": len(first_right) / len(segments) if segments else None,
        "onset_ms_median": float(np.median(onsets)) / 1e3 if onsets else None,
        "onset_ms_p90": float(np.percentile(onsets, 90)) / 1e3 if onsets else None,
        "false_switches": false_switches,
        "false_switches_per_min": false_switches / minutes if minutes else None,
        "duration_s": duration_us / 1e6,
        "steps_per_decision": float(np.mean(steps)) if steps else None,
        "energy_uJ_per_decision": float(np.mean(energies)) if energies else None,
    }
    if ann_energy_uJ is not None:
        out["ann_energy_uJ_per_decision"] = float(ann_energy_uJ)
        if energies:
            out["energy_vs_ann"] = out["energy_uJ_per_decision"] / float(ann_energy_uJ)
    return out


def last_decision_right(decisions, segments) -> bool | None:
    """One recording replayed alone: is the last decision the recording's label?"""
    decided = [d for d in decisions if d.get("class") is not None]
    if not decided or not segments:
        return None
    return str(decided[-1]["class"]) == segments[0].label


# ------------------------------------------------------------------------------------------- training windows
def sample_windows(stream: Stream, n: int, window_us: int, rng, cover: float = 0.5):
    """``n`` random windows ``(t_start, t_end, label)`` of ``window_us`` inside ``stream``, each labelled by
    the recording that covers most of it (windows where none covers ``cover`` are drawn again)."""
    out = []
    lo, hi = 0, max(1, stream.duration_us - window_us)
    starts = [s.t_start for s in stream.segments]
    tries = 0
    while len(out) < n and tries < 50 * n:
        tries += 1
        a = int(rng.integers(lo, hi))
        seg, frac = coverage(stream.segments, a, a + window_us, starts)
        if seg is not None and frac >= cover:
            out.append((a, a + window_us, seg.label))
    return out


class FreshWindows:
    """Training windows drawn afresh every time they are asked for: ``draw(i, rng)`` puts a few random
    recordings back to back (random order, gaps from ``gap_us``), cuts one window of a random length in
    ``window_us`` at a random offset, and returns ``(events, (t_start, t_end), label)`` — the label of the
    recording covering most of it. The distribution is :class:`WindowSet`'s (a window of at most
    ``window_us[1]`` meets at most three recordings of a long stream), but with the training loader's
    per-(epoch, sample) generator no window is seen twice, where a fixed set is seen every epoch.
    ``straddle`` of the windows are drawn across a change of recording (the gap shorter than half the window,
    the window holding the end of one and the start of the next, the label the one covering most, at least
    ``cover``): the moments a live decision meets at every change of object, and rare among random offsets
    when gaps are long. ``len()`` is the number of windows per epoch; without a generator window ``i`` is
    fixed (seed ``i``)."""

    name = "stream-windows"

    def __init__(self, recordings, labels, sensor_size, n: int, window_us=(100_000, 150_000),
                 gap_us=(0, 200_000), cover: float = 0.5, noise_hz: float = 0.0, straddle: float = 0.0):
        self.recordings = list(recordings)
        self.rec_labels = np.asarray(labels, np.int64)
        self.sensor_size = tuple(int(s) for s in sensor_size)
        self.n, self.window_us, self.gap_us = int(n), tuple(window_us), tuple(gap_us)
        self.cover, self.noise_hz, self.straddle = float(cover), float(noise_hz), float(straddle)
        self.labels = np.full(self.n, -1, np.int64)  # unknown until drawn: use draw()'s label

    def __len__(self) -> int:
        return self.n

    def draw(self, i: int, rng=None):
        rng = np.random.default_rng([int(i), 7919]) if rng is None else rng
        k = int(rng.integers(len(self.recordings)))
        picks = [k] + [int(j) for j in rng.integers(len(self.recordings), size=2)]
        order = rng.permutation(3)
        recs = [self.recordings[picks[j]] for j in order]
        labs = [self.rec_labels[picks[j]] for j in order]
        seed = int(rng.integers(2**31))  # the stream's gaps: drawn here, the stream built only when used
        w = int(rng.integers(int(self.window_us[0]), int(self.window_us[1]) + 1))
        if self.straddle and rng.random() < self.straddle:
            found = self._across(recs, labs, w, rng)
            if found is not None:
                return found
        st = build_stream(recs, labs, StreamConfig(gap_us=self.gap_us, shuffle=False, seed=seed,
                                                   noise_hz=self.noise_hz), self.sensor_size)
        found = sample_windows(st, 1, w, rng, self.cover)
        if not found:  # a stream shorter than the window: take all of it
            a, b = 0, max(w, st.duration_us)
            lab = coverage(st.segments, a, b)[0].label
        else:
            (a, b, lab), = found
        return st.window(a, b), (int(a), int(b)), int(lab)

    def _across(self, recs, labs, w: int, rng):
        """A window of ``w`` holding the end of ``recs[0]`` and the start of ``recs[1]`` (None if they are
        too short for one recording to cover ``cover`` of it)."""
        lo, hi = int(self.gap_us[0]), min(int(self.gap_us[1]), w // 2)
        gap = int(rng.integers(lo, hi + 1)) if hi > lo else lo
        st = build_stream(recs[:2], labs[:2], StreamConfig(gap_us=(gap, gap), shuffle=False, noise_hz=self.noise_hz,
                                                          seed=int(rng.integers(2**31))), self.sensor_size)
        if len(st.segments) < 2:
            return None
        b0, b1 = st.segments[0].t_end, st.segments[1].t_start
        for _ in range(8):
            a = int(rng.integers(max(0, b1 - w), b0 + 1))
            seg, frac = coverage(st.segments, a, a + w)
            if seg is not None and frac >= self.cover:
                return st.window(a, a + w), (a, a + w), int(seg.label)
        return None


def window_events(events: np.ndarray, t_start: int, t_end: int, times: np.ndarray | None = None) -> np.ndarray:
    """The events with ``t_start <= t < t_end``; pass ``times`` (a contiguous copy of ``events["t"]``) when
    cutting many windows, as searching the strided field copies it each time."""
    t = events["t"] if times is None else times
    return events[np.searchsorted(t, t_start, "left"):np.searchsorted(t, t_end, "left")]


def save_report(path, report: dict) -> None:
    from evstream.fileio import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(report, f, indent=1, default=lambda o: asdict(o) if hasattr(o, "__dataclass_fields__") else str(o))


class WindowSet:
    """Training windows cut from continuous streams of labelled recordings, as a dataset: ``events_of(i)``,
    ``labels``, ``sensor_size``, ``span_of(i)`` (the window's ``(t_start, t_end)``: build the input with
    ``rep(events, t_start, t_end)``, as the live pipeline does). Each of ``n`` windows lies at a random offset
    of one of ``streams`` seeded streams (gaps from ``gap_us``), has a random length in ``window_us``
    (lo, hi), and is labelled by the recording covering most of it; straddling windows are part of the mix.
    Pass ``cover`` below 0.5 to keep windows that are mostly gap."""

    def __init__(self, recordings, labels, sensor_size, n: int, window_us=(100_000, 150_000), seed: int = 0,
                 gap_us=(0, 200_000), streams: int = 2, cover: float = 0.5, noise_hz: float = 0.0):
        rng = np.random.default_rng(seed)
        self.sensor_size = tuple(int(s) for s in sensor_size)
        self.name = "stream-windows"
        per = [n // streams + (k < n % streams) for k in range(streams)]
        parts, spans, labs, offsets = [], [], [], [0]
        for k, m in enumerate(per):
            st = build_stream(recordings, [str(int(x)) for x in labels],
                              StreamConfig(gap_us=tuple(gap_us), seed=seed * 1000 + k, noise_hz=noise_hz),
                              self.sensor_size)
            for _ in range(m):
                w = int(rng.integers(int(window_us[0]), int(window_us[1]) + 1))
                (a, b, lab), = sample_windows(st, 1, w, rng, cover)
                ev = st.window(a, b)
                parts.append(ev)
                spans.append((a, b))
                labs.append(int(lab))
                offsets.append(offsets[-1] + len(ev))
        self.events = np.concatenate(parts) if parts else np.zeros(0, EVENT_DTYPE)
        self.offsets = np.asarray(offsets, np.int64)
        self.spans = np.asarray(spans, np.int64).reshape(-1, 2)
        self.labels = np.asarray(labs, np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def events_of(self, i: int) -> np.ndarray:
        return self.events[self.offsets[i]:self.offsets[i + 1]]

    def span_of(self, i: int) -> tuple[int, int]:
        a, b = self.spans[i]
        return int(a), int(b)
