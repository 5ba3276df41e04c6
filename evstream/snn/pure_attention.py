"""The window attention in the batched step, its operands' layouts made where they are computed (issue 16).

Mode ``mst`` (:class:`PureIFAttention`, below) and mode ``ecmt`` (:class:`PureECAttention`, at the end: the two
``ECProduct`` s' running sums written in the layouts their batched matmuls take, counts on the way).

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

import numba as nb
import numpy as np
import torch
from torch import nn


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


def fits(attn) -> bool:
    """A ``WindowAttention`` whose Q, K, V, attention and output neurons are mode mst's IF (QCFS, not ECMT's),
    its products plain spike products and Q, K, V one fused linear layer: what :class:`PureIFAttention` runs."""
    from evstream.snn.ecmt import ECQCFS, ECProduct
    from evstream.snn.neurons import QCFS

    acts = [getattr(attn, a, None) for a in ("act_q", "act_k", "act_v", "act_attn", "act_out")]
    return (getattr(attn, "qkv_fused", None) is not None and all(type(a) is QCFS for a in acts)
            and not isinstance(getattr(attn, "qk", None), ECProduct) and not any(isinstance(a, ECQCFS) for a in acts))


class PureIFAttention(nn.Module):
    """Wraps a ``WindowAttention`` whose neurons have been rewritten to :class:`~evstream.snn.pure.PureIF`
    (``inner``): with ``tape.kernels`` the fused layouts above, else ``inner`` itself (the tensor path)."""

    def __init__(self, inner: nn.Module, tape):
        super().__init__()
        self.inner = inner
        object.__setattr__(self, "tape", tape)

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
        mems = []
        for act in (a.act_q, a.act_k, a.act_v):
            s, arr = t.state_array("v", None)
            t.new.append(s)
            mems.append(arr)
        thetas = np.array([a.act_q.theta, a.act_k.theta, a.act_v.theta], dtype=np.float32)
        q = np.empty(tb * h * n * d, np.float32)
        kt = np.empty_like(q)
        v = np.empty_like(q)
        spikes = np.empty((T, 3), np.int64)
        pairs_qk = np.empty(T, np.int64)
        v_rows = np.empty((tb * h, n), np.int64)
        if_qkv_heads(ya.numpy(), T, B, n, h, d, *mems, thetas, q, kt, v, spikes, pairs_qk, v_rows)
        for i, act in enumerate((a.act_q, a.act_k, a.act_v)):
            t.count(("spikes", act.name), spikes[:, i].copy())
        qt = torch.from_numpy(q).view(tb * h, n, d)
        t.count(("pairs", a.qk.name), pairs_qk)
        s = torch.baddbmm(a.bias(tb, mask01), qt, torch.from_numpy(kt).view(tb * h, d, n), alpha=a.scale)
        st, mem = t.state_array("v", None)
        t.new.append(st)
        att = np.empty((T, B * h, n, n), np.float32)
        n_attn, pairs_av = np.empty(T, np.int64), np.empty(T, np.int64)
        sa = s.numpy().reshape(T, B * h, n, n)
        if_attn_pairs(sa, T, mem, np.float32(a.act_attn.theta), att, n_attn, v_rows, pairs_av)
        t.count(("spikes", a.act_attn.name), n_attn)
        t.count(("pairs", a.av.name), pairs_av)
        o = torch.bmm(torch.from_numpy(att).view(tb * h, n, n), torch.from_numpy(v).view(tb * h, n, d))
        so, mem = t.state_array("v", None)
        t.new.append(so)
        out = np.empty(tb * n * c, np.float32)
        n_out = np.empty(T, np.int64)
        if_heads_to_tokens(o.numpy(), T, B, h, mem, np.float32(a.act_out.theta), out, n_out)
        t.count(("spikes", a.act_out.name), n_out)
        return a.proj(torch.from_numpy(out).view(tb, n, c))


# --- mode ecmt: the attention's two products with their running sums in the products' layouts -----------

@nb.njit(cache=True, nogil=True)
def ec_qk_sums(qo, ko, B, n, h, d, dec, SA, SB, sq, skt, nnz_q, nnz_k, pairs):
    """``ECProduct``'s running sums for Q·Kᵀ from the Q and K neurons' outputs ``qo``, ``ko (T, B·n·c)`` (token
    order): S_A ← d·S_A + Q into ``sq (T, B·h·n·d)`` (window, head, token, dim), S_B ← d·S_B + Kᵀ into
    ``skt`` (window, head, dim, token), the states ``SA``, ``SB`` (those layouts) in place, float32 as
    ``ecmt.running_sums``; ``nnz_q[t]``, ``nnz_k[t]`` the operands' non-zeros, ``pairs[t]`` the pair count."""
    T, c = qo.shape[0], h * d
    cq = np.zeros(d, dtype=np.int64)
    ck = np.zeros(d, dtype=np.int64)
    for t in range(T):
        nq = 0
        nk = 0
        p = 0
        for b in range(B):
            for hh in range(h):
                cq[:] = 0
                ck[:] = 0
                g = b * h + hh
                for i in range(n):
                    src = (b * n + i) * c + hh * d
                    for dd in range(d):
                        x = qo[t, src + dd]
                        ia = (g * n + i) * d + dd
                        s = np.float32(np.float32(SA[ia] * dec) + x)
                        SA[ia] = s
                        sq[t, ia] = s
                        f = x != 0
                        nq += f
                        cq[dd] += f
                        x = ko[t, src + dd]
                        ib = (g * d + dd) * n + i
                        s = np.float32(np.float32(SB[ib] * dec) + x)
                        SB[ib] = s
                        skt[t, ib] = s
                        f = x != 0
                        nk += f
                        ck[dd] += f
                for dd in range(d):
                    p += cq[dd] * ck[dd]
        nnz_q[t] = nq
        nnz_k[t] = nk
        pairs[t] = p


