"""Emulator physics, sources, bad input, and the demo recording."""

from __future__ import annotations

import csv
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from evstream.emulator import (NMNIST_EMULATOR, Emulator, EmulatorConfig, EmulatorSource, SaccadeSource,
                               emulate_saccades, read_mnist_idx)
from evstream.errors import EvstreamError
from evstream.readers import read_events
from evstream.sources import open_source

REPO = Path(__file__).resolve().parents[1]


def step(before, after, cfg=None, size=(8, 6)):
    emu = Emulator(size, cfg or EmulatorConfig(threshold_sigma=0.0))
    emu.emulate(np.full(size[::-1], before, np.uint8), 0)
    return emu.emulate(np.full(size[::-1], after, np.uint8), 10_000)


def test_brighter_gives_on_darker_gives_off():
    on = step(50, 200)
    off = step(200, 50)
    assert len(on) > 0 and set(on["p"].tolist()) == {1}
    assert len(off) > 0 and set(off["p"].tolist()) == {0}
    assert np.all(np.diff(on["t"]) >= 0) and on["t"].min() > 0 and on["t"].max() <= 10_000
    assert len(step(100, 100)) == 0


def test_events_per_crossing_and_threshold_scaling():
    cfg = EmulatorConfig(threshold_sigma=0.0, pos_threshold=0.1, neg_threshold=0.1, log_eps=1e-3)
    ev = step(20, 240, cfg)
    k = int((np.log(240 / 255 + 1e-3) - np.log(20 / 255 + 1e-3)) / 0.1)
    assert len(ev) == k * 48  # several events per pixel, one per threshold crossed
    # a threshold twice as high gives about half the events (on a real image in motion)
    img = read_mnist_idx_or_digit()
    n1 = len(emulate_saccades(img, config=replace(NMNIST_EMULATOR, pos_threshold=0.3, neg_threshold=0.3)))
    n2 = len(emulate_saccades(img, config=replace(NMNIST_EMULATOR, pos_threshold=0.6, neg_threshold=0.6)))
    assert 0.35 < n2 / n1 < 0.65


def read_mnist_idx_or_digit():
    import cv2

    img = np.zeros((28, 28), np.uint8)
    cv2.putText(img, "8", (6, 23), cv2.FONT_HERSHEY_SIMPLEX, 0.9, 255, 3)
    return img


def test_refractory_and_state_across_frames():
    cfg = EmulatorConfig(threshold_sigma=0.0, refractory_us=100_000)
    assert len(step(20, 240, cfg)) == 48  # one event per pixel within the refractory period
    emu = Emulator((4, 4), EmulatorConfig(threshold_sigma=0.0))
    emu.emulate(np.full((4, 4), 50, np.uint8), 0)
    a = emu.emulate(np.full((4, 4), 200, np.uint8), 1000)
    b = emu.emulate(np.full((4, 4), 200, np.uint8), 2000)  # no change since: no events
    assert len(a) > 0 and len(b) == 0


def test_shot_noise_rate():
    cfg = EmulatorConfig(shot_noise_hz=10.0)
    emu = Emulator((100, 100), cfg)
    frame = np.full((100, 100), 128, np.uint8)
    emu.emulate(frame, 0)
    n = len(emu.emulate(frame, 1_000_000))
    assert 0.9 * 100_000 < n < 1.1 * 100_000


def test_saccade_sample_and_mismatch_seeded():
    img = read_mnist_idx_or_digit()
    a = emulate_saccades(img, seed=1)
    b = emulate_saccades(img, seed=1)
    c = emulate_saccades(img, seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a["x"].max() < 34 and a["y"].max() < 34 and 0.3 < a["p"].mean() < 0.7
    # three saccades: three bursts separated by quiet pauses
    hist = np.histogram(a["t"], bins=np.arange(0, 300_001, 10_000))[0]
    assert hist[9] < hist[4] / 4 and hist[19] < hist[14] / 4


def test_bad_inputs(tmp_path):
    with pytest.raises(EvstreamError, match="2-D grey image"):
        emulate_saccades(np.zeros((3, 28, 28)))
    with pytest.raises(EvstreamError, match="larger than the 34x34 sensor"):
        emulate_saccades(np.zeros((40, 40), np.uint8))
    with pytest.raises(EvstreamError, match="does not fit"):
        Emulator((8, 6)).emulate(np.zeros((5, 5), np.uint8), 0)
    with pytest.raises(EvstreamError, match="no such video"):
        EmulatorSource.from_video(tmp_path / "none.mp4")
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(EvstreamError):
        EmulatorSource.from_video(bad)
    with pytest.raises(EvstreamError, match="no webcam at index 7"):
        open_source("webcam:7")


def make_video(path, n_frames, size=(64, 48)):
    import cv2

    w, h = size
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (w, h))
    for i in range(n_frames):
        f = np.zeros((h, w, 3), np.uint8)
        cv2.circle(f, (10 + 2 * i, h // 2), 8, (255, 255, 255), -1)
        vw.write(f)
    vw.release()


def test_video_source_and_cli(tmp_path):
    vid = tmp_path / "moving.avi"
    make_video(vid, 20)
    with open_source(str(vid)) as src:
        assert src.sensor_size == (64, 48)
        chunks = list(src)
    assert len(chunks) >= 10 and sum(len(c) for c in chunks) > 100
    out = tmp_path / "moving.aedat4"
    r = subprocess.run([sys.executable, "-m", "evstream", "emulate", str(vid), str(out)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    back = read_events(out)
    assert back.sensor_size == (64, 48) and len(back) == sum(len(c) for c in chunks)
    import dv_processing as dv
    assert tuple(dv.io.MonoCameraRecording(str(out)).getEventResolution()) == (64, 48)


def test_zero_length_video(tmp_path):
    vid = tmp_path / "empty.avi"
    make_video(vid, 0)
    with pytest.raises(EvstreamError):
        EmulatorSource.from_video(vid)


def test_cli_saccades_image(tmp_path):
    import cv2

    png = tmp_path / "digit.png"
    cv2.imwrite(str(png), read_mnist_idx_or_digit())
    out = tmp_path / "digit.aedat4"
    r = subprocess.run([sys.executable, "-m", "evstream", "emulate", str(png), str(out), "--saccades"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert read_events(out).sensor_size == (34, 34)
    r = subprocess.run([sys.executable, "-m", "evstream", "emulate", str(tmp_path / "nope.png"), str(out),
                        "--saccades"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "cannot read this image" in r.stderr


def test_saccade_source_spans():
    img = read_mnist_idx_or_digit()
    src = SaccadeSource([img, img], seed=0)
    chunks = list(src)
    assert len(chunks) == 2 and len(src.spans) == 2
    assert chunks[1].t_start >= src.spans[1][0] and chunks[0].t_end <= src.spans[0][1]


def test_demo_recording_is_readable_and_labelled():
    rec = REPO / "recordings" / "demo_digits.aedat4"
    c = read_events(rec)
    assert c.sensor_size == (34, 34) and len(c) > 10_000
    assert rec.stat().st_size < 5e6
    rows = list(csv.DictReader(open(rec.with_suffix(".labels.csv"))))
    assert len(rows) >= 10 and {int(r["digit"]) for r in rows} == set(range(10))
    assert int(rows[-1]["t_end_us"]) >= c.events["t"][-1] - c.events["t"][0]


def test_mnist_idx(shared_file):
    images, labels = read_mnist_idx(shared_file("mnist_images"))
    assert images.shape == (9900, 28, 28) and labels.shape == (9900,) and labels.max() == 9
