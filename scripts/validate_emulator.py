"""Emulated saccades of real MNIST images vs real N-MNIST recordings: statistics table, threshold sweep,
and a plot (docs/images/emulator_validation.png). Results also go to docs/emulator_validation.json.

    python scripts/validate_emulator.py [--data ../shared/data] [--samples 200]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evstream.emulator import NMNIST_EMULATOR, EmulatorConfig, emulate_saccades, read_mnist_idx  # noqa: E402
from evstream.readers import read_events  # noqa: E402

BINS = np.arange(0, 350_001, 10_000)


def stats(samples) -> dict:
    n = np.array([len(s) for s in samples])
    prof = sum(np.histogram(s["t"], bins=BINS)[0] for s in samples).astype(float)
    prof /= prof.sum()
    thirds = [float(prof[a:b].sum()) for a, b in ((0, 10), (10, 21), (21, 35))]
    return {
        "events_mean": float(n.mean()), "events_std": float(n.std()),
        "on_fraction": float(np.mean([s["p"].mean() for s in samples])),
        "duration_ms": float(np.mean([(s["t"][-1] - s["t"][0]) / 1e3 for s in samples])),
        "x_spread": float(np.mean([s["x"].std() for s in samples])),
        "y_spread": float(np.mean([s["y"].std() for s in samples])),
        "active_pixels": float(np.mean([len(np.unique(s["y"].astype(int) * 34 + s["x"])) for s in samples])),
        "saccade_thirds": thirds, "profile": prof.tolist(),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("EVSTREAM_DATA", str(REPO.parent / "shared" / "data")))
    ap.add_argument("--samples", type=int, default=200)
    args = ap.parse_args()
    d = Path(args.data)
    real = [read_events(d / "nmnist_small" / "train" / f"{i}.bs2").events for i in range(1, args.samples + 1)]
    images, _ = read_mnist_idx(d / "mnist_images")
    real_s = stats(real)

    sweep = {}
    for thr in (0.3, 0.35, 0.4, 0.45, 0.5, 0.55):
        cfg = asdict(NMNIST_EMULATOR) | {"pos_threshold": thr, "neg_threshold": thr}
        em = [emulate_saccades(images[i], config=EmulatorConfig(**(cfg | {"seed": i}))) for i in range(args.samples)]
        sweep[thr] = stats(em)
        print(f"threshold {thr:.2f}: {sweep[thr]['events_mean']:.0f} events/sample (real {real_s['events_mean']:.0f})")
    best = min(sweep, key=lambda k: abs(sweep[k]["events_mean"] - real_s["events_mean"]))
    chosen = NMNIST_EMULATOR.pos_threshold
    print(f"closest threshold: {best}; shipped default: {chosen}")
    emu_s = sweep[chosen]

    out = {"real": real_s, "emulated_default": emu_s, "sweep_events_mean": {str(k): v["events_mean"] for k, v in sweep.items()},
           "best_threshold": best, "default_threshold": chosen, "samples": args.samples}
    (REPO / "docs" / "emulator_validation.json").write_text(json.dumps(out, indent=1))

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(14, 3.8))
    c = (BINS[:-1] + 5_000) / 1e3
    ax[0].plot(c, real_s["profile"], "k-o", ms=3, label="real N-MNIST (ATIS)")
    ax[0].plot(c, emu_s["profile"], "r-s", ms=3, label=f"emulated, threshold {chosen}")
    ax[0].set(xlabel="time in sample (ms)", ylabel="fraction of events", title="three-saccade temporal profile")
    ax[0].legend()
    ax[1].hist([len(s) for s in real], bins=30, alpha=0.6, color="k", label="real")
    em = [emulate_saccades(images[i], seed=i) for i in range(args.samples)]
    ax[1].hist([len(s) for s in em], bins=30, alpha=0.6, color="r", label="emulated")
    ax[1].set(xlabel="events per sample", ylabel="samples", title="events per sample")
    ax[1].legend()
    ks = sorted(sweep)
    ax[2].plot(ks, [sweep[k]["events_mean"] for k in ks], "r-o")
    ax[2].axhline(real_s["events_mean"], color="k", ls="--", label="real mean")
    ax[2].set(xlabel="contrast threshold (log units)", ylabel="mean events per sample", title="threshold sweep")
    ax[2].legend()
    fig.tight_layout()
    (REPO / "docs" / "images").mkdir(parents=True, exist_ok=True)
    fig.savefig(REPO / "docs" / "images" / "emulator_validation.png", dpi=110)
    print(json.dumps({k: (v if k != "profile" else "...") for k, v in real_s.items()}))
    print(json.dumps({k: (v if k != "profile" else "...") for k, v in emu_s.items()}))


if __name__ == "__main__":
    main()
