"""Saved GUI settings (QSettings): the window's geometry and the display choices a user makes (event view,
speed, checkpoint, accumulation time, theme, noise filters), restored at the next ``evstream gui``; a flag given on the command line wins.

The store is Qt's per-user file (``~/.config/evstream/gui.conf`` on Linux), or the INI file named by
``$EVSTREAM_GUI_SETTINGS``. Only ``app.main`` (the real start) reads and writes it: windows built in code
(tests, scripts) start from their arguments alone.
"""

from __future__ import annotations

import os
from pathlib import Path

KEYS = ("view", "speed", "model", "accumulate_ms", "theme", "filters")


def store():
    from PyQt6 import QtCore

    path = os.environ.get("EVSTREAM_GUI_SETTINGS")
    if path:
        return QtCore.QSettings(path, QtCore.QSettings.Format.IniFormat)
    return QtCore.QSettings("evstream", "gui")


def saved(settings) -> dict:
    """The saved choices that are still valid: ``view`` (a known kind), ``speed`` (> 0, or None for "max"),
    ``model`` (an existing file), ``filters`` (a chain :func:`evstream.filters.parse_filters` reads; "none":
    no filter)."""
    from evstream.live import VIEWS

    out = {}
    view = settings.value("view")
    if isinstance(view, str) and view in VIEWS:
        out["view"] = view
    speed = settings.value("speed")
    if speed is not None:
        try:
            out["speed"] = None if str(speed) in ("max", "") else float(speed)
        except ValueError:
            pass
        if out.get("speed") is not None and not out["speed"] > 0:
            del out["speed"]
    model = settings.value("model")
    if isinstance(model, str) and model and Path(model).is_file():
        out["model"] = model
    from app.display import Display
    from evstream.errors import EvstreamError

    for key in ("accumulate_ms", "theme"):
        value = settings.value(key)
        try:
            if value is not None:
                Display(**{key: float(value) if key == "accumulate_ms" else value})
                out[key] = float(value) if key == "accumulate_ms" else value
        except (EvstreamError, TypeError, ValueError):
            pass
    filters = settings.value("filters")
    if isinstance(filters, str):
        from evstream.filters import parse_filters

        try:
            out["filters"] = parse_filters(filters)
        except EvstreamError:
            pass
    return out


def filters_text(spec) -> str:
    """A filter chain as the saved text (``"ba=10000,refractory=1000"``; ``"none"``)."""
    return ",".join(f"{name}={int(us)}" for name, us in spec) or "none"


def save(settings, window) -> None:
    """The window's geometry and its current choices."""
    settings.setValue("geometry", window.saveGeometry())
    p = window.pipe
    c = window.controls
    settings.setValue("view", c.view.currentData())
    speed = c.speeds[c.speed.currentIndex()][1]
    settings.setValue("speed", "max" if speed is None else float(speed))
    model = p.lm.path if p is not None and p.lm is not None else window.worker.model_path
    if model:
        settings.setValue("model", str(model))
    settings.setValue("accumulate_ms", float(window.display.accumulate_ms))
    settings.setValue("theme", window.display.theme)
    settings.setValue("filters", filters_text(c.filters.spec()))  # what the filters box shows
    settings.sync()


def restore_geometry(settings, window) -> None:
    geo = settings.value("geometry")
    if geo is not None:
        window.restoreGeometry(geo)
