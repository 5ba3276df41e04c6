"""Issue 17's "done when": real N-MNIST recordings played back to back as a stream, embedded at an offset in
a 640x480 and a 346x260 camera (there also upscaled 2x, so the 2x2 pooling is exercised), run through the
live pipeline with a region of interest and downscaling, are classified as well as the same stream at its
own 34x34 (docs/gui.md "Cameras of any size" has the measurements, sums against means)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from evstream.paths import DEMO_MODEL
from evstream.stream_eval import StreamEvalConfig, play, split_recordings
from evstream.streams import StreamConfig, build_stream, score_decisions


@pytest.fixture(scope="module")
def stream(data_dir):
    root = data_dir / "nmnist_small" / "train"
    recs, labels, sensor = split_recordings(StreamEvalConfig(model=str(DEMO_MODEL), root=str(root),
                                                             labels=str(root / "labels.txt"), limit=5))
    assert tuple(sensor) == (34, 34)
    return build_stream(recs, labels, StreamConfig(gap_us=(0, 100_000), seed=1), sensor)


def embed(stream, size, offset, scale=1):
    """The stream as a camera of ``size`` sees it with the digits at ``offset``, ``scale`` times finer: each
    N-MNIST event fires on every one of the ``scale`` x ``scale`` camera pixels under its pixel."""
    ev = stream.events
    n = scale * scale
    big = np.repeat(ev, n)
    for k, o, d in (("x", offset[0], np.tile(np.arange(n) % scale, len(ev))),
                    ("y", offset[1], np.tile(np.arange(n) // scale, len(ev)))):
        big[k] = ev[k].repeat(n).astype(np.int64) * scale + d + o
    return dataclasses.replace(stream, events=big, sensor_size=size)


def score(stream, tmp_path, **live):
    decisions, stats = play(stream, str(DEMO_MODEL), live, tmp_path)
    rep = score_decisions(decisions, stream.segments, stream.duration_us, ann_energy_uJ=stats["ann_uJ"])
    return rep


def test_a_stream_in_a_bigger_camera_is_classified_as_well_with_a_region_and_downscaling(stream, tmp_path):
    base = score(stream, tmp_path)
    assert base["scored"] >= 15 and base["accuracy"] >= 0.5, base  # the model does classify this stream
    runs = {
        "640x480, roi, auto": (embed(stream, (640, 480), (301, 187)), dict(roi=(301, 187, 34, 34), downscale="auto")),
        # a 2x finer camera sees 4x the events: pooled as means they are what the model learned from
        "346x260 2x, roi, 2, mean": (embed(stream, (346, 260), (150, 97), scale=2),
                                     dict(roi=(150, 97, 68, 68), downscale=2, pool="mean")),
    }
    for name, (big, live) in runs.items():
        rep = score(big, tmp_path, **live)
        assert abs(rep["scored"] - base["scored"]) <= 2, (name, rep, base)
        assert rep["right"] >= base["right"] - 2 and rep["accuracy"] >= base["accuracy"] - 0.05, (name, rep, base)
    # without a region the 640x480 camera does not fit the 34x34 model: one line that says what to do
    from evstream.errors import CheckpointError

    with pytest.raises(CheckpointError, match="640x480.*--roi"):
        score(runs["640x480, roi, auto"][0], tmp_path)
