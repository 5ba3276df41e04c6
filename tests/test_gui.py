"""The live GUI offscreen (pytest-qt): opens on the default demo and plays; pause, step, seek, mask ratio,
event view, model swap (and a checkpoint that does not fit: dialog, app stays up), recording, a stream
served by ``evstream serve`` shown live, clean shutdown."""

from __future__ import annotations

import csv
import os
import threading
import time

import numpy as np
import pytest
import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PyQt6")
pytest.importorskip("pyqtgraph")

from evstream.live import LiveConfig  # noqa: E402
from evstream.paths import DEMO_MODEL, DEMO_RECORDING  # noqa: E402
from evstream.readers import read_events  # noqa: E402
from test_pipeline import other_checkpoint, small_checkpoint  # noqa: E402
from test_serve import free_port, start_serve  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def win(qapp, tmp_path_factory):
    """The window as `evstream gui` opens it with no argument (demo + shipped model, looping)."""
    from app.main_window import MainWindow

    w = MainWindow(str(DEMO_RECORDING), str(DEMO_MODEL), LiveConfig(loop=True),
                   record_dir=tmp_path_factory.mktemp("rec"))
    w.show()
    yield w
    w.close()


def test_opens_on_default_and_plays(win, qtbot):
    qtbot.waitUntil(lambda: win.pipe is not None and win.pipe.steps > 5, timeout=20000)
    qtbot.waitUntil(lambda: win.prediction.n > 5 and win.frames > 5, timeout=10000)
    p = win.pipe
    assert p.spec == str(DEMO_RECORDING) and p.lm.path == str(DEMO_MODEL) and p.state == "playing"
    assert win.prediction.classes == [str(i) for i in range(10)]
    assert win.spikes.modules and win.spikes.rates[:, :win.spikes.n % 300].any()
    assert win.controls.mode.count() == len(p.modes) and win.controls.mode.currentText() == p.lm.mode
    assert win.events.img.image is not None and win.events.img.image.shape == (34, 34, 3)
    assert "p50" in win.stats.text() and "FPS" in win.stats.text()
    qtbot.waitUntil(lambda: win.events.rate_curve.yData is not None and win.events.rate_curve.yData.max() > 0,
                    timeout=5000)  # the event rate over the last seconds


def test_pause_step_and_seek(win, qtbot):
    c = win.controls
    qtbot.mouseClick(c.play_btn, qtbot_button())
    qtbot.waitUntil(lambda: win.pipe.paused, timeout=5000)
    qtbot.wait(200)
    n = win.pipe.slices_in
    qtbot.wait(300)
    assert win.pipe.slices_in == n and c.play_btn.text() == "Play"
    qtbot.mouseClick(c.step_btn, qtbot_button())
    qtbot.waitUntil(lambda: win.pipe.slices_in == n + 1, timeout=5000)
    c.seek.setValue(6000)
    c.seek.sliderReleased.emit()
    qtbot.waitUntil(lambda: 6_000_000 <= win.pipe.position_us < 6_100_000, timeout=5000)
    qtbot.mouseClick(c.play_btn, qtbot_button())
    qtbot.waitUntil(lambda: not win.pipe.paused and win.pipe.position_us > 6_100_000, timeout=10000)


def test_mask_ratio_and_event_view(win, qtbot):
    c = win.controls
    c.mask.setValue(50)
    qtbot.waitUntil(lambda: win.pipe.lm.runner.mask_ratios.get("q") == 0.5, timeout=5000)
    assert win.pipe.config.mask_ratio == 0.5 and "0.50" in c.mask_label.text()
    c.mask.setValue(0)
    before = win.pipe.view.kind
    c.set_view("sae")
    assert before == "frames" and win.pipe.view.kind == "sae"
    qtbot.waitUntil(lambda: win.pipe.view.planes().max() > 0, timeout=5000)
    planes = win.pipe.view.planes()
    assert planes.shape == (2, 34, 34) and 0 <= planes.min() and planes.max() <= 1
    c.set_view("time_surface")
    assert win.pipe.view.kind == "time_surface"
    c.set_view("frames")


