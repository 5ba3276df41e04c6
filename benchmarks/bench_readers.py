"""Reader throughput against the peer of each format, measured in one run on the same files.

Peers: expelliarmus (C; DAT, EVT 2.0, EVT 3.0), tonic's readers (AEDAT 2.0 DVS128 ``read_dvs_128``, N-MNIST
``read_mnist_file``), dv-processing alone (AEDAT 4.0). Also the peak RSS of streaming a 1 GB EVT 2.0 file
(written to a temporary folder by repeating the real recording, deleted afterwards).

    python benchmarks/bench_readers.py [--data ../shared/data] [--repeat 5] [--json OUT] [--no-big]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evstream.readers import read_events  # noqa: E402


def best_of(fn, repeat):
    fn()  # warm-up (numba compile, page cache)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn()
        times.append(time.perf_counter() - t0)
    return n, min(times)


def ours(path):
    return lambda: len(read_events(path).events)


def expelliarmus_reader(path, encoding):
    from expelliarmus import Wizard

    def run():
        return len(Wizard(encoding=encoding, fpath=str(path)).read())
    return run


def tonic_dvs128(path):
    """tonic 1.7.0's ``read_dvs_128`` body (its header call unpacks 2 of the 3 values the header reader now
    returns, so the function itself raises): header + ``get_aer_events_from_file`` + its bit decode."""
    from tonic.io import get_aer_events_from_file, make_structured_array, read_aedat_header_from_file

    def run():
        version, start, *_ = read_aedat_header_from_file(str(path))
        ev = get_aer_events_from_file(str(path), version, start)
        a = ev["address"]
        xytp = make_structured_array((a >> 8) & 0x7F, (a >> 1) & 0x7F, ev["timeStamp"], a & 1)
        return len(xytp)
    return run


def tonic_nmnist(paths):
    from tonic.io import read_mnist_file

    dtype = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])

    def run():
        return sum(len(read_mnist_file(str(p), dtype=dtype)) for p in paths)
    return run


def ours_many(paths):
    return lambda: sum(len(read_events(p).events) for p in paths)


def dv_alone(path):
    import dv_processing as dv

    def run():
        rec = dv.io.MonoCameraRecording(str(path))
        n = 0
        while True:
            b = rec.getNextEventBatch()
            if b is None:
                break
            n += len(b.numpy())
        return n
    return run


def synthetic_evt2(path: Path, target_bytes: int, sensor=(640, 480)) -> int:
    """Write an EVT 2.0 file of about ``target_bytes``: blocks of one TIME_HIGH word and 63 CD events with
    random pixels, time rising monotonically (a repeated real recording would repeat its timestamps)."""
    rng = np.random.default_rng(0)
    per_block, blocks_per_write = 64, 1 << 16
    written = 0
    block = 0
    with open(path, "wb") as f:
        f.write(b"% evt 2.0\n% format EVT2;height=480;width=640\n% end\n")
        while written < target_bytes:
            n = blocks_per_write
            th = np.arange(block, block + n, dtype=np.uint32)
            words = np.empty((n, per_block), np.uint32)
            words[:, 0] = (np.uint32(8) << 28) | (th & 0x0FFFFFFF)
            x = rng.integers(0, sensor[0], (n, per_block - 1), dtype=np.uint32)
            y = rng.integers(0, sensor[1], (n, per_block - 1), dtype=np.uint32)
            tl = np.sort(rng.integers(0, 64, (n, per_block - 1), dtype=np.uint32), axis=1)
            pol = rng.integers(0, 2, (n, per_block - 1), dtype=np.uint32)
            words[:, 1:] = (pol << 28) | (tl << 22) | (x << 11) | y
            f.write(words.tobytes())
            written += words.nbytes
            block += n
    return written


def big_file_rss(target_bytes: int) -> dict:
    """Stream a ~1 GB EVT 2.0 file in a child process; report its peak RSS and event count."""
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big_evt2.raw"
        written = synthetic_evt2(big, target_bytes)
        code = (
            "import resource, sys; sys.path.insert(0, %r)\n"
            "from evstream.readers import open_reader\n"
            "n = 0\n"
            "with open_reader(%r) as r:\n"
            "    for c in r.chunks(max_events=1_000_000): n += len(c)\n"
            # VmHWM (this process image's peak RSS); ru_maxrss would include the parent's peak at fork
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
            "print(n, hwm)\n" % (str(REPO), str(big))
        )
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
        dt = time.perf_counter() - t0
        if out.returncode != 0:
            return {"bytes": written, "error": out.stderr.strip().splitlines()[-1]}
        n, rss_kb = out.stdout.split()
        return {"bytes": written, "events": int(n), "peak_rss_MB": int(rss_kb) / 1024, "seconds": round(dt, 2)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("EVSTREAM_DATA", str(REPO.parent / "shared" / "data")))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json")
    ap.add_argument("--no-big", action="store_true")
    args = ap.parse_args()
    d = Path(args.data)
    nm = sorted((d / "nmnist_small" / "train").glob("*.bs2"))[:200]
    cases = [
        ("DAT (N-Cars)", "expelliarmus", d / "prophesee/NCARS_obj_004397_td.dat",
         lambda p: expelliarmus_reader(p, "dat")),
        ("EVT 2.0", "expelliarmus", d / "prophesee/sparklers_evt2.raw", lambda p: expelliarmus_reader(p, "evt2")),
        ("EVT 3.0", "expelliarmus", d / "prophesee/pedestrians_evt3.raw", lambda p: expelliarmus_reader(p, "evt3")),
        ("AEDAT 2.0 (DVS128)", "tonic read_dvs_128", d / "dvs128_aedat2/neal_walking.aedat", tonic_dvs128),
        ("AEDAT 4.0", "dv-processing alone", d / "tonic_samples/sample.aedat4", dv_alone),
    ]
    rows = {}
    for name, peer_name, path, peer in cases:
        n_ours, t_ours = best_of(ours(path), args.repeat)
        n_peer, t_peer = best_of(peer(path), args.repeat)
        rows[name] = {"peer": peer_name, "events": n_ours, "peer_events": n_peer,
                      "ours_ev_per_s": n_ours / t_ours, "peer_ev_per_s": n_peer / t_peer,
                      "ratio": (n_ours / t_ours) / (n_peer / t_peer)}
    # N-MNIST: 200 files of the tonic sample's format (.bs2 = .bin layout, no overflow events)
    n_ours, t_ours = best_of(ours_many(nm), args.repeat)
    n_peer, t_peer = best_of(tonic_nmnist(nm), args.repeat)
    rows["N-MNIST (200 files)"] = {"peer": "tonic read_mnist_file", "events": n_ours, "peer_events": n_peer,
                                   "ours_ev_per_s": n_ours / t_ours, "peer_ev_per_s": n_peer / t_peer,
                                   "ratio": (n_ours / t_ours) / (n_peer / t_peer)}
    result = {"readers": rows}
    if not args.no_big:
        result["stream_1GB_evt2"] = big_file_rss(1 << 30)
    print(f"{'format':22} {'peer':24} {'events':>9} {'ours Mev/s':>11} {'peer Mev/s':>11} {'ratio':>7}")
    for name, r in rows.items():
        print(f"{name:22} {r['peer']:24} {r['events']:>9} {r['ours_ev_per_s'] / 1e6:>11.1f} "
              f"{r['peer_ev_per_s'] / 1e6:>11.1f} {r['ratio']:>7.2f}")
    if "stream_1GB_evt2" in result:
        print("stream 1 GB EVT2:", result["stream_1GB_evt2"])
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
