"""The control column: sources, transport (play / pause / step / seek / speed / loop), slicing and view,
the model (checkpoint picker, conversion mode, timesteps, early exit, mask ratio) and session recording.

Every control calls one method of the running :class:`evstream.live.Pipeline` (through the window's
worker); none of them waits for the worker thread.
"""

from __future__ import annotations

import time
from pathlib import Path

from PyQt6 import QtCore, QtWidgets

from app.display import DisplayBox
from app.filters_box import FiltersBox
from app.menus import view_name
from evstream.live import VIEWS
from evstream.paths import MODELS

SPEEDS = [("0.25x", 0.25), ("0.5x", 0.5), ("1x (real time)", 1.0), ("2x", 2.0), ("4x", 4.0), ("max", None)]


class AbsoluteClickStyle(QtWidgets.QProxyStyle):
    """A click on a slider's track moves the handle there (not one page towards it)."""

    def styleHint(self, hint, option=None, widget=None, data=None):
        if hint == QtWidgets.QStyle.StyleHint.SH_Slider_AbsoluteSetButtons:
            return QtCore.Qt.MouseButton.LeftButton.value
        return super().styleHint(hint, option, widget, data)


class SeekSlider(QtWidgets.QSlider):
    """The position in a recording (ms): dragging the handle, a click on the track, the arrow keys (1 s), Page
    Up/Down (10 s), Home/End all ask for a seek (``seek_requested``) when the user lets go."""

    seek_requested = QtCore.pyqtSignal(int)
    KEY_ACTIONS = (QtWidgets.QAbstractSlider.SliderAction.SliderSingleStepAdd,
                   QtWidgets.QAbstractSlider.SliderAction.SliderSingleStepSub,
                   QtWidgets.QAbstractSlider.SliderAction.SliderPageStepAdd,
                   QtWidgets.QAbstractSlider.SliderAction.SliderPageStepSub,
                   QtWidgets.QAbstractSlider.SliderAction.SliderToMinimum,
                   QtWidgets.QAbstractSlider.SliderAction.SliderToMaximum)

    def __init__(self, parent=None):
        super().__init__(QtCore.Qt.Orientation.Horizontal, parent)
        self._style = AbsoluteClickStyle(self.style().name())
        self.setStyle(self._style)
        self.setSingleStep(1000)
        self.setPageStep(10_000)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        self.sliderReleased.connect(lambda: self.seek_requested.emit(self.value()))
        self.actionTriggered.connect(self._action)

    def _action(self, action):
        if QtWidgets.QAbstractSlider.SliderAction(action) in self.KEY_ACTIONS and not self.isSliderDown():
            self.seek_requested.emit(self.sliderPosition())  # the new position; value() follows after this


