"""Screenshots of the live GUI for the docs: the whole window and each panel, after playing the demo.

    QT_QPA_PLATFORM=offscreen python scripts/gui_screenshots.py [--seconds 6] [--out docs/images]

Writes docs/images/gui_window.png and gui_<panel>.png (``widget.grab().save()``), with the demo recording
and the shipped model, early exit at 0.9 so decisions of different lengths show.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=6.0, help="how long to play before the screenshots")
    ap.add_argument("--out", default=str(REPO / "docs" / "images"))
    ap.add_argument("--early-exit", type=float, default=0.9)
    args = ap.parse_args()

    from app import create_app
    from app.main_window import MainWindow
    from evstream.live import LiveConfig
    from evstream.paths import DEMO_MODEL, DEMO_RECORDING

    qapp = create_app()
    win = MainWindow(str(DEMO_RECORDING), str(DEMO_MODEL),
                     LiveConfig(loop=True, early_exit=args.early_exit, speed=1.0), record_dir="/tmp")
    win.resize(1500, 900)
    win.show()
    t_end = time.monotonic() + args.seconds
    while time.monotonic() < t_end:
        qapp.processEvents()
        time.sleep(0.005)
    win.timer.stop()
    win.pipe.pause()
    for _ in range(5):
        qapp.processEvents()
        time.sleep(0.02)
    win.stats.draw(win.pipe, fps=float(os.environ.get("GUI_FPS", "0")) or _fps(win), force=True)
    qapp.processEvents()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shots = {"window": win, "events": win.events, "prediction": win.prediction, "spikes": win.spikes,
             "energy": win.energy, "steps": win.steps, "stats": win.stats, "controls": win.controls}
    for name, widget in shots.items():
        path = out / f"gui_{name}.png"
        widget.grab().save(str(path))
        print(path)
    win.close()


def _fps(win):
    from app.panels import METER

    return METER.fps(2.0)


if __name__ == "__main__":
    main()
