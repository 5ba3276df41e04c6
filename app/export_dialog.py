"""File > Export…: a span of the open recording (or all of it) to a video drawn as the event view draws it
(MP4, AVI where the MP4 codec is missing) or to events (AEDAT4, npz, HDF5), through the filters that are on.

The export (:func:`evstream.export.export`) runs in its own thread; a progress dialog polls it every 100 ms
and can cancel it, so the UI thread never waits for it. A bad output path is one line in the status bar.
"""

from __future__ import annotations

import threading
from pathlib import Path

from PyQt6 import QtCore, QtWidgets

from evstream.errors import EvstreamError
from evstream.export import Cancelled, ExportSpec, export

FILTER = "Video (*.mp4 *.avi);;AEDAT4 (*.aedat4);;HDF5 (*.h5 *.hdf5);;NumPy (*.npz)"


class ExportJob:
    """One export in a thread: ``fraction``, ``result`` (dict), ``error`` (one line), ``done``; ``cancel()``."""

    def __init__(self, spec: ExportSpec):
        self.spec, self.fraction, self.result, self.error = spec, 0.0, None, None
        self.done = threading.Event()
        self._cancel = threading.Event()
        self.thread = threading.Thread(target=self._run, name="evstream-export", daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.result = export(self.spec, progress=self._progress, cancel=self._cancel.is_set)
        except Cancelled:
            self.error = "export cancelled: nothing written"
        except EvstreamError as exc:
            self.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - one line, never a crash
            self.error = f"{self.spec.output}: {type(exc).__name__}: {exc}"
        finally:
            self.done.set()

    def _progress(self, f):
        self.fraction = f

    def cancel(self):
        self._cancel.set()


class Exporter(QtCore.QObject):
    """The window's exports: ``start(path, t0_s, t1_s)``, ``dialog()``; ``job`` is the running one."""

    def __init__(self, window):
        super().__init__(window)
        self.w = window
        self.job: ExportJob | None = None
        self.progress: QtWidgets.QProgressDialog | None = None
        self.timer = QtCore.QTimer(self)
        self.timer.timeout.connect(self._poll)

    def spec(self, path, t0_s=0.0, t1_s=None) -> ExportSpec:
        p = self.w.pipe
        if p is None:
            raise EvstreamError("nothing is open to export")
        if p.is_live:
            raise EvstreamError(f"{p.spec} is a live stream: record it (R), then open and export the recording")
        d = self.w.display
        return ExportSpec(p.spec, str(path), t0_us=int(t0_s * 1e6), t1_us=None if t1_s is None else int(t1_s * 1e6),
                          span_us=int(d.accumulate_ms * 1000), kind=p.view.kind, theme=d.theme,
                          filters=p.config.filters)

    def start(self, path, t0_s=0.0, t1_s=None) -> bool:
        if self.job is not None and not self.job.done.is_set():
            self.w.show_error("an export is still running")
            return False
        try:
            spec = self.spec(path, t0_s, t1_s)
            from evstream.fileio import check_folder

            check_folder(spec.output)  # a bad folder is said now, not after the thread started
        except EvstreamError as exc:
            self.w.show_error(str(exc))
            return False
        self.job = ExportJob(spec)
        self.progress = QtWidgets.QProgressDialog(f"Exporting to {Path(path).name}…", "Cancel", 0, 1000, self.w)
        self.progress.setWindowModality(QtCore.Qt.WindowModality.NonModal)
        self.progress.setMinimumDuration(300)
        self.progress.canceled.connect(self.job.cancel)
        self.w.statusBar().showMessage(f"exporting to {path}…")
        self.timer.start(100)
        return True

    def _poll(self):
        job = self.job
        if job is None:
            return
        self.progress.setValue(int(job.fraction * 1000))
        if not job.done.is_set():
            return
        self.timer.stop()
        self.progress.reset()
        self.progress.hide()
        if job.error:
            self.w.show_error(job.error)
            return
        r = job.result
        what = f"{r['frames']} frames" if "frames" in r else f"{r['events']:,} events"
        self.w.statusBar().showMessage(f"exported {what} to {r['path']}", 15000)

    def dialog(self) -> None:
        p = self.w.pipe
        dur = (p.duration_us / 1e6) if p is not None else 0.0
        dlg = QtWidgets.QDialog(self.w)
        dlg.setWindowTitle("Export")
        form = QtWidgets.QFormLayout(dlg)
        path = QtWidgets.QLineEdit(str(Path.cwd() / "export.mp4"))
        browse = QtWidgets.QPushButton("…")
        browse.clicked.connect(lambda: path.setText(QtWidgets.QFileDialog.getSaveFileName(
            dlg, "Export to", path.text(), FILTER)[0] or path.text()))
        row = QtWidgets.QHBoxLayout()
        row.addWidget(path)
        row.addWidget(browse)
        form.addRow("file", row)
        spans = []
        for label, value in (("from (s)", 0.0), ("to (s)", dur)):
            box = QtWidgets.QDoubleSpinBox()
            box.setRange(0.0, max(dur, 0.001))
            box.setDecimals(3)
            box.setValue(value)
            form.addRow(label, box)
            spans.append(box)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok
                                             | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(dlg.accept)
        buttons.rejected.connect(dlg.reject)
        form.addRow(buttons)
        if dlg.exec():
            to = spans[1].value()
            self.start(path.text(), spans[0].value(), None if to >= dur else to)
