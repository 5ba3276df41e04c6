"""evstream's live GUI (PyQt6 + pyqtgraph): a thin view over :mod:`evstream.live`.

    evstream gui                                   # the demo recording with the shipped model
    evstream gui tcp://127.0.0.1:7777 --model models/mst-nmnist.pt

``main_window.MainWindow`` lays out the panels (``panels.py``) and the controls (``controls.py``);
``worker.PipelineWorker`` opens sources and checkpoints off the UI thread. See docs/gui.md.
"""

from __future__ import annotations


def create_app():
    """The QApplication (created once)."""
    from PyQt6 import QtWidgets

    return QtWidgets.QApplication.instance() or QtWidgets.QApplication(["evstream"])


def main(source=None, model=None, config=None, record_dir="recordings",
         duration_s: float | None = None, labels=None, settings=None, display=None, summary_json=None) -> int:
    """Open the window on ``source`` (default: the demo recording with the shipped model) and run the Qt
    event loop until it is closed (or ``duration_s`` has passed). ``config``: a :class:`evstream.live.LiveConfig`;
    ``labels``: the source's labelled spans (:class:`evstream.streams.Segment` s) to score decisions against;
    ``settings``: a QSettings (``app.settings.store()``) the window restores its geometry from and saves to;
    ``display``: an :class:`app.display.Display` (accumulation time, theme); ``summary_json``: at exit, write
    `evstream run`'s summary (:func:`evstream.live.summary.live_summary`; with ``labels``, the stream score) plus
    the window's painted frames and frame rate to this file."""
    import time

    from PyQt6 import QtCore

    from app.main_window import MainWindow
    from evstream.paths import DEMO_MODEL, DEMO_RECORDING

    qapp = create_app()
    if source is None:
        source = str(DEMO_RECORDING)
        model = model or str(DEMO_MODEL)
    win = MainWindow(source, model, config, record_dir=record_dir, labels=labels, settings=settings,
                     display=display)
    if summary_json:
        win.decision_log = []
    t_start = time.monotonic()
    win.show()
    if duration_s:
        QtCore.QTimer.singleShot(int(duration_s * 1000), win.close)
    # run until this window is closed, even where other windows keep the application alive (tests)
    loop = QtCore.QEventLoop()
    win.closed.connect(loop.quit)
    try:
        loop.exec()
    finally:
        win.worker.stop()  # the window normally did this on close; never leave worker threads behind
    if summary_json and win.pipe is not None:
        write_summary(summary_json, win, source, model, labels, time.monotonic() - t_start)
    return 0


def write_summary(path, win, source, model, labels, wall_s: float) -> None:
    """``evstream gui --summary-json``: the pipeline's summary as `evstream run` writes it, plus the GUI's frames."""
    from evstream.live.summary import live_summary
    from evstream.streams import save_report

    pipe = win.pipe
    summary = live_summary(pipe, pipe.stats(), source, model, win.decision_log, labels)
    summary["gui"] = {"frames": win.frames, "seconds": round(wall_s, 3), "fps": round(win.frames / max(wall_s, 1e-9), 2)}
    save_report(path, summary)
