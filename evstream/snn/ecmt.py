"""ECMT conversion mode: expectation compensation + multi-threshold neurons (Huang et al., "Towards
High-performance Spiking Transformers from ANN to SNN Conversion"; supplement in shared/papers).

    snn = model.spiking(mode="ecmt")            # same checkpoint, same streaming API as mode "mst"
    cal = calibrate(model, x_train)             # base thresholds from training activations (deterministic)
    evstream calibrate MODEL.pt [--limit 300]   # the same, on its training split, stored in meta["ecmt"]

What the conversion does to the MST (evstream/snn/mst.py), on a deep copy:

- **Expectation compensation of every non-linearity** (Theorem 1). MST's only element-wise non-linearity
  is QCFS (BatchNorm is affine at inference, so the mean passes through it unchanged). Each QCFS becomes
  an ``ECQCFS`` that keeps the running sum S(t) of its analog input and outputs
      O(t) = t·F(S(t)/t) − (t−1)·F(S(t−1)/(t−1)),
  so the sum of its outputs after T steps is exactly T·F(mean input): the ANN's activation of the mean.
- **Products of two spike matrices** (Q·Kᵀ and A·V, Theorem 2): ``ECProduct`` keeps S_A, S_B and outputs
  S_A(t)S_B(t)/t − S_A(t−1)S_B(t−1)/(t−1); the outputs sum to S_A(T)S_B(T)/T.
- **Multi-threshold neurons** (in ``ECQCFS``: one numba kernel with the compensation) turn each
  compensated output back into spikes for the next linear layer: signed levels ±θ·2^k (k = 0..n−1),
  at most one spike per step, the level nearest to the membrane (nothing below θ/2), soft reset (the
  fired level is subtracted), membrane starting at 0. The base threshold θ of each neuron layer comes
  from ``calibrate`` (the top level θ·2^(n−1) is the p-th percentile, default 99, of that layer's ANN
  activations over training data) or, for a checkpoint without meta["ecmt"], from the QCFS clip λ (top
  level = λ, the largest value a QCFS can output).
- **The classifier keeps analog input** (as the paper): the head's compensated activation goes to the
  token mean and the linear classifier without a neuron (MACs).
- Random Spike Masking acts on the multi-threshold spikes, as in mode "mst": a masked spike is not
  transmitted (the membrane was already reset) and the surviving ones weigh 1/(1 − r).

Live streams: with ``decay`` d the compensation uses exponentially weighted sums (S ← d·S + x, W ← d·W + 1,
O(t) = W(t)F(S/W) − d·W(t−1)F(S'/W')), so the expectation follows the scene; ``reset_mean()`` clears the
expectations and the output mean but keeps the membranes.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import torch

from evstream.errors import CheckpointError, EvstreamError
from evstream.jit import nb
from evstream.snn.layers import SpikeMatmul
from evstream.snn.mst import WindowAttention
from evstream.snn.neurons import NO_KEEP, QCFS
from evstream.snn.registry import register_conversion
from evstream.snn.streaming import SpikingRunner, StepResult

DEFAULT_LEVELS = 8
DEFAULT_PERCENTILE = 99.0


# --- the one kernel: expectation compensation and the multi-threshold neuron -------------------------

FAST_LEVELS = 8  # the multi-threshold neuron's vectorised loop covers up to this many levels per sign


@nb.njit(cache=True, nogil=True)
def _ec_pass(x, S, G, out, first, d, c, c2, L):
    """The compensation of ``_ec_mt_kernel`` alone: ``out`` = o for every element."""
    zero, half = np.float32(0.0), np.float32(0.5)
    if first:
        for i in range(x.size):
            si = x[i]
            S[i] = si
            g = np.float32(min(max(np.float32(math.floor(np.float32(si * c) + half)), zero), L) * c2)
            out[i] = g
            G[i] = g
    else:
        for i in range(x.size):
            si = np.float32(S[i] * d + x[i])
            S[i] = si
            g = np.float32(min(max(np.float32(math.floor(np.float32(si * c) + half)), zero), L) * c2)
            out[i] = np.float32(g - np.float32(G[i] * d))
            G[i] = g


@nb.njit(cache=True, nogil=True)
def _mt_pass8(o, v, theta, n):
    """The multi-threshold neuron of ``_ec_mt_kernel`` for n ≤ 8 levels, in place on ``o`` (input, then the
    spikes): k = ceil(log2(r)), r = max(|m|/1.5θ, 1), i.e. how many of 2^0..2^6 r exceeds, found in three
    comparisons (r > 8? then r/16; r > 2? then r/4; r > 1: scaling by powers of two is exact), capped at
    n − 1; the level θ·2^k is exact in float32, as the exponent-bit version's."""
    half, lo = np.float32(0.5) * theta, np.float32(1.5) * theta
    inv_lo = np.float32(1.0) / lo
    zero, top = np.float32(0.0), np.int32(n - 1)
    total = 0
    for i in range(o.size):
        m = np.float32(v[i] + o[i])
        a = abs(m)
        r = np.float32(a * inv_lo)
        s1 = r > np.float32(8.0)
        r = np.float32(r * np.float32(0.0625)) if s1 else r
        s2 = r > np.float32(2.0)
        r = np.float32(r * np.float32(0.25)) if s2 else r
        k = np.int32(4) * np.int32(s1) + np.int32(2) * np.int32(s2) + np.int32(r > np.float32(1.0))
        lev = np.float32(theta * np.float32(np.int32(1) << min(k, top)))
        fire = a > half
        lev = lev if fire else zero
        s = lev if m >= zero else -lev
        v[i] = m - s
        o[i] = s
        total += np.int32(fire)
    return total


