"""Recording a live session: events to AEDAT4, one CSV row per model step."""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import numpy as np

from evstream.live.records import StepRecord
from evstream.stream import Closeable


class Recorder(Closeable):
    """Records a session: every event the source delivers to ``<base>.aedat4`` (``evstream.writers``) and per
    model step the prediction, class probabilities, energy and spike rate per module to ``<base>.csv``.

    Jumps back in time (seek, loop) are recorded back to back so the AEDAT4 file stays monotonic. A model
    swap with other modules or classes starts a new CSV part (``<base>.part2.csv``...)."""

    def __init__(self, base, sensor_size):
        from evstream.writers import open_writer

        base = Path(base)
        if base.suffix.lower() in (".aedat4", ".csv"):
            base = base.with_suffix("")
        self.base = base
        self.events_path = base.with_suffix(".aedat4")
        self.csv_path = base.with_suffix(".csv")
        self._writer = open_writer(self.events_path, sensor_size)
        self._lock = threading.Lock()
        self._last_t = None
        self._shift = 0
        self._csv = None
        self._csv_file = None
        self._header = None
        self._parts = 0
        self.rows = 0
        self.csv_paths: list[Path] = []

    @property
    def events(self) -> int:
        return self._writer.count if self._writer is not None else self._count

    def write_events(self, events: np.ndarray) -> None:
        if not len(events):
            return
        with self._lock:
            if self._writer is None:
                return
            t0 = int(events["t"][0]) + self._shift
            if self._last_t is not None and t0 <= self._last_t:
                self._shift += self._last_t + 1 - t0
            if self._shift:
                events = events.copy()
                events["t"] += self._shift
            self._writer.write(events)
            self._last_t = int(events["t"][-1])

    def write_step(self, row: StepRecord, modules: list[str], classes: list[str]) -> None:
        header = (["wall_time", "t_us", "step", "decision", "decision_step", "pred", "confidence", "margin",
                   "total_spikes", "sops", "macs", "energy_uJ", "power_alpha", "mask_ratio", "mode"]
                  + [f"p:{c}" for c in classes] + [f"rate:{m}" for m in modules])
        with self._lock:
            if self._header != header:
                if self._csv_file is not None:
                    self._csv_file.close()
                self._parts += 1
                path = self.csv_path if self._parts == 1 else self.base.with_suffix(f".part{self._parts}.csv")
                self._csv_file = open(path, "w", newline="")
                self._csv = csv.writer(self._csv_file)
                self._csv.writerow(header)
                self._header = header
                self.csv_paths.append(path)
            self._csv.writerow([f"{row.wall_time:.6f}", row.t_us, row.step, row.decision, row.decision_step,
                                row.pred, f"{row.confidence:.6f}", f"{row.margin:.6f}", row.total_spikes,
                                f"{row.sops:.1f}", f"{row.macs:.1f}", f"{row.energy_uJ:.6f}",
                                f"{row.power_alpha:.1f}", row.mask_ratio, row.mode]
                               + [f"{p:.6f}" for p in row.probs] + [f"{r:.6g}" for r in row.rates])
            self.rows += 1
            if self.rows % 50 == 0:
                self._csv_file.flush()

    def _close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._count = self._writer.count
                self._writer.close()
                self._writer = None
            if self._csv_file is not None:
                self._csv_file.close()
                self._csv_file = None
