"""A seeded corpus of damaged files (``fuzz_corpus``: 20 variants of one real file per format) through
``info`` and ``convert``, in-process: each ends with the events or one clear line, quickly; a truncated file
keeps exactly the events before the cut. ``benchmarks/fuzz_readers.py`` runs hundreds per format in
subprocesses under time and memory limits. Also the crafted files of issue 18 (huge declared sizes)."""

from __future__ import annotations

import io
import struct
import time
import zipfile

import numpy as np
import pytest

from evstream.cli import main
from evstream.cli.info import summarize
from evstream.errors import EvstreamError, FormatError
from evstream.readers import read_events
from fuzz_corpus import FORMATS, SUFFIX, seed_bytes, variant

N_VARIANTS = 20
LIMIT_S = 5.0


def _one_line_error(exc: EvstreamError, path) -> None:
    msg = str(exc)
    assert "\n" not in msg and str(path) in msg, msg
    assert "Traceback" not in msg and ".cpp" not in msg and ".hpp" not in msg, msg


@pytest.mark.parametrize("fmt", FORMATS)
def test_damaged_variants_end_cleanly(tmp_path, data_dir, capsys, fmt):
    data = seed_bytes(fmt, data_dir)
    seed = tmp_path / f"seed{SUFFIX[fmt]}"
    seed.write_bytes(data)
    whole = read_events(seed).events
    assert len(whole) > 1000
    outcomes = set()
    for i in range(N_VARIANTS):
        kind, damaged, cut = variant(data, i)
        f = tmp_path / f"v{i}{SUFFIX[fmt]}"
        f.write_bytes(damaged)
        t0 = time.monotonic()
        try:
            n_info = summarize(f)["events"]
        except EvstreamError as exc:
            _one_line_error(exc, f)
            n_info = None
        out = tmp_path / f"out{i}.npz"
        rc = main(["convert", str(f), str(out)])
        err = capsys.readouterr().err
        assert time.monotonic() - t0 < LIMIT_S, (kind, i)
        assert rc in (0, 2), (kind, i, err)
        assert len(err.strip().splitlines()) == (rc == 2), (kind, i, err)
        outcomes.add(rc)
        if rc == 0:
            assert n_info is not None and len(read_events(out)) == n_info, (kind, i)
        if kind == "truncate" and out.exists():  # exactly the events before the cut
            got = read_events(out).events
            np.testing.assert_array_equal(got, whole[:len(got)], err_msg=f"{kind} {i}")
    assert 2 in outcomes  # the corpus does damage every format


def test_corpus_is_fixed():
    """The same variant bytes everywhere (a pure function of format, index and seed)."""
    data = bytes(range(256)) * 40
    assert variant(data, 7) == variant(data, 7) and variant(data, 7) != variant(data, 8)


def _expect_error(path, match):
    t0 = time.monotonic()
    with pytest.raises(FormatError, match=match) as info:
        read_events(path)
    assert time.monotonic() - t0 < LIMIT_S
    _one_line_error(info.value, path)


def test_npz_without_width_height(tmp_path):
    """An ordinary .npz saved without width/height: the sensor is the smallest that holds the events."""
    f = tmp_path / "plain.npz"
    x = np.array([3, 60000], np.uint16)
    np.savez(f, t=np.array([1, 2]), x=x, y=np.array([0, 7], np.uint16), p=np.array([0, 1], np.int8))
    s = summarize(f)
    assert (s["width"], s["height"], s["events"]) == (60001, 8, 2)


def test_npz_declaring_1e12_elements(tmp_path):
    buf = io.BytesIO()
    np.save(buf, np.arange(100, dtype=np.int64))
    f = tmp_path / "huge.npz"
    with zipfile.ZipFile(f, "w") as z:
        z.writestr("t.npy", buf.getvalue().replace(b"(100,)", b"(1000000000000,)"))
        for k in "xyp":
            b = io.BytesIO()
            np.save(b, np.zeros(100, np.uint16))
            z.writestr(f"{k}.npy", b.getvalue())
    _expect_error(f, "declares 1000000000000 values")


def test_hdf5_declaring_5e9_events(tmp_path):
    import h5py

    f = tmp_path / "big.h5"
    with h5py.File(f, "w") as h:
        g = h.create_group("events")
        for k in "txyp":
            g.create_dataset(k, shape=(5_000_000_000,), dtype="i8" if k == "t" else "u2", chunks=(1 << 20,))
    assert f.stat().st_size < 10_000
    _expect_error(f, "declares 5000000000 values")


@pytest.mark.parametrize("lengths,match", [((10, 10, 9, 10), "different lengths"), ((10, 10), "lacks dataset")])
def test_hdf5_mismatched_or_missing(tmp_path, lengths, match):
    import h5py

    f = tmp_path / "bad.h5"
    with h5py.File(f, "w") as h:
        g = h.create_group("events")
        for k, n in zip("txyp", lengths):
            g[k] = np.arange(n)
    _expect_error(f, match)