@nb.njit(cache=True, nogil=True)
def _ec_mt_kernel(x, S, G, v, out, keep, ec, mt, first, d, c, c2, L, theta, n, gain):
    """One timestep, element by element, in float32 (the model's precision); returns the number of
    transmitted spikes.

    ``ec``: expectation compensation of a QCFS F(a) = clip(floor(a·c·W + 1/2), 0, L)/(c·W) (Theorem 1):
    S ← d·S + x, g = W·F(S/W) = clip(floor(S·c + 1/2), 0, L)·c2 (c = L/(λW), c2 = λW/L),
    o = g − d·G, G ← g; else o = x. ``mt``: the multi-threshold neuron: m = v + o, the level ±θ·2^k nearest to m fires
    (nothing while |m| ≤ θ/2, the top level θ·2^(n−1) above the top), v ← m − s (soft reset); else
    out = o (analog). ``keep`` (bool, empty when not masking) drops spikes after the reset (Random Spike
    Masking) and the surviving ones weigh ``gain`` = 1/(1 − r), as in mode "mst". The level is chosen
    without branches: k = ceil(log2(|m| / 1.5θ)) clipped to 0..n−1, read from the float32 exponent bits.

    Unmasked with at most 8 levels (the default), the same arithmetic runs as two loops the compiler
    vectorises (``_ec_pass``, ``_mt_pass8``: about 3x faster, the same bits; ``tests/test_ecmt.py``)."""
    masking = keep.size > 0
    if not masking and n <= FAST_LEVELS:
        if ec:
            _ec_pass(x, S, G, out, first, d, c, c2, L)
        else:
            out[:] = x
        return _mt_pass8(out, v, theta, n) if mt else 0
    half, lo = np.float32(0.5) * theta, np.float32(1.5) * theta
    inv_lo = np.float32(1.0) / lo
    bits = out.view(np.int32)  # scratch: the bits of |m|/1.5θ, then of the level
    theta_bits = np.array([theta], dtype=np.float32).view(np.int32)[0]
    total = 0
    for i in range(x.size):
        if ec:
            si = x[i] if first else np.float32(S[i] * d + x[i])
            S[i] = si
            q = min(max(np.float32(math.floor(np.float32(si * c) + np.float32(0.5))), np.float32(0.0)), L)
            g = np.float32(q * c2)
            o = g if first else np.float32(g - np.float32(G[i] * d))
            G[i] = g
        else:
            o = x[i]
        if mt:
            m = np.float32(v[i] + o)
            a = abs(m)
            out[i] = max(np.float32(a * inv_lo), np.float32(1.0))  # the level sits at or above θ
            b = bits[i]
            k = min(((b >> 23) & 0xFF) - 127 + ((b & 0x7FFFFF) != 0), n - 1)  # ceil(log2(.)), ≤ n − 1
            bits[i] = theta_bits + (k << 23)
            fire = a > half
            lev = out[i] if fire else np.float32(0.0)
            s = lev if m >= 0 else -lev
            v[i] = m - s
            if masking:
                fire = fire and keep[i]
                s = np.float32(s * gain) if keep[i] else np.float32(0.0)
            out[i] = s
            total += fire
        else:
            out[i] = o
    return total


