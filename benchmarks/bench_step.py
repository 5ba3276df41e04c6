"""One streaming SNN step vs one ANN forward pass of the same model at batch 1, and the whole live pipeline
(`evstream run`'s: read, 10 ms slices, represent the checkpoint's window, one step per slice, monitors)
replaying a recording as fast as it can, per conversion mode.

The ANN peer is timed twice: as trained (eval mode) and with the same inference rewrites the SNN view gets
(``model.fuse()``: BatchNorms folded, Q/K/V one layer); the step ratio is reported against both.

    python benchmarks/bench_step.py [--model models/mst-nmnist.pt] [--recording recordings/demo_digits.aedat4]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evstream.live import Pipeline  # noqa: E402
from evstream.representations import from_config  # noqa: E402
from evstream.snn import load_checkpoint  # noqa: E402


def timed(fn, n):
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "models" / "mst-nmnist.pt"))
    ap.add_argument("--recording", default=str(REPO / "recordings" / "demo_digits.aedat4"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--modes", default="mst,ecmt")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, meta = load_checkpoint(args.model)
    rep = from_config(meta["representation"])
    x = torch.rand(1, rep.channels, *rep.out_hw)
    res = {"threads": args.threads, "model": Path(args.model).name}
    with torch.inference_mode():
        for key, ann in (("ann_ms", model.eval()), ("ann_fused_ms", copy.deepcopy(model).fuse())):
            for _ in range(20):
                ann(x)
            res[key] = timed(lambda: ann(x), args.n) * 1e3
    for count in (True, False):
        snn = model.spiking(mode="mst")
        if not count:
            snn.counter.remove()
            snn.counter = None
        snn.reset()
        for _ in range(20):
            snn.step(x)
        res["step_ms_with_op_counting" if count else "step_ms"] = timed(lambda: snn.step(x), args.n) * 1e3
    for key in ("step_ms", "step_ms_with_op_counting"):
        res[key.replace("_ms", "") + "_over_ann"] = res[key] / res["ann_ms"]
        res[key.replace("_ms", "") + "_over_fused_ann"] = res[key] / res["ann_fused_ms"]

    # the live pipeline, unpaced (never drops), one step per 10 ms slice, default window (checkpoint window_us)
    res["pipeline"] = {}
    for mode in args.modes.split(","):
        pipe = Pipeline(args.recording, args.model, mode=mode, speed=None, threads=args.threads)
        t0 = time.perf_counter()
        stats = pipe.run()
        wall = time.perf_counter() - t0
        lat = stats["latency"]
        res["pipeline"][mode] = {
            "steps": pipe.steps, "slices": pipe.slices_done, "wall_s": wall, "recording_s": pipe.duration_us / 1e6,
            "x_realtime": pipe.duration_us / 1e6 / wall,
            **{f"{k}_mean_ms": lat[k]["mean_ms"] for k in ("represent", "step", "slice") if k in lat}}
    print(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
