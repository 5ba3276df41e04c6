"""Reader throughput against the peer of each format, measured in one run on the same files.

Peers: expelliarmus (C; DAT, EVT 2.0, EVT 3.0), tonic's readers (AEDAT 2.0 DVS128 ``read_dvs_128``, N-MNIST
``read_mnist_file``), dv-processing alone (AEDAT 4.0). Also the peak RSS of streaming a 1 GB EVT 2.0 file
(written to a temporary folder by repeating the real recording, deleted afterwards).

    python benchmarks/bench_readers.py [--data ../shared/data] [--repeat 100] [--cpu 0] [--json OUT] [--no-big]

Each case times ours and the peer alternately in one loop on the same file(s), warm (page cache, numba
compiled), and keeps the best of ``--repeat`` calls of each: the whole read of a file from its path to an
event array in memory, every per-file cost included on both sides.
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


def interleaved(fns, repeat):
    """``[(events, best seconds)]`` of each function, all timed in turn in the same loop (the order rotates
    every round) so that load from other processes hits them alike; best of ``repeat`` calls each, after one
    warm-up call each (numba compiled, page cache warm)."""
    counts = [fn() for fn in fns]
    times = [[] for _ in fns]
    for r in range(repeat):
        k = r % len(fns)
        for j in list(range(k, len(fns))) + list(range(k)):
            t0 = time.perf_counter()
            fns[j]()
            times[j].append(time.perf_counter() - t0)
    return [(n, min(t)) for n, t in zip(counts, times)]


def ours(path):
    return lambda: len(read_events(path).events)


def ours_many(paths):
    return lambda: sum(len(read_events(p).events) for p in paths)


def expelliarmus_reader(path, encoding):
    """expelliarmus as its docs use it: one ``Wizard`` per encoding, ``read(path)`` per file (the Wizard is
    made outside the timing, so its Python set-up is not charged to the peer)."""
    from expelliarmus import Wizard

    wizard = Wizard(encoding=encoding)
    return lambda: len(wizard.read(str(path)))


def expelliarmus_core(path, encoding):
    """expelliarmus's C reader alone: a Wizard already holding the file (its Python check of the input path,
    ~15 µs, done outside the timing), ``read()`` timed."""
    from expelliarmus import Wizard

    wizard = Wizard(encoding=encoding, fpath=str(path))
    return lambda: len(wizard.read())


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
    """tonic's ``read_mnist_file`` into tonic's own packed event struct (13 bytes, like ours; faster for
    tonic than the four int64 fields its NMNIST dataset class asks for)."""
    from tonic.io import events_struct, read_mnist_file

    dtype = np.dtype(events_struct)
    return lambda: sum(len(read_mnist_file(str(p), dtype=dtype)) for p in paths)


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


def tiled_aedat4(src: Path, path: Path, times: int) -> Path:
    """The real AEDAT4 sample ``times`` times after itself (time shifted), written by dv-processing in
    5,000-event packets: a larger file of real event statistics."""
    from evstream.readers import read_events
    from evstream.writers import open_writer

    ev = read_events(src).events
    span = int(ev["t"][-1] - ev["t"][0]) + 1
    with open_writer(path, (320, 240)) as w:
        for k in range(times):
            e = ev.copy()
            e["t"] += k * span
            for s in range(0, len(e), 5000):
                w.write(e[s:s + 5000])
    return path


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
    ap.add_argument("--repeat", type=int, default=100, help="rounds of (ours, peer); the best of each counts")
    ap.add_argument("--cpu", type=int, help="pin this process to one CPU (less noise on a shared machine)")
    ap.add_argument("--json")
    ap.add_argument("--no-big", action="store_true")
    ap.add_argument("--only", help="run only the cases whose name contains this (e.g. 'AEDAT 4')")
    args = ap.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    d = Path(args.data)
    nm = sorted((d / "nmnist_small" / "train").glob("*.bs2"))[:200]
    cases = [
        ("DAT (N-Cars)", "expelliarmus dat", d / "prophesee/NCARS_obj_004397_td.dat",
         lambda p: expelliarmus_reader(p, "dat")),
        ("EVT 2.0", "expelliarmus evt2", d / "prophesee/sparklers_evt2.raw", lambda p: expelliarmus_reader(p, "evt2")),
        ("EVT 3.0", "expelliarmus evt3", d / "prophesee/pedestrians_evt3.raw",
         lambda p: expelliarmus_reader(p, "evt3")),
        ("AEDAT 2.0 (DVS128)", "tonic read_dvs_128", d / "dvs128_aedat2/neal_walking.aedat", tonic_dvs128),
        ("AEDAT 4.0", "dv-processing alone", d / "tonic_samples/sample.aedat4", dv_alone),
        # N-MNIST: 200 files of the tonic sample's format (.bs2 = .bin layout, no overflow events)
        ("N-MNIST (200 files)", "tonic read_mnist_file", nm, tonic_nmnist),
        ("AEDAT 4.0 (2 M events)", "dv-processing alone", "big-aedat4", dv_alone),
    ]
    cases = [c for c in cases if args.only is None or args.only in c[0]]
    tmp = tempfile.TemporaryDirectory(prefix="evstream-bench-")
    for i, c in enumerate(cases):
        if c[2] == "big-aedat4":
            cases[i] = (*c[:2], tiled_aedat4(d / "tonic_samples/sample.aedat4", Path(tmp.name) / "big.aedat4", 18),
                        c[3])
    CORE = {f"expelliarmus {e}": (lambda p, e=e: expelliarmus_core(p, e)) for e in ("dat", "evt2", "evt3")}
    rows = {}
    for name, peer_name, path, peer in cases:
        fns = [ours_many(path) if isinstance(path, list) else ours(path), peer(path)]
        core = CORE.get(peer_name)
        if core is not None:
            fns.append(core(path))
        res = interleaved(fns, args.repeat)
        (n_ours, t_ours), (n_peer, t_peer) = res[:2]
        rows[name] = {"peer": peer_name, "events": n_ours, "peer_events": n_peer,
                      "ours_s": t_ours, "peer_s": t_peer,
                      "ours_ev_per_s": n_ours / t_ours, "peer_ev_per_s": n_peer / t_peer,
                      "ratio": (n_ours / t_ours) / (n_peer / t_peer)}
        if core is not None:
            n_core, t_core = res[2]
            rows[name].update(peer_core_s=t_core, ratio_vs_core=(n_ours / t_ours) / (n_core / t_core))
        if n_ours != n_peer:
            print(f"warning: {name}: {n_ours} events (ours) != {n_peer} (peer)", file=sys.stderr)
    result = {"readers": rows}
    if not args.no_big:
        result["stream_1GB_evt2"] = big_file_rss(1 << 30)
    print(f"{'format':20} {'peer':22} {'events':>8} {'ours us':>8} {'peer us':>8} {'ours Mev/s':>10} "
          f"{'peer Mev/s':>10} {'ratio':>6}   {'C core us':>9} {'ratio':>6}")
    for name, r in rows.items():
        core = (f"   {r['peer_core_s'] * 1e6:>9.1f} {r['ratio_vs_core']:>6.2f}" if "peer_core_s" in r else "")
        print(f"{name:20} {r['peer']:22} {r['events']:>8} {r['ours_s'] * 1e6:>8.1f} {r['peer_s'] * 1e6:>8.1f} "
              f"{r['ours_ev_per_s'] / 1e6:>10.1f} {r['peer_ev_per_s'] / 1e6:>10.1f} {r['ratio']:>6.2f}{core}")
    if "stream_1GB_evt2" in result:
        print("stream 1 GB EVT2:", result["stream_1GB_evt2"])
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