class ControlPanel(QtWidgets.QWidget):
    def __init__(self, window, parent=None):
        super().__init__(parent)
        self.window = window
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        self.filters, self.display = FiltersBox(window), DisplayBox(window)
        for build in (self._source_box, self._playback_box, self._slicing_box, lambda: self.display,
                      lambda: self.filters,
                      self._region_box, self._model_box):
            lay.addWidget(build())
        self.record_btn = QtWidgets.QPushButton("● Record session")
        self.record_btn.setCheckable(True)
        lay.addWidget(self.record_btn)
        lay.addStretch(1)
        self._populate_models()
        self._connect()

    # ------------------------------------------------------------------ the boxes
    def _source_box(self):
        box = QtWidgets.QGroupBox("source")
        g = QtWidgets.QGridLayout(box)
        self.source_label = QtWidgets.QLabel("–")
        self.source_label.setWordWrap(True)
        g.addWidget(self.source_label, 0, 0, 1, 2)
        self.open_btn = QtWidgets.QPushButton("Open recording…")
        self.connect_btn = QtWidgets.QPushButton("DV stream…")
        self.camera_btn = QtWidgets.QPushButton("DVS camera")
        self.webcam_btn = QtWidgets.QPushButton("Webcam")
        g.addWidget(self.open_btn, 1, 0)
        g.addWidget(self.connect_btn, 1, 1)
        g.addWidget(self.camera_btn, 2, 0)
        g.addWidget(self.webcam_btn, 2, 1)
        return box

    def _playback_box(self):
        box = QtWidgets.QGroupBox("playback")
        g = QtWidgets.QGridLayout(box)
        self.play_btn = QtWidgets.QPushButton("Pause")
        self.step_btn = QtWidgets.QPushButton("Step")
        g.addWidget(self.play_btn, 0, 0)
        g.addWidget(self.step_btn, 0, 1)
        self.seek = SeekSlider()
        self.seek.setRange(0, 0)
        self.seek.setToolTip("position: drag, click on the track, or use the arrow keys (1 s) / Page Up, Down (10 s)")
        g.addWidget(self.seek, 1, 0, 1, 2)
        self.pos_label = QtWidgets.QLabel("0.00 s")
        g.addWidget(self.pos_label, 2, 0)
        self.loop = QtWidgets.QCheckBox("loop")
        g.addWidget(self.loop, 2, 1)
        g.addWidget(QtWidgets.QLabel("speed"), 3, 0)
        self.speed = QtWidgets.QComboBox()
        self.speeds = list(SPEEDS)
        for name, _ in self.speeds:
            self.speed.addItem(name)
        self.speed.setCurrentIndex(2)
        g.addWidget(self.speed, 3, 1)
        return box

    def _slicing_box(self):
        box = QtWidgets.QGroupBox("slicing and view")
        g = QtWidgets.QGridLayout(box)
        g.addWidget(QtWidgets.QLabel("slice (ms)"), 0, 0)
        self.slice_ms = QtWidgets.QDoubleSpinBox()
        self.slice_ms.setRange(1.0, 1000.0)
        self.slice_ms.setDecimals(1)
        self.slice_ms.setValue(10.0)
        self.slice_ms.setKeyboardTracking(False)
        g.addWidget(self.slice_ms, 0, 1)
        g.addWidget(QtWidgets.QLabel("event view"), 1, 0)
        self.view = QtWidgets.QComboBox()
        for v in VIEWS:
            self.view.addItem(view_name(v), v)
        self.view.setToolTip("what the event view draws (display only: the model gets what it was trained on)")
        g.addWidget(self.view, 1, 1)
        return box

    def _region_box(self):
        box = QtWidgets.QGroupBox("model input")
        g = QtWidgets.QGridLayout(box)
        self.region_label = QtWidgets.QLabel("whole sensor")
        self.region_label.setWordWrap(True)
        self.region_label.setToolTip("the part of the camera the model classifies: drag a box on the event view")
        g.addWidget(self.region_label, 0, 0, 1, 2)
        g.addWidget(QtWidgets.QLabel("downscale"), 1, 0)
        self.downscale = QtWidgets.QSpinBox()
        self.downscale.setRange(0, 64)
        self.downscale.setSpecialValueText("auto")
        self.downscale.setSuffix("x")
        self.downscale.setKeyboardTracking(False)
        self.downscale.setToolTip("pool N x N camera pixels into one model pixel (auto: the largest N whose "
                                  "pooled region still fills the model's input)")
        g.addWidget(self.downscale, 1, 1)
        self.whole_btn = QtWidgets.QPushButton("Whole sensor")
        self.whole_btn.setToolTip("classify the whole sensor (downscaled to the model's input size)")
        g.addWidget(self.whole_btn, 2, 0, 1, 2)
        return box

    def _model_box(self):
        box = QtWidgets.QGroupBox("model")
        g = QtWidgets.QGridLayout(box)
        self.model = QtWidgets.QComboBox()
        self.model.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model.setMinimumContentsLength(14)
        g.addWidget(self.model, 0, 0, 1, 2)
        self.model_browse = QtWidgets.QPushButton("Checkpoint…")
        g.addWidget(self.model_browse, 1, 0)
        self.mode = QtWidgets.QComboBox()
        self.mode.setToolTip("conversion mode (ANN -> SNN) offered by this model")
        g.addWidget(self.mode, 1, 1)
        g.addWidget(QtWidgets.QLabel("steps / slice"), 2, 0)
        self.steps = QtWidgets.QSpinBox()
        self.steps.setRange(1, 64)
        g.addWidget(self.steps, 2, 1)
        g.addWidget(QtWidgets.QLabel("max steps / decision"), 3, 0)
        self.max_steps = QtWidgets.QSpinBox()
        self.max_steps.setRange(0, 1024)
        self.max_steps.setSpecialValueText("auto")  # 0: the checkpoint's steps for the mode
        self.max_steps.setToolTip("SNN timesteps per decision (auto: the checkpoint's for the mode)")
        self.max_steps.setValue(0)
        g.addWidget(self.max_steps, 3, 1)
        self.early = QtWidgets.QCheckBox("early exit at conf.")
        g.addWidget(self.early, 4, 0)
        self.early_thr = QtWidgets.QDoubleSpinBox()
        self.early_thr.setRange(0.10, 0.999)
        self.early_thr.setSingleStep(0.05)
        self.early_thr.setDecimals(3)
        self.early_thr.setValue(0.9)
        g.addWidget(self.early_thr, 4, 1)
        self.mask_label = QtWidgets.QLabel("mask ratio 0.00")
        self.mask_label.setToolTip("Random Spike Masking: the share of Q, K and attention spikes dropped (saves energy)")
        g.addWidget(self.mask_label, 5, 0, 1, 2)
        self.mask = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.mask.setRange(0, 95)
        self.mask.setToolTip(self.mask_label.toolTip())
        g.addWidget(self.mask, 6, 0, 1, 2)
        return box

    # ------------------------------------------------------------------ wiring
    def _connect(self):
        w = self.window
        self.open_btn.clicked.connect(w.open_recording_dialog)
        self.connect_btn.clicked.connect(w.connect_stream_dialog)
        self.camera_btn.clicked.connect(lambda: w.open_source("camera"))
        self.webcam_btn.clicked.connect(lambda: w.open_source("webcam:0"))
        self.play_btn.clicked.connect(self.toggle_play)
        self.step_btn.clicked.connect(lambda: w.pipe and w.pipe.step())
        self.seek.seek_requested.connect(lambda ms: w.pipe and w.pipe.seek(ms * 1000))
        self.loop.toggled.connect(lambda b: w.pipe and w.pipe.set_loop(b))
        self.speed.currentIndexChanged.connect(lambda i: w.pipe and w.pipe.set_speed(self.speeds[i][1]))
        self.slice_ms.valueChanged.connect(lambda v: w.pipe and w.pipe.set_slicing(slice_ms=v))
        self.view.currentIndexChanged.connect(lambda i: w.pipe and w.pipe.set_view(self.view.itemData(i)))
        self.model.activated.connect(self._model_chosen)
        self.model_browse.clicked.connect(w.open_model_dialog)
        self.mode.activated.connect(lambda i: w.pipe and w.pipe.set_mode(self.mode.itemText(i)))
        self.steps.valueChanged.connect(lambda v: w.pipe and w.pipe.set(steps_per_slice=v))
        self.max_steps.valueChanged.connect(lambda v: w.pipe and w.pipe.set(max_steps=v or None))
        self.early.toggled.connect(self._early_changed)
        self.early_thr.valueChanged.connect(self._early_changed)
        self.mask.valueChanged.connect(self._mask_changed)
        self.record_btn.toggled.connect(w.set_recording)
        self.downscale.valueChanged.connect(lambda v: w.set_region(w.pipe.config.roi if w.pipe else None))
        self.whole_btn.clicked.connect(lambda: w.set_region(None))

    def set_speed(self, speed):
        """Show ``speed`` (x real time; None: as fast as possible) in the box, adding it when it is not listed."""
        for i, (_, v) in enumerate(self.speeds):
            if v == speed or (v is not None and speed is not None and abs(v - speed) < 1e-9):
                self.speed.setCurrentIndex(i)
                return
        self.speeds.append((f"{speed:g}x", speed))
        self.speed.addItem(self.speeds[-1][0])
        self.speed.setCurrentIndex(len(self.speeds) - 1)

    def set_view(self, kind: str) -> None:
        self.view.setCurrentIndex(self.view.findData(kind))

    def step_speed(self, direction: int) -> None:
        """The next listed speed up (+1) or down (-1); "max" stays the fastest."""
        i = min(max(self.speed.currentIndex() + direction, 0), self.speed.count() - 1)
        self.speed.setCurrentIndex(i)

    def downscale_value(self):
        return self.downscale.value() or "auto"

    def toggle_play(self):
        p = self.window.pipe
        if p is None:
            return
        if p.is_live and p.state in ("ended", "error"):  # the stream is gone: connect again
            self.window.open_source(p.spec)
            return
        if p.paused or p.state == "ended":
            p.play()
            self.play_btn.setText("Pause")
        else:
            p.pause()
            self.play_btn.setText("Play")

    def _early_changed(self, *_):
        if self.window.pipe:
            self.window.pipe.set(early_exit=self.early_thr.value() if self.early.isChecked() else None)

    def _mask_changed(self, v):
        self.mask_label.setText(f"mask ratio {v / 100:.2f}")
        if self.window.pipe:
            self.window.pipe.set(mask_ratio=v / 100)

    def _model_chosen(self, i):
        path = self.model.itemData(i)
        if path:
            self.window.load_model(path)

    def _populate_models(self):
        self.model.clear()
        for p in sorted(MODELS.glob("*.pt")):
            self.model.addItem(p.name, str(p))

    # ------------------------------------------------------------------ state from the pipeline
    def show_model(self, info):
        """``info``: the pipeline's :class:`~evstream.live.ModelRecord`."""
        path = info.path
        i = self.model.findData(path)
        if i < 0 and path:
            self.model.addItem(Path(path).name, path)
            i = self.model.count() - 1
        self.model.setCurrentIndex(i)
        self.mode.clear()
        for m in info.modes:
            self.mode.addItem(m)
        self.mode.setCurrentText(info.mode or "")

    def sync_model(self, pipe):
        """The picker names the checkpoint that runs, or says that none does."""
        lm = pipe.lm if pipe is not None else None
        if lm is None:
            self.model.setPlaceholderText("no model running")
            self.model.setCurrentIndex(-1)
            self.mode.clear()
        elif self.model.currentData() != lm.path:
            self.show_model(lm.info())

    def show_region(self, pipe):
        pool = pipe.region
        text = pool.describe() if pool is not None and not pool.identity else "whole sensor"
        if self.region_label.text() != text:
            self.region_label.setText(text)

    def show_source(self, pipe):
        self.source_label.setText(f"{pipe.spec}  ({pipe.sensor_size[0]}x{pipe.sensor_size[1]})")
        live = pipe.is_live
        for wdg in (self.seek, self.step_btn, self.loop, self.speed):
            wdg.setEnabled(not live)
        self.seek.setRange(0, int(pipe.duration_us // 1000))
        self.loop.setChecked(pipe.config.loop)
        self.play_btn.setText("Play" if pipe.paused else "Pause")

    def apply_to(self, pipe):
        """Push the current settings to a newly opened pipeline."""
        pipe.set(steps_per_slice=self.steps.value(), max_steps=self.max_steps.value() or None,
                 early_exit=self.early_thr.value() if self.early.isChecked() else None,
                 mask_ratio=self.mask.value() / 100)
        pipe.set_view(self.view.currentData())
        self.filters.apply()

    def update_position(self, pipe):
        """Called every frame; widgets are touched only when what they show changes (4 Hz for the time)."""
        now = time.perf_counter()
        if now - getattr(self, "_pos_t", 0.0) < 0.25:
            return
        self._pos_t = now
        self.filters.show_counts(pipe)
        if not self.seek.isSliderDown():
            self.seek.setValue(int(pipe.position_us // 1000))
        text = f"{pipe.position_us / 1e6:.2f} s"
        if self.pos_label.text() != text:
            self.pos_label.setText(text)
        want = "Play" if (pipe.paused or pipe.state == "ended") else "Pause"
        if self.play_btn.text() != want:
            self.play_btn.setText(want)
