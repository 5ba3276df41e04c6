"""Representation throughput: ours vs tonic vs dv-processing on the same events, in one run.

    python benchmarks/bench_representations.py --file ../shared/data/prophesee/sparklers_evt2.raw [--json OUT]

Each entry is events per second, best of ``--repeat``. dv-processing gets its ``EventStore`` built before
the clock starts (building one from numpy is a Python loop in dv-processing 2.0), tonic gets its own
structured array. ``slice_10ms_1Mev`` times building one 10 ms slice of a 1 Mev/s stream (10,000 events)
as 4 polarity frames at the recording's resolution.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evstream.filters import BackgroundActivityFilter, RefractoryFilter  # noqa: E402
from evstream.readers import read_events  # noqa: E402
from evstream.representations import SAE, functional as F  # noqa: E402

WINDOW = 10_000  # µs


def rate(fn, n_events, repeat):
    fn()
    best = min(_time(fn) for _ in range(repeat))
    return n_events / best, best


def _time(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", required=True)
    ap.add_argument("--json")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--limit", type=int, default=2_000_000, help="use at most this many events")
    args = ap.parse_args()

    import dv_processing as dv
    import tonic.functional as TF
    import tonic.transforms as T
    from evstream.writers import to_dv_store

    c = read_events(args.file)
    ev = c.events[: args.limit]
    w, h = c.sensor_size
    n = len(ev)
    tev = np.zeros(n, dtype=[("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    for k in "xytp":
        tev[k] = ev[k]
    store = to_dv_store(ev)
    r = args.repeat

    def dv_accumulator():
        acc = dv.Accumulator((w, h))
        for s in store.sliceTime(int(ev["t"][0]), int(ev["t"][-1]) + 1) if False else [store]:
            acc.accept(s)
        return acc.generateFrame()

    def dv_frames_per_window():
        acc = dv.Accumulator((w, h))
        t = int(ev["t"][0])
        while t <= int(ev["t"][-1]):
            acc.accept(store.sliceTime(t, t + WINDOW))
            acc.generateFrame()
            t += WINDOW

    def dv_timesurface():
        s = dv.TimeSurface((w, h))
        s.accept(store)

    def dv_noise():
        f = dv.noise.BackgroundActivityNoiseFilter((w, h), timedelta(microseconds=WINDOW))
        f.accept(store)
        f.generateEvents()

    def ours_sae():
        SAE((w, h)).update(ev)

    table = {
        "frames_10ms": {
            "ours": rate(lambda: F.to_frames(ev, (w, h), time_window=WINDOW), n, r)[0],
            "tonic": rate(lambda: T.ToFrame(sensor_size=(w, h, 2), time_window=WINDOW)(tev), n, r)[0],
            "dv": rate(dv_frames_per_window, n, r)[0],
        },
        "frames_4_bins": {
            "ours": rate(lambda: F.to_frames(ev, (w, h), n_time_bins=4), n, r)[0],
            "tonic": rate(lambda: T.ToFrame(sensor_size=(w, h, 2), n_time_bins=4)(tev), n, r)[0],
            "dv": None,
        },
        "count_image": {
            "ours": rate(lambda: F.count_image(ev, (w, h)), n, r)[0],
            "tonic": rate(lambda: T.ToFrame(sensor_size=(w, h, 2), n_event_bins=1)(tev), n, r)[0],
            "dv": rate(dv_accumulator, n, r)[0],
        },
        "sae": {
            "ours": rate(ours_sae, n, r)[0],
            "tonic": None,
            "dv": rate(dv_timesurface, n, r)[0],
        },
        "time_surface_10ms": {
            "ours": rate(lambda: F.to_timesurface(ev, (w, h), WINDOW, 20_000.0), n, r)[0],
            "tonic": rate(lambda: T.ToTimesurface(sensor_size=(w, h, 2), dt=WINDOW, tau=20_000.0)(tev), n, 1)[0],
            "dv": None,
        },
        "voxel_grid_5": {
            "ours": rate(lambda: F.to_voxel_grid(ev, (w, h), 5), n, r)[0],
            "tonic": rate(lambda: T.ToVoxelGrid(sensor_size=(w, h, 2), n_time_bins=5)(tev.copy()), n, r)[0],
            "dv": None,
        },
        "background_activity_filter": {
            "ours": rate(lambda: BackgroundActivityFilter((w, h), WINDOW)(ev), n, r)[0],
            "tonic": rate(lambda: TF.denoise_numpy(tev, filter_time=WINDOW), n, 1)[0],
            "dv": rate(dv_noise, n, r)[0],
        },
        "refractory_filter": {
            "ours": rate(lambda: RefractoryFilter((w, h), 1000)(ev), n, r)[0],
            "tonic": rate(lambda: TF.refractory_period_numpy(tev, 1000), n, 1)[0],
            "dv": None,
        },
    }
    # one 10 ms slice of a 1 Mev/s stream: 10,000 events -> 4 polarity frames
    sl = ev[:10_000]
    t_slice = min(_time(lambda: F.to_frames(sl, (w, h), n_time_bins=4)) for _ in range(20))
    extra = {"slice_10ms_1Mev_ms": t_slice * 1e3, "events": n, "sensor": [w, h], "file": str(args.file)}

    print(f"{Path(args.file).name}: {n} events, {w}x{h}")
    print(f"{'representation':28} {'ours Mev/s':>11} {'tonic':>9} {'dv':>9} {'x tonic':>8} {'x dv':>7}")
    for name, row in table.items():
        o, t, d = row["ours"], row["tonic"], row["dv"]
        fmt = lambda v: "-" if v is None else f"{v / 1e6:.1f}"  # noqa: E731
        ratio = lambda a, b: "-" if b is None else f"{a / b:.1f}"  # noqa: E731
        print(f"{name:28} {fmt(o):>11} {fmt(t):>9} {fmt(d):>9} {ratio(o, t):>8} {ratio(o, d):>7}")
    print(f"one 10 ms slice at 1 Mev/s (10,000 events -> 4 frames): {t_slice * 1e3:.3f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(table | {"_meta": extra}, indent=2))


if __name__ == "__main__":
    main()
