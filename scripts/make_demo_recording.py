"""Make the project's demo recording: digits drawn with OpenCV's Hershey fonts (random font, stroke
width, slant, scale and jitter), each moved through N-MNIST's three saccades on a 34x34 emulated sensor,
one after another, written as AEDAT4 with a CSV of the true digit sequence and times.

    python scripts/make_demo_recording.py --out recordings/demo_digits.aedat4 --digits 24 --seed 7
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evstream.emulator import SaccadeSource, font_digit  # noqa: E402
from evstream.writers import open_writer  # noqa: E402

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "recordings" / "demo_digits.aedat4"))
    ap.add_argument("--digits", type=int, default=24)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    digits = [int(d) for d in rng.permutation(np.tile(np.arange(10), args.digits // 10 + 1))[: args.digits]]
    images = [font_digit(d, rng) for d in digits]
    src = SaccadeSource(images, (34, 34), seed=args.seed)
    out = Path(args.out)
    with open_writer(out, src.sensor_size) as w:
        for chunk in src:
            w.write(chunk)
    labels = out.with_suffix(".labels.csv")
    with open(labels, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["index", "digit", "t_start_us", "t_end_us"])
        for i, (d, (a, b)) in enumerate(zip(digits, src.spans)):
            wr.writerow([i, d, a, b])
    print(f"{out}: {w.count} events, {len(digits)} digits {digits}, {out.stat().st_size / 1e6:.2f} MB; labels in {labels}")


if __name__ == "__main__":
    main()
