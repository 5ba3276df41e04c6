"""Eager vs compiled SNN step, per live mode, side by side in one run (issue 16).

One live decision is "reset, then T timesteps of one window's input" (docs/model.md "Live streams"); this
times it per timestep, at batch 1, one thread, spike and op counting included, on a real N-MNIST recording:

- ``eager``: the streaming runner as it was (numba neurons, counting hooks), one ``step()`` per timestep;
- ``batched``: the pure step (evstream/snn/pure.py) run eagerly, ``chunk`` timesteps per call (numba neurons);
- ``inductor``: that step through ``torch.export`` + ``torch.compile`` (C++ wrapper, freezing);
- ``ort``: that step exported to ONNX, ONNX Runtime with one thread (when onnxruntime is installed).

Rounds interleave the contenders (the machine is shared: medians over rounds of medians). Compile times
are wall times in this run (inductor's cache: ``evstream.snn.compiled.cache_dir()``).

    python benchmarks/bench_step_compiled.py [--modes ecmt,mst,spikformer] [--backends batched,inductor,ort]
        [--rounds 5] [--json benchmarks/bench_step_compiled.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evstream.live.config import LiveConfig  # noqa: E402
from evstream.live.model import chunk_for, load_model  # noqa: E402
from evstream.snn.compiled import CompiledRunner, cache_dir  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from bench_step import timed  # noqa: E402  (the same median timer as the eager benchmark)

CHECKPOINTS = {"ecmt": "mst-nmnist.pt", "mst": "mst-nmnist.pt", "spikformer": "spikformer-nmnist.pt"}


def machine() -> dict:
    cpu = next((ln.split(":", 1)[1].strip() for ln in subprocess.run(["lscpu"], capture_output=True, text=True)
                .stdout.splitlines() if ln.startswith("Model name")), "?")
    return {"cpu": cpu, "cores": os.cpu_count(), "load_average": list(os.getloadavg()),
            "torch": torch.__version__}


def real_input(rep):
    from evstream.paths import data_root
    from evstream.readers import read_events

    path = sorted((data_root() / "nmnist_small" / "train").glob("*.bs2"))[0]
    return torch.from_numpy(rep(read_events(path).events)[None])


def bench_mode(mode, backends, rounds, n):
    lm = load_model(REPO / "models" / CHECKPOINTS[mode], mode=mode)
    T = LiveConfig().steps_for(lm)
    x = real_input(lm.rep)
    ref = lm.runner
    runners, compile_s = {}, {}
    for b in backends:
        t0 = time.perf_counter()
        try:
            runners[b] = CompiledRunner(ref, x, backend=b, chunk=chunk_for(T, b))
            compile_s[b] = time.perf_counter() - t0
        except Exception as exc:  # report, keep going with the others
            compile_s[b] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        print(f"  {mode} {b}: {compile_s[b]}", flush=True)

    def decide_eager():
        ref.reset()
        for _ in range(T):
            ref.step(x)

    def decider(r):
        def go():
            r.reset()
            r.steps(x, T)
        return go

    contenders = {"eager": decide_eager} | {b: decider(r) for b, r in runners.items()}
    per = {k: [] for k in contenders}
    for _ in range(rounds):
        for k, fn in contenders.items():
            fn()  # warm
            per[k].append(timed(fn, n) / T * 1e3)
    res = {"T": T, "chunk": {b: r.chunk for b, r in runners.items()}, "compile_s": compile_s,
           "step_ms": {k: statistics.median(v) for k, v in per.items()},
           "step_ms_rounds": {k: [round(t, 4) for t in v] for k, v in per.items()}}
    res["speedup_over_eager"] = {k: res["step_ms"]["eager"] / v for k, v in res["step_ms"].items()}
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", default="ecmt,mst,spikformer")
    ap.add_argument("--backends", default="batched,inductor,ort")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=10, help="decisions per round and contender")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    res = {"machine": machine(), "cache_dir": str(cache_dir()), "modes": {}}
    for mode in args.modes.split(","):
        res["modes"][mode] = bench_mode(mode, args.backends.split(","), args.rounds, args.n)
        print(mode, json.dumps(res["modes"][mode]["step_ms"]), flush=True)
    res["machine"]["load_average_end"] = list(os.getloadavg())
    print(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
