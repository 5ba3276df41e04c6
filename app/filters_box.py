"""The filters box: the project's background-activity and refractory filters (:mod:`evstream.filters`),
switched on and off live, their times in ms, and what they removed (events in, removed by each filter) since
they were last set. The reader thread applies them before slicing, so the event view, a recording's model
input and the event rate all see the filtered stream (``evstream run/gui --filters`` does the same)."""

from __future__ import annotations

from PyQt6 import QtWidgets

from evstream.filters import FILTERS
from evstream.live.reader import SetFilters

DEFAULT_MS = {"ba": 10.0, "refractory": 1.0}
TIPS = {"ba": "drop an event unless one of its 4 neighbours fired within this time before it (noise)",
        "refractory": "drop an event that follows its pixel's previous event within this time (hot pixels)"}


class FiltersBox(QtWidgets.QGroupBox):
    def __init__(self, window, parent=None):
        super().__init__("filters", parent)
        self.window = window
        g = QtWidgets.QGridLayout(self)
        self.checks, self.times = {}, {}
        for row, (name, (title, _)) in enumerate(FILTERS.items()):
            c = QtWidgets.QCheckBox(title)
            c.setToolTip(TIPS[name])
            t = QtWidgets.QDoubleSpinBox()
            t.setRange(0.1, 999.0)
            t.setDecimals(1)
            t.setSuffix(" ms")
            t.setValue(DEFAULT_MS[name])
            t.setKeyboardTracking(False)
            t.setToolTip(TIPS[name])
            g.addWidget(c, row, 0)
            g.addWidget(t, row, 1)
            c.toggled.connect(self.apply)
            t.valueChanged.connect(lambda *_, n=name: self.checks[n].isChecked() and self.apply())
            self.checks[name], self.times[name] = c, t
        self.counts = QtWidgets.QLabel("no filter")
        self.counts.setWordWrap(True)
        g.addWidget(self.counts, len(FILTERS), 0, 1, 2)

    def spec(self) -> tuple:
        """The chain the boxes say: (name, µs) pairs of the ticked filters."""
        return tuple((n, max(1, int(round(self.times[n].value() * 1000)))) for n in FILTERS
                     if self.checks[n].isChecked())

    def show_spec(self, spec) -> None:
        """Tick and fill the boxes for ``spec`` (a LiveConfig's ``filters``) without sending anything."""
        given = dict(spec)
        for n in FILTERS:
            for wdg in (self.checks[n], self.times[n]):
                wdg.blockSignals(True)
            self.checks[n].setChecked(n in given)
            if n in given:
                self.times[n].setValue(given[n] / 1000)
            for wdg in (self.checks[n], self.times[n]):
                wdg.blockSignals(False)

    def apply(self, *_):
        p = self.window.pipe
        if p is not None and tuple(p.config.filters) != self.spec():
            p.reader.send(SetFilters(self.spec()))

    def show_counts(self, pipe) -> None:
        """What the running chain removed (called a few times a second)."""
        chain = pipe.reader.filters
        if not chain:
            text = "no filter"
        else:
            c = chain.counts()
            n = max(c["in"], 1)
            parts = [f"{FILTERS[k][0]} −{c[k]:,} ({100 * c[k] / n:.1f}%)" for k, _ in chain.spec]
            text = f"in {c['in']:,} events; " + ", ".join(parts)
        if self.counts.text() != text:
            self.counts.setText(text)
