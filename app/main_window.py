"""The main window: controls on the left, the event view and the model's panels on the right, status bar.

A frame timer (``FRAME_MS``) drains the pipeline's records into the panels and redraws them; the pipeline
itself runs in its own threads (``evstream.live``), so nothing here waits for the model.
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path

from PyQt6 import QtCore, QtWidgets

from app import display as display_settings
from app.controls import ControlPanel
from app.export_dialog import Exporter
from app.menus import build_menus
from app.panels import (METER, EnergyPanel, EventPanel, PredictionPanel, SpikePanel, StatsPanel, StepsPanel)
from app.worker import PipelineWorker
from evstream.errors import EvstreamError
from evstream.live import LiveConfig

FRAME_MS = 30  # frame timer: up to 33 frames per second (the target is 30)


class ControlScroll(QtWidgets.QScrollArea):
    """The control column's scroll area: it asks for the column's width plus a vertical scrollbar (the column
    is taller than a short window), so no horizontal scrollbar cuts buttons off; a small screen may shrink it."""

    def sizeHint(self):
        hint = super().sizeHint()
        w = self.widget().minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width() + 2 * self.frameWidth()
        return QtCore.QSize(max(hint.width(), w), hint.height())


class MainWindow(QtWidgets.QMainWindow):
    closed = QtCore.pyqtSignal()  # after closeEvent: app.main leaves its event loop

    def __init__(self, source, model=None, config: LiveConfig | None = None, record_dir="recordings", labels=None,
                 settings=None, display=None):
        super().__init__()
        self.setWindowTitle("evstream — spiking transformer, live")
        self.resize(1400, 860)
        self.record_dir = Path(record_dir)
        self.worker = PipelineWorker(config)
        self.worker.opened.connect(self._opened)
        self.worker.failed.connect(self.show_error)
        self.dialog: QtWidgets.QMessageBox | None = None
        self.errors: list[str] = []

        self.events = EventPanel()
        self.prediction = PredictionPanel()
        self.labels_source = str(source) if labels else None  # the labels belong to this source only
        self.prediction.set_labels(labels)
        self.spikes = SpikePanel()
        self.energy = EnergyPanel()
        self.steps = StepsPanel()
        self.stats = StatsPanel()
        self.panels = [self.events, self.prediction, self.spikes, self.energy, self.steps, self.stats]
        self.model_panels = [self.prediction, self.spikes, self.energy, self.steps]
        self.model_problem = ""  # why no model runs (the last checkpoint error), for the panels' notice
        self.events.region_selected.connect(self.set_region)

        central = QtWidgets.QWidget()
        grid = QtWidgets.QGridLayout(central)
        grid.setContentsMargins(4, 4, 4, 4)
        grid.setSpacing(4)
        grid.addWidget(self.events, 0, 0)
        grid.addWidget(self.prediction, 0, 1)
        grid.addWidget(self.spikes, 0, 2)
        grid.addWidget(self.energy, 1, 0)
        grid.addWidget(self.steps, 1, 1)
        grid.addWidget(self.stats, 1, 2)
        grid.setRowStretch(0, 3)
        grid.setRowStretch(1, 2)
        for c in range(3):
            grid.setColumnStretch(c, 1)
        self.setCentralWidget(central)

        self.display = display or display_settings.Display()  # accumulation time and theme (app/display.py)
        self.exporter = Exporter(self)
        self.controls = ControlPanel(self)
        dock = QtWidgets.QDockWidget("controls", self)
        dock.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.NoDockWidgetFeatures)
        scroll = ControlScroll()
        scroll.setWidget(self.controls)
        scroll.setWidgetResizable(True)
        dock.setWidget(scroll)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        self._init_controls(self.worker.config)
        self.set_display(self.display)

        self.actions_by_name = build_menus(self)
        self.frames = 0
        self.decision_log: list[dict] | None = None  # main(summary_json=...): every decision, scored at exit
        self._last_tick = None
        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self.tick)
        self.timer.start(FRAME_MS)
        self.settings = settings  # QSettings: geometry restored now, choices saved on close (app/settings.py)
        if settings is not None:
            from app.settings import restore_geometry

            restore_geometry(settings, self)
        self.statusBar().showMessage(f"opening {source}…")
        self.worker.open(source, model)

    def _init_controls(self, cfg: LiveConfig):
        c = self.controls
        c.slice_ms.setValue(cfg.slice_ms)
        c.steps.setValue(cfg.steps_per_slice)
        c.max_steps.setValue(cfg.max_steps or 0)
        if cfg.early_exit is not None:
            c.early.setChecked(True)
            c.early_thr.setValue(cfg.early_exit)
        if cfg.mask_ratio:
            c.mask.setValue(int(round(cfg.mask_ratio * 100)))
        c.loop.setChecked(bool(cfg.loop))
        c.speed.blockSignals(True)  # the box says the speed the pipeline starts with (--speed 0.25: 0.25x)
        c.set_speed(cfg.speed)
        c.speed.blockSignals(False)
        c.set_view(cfg.view)
        c.filters.show_spec(cfg.filters)
        c.downscale.blockSignals(True)  # the flag's factor; no region change at start-up
        c.downscale.setValue(cfg.downscale if isinstance(cfg.downscale, int) else 0)
        c.downscale.blockSignals(False)

    def set_display(self, display) -> None:
        """The event view's accumulation time and the colour theme (a :class:`app.display.Display`)."""
        self.display = display
        self.controls.display.show_display(display)
        display_settings.apply(self, display)

    @property
    def pipe(self):
        return self.worker.pipe

    # ------------------------------------------------------------------ sources and models
    def open_source(self, spec, model=None):
        self.statusBar().showMessage(f"opening {spec}…")
        self.worker.open(spec, model)

    def open_recording_dialog(self):
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open recording", str(Path.cwd()),
                                                        "Event recordings (*.aedat4 *.aedat *.raw *.dat *.bin "
                                                        "*.bs2 *.npz *.h5 *.hdf5 *.mat);;Videos (*.mp4 *.avi "
                                                        "*.mov *.mkv);;All files (*)")
        if path:
            self.open_source(path)

    def connect_stream_dialog(self):
        text, ok = QtWidgets.QInputDialog.getText(self, "DV network stream", "tcp://HOST:PORT",
                                                  text="tcp://127.0.0.1:7777")
        if ok and text:
            self.open_source(text if text.startswith("tcp://") else f"tcp://{text}")

    def open_model_dialog(self):
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Open checkpoint", str(Path.cwd()),
                                                        "Checkpoints (*.pt);;All files (*)")
        if path:
            self.load_model(path)

    def load_model(self, path):
        self.statusBar().showMessage(f"loading {path}…")
        if self.pipe is None:
            self.worker.model_path = str(path)
            return
        self.worker.load_model(path)

    def set_region(self, roi=None, downscale=None):
        """The region of the camera the model classifies (x, y, w, h; None: the whole sensor) and the
        downscale factor (None: the control's); starts the model when it could not run on the whole sensor."""
        p = self.pipe
        if p is None:
            return
        if downscale is None:
            downscale = self.controls.downscale_value()
        try:
            p.set_region(roi, downscale)
        except EvstreamError as exc:
            self.show_error(str(exc))
            return
        if p.lm is None and self.worker.model_path:
            self.statusBar().showMessage(f"loading {self.worker.model_path}…")
            p.load_model(self.worker.model_path)

    def seek_by(self, seconds: float) -> None:
        p = self.pipe
        if p is None or p.is_live:
            return
        t = min(max(0, p.position_us + int(seconds * 1e6)), max(0, p.duration_us - 1))
        p.seek(t)

    def show_help(self, html: str, title: str = "Keyboard shortcuts") -> None:
        box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Information, title, html,
                                    QtWidgets.QMessageBox.StandardButton.Ok, self)
        box.setTextFormat(QtCore.Qt.TextFormat.RichText)
        box.setModal(False)
        box.show()
        self.help_box = box

    def no_model_text(self) -> str:
        why = self.model_problem or "no checkpoint is loaded"
        return (f"No model is running.\n{why}\n\nDrag a box on the event view around what to classify, set "
                f"'downscale' to auto, or choose another checkpoint.")

    def set_recording(self, on: bool):
        p = self.pipe
        if p is None:
            return
        if on:
            try:
                self.record_dir.mkdir(parents=True, exist_ok=True)
                stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
                p.start_recording(self.record_dir / f"session-{stamp}")
            except Exception as exc:  # noqa: BLE001
                self.show_error(str(exc))
                self.controls.record_btn.setChecked(False)
        else:
            p.stop_recording()

    # ------------------------------------------------------------------ records and errors
    def _opened(self, pipe):
        if self.labels_source is not None and pipe.spec != self.labels_source:
            self.prediction.set_labels(None)
        self.controls.apply_to(pipe)
        pipe.view.span_us = int(self.display.accumulate_ms * 1000)
        self.controls.show_source(pipe)
        for p in (self.prediction, self.spikes, self.energy, self.steps):
            p.reset()
        if pipe.lm is None:
            self.prediction.set_classes([])
        self.controls.sync_model(pipe)
        self.statusBar().showMessage(f"playing {pipe.spec}" + ("" if pipe.lm else " (no model)"), 8000)
        if self.controls.record_btn.isChecked():
            self.set_recording(True)

    def show_error(self, text: str):
        """A status-bar message and a (non-blocking) dialog; the app keeps running."""
        if self.pipe is None or self.pipe.lm is None:
            self.model_problem = text
        self.errors.append(text)
        del self.errors[:-50]
        self.statusBar().showMessage(text, 20000)
        if self.dialog is None:
            self.dialog = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Warning, "evstream", text,
                                                QtWidgets.QMessageBox.StandardButton.Ok, self)
            self.dialog.setModal(False)
        else:
            self.dialog.setText(text)
        self.dialog.show()

    def _handle(self, records):
        for r in records:
            kind = r.kind
            if kind == "model":
                self.prediction.set_classes(r.classes)
                self.spikes.set_modules([])
                self.controls.show_model(r)
                self.steps.reset()
                self.energy.reset()
            elif kind == "error":
                self.show_error(r.text)
                self.controls.sync_model(self.pipe)  # the picker names the model that runs, or none
            elif kind == "status":  # "reconnecting" stays up until the next news (reconnected, gave up)
                self.statusBar().showMessage(r.text, 0 if "reconnecting" in r.text else 8000)
            elif kind == "reset":
                self.prediction.reset()
                self.spikes.reset()
            elif kind == "end":
                self.statusBar().showMessage(f"end of {self.pipe.spec}" + (" (looping)" if self.pipe.config.loop else ""))

    # ------------------------------------------------------------------ frames
    def tick(self):
        p = self.pipe
        t0 = time.perf_counter()
        paint = METER.take_paint()  # painting of the previous frame happened after its tick
        if p is None:
            return
        if self._last_tick is not None:
            p.latency.add("draw", self._last_tick + paint)
        records = p.drain(limit=4000)
        self._handle(records)
        if self.decision_log is not None:
            self.decision_log.extend(r.to_dict() for r in records if r.kind == "decision")
        # the panels start over at a reset (seek, loop, slicing) or a new model: what came before it is stale
        cut = max((i for i, r in enumerate(records) if r.kind in ("reset", "model")), default=-1)
        records = records[cut + 1:]
        for panel in self.panels[:-1]:
            if records:
                panel.consume(records)
            if panel.isVisible():
                panel.draw(p)
        self.stats.draw(p, METER.fps())
        notice = None if p.lm is not None else self.no_model_text()
        for panel in self.model_panels:
            panel.set_notice(notice)
        self.controls.show_region(p)
        self.controls.update_position(p)
        self.frames += 1
        self._last_tick = time.perf_counter() - t0

    def closeEvent(self, ev):
        if self.settings is not None:
            from app.settings import save

            save(self.settings, self)
        self.timer.stop()
        self.worker.stop()
        if self.dialog is not None:
            self.dialog.close()
        super().closeEvent(ev)
        self.closed.emit()