@nb.njit(cache=True, nogil=True)
def ec_av_sums(att, vo, B, n, h, d, dec, SA, SB, sa, sv, nnz_a, nnz_v, pairs):
    """The same for A·V: A's running sums from the attention neuron's output ``att (T, B·h·n·n)`` (its own
    layout), V's from the V neuron's ``vo (T, B·n·c)`` (token order) into ``sv`` (window, head, token, dim)."""
    T, c = att.shape[0], h * d
    ca = np.zeros(n, dtype=np.int64)
    for t in range(T):
        na = 0
        nv = 0
        p = 0
        for b in range(B):
            for hh in range(h):
                ca[:] = 0
                g = b * h + hh
                for i in range(n):
                    for k in range(n):
                        ia = (g * n + i) * n + k
                        x = att[t, ia]
                        s = np.float32(np.float32(SA[ia] * dec) + x)
                        SA[ia] = s
                        sa[t, ia] = s
                        f = x != 0
                        na += f
                        ca[k] += f
                for k in range(n):
                    rv = 0
                    src = (b * n + k) * c + hh * d
                    for dd in range(d):
                        x = vo[t, src + dd]
                        ib = (g * n + k) * d + dd
                        s = np.float32(np.float32(SB[ib] * dec) + x)
                        SB[ib] = s
                        sv[t, ib] = s
                        rv += x != 0
                    nv += rv
                    p += ca[k] * rv
        nnz_a[t] = na
        nnz_v[t] = nv
        pairs[t] = p


def fits_ecmt(attn) -> bool:
    """A ``WindowAttention`` in mode ecmt (ECMT neurons, ``ECProduct`` products, Q, K, V fused): what
    :class:`PureECAttention` runs."""
    from evstream.snn.ecmt import ECQCFS, ECProduct

    acts = [getattr(attn, a, None) for a in ("act_q", "act_k", "act_v", "act_attn", "act_out")]
    return (getattr(attn, "qkv_fused", None) is not None and all(isinstance(a, ECQCFS) for a in acts)
            and isinstance(getattr(attn, "qk", None), ECProduct) and isinstance(getattr(attn, "av", None), ECProduct))


