"""Time to the first result of ``evstream run`` and ``evstream gui`` at 1x real time with one other core busy, per
live mode (issue 16).

A user starts ``evstream run SOURCE`` (or ``evstream gui SOURCE``) and waits for the first decision: this starts that
command as a fresh process (imports, checkpoint, compiled step, reader; the window for the GUI, offscreen) on the
real N-MNIST stream of ``bench_live_load.py`` while a busy-loop process keeps one core busy. ``run``: the time of
the first JSON line on stdout from the moment the process is started; both: ``first_decision_s`` of the summary
JSON (the process's age at its first decision, from ``/proc``: interpreter start included).

    python benchmarks/bench_first_decision.py [--runs 5] [--modes ecmt,mst,spikformer] [--commands run,gui] [--json J]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
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


def first_decision(stream: Path, mode: str, command: str, tmp: Path) -> dict:
    summary = tmp / "summary.json"
    summary.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "evstream", command, str(stream), "--model",
           str(REPO / "models" / CHECKPOINTS[mode]), "--mode", mode, "--speed", "1", "--summary-json", str(summary)]
    cmd += ["--json-lines", "--max-decisions", "1"] if command == "run" else ["--duration", "4"]
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO, env=env)
    line = p.stdout.readline() if command == "run" else ""
    t_line = time.perf_counter() - t0
    p.communicate()
    if p.returncode or not summary.exists():
        raise SystemExit(f"{command} {mode}: no summary (exit {p.returncode})")
    first = json.loads(summary.read_text()).get("first_decision_s")
    out = {"summary_first_decision_s": None if first is None else round(first, 3)}
    if command == "run":
        if not line.startswith("{"):
            raise SystemExit(f"run {mode}: no decision line")
        out["first_line_s"] = round(t_line, 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--modes", default="ecmt,mst,spikformer")
    ap.add_argument("--commands", default="run,gui")
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
                for command in a.commands.split(","):
                    for mode in a.modes.split(","):
                        r = first_decision(stream, mode, command, Path(tmp))
                        res["runs"].setdefault(f"{command} {mode}", []).append(r)
                        print(f"{command} {mode}: {r}", flush=True)
        finally:
            stop.set()
            hog.join()
    res["median_s"] = {k: statistics.median(r["summary_first_decision_s"] for r in v) for k, v in res["runs"].items()}
    for k, v in res["runs"].items():
        print(f"{k}: first decision (process age) {[r['summary_first_decision_s'] for r in v]} s, "
              f"median {res['median_s'][k]:.2f} s")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
