"""One streaming step (batch 1, with the runner's spike and op counting, as the pipeline runs it) of each
model family's shipped checkpoint, measured in the same run, interleaved in rounds so that load on the
machine affects every model alike; plus parameters and the per-step SOPs / MACs / energy on one input.

    python benchmarks/bench_model_compare.py [--models models/mst-nmnist.pt models/spikformer-nmnist.pt]
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

from evstream.datasets import open_dataset, stratified_split  # noqa: E402
from evstream.representations import from_config  # noqa: E402
from evstream.snn import load_checkpoint  # noqa: E402
from evstream.inputs import batch_inputs  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=[str(REPO / "models" / "mst-nmnist.pt"),
                                                     str(REPO / "models" / "spikformer-nmnist.pt")])
    ap.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "nmnist_small" / "train"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=50, help="steps per model per round")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    runners, res = {}, {"threads": args.threads, "models": {}}
    for path in args.models:
        model, meta = load_checkpoint(path)
        rep = from_config(meta["representation"])
        ds = open_dataset("nmnist", args.root, str(Path(args.root) / "labels.txt"), "train")
        s = meta.get("split", {})
        _, va = stratified_split(ds.labels, s.get("val_fraction", 0.1), s.get("seed", 0))
        x = batch_inputs(ds, va[:1], rep)  # one real validation sample
        snn = model.spiking()
        snn.reset()
        out = snn.step(x)
        name = Path(path).stem
        runners[name] = (snn, x)
        res["models"][name] = {"arch": model.arch, "mode": model.modes[0],
                               "params": sum(p.numel() for p in model.parameters()),
                               "first_step": {"spikes": out.total_spikes, "sops": out.sops, "macs": out.macs,
                                              "energy_uJ": out.energy_uJ}, "step_ms_rounds": []}
    for _ in range(args.rounds):
        for name, (snn, x) in runners.items():
            snn.reset()
            for _ in range(5):
                snn.step(x)
            ts = []
            for _ in range(args.steps):
                t0 = time.perf_counter()
                snn.step(x)
                ts.append(time.perf_counter() - t0)
            res["models"][name]["step_ms_rounds"].append(statistics.median(ts) * 1e3)
    for r in res["models"].values():
        r["step_ms"] = statistics.median(r["step_ms_rounds"])
    names = list(res["models"])
    if len(names) == 2:
        a, b = names
        res[f"{b}_step_over_{a}"] = res["models"][b]["step_ms"] / res["models"][a]["step_ms"]
    print(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