@pytest.mark.parametrize("header", [b"% Width 99999999999999999999\n% Height 5\n",
                                    b"% evt 2.0\n% Width 99999999999999999999\n% Height 5\n",
                                    b"% evt 3.0\n% format EVT3;height=720;width=99999999999999999999\n"])
def test_prophesee_huge_width(tmp_path, header):
    f = tmp_path / ("w.raw" if b"evt" in header else "w_td.dat")
    f.write_bytes(header + bytes([0, 8]) + bytes(80))
    _expect_error(f, "impossible sensor size")


@pytest.mark.parametrize("body,match", [
    (struct.pack("<hhiiiiii", 1, 1, 8, 4, 0, 0x7FFFFFFF, 0x7FFFFFFF, 0) + bytes(100), "do not fit"),
    (bytes(range(256)) * 20, "corrupt packet header|do not fit"),
])
def test_aedat31_huge_sizes(tmp_path, body, match):
    f = tmp_path / "bad.aedat"
    f.write_bytes(b"#!AER-DAT3.1\r\n#!END-HEADER\r\n" + body)
    _expect_error(f, match)


def test_aedat4_negative_header_size(tmp_path, data_dir):
    data = bytearray((data_dir / "tonic_samples/sample.aedat4").read_bytes())
    data[14:18] = struct.pack("<i", -5)
    f = tmp_path / "neg.aedat4"
    f.write_bytes(bytes(data))
    _expect_error(f, "header size -5")


def flipped_sample(tmp_path, data_dir):
    """The real AEDAT4 sample's events, and a copy with the byte at offset 742223 flipped (it made
    dv-processing spin at 100 % CPU forever)."""
    src = data_dir / "tonic_samples/sample.aedat4"
    data = bytearray(src.read_bytes())
    data[742223] ^= 0xFF
    f = tmp_path / "flip.aedat4"
    f.write_bytes(bytes(data))
    return read_events(src).events, f


def assert_intact_prefix(got: list, whole) -> None:
    """The chunks read before the damage: more than half the file, exactly its first events."""
    got = np.concatenate(got)
    assert 0.5 * len(whole) < len(got) < len(whole)
    np.testing.assert_array_equal(got, whole[:len(got)])


def test_aedat4_byte_flip_that_made_dv_spin(tmp_path, data_dir):
    """One byte at offset 742223 of the real sample made dv-processing spin at 100 % CPU forever: now the
    events before that packet, then one line naming its offset."""
    whole, f = flipped_sample(tmp_path, data_dir)
    from evstream.readers import open_reader

    got = []
    t0 = time.monotonic()
    with pytest.raises(FormatError, match="byte 741905.*corrupt") as info:
        with open_reader(f) as r:
            for c in r.chunks(10_000):
                got.append(c.events)
    assert time.monotonic() - t0 < LIMIT_S
    _one_line_error(info.value, f)
    assert_intact_prefix(got, whole)


def test_fifo_named_as_such(tmp_path):
    import os

    f = tmp_path / "pipe.bin"
    os.mkfifo(f)
    _expect_error(f, "FIFO")


def test_file_source_plays_the_good_part_of_a_damaged_file(tmp_path, data_dir):
    """`run`, `serve` and `gui` open recordings through FileSource: a damaged file opens quickly, its
    intact events play, then its one-line error comes."""
    from evstream.sources import FileSource

    whole, f = flipped_sample(tmp_path, data_dir)
    t0 = time.monotonic()
    fs = FileSource(f)
    assert fs.damage and "corrupt" in fs.damage
    got = []
    with pytest.raises(FormatError, match="corrupt"):
        for c in fs:
            got.append(c.events)
    assert time.monotonic() - t0 < LIMIT_S
    assert_intact_prefix(got, whole)


def test_aedat4_large_file_path_equals_small_file_path(tmp_path, data_dir, monkeypatch):
    """Files above base.SMALL_FILE are read in windows of aedat4.WINDOW bytes: the same events, the same
    salvage of a damaged file (forced here with tiny windows)."""
    import evstream.readers.aedat4 as aedat4
    import evstream.readers.base as base

    src = data_dir / "tonic_samples/sample.aedat4"
    whole, f = flipped_sample(tmp_path, data_dir)
    monkeypatch.setattr(base, "SMALL_FILE", 1000)
    monkeypatch.setattr(aedat4, "WINDOW", 5000)
    with aedat4.Aedat4Reader(src) as r:
        assert not r._small()
        np.testing.assert_array_equal(np.concatenate([c.events for c in r.chunks(7777)]), whole)
    got = []
    with pytest.raises(FormatError, match="byte 741905"):
        with aedat4.Aedat4Reader(f) as r:
            for c in r.chunks(7777):
                got.append(c.events)
    assert_intact_prefix(got, whole)