@nb.njit(cache=True, nogil=True)
def ec_mt_steps(xs, S, G, v, out, counts, ec, mt, d, cs, c2s, L, theta, n, fresh):
    """``_ec_mt_kernel`` (unmasked) for each row ``t`` of ``xs (T, N)`` into ``out[t]`` with the per-step
    constants ``cs[t]``, ``c2s[t]``; the states in place; ``counts[t]`` its spikes. Expectations start at 0
    (the pure step's states), which the kernel's non-first step handles exactly (0·d + x = x, g − d·0 = g).
    ``fresh`` (a decision's start after a reset, every state 0): the first step is the kernel's first (S and
    G written, not read: the same values) and the membrane is zeroed here, not by a pass of its own before."""
    keep = np.empty(0, dtype=np.bool_)
    one = np.float32(1.0)
    if fresh and mt:
        v[:] = np.float32(0.0)
    for t in range(xs.shape[0]):
        first = fresh and t == 0
        counts[t] = _ec_mt_kernel(xs[t], S, G, v, out[t], keep, ec, mt, first, d, cs[t], c2s[t], L, theta, n, one)


@nb.njit(cache=True, nogil=True)
def running_sums(A, S, out, nnz, d, fresh, lines, rows):
    """For each step t of ``A (T, Z1, Z2, n, k)`` (any strides): S ← d·S + A[t] in float32, in place, copied
    to ``out[t]``; ``nnz[t]`` the non-zeros of A[t] (``ECProduct``'s S_A and S_B for a whole decision).
    ``fresh``: S starts at 0, not read (S ← A[0]: the same value). ``lines (T, Z1, Z2, ·)``: A[t]'s non-zeros
    per row (``rows``) or per column — what the product's pair count needs (:func:`pairs_of_lines`)."""
    lines[:] = 0
    for t in range(A.shape[0]):
        c = 0
        first = fresh and t == 0
        for z1 in range(A.shape[1]):
            for z2 in range(A.shape[2]):
                for i in range(A.shape[3]):
                    ci = 0
                    for j in range(A.shape[4]):
                        x = A[t, z1, z2, i, j]
                        s = x if first else np.float32(np.float32(S[z1, z2, i, j] * d) + x)
                        S[z1, z2, i, j] = s
                        out[t, z1, z2, i, j] = s
                        nz = x != 0
                        ci += nz
                        if not rows:
                            lines[t, z1, z2, j] += nz
                    c += ci
                    if rows:
                        lines[t, z1, z2, i] = ci
        nnz[t] = c


@nb.njit(cache=True, nogil=True)
def pairs_of_lines(cols, rows, out):
    """``out[t]`` = Σ over the (broadcast) batch and k of ``cols[t, ·, ·, k]`` (non-zeros in column k of a) x
    ``rows[t, ·, ·, k]`` (in row k of b): the pairs of non-zeros that meet in a[t] @ b[t] (``energy.pair_ops``)."""
    Z1 = max(cols.shape[1], rows.shape[1])
    Z2 = max(cols.shape[2], rows.shape[2])
    for t in range(cols.shape[0]):
        total = 0
        for z1 in range(Z1):
            a1 = z1 if cols.shape[1] > 1 else 0
            b1 = z1 if rows.shape[1] > 1 else 0
            for z2 in range(Z2):
                a2 = z2 if cols.shape[2] > 1 else 0
                b2 = z2 if rows.shape[2] > 1 else 0
                for k in range(cols.shape[3]):
                    total += cols[t, a1, a2, k] * rows[t, b1, b2, k]
        out[t] = total


@nb.njit(cache=True, nogil=True)
def compensated_differences(ps, P, w, d, out, fresh):
    """For each step t of ``ps (T, N)`` (S_A S_B of that step): p = ps[t]/w[t], out[t] = p − d·P, P ← p
    (``ECProduct``'s output for a whole decision, float32, ``P (N,)`` in place). ``fresh``: P starts at 0,
    not read (out[0] = p: the same value)."""
    for t in range(ps.shape[0]):
        wt = w[t]
        first = fresh and t == 0
        for i in range(ps.shape[1]):
            p = np.float32(ps[t, i] / wt)
            out[t, i] = p if first else np.float32(p - np.float32(P[i] * d))
            P[i] = p


