"""The batched live step of two checkouts, alternating, on a machine whose speed drifts (issue 16).

On a shared 2-core machine identical runs differ by 20-30 %, so a change to the step is compared against the code
before it in one sitting: each pair of rounds runs a fresh process of the other checkout, then of this one; a
process builds every mode's batched step (the shipped checkpoint of this checkout, a real N-MNIST recording) and
reports the per-timestep cost of a live decision (reset + T steps) as the median and the minimum *thread* time of
its decisions (time the process was scheduled, not time it waited for a core), and the minor page faults per
decision (memory the C library handed back to the kernel and took again).

    git worktree add /tmp/before <commit>
    python benchmarks/bench_step_ab.py --base /tmp/before [--modes ecmt,mst,spikformer] [--pairs 4] [--json J]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import sys, time, statistics, json, resource
repo, models, modes = sys.argv[1], sys.argv[2], sys.argv[3].split(',')
sys.path.insert(0, repo); sys.path.insert(0, repo + '/benchmarks')
import torch
torch.set_num_threads(1)
from evstream.live.config import LiveConfig
from evstream.live.model import chunk_for, load_model
from evstream.snn.compiled import CompiledRunner
from bench_step_compiled import real_input, CHECKPOINTS
out = {}
for mode in modes:
    lm = load_model(models + '/' + CHECKPOINTS[mode], mode=mode)
    T = LiveConfig().steps_for(lm)
    x = real_input(lm.rep)
    r = CompiledRunner(lm.runner, x, backend='batched', chunk=chunk_for(T, 'batched'))
    for _ in range(3):
        r.reset(); r.steps(x, T)
    ts = []
    n = max(8, 200 // T)
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n):
        t0 = time.thread_time(); r.reset(); r.steps(x, T); ts.append(time.thread_time() - t0)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / n
    out[mode] = {"T": T, "median_ms": statistics.median(ts) / T * 1e3, "min_ms": min(ts) / T * 1e3,
                 "page_faults_per_decision": faults}
print(json.dumps(out))
"""


def one(repo: Path, modes: str) -> dict:
    env = dict(os.environ, EVSTREAM_DATA=os.environ.get("EVSTREAM_DATA", str(REPO.parent / "shared" / "data")))
    p = subprocess.run([sys.executable, "-c", CHILD, str(repo), str(REPO / "models"), modes], capture_output=True,
                       text=True, env=env)
    if p.returncode:
        raise SystemExit(f"{repo}: {(p.stderr.strip().splitlines() or ['failed'])[-1]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def ab_arguments(doc: str, modes: str) -> argparse.Namespace:
    """The command line of an A/B benchmark: --base (the other checkout), --modes, --pairs, --json."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="the other checkout (a worktree of the commit before the change)")
    ap.add_argument("--modes", default=modes)
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--json", default=None)
    return ap.parse_args()


def main() -> None:
    a = ab_arguments(__doc__, "ecmt,mst,spikformer")
    runs = {"base": [], "this": []}
    for i in range(a.pairs):
        for name, repo in (("base", Path(a.base)), ("this", REPO)):
            r = one(repo, a.modes)
            runs[name].append(r)
            print(f"pair {i + 1} {name:4s}: " + " | ".join(f"{m} {v['median_ms']:.3f} (min {v['min_ms']:.3f}) ms, "
                                                          f"{v['page_faults_per_decision']:.0f} faults"
                                                          for m, v in r.items()), flush=True)
    summary = {name: {m: {"min_of_mins_ms": min(r[m]["min_ms"] for r in rs),
                          "median_of_medians_ms": statistics.median(r[m]["median_ms"] for r in rs)}
                      for m in a.modes.split(",")} for name, rs in runs.items()}
    for m in a.modes.split(","):
        b, t = summary["base"][m], summary["this"][m]
        print(f"{m}: base {b['median_of_medians_ms']:.3f} ms (min {b['min_of_mins_ms']:.3f}), this "
              f"{t['median_of_medians_ms']:.3f} ms (min {t['min_of_mins_ms']:.3f}): "
              f"{t['median_of_medians_ms'] / b['median_of_medians_ms']:.2f}x")
    if a.json:
        sys.path.insert(0, str(REPO / "benchmarks"))
        from bench_step_compiled import machine  # lscpu's model name, cores, load, torch

        out = {"machine": machine(), "base": a.base, "runs": runs, "summary": summary}
        Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
