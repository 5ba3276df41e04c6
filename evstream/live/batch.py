"""Unpaced replay decides several windows in one call (issue 16: "unpaced ``evstream run`` ≥ 5x real time").

A live decision is a reset SNN run for T steps on one window; decisions are independent of each other. On a
paced stream each is computed as soon as its window is complete (its latency is the point). Unpaced
(``evstream run --speed 0``, ``evstream eval-stream``, the GUI at "max") nothing waits for an answer, so the model
thread holds decisions back — their inputs made, their order kept — and computes up to
``LiveConfig.unpaced_batch`` of them per call (:meth:`evstream.snn.compiled.CompiledRunner.stacked`: one
call of the pure step whose layers' matrix products and convolutions serve them all, each decision's neurons
still starting from their reset values), ``LiveConfig.unpaced_threads`` such calls side by side (a twin runner
per extra thread; the numba kernels and torch's operations run outside the GIL). Each decision's steps,
monitors, records and answer are then made in order, in the model thread, as if it had been computed alone:
the same spikes, counts and outputs (``tests/test_compiled.py``, ``tests/test_pipeline.py``).

The held-back decisions are computed when there are ``size`` of them, and before anything that depends on
them: the stream's end, a seek or loop, new settings or a new model, an empty queue (a paused or slower
source), a decision limit, and the model thread's stop.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

# timesteps of one stacked call at most (its temporaries grow with them): mode mst's 64-step decisions go one per
# call (its large matrix products gain little from more), the calls still side by side
MAX_STEPS = 64


@dataclass
class Held:
    """A decision whose input is made and whose steps are not: what ``ModelStepper.decide`` needs afterwards."""

    x: object  # the input, (1, C, H, W)
    steps: int
    t_rel: int
    reason: str | None
    t_ready: float | None
    window_us: int
    level: object
    on_step: object
    on_decision: object


class DecisionStack:
    """The decisions held back; ``size_for`` says how many may be (1: none, decide at once)."""

    def __init__(self):
        self.held: list[Held] = []
        self.limit = None  # decisions the model thread may still make (``run``'s ``max_decisions``), or None

    @staticmethod
    def size_for(cfg, runner, steps: int, policy) -> int:
        """Decisions to hold for this stream, settings and runner: ``cfg.unpaced_batch`` per call (at most
        ``MAX_STEPS`` timesteps: one of mode mst's 64 steps) times ``cfg.unpaced_threads`` (at most the usable
        cores) when unpaced, with a fixed number of steps (no early exit) and a runner that can stack them;
        else 1."""
        n = max(1, min(int(cfg.unpaced_batch), MAX_STEPS // max(1, int(steps))))
        size = n * min(max(1, int(cfg.unpaced_threads)), usable_cores())
        if cfg.speed is not None or size < 2 or policy.early_exit is not None:
            return 1
        can = getattr(runner, "can_stack", None)
        return size if can is not None and can(steps) else 1

    def add(self, held: Held, size: int, decided: int) -> bool:
        """Hold one more; True when they should be computed now (``size`` of them, or the decision limit)."""
        self.held.append(held)
        return len(self.held) >= size or (self.limit is not None and decided + len(self.held) >= self.limit)


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the system says, e.g. under ``taskset``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


_pool = None  # the threads beside the model thread that compute held decisions (made at first use)


def compute(runner, xs, steps: int, threads: int) -> list:
    """The decisions on ``xs`` (S inputs) as :meth:`CompiledRunner.decisions` gives them, their arithmetic split
    into up to ``threads`` stacked calls computed side by side (the first in this thread, the others by the
    runner's twins in a pool), their results then made in order here."""
    global _pool
    parts = min(int(threads), usable_cores(), xs.shape[0])
    if parts < 2:
        return runner.decisions(xs, steps)
    runner.reset()
    if _pool is None:
        from concurrent.futures import ThreadPoolExecutor

        _pool = ThreadPoolExecutor(max_workers=7, thread_name_prefix="evstream-stack")  # threads made as needed
    chunks = xs.tensor_split(parts)
    runners = [runner] + [runner.twin(k) for k in range(1, parts)]  # one runner per thread
    futures = [_pool.submit(r.stacked, c, steps) for r, c in zip(runners[1:], chunks[1:])]
    done = [runner.stacked(chunks[0], steps)] + [f.result() for f in futures]
    return [d for r, c in zip(runners, done) for d in r.stacked_results(c)]


def decide_held(stepper) -> None:
    """Compute every held decision of ``stepper`` (a ``ModelStepper``; :func:`compute`), then record and announce
    each in order (its steps' share of the computing time as their step time)."""
    import torch

    held, stepper.stack.held = stepper.stack.held, []
    if not held:
        return
    lm, steps = stepper.lm, held[0].steps
    t0 = time.perf_counter()
    runs = compute(lm.runner, torch.cat([h.x for h in held]), steps, stepper.config().unpaced_threads)
    each = (time.perf_counter() - t0) / (len(held) * steps)
    for h, outs in zip(held, runs):
        stepper._reset_tally()
        stepper.policy.max_steps = steps
        decision = None
        for out in outs:
            decision = stepper._record(lm, out, h.t_rel, h.on_step, each)
        stepper.decide(stepper._last_out, h.reason or decision.reason, h.t_rel, h.on_decision,
                       t_slice_ready=h.t_ready, window_us=h.window_us, level=h.level)
