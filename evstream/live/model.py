"""The model side of the live path: a checkpoint loaded for streaming (the ANN, its SNN runner, its input
representation, the ANN's energy per inference) and the default conversion mode on live streams.

Conversion mode on a live stream: ``ecmt`` where the model has it, else the model's first mode. A sliding
window changes the input at every step; rate-coded IF neurons (mode ``mst``) need tens of steps of one
input to settle, while ECMT's expectation compensation is accurate after a few steps, and with ``decay``
(the running output is an exponential mean) it follows the scene (measurements: docs/model.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from evstream.errors import CheckpointError
from evstream.live.records import ModelRecord


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

    def info(self) -> ModelRecord:
        return ModelRecord(self.path, getattr(self.model, "arch", "?"), self.mode, list(self.modes),
                           list(self.classes), dict(self.meta.get("representation", {})), self.n_window,
                           self.window_us, self.ann_uJ)


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


# most timesteps per call: a compiled graph grows with its chunk; the batched step compiles nothing
CHUNK_MOST = {"batched": 64}
COMPILED_CHUNK_MOST = 8


def chunk_for(steps: int, step: str = "inductor") -> int:
    """Timesteps per call of the ``step`` backend for decisions of ``steps``: the largest divisor of it up to
    ``CHUNK_MOST`` (batched: a whole decision of up to 64 steps; a compiled step 8, so mode mst's 64 steps run
    as 8 calls of 8 there)."""
    most = CHUNK_MOST.get(step, COMPILED_CHUNK_MOST)
    return max(d for d in range(1, min(int(steps), most) + 1) if steps % d == 0)


# how the live SNN step runs: "eager" the streaming runner (the reference, one call per step); "batched" its
# pure step run eagerly, a decision's steps in one call; "inductor" / "ort" that step compiled
# (evstream/snn/compiled.py); "auto" what benchmarks/RESULTS.md ("Live speed") measured best without a
# compile of minutes at start
STEPS = ("auto", "eager", "batched", "inductor", "ort")
AUTO_STEP = "batched"


def use_compiled_step(lm: LoadedModel, config, notice=print) -> None:
    """Replace ``lm.runner`` by its compiled step (``config.step``; for decisions of ``config.steps_for(lm)``
    timesteps), or keep the eager runner with a one-line notice when that is not available here."""
    from evstream.snn.compiled import compile_runner

    step = AUTO_STEP if config.step == "auto" else config.step
    if step not in STEPS:
        raise CheckpointError(f"unknown step {config.step!r} (known: {', '.join(STEPS)})")
    if step == "eager":
        return
    import torch

    chunk = chunk_for(config.steps_for(lm), step) if config.state == "reset" else 1  # carry: one step per call
    example = torch.zeros(1, int(lm.rep.channels), *(int(v) for v in lm.rep.out_hw))
    lm.runner = compile_runner(lm.runner, example, step, chunk=chunk, notice=notice)
    lm.neurons = dict(getattr(lm.runner, "neuron_sizes", {}))  # the monitors' rates (spikes per neuron)


LIVE_MODES = ("ecmt",)  # preferred on live streams, in this order, where a model has them


def live_mode(modes) -> str | None:
    """The default conversion mode for streaming: the first of ``LIVE_MODES`` the model has, else its first."""
    return next((m for m in LIVE_MODES if m in modes), modes[0] if modes else None)


def representation_of(path, meta: dict, model):
    """The checkpoint's input representation, checked against the model's input; CheckpointError otherwise."""
    from evstream.representations import from_config

    try:
        rep = from_config(meta["representation"])
        channels, hw = int(rep.channels), tuple(int(v) for v in rep.out_hw)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise CheckpointError(f"bad representation config ({exc})", where=path) from None
    want = getattr(getattr(model, "config", None), "in_channels", channels)
    if channels != want:
        raise CheckpointError(f"the representation gives {channels} channels but the model takes {want}", where=path)
    if len(hw) != 2 or not 0 < hw[0] * hw[1] <= MAX_PIXELS:
        raise CheckpointError(f"bad representation output size {hw}", where=path)
    return rep


MAX_PIXELS = 1 << 24  # of one model input frame


def warm_representation(lm: LoadedModel) -> None:
    """Build one input from two events, so that the representation's kernels are loaded (numba's first call
    of a cached kernel takes tens of ms) before a stream flows, not at its first decision."""
    import numpy as np

    from evstream.events import EVENT_DTYPE

    ev = np.zeros(2, EVENT_DTYPE)
    ev["t"], ev["p"] = (0, 1000), (0, 1)
    lm.rep(ev, 0, max(2000, int(lm.window_us or 0)))


def load_model(path, sensor_size=None, mode: str | None = None, mask_ratio: float = 0.0, seed: int = 0,
               decay: float | None = None) -> LoadedModel:
    """Load a checkpoint for streaming; ``CheckpointError`` (one line naming the file) if it is unreadable,
    has no representation (or one the model cannot take), or was trained on another sensor size than
    ``sensor_size`` (w, h)."""
    from evstream.snn import load_checkpoint

    model, meta = load_checkpoint(path, need_representation=True)
    rep = representation_of(path, meta, model)
    check_fit(path, rep, sensor_size)
    modes = tuple(getattr(model, "modes", ()) or ())
    if mode is not None and modes and mode not in modes:
        raise CheckpointError(f"mode {mode!r} not supported by this {getattr(model, 'arch', '?')} model "
                              f"(modes: {', '.join(modes)})", where=path)
    mode = mode or live_mode(modes)
    try:
        classes = [str(c) for c in meta.get("classes") or []]
        n_window = int(meta["representation"].get("n_frames", 1) or 1)
        window_us = int(meta.get("window_us") or 0)
    except (TypeError, ValueError):
        raise CheckpointError("malformed meta (classes, window_us or the representation's n_frames)",
                              where=path) from None
    try:
        lm = LoadedModel(str(path), model, meta, mode, rep, classes, n_window, ann_energy_uJ(model, rep),
                         window_us=window_us)
        lm.runner = model.spiking(mode=mode, mask_ratio=mask_ratio, seed=seed, decay=decay)
    except CheckpointError as exc:  # e.g. a calibration that does not fit: name the file
        raise exc if exc.where else CheckpointError(exc.problem, where=path) from None
    except RuntimeError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise CheckpointError(f"the model does not run on its representation's input ({first})", where=path) from None
    lm.runner.reset()
    warm_representation(lm)
    if not lm.classes:
        lm.classes = [str(i) for i in range(int(getattr(getattr(model, "config", None), "num_classes", 0) or 0))]
    return lm
