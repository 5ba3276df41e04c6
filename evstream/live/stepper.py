"""The model thread: takes slices, builds the model input from the most recent window (the last
``window_slices`` slices; default as many as span one training sample, the checkpoint's ``window_us``, as
``rep(events, t_start, t_end)``: docs/model.md "live streams"), runs ``steps_per_slice`` SNN timesteps on
it, watches spikes, energy and latency, posts a :class:`StepRecord` per step and asks the decision
policy (:mod:`evstream.live.policy`) after each step whether to commit to a :class:`DecisionRecord`.

Membranes carry over from slice to slice; after a decision the runner's running output is cleared
(``reset_mean()``); a ``Reset`` marker (seek, loop, new slicing) restarts the SNN (``reset()``).
Unpaced, decisions are held back and computed several at a time (:mod:`evstream.live.batch`), then recorded
and announced in order.
"""

from __future__ import annotations

import os
import queue
import time
from collections import deque
from pathlib import Path

import numpy as np

from evstream.errors import EvstreamError
from evstream.live.batch import DecisionStack, Held, decide_held
from evstream.live.degrade import LoadGovernor
from evstream.live.policy import DecisionSmoother
from evstream.live.queue import END, Reset
from evstream.live.records import DecisionRecord, EndRecord, ErrorRecord, ResetRecord, StatusRecord, StepRecord
from evstream.monitors import EnergyMonitor, SpikeMonitor, neuron_counts
from evstream.slicing import EventSlice


def process_age_s() -> float | None:
    """Seconds since the operating system started this process (interpreter start and imports included: what a
    user waits for after typing the command); Linux (``/proc/self/stat``), else None."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        return time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def window_events(window, sensor_size) -> np.ndarray:
    """The events of a window of slices, those outside ``sensor_size`` (w, h) dropped (a stream that did
    not say its size)."""
    evs = [s.events for s in window if len(s.events)]
    events = np.concatenate(evs) if evs else window[-1].events[:0]
    w, h = sensor_size
    if len(events) and (int(events["x"].max()) >= w or int(events["y"].max()) >= h):
        events = events[(events["x"] < w) & (events["y"] < h)]
    return events


def class_namer(names):
    """index -> the class's name (its number where the checkpoint names fewer classes)."""
    return lambda i: names[i] if i < len(names) else str(i)


def window_slices(cfg, lm) -> int:
    """Slices in the model's input window: as set; else as many time slices as span one training sample
    (the checkpoint's ``window_us``), so the live input looks like what the model learned from; else the
    checkpoint's ``n_frames``."""
    if cfg.state == "reset":  # pruned by time (``_window_for``); the bound only caps memory
        return 100_000
    if cfg.window_slices:
        return int(cfg.window_slices)
    if lm.window_us and not cfg.slice_events and cfg.slice_ms > 0:
        return max(1, round(lm.window_us / (cfg.slice_ms * 1000)))
    return lm.n_window


def batched_steps(stepper, lm, x, t_rel, on_step):
    """A runner with ``steps(x, n)`` (the compiled step): the decision's timesteps in one call, each recorded
    with its share of the call's time; the policy's answer after the last (None: step on one by one)."""
    batch = getattr(lm.runner, "steps", None)
    if batch is None or stepper.policy.early_exit is not None:
        return None
    t0 = time.perf_counter()
    outs = batch(x, stepper.policy.max_steps)
    each = (time.perf_counter() - t0) / max(1, len(outs))
    decision = None
    for out in outs:
        decision = stepper._record(lm, out, t_rel, on_step, each)
    return decision


