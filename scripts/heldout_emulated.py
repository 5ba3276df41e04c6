"""ANN accuracy of checkpoints on emulated N-MNIST recordings of MNIST test images no checkpoint trained on:
images 6000-7999 of the seeded permutation `evstream train --emulated N` draws its first N from (N ≤ 6000).
A larger (2,000), if emulated, check beside the 100 real validation recordings. With ``--timesteps`` also
the SNN view (mode mst, the same input every step) unmasked and at RSM ``--mask`` (seeds 0..``--seeds``-1).

    python scripts/heldout_emulated.py models/mst-nmnist.pt [more.pt ...] [--n 2000] [--timesteps 32,64
        --mask 0.5 --seeds 2] [--ecmt 4,5]
    python scripts/heldout_emulated.py --n 300 --write-nmnist /tmp/emu300   # as N-MNIST files + labels.txt,
    evstream eval-stream --root /tmp/emu300 --split all                    # ... to play them as streams
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evstream.emulator import emulate_saccades, read_mnist_idx  # noqa: E402
from evstream.representations import from_config  # noqa: E402
from evstream.snn import load_checkpoint  # noqa: E402


def main():
    data = Path(os.environ.get("EVSTREAM_DATA", REPO.parent / "shared" / "data"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--mnist", default=str(data / "mnist_images"))
    ap.add_argument("--start", type=int, default=6000)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--timesteps", default="", help="SNN accuracy at these T too, e.g. 32,64")
    ap.add_argument("--mask", type=float, default=0.5)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--ecmt", default="", help="ECMT accuracy at these T too (mode ecmt, unmasked), e.g. 4,5")
    ap.add_argument("--write-nmnist", default=None, metavar="DIR",
                    help="also write the recordings to DIR as N-MNIST .bin files with a labels.txt")
    args = ap.parse_args()
    ts = [int(t) for t in args.timesteps.split(",") if t]
    ts_ec = [int(t) for t in args.ecmt.split(",") if t]
    images, labels = read_mnist_idx(args.mnist)
    idx = np.random.default_rng(0).permutation(len(images))[args.start:args.start + args.n]  # as emulated_mnist, seed 0
    evs = [emulate_saccades(images[i], seed=int(i)) for i in idx]
    y = torch.tensor(labels[idx].astype(np.int64))
    if args.write_nmnist:
        write_nmnist(Path(args.write_nmnist), evs, labels[idx])
    for path in args.models:
        model, meta = load_checkpoint(path)
        rep = from_config(meta["representation"])
        x = torch.from_numpy(np.stack([rep(e) for e in evs]))
        with torch.inference_mode():
            pred = torch.cat([model(x[i:i + 200]).argmax(1) for i in range(0, len(x), 200)])
        print(f"{path}: ANN accuracy {float((pred == y).float().mean()):.4f} on {len(y)} held-out emulated recordings")
        for ratio, seeds in ((0.0, 1), (args.mask, args.seeds)) if ts else ():
            accs = []
            for seed in range(seeds):
                snn = model.spiking(mode="mst", mask_ratio=ratio, seed=seed)
                means = torch.cat([snn.run(x[i:i + 250], max(ts)) for i in range(0, len(x), 250)], dim=1)
                accs.append([float((means[t - 1].argmax(1) == y).float().mean()) for t in ts])
            acc = np.array(accs)
            print("  SNN mask", ratio, ", ".join(f"T={t}: {m:.4f} ± {s:.4f}" for t, m, s in zip(ts, acc.mean(0), acc.std(0))))
        if ts_ec and "ecmt" in model.modes:
            ec = model.spiking(mode="ecmt")
            means = torch.cat([ec.run(x[i:i + 250], max(ts_ec)) for i in range(0, len(x), 250)], dim=1)
            print("  ECMT", ", ".join(f"T={t}: {float((means[t - 1].argmax(1) == y).float().mean()):.4f}" for t in ts_ec))


def write_nmnist(out: Path, evs, labels) -> None:
    """The recordings as ``1.bin``, ``2.bin``, ... with ``labels.txt`` (the N-MNIST small layout)."""
    from evstream.synth import encode_nmnist

    out.mkdir(parents=True, exist_ok=True)
    rows = ["#sample #class"]
    for k, (ev, label) in enumerate(zip(evs, labels), 1):
        (out / f"{k}.bin").write_bytes(encode_nmnist(ev))
        rows.append(f"{k}\t{int(label)}")
    (out / "labels.txt").write_text("\n".join(rows) + "\n")
    print(f"{len(evs)} recordings written to {out}")


if __name__ == "__main__":
    main()
