"""Mode ``mst``'s window attention in the batched step, its spike layouts made by the neurons (issue 16).

In the tensor path (``WindowAttention.forward`` with :class:`~evstream.snn.pure.PureIF` neurons) a decision of
T steps moves each attention's spikes through five layout copies — Q, K, V split from the fused linear layer's
output, each made contiguous per head inside the products, the output transposed back to tokens — and two
counting passes over the operands (one SOP per pair of non-zeros that meet). At mode mst's 64 steps these
tensors are megabytes and those passes were about a quarter of a decision. :class:`PureIFAttention` runs the
same arithmetic with the neurons writing their spikes straight into the layouts the products take:

- ``if_qkv_heads``: the Q, K and V neurons on the fused linear layer's output ``(T·B·n, 3c)``, spikes written as
  Q ``(T·B·h, n, d)``, Kᵀ ``(T·B·h, d, n)`` and V ``(T·B·h, n, d)`` — exactly the contiguous operands the
  tensor path's ``baddbmm`` and ``bmm`` receive after their copies, so the products are the same calls on the
  same numbers — with Q·Kᵀ's pair count and V's non-zeros per row counted on the way;
- ``if_attn_pairs``: the attention neuron, and A·V's pair count from A's non-zeros per column;
- ``if_heads_to_tokens``: the output neuron, its spikes written back in token order ``(T·B, n, c)``.

Each is ``neurons._if_step``'s float32 arithmetic (h = v + x; spike where h ≥ θ, then v = h − θ; out θ per
spike) on the membranes in the tensor path's layout; states and counts are taken in the tensor path's order,
so both give the same spikes, counts and outputs (``tests/test_compiled.py``). Only the eager kernel path
(``Tape.kernels``) uses it; compiled backends trace the tensor path.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from evstream.jit import nb


@nb.njit(cache=True, nogil=True)
def if_qkv_heads(y, T, B, n, h, d, vq, vk, vv, thetas, q, kt, v, spikes, pairs_qk, v_rows):
    """``y (T·B·n, 3c)``: rows time-major (t, window, token), columns Q | K | V, each head-major (c = h·d).
    Membranes ``vq``, ``vk``, ``vv`` flat in (window, token, c) order, in place; outputs θ per spike into
    ``q``, ``v`` ``(T·B·h·n·d)`` as (t·B + window, head, token, dim) and ``kt`` as (…, head, dim, token);
    ``spikes[t, 0..2]`` per neuron layer; ``pairs_qk[t]`` = Σ over windows, heads and dims of the non-zeros of
    Q's column × those of K's column; ``v_rows[t·B·h + window·h + head, token]`` V's non-zeros in that row.
    Written out loop by loop, without branches, so that each head's d entries vectorise."""
    c = h * d
    thq, thk, thv = thetas[0], thetas[1], thetas[2]
    zero = np.float32(0.0)
    cq = np.zeros(c, dtype=np.int64)
    ck = np.zeros(c, dtype=np.int64)
    kblock = np.empty(n * d, dtype=np.float32)  # one head's K spikes (token, dim), written transposed after
    for t in range(T):
        sq = 0
        sk = 0
        sv = 0
        pq = 0
        for b in range(B):
            cq[:] = 0
            ck[:] = 0
            for hh in range(h):
                base = (t * B + b) * h + hh  # (t·B + window)·h + head
                j0 = hh * d
                for i in range(n):
                    r = (t * B + b) * n + i
                    m = (b * n + i) * c + j0  # membrane offset of this head's dims
                    o = (base * n + i) * d
                    for dd in range(d):
                        x = vq[m + dd] + y[r, j0 + dd]
                        f = x >= thq
                        vq[m + dd] = x - thq if f else x
                        q[o + dd] = thq if f else zero
                        cq[j0 + dd] += f
                    for dd in range(d):
                        x = vk[m + dd] + y[r, c + j0 + dd]
                        f = x >= thk
                        vk[m + dd] = x - thk if f else x
                        kblock[i * d + dd] = thk if f else zero
                        ck[j0 + dd] += f
                    nv = 0
                    for dd in range(d):
                        x = vv[m + dd] + y[r, 2 * c + j0 + dd]
                        f = x >= thv
                        vv[m + dd] = x - thv if f else x
                        v[o + dd] = thv if f else zero
                        nv += f
                    sv += nv
                    v_rows[base, i] = nv
                for dd in range(d):
                    ko = (base * d + dd) * n
                    for i in range(n):
                        kt[ko + i] = kblock[i * d + dd]
            for j in range(c):
                sq += cq[j]
                sk += ck[j]
                pq += cq[j] * ck[j]
        spikes[t, 0] = sq
        spikes[t, 1] = sk
        spikes[t, 2] = sv
        pairs_qk[t] = pq


