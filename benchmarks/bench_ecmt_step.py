"""Per-step cost of mode "ecmt" vs mode "mst" on the same checkpoint: one streaming step, batch 1 (live)
and a larger batch (evaluation), with and without operation counting, in interleaved rounds.

    python benchmarks/bench_ecmt_step.py [--model models/mst-nmnist.pt] [--batches 1,20] [--rounds 7] [--json F]

Each round times n steps of each runner back to back (after warm-up); the reported time per step is the
median over rounds, and the ratio is taken per round (same load for both) and its median reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evstream.representations import from_config  # noqa: E402
from evstream.snn import load_checkpoint  # noqa: E402
from evstream.snn.ecmt import ECMTRunner  # noqa: E402
from evstream.snn.streaming import SpikingRunner  # noqa: E402


def per_step(runner, x, n):
    t0 = time.perf_counter()
    for _ in range(n):
        runner.step(x)
    return (time.perf_counter() - t0) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "models" / "mst-nmnist.pt"))
    ap.add_argument("--batches", default="1,20")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, meta = load_checkpoint(args.model)
    rep = from_config(meta["representation"])
    gen = torch.Generator().manual_seed(0)
    res = {"threads": args.threads, "model": args.model, "rows": []}
    for b in (int(v) for v in args.batches.split(",")):
        # frame-like input: sparse event counts in [0, 1]
        x = (torch.rand(b, rep.channels, *rep.out_hw, generator=gen) < 0.1).float() * 0.5
        n = max(3, 60 // b)
        for count in (False, True):
            runners = {"mst": SpikingRunner(model, count_ops=count), "ecmt": ECMTRunner(model, count_ops=count)}
            for r in runners.values():
                r.reset()
                per_step(r, x, 3)  # warm-up (numba kernel loaded, buffers allocated)
            times = {k: [] for k in runners}
            ratios = []
            for _ in range(args.rounds):
                t = {k: per_step(r, x, n) for k, r in runners.items()}
                for k in t:
                    times[k].append(t[k])
                ratios.append(t["ecmt"] / t["mst"])
            row = {"batch": b, "op_counting": count, "mst_ms": statistics.median(times["mst"]) * 1e3,
                   "ecmt_ms": statistics.median(times["ecmt"]) * 1e3, "ratio_median": statistics.median(ratios),
                   "ratio_min": min(ratios), "ratio_max": max(ratios), "steps_per_round": n}
            res["rows"].append(row)
            print(f"batch {b:3d} counting {str(count):5}: mst {row['mst_ms']:.2f} ms, ecmt {row['ecmt_ms']:.2f} ms"
                  f" per step; ecmt/mst {row['ratio_median']:.2f} (rounds {row['ratio_min']:.2f}-"
                  f"{row['ratio_max']:.2f})", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
