"""The live pipeline at 1x real time with one other core busy, and unpaced, per live mode (issue 16).

Builds the real N-MNIST stream of the issue (the 100 validation recordings back to back, 10 ms gaps, about
31.6 s; ``evstream.streams.build_stream``) once as ``.npz``, then for every mode and step runs, as a user
would, ``evstream run STREAM --speed 1 --summary-json S`` while a busy-loop process keeps one core busy,
and ``evstream run STREAM --speed 0`` (unpaced) timed as a whole process; reports dropped slices, decision
latency (slice complete -> decision) p50/p99, step p50, degradation, the time to the first decision.

    python benchmarks/bench_live_load.py [--modes ecmt,mst,spikformer] [--steps eager,auto]
        [--json benchmarks/bench_live_load.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHECKPOINTS = {"ecmt": "mst-nmnist.pt", "mst": "mst-nmnist.pt", "spikformer": "spikformer-nmnist.pt"}


def busy(stop):
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def make_stream(path: Path) -> float:
    from evstream.events import EventChunk
    from evstream.paths import data_root
    from evstream.stream_eval import StreamEvalConfig, split_recordings
    from evstream.streams import StreamConfig, build_stream
    from evstream.writers import write_events

    root = data_root() / "nmnist_small" / "train"
    cfg = StreamEvalConfig(model="", root=str(root), labels=str(root / "labels.txt"))
    recs, labels, size = split_recordings(cfg)
    stream = build_stream(recs, labels, StreamConfig(gap_us=(10_000, 10_000), shuffle=False, seed=0), size)
    write_events(path, EventChunk(stream.events, sensor_size=tuple(size)))
    return stream.duration_us / 1e6


def run(stream, mode, step, speed, out: Path) -> dict:
    cmd = [sys.executable, "-m", "evstream", "run", str(stream), "--model", str(REPO / "models" / CHECKPOINTS[mode]),
           "--mode", mode, "--speed", str(speed), "--summary-json", str(out), "--json-lines", "--step", step]
    env = dict(os.environ)
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    first = None
    for line in p.stdout:
        if first is None and line.startswith("{"):
            first = time.perf_counter() - t0
    err = p.stderr.read()
    p.wait()
    wall = time.perf_counter() - t0
    if p.returncode:
        return {"error": err.strip().splitlines()[-1:]}
    s = json.loads(out.read_text())
    lat = s.get("latency_ms", {})
    return {"wall_s": wall, "first_decision_s": first, "slices": s["slices"], "dropped_slices": s["dropped_slices"],
            "decisions": s["decisions"], "steps": s["steps"], "step": s.get("step"), "degrade": s.get("degrade"),
            "step_p50_ms": lat.get("step", {}).get("p50"), "step_p99_ms": lat.get("step", {}).get("p99"),
            "total_p50_ms": lat.get("total", {}).get("p50"), "total_p99_ms": lat.get("total", {}).get("p99"),
            "queue_p50_ms": lat.get("queue", {}).get("p50"), "notices": [ln for ln in err.splitlines() if ln][:3]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", default="ecmt,mst,spikformer")
    ap.add_argument("--steps", default="eager,auto", help="values of --step (LiveConfig.step) to compare")
    ap.add_argument("--no-unpaced", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    from bench_step_compiled import machine

    res = {"machine": machine(), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        stream = Path(tmp) / "nmnist_val_stream.npz"
        res["stream_s"] = make_stream(stream)
        print(f"stream {res['stream_s']:.1f} s", flush=True)
        for mode in args.modes.split(","):
            for step in args.steps.split(","):
                stop = mp.Event()
                hog = mp.Process(target=busy, args=(stop,), daemon=True)
                hog.start()
                try:
                    r1 = run(stream, mode, step, 1, Path(tmp) / "s1.json")
                finally:
                    stop.set()
                    hog.join()
                row = {"mode": mode, "step": step, "speed_1_one_core_busy": r1}
                if not args.no_unpaced:
                    r0 = run(stream, mode, step, 0, Path(tmp) / "s0.json")
                    r0["x_realtime_whole_process"] = res["stream_s"] / r0["wall_s"] if "wall_s" in r0 else None
                    row["unpaced"] = r0
                res["runs"].append(row)
                print(json.dumps(row), flush=True)
    res["machine"]["load_average_end"] = list(os.getloadavg())
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