class PureECAttention(nn.Module):
    """Mode ecmt's ``WindowAttention`` (its neurons rewritten to :class:`~evstream.snn.pure.PureEC`, its products
    to :class:`~evstream.snn.pure.PureECProduct`) with ``tape.kernels``: the neurons as they are, each product's
    running sums written by one kernel straight into the layout its batched matmul takes, the pair and
    non-zero counts on the way (``ec_qk_sums``, ``ec_av_sums``), then ``ecmt.compensated_differences`` — the
    float32 operations of the products' own kernel path, without their strided reads, counting passes and
    per-call bookkeeping. Otherwise ``inner`` itself."""

    def __init__(self, inner: nn.Module, tape):
        super().__init__()
        self.inner = inner
        object.__setattr__(self, "tape", tape)

    def _product(self, prod, kernel, a_np, b_np, shapes, B, n, h, d):
        """One ECProduct: its three states, the running sums (``kernel``), the batched matmul, the differences;
        its counts; returns the output ``(T, ...)`` as numpy ``(T, N)``."""
        from evstream.snn.ecmt import compensated_differences

        t = self.tape
        T = t.T
        arrs = []
        for role in ("SA", "SB", "P"):
            s, arr = t.state_array(role, None)
            t.new.append(s)
            arrs.append(arr)
        (sa_shape, sb_shape, p_shape, m_rows, m_cols) = shapes
        sa = np.empty((T, int(np.prod(sa_shape))), np.float32)
        sb = np.empty((T, int(np.prod(sb_shape))), np.float32)
        nnz_a, nnz_b, pairs = np.empty(T, np.int64), np.empty(T, np.int64), np.empty(T, np.int64)
        dec = np.float32(prod.d)
        kernel(a_np, b_np, B, n, h, d, dec, arrs[0], arrs[1], sa, sb, nnz_a, nnz_b, pairs)
        G = T * B * h
        ps = torch.bmm(torch.from_numpy(sa).view(G, *sa_shape[-2:]), torch.from_numpy(sb).view(G, *sb_shape[-2:]))
        out = np.empty((T, int(np.prod(p_shape))), np.float32)
        compensated_differences(ps.numpy().reshape(T, -1), arrs[2], t.w32, dec, out)
        t.count(("pairs", prod.name), pairs)
        t.count(("cross", prod.name, float(out.shape[1])), nnz_a * m_cols + nnz_b * m_rows)
        return out

    def forward(self, x, mask01=None):
        t, a = self.tape, self.inner
        if not t.kernels or t.states is None or t.once:  # discovery and the tensor path: the module as it is
            return a(x, mask01)
        T = t.T
        tb, n, c = x.shape
        B, h = tb // T, a.heads
        d = c // h
        y = a.qkv_fused(x)
        qo, ko, vo = (act(part).numpy().reshape(T, -1)
                      for act, part in zip((a.act_q, a.act_k, a.act_v), y.split(c, -1)))
        qk = self._product(a.qk, ec_qk_sums, qo, ko, ((B, h, n, d), (B, h, d, n), (B, h, n, n), n, n), B, n, h, d)
        s = torch.add(a.bias(tb, mask01).view(tb, h, n, n), torch.from_numpy(qk).view(tb, h, n, n), alpha=a.scale)
        att = a.act_attn(s).numpy().reshape(T, -1)
        av = self._product(a.av, ec_av_sums, att, vo, ((B, h, n, n), (B, h, n, d), (B, h, n, d), n, d), B, n, h, d)
        o = a.act_out(torch.from_numpy(av).view(tb, h, n, d))
        return a.proj(o.transpose(1, 2).reshape(tb, n, c))
