"""Live accuracy at each digit's end on the demo recording: the live pipeline's input (10 ms slices, the
window of slices spanning the checkpoint's ``window_us``, one step per slice) stepped through the SNN views,
and the ANN on the same windows; scored at the last slice of every labelled digit.

    python benchmarks/bench_live_digits.py [--model models/mst-nmnist.pt] [--json F]

Times in the labels CSV are from the recording's first event (as ``evstream run --labels``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import deque
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evstream.representations import from_config  # noqa: E402
from evstream.slicing import TimeSlicer  # noqa: E402
from evstream.snn import load_checkpoint  # noqa: E402
from evstream.sources import open_source  # noqa: E402


def digit_end_inputs(recording, rep, window_us, slice_us=10_000):
    """Every slice's model input (the window of the most recent slices) and its end time (µs from the first
    event), as the pipeline builds them."""
    n = max(1, round(window_us / slice_us))
    window, t0, out = deque(maxlen=n), None, []
    with open_source(recording) as src:
        slicer = TimeSlicer(slice_us)
        for chunk in src:
            t0 = int(chunk.events["t"][0]) if t0 is None and len(chunk.events) else t0
            for sl in slicer.push(chunk.events):
                window.append(sl)
                ev = np.concatenate([w.events for w in window])
                out.append((int(sl.t_end - t0), torch.from_numpy(rep(ev, window[0].t_start, window[-1].t_end)[None])))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "models" / "mst-nmnist.pt"))
    ap.add_argument("--recording", default=str(REPO / "recordings" / "demo_digits.aedat4"))
    ap.add_argument("--labels", default=str(REPO / "recordings" / "demo_digits.labels.csv"))
    ap.add_argument("--decay", type=float, default=0.5)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, meta = load_checkpoint(args.model)
    rep = from_config(meta["representation"])
    inputs = digit_end_inputs(args.recording, rep, meta.get("window_us") or 306_000)
    labels = [(int(r["t_end_us"]), int(r["digit"])) for r in csv.DictReader(open(args.labels))]
    ends = {}  # index of the last slice ending at or before each digit's end
    for t_end, digit in labels:
        idx = max((i for i, (t, _) in enumerate(inputs) if t <= t_end), default=None)
        if idx is not None:
            ends[idx] = digit
    res = {"model": Path(args.model).name, "digits": len(ends), "decay": args.decay, "right": {}}
    with torch.inference_mode():
        res["right"]["ann"] = sum(int(model(inputs[i][1]).argmax()) == d for i, d in ends.items())
        for mode in model.modes:
            snn = model.spiking(mode=mode, decay=args.decay)
            right = 0
            for i, (_, x) in enumerate(inputs):
                out = snn.step(x)
                right += i in ends and int(out.mean.argmax()) == ends[i]
            res["right"][mode] = right
    print(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