def level_counts(out: torch.Tensor | None, theta: float | None, n: int) -> dict:
    """Spikes per level in a multi-threshold output ``out`` (values 0 or ±θ·2^k; with masking θ is the
    base level times the surviving spikes' weight 1/(1 − r)):
    {"theta": θ, "pos": [count of +θ·2^k for k = 0..n−1], "neg": [count of −θ·2^k]}."""
    if out is None or theta is None:
        return {"theta": theta, "pos": [], "neg": []}
    s = out[out != 0]
    k = torch.round(torch.log2(s.abs() / theta)).long().clamp_(0, n - 1) + n * (s < 0)
    c = torch.bincount(k, minlength=2 * n).tolist()
    return {"theta": theta, "pos": c[:n], "neg": c[n:]}


class SpikesPerLevel(Mapping):
    """{neuron layer: level_counts(...)} of one step, computed when read (the monitors read it; evaluation
    does not pay for it)."""

    def __init__(self, acts):
        self._outs = {a.name: (*(a.st.out or (None, None)), a.n) for a in acts}
        self._done = {}

    def __getitem__(self, name):
        if name not in self._done:
            self._done[name] = level_counts(*self._outs[name])
        return self._done[name]

    def __iter__(self):
        return iter(self._outs)

    def __len__(self):
        return len(self._outs)


class _State:
    __slots__ = ("S", "G", "v", "W", "shape", "out", "spikes", "numel", "extra")


