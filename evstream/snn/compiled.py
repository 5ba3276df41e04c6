"""The SNN step compiled for CPU inference: a runner with the streaming API whose steps run a compiled
:class:`~evstream.snn.pure.PureStep` (issue 16).

    fast = CompiledRunner(runner, x, backend="inductor", chunk=4)   # runner: model.spiking(mode=...)
    fast.reset()
    outs = fast.steps(x, 4)        # 4 StepResults, computed in one call (layer by layer over the 4 steps)
    out = fast.step(x)             # one step (a chunk of 1 is compiled for it when chunk > 1)

Backends (``BACKENDS``): ``inductor`` (``torch.export`` of the pure step, then ``torch.compile`` with
inductor's C++ wrapper and freezing; the compiled code is cached by inductor under ``cache_dir()``),
``ort`` (ONNX Runtime, one intra-op thread, sequential; needs ``onnxruntime``), ``pure`` (the pure step
run eagerly: the reference for the compiled ones). The eager runner itself stays the reference of the
whole path; ``tests/test_compiled.py`` checks every backend against it.

What the compiled step does not cover falls back to the eager runner, per call: Random Spike Masking
(``mask_ratio > 0``) and inputs of another shape. ``compile_runner`` returns the eager runner with a one-line
notice when compilation is unavailable (no C++ compiler, no onnxruntime, an export error).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from evstream.snn.pure import PureStep

BACKENDS = ("inductor", "ort", "batched")


def cache_dir() -> Path:
    """Where compiled steps are cached: ``$EVSTREAM_CACHE/compiled`` or ``~/.cache/evstream/compiled``
    (inductor's cache, set through ``TORCHINDUCTOR_CACHE_DIR`` unless that is set already)."""
    root = os.environ.get("EVSTREAM_CACHE") or str(Path.home() / ".cache" / "evstream")
    return Path(root) / "compiled"


def compile_pure(pure: PureStep, example: tuple, backend: str):
    """A callable ``fn(x, w, states) -> (logits, counts, states)`` computing ``pure`` with ``backend``."""
    if backend == "batched":
        keep_freed_memory()
        pure.tape.kernels = True  # eager: the neurons' numba kernels (nothing to trace)
        return _warm(pure, example)  # numba loads each cached kernel at its first call: now, not at a live decision
    if backend == "inductor":
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "inductor"))
        with torch.no_grad():
            gm = torch.export.export(pure, example, strict=False).module()
        fn = torch.compile(gm, backend="inductor", options={"cpp_wrapper": True, "freezing": True})
        return _warm(fn, example)
    if backend == "ort":
        return _warm(OrtStep(pure, example), example)
    raise ValueError(f"unknown step backend {backend!r} (known: {', '.join(BACKENDS)})")


