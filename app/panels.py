"""The GUI's panels: thin pyqtgraph views over the pipeline's records (``Pipeline.drain()``) and state.

Every panel has ``consume(records)`` (called with each batch of new records, cheap: it only fills fixed-size
ring buffers) and ``draw(pipe)`` (called by the window's frame timer; it pushes the buffers into pyqtgraph
items). The event view is redrawn every frame, the class probabilities and confidence curves at 15 Hz, the spike heatmap at 10 Hz, the
energy numbers and the latency table at 4 Hz, the timesteps bars when a decision arrives: the UI thread
shares the Python interpreter (GIL) with the model thread, so every millisecond it spends is one the
model does not get. Panels hold no pipeline state of their own beyond those buffers, so they never block the worker.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
import pyqtgraph as pg
from PyQt6 import QtCore, QtWidgets

pg.setConfigOptions(antialias=False, imageAxisOrder="row-major", background="#111418", foreground="#d8dde3")

STEP_HISTORY = 300  # steps shown in the time plots
DECISION_HISTORY = 40


class FrameMeter:
    """Counts painted frames of the event view (display FPS) and the time spent painting all views."""

    def __init__(self):
        self.frames: deque = deque(maxlen=600)
        self.paint_s = 0.0  # painting since the last frame tick

    def painted(self, view, seconds: float) -> None:
        self.paint_s += seconds
        if getattr(view, "counts_frames", False):
            self.frames.append(time.perf_counter())

    def fps(self, window_s: float = 1.0) -> float:
        now = time.perf_counter()
        n = sum(1 for t in self.frames if t > now - window_s)
        return n / window_s

    def take_paint(self) -> float:
        s, self.paint_s = self.paint_s, 0.0
        return s


METER = FrameMeter()


class TimedView(pg.GraphicsLayoutWidget):
    """A pyqtgraph layout whose paint time is measured (the ``draw`` stage includes it), with a notice that
    covers it when it has nothing to show (:meth:`set_notice`)."""

    counts_frames = False
    notice: QtWidgets.QLabel | None = None

    def paintEvent(self, ev):
        t0 = time.perf_counter()
        super().paintEvent(ev)
        METER.painted(self, time.perf_counter() - t0)

    def set_notice(self, text: str | None) -> None:
        """Cover the plots with ``text`` (None: show the plots)."""
        if self.notice is None:
            if not text:
                return
            self.notice = QtWidgets.QLabel(self)
            self.notice.setWordWrap(True)
            self.notice.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
            self.notice.setStyleSheet("QLabel { background: rgba(17, 20, 24, 235); color: #f0c060; "
                                      "font-size: 13px; padding: 12px; border: 1px solid #554; }")
        if text:
            if self.notice.text() != text:
                self.notice.setText(text)
            self.notice.setGeometry(self.rect().adjusted(8, 8, -8, -8))
            self.notice.show()
        else:
            self.notice.hide()

    def resizeEvent(self, ev):
        super().resizeEvent(ev)
        if self.notice is not None:
            self.notice.setGeometry(self.rect().adjusted(8, 8, -8, -8))


class TextLabel(pg.LabelItem):
    """A label that wraps to the width the layout gives it instead of widening the layout (a long text in a
    plain ``LabelItem`` pushes the plots out of the view)."""

    def updateMin(self):
        self.item.setTextWidth(max(80.0, self.width() - 4))
        h = self.item.boundingRect().height()
        self.setMinimumWidth(0)
        self.setMinimumHeight(h)
        self._sizeHint = {QtCore.Qt.SizeHint.MinimumSize: (0, h), QtCore.Qt.SizeHint.PreferredSize: (0, h),
                          QtCore.Qt.SizeHint.MaximumSize: (-1, -1), QtCore.Qt.SizeHint.MinimumDescent: (0, 0)}
        self.updateGeometry()

    def resizeEvent(self, ev):
        super().resizeEvent(ev)
        if abs(self.item.textWidth() - max(80.0, self.width() - 4)) > 1:
            self.updateMin()


def _set_text(label, text: str) -> None:
    """Set a pyqtgraph label only when its text changes (a new text re-lays out the whole view)."""
    if getattr(label, "_evstream_text", None) != text:
        label._evstream_text = text
        label.setText(text)


def _fit_y(plot, top: float, state: dict) -> None:
    """Manual y range (auto-ranging re-paints every frame): grow at once, shrink when far too tall."""
    cur = state.get("top")
    top = max(float(top), 1e-6)
    if cur is None or top > cur or top < 0.4 * cur:
        state["top"] = top * 1.25
        plot.setYRange(0, state["top"], padding=0)


def _short(block: str) -> str:
    return block.replace("stage", "s").replace(".block", ".b")


def _ticks(names, every=1):
    return [[(i, str(n)) for i, n in enumerate(names) if i % every == 0]]


class RegionViewBox(pg.ViewBox):
    """The event view's box: dragging with the left button draws a rectangle; on release ``on_region(x, y, w,
    h)`` gets it in sensor pixels (clipped to the image; a click without a drag is ignored). The wheel zooms,
    the middle button pans, a double click shows the whole sensor again (:meth:`reset_zoom`)."""

    def __init__(self, on_region, **kw):
        super().__init__(**kw)
        self.on_region = on_region
        self.image_size = (0, 0)  # (w, h)
        self.rubber = QtWidgets.QGraphicsRectItem()
        self.rubber.setPen(pg.mkPen("#f0e040", width=1, style=QtCore.Qt.PenStyle.DashLine, cosmetic=True))
        self.rubber.setVisible(False)
        self.rubber.setZValue(20)
        self.addItem(self.rubber, ignoreBounds=True)

    def mouseDragEvent(self, ev, axis=None):
        if ev.button() != QtCore.Qt.MouseButton.LeftButton:  # middle / right drag: pan / zoom (pyqtgraph's)
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        a, b = self.mapSceneToView(ev.buttonDownScenePos()), self.mapSceneToView(ev.scenePos())
        rect = QtCore.QRectF(a, b).normalized()
        self.rubber.setRect(rect)
        self.rubber.setVisible(not ev.isFinish())
        if ev.isFinish():
            w, h = self.image_size
            x0, y0 = max(0, int(np.floor(rect.left()))), max(0, int(np.floor(rect.top())))
            x1, y1 = min(w, int(np.ceil(rect.right()))), min(h, int(np.ceil(rect.bottom())))
            if x1 - x0 >= 2 and y1 - y0 >= 2:
                self.on_region((x0, y0, x1 - x0, y1 - y0))

    def mouseClickEvent(self, ev):
        if ev.double() and ev.button() == QtCore.Qt.MouseButton.LeftButton:
            ev.accept()
            self.reset_zoom()
            return
        super().mouseClickEvent(ev)

    def reset_zoom(self) -> None:
        w, h = self.image_size
        if w and h:
            self.setRange(xRange=(0, w), yRange=(0, h), padding=0)


class EventPanel(TimedView):
    """The event view: polarity frames, SAE or time surface of the latest events (ON red, OFF blue). Drag a
    box on it to choose the region the model classifies (``region_selected``); that region is outlined."""

    counts_frames = True
    region_selected = QtCore.pyqtSignal(object)  # (x, y, w, h) in sensor pixels
    theme = "dark"  # the colours of the events (app/display.py)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.title = self.addLabel("events", row=0, col=0)
        self.vb = RegionViewBox(self.region_selected.emit, lockAspect=True, invertY=True, enableMouse=True)
        self.vb.setMenuEnabled(False)
        self.addItem(self.vb, row=1, col=0)
        self.img = pg.ImageItem()
        self.vb.addItem(self.img)
        self.region = QtWidgets.QGraphicsRectItem()
        self.region.setPen(pg.mkPen("#40d0f0", width=2, cosmetic=True))
        self.region.setZValue(10)
        self.region.setVisible(False)
        self.vb.addItem(self.region, ignoreBounds=True)
        self._roi = None
        self._size = None
        self.rate_plot = self.addPlot(row=2, col=0)
        self.rate_plot.setMouseEnabled(False, False)
        self.rate_plot.disableAutoRange()
        self.rate_plot.setXRange(-10, 0, padding=0)
        self.rate_plot.setLabel("left", "rate", units="ev/s")  # SI prefix: "20 kev/s", not "20000"
        self.rate_plot.setLabel("bottom", "seconds ago")
        self.rate_plot.getAxis("left").setWidth(52)
        self.rate_curve = self.rate_plot.plot(pen=pg.mkPen("#e0c050", width=1))
        self._rate_y = {}
        self.ci.layout.setRowStretchFactor(1, 4)
        self.ci.layout.setRowStretchFactor(2, 1)
        self.setMinimumSize(220, 220)
        self.setToolTip("events: ON red, OFF blue. Drag a box to choose the region the model classifies; wheel: "
                        "zoom, middle button: pan, double click: whole sensor")

    def consume(self, records):
        pass

    def show_region(self, pool) -> None:
        """Outline the region the model sees (a :class:`~evstream.representations.SpatialPool` or None)."""
        roi = None if pool is None or pool.identity else tuple(pool.roi)
        if roi != self._roi:
            self._roi = roi
            self.region.setVisible(roi is not None)
            if roi is not None:
                self.region.setRect(QtCore.QRectF(*roi))

    def draw(self, pipe):
        rgb = pipe.view.image(self.theme)
        self.img.setImage(rgb, autoLevels=False, levels=(0, 255))
        if self._size != rgb.shape[:2]:
            self._size = rgb.shape[:2]
            self.vb.image_size = (rgb.shape[1], rgb.shape[0])
            self.vb.setRange(xRange=(0, rgb.shape[1]), yRange=(0, rgb.shape[0]), padding=0)
        self.show_region(pipe.region)
        now = time.perf_counter()
        if now - getattr(self, "_rate_t", 0.0) >= 0.25:  # the event rate at 4 Hz
            self._rate_t = now
            x, y = pipe.view.rate()
            self.rate_curve.setData(x, y)
            if len(y):
                _fit_y(self.rate_plot, float(y.max()), self._rate_y)
        pos = pipe.position_us / 1e6
        dur = f" / {pipe.duration_us / 1e6:.2f}" if pipe.duration_us else ""
        from app.menus import view_name

        _set_text(self.title, f"{view_name(pipe.view.kind)} · {pipe.sensor_size[0]}x{pipe.sensor_size[1]} · {pos:.1f}{dur} s")


class PredictionPanel(TimedView):
    """Top-k class probabilities as bars, and every class's confidence over the last steps with the moments
    of decision marked (dashed lines, labelled with the decided class)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.bars_plot = self.addPlot(row=0, col=0, title="class probabilities")
        self.bars_plot.setYRange(0, 1, padding=0)
        self.bars_plot.disableAutoRange()
        self.bars_plot.setMouseEnabled(False, False)
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.7, brush="#4f8fd6")
        self.top = pg.BarGraphItem(x=[], height=[], width=0.7, brush="#f0a030")
        self.bars_plot.addItem(self.bars)
        self.bars_plot.addItem(self.top)
        self.conf_plot = self.addPlot(row=1, col=0, title="confidence per class")
        self.conf_plot.setYRange(0, 1, padding=0.02)
        self.conf_plot.setMouseEnabled(False, False)
        self.conf_plot.setLabel("bottom", "timesteps ago")
        self.conf_plot.setLabel("left", "confidence")
        self.conf_plot.setXRange(-STEP_HISTORY + 1, 0, padding=0.01)  # fixed: no axis re-layout per frame
        self.conf_plot.enableAutoRange(False)
        self.bars_plot.setLabel("left", "probability")
        self.threshold = pg.InfiniteLine(angle=0, pen=pg.mkPen("#888", style=QtCore.Qt.PenStyle.DotLine))
        self.conf_plot.addItem(self.threshold)
        self.marks = []
        for i in range(12):  # labels at three heights, so those of close decisions do not overlap
            line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#e8e8e8", style=QtCore.Qt.PenStyle.DashLine),
                                   label="", labelOpts={"position": (0.95, 0.86, 0.77)[i % 3], "color": "#f0f0f0"})
            line.setVisible(False)
            self.conf_plot.addItem(line)
            self.marks.append(line)
        self.decision_text = TextLabel("", justify="left")
        self.segments, self.right, self.scored, self.last_truth = None, 0, 0, None
        self.addItem(self.decision_text, row=2, col=0)
        self.ci.layout.setRowStretchFactor(0, 2)
        self.ci.layout.setRowStretchFactor(1, 3)
        self.set_classes([])

    def set_labels(self, segments) -> None:
        """The source's labelled spans (None: no ground truth): each decision is scored as `evstream run
        --labels` does (the span covering >= 60 % of its window) and the running accuracy shown."""
        self.segments = list(segments) if segments else None
        self.right = self.scored = 0

    def truth(self, rec):
        """The true class of decision ``rec`` (None: no labels, or no labelled span covers its window)."""
        from evstream.streams import truth_of

        if not self.segments:
            return None
        seg = truth_of(self.segments, rec.t_us, rec.window_us)
        return None if seg is None else seg.label

    def set_classes(self, classes):
        self.classes = list(classes)
        k = len(self.classes)
        self.conf_plot.clear()  # the legend too
        if self.conf_plot.legend is None:
            self.conf_plot.addLegend(offset=(-4, 2), labelTextSize="7pt", verSpacing=-6,
                                     brush=pg.mkBrush(17, 20, 24, 200))
        self.conf_plot.legend.setColumnCount(max(1, min(k, 5)))
        self.conf_plot.addItem(self.threshold)
        for m in self.marks:
            self.conf_plot.addItem(m)
        self.curves = [self.conf_plot.plot(pen=pg.mkPen(pg.intColor(i, max(k, 1)), width=1), skipFiniteCheck=True,
                                           name=str(self.classes[i])) for i in range(k)]
        self.conf_plot.disableAutoRange()
        self.conf_plot.setXRange(-STEP_HISTORY + 1, 0, padding=0.01)
        self.conf_plot.setYRange(0, 1, padding=0.02)
        self.probs = np.zeros((STEP_HISTORY, k), np.float32)
        self.steps = np.zeros(STEP_HISTORY, np.int64)
        self.n = 0
        self.decisions: deque = deque(maxlen=len(self.marks))
        self.last = None
        self.dirty = True
        # nothing of the previous source or position stays on screen: bars, marks, the decision text
        self.bars.setOpts(x=[], height=[], width=0.7)
        self.top.setOpts(x=[], height=[], width=0.7)
        for m in self.marks:
            m.setVisible(False)
        _set_text(self.decision_text, "")
        self.bars_plot.getAxis("bottom").setTicks(_ticks(self.classes))
        self.bars_plot.setXRange(-0.5, max(k, 1) - 0.5, padding=0)

    def reset(self):
        self.set_classes(self.classes)

    def consume(self, records):
        for r in records:
            kind = r.kind
            if kind == "step" and len(r.probs) == len(self.classes):
                i = self.n % STEP_HISTORY
                self.probs[i] = r.probs
                self.steps[i] = r.step
                self.n += 1
                self.dirty = True
            elif kind == "decision":
                true = self.truth(r)
                if true is not None:
                    self.scored += 1
                    self.right += str(r.class_name) == true
                self.decisions.append((r.t_us, self.steps[(self.n - 1) % STEP_HISTORY] if self.n else 0, r, true))
                self.last = r
                self.last_truth = true
                self.dirty = True

    def draw(self, pipe):
        thr = pipe.config.early_exit
        self.threshold.setVisible(thr is not None)
        if thr is not None:
            self.threshold.setPos(thr)
        now = time.perf_counter()
        if not self.dirty or not self.classes or now - getattr(self, "_t", 0.0) < 1 / 15:  # 15 Hz
            return
        self._t = now
        self.dirty = False
        n = min(self.n, STEP_HISTORY)
        if n:
            order = (np.arange(self.n - n, self.n)) % STEP_HISTORY
            x = np.arange(-n + 1, 1)
            now_step = self.steps[order[-1]]
            p = self.probs[order]
            for c, curve in enumerate(self.curves):
                curve.setData(x, p[:, c])
            cur = p[-1]
            k = len(cur)
            top = np.argsort(cur)[::-1][:3]
            h = cur.copy()
            h[top[0]] = 0
            self.bars.setOpts(x=np.arange(k), height=h, width=0.7)
            self.top.setOpts(x=[top[0]], height=[cur[top[0]]], width=0.7)
        else:
            now_step = 0
        for line, item in zip(self.marks, list(self.decisions) + [None] * len(self.marks)):
            if item is None or item[1] - now_step <= -n:
                line.setVisible(False)
                continue
            line.setPos(item[1] - now_step)
            true = item[3]
            line.label.setFormat(str(item[2].class_name) + ("" if true is None else
                                                            " ✓" if str(item[2].class_name) == true else f" ≠{true}"))
            line.setVisible(True)
        if self.last:
            r = self.last
            tops = "  ".join(f"{c} {p:.2f}" for c, p in r.top)
            truth = ""
            if self.segments:
                true = self.last_truth
                mark = "–" if true is None else ("<span style='color:#7fd37f'>right</span>" if str(r.class_name) == true
                                                 else "<span style='color:#ff7070'>wrong</span>")
                acc = f"{self.right / self.scored:.2f}" if self.scored else "–"
                truth = (f"<br>true class <b>{true if true is not None else 'none (between labels)'}</b>: {mark}"
                         f" · running accuracy {self.right}/{self.scored} = {acc}")
            _set_text(self.decision_text, f"decision #{r.decision}: <b>{r.class_name}</b> at {r.t_us / 1e6:.2f} s, "
                                          f"{r.timesteps} timesteps ({r.reason})<br>top: {tops}{truth}")