class ECQCFS(QCFS):
    """A QCFS in ECMT mode: its expectation-compensated version (Theorem 1) followed by a multi-threshold
    neuron (``theta`` given: levels ±θ·2^k, k = 0..n−1), or with analog output (``theta=None``, the
    classifier's input). ``compensate=False`` leaves only the neuron (a bare multi-threshold neuron, for
    tests and other models).

    The neuron: at most one spike per step, the level nearest to its membrane m = v + input (nothing while
    |m| ≤ θ/2, the top level above the top), soft reset v ← m − s, membrane starting at 0. So the sum of
    its outputs is the sum of its inputs minus v, and |v| ≤ max(θ/2, |m|/3) while |m| ≤ 1.5·θ·2^(n−1).

    Stays a ``QCFS`` (name, λ, L, mask ratio, generator) so that the model's ``activations()`` and
    ``set_mask_ratio`` work unchanged. ``last_spikes`` and ``level_counts()`` give this step's spikes after
    masking; ``_extra_ops`` the compensation's own operations (counted by ``evstream.energy.OpCounter``).
    """

    def __init__(self, src: QCFS, theta: float | None, n: int = DEFAULT_LEVELS, decay: float | None = None,
                 compensate: bool = True):
        object.__setattr__(self, "st", _State())  # per-step state outside nn.Module's (slow) __setattr__
        lam = float(src.threshold.detach().abs())
        super().__init__(src.levels, lam, src.name)
        self.lam = lam + 1e-6  # exactly the ANN's λ (QCFS.forward adds 1e-6)
        self.mask_ratio, self.generator = src.mask_ratio, src.generator
        self.spiking = True
        self.decay = float(decay) if decay else 1.0
        self.ec = bool(compensate)
        if theta is not None and not (theta > 0 and math.isfinite(theta)):
            raise ValueError(f"{src.name}: multi-threshold base threshold must be positive, got {theta}")
        self.theta = None if theta is None else float(theta)
        self.n = int(n)
        self.count_extra = False
        self.reset()

    # what the runner, the monitors and OpCounter read
    last_spikes = property(lambda self: self.st.spikes, lambda self, v: setattr(self.st, "spikes", v))
    last_numel = property(lambda self: self.st.numel, lambda self, v: setattr(self.st, "numel", v))
    _extra_ops = property(lambda self: self.st.extra)
    v = property(lambda self: None if self.st.v is None else torch.from_numpy(self.st.v).view(self.st.shape),
                 doc="the membrane (None before the first step)")

    @property
    def thresholds(self) -> list[float]:
        """The positive levels θ·2^k (the negative ones mirror them)."""
        return [] if self.theta is None else [self.theta * 2.0 ** k for k in range(self.n)]

    def reset(self) -> None:
        st = self.st
        self.reset_expectation()
        st.v = st.shape = st.out = None
        st.spikes = st.numel = 0
        st.extra = (0.0, 0.0)

    def reset_expectation(self) -> None:
        self.st.S = self.st.G = None  # running (weighted) input sum; W·F(S/W) of the previous step
        self.st.W = 0.0  # running (weighted) number of steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        st = self.st
        dtype = x.dtype
        if not x.is_cpu:
            raise EvstreamError(f"mode ecmt runs on the CPU; {self.name} got a tensor on {x.device}")
        if dtype != torch.float32 or not x.is_contiguous():
            x = x.detach().to(torch.float32).contiguous()
        first = st.S is None
        if st.shape is None:
            st.shape = x.shape
        elif st.shape != x.shape:
            raise EvstreamError(f"{self.name}: input shape changed from {tuple(st.shape)} to {tuple(x.shape)} "
                                "without reset()")
        numel = x.numel()
        if first:
            st.S, st.G = np.empty(numel, np.float32), np.empty(numel, np.float32)
        if st.v is None:
            st.v = np.zeros(numel, np.float32)
        d, L, r, lam, theta = self.decay, self.levels, self.mask_ratio, self.lam, self.theta
        W = st.W = d * st.W + 1.0
        mt = theta is not None
        out = torch.empty(x.shape)
        masking = mt and r > 0
        keep = self.keep_mask(x).numpy().reshape(-1) if masking else NO_KEEP
        f = np.float32
        st.spikes = _ec_mt_kernel(
            x.numpy().reshape(-1), st.S, st.G, st.v, out.numpy().reshape(-1), keep,
            self.ec, mt, first, f(d), f(L / (lam * W)), f(lam * W / L), f(L),
            f(theta or 1.0), self.n, f(1.0 / (1.0 - r) if masking else 1.0))
        st.out = (out, theta / (1.0 - r) if masking else theta) if mt else None
        st.numel = numel
        if self.count_extra:  # the sum update, the scaling by 1/W and by W, the difference: 2 MACs per element
            st.extra = (0.0, 2.0 * numel if self.ec else 0.0)
        return out if dtype == torch.float32 else out.to(dtype)

    def level_counts(self) -> dict:
        """This step's transmitted spikes per level: {"theta", "pos": [count of +θ·2^k], "neg": [...−θ·2^k]}."""
        return level_counts(*(self.st.out or (None, None)), self.n)

    def extra_repr(self) -> str:
        mt = f"θ={self.theta:.4g} x 2^0..{self.n - 1}" if self.theta else "analog output"
        return f"{self.name}, L={self.levels}, λ={self.lam:.3f}, {'EC + ' if self.ec else ''}{mt}"


class ECProduct(SpikeMatmul):
    """Expectation-compensated product of two spike matrices (Theorem 2): the outputs sum to S_A S_B / T.
    Replaces a :class:`SpikeMatmul` of the converted model (same call: ``bias + alpha · product`` with a bias).

    Computed as P(t) − d·P(t−1) with P(t) = S_A(t)S_B(t)/W(t) (one matmul, the same numbers as the
    incremental form of Eq. 6–7). Counted by that incremental form, which is what a neuromorphic chip
    runs: the spike-spike term pairs(A(t), B(t)) (counted by the energy counter, as for every
    ``SpikeMatmul`` in mode "mst"), plus here the spike x running-sum terms nnz(A(t))·m + nnz(B(t))·n and the 3·n·m additions that accumulate
    the parts (SOPs), and one MAC per output element for the 1/T normalisation.
    """

    def __init__(self, decay: float | None = None):
        object.__setattr__(self, "st", SimpleNamespace())  # per-step state outside nn.Module's __setattr__
        super().__init__()
        self.decay = float(decay) if decay else 1.0
        self.count_extra = False
        self.reset()

    _extra_ops = property(lambda self: self.st.extra)

    def reset(self) -> None:
        st = self.st
        st.SA = st.SB = st.P = None
        st.W = 0.0
        st.extra = (0.0, 0.0)

    def forward(self, a: torch.Tensor, b: torch.Tensor, bias=None, alpha: float = 1.0, nnz=None):
        out = self._product(a, b, *(nnz or (None, None)))
        return out if bias is None else torch.add(bias.view(out.shape), out, alpha=alpha)

    def _product(self, a, b, nnz_a, nnz_b):
        st, d = self.st, self.decay
        first = st.SA is None
        if first:
            st.SA, st.SB = a.clone(), b.clone()
        elif d != 1.0:
            st.SA.mul_(d).add_(a)
            st.SB.mul_(d).add_(b)
        else:
            st.SA.add_(a)
            st.SB.add_(b)
        st.W = d * st.W + 1.0
        p = (st.SA @ st.SB).div_(st.W)
        out = p if first else p - (st.P * d if d != 1.0 else st.P)
        st.P = p
        if self.count_extra:
            n, m, outs = a.shape[-2], b.shape[-1], float(out.numel())
            nnz_a = int(a.count_nonzero()) if nnz_a is None else nnz_a
            nnz_b = int(b.count_nonzero()) if nnz_b is None else nnz_b
            cross = 0.0 if first else float(nnz_a * m + nnz_b * n) + 3 * outs
            st.extra = (cross, outs)
        return out


