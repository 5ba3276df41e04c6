"""The live pipeline: source -> slicer -> representation -> model step -> monitors -> sinks, shared by the GUI
(``app/``) and the headless ``evstream run``.

    pipe = Pipeline("recordings/demo_digits.aedat4", "models/mst-nmnist.pt", speed=1.0)
    pipe.run(on_decision=print)          # headless: until the stream ends (or max_decisions / duration_s)

    pipe.start()                         # or in two worker threads (the GUI): a reader and a model thread
    for rec in pipe.drain(): ...         # step / decision / status / error / reset records since the last call
    pipe.pause(); pipe.step(); pipe.seek(2_000_000); pipe.set(mask_ratio=0.5); pipe.load_model(path)
    pipe.stop()                          # joins both threads, closes the source and any recording

Threads and queues
    reader thread   iterates the source, paces recordings at ``speed`` x real time, cuts time (or count)
                    slices, updates the event view, writes recorded events, and puts whole slices into a
                    bounded queue (``max_queue``). When the queue is full on a paced or live stream the
                    OLDEST slice is dropped and counted (``dropped_slices``): whole slices, never single
                    events. Unpaced replay (``speed=None``) waits instead and never drops.
    model thread    takes slices, builds the model input from the most recent window (the last
                    ``window_slices`` slices, default as many as span one training sample, the
                    checkpoint's ``window_us``, as ``rep(events, t_start, t_end)``: docs/model.md "live
                    streams"), runs ``steps_per_slice`` SNN timesteps on it and watches spikes, energy and
                    latency.

Conversion mode on a live stream: ``ecmt`` where the model has it, else the model's first mode. A sliding
window changes the input at every step; rate-coded IF neurons (mode ``mst``) need tens of steps of one
input to settle, while ECMT's expectation compensation is accurate after a few steps, and with ``decay``
(default 0.5: the running output is an exponential mean) it follows the scene. On the demo recording,
measured at each digit's end (benchmarks/bench_live_digits.py): ECMT with decay 0.5 is right on 8 of 24
digits, MST on 4 of 24, the ANN on the same windows 14 of 24 (docs/model.md).

Decisions. Membranes carry over from slice to slice; the class scores are averaged over the steps of the
current decision. A decision is made when the confidence (top softmax probability of that mean) reaches
``early_exit`` (after at least ``min_steps``; the rest of the slice's steps are skipped) or after
``max_steps`` timesteps; then the mean is cleared (``reset_mean()``) for the next decision. Seeks, loops and
slice changes reset the SNN (``reset()``).

Stage latencies (``stats()["latency"]``): ``read`` (slicing, view, recording and queueing of one chunk,
not the wait for the stream), ``queue`` (a slice's wait before the model thread takes it), ``represent``,
``step`` (one timestep), ``slice`` (all of a slice's work in the model thread), ``total`` (slice complete ->
its last step done); the GUI adds ``draw``.

Memory is bounded: the queue, the window, the record outbox and every monitor are fixed-size.
"""

from __future__ import annotations

import csv
import datetime
import json
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evstream.errors import CheckpointError, EvstreamError
from evstream.monitors import EnergyMonitor, LatencyStats, SpikeMonitor, neuron_counts
from evstream.slicing import CountSlicer, EventSlice, TimeSlicer

VIEWS = ("frames", "sae", "time_surface")
REPO = Path(__file__).resolve().parents[1]
DEMO_RECORDING = REPO / "recordings" / "demo_digits.aedat4"  # what `evstream gui` plays with no argument
DEMO_MODEL = REPO / "models" / "mst-nmnist.pt"

_END = object()


class _Reset:
    """Queue marker: the stream jumped (seek, loop, new slicing); the model thread resets the SNN."""

    def __init__(self, why: str):
        self.why = why


# --------------------------------------------------------------------------------------------------------
# the model and what the pipeline needs to know about it
# --------------------------------------------------------------------------------------------------------


@dataclass
class LoadedModel:
    """A checkpoint ready to stream: the ANN, its SNN runner, its input representation, the ANN energy of
    one forward pass (for the SNN-vs-ANN comparison)."""

    path: str
    model: object
    meta: dict
    mode: str
    rep: object
    classes: list
    n_window: int
    ann_uJ: float
    window_us: int = 0  # time span of one training sample (meta "window_us"): the live input window
    runner: object = None
    neurons: dict = field(default_factory=dict)

    @property
    def modes(self) -> tuple:
        return tuple(getattr(self.model, "modes", ()) or ())

    def info(self) -> dict:
        return {"path": self.path, "arch": getattr(self.model, "arch", "?"), "mode": self.mode,
                "modes": list(self.modes), "classes": list(self.classes),
                "representation": dict(self.meta.get("representation", {})), "window_slices": self.n_window, "window_us": self.window_us,
                "ann_energy_uJ": self.ann_uJ}


