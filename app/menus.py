"""The menu bar (File, Playback, View, Help) and the keyboard shortcuts: Space play/pause, Left/Right seek
1 s (Shift: 10 s), +/- speed, S step, R record; every action calls the same window method as its control."""

from __future__ import annotations

from PyQt6 import QtCore, QtGui, QtWidgets

VIEW_NAMES = {"frames": "Event frames (counts)", "sae": "Time of last event (SAE)", "time_surface": "Time surface"}


def view_name(kind: str) -> str:
    """The user-facing name of an event-view kind."""
    return VIEW_NAMES.get(kind, kind)


def _action(menu, text, slot, shortcut=None, tip=None):
    act = QtGui.QAction(text, menu)
    if shortcut:
        act.setShortcut(QtGui.QKeySequence(shortcut))
        act.setShortcutContext(QtCore.Qt.ShortcutContext.WindowShortcut)
    if tip:
        act.setStatusTip(tip)
        act.setToolTip(tip)
    act.triggered.connect(lambda *_: slot())
    menu.addAction(act)
    return act


def build_menus(w) -> dict:
    """Menus of main window ``w``; returns the actions by name (tests and the help text use them)."""
    bar = w.menuBar()
    acts = {}
    f = bar.addMenu("&File")
    acts["open"] = _action(f, "&Open recording…", w.open_recording_dialog, "Ctrl+O", "play an event recording")
    acts["stream"] = _action(f, "Connect to a DV &stream…", w.connect_stream_dialog, "Ctrl+N",
                             "a live DV network stream (tcp://HOST:PORT)")
    acts["camera"] = _action(f, "DVS &camera", lambda: w.open_source("camera"), None, "the first DVS camera")
    acts["webcam"] = _action(f, "&Webcam (emulated events)", lambda: w.open_source("webcam:0"))
    f.addSeparator()
    acts["model"] = _action(f, "Load &checkpoint…", w.open_model_dialog, "Ctrl+M", "swap the model live")
    acts["record"] = _action(f, "&Record session", lambda: w.controls.record_btn.toggle(), "R",
                             "events to AEDAT4 and every step to CSV")
    acts["export"] = _action(f, "&Export…", w.exporter.dialog, "Ctrl+E",
                             "a span of the recording (or all of it) to video (MP4/AVI) or events (AEDAT4/HDF5/npz)")
    f.addSeparator()
    acts["quit"] = _action(f, "&Quit", w.close, "Ctrl+Q")
    p = bar.addMenu("&Playback")
    acts["play"] = _action(p, "Play / &pause", w.controls.toggle_play, "Space")
    acts["step"] = _action(p, "&Step one slice", lambda: w.pipe and w.pipe.step(), "S")
    acts["back"] = _action(p, "Back 1 s", lambda: w.seek_by(-1.0), "Left")
    acts["forward"] = _action(p, "Forward 1 s", lambda: w.seek_by(1.0), "Right")
    acts["back10"] = _action(p, "Back 10 s", lambda: w.seek_by(-10.0), "Shift+Left")
    acts["forward10"] = _action(p, "Forward 10 s", lambda: w.seek_by(10.0), "Shift+Right")
    acts["faster"] = _action(p, "Faster", lambda: w.controls.step_speed(+1), "+")
    acts["faster2"] = QtGui.QAction(p)  # "=" is "+" without Shift on most keyboards
    acts["faster2"].setShortcut(QtGui.QKeySequence("="))
    acts["faster2"].triggered.connect(lambda *_: w.controls.step_speed(+1))
    w.addAction(acts["faster2"])
    acts["slower"] = _action(p, "Slower", lambda: w.controls.step_speed(-1), "-")
    v = bar.addMenu("&View")
    group = QtGui.QActionGroup(v)
    for kind, name in VIEW_NAMES.items():
        a = _action(v, name, lambda k=kind: w.controls.set_view(k))
        a.setCheckable(True)
        group.addAction(a)
        acts[f"view:{kind}"] = a
    v.addSeparator()
    acts["zoom_reset"] = _action(v, "Whole sensor in the event view", w.events.vb.reset_zoom, "Ctrl+0",
                                 "undo the wheel zoom and panning of the event view")
    combo = w.controls.view
    combo.currentIndexChanged.connect(lambda i: acts[f"view:{combo.itemData(i)}"].setChecked(True))
    acts[f"view:{combo.currentData()}"].setChecked(True)
    h = bar.addMenu("&Help")
    acts["keys"] = _action(h, "&Keyboard shortcuts", lambda: w.show_help(shortcuts_text(acts)), "F1")
    acts["about"] = _action(h, "&About evstream", lambda: w.show_help(about_text(), "About evstream"))
    return acts


def shortcuts_text(acts) -> str:
    rows = "".join(f"<tr><td><b>{a.shortcut().toString()}</b></td><td>{a.text().replace('&', '')}</td></tr>"
                   for a in acts.values() if a.text() and not a.shortcut().isEmpty())
    return ("<table cellspacing=6>" + rows + "</table><p>Drag a box on the event view to choose the region the "
            "model classifies.</p>")


def about_text() -> str:
    import platform

    import numpy
    import pyqtgraph
    import torch

    import evstream

    return (f"<b>evstream {evstream.__version__}</b>: event cameras in, spiking-transformer predictions out."
            f"<p>Python {platform.python_version()} · torch {torch.__version__} · numpy {numpy.__version__} · "
            f"PyQt6 {QtCore.PYQT_VERSION_STR} (Qt {QtCore.qVersion()}) · pyqtgraph {pyqtgraph.__version__}</p>"
            f"<p>Documentation: docs/gui.md in the repository.</p>")