# --- calibration ---------------------------------------------------------------------------------------

@torch.no_grad()
def calibrate(model, x: torch.Tensor, percentile: float = DEFAULT_PERCENTILE, levels: int = DEFAULT_LEVELS,
              batch: int = 100) -> dict:
    """Base thresholds of the multi-threshold neurons from the ANN's activations on ``x`` (training data).

    For every QCFS the p-th percentile of its outputs (all elements, zeros included) over ``x`` is the top
    level θ·2^(n−1), so θ = percentile / 2^(n−1). QCFS outputs are multiples of λ/L, so the percentile is
    exact from a histogram of the L+1 values: deterministic, independent of batching, bounded memory.
    A layer whose percentile is 0 (almost silent) gets λ as its top level.
    """
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    if len(x) == 0:
        raise ValueError("calibration needs at least one input")
    was_training = model.training
    model.eval()
    acts = model.activations()
    hist = {a.name: torch.zeros(a.levels + 1, dtype=torch.float64) for a in acts}

    def hook(mod, args, out):
        q = (out / ((mod.threshold.abs() + 1e-6) / mod.levels)).round().clamp(0, mod.levels).long()
        hist[mod.name] += torch.bincount(q.flatten(), minlength=mod.levels + 1).double()

    handles = [a.register_forward_hook(hook) for a in acts]
    ratios = [a.mask_ratio for a in acts]
    for a in acts:  # the unmasked activations (a mask set on the model applies in the ANN view too)
        a.mask_ratio = 0.0
    try:
        for i in range(0, len(x), batch):
            model(x[i:i + batch])
    finally:
        for h in handles:
            h.remove()
        for a, r in zip(acts, ratios):
            a.mask_ratio = r
        model.train(was_training)
    top, theta = {}, {}
    for a in acts:
        lam = float(a.threshold.detach().abs()) + 1e-6
        cdf = hist[a.name].cumsum(0) / hist[a.name].sum()
        p = torch.tensor([percentile / 100.0], dtype=torch.float64)
        idx = int(torch.searchsorted(cdf, p).clamp(max=a.levels))
        value = idx * lam / a.levels if idx > 0 else lam
        top[a.name] = value
        theta[a.name] = value / 2 ** (levels - 1)
    return {"version": 1, "percentile": float(percentile), "levels": int(levels), "samples": int(len(x)),
            "theta": theta, "top": top}


def thresholds_for(model, calibration: dict | None, levels: int | None = None) -> tuple[dict, int, str]:
    """({activation name: θ}, n levels, source) from a calibration dict, or from λ without one."""
    acts = model.activations()
    if calibration is None:
        n = int(levels or DEFAULT_LEVELS)
        return {a.name: float(a.threshold.detach().abs() + 1e-6) / 2 ** (n - 1) for a in acts}, n, "lambda"
    try:
        n = int(calibration["levels"])
        theta = {name: float(v) for name, v in calibration["theta"].items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"meta['ecmt'] is not an ECMT calibration (missing or bad {exc})") from None
    missing = [a.name for a in acts if a.name not in theta]
    bad = [k for k, v in theta.items() if not (v > 0 and math.isfinite(v))]
    if missing or bad:
        raise CheckpointError(f"meta['ecmt'] does not fit this model (no threshold for {missing[:3]}, "
                              f"non-positive for {bad[:3]}); recalibrate")
    if levels is not None and int(levels) != n:  # same top level, a different number of levels
        theta = {k: v * 2 ** (n - 1) / 2 ** (int(levels) - 1) for k, v in theta.items()}
        n = int(levels)
    return theta, n, "calibration"