class SpikePanel(TimedView):
    """Spike rates (spikes per neuron per timestep) live: every module over the last steps as a heatmap
    (blocks top to bottom), and the mean rate per block as bars; redrawn at 10 Hz."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.heat_plot = self.addPlot(row=0, col=0, title="spike rate per module")
        self.heat_plot.setMouseEnabled(False, False)
        self.heat = pg.ImageItem()
        self.heat.setColorMap(pg.colormap.get("inferno"))
        self.heat_plot.addItem(self.heat)
        self.heat_plot.invertY(True)
        self.heat_plot.disableAutoRange()
        self.heat_plot.setLabel("bottom", "timesteps ago")
        self.heat_plot.setLabel("left", "block (modules)")
        self.colorbar = pg.ColorBarItem(values=(0, 0.05), colorMap=pg.colormap.get("inferno"), interactive=False,
                                        width=10, label="spikes / neuron / step")
        self.colorbar.setImageItem(self.heat, insert_in=self.heat_plot)
        self.block_plot = self.addPlot(row=1, col=0, title="mean spike rate per block")
        self.block_plot.setMouseEnabled(False, False)
        self.block_plot.disableAutoRange()
        self.block_plot.setLabel("left", "spike rate")
        self.block_plot.getAxis("left").enableAutoSIPrefix(False)
        self._yr = {}
        self.block_bars = pg.BarGraphItem(x=[], height=[], width=0.7, brush="#d05a5a")
        self.block_plot.addItem(self.block_bars)
        self.ci.layout.setRowStretchFactor(0, 3)
        self.ci.layout.setRowStretchFactor(1, 2)
        self.set_modules([])

    def set_modules(self, modules):
        from evstream.monitors import block_of

        self.modules = list(modules)
        self.blocks = list(dict.fromkeys(block_of(m) for m in self.modules))
        self.block_idx = np.array([self.blocks.index(block_of(m)) for m in self.modules], dtype=np.int64)
        self.rates = np.zeros((len(self.modules), STEP_HISTORY), np.float32)
        self.n = 0
        self.dirty = True
        first, size = {}, {}
        for i, m in enumerate(self.modules):
            first.setdefault(block_of(m), i)
            size[block_of(m)] = size.get(block_of(m), 0) + 1
        # one label per block, where it has room: at least 3 module rows below the previous label
        ticks, last = [], -99
        for b, i in first.items():
            if i - last >= 3 or (size[b] > 1 and not ticks):
                ticks.append((i + 0.5, _short(b)))
                last = i
        self.heat_plot.getAxis("left").setTicks([ticks])
        self.block_plot.getAxis("bottom").setTicks([[(i, _short(b)) for i, b in enumerate(self.blocks)]])
        self.block_plot.setXRange(-0.5, max(len(self.blocks), 1) - 0.5, padding=0)
        self.heat.setRect(QtCore.QRectF(-STEP_HISTORY, 0, STEP_HISTORY, max(len(self.modules), 1)))
        self.heat_plot.setRange(xRange=(-STEP_HISTORY, 0), yRange=(0, max(len(self.modules), 1)), padding=0)

    def reset(self):
        self.set_modules(self.modules)

    def consume(self, records):
        for r in records:
            if r.kind != "step":
                continue
            if list(r.spikes) != self.modules:
                self.set_modules(list(r.spikes))
            self.rates[:, self.n % STEP_HISTORY] = r.rates
            self.n += 1
            self.dirty = True

    def draw(self, pipe):
        now = time.perf_counter()
        if not self.dirty or not self.modules or now - getattr(self, "_t", 0.0) < 0.1:  # 10 Hz
            return
        self._t = now
        self.dirty = False
        n = min(self.n, STEP_HISTORY)
        order = np.arange(self.n - n, self.n) % STEP_HISTORY
        img = np.zeros_like(self.rates)
        img[:, STEP_HISTORY - n:] = self.rates[:, order]
        top = max(0.05, float(img.max()) if n else 1.0)
        self.heat.setImage(img, autoLevels=False, levels=(0, top), rect=QtCore.QRectF(
            -STEP_HISTORY, 0, STEP_HISTORY, max(len(self.modules), 1)))
        if abs(top - getattr(self, "_top", -1)) > 0.1 * top:
            self._top = top
            self.colorbar.setLevels((0, top))
        recent = self.rates[:, order[-50:]].mean(1) if n else np.zeros(len(self.modules))
        per_block = np.bincount(self.block_idx, weights=recent, minlength=len(self.blocks)) / \
            np.maximum(np.bincount(self.block_idx, minlength=len(self.blocks)), 1)
        self.block_bars.setOpts(x=np.arange(len(self.blocks)), height=per_block, width=0.7)
        _fit_y(self.block_plot, per_block.max() if len(per_block) else 0.1, self._yr)


class EnergyPanel(TimedView):
    """Energy: the SNN's µJ for the last decision vs one ANN inference of the same model on the same window,
    and both per second at the decision rate actually used (the ANN would run once per decision too)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = self.addPlot(row=0, col=0, title="µJ (log): <span style='color:#4fb36a'>■ spiking</span> "
                                                     "<span style='color:#8a8f98'>■ ANN</span>")
        self.plot.setMouseEnabled(False, False)
        self.plot.getAxis("left").setTicks([[(k, f"{10.0 ** k:g}") for k in range(-1, 9)]])
        self.snn = pg.BarGraphItem(x=[0, 2], height=[0, 0], width=0.8, brush="#4fb36a", name="spiking (SNN)")
        self.ann = pg.BarGraphItem(x=[0.85, 2.85], height=[0, 0], width=0.8, brush="#8a8f98", name="same net as ANN")
        self.snn.setVisible(False)
        self.ann.setVisible(False)
        self.plot.addItem(self.snn)
        self.plot.addItem(self.ann)
        self.plot.setLabel("left", "µJ")
        self.plot.getAxis("bottom").setTicks([[(0.43, "per decision"), (2.43, "per second of stream")]])
        self.plot.setXRange(-0.6, 3.5, padding=0)
        self.plot.disableAutoRange()
        self.text = TextLabel("waiting for the first decision…", justify="left")
        self.addItem(self.text, row=1, col=0)
        self.last = None
        self.recent: deque = deque(maxlen=30)  # (t_us, SNN µJ) of recent decisions

    def reset(self):
        self.last = None
        self.recent.clear()

    def consume(self, records):
        for r in records:
            if r.kind == "decision":
                self.last = r
                self.recent.append((r.t_us, r.energy_uJ))

    def draw(self, pipe):
        now = time.perf_counter()
        if now - getattr(self, "_t", 0.0) < 0.25:  # numbers at 4 Hz
            return
        self._t = now
        if self.last is None:  # nothing drawn before there is something to compare
            self.snn.setVisible(False)
            self.ann.setVisible(False)
            _set_text(self.text, "waiting for the first decision…" if pipe.lm is not None else "")
            return
        self.snn.setVisible(True)
        self.ann.setVisible(True)
        ann = self.last.ann_energy_uJ
        snn_dec = self.last.energy_uJ
        span = (self.recent[-1][0] - self.recent[0][0]) / 1e6 if len(self.recent) > 1 else 0.0
        rate = (len(self.recent) - 1) / span if span > 0 else 0.0  # decisions per second of stream
        snn_s = float(np.mean([e for _, e in self.recent])) * rate
        vals_snn = [max(snn_dec, 1e-3), max(snn_s, 1e-3)]
        vals_ann = [max(ann, 1e-3), max(ann * rate, 1e-3)]
        # a log scale by hand (bars from 0.1 µJ up to log10 of the value; the axis ticks say 10^k)
        self.snn.setOpts(height=np.log10(vals_snn) + 1, y0=-1)
        self.ann.setOpts(height=np.log10(vals_ann) + 1, y0=-1)
        top = float(np.log10(max(vals_snn + vals_ann)))
        if abs(top - getattr(self, "_top", -99)) > 0.2:
            self._top = top
            self.plot.setYRange(-1, top + 0.3, padding=0)
        name = model_name(pipe.lm)
        if ann > 0 and snn_dec > 0:
            ratio = snn_dec / ann
            words = f"{1 / ratio:.1f}x less energy than" if ratio < 1 else f"{ratio:.1f}x the energy of"
        else:
            words = "compared with"
        per_s = (f"at {rate:.1f} decisions per second of stream: spiking {snn_s:.0f} µJ/s, ANN {ann * rate:.0f} µJ/s"
                 if rate > 0 else "per second: after the second decision")
        _set_text(self.text,
            f"<span style='color:#4fb36a'>spiking {name}</span>: {snn_dec:.1f} µJ for the last decision "
            f"({self.last.timesteps} timesteps), {words} the same network as an "
            f"<span style='color:#aab'>ANN</span> ({ann:.1f} µJ per decision)<br>{per_s}<br>"
            f"<span style='color:#889'>estimates for 45 nm chips: 0.9 pJ per spike delivered, 4.6 pJ per "
            f"multiply-add</span>")