def test_model_swap_and_a_checkpoint_that_does_not_fit(win, qtbot, tmp_path):
    assert win.controls.model.findData(str(DEMO_MODEL)) >= 0  # the picker lists the shipped checkpoints
    other = other_checkpoint(tmp_path / "other.pt")
    win.load_model(other)  # what the picker and "Checkpoint…" call
    qtbot.waitUntil(lambda: win.pipe.lm.path == str(other), timeout=10000)
    qtbot.waitUntil(lambda: win.controls.model.currentData() == str(other), timeout=5000)
    steps = win.pipe.steps
    qtbot.waitUntil(lambda: win.pipe.steps > steps + 3, timeout=10000)  # still running, no restart
    bad = small_checkpoint(tmp_path / "small16.pt")
    win.controls.model.addItem("small16.pt", str(bad))
    j = win.controls.model.count() - 1
    win.controls.model.setCurrentIndex(j)
    win.controls.model.activated.emit(j)  # chosen in the picker
    qtbot.waitUntil(lambda: any("16x16" in e for e in win.errors), timeout=10000)
    assert win.dialog is not None and win.dialog.isVisible() and "16x16" in win.statusBar().currentMessage()
    assert win.pipe.lm.path == str(other) and win.pipe.state == "playing"
    qtbot.waitUntil(lambda: win.controls.model.currentData() == str(other), timeout=5000)  # names what runs
    win.dialog.close()
    i = win.controls.model.findData(str(DEMO_MODEL))
    win.controls.model.setCurrentIndex(i)
    win.controls.model.activated.emit(i)  # back to the shipped model through the picker
    qtbot.waitUntil(lambda: win.pipe.lm.path == str(DEMO_MODEL), timeout=10000)


def test_menus_shortcuts_speed_box_and_seek_slider(win, qtbot):
    """Issue 17 (6, 8): File/Playback/View/Help, Space, arrows, +/-; a click on the seek track seeks."""
    from PyQt6 import QtCore

    assert [a.text().replace("&", "") for a in win.menuBar().actions()] == ["File", "Playback", "View", "Help"]
    from PyQt6 import QtWidgets

    win.raise_()
    win.activateWindow()
    qtbot.waitUntil(lambda: QtWidgets.QApplication.activeWindow() is win, timeout=5000)  # window shortcuts
    win.setFocus()
    c, p = win.controls, win.pipe
    qtbot.waitUntil(lambda: not p.paused, timeout=5000)
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: p.paused, timeout=5000)
    p.seek(2_000_000)  # room for +1 s before the end of the 7.5 s demo
    qtbot.waitUntil(lambda: c.seek.value() == 2000, timeout=5000)
    c.seek.setFocus()  # the slider's own keys: Right = +1 s
    start = c.seek.value()
    qtbot.keyClick(c.seek, QtCore.Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: abs(p.position_us / 1000 - (start + 1000)) < 60, timeout=5000)
    win.setFocus()
    at = p.position_us
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Left)  # the window's shortcut: back 1 s
    qtbot.waitUntil(lambda: abs(p.position_us - (at - 1_000_000)) < 60_000, timeout=5000)
    r = c.seek.rect()
    qtbot.mouseClick(c.seek, QtCore.Qt.MouseButton.LeftButton, pos=QtCore.QPoint(int(r.width() * 0.75), r.height() // 2))
    dur = p.duration_us
    qtbot.waitUntil(lambda: abs(p.position_us - 0.75 * dur) < 0.1 * dur, timeout=5000)  # jumps to the click
    speed = c.speed.currentText()
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Minus)
    assert c.speed.currentText() != speed
    qtbot.waitUntil(lambda: p.config.speed == c.speeds[c.speed.currentIndex()][1], timeout=5000)
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Plus)
    assert c.speed.currentText() == speed
    c.set_speed(0.25)
    assert c.speed.currentText() == "0.25x"
    c.set_speed(0.3)
    assert c.speed.currentText() == "0.3x"
    c.set_speed(1.0)
    assert all(" " not in c.view.itemText(i) or "_" not in c.view.itemText(i) for i in range(c.view.count()))
    assert "sae" not in [c.view.itemText(i) for i in range(c.view.count())]
    from app.menus import about_text, shortcuts_text

    assert "torch" in about_text() and "PyQt6" in about_text() and "Space" in shortcuts_text(win.actions_by_name)
    qtbot.keyClick(win, QtCore.Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: not p.paused, timeout=5000)


