"""Seeded damaged variants of one small real recording per format.

Used by ``tests/test_fuzz_readers.py`` (a few variants per format, in-process) and by
``benchmarks/fuzz_readers.py`` (hundreds per format, each in a subprocess under a time and memory limit).
The seed files are real recordings from the shared data folder; the formats no real file here has (AEDAT
3.1, MATLAB, ``.npz``, HDF5) are written from the real N-MNIST sample's events to their published layouts.
Every variant is a pure function of (format, index, seed): the same bytes on every machine.
"""

from __future__ import annotations

import io
import random
import struct
from pathlib import Path

import numpy as np

REAL = {  # format -> (file under the shared data folder, bytes kept: a prefix that ends on a record)
    "aedat4": ("tonic_samples/sample.aedat4", None),
    "aedat2": ("dvs128_aedat2/alex_walking_again.aedat", None),
    "dat": ("prophesee/NCARS_obj_004397_td.dat", None),
    "evt2": ("prophesee/sparklers_evt2.raw", None),
    "evt3": ("prophesee/pedestrians_evt3.raw", None),
    "nmnist": ("tonic_samples/sample_nmnist.bin", None),
}
WRITTEN = ("aedat3", "mat", "npz", "hdf5")
FORMATS = tuple(REAL) + WRITTEN
SUFFIX = {"aedat4": ".aedat4", "aedat2": ".aedat", "aedat3": ".aedat", "dat": "_td.dat", "evt2": ".raw",
          "evt3": ".raw", "nmnist": ".bin", "mat": ".mat", "npz": ".npz", "hdf5": ".h5"}
KINDS = ("truncate", "flip", "flip_header", "int32", "zero", "garbage", "insert", "delete", "duplicate", "append")
EXTREMES = (0x7FFFFFFF, 0x7FFFFFF0, -1, -5, 0, 0x40000000, -0x80000000, 0x10000, 5_000_000_000 & 0xFFFFFFFF)


def seed_bytes(fmt: str, data_dir: Path) -> bytes:
    """The undamaged file of ``fmt`` (real, or written from real events)."""
    if fmt in REAL:
        rel, keep = REAL[fmt]
        data = (Path(data_dir) / rel).read_bytes()
        return data if keep is None else data[:keep]
    from evstream.readers import read_events

    ev = read_events(Path(data_dir) / REAL["nmnist"][0]).events
    if fmt == "aedat3":
        return aedat31_bytes(ev, (34, 34))
    buf = io.BytesIO()
    if fmt == "mat":
        from scipy.io import savemat

        savemat(buf, {"ts": ev["t"].astype(np.float64)[:, None], "x": ev["x"].astype(np.float64)[:, None],
                      "y": ev["y"].astype(np.float64)[:, None], "pol": ev["p"].astype(np.float64)[:, None]})
        return buf.getvalue()
    if fmt == "npz":
        np.savez_compressed(buf, t=ev["t"], x=ev["x"], y=ev["y"], p=ev["p"], width=np.int64(34), height=np.int64(34))
        return buf.getvalue()
    if fmt == "hdf5":
        import h5py

        with h5py.File(buf, "w") as h:
            g = h.create_group("events")
            for k in "txyp":
                g.create_dataset(k, data=ev[k], compression="gzip", chunks=(1024,))
            h.attrs["width"], h.attrs["height"] = 34, 34
        return buf.getvalue()
    raise KeyError(fmt)


def aedat31_bytes(ev: np.ndarray, sensor: tuple[int, int], per_packet: int = 1000) -> bytes:
    """An AEDAT 3.1 file of polarity packets (type 1, 8-byte events) to the published layout."""
    out = [b"#!AER-DAT3.1\r\n", b"#Format: RAW\r\n",
           f"#Source 1: DVS128 sizeX {sensor[0]} sizeY {sensor[1]}\r\n".encode(), b"#!END-HEADER\r\n"]
    for s in range(0, len(ev), per_packet):
        e = ev[s:s + per_packet]
        d = (1 | (e["p"].astype(np.uint32) << 1) | (e["y"].astype(np.uint32) << 2) | (e["x"].astype(np.uint32) << 17))
        rec = np.empty(len(e), np.dtype([("d", "<u4"), ("t", "<i4")]))
        rec["d"], rec["t"] = d, (e["t"] & 0x7FFFFFFF).astype(np.int32)
        out.append(struct.pack("<hhiiiiii", 1, 1, 8, 4, int(e["t"][0] >> 31), len(e), len(e), len(e)))
        out.append(rec.tobytes())
    return b"".join(out)


def variant(data: bytes, index: int, seed: int = 0) -> tuple[str, bytes, int | None]:
    """Damaged variant ``index`` of ``data``: (kind, bytes, cut offset for truncations else None)."""
    rng = random.Random(f"{seed}:{index}:{len(data)}")
    kind = KINDS[index % len(KINDS)] if index < len(KINDS) else rng.choice(KINDS + ("truncate", "flip"))
    b = bytearray(data)
    n = len(b)
    near_start = rng.random() < 0.5  # headers and first packets are where sizes live
    pos = rng.randrange(min(n, 4096)) if near_start else rng.randrange(n)
    if kind == "truncate":
        cut = rng.randrange(1, n)
        return kind, bytes(b[:cut]), cut
    if kind == "flip":
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(n)] ^= rng.randint(1, 255)
    elif kind == "flip_header":
        for _ in range(rng.randint(1, 2)):
            b[rng.randrange(min(n, 512))] ^= rng.randint(1, 255)
    elif kind == "int32":
        pos -= pos % 4
        b[pos:pos + 4] = struct.pack("<i", struct.unpack("<i", struct.pack("<I", rng.choice(EXTREMES) & 0xFFFFFFFF))[0])
    elif kind == "zero":
        k = rng.randint(1, 256)
        b[pos:pos + k] = bytes(len(b[pos:pos + k]))
    elif kind == "garbage":
        k = rng.randint(1, 256)
        b[pos:pos + k] = rng.randbytes(len(b[pos:pos + k]))
    elif kind == "insert":
        b[pos:pos] = rng.randbytes(rng.randint(1, 16))
    elif kind == "delete":
        del b[pos:pos + rng.randint(1, 64)]
    elif kind == "duplicate":
        k = rng.randint(8, 1024)
        b[pos:pos] = b[pos:pos + k]
    elif kind == "append":
        b += rng.randbytes(rng.randint(1, 4096))
    if bytes(b) == data:  # a mutation that changed nothing: flip one byte instead
        b[pos % n] ^= 0xFF
    return kind, bytes(b), None