def ann_energy_uJ(model, rep) -> float:
    """Energy of one ANN forward pass of ``model`` on an input of ``rep``'s shape (every op a MAC)."""
    import torch

    from evstream.energy import OpCounter

    counter = OpCounter(model, set(), spiking=False)
    try:
        with torch.no_grad():
            model(torch.zeros(1, int(rep.channels), *rep.out_hw))
        return counter.take().energy_uJ
    finally:
        counter.remove()


def check_fit(path, rep, sensor_size) -> None:
    """``CheckpointError`` when the checkpoint's representation was made for another sensor size (w, h)."""
    if sensor_size is not None and tuple(sensor_size) != (0, 0) and tuple(rep.sensor_size) != tuple(sensor_size):
        w, h = rep.sensor_size
        raise CheckpointError(f"model was trained on {w}x{h} events but the source is "
                              f"{sensor_size[0]}x{sensor_size[1]}", where=path)


LIVE_MODES = ("ecmt",)  # preferred on live streams, in this order, where a model has them


def live_mode(modes) -> str | None:
    """The default conversion mode for streaming: the first of ``LIVE_MODES`` the model has, else its first."""
    return next((m for m in LIVE_MODES if m in modes), modes[0] if modes else None)


def load_model(path, sensor_size=None, mode: str | None = None, mask_ratio: float = 0.0, seed: int = 0,
               decay: float | None = None) -> LoadedModel:
    """Load a checkpoint for streaming; ``CheckpointError`` (one line naming the file) if it is unreadable,
    has no representation, or was trained on another sensor size than ``sensor_size`` (w, h)."""
    from evstream.representations import from_config
    from evstream.snn import load_checkpoint

    model, meta = load_checkpoint(path)
    cfg = meta.get("representation")
    if not cfg:
        raise CheckpointError("checkpoint has no representation config", where=path)
    try:
        rep = from_config(cfg)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"bad representation config ({exc})", where=path) from None
    check_fit(path, rep, sensor_size)
    modes = tuple(getattr(model, "modes", ()) or ())
    if mode is not None and modes and mode not in modes:
        raise CheckpointError(f"mode {mode!r} not supported by this {getattr(model, 'arch', '?')} model "
                              f"(modes: {', '.join(modes)})", where=path)
    mode = mode or live_mode(modes)
    classes = [str(c) for c in meta.get("classes", [])]
    n_window = int(cfg.get("n_frames", 1) or 1)
    lm = LoadedModel(str(path), model, meta, mode, rep, classes, n_window, ann_energy_uJ(model, rep),
                     window_us=int(meta.get("window_us") or 0))
    lm.runner = model.spiking(mode=mode, mask_ratio=mask_ratio, seed=seed, decay=decay)
    lm.runner.reset()
    if not lm.classes:
        lm.classes = [str(i) for i in range(int(getattr(getattr(model, "config", None), "num_classes", 0) or 0))]
    return lm


# --------------------------------------------------------------------------------------------------------
# the event view shown by the GUI (frames / SAE / time surface of the most recent events)
# --------------------------------------------------------------------------------------------------------


