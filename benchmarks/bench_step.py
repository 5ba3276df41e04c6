"""One streaming SNN step vs one ANN forward pass of the same model at batch 1, and the whole pipeline
(read, represent, step) replaying a recording with 10 ms slices and one step per slice.

    python benchmarks/bench_step.py [--model models/mst-nmnist.pt] [--recording recordings/demo_digits.aedat4]
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
from evstream.slicing import TimeSlicer  # noqa: E402
from evstream.snn import load_checkpoint  # noqa: E402
from evstream.sources import open_source  # noqa: E402


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
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, meta = load_checkpoint(args.model)
    rep = from_config(meta["representation"])
    x = torch.rand(1, rep.channels, *rep.out_hw)
    with torch.no_grad():
        for _ in range(20):
            model(x)
        ann = timed(lambda: model(x), args.n)
    res = {"threads": args.threads}
    for count in (True, False):
        snn = model.spiking(mode="mst") if count else type(model.spiking(mode="mst"))(model, count_ops=False)
        snn.reset()
        for _ in range(20):
            snn.step(x)
        res["step_ms_with_op_counting" if count else "step_ms"] = timed(lambda: snn.step(x), args.n) * 1e3
    res["ann_ms"] = ann * 1e3
    res["step_over_ann"] = res["step_ms"] / res["ann_ms"]
    res["step_with_counting_over_ann"] = res["step_ms_with_op_counting"] / res["ann_ms"]

    # pipeline: read -> 10 ms slices -> last 4 slices as the 4 frames -> one step per slice
    snn = model.spiking(mode="mst", decay=0.9)
    n_frames = meta["representation"].get("n_frames", 4)
    slicer, window = TimeSlicer(10_000), []
    t0 = time.perf_counter()
    steps, duration = 0, 0
    with open_source(args.recording) as src:
        first = None
        for chunk in src:
            first = chunk.t_start if first is None else first
            duration = chunk.t_end - first
            for sl in slicer.push(chunk.events):
                window = (window + [sl])[-n_frames:]
                import numpy as np
                ev = np.concatenate([w.events for w in window])
                xin = torch.from_numpy(rep(ev, window[0].t_start, window[-1].t_end)[None]) if len(window) == n_frames \
                    else torch.zeros(1, rep.channels, *rep.out_hw)
                snn.step(xin)
                steps += 1
    wall = time.perf_counter() - t0
    res.update(pipeline_steps=steps, pipeline_wall_s=wall, recording_s=duration / 1e6,
               pipeline_x_realtime=(duration / 1e6) / wall)
    print(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
