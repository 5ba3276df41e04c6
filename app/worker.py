"""The GUI's handle on the pipeline: opens sources and checkpoints off the UI thread, starts the pipeline's
worker threads, and hands the window the result (or a one-line error) through Qt signals.

Opening a recording scans it once for its time range and a network source may wait for its server, so
``open()`` builds the :class:`~evstream.live.Pipeline` in a short-lived thread; the window keeps
drawing meanwhile. A checkpoint that does not fit the new source leaves the source open without a model
and reports why (``failed``): the app stays up.
"""

from __future__ import annotations

import dataclasses
import threading

from PyQt6 import QtCore

from evstream.errors import CheckpointError, EvstreamError
from evstream.live import LiveConfig, Pipeline


class PipelineWorker(QtCore.QObject):
    opened = QtCore.pyqtSignal(object)  # the new, running Pipeline
    failed = QtCore.pyqtSignal(str)  # one line for the status bar and the dialog
    _built = QtCore.pyqtSignal(object, object, str)  # (pipeline or None, token, warning) from the opener thread

    def __init__(self, config: LiveConfig | None = None, parent=None):
        super().__init__(parent)
        self.config = config or LiveConfig()
        self.pipe: Pipeline | None = None
        self.model_path: str | None = None
        self._token = 0
        self.opening = False
        self._built.connect(self._on_built)

    def open(self, spec, model=None, sync: bool = False) -> None:
        """Open ``spec`` (file, tcp://HOST:PORT, camera, webcam:N) with checkpoint ``model`` (default: the
        current one), replacing the running pipeline once the new one is ready."""
        if model is not None:
            self.model_path = str(model)
        model = self.model_path
        self._token += 1
        token = self._token
        cfg = self.config
        if self.pipe is not None:  # carry the live settings over to the new source
            p = self.pipe
            cfg = dataclasses.replace(p.config, view=p.view.kind,
                                      mode=p.lm.mode if p.lm and p.lm.path == model else cfg.mode,
                                      roi=p.config.roi if str(spec) == p.spec else None)  # a region is per camera
        self.opening = True

        def build():
            warning = ""
            try:
                try:
                    pipe = Pipeline(spec, model, cfg)
                except CheckpointError as exc:  # keep the source, show events without a model
                    warning = str(exc)
                    pipe = Pipeline(spec, None, dataclasses.replace(cfg, mode=None))
            except EvstreamError as exc:
                self._built.emit(None, token, str(exc))
                return
            except Exception as exc:  # noqa: BLE001 - anything else is still one line, never a crash
                self._built.emit(None, token, f"{spec}: {type(exc).__name__}: {exc}")
                return
            self._built.emit(pipe, token, warning)

        if sync:
            build()
        else:
            threading.Thread(target=build, name="evstream-open", daemon=True).start()

    def _on_built(self, pipe, token, warning):
        if token != self._token:  # a newer open() superseded this one
            if pipe is not None:
                pipe.stop()
            return
        self.opening = False
        if pipe is None:
            self.failed.emit(warning)
            return
        old, self.pipe = self.pipe, pipe
        if old is not None:
            old.stop()
        pipe.start()
        self.opened.emit(pipe)
        if warning:
            self.failed.emit(warning)

    def load_model(self, path) -> None:
        """Swap checkpoints without restarting (the model thread loads it; errors come back as records)."""
        self.model_path = str(path)
        if self.pipe is not None:
            self.pipe.load_model(path)

    def stop(self) -> None:
        self._token += 1
        if self.pipe is not None:
            self.pipe.stop()