@nb.njit(cache=True, nogil=True)
def if_attn_pairs(s, T, v_mem, theta, out, spikes, v_rows, pairs_av):
    """The attention neuron on ``s (T, G, n, n)`` (G = windows·heads; membrane ``v_mem`` (G·n·n) in place): θ per
    spike into ``out`` (same shape); ``spikes[t]``; ``pairs_av[t]`` = Σ over g and k of A's non-zeros in column k
    × V's in row k (``v_rows (T·G, n)``)."""
    G, n, m = s.shape[1], s.shape[2], s.shape[3]
    zero = np.float32(0.0)
    cols = np.zeros(m, dtype=np.int64)
    for t in range(T):
        total = 0
        pairs = 0
        for g in range(G):
            cols[:] = 0
            for i in range(n):
                base = (g * n + i) * m
                for k in range(m):
                    x = v_mem[base + k] + s[t, g, i, k]
                    f = x >= theta
                    v_mem[base + k] = x - theta if f else x
                    out[t, g, i, k] = theta if f else zero
                    cols[k] += f
            for k in range(m):
                total += cols[k]
                pairs += cols[k] * v_rows[t * G + g, k]
        spikes[t] = total
        pairs_av[t] = pairs


@nb.njit(cache=True, nogil=True)
def if_heads_to_tokens(o, T, B, h, v_mem, theta, out, spikes):
    """The attention's output neuron on ``o (T·B·h, n, d)`` (membrane ``v_mem`` (B·h·n·d) in place): θ per spike
    written in token order, ``out (T·B·n·c)`` as (t·B + window, token, head·d + dim); ``spikes[t]``."""
    n, d = o.shape[1], o.shape[2]
    c = h * d
    zero = np.float32(0.0)
    for t in range(T):
        total = 0
        for b in range(B):
            for hh in range(h):
                g = (t * B + b) * h + hh
                for i in range(n):
                    m = ((b * h + hh) * n + i) * d
                    w = ((t * B + b) * n + i) * c + hh * d
                    for dd in range(d):
                        x = v_mem[m + dd] + o[g, i, dd]
                        f = x >= theta
                        v_mem[m + dd] = x - theta if f else x
                        out[w + dd] = theta if f else zero
                        total += f
        spikes[t] = total


def _start(mems) -> None:
    """Each membrane ``(array, value)`` set to its start value (None: it holds its state already)."""
    for arr, init in mems:
        if init is not None:
            arr.fill(init)


def fits(attn) -> bool:
    """A ``WindowAttention`` whose Q, K, V, attention and output neurons are mode mst's IF (QCFS, not ECMT's),
    its products plain spike products and Q, K, V one fused linear layer: what :class:`PureIFAttention` runs."""
    from evstream.snn.layers import SpikeMatmul
    from evstream.snn.neurons import QCFS

    acts = [getattr(attn, a, None) for a in ("act_q", "act_k", "act_v", "act_attn", "act_out")]
    return (getattr(attn, "qkv_fused", None) is not None and all(type(a) is QCFS for a in acts)
            and all(type(getattr(attn, p, None)) is SpikeMatmul for p in ("qk", "av")))