# --- the runner ----------------------------------------------------------------------------------------

@dataclass
class ECMTStepResult(StepResult):
    """``StepResult`` plus the spikes of every neuron layer per level:
    ``spikes_per_level[name] = {"theta": θ, "pos": [count at +θ·2^k], "neg": [count at −θ·2^k]}``
    (a mapping computed when read)."""
    spikes_per_level: dict = field(default_factory=dict)


def convert(model, calibration: dict | None = None, levels: int | None = None, decay: float | None = None):
    """A deep copy of ``model`` converted to ECMT (see the module docstring); the ANN stays untouched."""
    theta, n, source = thresholds_for(model, calibration, levels)
    snn = copy.deepcopy(model).eval()
    head = getattr(snn, "head_act", None)
    for name, mod in list(snn.named_modules()):
        for child_name, child in list(mod.named_children()):
            if type(child) is QCFS:
                setattr(mod, child_name, ECQCFS(child, None if child is head else theta[child.name], n, decay))
    for mod in snn.modules():
        if isinstance(mod, WindowAttention):  # Q·Kᵀ and A·V compensated (Theorem 2)
            mod.qk, mod.av = ECProduct(decay), ECProduct(decay)
    return snn.fuse(), n, source


@register_conversion("ecmt")
class ECMTRunner(SpikingRunner):
    """Streaming inference in mode "ecmt": ``reset()``, ``step(x_t)``, ``run(x, T)``, ``set_mask_ratio``.

    Thresholds come from ``calibration`` (default: the model's meta["ecmt"], written by ``calibrate``)
    or, without one, from the QCFS λ (top level = λ). ``levels`` overrides the number of levels per sign.
    """

    analog = {"reduction", "patch_embed", "head"}

    def __init__(self, model, mask_ratio=0.0, seed: int = 0, decay: float | None = None, count_ops: bool = True,
                 calibration: dict | None = None, levels: int | None = None):
        if calibration is None:
            calibration = (getattr(model, "meta", None) or {}).get("ecmt")
        self.calibration, self.levels = calibration, levels
        super().__init__(model, mask_ratio=mask_ratio, seed=seed, decay=decay, count_ops=count_ops)

    def convert(self, model):
        """The recipe: thresholds (calibration or λ), every QCFS replaced by an ``ECQCFS``, every attention
        product by an ``ECProduct``, then fused (see :func:`convert`)."""
        snn, self.levels, self.threshold_source = convert(model, self.calibration, self.levels, self.decay)
        return snn

    @property
    def products(self) -> list:
        return [m for m in self.memories if isinstance(m, ECProduct)]

    def reset_mean(self) -> None:
        """A scene change: forget the expectations and the running output, keep the membranes."""
        super().reset_mean()
        for m in self.neurons:
            m.reset_expectation()
        for p in self.products:
            p.reset()

    @torch.no_grad()
    def step(self, x_t: torch.Tensor) -> ECMTStepResult:
        """Exactly one timestep for a batch ``x_t (B, C, H, W)``. ``logits`` is this step's compensated
        output; ``mean`` the (weighted) mean of the outputs, which by Theorem 1 is the classifier applied
        to the compensated mean of its input."""
        logits = self.model(x_t)
        return self._result(logits, self.accumulate(logits), ECMTStepResult,
                            spikes_per_level=SpikesPerLevel(self.neurons))

    def accumulate(self, logits: torch.Tensor) -> torch.Tensor:
        """The (weighted) mean of the compensated outputs so far."""
        self.t += 1
        d = self.decay or 1.0
        self._sum = logits.clone() if self._sum is None else self._sum.mul_(d).add_(logits)
        self._w = d * self._w + 1.0
        self._k += 1
        mean = self._sum / self._w
        if self.t == self.burn_in:  # the burn-in's last step: the mean restarts (SpikingRunner.set_burn_in)
            self.reset_output()
        return mean
