"""Every reader against the real recordings in ../shared/data (counts and exact references from its README)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import data_file
from evstream.events import EVENT_DTYPE, make_events
from evstream.readers import detect_format, open_reader, read_events
from evstream.writers import write_events

# file, format, sensor, events, duration_us (approx, µs)
CASES = [
    ("tonic_samples/sample.aedat4", "aedat4", (320, 240), 111_954, 590_000),
    ("tonic_samples/sample_ncars.dat", "dat", (304, 240), 2_009, 100_000),
    ("prophesee/NCARS_obj_004397_td.dat", "dat", (304, 240), 4_407, 99_900),
    ("prophesee/sparklers_evt2.raw", "evt2", (640, 480), 521_252, 95_900),
    ("prophesee/pedestrians_evt3.raw", "evt3", (1280, 720), 5_000, 45_000),
    ("tonic_samples/sample_nmnist.bin", "nmnist", (34, 34), 4_325, None),
    ("dvs128_aedat2/neal_walking.aedat", "aedat2", (128, 128), None, 9_200_000),
    ("dvs128_aedat2/alex_walking_again.aedat", "aedat2", (128, 128), None, 6_900_000),
    ("tonic_samples/sample_aedat_header.aedat", "aedat2", (346, 260), 0, None),
]


@pytest.mark.parametrize("rel,fmt,sensor,count,duration", CASES, ids=[c[0] for c in CASES])
def test_reader_matches_shared_data(rel, fmt, sensor, count, duration):
    path = data_file(rel)
    assert detect_format(path) == fmt
    chunk = read_events(path)
    ev = chunk.events
    assert ev.dtype == EVENT_DTYPE
    assert chunk.sensor_size == sensor
    if count is not None:
        assert len(ev) == count
    if len(ev):
        assert np.all(np.diff(ev["t"]) >= 0)
        assert set(np.unique(ev["p"]).tolist()) <= {0, 1}
        assert ev["x"].max() < sensor[0] and ev["y"].max() < sensor[1]
    if duration is not None:
        assert abs(int(ev["t"][-1] - ev["t"][0]) - duration) < 0.01 * duration + 1000


def test_dat_exact_reference():
    ref = np.load(data_file("prophesee/NCARS_obj_004397_td.ref.npy"))
    ev = read_events(data_file("prophesee/NCARS_obj_004397_td.dat")).events
    for k in "txyp":
        np.testing.assert_array_equal(ev[k].astype(np.int64), ref[k].astype(np.int64))


def test_evt3_to_spec():
    ref = np.load(data_file("prophesee/pedestrians_evt3.ref.npy"))
    ev = read_events(data_file("prophesee/pedestrians_evt3.raw")).events
    for k in "xyp":
        np.testing.assert_array_equal(ev[k].astype(np.int64), ref[k].astype(np.int64))
    # decoded to the spec: monotonic, same first event, and never later than the quirky reference
    assert np.all(np.diff(ev["t"]) >= 0)
    assert ev["t"][0] == ref["t"][0]
    assert np.all(ev["t"] <= ref["t"]) and np.all((ref["t"] - ev["t"]) % 4096 == 0)


def test_nmnist_bs2_counts_and_labels():
    folder = data_file("nmnist_small/train")
    sizes = []
    for i in (1, 2, 500, 1000):
        ev = read_events(folder / f"{i}.bs2").events
        assert 1069 <= len(ev) <= 7152
        assert ev["t"].max() <= 336_000
        sizes.append(len(ev))
    assert len(set(sizes)) > 1


def test_nmnist_bin_overflow(tmp_path):
    # an overflow marker (y == 240) adds 2**23 µs to every later event and is not itself an event
    def word(x, y, p, t):
        v = (x << 32) | (y << 24) | (p << 23) | t
        return v.to_bytes(5, "big")
    raw = word(1, 2, 1, 100) + word(0, 240, 0, 0) + word(3, 4, 0, 50)
    f = tmp_path / "ovf.bin"
    f.write_bytes(raw)
    ev = read_events(f).events
    assert ev["t"].tolist() == [100, (1 << 23) + 50]
    assert ev["x"].tolist() == [1, 3] and ev["p"].tolist() == [1, 0]


@pytest.mark.parametrize("rel", ["prophesee/sparklers_evt2.raw", "prophesee/pedestrians_evt3.raw",
                                 "tonic_samples/sample.aedat4", "dvs128_aedat2/neal_walking.aedat",
                                 "prophesee/NCARS_obj_004397_td.dat", "tonic_samples/sample_nmnist.bin"])
@pytest.mark.parametrize("max_events", [1, 997, 65_536])
def test_streaming_equals_whole_file(rel, max_events):
    path = data_file(rel)
    whole = read_events(path).events
    if max_events == 1 and len(whole) > 20_000:
        max_events = 3  # same boundary stress, bounded test time
    with open_reader(path) as r:
        parts = [c.events for c in r.chunks(max_events=max_events)]
        assert all(len(p) <= max(max_events, 12) or r.format in ("aedat4", "aedat3") for p in parts)
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_aedat3_packets(tmp_path):
    # write an AEDAT 3.1 file to the published layout: header, then polarity packets (type 1)
    header = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n"
    pkt = np.dtype([("type", "<i2"), ("source", "<i2"), ("size", "<i4"), ("tsoff", "<i4"),
                    ("tsovf", "<i4"), ("cap", "<i4"), ("num", "<i4"), ("valid", "<i4")])
    body = b""
    expect = []
    for ovf, evs in ((0, [(5, 6, 1, 10), (7, 8, 0, 20)]), (1, [(1, 2, 1, 3)])):
        d = np.array([(1 | (p << 1) | (y << 2) | (x << 17)) for x, y, p, _ in evs], "<u4")
        ts = np.array([t for *_, t in evs], "<i4")
        h = np.array([(1, 1, 8, 4, ovf, len(evs), len(evs), len(evs))], pkt)
        e = np.empty(len(evs), [("d", "<u4"), ("t", "<i4")]); e["d"], e["t"] = d, ts
        body += h.tobytes() + e.tobytes()
        expect += [((ovf << 31) | t, x, y, p) for x, y, p, t in evs]
    f = tmp_path / "x.aedat"
    f.write_bytes(header + body)
    assert detect_format(f) == "aedat3"
    ev = read_events(f).events
    assert [tuple(int(v) for v in e) for e in ev] == expect


def test_davis_aedat2_layout(tmp_path):
    # DAVIS346 address layout: DVS events have bit 31 clear; APS samples (bit 31 set) are skipped
    hdr = b"#!AER-DAT2.0\r\n# AEChip: eu.seebetter.ini.chips.davis.Davis346red\r\n"
    addr = [(3 << 22) | (300 << 12) | (1 << 11), (1 << 31) | 5, (259 << 22) | (0 << 12)]
    ts = [10, 11, 12]
    data = np.array(list(zip(addr, ts)), dtype=">u4").tobytes()
    f = tmp_path / "davis.aedat"
    f.write_bytes(hdr + data)
    c = read_events(f)
    assert c.sensor_size == (346, 260)
    assert c.events["x"].tolist() == [300, 0] and c.events["y"].tolist() == [3, 259]
    assert c.events["p"].tolist() == [1, 0] and c.events["t"].tolist() == [10, 12]


def test_asl_dvs_mat(tmp_path):
    from scipy.io import savemat

    f = tmp_path / "a_0001.mat"
    savemat(f, {"ts": np.array([[1], [5], [9]]), "x": np.array([[0], [239], [5]]),
                "y": np.array([[0], [179], [7]]), "pol": np.array([[1], [0], [1]])})
    assert detect_format(f) == "mat"
    c = read_events(f)
    assert c.sensor_size == (240, 180)
    assert c.events["x"].tolist() == [0, 239, 5] and c.events["p"].tolist() == [1, 0, 1]


def test_native_roundtrips(tmp_path):
    import h5py

    ev = make_events([1, 2, 3], [0, 1, 2], [2, 1, 0], [1, 0, 1])
    from evstream.events import EventChunk

    write_events(tmp_path / "e.npz", EventChunk(ev, (3, 3)))
    c = read_events(tmp_path / "e.npz")
    assert c.sensor_size == (3, 3) and (c.events == ev).all()
    with h5py.File(tmp_path / "e.h5", "w") as h:
        g = h.create_group("events")
        for k in "txyp":
            g[k] = ev[k]
        h.attrs["width"], h.attrs["height"] = 3, 3
    c = read_events(tmp_path / "e.h5")
    assert detect_format(tmp_path / "e.h5") == "hdf5" and (c.events == ev).all()


def test_content_beats_extension(tmp_path):
    src = data_file("prophesee/sparklers_evt2.raw")
    f = tmp_path / "misnamed.dat"
    f.write_bytes(src.read_bytes()[:20_000])
    assert detect_format(f) == "evt2"