def test_record_session(win, qtbot):
    win.controls.record_btn.setChecked(True)
    rec = win.pipe.recorder
    assert rec is not None
    qtbot.waitUntil(lambda: rec.rows > 20, timeout=15000)
    win.controls.record_btn.setChecked(False)
    assert win.pipe.recorder is None
    events = read_events(rec.events_path).events
    assert len(events) > 100 and np.all(np.diff(events["t"]) >= 0)
    rows = list(csv.DictReader(open(rec.csv_path)))
    assert len(rows) == rec.rows and "p:9" in rows[0] and float(rows[-1]["energy_uJ"]) > 0


def test_bad_recording_keeps_the_app_up(win, qtbot, tmp_path):
    bad = tmp_path / "cut.aedat4"
    data = DEMO_RECORDING.read_bytes()
    bad.write_bytes(data[:len(data) // 3])
    win.open_source(str(bad))
    # a recording cut short plays its good events, then says where it is damaged in one line (issue 18)
    qtbot.waitUntil(lambda: any("cut.aedat4" in e for e in win.errors), timeout=10000)
    err = next(e for e in win.errors if "cut.aedat4" in e)
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert win.isVisible() and win.pipe is not None  # the app stays up; the demo can be opened again
    win.open_source(str(DEMO_RECORDING))
    qtbot.waitUntil(lambda: win.pipe is not None and win.pipe.steps > 0, timeout=15000)


def test_served_stream_is_shown_live(qapp, qtbot):
    from app.main_window import MainWindow

    port = free_port()
    proc = start_serve(DEMO_RECORDING, port, "--speed", "1", "--loop")
    w = MainWindow(f"tcp://127.0.0.1:{port}", str(DEMO_MODEL), None, record_dir="/tmp")
    w.show()
    try:
        t_end = time.monotonic() + 20
        while w.pipe is None and time.monotonic() < t_end:  # the server needs a moment to listen
            qtbot.wait(300)
            if w.pipe is None and w.errors and not w.worker.opening:
                w.errors.clear()
                w.open_source(f"tcp://127.0.0.1:{port}")
        assert w.pipe is not None, w.errors
        assert w.pipe.is_live and w.pipe.sensor_size == (34, 34)
        qtbot.waitUntil(lambda: w.pipe.steps > 10 and w.prediction.n > 5, timeout=20000)
        assert not w.controls.seek.isEnabled()  # no seeking a live stream
        assert w.events.img.image.any()
        threads = list(w.pipe._threads)
        if w.dialog is not None:  # from the attempts before the server listened
            w.dialog.close()
        proc.kill()  # the stream drops (issue 17, 2): no dialog, the state says so, it keeps trying
        proc.wait(10)
        qtbot.waitUntil(lambda: w.pipe.state == "reconnecting", timeout=15000)
        qtbot.waitUntil(lambda: "reconnecting" in w.statusBar().currentMessage(), timeout=5000)
        assert not w.errors and (w.dialog is None or not w.dialog.isVisible())
        qtbot.wait(1500)
        assert w.pipe.state == "reconnecting" and "state reconnecting" in w.stats.text()
        steps = w.pipe.steps
        proc = start_serve(DEMO_RECORDING, port, "--speed", "1", "--loop")  # the server comes back
        qtbot.waitUntil(lambda: w.pipe.state == "playing" and w.pipe.steps > steps + 5, timeout=30000)
        assert "reconnected" in w.statusBar().currentMessage() or w.pipe.link == "connected"
        assert not w.errors and w.pipe is not None and w.pipe.source.reconnects >= 1
    finally:
        w.close()
        proc.kill()
        proc.wait(10)
    assert threads and not any(t.is_alive() for t in threads)


def test_close_stops_every_thread(qapp, qtbot):
    from app.main_window import MainWindow

    w = MainWindow(str(DEMO_RECORDING), str(DEMO_MODEL), LiveConfig(loop=True), record_dir="/tmp")
    w.show()
    qtbot.waitUntil(lambda: w.pipe is not None and w.pipe.steps > 0, timeout=20000)
    threads = list(w.pipe._threads)
    assert threads and all(t.is_alive() for t in threads)
    w.close()
    assert not any(t.is_alive() for t in threads)
    assert not [t for t in threading.enumerate() if t.name.startswith("evstream-") and t in threads]


def qtbot_button():
    from PyQt6 import QtCore

    return QtCore.Qt.MouseButton.LeftButton


def test_gui_without_a_display_says_so_in_one_line():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    r = subprocess.run([sys.executable, "-m", "evstream", "gui"], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and "no display" in r.stderr and "evstream run" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr[-500:]


def drag(view, a, b):
    """A left-button drag on a pyqtgraph view from scene point ``a`` to ``b`` (real Qt mouse events)."""
    from PyQt6 import QtCore, QtGui, QtWidgets

    vp = view.viewport()
    left, none = QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.MouseButton.NoButton
    mods = QtCore.Qt.KeyboardModifier.NoModifier
    pts = [view.mapFromScene(QtCore.QPointF(*a)), view.mapFromScene(QtCore.QPointF(*b))]
    steps = [pts[0] + (pts[1] - pts[0]) * (k / 6) for k in range(7)]

    def send(kind, pt, button, buttons):
        p = QtCore.QPointF(pt)
        QtWidgets.QApplication.sendEvent(vp, QtGui.QMouseEvent(kind, p, vp.mapToGlobal(p), button, buttons, mods))

    send(QtCore.QEvent.Type.MouseButtonPress, steps[0], left, left)
    for pt in steps[1:]:
        send(QtCore.QEvent.Type.MouseMove, pt, none, left)
    send(QtCore.QEvent.Type.MouseButtonRelease, steps[-1], left, none)


def test_a_bigger_camera_says_why_no_model_runs_until_a_box_is_dragged(qapp, qtbot, tmp_path):
    """Issue 17 (3): a 640x480 recording with the 34x34 model: a notice in the model panels, the picker names
    no model; dragging a box around the digits on the event view starts the model on that region."""
    from app.main_window import MainWindow
    from evstream.events import EventChunk
    from evstream.writers import write_events

    ev = read_events(DEMO_RECORDING).events.copy()
    ev["x"] += 400
    ev["y"] += 300
    big = tmp_path / "big.npz"
    write_events(big, EventChunk(ev, sensor_size=(640, 480)))
    w = MainWindow(str(big), str(DEMO_MODEL), LiveConfig(loop=True), record_dir=str(tmp_path))
    w.resize(1400, 860)
    w.show()
    try:
        qtbot.waitUntil(lambda: w.pipe is not None and w.frames > 3, timeout=20000)
        assert w.pipe.lm is None and w.pipe.sensor_size == (640, 480)
        qtbot.waitUntil(lambda: w.prediction.notice is not None and w.prediction.notice.isVisible(), timeout=5000)
        text = w.prediction.notice.text()
        assert "No model is running" in text and "34x34" in text and "640x480" in text and "Drag a box" in text
        assert all(p.notice.isVisible() for p in w.model_panels)
        assert w.controls.model.currentIndex() == -1 and w.controls.model.currentText() == ""
        vb = w.events.vb
        a = vb.mapViewToScene(QtCore_point(398, 298))
        b = vb.mapViewToScene(QtCore_point(436, 336))
        drag(w.events, (a.x(), a.y()), (b.x(), b.y()))
        qtbot.waitUntil(lambda: w.pipe.lm is not None and w.pipe.steps > 3, timeout=20000)
        pool = w.pipe.region
        x, y, rw, rh = pool.roi
        assert abs(x - 398) <= 1 and abs(y - 298) <= 1 and abs(rw - 38) <= 2 and abs(rh - 38) <= 2
        assert pool.factor == 1 and w.pipe.config.roi == pool.roi
        qtbot.waitUntil(lambda: not w.prediction.notice.isVisible() and w.prediction.n > 3, timeout=10000)
        assert w.events.region.isVisible() and w.events.region.rect().x() == x
        assert w.controls.model.currentData() == str(DEMO_MODEL) and "region 3" in w.controls.region_label.text()
        w.controls.whole_btn.click()  # the whole sensor, auto-downscaled (14x) into 34x34
        qtbot.waitUntil(lambda: w.pipe.region is not None and w.pipe.region.factor == 14, timeout=5000)
        qtbot.waitUntil(lambda: w.events.region.rect().width() == 640, timeout=5000)  # the outline follows
        assert "14x14" in w.controls.region_label.text()
    finally:
        w.close()


def QtCore_point(x, y):
    from PyQt6 import QtCore

    return QtCore.QPointF(x, y)


def test_labels_show_the_true_class_and_a_running_accuracy(qapp, qtbot):
    """Issue 17 (5): `evstream gui --labels CSV`: the true class beside each decision, the running accuracy;
    a seek leaves no old bars or decision text behind (6)."""
    from app.main_window import MainWindow
    from evstream.cli.run import labels_segments, read_labels
    from evstream.streams import truth_of

    segs = labels_segments(read_labels(DEMO_RECORDING.with_suffix(".labels.csv")))
    w = MainWindow(str(DEMO_RECORDING), str(DEMO_MODEL), LiveConfig(loop=True, speed=2.0), record_dir="/tmp",
                   labels=segs)
    w.show()
    try:
        assert w.controls.speed.currentText() == "2x"  # the box says the speed it plays at
        qtbot.waitUntil(lambda: w.prediction.scored >= 3, timeout=30000)
        pr = w.prediction
        qtbot.waitUntil(lambda: "running accuracy" in pr.decision_text.text, timeout=5000)
        kept = [d for d in pr.decisions]
        for _, _, rec, true in kept:  # each decision's truth is the labelled span covering its window
            seg = truth_of(segs, rec.t_us, rec.window_us)
            assert true == (seg.label if seg else None)
        assert 0 <= pr.right <= pr.scored
        assert any(m.isVisible() and ("✓" in m.label.format or "≠" in m.label.format) for m in pr.marks)
        w.pipe.pause()
        w.pipe.seek(1_000_000)
        qtbot.waitUntil(lambda: pr.n == 0, timeout=5000)  # the reset record arrived
        assert pr.decision_text.text == "" and len(pr.bars.opts["height"]) == 0
        assert not any(m.isVisible() for m in pr.marks)
    finally:
        w.close()


def test_gui_labels_flag_checks_the_csv_before_opening_a_window(tmp_path, capsys):
    from evstream.cli import main

    bad = tmp_path / "l.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["gui", "--labels", str(bad), "--duration", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "l.csv" in err and "t_start_us" in err


def test_gui_summary_json_scores_the_session_like_run(qapp, tmp_path, monkeypatch):
    """Issue 16: `evstream gui --summary-json` writes `run`'s summary at exit (drops, latency, energy, with
    --labels the stream score of the decisions the window showed) plus the frames it painted."""
    import json

    from evstream.cli import main

    monkeypatch.setenv("EVSTREAM_GUI_SETTINGS", str(tmp_path / "gui.ini"))
    out = tmp_path / "s.json"
    labels = DEMO_RECORDING.with_suffix(".labels.csv")
    assert main(["gui", str(DEMO_RECORDING), "--labels", str(labels), "--duration", "6",
                 "--summary-json", str(out)]) == 0
    s = json.loads(out.read_text())
    assert s["source"] == str(DEMO_RECORDING) and s["mode"] and s["slices"] > 0
    assert s["decisions"] > 0 and s["steps"] >= s["decisions"] and s["first_decision_s"] > 0
    assert "step" in s["latency_ms"] and s["latency_ms"]["step"]["p99"] >= s["latency_ms"]["step"]["p50"]
    st = s["stream"]
    # the window scores the decisions it drained: all but those made after its last frame
    assert 0 < st["decisions"] <= s["decisions"] and 0 < st["scored"] <= st["decisions"]
    assert s["accuracy"] == st["accuracy"] and 0.0 <= s["accuracy"] <= 1.0
    assert s["gui"]["frames"] > 0 and s["gui"]["seconds"] >= 5  # Qt's coarse timers may fire 5 % early


def test_plots_say_what_they_show_and_nothing_before_data(qapp, qtbot):
    """Issue 17 (4, 7): before any decision the energy panel draws no bars and no 'nan'; after, the model is
    named in words; the plots have legends, axis titles, a colour bar and fixed x ranges."""
    from app.main_window import MainWindow

    w = MainWindow(str(DEMO_RECORDING), str(DEMO_MODEL), LiveConfig(loop=True), record_dir="/tmp")
    w.show()
    try:
        e = w.energy
        e.draw(w.pipe) if w.pipe else None
        assert not e.snn.isVisible() and not e.ann.isVisible() and "nan" not in e.text.text
        qtbot.waitUntil(lambda: w.pipe is not None and e.last is not None, timeout=30000)
        qtbot.waitUntil(lambda: e.snn.isVisible() and "µJ" in e.text.text, timeout=5000)
        text = e.text.text
        assert "Masked Spiking Transformer (ECMT neurons)" in text and "nan" not in text and "α" not in text
        assert "MST power" not in text and "■ spiking" in e.plot.titleLabel.text and "ANN" in e.plot.titleLabel.text
        pr = w.prediction
        assert [n.text for _, n in pr.conf_plot.legend.items] == [str(i) for i in range(10)]
        qtbot.waitUntil(lambda: pr.n > 5, timeout=10000)
        qtbot.wait(200)
        (x0, x1), _ = pr.conf_plot.viewRange()
        assert x0 < -290 and x1 >= 0  # the whole history, however few steps there are yet
        sp = w.spikes
        assert sp.heat_plot.getAxis("bottom").labelText == "timesteps ago" and sp.colorbar is not None
        assert w.steps.plot.getAxis("left").labelText == "timesteps"
        labels = [t for _, t in sp.heat_plot.getAxis("left")._tickLevels[0]]
        rows = [v for v, _ in sp.heat_plot.getAxis("left")._tickLevels[0]]
        assert len(labels) >= 3 and min(b - a for a, b in zip(rows, rows[1:])) >= 3  # block labels apart
    finally:
        w.close()


def test_the_control_column_never_needs_a_horizontal_scrollbar(win, qtbot):
    c = win.controls
    c.mask.setValue(95)
    qtbot.wait(100)
    scroll = c.parentWidget().parentWidget()
    assert not scroll.horizontalScrollBar().isVisible()
    c.mask.setValue(0)


def test_settings_are_saved_on_close_and_restored_where_no_flag_is_given(qapp, qtbot, tmp_path, monkeypatch):
    """Issue 17 (9): QSettings: geometry, event view, speed and checkpoint of the last session."""
    from app.main_window import MainWindow
    from app.settings import saved, store
    from evstream.cli import build_parser
    from evstream.cli.gui import gui_config

    monkeypatch.setenv("EVSTREAM_GUI_SETTINGS", str(tmp_path / "gui.ini"))
    st = store()
    assert saved(st) == {}
    w = MainWindow(str(DEMO_RECORDING), str(DEMO_MODEL), LiveConfig(loop=True), record_dir="/tmp", settings=st)
    w.show()
    qtbot.waitUntil(lambda: w.pipe is not None and w.pipe.lm is not None, timeout=20000)
    w.controls.set_view("sae")
    w.controls.set_speed(0.5)
    w.controls.filters.times["ba"].setValue(5.0)
    w.controls.filters.checks["ba"].setChecked(True)
    w.resize(701, 603)
    w.close()
    again = saved(store())
    assert again == {"view": "sae", "speed": 0.5, "model": str(DEMO_MODEL), "accumulate_ms": 40.0, "theme": "dark",
                     "filters": (("ba", 5000),)}
    cfg = gui_config(build_parser().parse_args(["gui"]), again)
    assert (cfg.view, cfg.speed, cfg.filters) == ("sae", 0.5, (("ba", 5000),))
    cfg = gui_config(build_parser().parse_args(["gui", "--view", "frames", "--speed", "2", "--filters", "none"]),
                     again)
    assert (cfg.view, cfg.speed, cfg.filters) == ("frames", 2.0, ())  # flags win
    w2 = MainWindow(str(DEMO_RECORDING), None, LiveConfig(), record_dir="/tmp", settings=store())
    try:
        assert (w2.width(), w2.height()) == (701, 603)
    finally:
        w2.close()
    bad = store()
    bad.setValue("view", "nonsense")
    bad.setValue("speed", "-3")
    bad.setValue("model", str(tmp_path / "gone.pt"))
    bad.setValue("filters", "ba=soon")
    assert saved(bad) == {"accumulate_ms": 40.0, "theme": "dark"}  # what no longer fits is ignored


def test_event_rate_over_the_last_seconds():
    from evstream.live.view import EventView

    v = EventView((4, 4))
    ev = np.zeros(10, dtype=read_events(DEMO_RECORDING).events.dtype)
    for k in range(30):  # 10 events per 10 ms slice for 0.3 s: 1,000 events/s
        v.update(ev, (k + 1) * 10_000)
    x, y = v.rate(span_us=1_000_000, bin_us=100_000)
    assert list(x) == [-0.2, -0.1, 0.0] and np.allclose(y, 1000.0)
    v.reset()
    assert len(v.rate()[0]) == 0


def test_event_view_zooms_with_the_wheel_and_comes_back(win, qtbot):
    """Issue 17 (features): zoom and pan of the event view; the box drag still sets the region."""
    from PyQt6 import QtCore, QtGui, QtWidgets

    view, vb = win.events, win.events.vb
    qtbot.waitUntil(lambda: vb.image_size == (34, 34), timeout=5000)
    (x0, x1), _ = vb.viewRange()
    centre = view.mapFromScene(vb.mapViewToScene(QtCore.QPointF(17, 17)))
    vp = view.viewport()
    pos = QtCore.QPointF(centre)
    ev = QtGui.QWheelEvent(pos, vp.mapToGlobal(pos), QtCore.QPoint(0, 0), QtCore.QPoint(0, 240),
                           QtCore.Qt.MouseButton.NoButton, QtCore.Qt.KeyboardModifier.NoModifier,
                           QtCore.Qt.ScrollPhase.NoScrollPhase, False)
    QtWidgets.QApplication.sendEvent(vp, ev)
    qtbot.waitUntil(lambda: vb.viewRange()[0][1] - vb.viewRange()[0][0] < 0.9 * (x1 - x0), timeout=3000)
    win.actions_by_name["zoom_reset"].trigger()
    (a, b), _ = vb.viewRange()
    assert abs((b - a) - (x1 - x0)) < 1e-6


def test_filters_box_switches_the_filters_live_and_counts_what_they_remove(win, qtbot):
    """Issue 17 (features): the background-activity and refractory filters, live, with their counts."""
    from evstream.cli import build_parser
    from evstream.cli.gui import gui_config

    f = win.controls.filters
    qtbot.waitUntil(lambda: win.pipe is not None and win.pipe.position_us > 0, timeout=20000)
    assert f.counts.text() == "no filter" and win.pipe.config.filters == ()
    f.times["refractory"].setValue(5.0)
    f.checks["refractory"].setChecked(True)
    qtbot.waitUntil(lambda: win.pipe.config.filters == (("refractory", 5000),), timeout=5000)
    qtbot.waitUntil(lambda: win.pipe.reader.filters.counts()["refractory"] > 0, timeout=10000)
    qtbot.waitUntil(lambda: "refractory −" in f.counts.text(), timeout=5000)
    f.checks["ba"].setChecked(True)
    qtbot.waitUntil(lambda: win.pipe.reader.filters.counts().get("ba", 0) > 0, timeout=10000)
    c = win.pipe.reader.filters.counts()
    assert c["in"] > c["refractory"] + c["ba"]
    qtbot.waitUntil(lambda: "background activity −" in f.counts.text(), timeout=5000)
    for box in f.checks.values():
        box.setChecked(False)
    qtbot.waitUntil(lambda: win.pipe.config.filters == () and f.counts.text() == "no filter", timeout=5000)
    cfg = gui_config(build_parser().parse_args(["gui", "--filters", "ba=5000"]))
    assert cfg.filters == (("ba", 5000),)
    f.show_spec(cfg.filters)  # what a window opened with the flag shows, nothing sent
    assert f.checks["ba"].isChecked() and f.times["ba"].value() == 5.0 and win.pipe.config.filters == ()
    f.show_spec(())


def test_export_from_the_window_runs_off_the_ui_thread_and_says_where(win, qtbot, tmp_path):
    """Issue 17 (features): File > Export: a span to video, the session to HDF5; a bad path is one line."""
    import cv2

    assert win.actions_by_name["export"].shortcut().toString() == "Ctrl+E"
    out = tmp_path / "span.mp4"
    t0 = time.perf_counter()
    assert win.exporter.start(out, 1.0, 3.0)
    assert time.perf_counter() - t0 < 0.5  # the UI thread only starts it
    qtbot.waitUntil(lambda: win.exporter.job.done.is_set() and not win.exporter.timer.isActive(), timeout=20000)
    assert win.exporter.job.error is None and win.exporter.job.result["frames"] == 60
    assert f"exported 60 frames to {out}" in win.statusBar().currentMessage()
    assert int(cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FRAME_COUNT)) == 60
    assert win.exporter.start(tmp_path / "all.h5")
    qtbot.waitUntil(lambda: win.exporter.job.done.is_set() and not win.exporter.timer.isActive(), timeout=20000)
    n = len(read_events(DEMO_RECORDING).events)
    assert win.exporter.job.result["events"] == n and len(read_events(tmp_path / "all.h5").events) == n
    win.errors.clear()
    assert not win.exporter.start(tmp_path / "missing" / "x.mp4")
    assert len(win.errors) == 1 and "missing" in win.errors[0] and "\n" not in win.errors[0]
    assert not win.exporter.start(tmp_path / "x.gif") and "known outputs" in win.errors[-1]
    win.dialog.close()


def test_display_settings_change_the_view_and_are_saved_flags_win(qapp, qtbot, tmp_path, monkeypatch):
    """Issue 17 (features): accumulation time and colour theme; saved, restored, flags win."""
    from app.display import Display
    from app.main_window import MainWindow
    from app.settings import saved, store
    from evstream.cli import build_parser
    from evstream.cli.gui import gui_display
    from evstream.errors import EvstreamError

    monkeypatch.setenv("EVSTREAM_GUI_SETTINGS", str(tmp_path / "gui.ini"))
    w = MainWindow(str(DEMO_RECORDING), None, LiveConfig(loop=True), record_dir="/tmp", settings=store())
    w.show()
    try:
        qtbot.waitUntil(lambda: w.pipe is not None and w.events.img.image is not None
                        and w.events.img.image.max() > 0, timeout=20000)
        assert w.pipe.view.span_us == 40_000 and w.display == Display()
        dark = w.events.img.image.copy()
        assert np.median(dark) == 0  # black background
        w.controls.display.accumulate.setValue(200)
        w.controls.display.theme.setCurrentIndex(w.controls.display.theme.findData("light"))
        assert w.pipe.view.span_us == 200_000 and w.display == Display(200.0, "light")
        qtbot.waitUntil(lambda: np.median(w.events.img.image) == 255, timeout=5000)  # white background
        assert w.events.backgroundBrush().color().name() == "#ffffff"
    finally:
        w.close()
    again = saved(store())
    assert again["accumulate_ms"] == 200.0 and again["theme"] == "light"
    assert gui_display(build_parser().parse_args(["gui"]), again) == Display(200.0, "light")
    assert gui_display(build_parser().parse_args(["gui", "--theme", "dark", "--accumulate-ms", "20"]),
                       again) == Display(20.0, "dark")  # flags win
    with pytest.raises(EvstreamError, match="accumulation"):
        gui_display(build_parser().parse_args(["gui", "--accumulate-ms", "0"]))
    bad = store()
    bad.setValue("theme", "neon")
    bad.setValue("accumulate_ms", "lots")
    assert "theme" not in saved(bad) and "accumulate_ms" not in saved(bad)


def test_export_dialog_from_the_file_menu(win, qtbot, tmp_path):
    from PyQt6 import QtCore, QtWidgets

    out = tmp_path / "dialog.avi"
    seen = []

    def fill():
        dlg = next(w for w in QtWidgets.QApplication.topLevelWidgets()
                   if isinstance(w, QtWidgets.QDialog) and w.windowTitle() == "Export" and w.isVisible())
        dlg.findChild(QtWidgets.QLineEdit).setText(str(out))
        start, end = dlg.findChildren(QtWidgets.QDoubleSpinBox)
        seen.append((start.value(), end.value()))  # the whole recording by default
        start.setValue(1.0)
        end.setValue(1.5)
        dlg.accept()

    QtCore.QTimer.singleShot(300, fill)
    win.actions_by_name["export"].trigger()
    qtbot.waitUntil(lambda: win.exporter.job is not None and win.exporter.job.spec.output == str(out)
                    and win.exporter.job.done.is_set(), timeout=20000)
    assert seen == [(0.0, round(win.pipe.duration_us / 1e6, 3))]
    assert win.exporter.job.error is None and win.exporter.job.result["frames"] == 15 and out.exists()


def test_ui_thread_cpu_per_frame_stays_within_the_budget(win, qtbot):
    """Issue 17 (9): the UI thread's CPU per painted frame, the window playing the demo with the model
    running. The budget is 0.25 of a core at 30 FPS = 8.3 ms per frame (measured: 7.7 ms with one other core
    busy, docs/gui.md); the bound here is 2.5x that, so only a regression of the kind that cost 20-30 ms per
    frame (a panel re-rendering every label each frame) fails it, not a slower CPU."""
    import time

    qtbot.waitUntil(lambda: win.pipe is not None and win.pipe.decisions > 2, timeout=30000)
    if win.pipe.paused:
        win.controls.play_btn.click()
    f0, c0 = win.frames, time.thread_time()
    qtbot.wait(3000)
    frames, cpu = win.frames - f0, time.thread_time() - c0
    assert frames >= 20, frames  # it painted (the frame timer runs at up to 33 per second)
    assert cpu / frames < 0.021, f"{cpu / frames * 1e3:.1f} ms of UI-thread CPU per frame"