class ModelStepper:
    """See the module docstring. ``config()`` gives the current :class:`LiveConfig`; ``load(path, mode)`` a
    :class:`~evstream.live.model.LoadedModel` for this source; ``t_first()`` the stream time positions are
    relative to; ``dropped()`` the slices dropped so far; ``recorder()``; ``emit(record)``."""

    def __init__(self, slices, *, config, load, t_first, dropped, recorder, emit, latency, stop, lock):
        self.slices, self.config, self._load, self.t_first = slices, config, load, t_first
        self.dropped, self.recorder, self.emit = dropped, recorder, emit
        self.latency, self._stop, self._lock = latency, stop, lock
        self.lm, self.spikes, self.energy, self.window = None, SpikeMonitor(), EnergyMonitor(), deque(maxlen=1)
        self.policy = config().make_policy()
        self.smoother = DecisionSmoother.from_config(config())
        self._next_t = self._decided_t = None  # stream time (µs) of the next decision (state "reset"), of the last
        self.undecided, self._cfg, self._request, self.headless = 0, config(), None, False
        self.slices_done = self.steps = self.decisions = 0
        self.first_decision_s = None  # this process's age at its first decision (process_age_s)
        # decision times passed over (a later one already queued); the LoadGovernor; decision times seen; unpaced,
        # the decisions held back to be computed together (evstream.live.batch)
        self.skipped, self.governor, self._slot, self.stack = 0, None, 0, DecisionStack()
        self._reset_tally()

    # ---------------------------------------------------------------- the model
    def attach(self, lm) -> None:
        self.lm = lm
        self.energy = EnergyMonitor(lm.ann_uJ)
        self.spikes = SpikeMonitor()
        self.window = deque(maxlen=self.window_slices(lm))
        cfg = self.config()
        self.slices.resize(cfg.queue_slices(lm))  # two decision periods at least: evstream.live.config
        steps = cfg.steps_for(lm)  # a compiled step runs whole chunks of steps: it degrades by deciding less often
        least = steps if getattr(lm.runner, "chunk", 1) > 1 else cfg.min_steps
        self.governor = LoadGovernor(steps, min_steps=least) if cfg.degrade else None
        self.smoother.reset()
        self._next_t = None
        self._reset_tally()
        self.emit(lm.info())

    def request(self, path, mode) -> None:
        """Load ``path`` in this thread at the next slice (now, raising, when ``now``)."""
        with self._lock:
            self._request = (str(path), mode)

    def apply_request(self, raise_errors=False) -> None:
        with self._lock:
            req, self._request = self._request, None
        if req is None:
            return
        path, mode = req
        decide_held(self)  # the old model's
        try:
            lm = self._load(path, mode)
        except EvstreamError as exc:
            if raise_errors:
                raise
            self.emit(ErrorRecord(str(exc)))
            return
        with self._lock:
            self.attach(lm)
        self.emit(StatusRecord(f"model {Path(path).name} ({lm.mode}) loaded"))

    def window_slices(self, lm) -> int:
        return window_slices(self.config(), lm)

    def _sync_settings(self, cfg) -> None:
        """Settings changed since the last slice: the window length, the mask ratio, the policy's rule."""
        n = self.window_slices(self.lm)  # the slice length may have changed on the reader side
        if self.window.maxlen != n:
            self.window = deque(self.window, maxlen=n)
        if cfg is not self._cfg:
            self.slices.resize(cfg.queue_slices(self.lm))  # the slicing or the decision period may have changed
            if cfg.mask_ratio != self._cfg.mask_ratio:
                self.lm.runner.set_mask_ratio(cfg.mask_ratio)
            self.policy.apply(cfg)
            if cfg.state == "reset":
                self.policy.max_steps = cfg.steps_for(self.lm)
            if (cfg.smooth, cfg.switch_margin, cfg.min_confidence) != (self._cfg.smooth, self._cfg.switch_margin,
                                                                      self._cfg.min_confidence):
                self.smoother = DecisionSmoother.from_config(cfg)
            if cfg.state != self._cfg.state:
                self.lm.runner.reset()
                self.smoother.reset()
                self._next_t = None
                self._reset_tally()
            self._cfg = cfg

    def _reset_tally(self) -> None:
        self.policy.reset()
        self._energy, self._spikes, self._last_out, self._last_t = 0.0, 0, None, None

    # ---------------------------------------------------------------- the loop
    def run(self, on_step=None, on_decision=None, max_decisions=None, t_end=None) -> None:
        import torch

        if self.config().threads:
            torch.set_num_threads(self.config().threads)
        decisions_at_start = self.decisions
        self.stack.limit = None if max_decisions is None else decisions_at_start + max_decisions
        while not self._stop.is_set():
            if t_end is not None and time.monotonic() > t_end:
                break
            if max_decisions is not None and self.decisions - decisions_at_start >= max_decisions:
                break
            if self._request is not None:
                self.apply_request()
            try:
                item = self.slices.get(timeout=0.05)
            except queue.Empty:
                decide_held(self)  # nothing more for now: what is held is due
                continue
            if not isinstance(item, EventSlice):
                decide_held(self)  # the end or a jump: every decision before it first
            if item is END:
                if self.lm is not None and self.config().state == "reset":
                    self.final_window(on_step, on_decision)
                    decide_held(self)
                elif self.policy.steps and self.lm is not None:
                    self.decide(self._last_out, "end", self._last_t, on_decision)
                self.emit(EndRecord())
                if self.headless:
                    break  # the stream is over
            elif isinstance(item, Reset):
                self.window.clear()
                if self.lm is not None:
                    self.lm.runner.reset()
                self._reset_tally()
                self.smoother.reset()
                self._next_t = self._decided_t = None
                self.energy.reset()
                self.emit(ResetRecord(item.why))
            else:
                self.process(item, on_step, on_decision)
        decide_held(self)

    def process(self, sl: EventSlice, on_step=None, on_decision=None) -> None:
        t_start = time.perf_counter()
        t_ready = getattr(sl, "t_ready", None)
        self.latency.add("queue", t_start - (t_ready or t_start))
        lm = self.lm
        self.slices_done += 1
        if lm is None:
            return
        cfg = self.config()
        if cfg is not self._cfg:
            decide_held(self)  # the decisions held so far under the settings they were made with
        self._sync_settings(cfg)
        self.window.append(sl)
        if cfg.state == "reset":
            self._windowed(lm, cfg, sl, t_start, t_ready, on_step, on_decision)
        else:
            self._carried(lm, cfg, sl, t_start, t_ready, on_step, on_decision)
        now = time.perf_counter()
        self.latency.add("slice", now - t_start)
        if t_ready is not None:
            self.latency.add("total", now - t_ready)

    def _input(self, lm, t0_us: int, t1_us: int):
        import torch

        events = window_events(self.window, lm.rep.sensor_size)
        return torch.from_numpy(lm.rep(events, t0_us, t1_us)[None])

    def _windowed(self, lm, cfg, sl, t_start, t_ready, on_step, on_decision) -> None:
        """State "reset": a decision every ``decide_every_ms`` on the last ``window_ms`` of events, from a
        reset SNN (docs/model.md "Live streams")."""
        span = cfg.window_us_for(lm)
        while len(self.window) > 1 and self.window[0].t_end <= sl.t_end - span:
            self.window.popleft()
        t_rel = int(sl.t_end - (self.t_first() or 0))
        every = cfg.every_us_for(lm)
        if self._next_t is None:
            self._next_t = (t_rel // every + 1) * every if t_rel >= every else every
        if t_rel < self._next_t:
            return
        self._next_t = (t_rel // every + 1) * every
        backlog_us = self.slices.qsize() * max(1, int(sl.t_end - sl.t_start))
        if cfg.speed and backlog_us >= every:  # paced: a later decision time is already queued, decide there
            self.skipped += 1
            return
        self._slot += 1
        level = self.governor.level if self.governor is not None else None
        if level is not None and self._slot % level.every:
            return
        self._decide_window(lm, cfg, sl.t_end, t_rel, span, t_start, t_ready, on_step, on_decision)
        if self.governor is not None and cfg.speed:  # wall time: stream time / speed
            self.governor.observe(time.perf_counter() - t_start, every * level.every / 1e6 / cfg.speed,
                                  backlog_us / 1e6 / cfg.speed)

    def _decide_window(self, lm, cfg, t_end, t_rel, span, t_start, t_ready, on_step, on_decision,
                       reason=None) -> None:
        x = self._input(lm, int(t_end) - span, int(t_end))
        self.latency.add("represent", time.perf_counter() - t_start)
        lm.runner.reset()
        self._reset_tally()
        level = self.governor.level if self.governor is not None else None
        self.policy.max_steps = steps = level.steps if level is not None else cfg.steps_for(lm)
        lm.runner.set_burn_in(int(cfg.burn_in_for(lm) * steps))  # the answer leaves out the first steps
        size = self.stack.size_for(cfg, lm.runner, steps, self.policy)
        if size > 1:  # unpaced: held back, computed with the next ones (evstream.live.batch)
            held = Held(x, steps, t_rel, reason, t_ready, min(span, t_rel), level, on_step, on_decision)
            if self.stack.add(held, size, self.decisions) or not self.slices.qsize():
                decide_held(self)
            return
        decision = batched_steps(self, lm, x, t_rel, on_step)
        while decision is None:
            decision = self._step(lm, x, t_rel, on_step)
        self.decide(self._last_out, reason or decision.reason, t_rel, on_decision, t_slice_ready=t_ready,
                    window_us=min(span, t_rel), level=level)  # the stream's first event bounds what it summarises

    def final_window(self, on_step=None, on_decision=None) -> None:
        """The stream ended: one last decision on its last window, unless one was just made there."""
        if not self.window:
            return
        last = self.window[-1]
        t_rel = int(last.t_end - (self.t_first() or 0))
        if self._decided_t is not None and t_rel <= self._decided_t:
            return
        cfg = self.config()
        span = cfg.window_us_for(self.lm)
        self._decide_window(self.lm, cfg, last.t_end, t_rel, span, time.perf_counter(), None, on_step, on_decision,
                            reason="end")

    def _carried(self, lm, cfg, sl, t_start, t_ready, on_step, on_decision) -> None:
        """State "carry": membranes carry over; ``steps_per_slice`` steps on the last ``window_slices``."""
        w = self.window
        x = self._input(lm, w[0].t_start, w[-1].t_end)
        self.latency.add("represent", time.perf_counter() - t_start)
        t_rel = int(sl.t_end - (self.t_first() or 0))
        for _ in range(max(1, int(cfg.steps_per_slice))):
            decision = self._step(lm, x, t_rel, on_step)
            if decision is not None:
                self.decide(self._last_out, decision.reason, t_rel, on_decision, t_slice_ready=t_ready,
                            window_us=int(w[-1].t_end - w[0].t_start))
                if decision.skip_rest:
                    break

    def _step(self, lm, x, t_rel, on_step):
        """One SNN timestep: monitors, the step record (recorded, posted, ``on_step``), the policy's answer."""
        t0 = time.perf_counter()
        out = lm.runner.step(x)
        return self._record(lm, out, t_rel, on_step, time.perf_counter() - t0)

    def _record(self, lm, out, t_rel, on_step, seconds):
        """A step's monitors, record and the policy's answer; ``seconds`` it took (its share of a batch)."""
        import torch

        self.latency.add("step", seconds)
        self.steps += 1
        if not lm.neurons:
            lm.neurons = neuron_counts(lm.runner)
        rates = self.spikes.update(out.spikes, lm.neurons)
        self.energy.add(t_rel, out.energy_uJ, out.total_spikes)
        cfg = self.config()
        if cfg is not self._cfg:
            self._sync_settings(cfg)  # early exit / step limits / mask apply at the next step
        cfg = self._cfg
        decision = self.policy.observe(out)
        self._energy += out.energy_uJ
        self._spikes += out.total_spikes
        self._last_out, self._last_t = out, t_rel
        probs = torch.softmax(out.mean[0], -1).numpy()
        row = StepRecord(time.time(), t_rel, self.steps, self.decisions, self.policy.steps, int(probs.argmax()),
                         float(out.confidence[0]), float(out.margin[0]), probs, dict(out.spikes), rates,
                         int(out.total_spikes), float(out.sops), float(out.macs), float(out.energy_uJ),
                         float(out.power_alpha), cfg.mask_ratio, lm.mode)
        rec = self.recorder()
        if rec is not None:
            rec.write_step(row, self.spikes.modules, lm.classes)
        self.emit(row)
        if on_step is not None:
            on_step(row)
        return decision

    def decide(self, out, reason, t_rel, on_decision, t_slice_ready=None, window_us=0, level=None) -> None:
        import torch

        lm = self.lm
        probs = torch.softmax(out.mean[0], -1)
        top = probs.topk(min(3, len(probs)))
        name = class_namer(lm.classes)
        if self.config().state == "reset":  # the announced class: smoothed over decisions, with hysteresis
            idx, conf = self.smoother.update(probs.numpy(), t_rel)
            probs = torch.from_numpy(self.smoother.mean.astype("float32"))
            top = probs.topk(min(3, len(probs)))
        else:
            idx, conf = int(top.indices[0]), float(top.values[0])
        self.undecided += idx is None
        latency = None if t_slice_ready is None else (time.perf_counter() - t_slice_ready) * 1e3
        rec = DecisionRecord(self.decisions, t_rel, int(window_us), None if idx is None else name(idx), idx, conf,
                             float(out.margin[0]), self.policy.steps, reason, self._energy, lm.ann_uJ,
                             int(self._spikes), [[name(int(i)), float(p)] for p, i in zip(top.values, top.indices)],
                             self.config().mask_ratio, lm.mode, self.dropped(), latency,
                             level.to_dict() if level is not None and level.degraded else None)
        self.decisions += 1
        self.first_decision_s = process_age_s() if self.decisions == 1 else self.first_decision_s
        self._decided_t = t_rel
        lm.runner.reset_mean()
        self._reset_tally()
        self.emit(rec)
        if on_decision is not None:
            on_decision(rec)
