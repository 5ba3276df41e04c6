"""FileSource: fast or paced replay, seek, loop; damaged files deliver the good events first."""

from __future__ import annotations

import time

import numpy as np
import pytest

from conftest import data_file
from evstream.errors import FormatError
from evstream.readers import read_events
from evstream.slicing import TimeSlicer, slice_stream
from evstream.sources import FileSource, open_source


def test_fast_replay_equals_reader():
    path = data_file("tonic_samples/sample.aedat4")
    ref = read_events(path).events
    with open_source(str(path)) as src:
        assert src.sensor_size == (320, 240) and not src.is_live
        got = np.concatenate([c.events for c in src])
        assert src.duration_us == int(ref["t"][-1] - ref["t"][0])
    np.testing.assert_array_equal(got, ref)


def test_paced_replay_takes_real_time():
    path = data_file("tonic_samples/sample.aedat4")  # 0.59 s
    t0 = time.perf_counter()
    with FileSource(path, speed=2.0) as src:
        n = sum(len(c) for c in src)
    dt = time.perf_counter() - t0
    assert n == 111_954
    assert 0.25 < dt < 2.0  # about 0.295 s at 2x


def test_seek_and_loop():
    path = data_file("tonic_samples/sample_nmnist.bin")
    ref = read_events(path).events
    src = FileSource(path, chunk_us=5_000)
    src.seek(200_000)
    first = next(iter(src))
    assert first.events["t"][0] >= ref["t"][0] + 200_000
    src.close()
    with FileSource(path, loop=True) as src:
        total = 0
        for c in src:
            total += len(c)
            if total > 2 * len(ref):
                break
    assert total > 2 * len(ref)


def test_slices_from_file_source_cover_recording():
    path = data_file("dvs128_aedat2/alex_walking_again.aedat")
    ref = read_events(path).events
    with FileSource(path, chunk_us=7_777) as src:
        slices = list(slice_stream(src, TimeSlicer(10_000, keep_partial=True)))
    assert sum(len(s) for s in slices) == len(ref)
    assert all(s.t_end - s.t_start == 10_000 for s in slices)


def test_damaged_file_source_delivers_good_events(tmp_path):
    src_path = data_file("tonic_samples/sample_nmnist.bin")
    data = src_path.read_bytes()
    f = tmp_path / "cut.bin"
    f.write_bytes(data[:5 * 3000 + 2])
    src = FileSource(f)  # opens: the good events play, then the one-line error
    assert "truncated" in src.damage
    got = []
    with pytest.raises(FormatError, match="truncated"):
        for c in src:
            got.append(c.events)
    np.testing.assert_array_equal(np.concatenate(got), read_events(src_path).events[:3000])
