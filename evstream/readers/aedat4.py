"""AEDAT 4.0 (DV / dv-processing) through ``dv.io.MonoCameraRecording``.

Files may also hold IMU, frame or trigger streams; only the chosen event stream is read (the first event
stream unless ``stream=`` names another). Batches come straight from dv-processing's ``EventStore.numpy()``.
"""

from __future__ import annotations

import numpy as np

from evstream.errors import FormatError
from evstream.events import EVENT_DTYPE
from evstream.readers.base import Reader, check_path


class Aedat4Reader(Reader):
    format = "aedat4"

    def __init__(self, path, sensor_size=None, stream: str | None = None):
        import dv_processing as dv

        super().__init__(check_path(path), sensor_size)
        try:
            rec = dv.io.MonoCameraRecording(str(self.path))
        except Exception as exc:  # dv raises RuntimeError / std::exception subclasses
            raise FormatError(f"dv-processing cannot open it as AEDAT 4.0 ({_first_line(exc)})",
                              where=self.path) from None
        names = list(rec.getStreamNames())
        event_streams = [n for n in names if rec.isStreamOfEventType(n)]
        if stream is None:
            if not event_streams:
                raise FormatError(f"no event stream (streams: {', '.join(names) or 'none'})", where=self.path)
            stream = event_streams[0]
        elif stream not in event_streams:
            raise FormatError(f"no event stream named {stream!r} (event streams: {event_streams})",
                              where=self.path)
        self.stream = stream
        res = rec.getEventResolution()
        self.meta.update(format=self.format, camera=rec.getCameraName(), stream=stream, streams=names)
        if sensor_size is None:
            self.sensor_size = (int(res[0]), int(res[1])) if res is not None else (0, 0)
        del rec

    def _iter_events(self, max_events):
        import dv_processing as dv

        rec = dv.io.MonoCameraRecording(str(self.path))
        pending, n_pending = [], 0
        while True:
            try:
                batch = rec.getNextEventBatch(self.stream)
            except Exception as exc:
                if pending:
                    yield np.concatenate(pending), None
                raise FormatError(f"corrupt or truncated event packet ({_first_line(exc)})",
                                  where=self.path) from None
            if batch is None:
                if rec.isRunning(self.stream):
                    continue
                break
            if batch.size() == 0:
                continue
            a = batch.numpy()
            ev = np.empty(len(a), EVENT_DTYPE)
            ev["t"], ev["x"], ev["y"], ev["p"] = a["timestamp"], a["x"], a["y"], a["polarity"]
            pending.append(ev)
            n_pending += len(ev)
            if n_pending >= max_events:
                yield np.concatenate(pending), None
                pending, n_pending = [], 0
        if pending:
            yield np.concatenate(pending), None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
