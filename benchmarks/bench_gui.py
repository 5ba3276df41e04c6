"""The live GUI offscreen for N seconds on the demo recording with the shipped model, at real time, looping:
dropped slices, display FPS, per-stage latency (p50/p99); peer: the same pipeline headless (`evstream run`'s
object, no window) over the same seconds in the same run.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_gui.py [--seconds 20] [--slice-ms 10] [--busy-core] \
        [--json benchmarks/bench_gui.json]

The machine's load average is recorded before and after: other jobs on the 2 cores change the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def thread_cpu(threads) -> dict:
    """CPU seconds used so far by each named thread (Linux per-thread clocks)."""
    out = {}
    for name, t in threads.items():
        try:
            out[name] = time.clock_gettime(time.pthread_getcpuclockid(t.ident))
        except (OSError, AttributeError, TypeError) as exc:
            print(f"no CPU clock for thread {name}: {exc}", file=sys.stderr)
            out[name] = float("nan")
    return out


def summarise(pipe, seconds, extra=None):
    st = pipe.stats()
    out = {"seconds": seconds, "slices": st["slices_in"], "dropped_slices": st["dropped_slices"],
           "steps": st["steps"], "decisions": st["decisions"],
           "latency_ms": {k: {"p50": round(v["p50_ms"], 3), "p99": round(v["p99_ms"], 3), "n": v["n"]}
                          for k, v in st["latency"].items()}}
    out.update(extra or {})
    return out


def headless(args):
    from evstream.live import Pipeline
    from evstream.paths import DEMO_MODEL, DEMO_RECORDING

    pipe = Pipeline(DEMO_RECORDING, DEMO_MODEL, speed=1.0, loop=True, slice_ms=args.slice_ms,
                    steps_per_slice=args.steps_per_slice)
    t0, c0 = time.perf_counter(), time.process_time()
    pipe.run(duration_s=args.seconds)
    wall = time.perf_counter() - t0
    return summarise(pipe, wall, {"process_cpu_cores": round((time.process_time() - c0) / wall, 3)})


def gui(args):
    from PyQt6 import QtCore

    from app import create_app
    from app.main_window import MainWindow
    from app.panels import METER
    from evstream.live import LiveConfig
    from evstream.paths import DEMO_MODEL, DEMO_RECORDING

    qapp = create_app()
    win = MainWindow(str(DEMO_RECORDING), str(DEMO_MODEL),
                     LiveConfig(loop=True, slice_ms=args.slice_ms, steps_per_slice=args.steps_per_slice),
                     record_dir="/tmp")
    win.resize(1500, 900)
    win.show()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    t_end = time.monotonic() + 60
    while (win.pipe is None or win.pipe.steps < 20) and time.monotonic() < t_end:  # open + warm up
        qapp.processEvents()
        time.sleep(0.01)
    p = win.pipe
    if p is None:
        raise SystemExit(f"the GUI did not open the demo: {win.errors}")
    # measure from here: fresh counters
    p.latency.reset()
    d0, s0, st0, dec0, f0 = p.dropped_slices, p.slices_in, p.steps, p.decisions, win.frames
    METER.frames.clear()
    paints = []
    orig = METER.painted

    def painted(view, seconds):
        orig(view, seconds)
        if getattr(view, "counts_frames", False):
            paints.append(time.perf_counter())

    METER.painted = painted
    import threading

    threads = {t.name.replace("evstream-", ""): t for t in p._threads}
    threads["ui"] = threading.main_thread()
    tc0 = thread_cpu(threads)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    res = {}

    def finish():  # measured before quitting: Qt 6's quit() closes the window, which stops the pipeline
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        tc1 = thread_cpu(threads)
        res.update(summarise(p, wall))
        res.update(slices=p.slices_in - s0, dropped_slices=p.dropped_slices - d0, steps=p.steps - st0,
                   decisions=p.decisions - dec0, frame_ticks=win.frames - f0,
                   display_fps=len(paints) / wall, tick_fps=(win.frames - f0) / wall,
                   process_cpu_cores=round(cpu / wall, 3),
                   thread_cpu_cores={k: round((tc1[k] - tc0[k]) / wall, 3) for k in threads})
        qapp.quit()

    QtCore.QTimer.singleShot(int(args.seconds * 1000), finish)
    qapp.exec()
    gaps = [b - a for a, b in zip(paints, paints[1:])]
    if gaps:
        gaps.sort()
        res["frame_gap_ms"] = {"p50": round(gaps[len(gaps) // 2] * 1e3, 2),
                               "p99": round(gaps[min(len(gaps) - 1, int(len(gaps) * 0.99))] * 1e3, 2)}
    win.close()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--slice-ms", type=float, default=10.0)
    ap.add_argument("--steps-per-slice", type=int, default=1)
    ap.add_argument("--skip-headless", action="store_true")
    ap.add_argument("--switch-interval", type=float, default=None,
                    help="sys.setswitchinterval for this run (default: what the app sets)")
    ap.add_argument("--busy-core", action="store_true",
                    help="keep one other core busy (a busy-loop process) while measuring, as issue 16 measures")
    ap.add_argument("--json")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    res = {"cpus": os.cpu_count(), "load_before": os.getloadavg(), "seconds": args.seconds,
           "slice_ms": args.slice_ms, "steps_per_slice": args.steps_per_slice,
           "demo": "recordings/demo_digits.aedat4 (7.52 s, looping, 1x real time)",
           "model": "models/mst-nmnist.pt"}
    print(f"GUI offscreen for {args.seconds:.0f} s…", file=sys.stderr)
    hog = stop = None
    if args.busy_core:
        import multiprocessing as mp

        from bench_live_load import busy
        from bench_step_compiled import machine

        res["machine"], res["busy_core"] = machine(), True
        stop = mp.Event()
        hog = mp.Process(target=busy, args=(stop,), daemon=True)
        hog.start()
    try:
        res["gui"] = gui(args)
        res["switch_interval_s"] = sys.getswitchinterval()
        if not args.skip_headless:  # the peer under the same load
            print(f"headless peer for {args.seconds:.0f} s…", file=sys.stderr)
            res["headless"] = headless(args)
            g, h = res["gui"]["latency_ms"].get("step"), res["headless"]["latency_ms"].get("step")
            if g and h:
                res["step_p50_gui_over_headless"] = round(g["p50"] / h["p50"], 3)
    finally:
        if hog is not None:
            stop.set()
            hog.join()
    res["load_after"] = os.getloadavg()
    text = json.dumps(res, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
