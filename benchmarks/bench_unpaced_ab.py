"""Unpaced ``evstream run`` of two checkouts, alternating, whole process timed (issue 16: "unpaced >= 5x real
time"). On a shared machine whose speed drifts by 20-40 % within the hour, one run of each checkout says little;
this starts ``evstream run STREAM --speed 0`` from the other checkout, then from this one, ``--pairs`` times per
mode, on the real N-MNIST stream of ``bench_live_load.py`` (each checkout with its own shipped checkpoints), and
reports wall time, x real time and the step p50 of each run, and the median of each side.

    git worktree add /tmp/before <commit>
    python benchmarks/bench_unpaced_ab.py --base /tmp/before [--modes ecmt,spikformer] [--pairs 4] [--json J]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_live_load import CHECKPOINTS, make_stream  # noqa: E402
from bench_step_ab import ab_arguments  # noqa: E402


def unpaced(repo: Path, stream: Path, mode: str, summary: Path) -> dict:
    cmd = [sys.executable, "-m", "evstream", "run", str(stream), "--model", str(repo / "models" / CHECKPOINTS[mode]),
           "--mode", mode, "--speed", "0", "--summary-json", str(summary)]
    env = dict(os.environ, PYTHONPATH=str(repo))
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=repo, env=env)
    wall = time.perf_counter() - t0
    if p.returncode:
        raise SystemExit(f"{repo} {mode}: {(p.stderr.strip().splitlines() or ['failed'])[-1]}")
    s = json.loads(summary.read_text())
    return {"wall_s": round(wall, 3), "step_p50_ms": s.get("latency_ms", {}).get("step", {}).get("p50"),
            "decisions": s.get("decisions") if isinstance(s.get("decisions"), int) else len(s.get("decisions", []))}


def main() -> None:
    a = ab_arguments(__doc__, "ecmt,spikformer")
    from bench_step_compiled import machine  # lscpu's model name, cores, load, torch

    res = {"machine": machine(), "base": a.base, "runs": {}, "summary": {}}
    with tempfile.TemporaryDirectory() as tmp:
        stream = Path(tmp) / "nmnist_val_stream.npz"
        res["stream_s"] = stream_s = make_stream(stream)
        for mode in a.modes.split(","):
            runs = res["runs"][mode] = {"base": [], "this": []}
            for i in range(a.pairs):
                for name, repo in (("base", Path(a.base)), ("this", REPO)):
                    r = unpaced(repo, stream, mode, Path(tmp) / "s.json")
                    r["x_realtime"] = round(stream_s / r["wall_s"], 3)
                    runs[name].append(r)
                    print(f"{mode} pair {i + 1} {name:4s}: {r['wall_s']:.2f} s = {r['x_realtime']:.2f}x real time, "
                          f"step p50 {r['step_p50_ms']} ms", flush=True)
            med = {n: statistics.median(r["wall_s"] for r in rs) for n, rs in runs.items()}
            res["summary"][mode] = {n: {"median_wall_s": m, "x_realtime": round(stream_s / m, 3)} for n, m in med.items()}
            print(f"{mode}: base {med['base']:.2f} s ({stream_s / med['base']:.2f}x), this {med['this']:.2f} s "
                  f"({stream_s / med['this']:.2f}x): {med['this'] / med['base']:.2f}x the time", flush=True)
    res["machine"]["load_average_end"] = list(os.getloadavg())
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