# glibc's malloc: M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD (mallopt's parameter numbers)
_MALLOPT = {"trim": (-1, 256 << 20), "top_pad": (-2, 64 << 20), "mmap": (-3, 32 << 20)}
_malloc_kept = None


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed memory for reuse instead of handing it back to the system at once.

    A batched decision allocates and frees tens of megabytes of temporaries (mode ``mst``: 64 steps of every
    layer's output); by default glibc returns the top of its heap and its larger blocks to the kernel when they
    are freed, so the next decision takes them back page by page — thousands of page faults, each page zeroed,
    per decision. With a 32 MB mmap threshold, a 256 MB trim threshold and a 64 MB top pad the pages stay in the
    process (its memory stays bounded by its peak use) and a decision reuses them (``benchmarks/RESULTS.md``,
    "Live speed"). All three are set together: setting any one of them turns off glibc's own adjustment of the
    mmap threshold, which alone makes things worse (every large block a fresh mapping). Process-wide, once;
    False (and nothing changed) where the C library is not glibc."""
    global _malloc_kept
    if _malloc_kept is None:
        _malloc_kept = False
        try:
            import ctypes

            libc = ctypes.CDLL(None)
            mallopt = libc.mallopt
            libc.gnu_get_libc_version  # glibc only
        except (OSError, AttributeError, TypeError):
            return False
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        _malloc_kept = all(mallopt(k, v) == 1 for k, v in _MALLOPT.values())
    return _malloc_kept


def _warm(fn, example):
    with torch.inference_mode():
        fn(*example)  # compiles now, not at the first live step
    return fn


class OrtStep:
    """The pure step exported to ONNX and run by ONNX Runtime (one thread, sequential execution)."""

    def __init__(self, pure: PureStep, example: tuple):
        import onnxruntime as ort

        x, w, states = example
        path = cache_dir() / f"step-{os.getpid()}-{id(pure)}.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        names = ["x", "w"] + [f"s{i}" for i in range(len(states))]
        with torch.no_grad():
            torch.onnx.export(pure, (x, w, list(states)), str(path), input_names=names, dynamo=True,
                              external_data=False)
        so = ort.SessionOptions()
        so.intra_op_num_threads = so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        path.unlink(missing_ok=True)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.n_states = len(states)

    def __call__(self, x, w, states):
        feeds = dict(zip(self.inputs, [x.numpy(), w.numpy()] + [s.numpy() for s in states]))
        out = [torch.from_numpy(o) for o in self.session.run(None, feeds)]
        return out[0], out[1], out[2:]


class CompiledRunner:
    """The streaming API of ``runner`` (``reset``, ``reset_mean``, ``step``, ``run``, ``set_mask_ratio``,
    ``model``, ``neurons``) over the pure step compiled by ``backend`` for inputs shaped like ``example``;
    ``chunk`` timesteps per compiled call (:meth:`steps`). The running output, totals and records are the
    eager runner's own code (``accumulate``, ``result``), so both give the same ``StepResult`` s."""

    def __init__(self, runner, example: torch.Tensor, backend: str = "inductor", chunk: int = 1):
        self.ref, self.backend, self.chunk = runner, backend, max(1, int(chunk))
        self.shape = tuple(example.shape)
        t0 = time.perf_counter()
        self._fns = {}
        with torch.inference_mode():
            runner.reset()
            # one eager step: the neuron layers' sizes (read by the monitors) and the MACs per step (constant:
            # the analog layers and ECMT's compensation)
            self.macs = float(runner.step(example).macs)
            self.neuron_sizes = {m.name: int(m.last_numel) for m in runner.neurons}  # {layer: neurons}
        self.example = example
        self.pures = {}
        self._buffer = None  # (flat state buffer, its views, their numpy views): see _reset_states
        self._mask = None  # the buffer's expectation entries (reset_mean)
        self._clear_expectations = False  # reset_mean's clearing of the states, pending
        self._twins = []  # twin()
        self._build(self.chunk)
        self.compile_s = time.perf_counter() - t0
        self.reset()

    def _build(self, n: int) -> None:
        pure = self.pures[n] = PureStep(self.ref, self.example, steps=n)
        self._fns[n] = compile_pure(pure, self._args(pure, self.example), self.backend)

    def _args(self, pure, x):
        return (x, torch.arange(1, pure.steps + 1, dtype=torch.float64), pure.init_states())

    # the eager runner's attributes the live path reads
    model = property(lambda self: self.ref.model)
    neurons = property(lambda self: self.ref.neurons)
    mask_ratios = property(lambda self: self.ref.mask_ratios)
    t = property(lambda self: self.ref.t)

    @property
    def compiled_active(self) -> bool:
        """False while the eager runner does the steps (masking on)."""
        return not any(r > 0 for r in _ratios(self.ref.mask_ratios))

    def set_mask_ratio(self, ratio) -> None:
        self.ref.set_mask_ratio(ratio)

    def set_burn_in(self, steps: int) -> None:
        self.ref.set_burn_in(steps)

    def _reset_states(self, pure) -> list:
        """The reset values, copied in one operation into one buffer whose views are the states (the batched
        step updates them in place); separate clones where the states differ in dtype."""
        if pure.flat_reset is None:
            return pure.init_states()
        if self._buffer is None:
            flat = pure.flat_reset.clone()
            views = pure.views(flat)
            self._buffer = (flat, views, [v.numpy().reshape(-1) for v in views])
        else:
            self._buffer[0].copy_(pure.flat_reset)
        return list(self._buffer[1])

    def _arrays(self):
        """The states' flat numpy views when the states are still the buffer's own views (the batched step
        updates them in place; ``reset_mean`` replaces some), else None."""
        return self._buffer[2] if self.backend == "batched" and self._in_buffer() else None

    def reset(self) -> None:
        self.ref.reset_run()
        self._ref_stale = True  # the eager runner's modules are reset when it next steps (_eager)
        self.states = None  # the reset values, made at the next step
        self._clear_expectations = False
        self._w, self._first = 0.0, True

    def reset_mean(self) -> None:
        if self._ref_stale:  # its modules get reset before it steps: only the running output now
            self.ref.reset_output()
        else:
            self.ref.reset_mean()
        self._w, self._first = 0.0, True
        self._clear_expectations = self.states is not None  # at the next step, unless a reset() comes first

    def _clear_expectations_now(self) -> None:
        """``reset_mean``'s part in the states, done at the next step: a decision's end is followed by a
        reset() at the next decision when each one starts afresh, which makes it moot."""
        self._clear_expectations = False
        pure = self.pures[self.chunk]  # every chunk size has the same states
        if self._in_buffer():  # one masked copy of the expectations' reset values
            flat, mask = self._buffer[0], self._expectation_mask(pure)
            flat.copy_(torch.where(mask, pure.flat_reset, flat))
            return
        for i in pure.expectation_states():
            self.states[i] = pure.reset_values[i].clone()

    def _in_buffer(self) -> bool:
        buf = self._buffer
        return buf is not None and all(a is b for a, b in zip(self.states, buf[1]))

    def _expectation_mask(self, pure) -> torch.Tensor:
        if self._mask is None:
            parts = [torch.full((s.numel(),), r != "v") for s, r in zip(pure.reset_values, pure.roles)]
            self._mask = torch.cat(parts)
        return self._mask

    def step(self, x_t: torch.Tensor):
        return self.steps(x_t, 1)[0]

    @torch.inference_mode()
    def steps(self, x: torch.Tensor, n: int) -> list:
        """``n`` timesteps of the same input ``x``, as ``StepResult`` s. Computed in compiled calls of
        ``chunk`` steps; the eager runner when masking, for another input shape, or for a count of steps that
        is not a multiple of ``chunk`` from a reset (otherwise a one-step function is compiled for them)."""
        fresh = self.states is None and self.ref.t == 0
        if tuple(x.shape) != self.shape or not self.compiled_active or (n % self.chunk and fresh):
            return self._eager(x, n)
        if x.dtype != torch.float32 or not x.is_contiguous():
            x = x.to(torch.float32).contiguous()
        size = self.chunk if n % self.chunk == 0 else 1
        if size not in self._fns:
            self._build(size)
        out = []
        for _ in range(n // size):
            out += self._call(x, size)
        return out

    def can_stack(self, n: int) -> bool:
        """Whether :meth:`decisions` can run decisions of ``n`` steps together here (the batched backend's
        kernels, no masking, states that restart from one number)."""
        pure = self.pures.get(self.chunk)
        return (self.backend == "batched" and pure is not None and pure.tape.kernels and pure.stackable
                and pure.flat_reset is not None and self.compiled_active and n > 0)

    def decisions(self, xs: torch.Tensor, n: int) -> list:
        """A decision — ``reset()``, then ``n`` steps — on each input of ``xs (S·B, ...)`` (S inputs shaped like
        the example), all in one call of the pure step (its ``samples``: the S decisions one after the other in
        time, the layers' matrix products shared; :meth:`can_stack`); a list of S lists of ``StepResult`` s,
        those S separate decisions' (within float rounding: ``tests/test_compiled.py``). Unpaced replay decides
        this way (``evstream.live.batch``). :meth:`stacked` (the arithmetic, which another thread may do with a
        :meth:`twin`) then :meth:`stacked_results` (the eager runner's bookkeeping, in this thread)."""
        self.reset()
        return self.stacked_results(self.stacked(xs, n))

    @torch.inference_mode()
    def stacked(self, xs: torch.Tensor, n: int) -> tuple:
        """:meth:`decisions`' arithmetic: (logits ``(S·n, B, K)``, counts ``(keys, S·n)``, n). Touches only this
        runner's own pure steps and states, never the eager runner it shares with its twins."""
        B = self.shape[0]
        S = xs.shape[0] // B
        if tuple(xs.shape[1:]) != self.shape[1:] or xs.shape[0] != S * B or not self.can_stack(n):
            raise ValueError(f"cannot stack decisions of {n} steps on inputs {tuple(xs.shape)}")
        if xs.dtype != torch.float32 or not xs.is_contiguous():
            xs = xs.to(torch.float32).contiguous()
        if n not in self._fns:
            self._build(n)
        pure = self.pures[n]
        if self._buffer is None:  # the state buffer (its values are written as the layers go: fresh)
            self._reset_states(pure)
        ws = self._weights(0.0, n)
        logits, counts, states = self._fns[n](xs, torch.tensor(ws * S, dtype=torch.float64), list(self._buffer[1]),
                                              self._buffer[2], True, S)
        self.states, self._w, self._first = list(states), ws[-1], False  # where the last decision left the run
        return logits, counts, n

    @torch.inference_mode()
    def stacked_results(self, computed: tuple) -> list:
        """The ``StepResult`` s of :meth:`stacked`'s output, decision by decision (each after the eager
        runner's ``reset_run``: its running output, burn-in and totals)."""
        logits, counts, n = computed
        pure = self.pures[n]
        rows = counts.t().tolist()
        out = []
        for k in range(len(rows) // n):
            self.ref.reset_run()
            out.append([self._result(pure, rows[i], logits[i], i == k * n) for i in range(k * n, (k + 1) * n)])
        return out

    def twin(self, k: int = 1) -> CompiledRunner:
        """The ``k``-th runner over the same eager runner with pure steps and states of its own: other threads
        compute :meth:`stacked` decisions with them while this one does (each made once)."""
        while len(self._twins) < k:
            self._twins.append(CompiledRunner(self.ref, self.example, self.backend, self.chunk))
            self.ref.reset_run()
            self._ref_stale = True  # making it stepped the eager runner's modules
        return self._twins[k - 1]

    def _eager(self, x, n) -> list:
        """``n`` steps of the eager runner, its modules reset first if a reset() came since it last stepped
        (resetting them at every decision costs more than a batched step: a walk over every neuron)."""
        if self._ref_stale:
            self.ref.reset_modules()
            self._ref_stale = False
        return [self.ref.step(x) for _ in range(n)]

    def _call(self, x, size):
        pure, ref = self.pures[size], self.ref
        fresh = False
        if self.states is None:
            if self.backend == "batched" and pure.tape.kernels and self._buffer is not None:
                # the states are the buffer's views again; the layers write their reset values as they go
                self.states, fresh = list(self._buffer[1]), True
            else:
                self.states = self._reset_states(pure)
        elif self._clear_expectations:
            self._clear_expectations_now()
        ws = self._weights(self._w, size)
        self._w = ws[-1]
        w = torch.tensor(ws, dtype=torch.float64)
        arrays = self._arrays()
        if arrays is not None:
            logits, counts, self.states = self._fns[size](x, w, self.states, arrays, fresh)
        else:
            logits, counts, self.states = self._fns[size](x, w, self.states)
        self.states = list(self.states)
        rows = counts.t().tolist()
        out = []
        for i in range(size):
            out.append(self._result(pure, rows[i], logits[i], self._first))
            self._first = False
        return out

    def _weights(self, w: float, n: int) -> list:
        """ECMT's W for the next ``n`` steps after ``w``: W ← d·W + 1 (d the runner's decay, else 1)."""
        d, ws = self.ref.decay or 1.0, []
        for _ in range(n):
            w = d * w + 1.0
            ws.append(w)
        return ws

    def _result(self, pure, counts: list, logits, first: bool):
        """One step's ``StepResult`` from its logits and counts, through the eager runner's own bookkeeping."""
        ref = self.ref
        spikes, sops = pure.ops(counts, first)
        return ref.result(logits, ref.accumulate(logits), spikes, sops, self.macs if ref.counter else 0.0)

    @torch.no_grad()
    def run(self, x: torch.Tensor, T: int) -> torch.Tensor:
        """Reset, then ``T`` steps of the same input; (T, B, K) running means."""
        self.reset()
        return torch.stack([r.mean for r in self.steps(x, T)])


def _ratios(ratios) -> list:
    return list(ratios.values()) if isinstance(ratios, dict) else [ratios]


def compile_runner(runner, example: torch.Tensor, backend: str = "inductor", chunk: int = 1, notice=print):
    """A :class:`CompiledRunner`, or ``runner`` itself with a one-line ``notice`` when the backend is not
    available here (no C++ compiler, no onnxruntime, an export the backend cannot take)."""
    try:
        return CompiledRunner(runner, example, backend, chunk)
    except Exception as exc:  # a compiler or exporter failure of any kind: keep the eager step
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        notice(f"compiled step unavailable ({backend}: {type(exc).__name__}: {first}); using the eager step")
        runner.reset()
        return runner
