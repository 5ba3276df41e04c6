"""Checkpoints on printed digits they never saw: the ANN on ``--n`` emulated printed digits (seed
``--seed``, which no `evstream train --fonts` draws by default: training uses seed 0), and, with
``--stream``, the default live pipeline on a stream of ``--digits`` printed digits made as the demo
recording is (`scripts/make_demo_recording.py --seed 8`, not the demo's 7) and on the demo itself.

    python scripts/heldout_fonts.py models/mst-nmnist.pt [more.pt ...] [--n 500] [--stream] [--mode ecmt]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evstream.datasets import emulated_fonts  # noqa: E402
from evstream.inputs import batch_inputs  # noqa: E402
from evstream.representations import from_config  # noqa: E402
from evstream.snn import load_checkpoint  # noqa: E402


def ann_accuracy(path, ds) -> float:
    model, meta = load_checkpoint(path)
    model.eval()
    x = batch_inputs(ds, np.arange(len(ds)), from_config(meta["representation"]))
    with torch.no_grad():
        pred = torch.cat([model(xb).argmax(1) for xb in x.split(100)])
    return float((pred.numpy() == ds.labels).mean())


def live_score(path, recording: Path, mode: str | None) -> str:
    cmd = [sys.executable, "-m", "evstream", "run", str(recording), "--model", str(path), "--speed", "0",
           "--labels", str(recording.with_suffix(".labels.csv"))] + (["--mode", mode] if mode else [])
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    return (out.stdout.strip().splitlines() or [out.stderr.strip()])[-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=99)
    ap.add_argument("--stream", action="store_true", help="also the live pipeline on printed-digit streams")
    ap.add_argument("--digits", type=int, default=100)
    ap.add_argument("--mode", default=None, help="live mode for --stream (default: the checkpoint's)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ds = emulated_fonts(args.n, seed=args.seed, progress=False, workers=0)
    with tempfile.TemporaryDirectory() as tmp:
        held = Path(tmp) / "fonts.aedat4"
        if args.stream:
            subprocess.run([sys.executable, str(REPO / "scripts" / "make_demo_recording.py"), "--out", str(held),
                            "--digits", str(args.digits), "--seed", "8"], check=True, capture_output=True)
        for path in args.models:
            print(f"{path}: ANN on {args.n} held-out printed digits {ann_accuracy(path, ds):.3f}", flush=True)
            if args.stream:
                print(f"  printed-digit stream ({args.digits}, seed 8): {live_score(path, held, args.mode)}")
                demo = REPO / "recordings" / "demo_digits.aedat4"
                print(f"  demo recording (24): {live_score(path, demo, args.mode)}", flush=True)


if __name__ == "__main__":
    main()
