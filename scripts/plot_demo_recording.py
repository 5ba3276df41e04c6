"""Event-count images of each digit of the demo recording (docs/images/emulator_demo.png).

    python scripts/plot_demo_recording.py
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from evstream.readers import read_events  # noqa: E402
from evstream.representations import functional as F  # noqa: E402


def main():
    rec = REPO / "recordings" / "demo_digits.aedat4"
    c = read_events(rec)
    ev = c.events
    t0 = ev["t"][0]
    rows = list(csv.DictReader(open(rec.with_suffix(".labels.csv"))))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(rows)
    fig, axes = plt.subplots(2, (n + 1) // 2, figsize=(1.3 * ((n + 1) // 2), 3))
    for ax, r in zip(axes.ravel(), rows):
        a, b = np.searchsorted(ev["t"] - t0, [int(r["t_start_us"]), int(r["t_end_us"])])
        img = F.count_image(ev[a:b], c.sensor_size)
        ax.imshow(img.sum(axis=0), cmap="gray")
        ax.set_title(r["digit"], fontsize=9)
        ax.axis("off")
    fig.suptitle("demo recording: event counts per digit (3 saccades each, 34x34)", fontsize=10)
    fig.tight_layout()
    out = REPO / "docs" / "images" / "emulator_demo.png"
    fig.savefig(out, dpi=100)
    print(out)


if __name__ == "__main__":
    main()
