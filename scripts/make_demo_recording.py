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

from evstream.emulator import SaccadeSource  # noqa: E402
from evstream.writers import open_writer  # noqa: E402

FONTS = [0, 2, 3, 4, 6, 7]  # Hershey simplex, duplex, complex, triplex, script simplex/complex (cv2 ids)


def draw_digit(digit: int, rng: np.random.Generator) -> np.ndarray:
    """A 28x28 white-on-black digit in the style of MNIST (20x20 box centred by mass)."""
    import cv2

    canvas = np.zeros((64, 64), np.uint8)
    font = int(rng.choice(FONTS))
    scale = rng.uniform(1.4, 1.9)
    thick = int(rng.integers(3, 7))
    (tw, th), _ = cv2.getTextSize(str(digit), font, scale, thick)
    org = (int((64 - tw) / 2), int((64 + th) / 2))
    cv2.putText(canvas, str(digit), org, font, scale, 255, thick, cv2.LINE_AA)
    shear = rng.uniform(-0.3, 0.3)
    m = np.float32([[1, shear, -shear * 32], [0, 1, 0]])
    canvas = cv2.warpAffine(canvas, m, (64, 64))
    ys, xs = np.nonzero(canvas > 30)
    crop = canvas[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    h, w = crop.shape
    s = 20.0 / max(h, w)
    crop = cv2.resize(crop, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    out = np.zeros((28, 28), np.float32)
    h, w = crop.shape
    y0, x0 = (28 - h) // 2, (28 - w) // 2
    out[y0:y0 + h, x0:x0 + w] = crop
    cy, cx = np.array(np.nonzero(out > 0)).mean(axis=1)  # centre of mass, as MNIST
    jx, jy = rng.uniform(-1, 1, 2)
    m = np.float32([[1, 0, 14 - cx + jx], [0, 1, 14 - cy + jy]])
    return np.clip(cv2.warpAffine(out, m, (28, 28)), 0, 255).astype(np.uint8)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "recordings" / "demo_digits.aedat4"))
    ap.add_argument("--digits", type=int, default=24)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    digits = [int(d) for d in rng.permutation(np.tile(np.arange(10), args.digits // 10 + 1))[: args.digits]]
    images = [draw_digit(d, rng) for d in digits]
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