class PureIFAttention(nn.Module):
    """Wraps a ``WindowAttention`` whose neurons have been rewritten to :class:`~evstream.snn.pure.PureIF`
    (``inner``): with ``tape.kernels`` the fused layouts above, else ``inner`` itself (the tensor path)."""

    def __init__(self, inner: nn.Module, tape):
        super().__init__()
        self.inner = inner
        object.__setattr__(self, "tape", tape)

    def _membrane(self):
        """The next membrane state: (flat numpy array, the value it starts each span from, or None: as it is)."""
        t = self.tape
        st, arr, init = t.state_init("v", None)
        t.new.append(st)
        if init is None and len(t.spans) > 1:
            raise RuntimeError("stacked decisions need membranes that start at one value")
        return arr, init

    def forward(self, x, mask01=None):
        t, a = self.tape, self.inner
        if not t.kernels or t.states is None or t.once:  # discovery and the tensor path: the module as it is
            return a(x, mask01)
        T = t.T
        tb, n, c = x.shape
        B, h = tb // T, a.heads
        d = c // h
        y = a.qkv_fused(x)
        ya = y.detach().reshape(tb * n, 3 * c)
        ya = ya if ya.is_contiguous() else ya.contiguous()
        mems = [self._membrane() for _ in range(3)]  # Q's, K's and V's, in the tensor path's order
        thetas = np.array([a.act_q.theta, a.act_k.theta, a.act_v.theta], dtype=np.float32)
        q = np.empty(tb * h * n * d, np.float32)
        kt = np.empty_like(q)
        v = np.empty_like(q)
        spikes = np.empty((T, 3), np.int64)
        pairs_qk = np.empty(T, np.int64)
        v_rows = np.empty((tb * h, n), np.int64)
        ya = ya.numpy()
        G = B * h
        for lo, hi in t.spans:  # each decision from the reset values (one span: the call's steps)
            _start(mems)
            e0, e1 = lo * G * n * d, hi * G * n * d
            if_qkv_heads(ya[lo * B * n:hi * B * n], hi - lo, B, n, h, d, *[m[0] for m in mems], thetas, q[e0:e1],
                         kt[e0:e1], v[e0:e1], spikes[lo:hi], pairs_qk[lo:hi], v_rows[lo * G:hi * G])
        for i, act in enumerate((a.act_q, a.act_k, a.act_v)):
            t.count(("spikes", act.name), spikes[:, i].copy())
        qt = torch.from_numpy(q).view(tb * h, n, d)
        t.count(("pairs", a.qk.name), pairs_qk)
        s = torch.baddbmm(a.bias(tb, mask01), qt, torch.from_numpy(kt).view(tb * h, d, n), alpha=a.scale)
        mem = self._membrane()
        att = np.empty((T, G, n, n), np.float32)
        n_attn, pairs_av = np.empty(T, np.int64), np.empty(T, np.int64)
        sa = s.numpy().reshape(T, G, n, n)
        for lo, hi in t.spans:
            _start([mem])
            if_attn_pairs(sa[lo:hi], hi - lo, mem[0], np.float32(a.act_attn.theta), att[lo:hi], n_attn[lo:hi],
                          v_rows[lo * G:hi * G], pairs_av[lo:hi])
        t.count(("spikes", a.act_attn.name), n_attn)
        t.count(("pairs", a.av.name), pairs_av)
        o = torch.bmm(torch.from_numpy(att).view(tb * h, n, n), torch.from_numpy(v).view(tb * h, n, d)).numpy()
        mem = self._membrane()
        out = np.empty(tb * n * c, np.float32)
        n_out = np.empty(T, np.int64)
        for lo, hi in t.spans:
            _start([mem])
            if_heads_to_tokens(o[lo * G:hi * G], hi - lo, B, h, mem[0], np.float32(a.act_out.theta),
                               out[lo * B * n * c:hi * B * n * c], n_out[lo:hi])
        t.count(("spikes", a.act_out.name), n_out)
        return a.proj(torch.from_numpy(out).view(tb, n, c))
