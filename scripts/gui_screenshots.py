"""Screenshots of the live GUI for the docs, from the defaults a new user gets (`evstream gui` with no
argument: the demo recording, the shipped model, looping at real time), the whole window and each panel,
once a few decisions have been made; and a 640x480 camera whose region was dragged on the event view.

    QT_QPA_PLATFORM=offscreen python scripts/gui_screenshots.py [--decisions 8] [--out docs/images]

Writes docs/images/gui_window.png, gui_<panel>.png and gui_region.png (``widget.grab().save()``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def play_until(qapp, done, timeout_s=120.0):
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end and not done():
        qapp.processEvents()
        time.sleep(0.005)


def settle(qapp, win):
    win.timer.stop()  # the panels keep what they last drew; the pipeline plays on
    for _ in range(5):
        qapp.processEvents()
        time.sleep(0.02)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--decisions", type=int, default=8, help="decisions to wait for before the screenshots")
    ap.add_argument("--out", default=str(REPO / "docs" / "images"))
    args = ap.parse_args()

    from app import create_app
    from app.main_window import MainWindow
    from evstream.cli import build_parser
    from evstream.cli.gui import gui_config
    from evstream.paths import DEMO_MODEL, DEMO_RECORDING

    qapp = create_app()
    config = gui_config(build_parser().parse_args(["gui"]))  # exactly what `evstream gui` starts with
    win = MainWindow(str(DEMO_RECORDING), str(DEMO_MODEL), config, record_dir="/tmp")
    win.resize(1500, 900)
    win.show()
    play_until(qapp, lambda: win.pipe is not None and win.pipe.decisions >= args.decisions)
    qapp.processEvents()
    time.sleep(0.3)
    play_until(qapp, lambda: False, 0.5)  # the throttled panels catch up
    settle(qapp, win)
    win.stats.draw(win.pipe, fps=_fps(), force=True)
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
    region_shot(qapp, config, out / "gui_region.png", args.decisions)


def region_shot(qapp, config, path, decisions):
    """The demo digits at (400, 300) in a 640x480 camera, the model run on a box around them."""
    from app.main_window import MainWindow
    from evstream.events import EventChunk
    from evstream.paths import DEMO_MODEL, DEMO_RECORDING
    from evstream.readers import read_events
    from evstream.writers import write_events

    ev = read_events(DEMO_RECORDING).events.copy()
    ev["x"] += 400
    ev["y"] += 300
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "camera640x480.npz"
        write_events(big, EventChunk(ev, sensor_size=(640, 480)))
        win = MainWindow(str(big), str(DEMO_MODEL), config, record_dir=tmp)
        win.resize(1500, 900)
        win.show()
        play_until(qapp, lambda: win.pipe is not None and win.frames > 10)
        win.grab().save(str(path.with_name("gui_no_model.png")))
        print(path.with_name("gui_no_model.png"))
        win.set_region((396, 296, 42, 42))  # what dragging that box on the event view does
        play_until(qapp, lambda: win.pipe.decisions >= decisions)
        play_until(qapp, lambda: False, 0.5)
        settle(qapp, win)
        win.grab().save(str(path))
        print(path)
        win.close()


def _fps():
    from app.panels import METER

    return METER.fps(2.0)


if __name__ == "__main__":
    main()
