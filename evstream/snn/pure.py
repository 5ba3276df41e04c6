"""T SNN timesteps as one pure function over explicit state tensors, for batching and compilation (issue 16).

    pure = PureStep(runner, x, steps=T)        # the runner's SNN (any mode) rewritten as a function
    states = pure.init_states()                # membranes (and ECMT's expectations) at their reset values
    logits, counts, new_states = pure(x, w, states)    # T steps of input x: (T, B, K), (keys, T), states

The streaming runners (:mod:`evstream.snn.streaming`) keep their state in the neuron modules and count
operations with hooks: right for training and evaluation, but neither can be traced. ``PureStep`` is a
copy of the runner's (fused, converted) model in which

- every neuron layer is its pure twin (:class:`PureIF` for mode ``mst``, :class:`PureEC` for ``ecmt``,
  :class:`PureLIF` for ``spikformer``): it reads its state from the call's ``states`` and hands back the
  next state, with the same float32 arithmetic as the numba kernels it stands for (so run eagerly it gives
  the same spikes: ``tests/test_compiled.py``);
- every product of two spike tensors (:class:`PureProduct`, :class:`PureECProduct`) and every linear layer
  whose spike input no neuron layer accounts for (:class:`Counted`) reports the count that
  :class:`evstream.energy.OpCounter` would take with a hook;
- the counts come back as one float64 tensor, ``counts[i]`` described by ``keys[i]``;
  :meth:`PureStep.ops` turns them into the runner's SOPs and MACs (``tests/test_compiled.py`` checks they
  equal today's).

``w`` holds, for each of the call's T steps, the (weighted) number of steps since the expectations were last
cleared (ECMT's ``W``; float64, shape ``(T,)``); the other modes ignore it. The backends that compile this function live in
:mod:`evstream.snn.compiled`.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from evstream.energy import as_steps_5d, fan_out, pair_ops_steps
from evstream.snn.ecmt import (ECProduct, ECQCFS, compensated_differences, ec_mt_steps, pairs_of_lines,
                              running_sums)
from evstream.snn.layers import SpikeMatmul
from evstream.snn.neurons import QCFS, if_steps, lif_steps
from evstream.snn.pure_attention import PureIFAttention
from evstream.snn.pure_attention import fits as attention_fits
from evstream.snn.spikformer import LIF


class Tape:
    """The state and counts of one call, shared by the pure layers of one :class:`PureStep`. With
    ``states=None`` (discovery) each layer makes its reset state from its input's shape and says what it is."""

    def __init__(self, steps: int = 1):
        self.T = int(steps)
        self.kernels = False  # eager only: the neurons run their numba kernels (the same arithmetic, fewer calls)
        self.begin(None, None)

    def begin(self, states, w, arrays=None, once: int = 0, fresh=None, samples: int = 1) -> None:
        """A call's states and ``w``; ``arrays`` (eager, optional): each state's flat numpy view, made once by
        the caller for states it keeps (the kernels' arguments without a conversion per call); ``once`` (eager):
        the batch B of an input passed once, not repeated T times (:meth:`per_step`); ``fresh`` (with
        ``arrays``): the states start from their reset values, which each layer writes into its own state
        just before its kernel reads it (``fresh[i]``: state i's reset value, a number or a flat array) —
        where one copy of every reset value at the start of a decision streamed megabytes through the cache.
        ``samples`` S > 1 (eager kernels, fresh, ``once``): the call's T steps are S decisions of T/S steps each on
        the S inputs of the batch, one after the other in time (``spans``: each decision's steps), each from the
        reset values."""
        self.states, self.w, self.i, self.arrays = states, w, 0, arrays
        self.fresh = fresh if arrays is not None else None
        self.B, self.once = int(once), bool(once)
        self.samples = max(1, int(samples))
        per = self.T // self.samples
        self.spans = tuple((k * per, (k + 1) * per) for k in range(self.samples))
        # eager kernels only (a traced W has no values): the per-step constants' cache key, W in float32
        self.w_key = tuple(w.tolist()) if self.kernels and w is not None else None
        self.w32 = None if self.w_key is None else np.array(self.w_key, dtype=np.float32)
        self.new, self.counts = [], []
        self.last_input = None  # (tensor, by_sum, its count per step): Counted layers that read the same input
        self.keys, self.roles = [], []  # filled in discovery only

    def state(self, role: str, make):
        """This layer's next state tensor (in discovery: ``make()``, its reset value)."""
        if self.states is None:
            self.roles.append(role)
            return make()
        s = self.states[self.i]
        self.i += 1
        return s

    def state_init(self, role: str, make):
        """:meth:`state` and its flat numpy view (for a numba kernel that updates it in place), for a kernel that
        writes a constant reset value itself: (state, flat array, the value its kernel must start from — a
        float, on a fresh start whose reset value is one number — or None: the array holds the state already).
        Saves a pass over the state and a call per layer."""
        s = self.state(role, make)
        if self.arrays is None:
            return s, s.numpy().reshape(-1), None
        a = self.arrays[self.i - 1]
        if self.fresh is not None:
            value = self.fresh[self.i - 1]
            if isinstance(value, float):
                return s, a, value
            a[:] = value
        return s, a, None

    def state_array(self, role: str, make):
        """:meth:`state_init` for a kernel that reads its state as it is: a reset value is written here first."""
        s, a, init = self.state_init(role, make)
        if init is not None:
            a.fill(init)
        return s, a

    def count(self, key: tuple, value) -> None:
        """``value``: this count for each of the call's timesteps, shape (T,)."""
        if self.states is None:
            self.keys.append(key)
        self.counts.append(value)

    def per_step(self, x: torch.Tensor) -> torch.Tensor:
        """``x (T·B, ...)`` (time folded into the batch, time-major) as ``(T, B, ...)``. The call's first
        neuron layer, when the input came in once (``once``: the eager step runs the analog layers before it
        on the B inputs, not on T copies), gets ``x (B, ...)`` and sees it at every step."""
        if self.once:
            self.once = False
            if x.shape[0] != self.B:
                raise RuntimeError(f"the first neuron layer got a batch of {x.shape[0]}, not the input's {self.B}")
            if self.samples > 1:  # input k for the steps of decision k: (S·P, B/S, ...), decision-major
                S = self.samples
                xs = x.unflatten(0, (S, -1)).unsqueeze(1)
                return xs.expand(S, self.T // S, *xs.shape[2:]).reshape(self.T, *xs.shape[2:])
            return x.unsqueeze(0).expand(self.T, *x.shape)
        return x.unflatten(0, (self.T, -1))

    @staticmethod
    def folded(xs_shape) -> tuple:
        """``(T, B, ...)`` as the ``(T·B, ...)`` a layer hands on."""
        return (xs_shape[0] * xs_shape[1], *xs_shape[2:])


def kernel_steps(xs: torch.Tensor, v, steps_kernel, *params, shape, spans):
    """Eager (``Tape.kernels``): the numba neuron ``steps_kernel(xs, v, out, counts, *params)``
    (:func:`~evstream.snn.neurons.if_steps`, ...: the one-step kernel once per row of ``xs (T, ...)``, in one
    call — one per span of ``spans``, ``Tape.spans``), the membrane ``v`` (flat float32 numpy) updated in
    place; returns (outputs of ``shape`` and spikes ``(T,)``)."""
    xa = as_array(xs)
    out = np.empty(xa.shape, np.float32)
    n = np.empty(xa.shape[0], np.int64)
    for lo, hi in spans:
        steps_kernel(xa[lo:hi], v, out[lo:hi], n[lo:hi], *params)
    return torch.from_numpy(out).view(shape), n


def as_array(xs: torch.Tensor) -> np.ndarray:
    """``xs (T, ...)`` as a C-contiguous float32 numpy ``(T, N)``, converting or copying only where needed
    (each no-op ``.to`` or ``.contiguous`` is still a dispatched operation: the eager step makes hundreds)."""
    if xs.requires_grad:
        xs = xs.detach()
    if xs.dtype != torch.float32:
        xs = xs.float()
    if not xs.is_contiguous():
        xs = xs.contiguous()
    return xs.numpy().reshape(xs.shape[0], -1)


def _sum_t(s: torch.Tensor) -> torch.Tensor:
    """(T, ...) -> (T,): the sum over everything but time."""
    return s.flatten(1).sum(1)


def f32(v: float) -> float:
    """``v`` rounded to float32 (a constant the kernels use in float32), as a Python float."""
    return float(np.float32(v))


NO_STATE = (torch.empty(0), np.empty(0, np.float32), 0.0)  # a state a layer does not have: (tensor, array, reset)


class _Pure(nn.Module):
    def __init__(self, tape: Tape, name: str):
        super().__init__()
        object.__setattr__(self, "tape", tape)  # not a submodule
        self.name = name
        self.spikes_key = ("spikes", name)  # its count's key, made once (the eager step is per-call bound)
        self.last_spikes = 0  # read by the models' attention (nnz hints); unused here

    def _membrane_kernel(self, xs, make, steps_kernel, *params):
        """Eager (``Tape.kernels``): a neuron layer with one membrane state (reset value ``make()``) through
        its numba ``steps_kernel``; returns its output ``(T·B, ...)``."""
        t = self.tape
        v, va, init = t.state_init("v", make)
        out, n = kernel_steps(xs, va, steps_kernel, *params, init is not None, np.float32(init or 0.0),
                              shape=Tape.folded(xs.shape), spans=t.spans)
        t.new.append(v)
        t.count(self.spikes_key, n)
        return out


class PureIF(_Pure):
    """Mode ``mst``: ``HalfIF.fire`` (h = v + x; spike where h ≥ θ, then v = h − θ; out θ per spike),
    membrane starting at θ/2."""

    def __init__(self, src: QCFS, tape: Tape):
        super().__init__(tape, src.name)
        self.theta = f32(src.node.v_threshold)
        self.v0 = f32(0.5 * src.node.v_threshold)

    def forward(self, x):
        xs = self.tape.per_step(x)
        if self.tape.kernels:
            return self._membrane_kernel(xs, lambda: torch.full(xs.shape[1:], self.v0), if_steps, self.theta,
                                         self.theta)
        v = self.tape.state("v", lambda: torch.full(xs.shape[1:], self.v0))
        out = []
        for xt in xs.unbind(0):
            h = v + xt
            s = h >= self.theta
            v = torch.where(s, h - self.theta, h)
            out.append(s)
        self.tape.new.append(v)
        s = torch.stack(out)
        self.tape.count(("spikes", self.name), _sum_t(s))
        return (s.to(x.dtype) * self.theta).view(x.shape)


class PureLIF(_Pure):
    """Mode ``spikformer``: ``neurons.lif_step`` (h = v + (x − v)/τ; spike where h ≥ θ, then v = 0)."""

    def __init__(self, src: LIF, tape: Tape):
        super().__init__(tape, src.name)
        self.tau, self.theta = f32(src.node.tau), f32(src.node.v_threshold)

    def forward(self, x):
        xs = self.tape.per_step(x)
        if self.tape.kernels:
            return self._membrane_kernel(xs, lambda: torch.zeros(xs.shape[1:]), lif_steps, self.tau, self.theta)
        v = self.tape.state("v", lambda: torch.zeros(xs.shape[1:]))
        out = []
        for xt in xs.unbind(0):
            h = v + (xt - v) / self.tau
            s = h >= self.theta
            v = torch.where(s, torch.zeros_like(h), h)
            out.append(s)
        self.tape.new.append(v)
        s = torch.stack(out)
        self.tape.count(("spikes", self.name), _sum_t(s))
        return s.to(x.dtype).view(x.shape)


class PureEC(_Pure):
    """Mode ``ecmt``: ``ecmt._ec_mt_kernel`` without masking: expectation compensation of the QCFS
    (S ← d·S + x, g = clip(floor(S·c + 1/2), 0, L)·c2 with c = L/(λW), c2 = λW/L, o = g − d·G) and the
    multi-threshold neuron (the level ±θ·2^k nearest to m = v + o, nothing while |m| ≤ θ/2, v ← m − s).
    The level is chosen as the kernel does, from the float32 exponent bits. Expectations start at 0 (the kernel's first
    step, exactly: 0·d + x = x and g − d·0 = g)."""

    def __init__(self, src: ECQCFS, tape: Tape):
        super().__init__(tape, src.name)
        self.d, self.L, self.lam = f32(src.decay), f32(src.levels), float(src.lam)
        self.ec, self.mt, self.n = bool(src.ec), src.theta is not None, int(src.n)
        th = np.float32(src.theta or 1.0)
        self.theta, self.half, lo = float(th), float(np.float32(0.5) * th), np.float32(1.5) * th
        self.inv_lo = float(np.float32(1.0) / lo)
        self.theta_bits = int(np.array([th], dtype=np.float32).view(np.int32)[0])
        self.numel = 0
        self.consts = {}  # eager: {the call's W per step: (c, c2) per step, float32}
        self.f32 = (np.float32(self.d), np.float32(self.L), np.float32(self.theta))  # the kernel's constants

    def _kernels(self, xs):
        """Eager: ``ecmt.ec_mt_steps`` (the reference's kernel once per step, in one call) on the states in place."""
        t = self.tape
        zeros = lambda: torch.zeros(xs.shape[1:])  # noqa: E731
        S, Sa, iS = t.state_init("S", zeros) if self.ec else NO_STATE
        G, Ga, iG = t.state_init("G", zeros) if self.ec else NO_STATE
        v, va, iv = t.state_init("v", zeros) if self.mt else NO_STATE
        inits = ((Sa, iS), (Ga, iG), (va, iv))
        xa = as_array(xs)
        T = xa.shape[0]
        out = np.empty(xa.shape, np.float32)
        n = np.empty(T, np.int64)
        consts = self.consts.get(t.w_key)
        if consts is None:  # float64 W, as the kernel's constants were computed from W before
            w = t.w.numpy()
            consts = self.consts[t.w_key] = ((self.L / (self.lam * w)).astype(np.float32),
                                             (self.lam * w / self.L).astype(np.float32))
        d, L, theta = self.f32
        cs, c2s = consts
        for lo, hi in t.spans:  # each decision from the reset values (one span: the call's steps)
            ec_mt_steps(xa[lo:hi], Sa, Ga, va, out[lo:hi], n[lo:hi], self.ec, self.mt, d, cs[lo:hi], c2s[lo:hi], L,
                        theta, self.n, _fresh_zeros(*inits))
        if self.ec:
            t.new += (S, G)
        if self.mt:
            t.new.append(v)
        t.count(self.spikes_key, n)
        return torch.from_numpy(out).view(Tape.folded(xs.shape))

    def forward(self, x):
        t = self.tape
        xs = t.per_step(x)
        if t.kernels:
            return self._kernels(xs)
        os_ = list(xs.unbind(0))
        if self.ec:
            S = t.state("S", lambda: torch.zeros(xs.shape[1:]))
            G = t.state("G", lambda: torch.zeros(xs.shape[1:]))
            cs = (self.L / (self.lam * t.w)).to(torch.float32)  # per step, from W in float64 (as the kernel)
            c2s = (self.lam * t.w / self.L).to(torch.float32)
            for i, xt in enumerate(os_):
                S = S * self.d + xt
                g = torch.clamp(torch.floor(S * cs[i] + 0.5), 0.0, self.L) * c2s[i]
                os_[i], G = g - G * self.d, g
            t.new += [S, G]
        if not self.mt:
            t.count(("spikes", self.name), torch.zeros(t.T, dtype=torch.int64))
            return torch.stack(os_).view(x.shape)
        v = t.state("v", lambda: torch.zeros(xs.shape[1:]))
        out, fired = [], []
        for o in os_:
            m = v + o
            a = m.abs()
            # the level θ·2^k, k = ceil(log2(max(|m|/1.5θ, 1))) ≤ n − 1 from the float32 exponent bits
            b = torch.clamp(a * self.inv_lo, min=1.0).view(torch.int32)
            k = ((b >> 23) & 0xFF) - 127 + ((b & 0x7FFFFF) != 0).to(torch.int32)
            lev = (torch.clamp(k, max=self.n - 1) * (1 << 23) + self.theta_bits).view(torch.float32)
            fire = a > self.half
            lev = torch.where(fire, lev, torch.zeros_like(lev))
            s = torch.where(m >= 0, lev, -lev)
            v = m - s
            out.append(s)
            fired.append(fire)
        t.new.append(v)
        t.count(("spikes", self.name), _sum_t(torch.stack(fired)))
        return torch.stack(out).view(x.shape)


def _fresh_zeros(*states) -> bool:
    """(flat array, :meth:`Tape.state_init`'s value) of a layer's states: True when every one starts from 0,
    which its kernel then writes itself; otherwise a state given a value is filled with it here."""
    if all(init == 0.0 for _, init in states):  # None (already set) is not 0.0
        return True
    for a, init in states:
        if init is not None:
            a.fill(init)
    return False


def _nnz(x, T: int):
    """Non-zeros of ``x (T·B, ...)`` per timestep, (T,)."""
    return (x.reshape(T, -1) != 0).sum(1)


def pairs(a, b, T: int = 1, kernels: bool = False):
    """``energy.pair_ops`` per timestep (the leading dimension is time-major): Σ_k nnz(column k of a) x
    nnz(row k of b), summed over the batch; with ``kernels`` (eager) one numba pass
    (``energy.pair_ops_steps``), else in tensor operations (what a compiler traces)."""
    if kernels:
        return pair_ops_steps(a, b, T)
    ca = (a != 0).sum(-2)
    cb = (b != 0).sum(-1)
    return (ca * cb).reshape(T, -1).sum(1)


class PureProduct(_Pure):
    """A :class:`SpikeMatmul` that reports its pair count (one SOP per pair of non-zeros that meet)."""

    def forward(self, a, b, bias=None, alpha: float = 1.0, nnz=None):
        self.tape.count(("pairs", self.name), pairs(a, b, self.tape.T, self.tape.kernels))
        return SpikeMatmul.forward(self, a, b, bias=bias, alpha=alpha)


class PureECProduct(_Pure):
    """:class:`ECProduct` with S_A, S_B and P(t − 1) as state (starting at 0): P(t) = S_A S_B / W,
    out = P(t) − d·P(t − 1); reports the pair count and the operands' non-zeros (the compensation's
    cross terms, counted from the second step after a reset)."""

    def __init__(self, src: ECProduct, tape: Tape, name: str):
        super().__init__(tape, name)
        self.d = f32(src.decay)
        self.d32 = np.float32(self.d)

    def forward(self, a, b, bias=None, alpha: float = 1.0, nnz=None):
        t, T = self.tape, self.tape.T
        A, B = t.per_step(a), t.per_step(b)
        get = t.state_init if t.kernels else (lambda role, make: (t.state(role, make), None, None))
        SA, SAa, iA = get("SA", lambda: torch.zeros(A.shape[1:]))
        SB, SBa, iB = get("SB", lambda: torch.zeros(B.shape[1:]))
        P, Pa, iP = get("P", lambda: torch.zeros(np.broadcast_shapes(tuple(A.shape[1:-2]), tuple(B.shape[1:-2]))
                                                 + (A.shape[-2], B.shape[-1])))
        if t.kernels:
            out = self._kernels(a, b, A, B, SAa, SBa, Pa, ((SAa, iA), (SBa, iB), (Pa, iP)))
            t.new += [SA, SB, P]
            return out if bias is None else torch.add(bias.view(out.shape), out, alpha=alpha)
        sa, sb = [], []
        for at, bt in zip(A.unbind(0), B.unbind(0)):
            SA, SB = SA * self.d + at, SB * self.d + bt
            sa.append(SA)
            sb.append(SB)
        w = t.w.to(torch.float32).view(T, *[1] * (len(P.shape)))
        ps = (torch.stack(sa) @ torch.stack(sb)) / w  # every step's P(t) in one batched product
        outs = []
        for pt in ps.unbind(0):
            outs.append(pt - P * self.d)
            P = pt
        t.new += [SA, SB, P]
        out = torch.stack(outs).flatten(0, 1)
        m, n = b.shape[-1], a.shape[-2]
        t.count(("pairs", self.name), pairs(a, b, T))
        t.count(("cross", self.name, float(out.numel() // T)), _nnz(a, T) * m + _nnz(b, T) * n)
        return out if bias is None else torch.add(bias.view(out.shape), out, alpha=alpha)

    def _kernels(self, a, b, A, B, SA, SB, P, inits):
        """Eager (``Tape.kernels``): the running sums and the differences in numba (``ecmt.running_sums``,
        ``ecmt.compensated_differences``: the same float32 operations as the tensor version), the products
        of all T steps in one batched matmul; the states (flat numpy ``SA``, ``SB``, ``P``) in place, starting
        from ``inits`` (each state's array and :meth:`Tape.state_init` value) in each span."""
        t, T = self.tape, self.tape.T
        fresh = _fresh_zeros(*inits)
        if len(t.spans) > 1 and not fresh:  # a later span's states are not refilled here: they start at 0
            raise RuntimeError(f"{self.name}: stacked decisions need product states that start at 0")
        sums, nnz, lines = [], [], []
        for X, S, rows in ((A, SA, False), (B, SB, True)):  # a's non-zeros per column, b's per row
            X5 = as_steps_5d(X)
            out, n = np.empty(X5.shape, np.float32), np.empty(T, dtype=np.int64)
            ln = np.empty((*X5.shape[:3], X5.shape[3 if rows else 4]), np.int64)
            x5, s5 = X5.numpy(), S.reshape(X5.shape[1:])
            for lo, hi in t.spans:
                running_sums(x5[lo:hi], s5, out[lo:hi], n[lo:hi], self.d32, fresh, ln[lo:hi], rows)
            sums.append(torch.from_numpy(out).view(X.shape))
            nnz.append(n)
            lines.append(ln)
        ps = (sums[0] @ sums[1]).contiguous()
        out = np.empty((T, ps[0].numel()), np.float32)
        pa = ps.numpy().reshape(T, -1)
        for lo, hi in t.spans:
            compensated_differences(pa[lo:hi], P, t.w32[lo:hi], self.d32, out[lo:hi], fresh)
        out = torch.from_numpy(out).view(ps.shape).flatten(0, 1)
        m, n = b.shape[-1], a.shape[-2]
        pair_count = np.empty(T, np.int64)
        pairs_of_lines(*lines, pair_count)  # = pairs(a, b, T): tests/test_compiled.py
        t.count(("pairs", self.name), pair_count)
        t.count(("cross", self.name, float(out.numel() // T)), nnz[0] * m + nnz[1] * n)
        return out


class Counted(_Pure):
    """A linear layer whose spike input no neuron layer accounts for: reports its non-zero inputs (or, for a
    layer marked ``counts_input``, the sum of its spike counts), x fan-out = its SOPs."""

    def __init__(self, layer: nn.Module, tape: Tape, name: str):
        super().__init__(tape, name)
        self.layer = layer
        self.by_sum = bool(getattr(layer, "counts_input", False))
        self.fan_out = float(fan_out(layer))

    def forward(self, x):
        t = self.tape
        last = t.last_input
        if last is not None and last[0] is x and last[1] == self.by_sum:  # Q, K and V read one input: count it once
            n = last[2]
        else:
            n = x.abs().reshape(t.T, -1).sum(1) if self.by_sum else _nnz(x, t.T)
            t.last_input = (x, self.by_sum, n)
        t.count(("layer", self.name, self.fan_out), n)
        return self.layer(x)


class PerInput(_Pure):
    """A layer of the analog input (before the first neuron layer), run on each input of a call on its own when
    the call stacks decisions (``Tape.samples``): a convolution's algorithm, and so its last bits, may depend on
    the batch size, and mode mst's 64 IF steps carry such a difference into other spikes; otherwise the layer."""

    def __init__(self, layer: nn.Module, tape: Tape, name: str):
        super().__init__(tape, name)
        self.layer = layer

    def forward(self, x):
        t = self.tape
        if t.samples > 1 and t.once and x.shape[0] == t.B:
            return torch.cat([self.layer(xk) for xk in x.chunk(t.samples)])
        return self.layer(x)


def _rewrite(model: nn.Module, tape: Tape, analog: set, fed: set) -> None:
    """Swap, in place, every neuron layer, spike product, counted linear layer and analog input layer for its pure
    twin."""
    names = {id(m): n for n, m in model.named_modules()}
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            name = names.get(id(child), child_name)
            if attention_fits(child):  # mode mst's window attention: its children are rewritten below
                new = PureIFAttention(child, tape)
            elif isinstance(child, ECQCFS):
                new = PureEC(child, tape)
            elif isinstance(child, QCFS):
                new = PureIF(child, tape)
            elif isinstance(child, LIF):
                new = PureLIF(child, tape)
            elif isinstance(child, ECProduct):
                new = PureECProduct(child, tape, name)
            elif isinstance(child, SpikeMatmul):
                new = PureProduct(tape, name)
            elif isinstance(child, (nn.Linear, nn.Conv2d)) and name not in analog and name not in fed:
                new = Counted(child, tape, name)
            elif isinstance(child, (nn.Linear, nn.Conv2d)) and name in analog:
                new = PerInput(child, tape, name)
            else:
                continue
            setattr(parent, child_name, new)


class PureStep(nn.Module):
    """See the module docstring. Built for the runner's model and the shape of ``example`` ``(B, C, H, W)``;
    ``steps`` T: one call runs T timesteps of the same input (layer by layer, time folded into the batch:
    one matrix product per layer for all T steps, the neurons' recursions unrolled over T)."""

    def __init__(self, runner, example: torch.Tensor, steps: int = 1):
        super().__init__()
        src = runner.model
        self.steps = int(steps)
        self.tape = Tape(self.steps)
        fed_map = getattr(src, "spike_sources", dict)()
        by_name = dict(src.named_modules())
        analog = set(runner.analog)
        # linear layers fed by exactly one neuron layer: SOPs = its spikes x fan-out (as OpCounter)
        self.fed = [(src_mod.name, float(fan_out(by_name[n]))) for n, src_mod in fed_map.items()
                    if n in by_name and n not in analog]
        fed = {n for n in fed_map if n in by_name and n not in analog}
        self.model = copy.deepcopy(src).eval()
        for m in self.model.modules():  # the copy carries the runner's OpCounter hooks: not ours
            m._forward_hooks.clear()
            m._forward_pre_hooks.clear()
        _rewrite(self.model, self.tape, analog, fed)
        self.eval()
        self._discover(example)

    def _discover(self, example) -> None:
        """One pass with ``states=None``: every state's reset value (made from its input's shape), role and
        the counts' keys — one timestep's pass: none of them depends on T (a 64-step pass of the tensor
        operations took ~0.5 s of a live start)."""
        made = []
        tape = self.tape
        orig = tape.state

        def record(role, make):
            s = orig(role, make)
            made.append(s.clone())
            return s

        tape.state = record
        tape.T = 1
        try:
            with torch.inference_mode():
                tape.begin(None, torch.ones(1, dtype=torch.float64))
                self.model(example)
        finally:
            del tape.state
            tape.T = self.steps
        self.reset_values = made
        self.roles = list(tape.roles)
        self.keys = list(tape.keys)
        same = all(s.dtype == torch.float32 for s in made)  # one flat buffer of every reset value
        self.flat_reset = torch.cat([s.reshape(-1) for s in made]) if made and same else None
        # each state's reset value as the kernels' fresh start writes it: one number where it is constant
        self.reset_fill = [float(s.reshape(-1)[0]) if s.numel() and bool((s == s.reshape(-1)[0]).all())
                           else s.reshape(-1).numpy() for s in made]
        # decisions stacked in one call (forward's ``samples``) restart each state from one number per span
        self.stackable = all(isinstance(v, float) for v in self.reset_fill)

    def init_states(self) -> list:
        return [s.clone() for s in self.reset_values]

    def views(self, flat: torch.Tensor) -> list:
        """The states as views of ``flat`` (laid out as ``flat_reset``)."""
        out, i = [], 0
        for s in self.reset_values:
            out.append(flat[i:i + s.numel()].view(s.shape))
            i += s.numel()
        return out

    def _repeat(self, x):
        return x.repeat(self.steps, *[1] * (x.dim() - 1)) if self.steps > 1 else x

    def forward(self, x, w, states, arrays=None, fresh: bool = False, samples: int = 1):
        """``x (B, ...)`` for each of the T steps, ``w (T,)`` float64 (ECMT's W at each step), ``states`` as
        :meth:`init_states`: (logits ``(T, B, K)``, counts ``(keys, T)`` float64, next states). ``arrays``
        (eager only): the states' flat numpy views (:meth:`Tape.begin`); with them, ``fresh``: whatever the
        states hold, start from their reset values (each layer writes its own before its kernel runs).
        ``samples`` S > 1 (eager kernels, ``arrays``, ``fresh``; :attr:`stackable`): S decisions in one call —
        ``x (S·B, ...)``, input k's T steps after input k − 1's, each from the reset values; ``w (S·T,)``;
        logits ``(S·T, B, K)`` and counts ``(keys, S·T)``: every decision's own steps, as S calls would give
        (the states end as the last decision leaves them)."""
        tape, S = self.tape, max(1, int(samples))
        if S > 1 and not (tape.kernels and arrays is not None and fresh and self.stackable):
            raise ValueError("stacked decisions need the eager kernels, the states' arrays and a fresh start")
        once = tape.kernels and (self.steps > 1 or S > 1)  # eager: the analog layers once, not on T copies
        tape.T = self.steps * S
        try:
            tape.begin(list(states), w, arrays, once=x.shape[0] if once else 0,
                       fresh=self.reset_fill if fresh else None, samples=S)
            logits = self.model(x if once else self._repeat(x))
        finally:
            tape.T = self.steps
        if tape.fresh is not None and tape.i != len(self.reset_fill):  # every state must have been written
            raise RuntimeError(f"a fresh start wrote {tape.i} of {len(self.reset_fill)} states")
        if tape.kernels:  # numpy counts (the kernels' own) and a few tensors, one conversion
            counts = torch.from_numpy(np.stack([np.asarray(c, dtype=np.float64) for c in tape.counts]))
        else:
            counts = torch.stack([c.to(torch.float64) for c in tape.counts])
        return logits.unflatten(0, (self.steps * S, -1)), counts, list(tape.new)

    # ---------------------------------------------------------------- the counts, read
    def ops(self, counts: list, first: bool) -> tuple[dict, float]:
        """({neuron layer: spikes}, SOPs) of one step from its ``counts`` (a list); ``first``: the first step
        since the expectations were cleared (ECMT's compensation terms start at the second)."""
        spikes, sops = {}, 0.0
        for key, c in zip(self.keys, counts):
            kind = key[0]
            if kind == "spikes":
                spikes[key[1]] = int(c)
            elif kind == "pairs":
                sops += c
            elif kind == "layer":
                sops += c * key[2]
            elif kind == "cross" and not first:
                sops += c + 3 * key[2]
        for name, f in self.fed:
            sops += spikes[name] * f
        return spikes, sops

    def expectation_states(self) -> list[int]:
        """Indices of the states ``reset_mean()`` clears (ECMT's running sums), not the membranes."""
        return [i for i, r in enumerate(self.roles) if r != "v"]