class EventView:
    """The latest events as an RGB image (ON red, OFF blue): polarity counts of the last ``span_us``,
    the SAE (50 ms horizon) or the time surface (τ = 20 ms), switchable live.

    ``update`` runs in the reader thread for every slice; ``image`` in the GUI thread when it draws."""

    def __init__(self, sensor_size, kind: str = "frames", span_us: int = 40_000):
        from evstream.representations import SAE, TimeSurface

        self.sensor_size = (int(sensor_size[0]) or 1, int(sensor_size[1]) or 1)
        self.kind = kind
        self.span_us = span_us
        self._recent: deque = deque(maxlen=256)  # (t_end, events) of recent slices
        self._sae = SAE(self.sensor_size)
        self._ts = TimeSurface(self.sensor_size)
        self.t = None
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._recent.clear()
            self._sae.reset()
            self._ts.reset()
            self.t = None

    def update(self, events: np.ndarray, t_end: int) -> None:
        w, h = self.sensor_size
        if len(events) and (int(events["x"].max()) >= w or int(events["y"].max()) >= h):
            events = events[(events["x"] < w) & (events["y"] < h)]
        with self._lock:
            self._recent.append((int(t_end), events))
            while self._recent and self._recent[0][0] <= t_end - self.span_us:
                self._recent.popleft()
            if self.kind == "sae":
                self._sae.update(events)
            elif self.kind == "time_surface":
                self._ts.update(events)
            self.t = int(t_end)

    def set_kind(self, kind: str) -> None:
        if kind not in VIEWS:
            raise ValueError(f"unknown view {kind!r} (known: {', '.join(VIEWS)})")
        with self._lock:
            if kind != self.kind:  # rebuild the new surface from the events still held
                self._sae.reset()
                self._ts.reset()
                for _, ev in self._recent:
                    (self._sae if kind == "sae" else self._ts).update(ev)
            self.kind = kind

    def planes(self) -> np.ndarray:
        """``(2, H, W)`` float32 in [0, 1]: OFF and ON planes of the current view."""
        from evstream.representations.functional import count_image

        with self._lock:
            w, h = self.sensor_size
            if self.kind == "frames":
                evs = [e for _, e in self._recent if len(e)]
                if not evs:
                    return np.zeros((2, h, w), np.float32)
                c = count_image(np.concatenate(evs), self.sensor_size).astype(np.float32)
                m = float(np.percentile(c[c > 0], 99)) if (c > 0).any() else 1.0
                return np.minimum(c / max(m, 1.0), 1.0)
            src = self._sae if self.kind == "sae" else self._ts
            return src.read(self.t).astype(np.float32)

    def image(self) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB: ON events red, OFF events blue on black."""
        p = self.planes()
        rgb = np.zeros((*p.shape[1:], 3), np.uint8)
        rgb[..., 0] = (p[1] * 255).astype(np.uint8)
        rgb[..., 1] = (np.minimum(p[0], p[1]) * 180).astype(np.uint8)
        rgb[..., 2] = (p[0] * 255).astype(np.uint8)
        return rgb


# --------------------------------------------------------------------------------------------------------
# recording a session: events to AEDAT4, one CSV row per model step
# --------------------------------------------------------------------------------------------------------


class Recorder:
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

    def write_step(self, row: dict, modules: list[str], classes: list[str]) -> None:
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
            self._csv.writerow([f"{row['wall_time']:.6f}", row["t_us"], row["step"], row["decision"],
                                row["decision_step"], row["pred"], f"{row['confidence']:.6f}",
                                f"{row['margin']:.6f}", row["total_spikes"], f"{row['sops']:.1f}",
                                f"{row['macs']:.1f}", f"{row['energy_uJ']:.6f}", f"{row['power_alpha']:.1f}",
                                row["mask_ratio"], row["mode"]]
                               + [f"{p:.6f}" for p in row["probs"]] + [f"{r:.6g}" for r in row["rates"]])
            self.rows += 1
            if self.rows % 50 == 0:
                self._csv_file.flush()

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._count = self._writer.count
                self._writer.close()
                self._writer = None
            if self._csv_file is not None:
                self._csv_file.close()
                self._csv_file = None


# --------------------------------------------------------------------------------------------------------
# the pipeline
# --------------------------------------------------------------------------------------------------------


class Pipeline:
    """See the module docstring. Opening the source and the model happens here, so bad input raises one
    :class:`~evstream.errors.EvstreamError` line at construction. ``model=None`` streams events only."""

    def __init__(self, source, model=None, *, mode: str | None = None, slice_ms: float = 10.0,
                 slice_events: int = 0, window_slices: int | None = None, steps_per_slice: int = 1,
                 max_steps: int = 32, min_steps: int = 1, early_exit: float | None = None,
                 mask_ratio: float = 0.0, speed: float | None = 1.0, loop: bool = False, view: str = "frames",
                 seed: int = 0, decay: float | None = 0.5, max_queue: int = 16, outbox: int = 4096, threads: int | None = 1,
                 on_status=None):
        from evstream.sources import open_source

        if view not in VIEWS:
            raise EvstreamError(f"unknown view {view!r} (known: {', '.join(VIEWS)})")
        self.spec = str(source)
        self._out: deque = deque(maxlen=outbox)
        self.outbox_overflow = 0
        self.mask_ratio, self.seed = mask_ratio, seed
        # the checkpoint first: a live stream starts flowing as soon as it is opened
        self.decay = decay
        lm = load_model(model, None, mode=mode, mask_ratio=mask_ratio, seed=seed, decay=decay) \
            if model is not None else None
        opts = {"speed": None, "loop": loop}  # recordings are paced here (pause, speed changes at run time)
        if self.spec.startswith("tcp://"):
            # retry at least every second so closing never waits long for a reconnect attempt
            opts = {"on_status": self._source_status, "max_retry_s": 1.0}
        elif self.spec == "camera" or self.spec.startswith("camera:"):
            opts = {}
        self.source = open_source(self.spec, **opts)
        if lm is not None:
            try:
                check_fit(lm.path, lm.rep, tuple(self.source.sensor_size))
            except CheckpointError:
                self.source.close()
                raise
        self.is_live = bool(getattr(self.source, "is_live", False))
        self.sensor_size = tuple(self.source.sensor_size)
        self.duration_us = int(getattr(self.source, "duration_us", 0) or 0)
        self.on_status = on_status
        self.threads = threads
        # settings (read by the threads at the next slice / step)
        self.slice_ms, self.slice_events = float(slice_ms), int(slice_events)
        self.window_slices = window_slices
        self.steps_per_slice, self.max_steps, self.min_steps = int(steps_per_slice), int(max_steps), int(min_steps)
        self.early_exit = early_exit
        self.mask_ratio = mask_ratio
        self.speed = speed if speed else None
        self.loop = loop
        self.seed = seed
        self.view = EventView(self.sensor_size if self.sensor_size != (0, 0) else (1, 1), view)
        self.lm: LoadedModel | None = None
        self._lock = threading.RLock()
        self._q: queue.Queue = queue.Queue(maxsize=max_queue)
        self.latency = LatencyStats()
        self.spikes = SpikeMonitor()
        self.energy = EnergyMonitor()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._paused = False
        self._steps_wanted = 0
        self._cmds: deque = deque()
        self._model_req = None
        self._threads: list[threading.Thread] = []
        self.recorder: Recorder | None = None
        self.state = "ready"
        self.error: str | None = None
        # counters
        self.slices_in = 0
        self.slices_done = 0
        self.dropped_slices = 0
        self.steps = 0
        self.decisions = 0
        self.position_us = 0
        self._t_first = None  # stream time of the first event (positions are relative to it)
        self._pos_next = 0
        self._headless = False
        self._reset_decision()
        if lm is not None:
            self.lm = lm
            self._attach(lm)

    # ---------------------------------------------------------------- model
    def _load(self, path, mode=None) -> LoadedModel:
        return load_model(path, self.sensor_size, mode=mode, mask_ratio=self.mask_ratio, seed=self.seed,
                          decay=self.decay)

    def _attach(self, lm: LoadedModel) -> None:
        self.energy = EnergyMonitor(lm.ann_uJ)
        self.spikes = SpikeMonitor()
        self._window: deque = deque(maxlen=self._window_slices(lm))
        self._reset_decision()
        self._emit({"kind": "model", **lm.info()})

    @property
    def modes(self) -> tuple:
        return self.lm.modes if self.lm else ()

    @property
    def classes(self) -> list:
        return self.lm.classes if self.lm else []

    # ---------------------------------------------------------------- controls (any thread)
    def pause(self) -> None:
        self._cmds.append(("pause",))
        self._wake.set()

    def play(self) -> None:
        self._cmds.append(("play",))
        self._wake.set()

    @property
    def paused(self) -> bool:
        return self._paused

    def step(self, n: int = 1) -> None:
        """While paused: process ``n`` more slices (recordings)."""
        self._cmds.append(("step", int(n)))
        self._wake.set()

    def seek(self, t_us: int) -> None:
        """Continue a recording from ``t_us`` after its first event (the SNN restarts)."""
        self._cmds.append(("seek", int(t_us)))
        self._wake.set()

    def set_speed(self, speed: float | None) -> None:
        self._cmds.append(("speed", speed if speed else None))
        self._wake.set()

    def set_loop(self, loop: bool) -> None:
        self.loop = bool(loop)
        if hasattr(self.source, "loop"):
            self.source.loop = self.loop

    def set_slicing(self, slice_ms: float | None = None, slice_events: int | None = None) -> None:
        """Time slices of ``slice_ms`` or, with ``slice_events > 0``, slices of that many events."""
        self._cmds.append(("slicing", slice_ms, slice_events))
        self._wake.set()

    def set_view(self, kind: str) -> None:
        self.view.set_kind(kind)

    def set(self, **settings) -> None:
        """Change ``steps_per_slice``, ``max_steps``, ``min_steps``, ``early_exit`` (None: off), ``mask_ratio``,
        ``window_slices``: applied at the next step."""
        allowed = {"steps_per_slice", "max_steps", "min_steps", "early_exit", "mask_ratio", "window_slices"}
        bad = set(settings) - allowed
        if bad:
            raise ValueError(f"unknown settings {sorted(bad)}")
        with self._lock:
            for k, v in settings.items():
                setattr(self, k, v)
            self._settings_changed = True

    def set_mode(self, mode: str) -> None:
        """Switch the conversion mode (one of ``self.modes``); the SNN restarts."""
        self.load_model(self.lm.path if self.lm else None, mode)

    def load_model(self, path, mode: str | None = None) -> None:
        """Swap the checkpoint without stopping the stream (loaded by the model thread; a checkpoint that
        does not fit leaves the current model running and posts an ``error`` record)."""
        if path is None:
            return
        with self._lock:
            self._model_req = (str(path), mode)
        if not self._threads:  # not running: load now, errors raise
            self._apply_model_request(raise_errors=True)

    def start_recording(self, base=None) -> Recorder:
        """Record from now on to ``<base>.aedat4`` and ``<base>.csv`` (default ``recordings/session-<time>``)."""
        if base is None:
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            base = Path("recordings") / f"session-{stamp}"
        sensor = self.sensor_size if self.sensor_size != (0, 0) else self.view.sensor_size
        rec = Recorder(base, sensor)
        with self._lock:
            old, self.recorder = self.recorder, rec
        if old is not None:
            old.close()
        self._emit({"kind": "status", "text": f"recording to {rec.events_path} and {rec.csv_path}"})
        return rec

    def stop_recording(self) -> Recorder | None:
        with self._lock:
            rec, self.recorder = self.recorder, None
        if rec is not None:
            rec.close()
            self._emit({"kind": "status", "text": f"recorded {rec.events} events to {rec.events_path}, "
                                                  f"{rec.rows} steps to {rec.csv_path}"})
        return rec

    # ---------------------------------------------------------------- outputs
    def _emit(self, rec: dict) -> None:
        if self._out is None:
            return
        if len(self._out) == self._out.maxlen:
            self.outbox_overflow += 1
        self._out.append(rec)

    def _source_status(self, text: str) -> None:
        """A live source's news: a drop or giving up is an ``error`` (the GUI shows a dialog), the rest status."""
        bad = "dropped" in text or "gave up" in text
        self._emit({"kind": "error" if bad else "status", "text": text})

    def drain(self, limit: int | None = None) -> list[dict]:
        """Records posted since the last call (oldest first): ``step``, ``decision``, ``status``, ``error``,
        ``model``, ``reset``, ``end``."""
        out = []
        while self._out and (limit is None or len(out) < limit):
            try:
                out.append(self._out.popleft())
            except IndexError:
                break
        return out

    def stats(self) -> dict:
        e = self.energy.per_second()
        return {"state": self.state, "paused": self._paused, "position_us": self.position_us,
                "duration_us": self.duration_us, "slices_in": self.slices_in, "slices_done": self.slices_done,
                "dropped_slices": self.dropped_slices, "queued": self._q.qsize(), "steps": self.steps,
                "decisions": self.decisions, "latency": self.latency.summary(), "energy": e,
                "ann_uJ": self.energy.ann_uJ, "recording": str(self.recorder.base) if self.recorder else None,
                "error": self.error}

    # ---------------------------------------------------------------- running
    def start(self) -> None:
        """Run in two daemon threads (reader, model) until the stream ends or :meth:`stop`."""
        if self._threads:
            return
        self._stop.clear()
        self.state = "playing" if not self._paused else "paused"
        self._threads = [threading.Thread(target=self._guard(self._reader_loop), name="evstream-reader", daemon=True),
                         threading.Thread(target=self._guard(self._model_loop), name="evstream-model", daemon=True)]
        for t in self._threads:
            t.start()

    def run(self, on_step=None, on_decision=None, max_decisions: int | None = None,
            duration_s: float | None = None) -> dict:
        """Headless: the reader in a thread, the model loop here, until the stream ends, ``max_decisions``
        decisions or ``duration_s`` seconds; callbacks get each step / decision record. Returns ``stats()``."""
        self._out = None  # nobody drains in headless mode
        self._headless = True
        self._stop.clear()
        self.state = "playing"
        t_end = None if duration_s is None else time.monotonic() + duration_s
        reader = threading.Thread(target=self._guard(self._reader_loop), name="evstream-reader", daemon=True)
        self._threads = [reader]
        reader.start()
        try:
            self._model_loop(on_step=on_step, on_decision=on_decision, max_decisions=max_decisions, t_end=t_end)
        finally:
            self.stop()
        if self.error:
            raise EvstreamError(self.error)
        return self.stats()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop both threads, close the recording and the source. Safe to call twice."""
        self._stop.set()
        self._wake.set()
        if self.is_live:
            self.source.close()  # unblocks a reader waiting for a live stream
        me = threading.current_thread()
        for t in self._threads:
            if t is not me:
                t.join(timeout)
        self._threads = []
        self.stop_recording()
        self.source.close()
        if self.state not in ("ended", "error"):
            self.state = "stopped"

    def _guard(self, fn):
        def run():
            try:
                fn()
            except EvstreamError as exc:
                self._fail(str(exc))
            except Exception as exc:  # a bug must not kill the app silently: report it in one line
                self._fail(f"{type(exc).__name__}: {exc}")
        return run

    def _fail(self, text: str) -> None:
        self.error = text
        self.state = "error"
        self._emit({"kind": "error", "text": text})
        self._put(_END, block=False)

    # ---------------------------------------------------------------- reader thread
    def _make_slicer(self):
        if self.slice_events > 0:
            return CountSlicer(self.slice_events)
        return TimeSlicer(max(1, int(round(self.slice_ms * 1000))))

    def _put(self, item, block: bool) -> bool:
        """Queue a slice. On a full queue: wait (unpaced replay: ``block``) or drop the oldest queued slice
        and count it (paced and live streams). Markers (reset, end) are never dropped."""
        while block and not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        if block:  # stopping
            return False
        with self._q.mutex:
            dq = self._q.queue
            if isinstance(item, EventSlice) and len(dq) >= self._q.maxsize:
                for i, old in enumerate(dq):
                    if isinstance(old, EventSlice):
                        del dq[i]
                        self.dropped_slices += 1
                        break
            dq.append(item)
            self._q.not_empty.notify()
        return True

    def _flush_queue(self) -> None:
        while True:
            try:
                self._q.get_nowait()
            except queue.Empty:
                return

    def _reader_loop(self) -> None:
        src = self.source
        slicer = self._make_slicer()
        it = None
        anchor = None  # (wall time, stream time) for pacing
        last_t = None
        ended = False
        pending: deque = deque()  # slices cut from the last chunk, not yet released to the model
        pending_t = 0  # stream time of that chunk's last event: when its slices are due
        while not self._stop.is_set():
            # commands
            while self._cmds:
                cmd = self._cmds.popleft()
                if cmd[0] == "pause":
                    self._paused = True
                    self.state = "paused"
                elif cmd[0] == "play":
                    self._paused = False
                    self.state = "playing"
                    anchor = None
                    if ended and not self.is_live:  # play again from the start
                        cmd = ("seek", 0)
                elif cmd[0] == "step":
                    self._steps_wanted += cmd[1]
                    if ended and not self.is_live:
                        cmd = ("seek", 0)
                elif cmd[0] == "speed":
                    self.speed, anchor = cmd[1], None
                elif cmd[0] == "slicing":
                    if cmd[1] is not None:
                        self.slice_ms = float(cmd[1])
                    if cmd[2] is not None:
                        self.slice_events = int(cmd[2])
                    slicer = self._make_slicer()
                    pending.clear()
                    self._put(_Reset("slicing"), block=False)
                if cmd[0] == "seek" and hasattr(src, "seek"):
                    src.seek(cmd[1])
                    if ended:
                        ended, it = False, None
                        self.state = "paused" if self._paused else "playing"
                    slicer, anchor, last_t = self._make_slicer(), None, None
                    pending.clear()
                    self._flush_queue()
                    self.view.reset()
                    self._put(_Reset("seek"), block=False)
                    self.position_us = min(max(0, cmd[1]), self.duration_us)
            held = self._paused and not self._steps_wanted and not self.is_live
            if pending:
                if held:
                    self._wake.wait(0.05)
                    self._wake.clear()
                    continue
                if self.speed and not self.is_live and not self._paused:  # pacing: release when due
                    if anchor is None:
                        anchor = (time.perf_counter(), pending_t)
                    delay = anchor[0] + (pending_t - anchor[1]) * 1e-6 / self.speed - time.perf_counter()
                    if delay > 0:
                        self._wake.wait(min(delay, 0.05))
                        self._wake.clear()
                        continue
                self._release(pending)
                continue
            if ended or held:
                self._wake.wait(0.05)
                self._wake.clear()
                continue
            if it is None:
                it = iter(src)
            t_wait = time.perf_counter()
            try:
                chunk = next(it)
            except StopIteration:
                ended = True
                pending.extend(slicer.flush())
                self._release(pending)
                self._put(_END, block=False)
                self.state = "ended"
                if self.is_live and not self._stop.is_set():  # a camera unplugged, a stream given up
                    self._emit({"kind": "error", "text": f"{self.spec}: the live stream ended"})
                else:
                    self._emit({"kind": "status", "text": f"end of {self.spec}"})
                continue
            t0 = time.perf_counter()
            ev = chunk.events
            if not len(ev):
                continue
            first_t, end_t = int(ev["t"][0]), int(ev["t"][-1])
            if last_t is not None and first_t < last_t:  # the recording looped
                slicer = self._make_slicer()
                self.view.reset()
                self._put(_Reset("loop"), block=False)
                anchor = None
            last_t = end_t
            if self._t_first is None:  # a recording knows its position; a live stream starts now
                self._t_first = end_t - int(getattr(src, "position_us", 0) or 0) if not self.is_live else first_t
            rec = self.recorder
            if rec is not None:
                rec.write_events(ev)
            if anchor is None and self.speed and not self.is_live:
                anchor = (time.perf_counter(), first_t)
            pending.extend(slicer.push(ev))
            pending_t = end_t
            self._pos_next = int(src.position_us) if hasattr(src, "position_us") else end_t - self._t_first
            if not pending:
                self.position_us = self._pos_next
            # a recording's next() is decoding (pacing is separate); a live stream's is waiting for data
            self.latency.add("read", time.perf_counter() - t0 + (0 if self.is_live else t0 - t_wait))

    def _release(self, pending: deque) -> None:
        """Hand cut slices to the model thread (one at a time while single-stepping a paused recording)."""
        stepping = self._paused and not self.is_live
        while pending and not self._stop.is_set():
            if stepping and not self._steps_wanted:
                break
            sl = pending.popleft()
            self.view.update(sl.events, sl.t_end)
            self.position_us = max(0, min(int(sl.t_end - (self._t_first or 0)), self._pos_next))
            if self._paused and self.is_live:
                continue  # a live stream keeps flowing; while paused its slices are shown, not classified
            sl.t_ready = time.perf_counter()
            self.slices_in += 1
            self._put(sl, block=self.speed is None and not self.is_live)
            if stepping:
                self._steps_wanted -= 1
        if not pending:
            self.position_us = self._pos_next

    # ---------------------------------------------------------------- model thread
    def _reset_decision(self) -> None:
        self._dec_steps = 0
        self._dec_energy = 0.0
        self._dec_spikes = 0
        self._dec_t0 = None

    def _apply_model_request(self, raise_errors=False) -> None:
        with self._lock:
            req, self._model_req = self._model_req, None
        if req is None:
            return
        path, mode = req
        try:
            lm = self._load(path, mode)
        except EvstreamError as exc:
            if raise_errors:
                raise
            self._emit({"kind": "error", "text": str(exc)})
            return
        with self._lock:
            self.lm = lm
            self._attach(lm)
        self._emit({"kind": "status", "text": f"model {Path(path).name} ({lm.mode}) loaded"})

    def _window_slices(self, lm) -> int:
        """Slices in the model's input window: as set; else as many time slices as span one training sample
        (the checkpoint's ``window_us``), so the live input looks like what the model learned from; else the
        checkpoint's ``n_frames``."""
        if self.window_slices:
            return int(self.window_slices)
        if lm.window_us and not self.slice_events and self.slice_ms > 0:
            return max(1, round(lm.window_us / (self.slice_ms * 1000)))
        return lm.n_window

    def _apply_settings(self) -> None:
        lm = self.lm
        if lm is None:
            return
        n = self._window_slices(lm)  # the slice length may have changed on the reader side
        if self._window.maxlen != n:
            self._window = deque(self._window, maxlen=n)
        with self._lock:
            if not getattr(self, "_settings_changed", False):
                return
            self._settings_changed = False
            lm.runner.set_mask_ratio(self.mask_ratio)

    def _model_loop(self, on_step=None, on_decision=None, max_decisions=None, t_end=None) -> None:
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        if self.lm is not None and not hasattr(self, "_window"):
            self._attach(self.lm)
        if not hasattr(self, "_window"):
            self._window = deque(maxlen=1)
        decisions_at_start = self.decisions
        while not self._stop.is_set():
            if t_end is not None and time.monotonic() > t_end:
                break
            if max_decisions is not None and self.decisions - decisions_at_start >= max_decisions:
                break
            if self._model_req is not None:
                self._apply_model_request()
            try:
                item = self._q.get(timeout=0.05)
            except queue.Empty:
                continue
            if item is _END:
                if self._dec_steps and self.lm is not None:
                    self._decide(self._last_out, "end", self._last_t, on_decision)
                self._emit({"kind": "end"})
                if self._headless:
                    break  # the stream is over
                continue
            if isinstance(item, _Reset):
                self._window.clear()
                if self.lm is not None:
                    self.lm.runner.reset()
                self._reset_decision()
                self.energy.reset()
                self._emit({"kind": "reset", "why": item.why})
                continue
            self._process(item, on_step, on_decision)

    def _process(self, sl: EventSlice, on_step, on_decision) -> None:
        import torch

        t_start = time.perf_counter()
        self.latency.add("queue", t_start - getattr(sl, "t_ready", t_start))
        lm = self.lm
        self.slices_done += 1
        if lm is None:
            return
        self._apply_settings()
        self._window.append(sl)
        w = self._window
        evs = [s.events for s in w if len(s.events)]
        events = np.concatenate(evs) if evs else sl.events[:0]
        rw, rh = lm.rep.sensor_size
        if len(events) and (int(events["x"].max()) >= rw or int(events["y"].max()) >= rh):
            events = events[(events["x"] < rw) & (events["y"] < rh)]  # a stream that did not say its size
        x = torch.from_numpy(lm.rep(events, w[0].t_start, w[-1].t_end)[None])
        t_rep = time.perf_counter()
        self.latency.add("represent", t_rep - t_start)
        t_rel = int(sl.t_end - (self._t_first or 0))
        for _ in range(max(1, int(self.steps_per_slice))):
            t0 = time.perf_counter()
            out = lm.runner.step(x)
            self.latency.add("step", time.perf_counter() - t0)
            self.steps += 1
            if not lm.neurons:
                lm.neurons = neuron_counts(lm.runner)
            rates = self.spikes.update(out.spikes, lm.neurons)
            self.energy.add(t_rel, out.energy_uJ, out.total_spikes)
            self._dec_steps += 1
            self._dec_energy += out.energy_uJ
            self._dec_spikes += out.total_spikes
            self._last_out, self._last_t = out, t_rel
            probs = torch.softmax(out.mean[0], -1).numpy()
            conf = float(out.confidence[0])
            row = {"kind": "step", "wall_time": time.time(), "t_us": t_rel, "step": self.steps,
                   "decision": self.decisions, "decision_step": self._dec_steps, "pred": int(probs.argmax()),
                   "confidence": conf, "margin": float(out.margin[0]), "probs": probs,
                   "spikes": dict(out.spikes), "rates": rates, "total_spikes": int(out.total_spikes),
                   "sops": float(out.sops), "macs": float(out.macs), "energy_uJ": float(out.energy_uJ),
                   "power_alpha": float(out.power_alpha), "mask_ratio": self.mask_ratio, "mode": lm.mode}
            rec = self.recorder
            if rec is not None:
                rec.write_step(row, self.spikes.modules, lm.classes)
            self._emit(row)
            if on_step is not None:
                on_step(row)
            reason = None
            if self.early_exit is not None and conf >= self.early_exit and self._dec_steps >= self.min_steps:
                reason = "confident"
            elif self._dec_steps >= self.max_steps:
                reason = "max_steps"
            if reason:
                self._decide(out, reason, t_rel, on_decision, t_slice_ready=getattr(sl, "t_ready", None))
                if reason == "confident":
                    break
        now = time.perf_counter()
        self.latency.add("slice", now - t_start)
        if getattr(sl, "t_ready", None) is not None:
            self.latency.add("total", now - sl.t_ready)

    def _decide(self, out, reason, t_rel, on_decision, t_slice_ready=None) -> None:
        import torch

        lm = self.lm
        probs = torch.softmax(out.mean[0], -1)
        k = min(3, len(probs))
        top = probs.topk(k)
        names = lm.classes
        idx = int(top.indices[0])
        rec = {"kind": "decision", "decision": self.decisions, "t_us": t_rel,
               "class": names[idx] if idx < len(names) else str(idx), "index": idx,
               "confidence": float(top.values[0]), "margin": float(out.margin[0]), "timesteps": self._dec_steps,
               "reason": reason, "energy_uJ": self._dec_energy, "ann_energy_uJ": lm.ann_uJ,
               "spikes": int(self._dec_spikes),
               "top": [[names[int(i)] if int(i) < len(names) else str(int(i)), float(p)]
                       for p, i in zip(top.values, top.indices)],
               "mask_ratio": self.mask_ratio, "mode": lm.mode, "dropped_slices": self.dropped_slices}
        if t_slice_ready is not None:
            rec["latency_ms"] = (time.perf_counter() - t_slice_ready) * 1e3
        self.decisions += 1
        lm.runner.reset_mean()
        self._reset_decision()
        self._emit(rec)
        if on_decision is not None:
            on_decision(rec)


def decision_json(rec: dict) -> str:
    """One JSON line for a decision record (what ``evstream run --json-lines`` prints)."""
    return json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in rec.items() if k != "kind"})
