"""Display settings: the event view's accumulation time and the colour theme (dark or light), one frozen
:class:`Display` the window holds, changed from the "display" box, saved with the other settings
(:mod:`app.settings`) and given by ``evstream gui --accumulate-ms / --theme`` (flags win)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pyqtgraph as pg
from PyQt6 import QtWidgets

from evstream.errors import EvstreamError
from evstream.live.view import THEMES

COLOURS = {"dark": ("#111418", "#d8dde3"), "light": ("#ffffff", "#202428")}  # background, foreground


@dataclass(frozen=True)
class Display:
    """``accumulate_ms``: the span of events the event view (frames) shows; ``theme``: dark or light."""

    accumulate_ms: float = 40.0
    theme: str = "dark"

    def __post_init__(self):
        if self.theme not in THEMES:
            raise EvstreamError(f"unknown theme {self.theme!r} (known: {', '.join(THEMES)})")
        if not 1.0 <= float(self.accumulate_ms) <= 10_000.0:
            raise EvstreamError(f"accumulation time {self.accumulate_ms} ms is not within 1..10000 ms")
        object.__setattr__(self, "accumulate_ms", float(self.accumulate_ms))


def apply(window, display: Display) -> None:
    """Show ``display`` in ``window``: the event view's span, every plot's background, axes and labels."""
    bg, fg = COLOURS[display.theme]
    window.events.theme = display.theme
    if window.pipe is not None:
        window.pipe.view.span_us = int(display.accumulate_ms * 1000)
    for panel in window.panels[:-1]:
        panel.setBackground(bg)
        for item in panel.ci.items:
            if isinstance(item, pg.PlotItem):
                for name in ("left", "bottom", "right", "top"):
                    ax = item.getAxis(name)
                    ax.setPen(fg)
                    ax.setTextPen(fg)
                item.titleLabel.opts["color"] = fg
                item.titleLabel.setText(item.titleLabel.text)
            elif isinstance(item, pg.LabelItem):
                item.opts["color"] = fg
                item.setText(item.text)
    window.stats.setStyleSheet(f"QLabel {{ background: {bg}; color: {fg}; font-family: monospace; padding: 6px; }}")


class DisplayBox(QtWidgets.QGroupBox):
    def __init__(self, window, parent=None):
        super().__init__("display", parent)
        self.window = window
        g = QtWidgets.QGridLayout(self)
        g.addWidget(QtWidgets.QLabel("accumulate (ms)"), 0, 0)
        self.accumulate = QtWidgets.QDoubleSpinBox()
        self.accumulate.setRange(1.0, 10_000.0)
        self.accumulate.setDecimals(0)
        self.accumulate.setKeyboardTracking(False)
        self.accumulate.setToolTip("event frames: the span of the latest events the event view shows")
        g.addWidget(self.accumulate, 0, 1)
        g.addWidget(QtWidgets.QLabel("theme"), 1, 0)
        self.theme = QtWidgets.QComboBox()
        for t in THEMES:
            self.theme.addItem(t, t)
        g.addWidget(self.theme, 1, 1)
        self.accumulate.valueChanged.connect(lambda v: self._set(accumulate_ms=v))
        self.theme.currentIndexChanged.connect(lambda i: self._set(theme=self.theme.itemData(i)))

    def show_display(self, d: Display) -> None:
        for wdg in (self.accumulate, self.theme):
            wdg.blockSignals(True)
        self.accumulate.setValue(d.accumulate_ms)
        self.theme.setCurrentIndex(self.theme.findData(d.theme))
        for wdg in (self.accumulate, self.theme):
            wdg.blockSignals(False)

    def _set(self, **changes):
        self.window.set_display(replace(self.window.display, **changes))