ARCH_NAMES = {"mst": "Masked Spiking Transformer", "spikformer": "Spikformer"}
MODE_NAMES = {"mst": "IF neurons", "ecmt": "ECMT neurons", "spikformer": "LIF neurons"}


def model_name(lm) -> str:
    """The running model in words: its architecture and how it spikes (a checkpoint's arch and mode)."""
    if lm is None:
        return "model"
    arch = getattr(lm.model, "arch", "") or ""
    mode = MODE_NAMES.get(lm.mode, lm.mode)
    return f"{ARCH_NAMES.get(arch, arch or 'model')} ({mode})"


class StepsPanel(TimedView):
    """Timesteps used by each recent decision (orange: early exit by confidence, grey: the maximum)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = self.addPlot(row=0, col=0, title="timesteps per decision")
        self.plot.setMouseEnabled(False, False)
        self.plot.disableAutoRange()
        self.plot.setXRange(-0.6, DECISION_HISTORY - 0.4, padding=0)
        self.plot.setLabel("left", "timesteps")
        self.plot.setLabel("bottom", f"the last {DECISION_HISTORY} decisions (oldest left)")
        self._yr = {}
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.8, brushes=[])
        self.plot.addItem(self.bars)
        self.decisions: deque = deque(maxlen=DECISION_HISTORY)
        self.dirty = False

    def reset(self):
        self.decisions.clear()
        self.dirty = True

    def consume(self, records):
        for r in records:
            if r.kind == "decision":
                self.decisions.append((r.decision, r.timesteps, r.reason))
                self.dirty = True

    def draw(self, pipe):
        if not self.dirty:
            return
        self.dirty = False
        d = list(self.decisions)
        brushes = [pg.mkBrush("#f0a030" if r == "confident" else "#8a8f98") for _, _, r in d]
        x0 = d[0][0] if d else 0
        self.bars.setOpts(x=[i - x0 for i, _, _ in d], height=[s for _, s, _ in d], width=0.8, brushes=brushes)
        if d:
            _fit_y(self.plot, max(s for _, s, _ in d), self._yr)


class StatsPanel(QtWidgets.QLabel):
    """Latency of each stage (p50 / p99 ms), display FPS, dropped slices, queue fill."""

    STAGES = ("read", "queue", "represent", "step", "slice", "total", "draw")

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop | QtCore.Qt.AlignmentFlag.AlignLeft)
        self.setStyleSheet("QLabel { background: #111418; color: #d8dde3; font-family: monospace; padding: 6px; }")
        self._last = 0.0
        self.setMinimumWidth(260)

    def consume(self, records):
        pass

    def reset(self):
        pass

    def draw(self, pipe, fps: float = 0.0, force: bool = False):
        now = time.perf_counter()
        if not force and now - self._last < 0.25:  # 4 Hz is plenty for numbers
            return
        self._last = now
        s = pipe.stats()
        lat = s["latency"]
        rows = "".join(f"<tr><td>{k}</td><td align=right>{lat[k]['p50_ms']:.2f}</td>"
                       f"<td align=right>{lat[k]['p99_ms']:.2f}</td></tr>" for k in self.STAGES if k in lat)
        drop_col = "#ff7070" if s["dropped_slices"] else "#7fd37f"
        self.setText(
            f"<b>latency (ms)</b><table cellspacing=4><tr><td></td><td>p50</td><td>p99</td></tr>{rows}</table>"
            f"display <b>{fps:.0f} FPS</b><br>"
            f"dropped slices <b style='color:{drop_col}'>{s['dropped_slices']}</b> of {s['slices_in']}<br>"
            f"queue {s['queued']} · steps {s['steps']} · decisions {s['decisions']}<br>"
            f"state {s['state']}" + (f"<br>recording {s['recording']}" if s["recording"] else ""))
