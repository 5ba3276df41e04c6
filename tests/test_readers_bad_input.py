"""Damaged, foreign and missing files give one clear line naming the file (and byte offset where known);
in streaming mode every event before the damage is still delivered; the CLI exits 2 with no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import data_file
from evstream.errors import FormatError
from evstream.readers import open_reader, read_events


def stream_until_error(path):
    got = []
    with pytest.raises(FormatError) as info:
        with open_reader(path) as r:
            for c in r.chunks(max_events=500):
                got.append(c.events)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    return (np.concatenate(got) if got else np.zeros(0)), msg


@pytest.mark.parametrize("rel,record,header", [
    ("tonic_samples/sample_nmnist.bin", 5, 0),
    ("prophesee/NCARS_obj_004397_td.dat", 8, None),
    ("dvs128_aedat2/alex_walking_again.aedat", 8, None),
    ("prophesee/sparklers_evt2.raw", 4, None),
])
def test_truncated_mid_record_keeps_events(tmp_path, rel, record, header):
    src = data_file(rel)
    whole = read_events(src).events
    data = src.read_bytes()
    cut = len(data) - (len(data) // 3) // record * record - 3  # cut inside a record
    f = tmp_path / ("cut" + src.suffix)
    f.write_bytes(data[:cut])
    got, msg = stream_until_error(f)
    assert "truncated" in msg and "byte" in msg
    assert len(got) > 0.5 * len(whole)
    np.testing.assert_array_equal(got, whole[:len(got)])


def test_truncated_aedat4_keeps_events(tmp_path):
    src = data_file("tonic_samples/sample.aedat4")
    whole = read_events(src).events
    data = src.read_bytes()
    f = tmp_path / "cut.aedat4"
    f.write_bytes(data[: len(data) // 2])
    got = []
    try:
        with open_reader(f) as r:
            for c in r.chunks(max_events=10_000):
                got.append(c.events)
    except FormatError as exc:
        assert "\n" not in str(exc) and str(f) in str(exc)
    got = np.concatenate(got)
    assert 0.3 * len(whole) < len(got) < len(whole)
    np.testing.assert_array_equal(got, whole[:len(got)])


def test_timestamps_backwards_reported(tmp_path):
    src = data_file("tonic_samples/sample_nmnist.bin")
    data = bytearray(src.read_bytes())
    i = 2000  # set event i's 23-bit time to 0: real disorder
    data[5 * i + 2] &= 0x80
    data[5 * i + 3] = 0
    data[5 * i + 4] = 0
    f = tmp_path / "disorder.bin"
    f.write_bytes(bytes(data))
    got, msg = stream_until_error(f)
    assert "backwards" in msg and f"event {i}" in msg
    assert len(got) == i


def test_outside_sensor_reported(tmp_path):
    src = data_file("tonic_samples/sample_nmnist.bin")
    data = bytearray(src.read_bytes())
    data[5 * 100] = 60  # x = 60 on a 34x34 sensor
    f = tmp_path / "outside.bin"
    f.write_bytes(bytes(data))
    got, msg = stream_until_error(f)
    assert "outside the 34x34 sensor" in msg and len(got) == 100


@pytest.mark.parametrize("content,expect", [
    (b"", "empty file"),
    (b"GIF89a not events at all", "unrecognised event format"),
    (b"#!AER-DAT2.0\r\n# header\r\n\x00\x00\x00", "truncated"),
    (b"% Date 2020\n% evt 9.0\n\x00\x00", "no known event format"),
])
def test_foreign_and_corrupt_headers(tmp_path, content, expect):
    f = tmp_path / "bad.raw"
    f.write_bytes(content)
    with pytest.raises(FormatError, match=expect) as info:
        read_events(f)
    assert str(f) in str(info.value) and "\n" not in str(info.value)


def test_dat_corrupt_event_size(tmp_path):
    src = data_file("prophesee/NCARS_obj_004397_td.dat")
    data = bytearray(src.read_bytes())
    pos = data.index(b"\n", data.rindex(b"\n% ") + 1) + 1 if b"\n% " in data[:400] else None
    # the two bytes after the header are event type and size; corrupt the size
    hdr_end = 0
    while data[hdr_end:hdr_end + 2] == b"% ":
        hdr_end = data.index(b"\n", hdr_end) + 1
    data[hdr_end + 1] = 3
    f = tmp_path / "bad_td.dat"
    f.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="event size 3"):
        read_events(f)


def test_directory_and_missing(tmp_path):
    with pytest.raises(FormatError, match="is a directory"):
        read_events(tmp_path)
    with pytest.raises(FormatError, match="no such file"):
        read_events(tmp_path / "nope.aedat4")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_no_permission(tmp_path):
    f = tmp_path / "locked.bin"
    f.write_bytes(b"\x00" * 10)
    f.chmod(0)
    with pytest.raises(FormatError, match="permission denied"):
        read_events(f)


def test_cli_exit_2_one_line(tmp_path):
    f = tmp_path / "garbage.aedat4"
    f.write_bytes(b"#!AER-DAT4.0\r\n" + os.urandom(2000))
    r = subprocess.run([sys.executable, "-m", "evstream", "info", str(f)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(f) in lines[0] and "Traceback" not in r.stderr


def test_aedat4_zeroed_header_one_line(tmp_path):
    """A zeroed AEDAT4 header (size 0): one line, exit 2."""
    f = tmp_path / "zeros.aedat4"
    f.write_bytes(b"#!AER-DAT4.0\r\n" + bytes(5000))
    r = subprocess.run([sys.executable, "-m", "evstream", "info", str(f)], capture_output=True, text=True,
                       timeout=60, env={**os.environ, "RUST_BACKTRACE": "1"})
    assert r.returncode == 2, r.stderr[-1000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(f) in lines[0] and "not a readable AEDAT 4.0" in lines[0], r.stderr[-1000:]
