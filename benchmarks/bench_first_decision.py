"""Time to the first result of ``evstream run`` at 1x real time with one other core busy, per live mode (issue 16).

A user starts ``evstream run SOURCE`` and waits for the first decision: this starts that command as a fresh process
(imports, checkpoint, compiled step, reader) on the real N-MNIST stream of ``bench_live_load.py`` while a busy-loop
process keeps one core busy, and times the first JSON line on stdout from the moment the process is started.

    python benchmarks/bench_first_decision.py [--runs 5] [--modes ecmt,mst,spikformer] [--json J]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_live_load import CHECKPOINTS, busy, make_stream  # noqa: E402


def first_decision(stream: Path, mode: str) -> float:
    cmd = [sys.executable, "-m", "evstream", "run", str(stream), "--model", str(REPO / "models" / CHECKPOINTS[mode]),
           "--mode", mode, "--speed", "1", "--json-lines", "--max-decisions", "1"]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    line = p.stdout.readline()
    t = time.perf_counter() - t0
    p.wait()
    if not line.startswith("{"):
        raise SystemExit(f"{mode}: no decision (exit {p.returncode})")
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--modes", default="ecmt,mst,spikformer")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    from bench_step_compiled import machine  # lscpu's model name, cores, load, torch

    res = {"machine": machine(), "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        stream = Path(tmp) / "nmnist_val_stream.npz"
        make_stream(stream)
        stop = mp.Event()
        hog = mp.Process(target=busy, args=(stop,), daemon=True)
        hog.start()
        try:
            for _ in range(a.runs):  # the modes in turn, so that a slow minute of the machine hits each
                for mode in a.modes.split(","):
                    res["runs"].setdefault(mode, []).append(round(first_decision(stream, mode), 3))
        finally:
            stop.set()
            hog.join()
    res["median_s"] = {m: statistics.median(v) for m, v in res["runs"].items()}
    for m, v in res["runs"].items():
        print(f"{m}: first decision {v} s, median {res['median_s'][m]:.2f} s")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
