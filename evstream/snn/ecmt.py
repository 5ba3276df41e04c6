"""ECMT conversion mode: expectation compensation + multi-threshold neurons (Huang et al., "Towards
High-performance Spiking Transformers from ANN to SNN Conversion"; supplement in shared/papers).

    snn = model.spiking(mode="ecmt")            # same checkpoint, same streaming API as mode "mst"
    cal = calibrate(model, x_train)             # base thresholds from training activations (deterministic)
    calibrate_checkpoint("models/m.pt")         # the same, stored in the checkpoint's meta["ecmt"]
    python -m evstream.snn.ecmt MODEL.pt [--limit 300] [--percentile 99] [--levels 8] [--out OUT.pt]

What the conversion does to the MST (evstream/snn/mst.py), on a deep copy:

- **Expectation compensation of every non-linearity** (Theorem 1). MST's only element-wise non-linearity
  is QCFS (BatchNorm is affine at inference, so the mean passes through it unchanged). Each QCFS becomes
  an ``ECQCFS`` that keeps the running sum S(t) of its analog input and outputs
      O(t) = t·F(S(t)/t) − (t−1)·F(S(t−1)/(t−1)),
  so the sum of its outputs after T steps is exactly T·F(mean input): the ANN's activation of the mean.
- **Products of two spike matrices** (Q·Kᵀ and A·V, Theorem 2): ``ECProduct`` keeps S_A, S_B and outputs
  S_A(t)S_B(t)/t − S_A(t−1)S_B(t−1)/(t−1); the outputs sum to S_A(T)S_B(T)/T.
- **Multi-threshold neurons** (``MTNeuron``) turn each compensated output back into spikes for the next
  linear layer: signed levels ±θ·2^k (k = 0..n−1), at most one spike per step, the level nearest to the
  membrane (nothing below θ/2), soft reset (the fired level is subtracted), membrane starting at 0. The
  base threshold θ of each neuron layer comes from ``calibrate`` (the top level θ·2^(n−1) is the p-th
  percentile, default 99, of that layer's ANN activations over training data) or, for a checkpoint without
  meta["ecmt"], from the QCFS clip λ (top level = λ, the largest value a QCFS can output).
- **The classifier keeps analog input** (as the paper): the head's compensated activation goes to the
  token mean and the linear classifier without a neuron (MACs).
- Random Spike Masking acts on the multi-threshold spikes (a masked spike is not transmitted; the
  membrane was already reset, as in mode "mst").

Live streams: with ``decay`` d the compensation uses exponentially weighted sums (S ← d·S + x, W ← d·W + 1,
O(t) = W(t)F(S/W) − d·W(t−1)F(S'/W')), so the expectation follows the scene; ``reset_mean()`` clears the
expectations and the output mean but keeps the membranes.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from evstream.errors import CheckpointError, EvstreamError
from evstream.snn.mst import WindowAttention, _pair_ops
from evstream.snn.neurons import QCFS
from evstream.snn.streaming import SpikingRunner, StepResult

DEFAULT_LEVELS = 8
DEFAULT_PERCENTILE = 99.0


# --- multi-threshold neuron ----------------------------------------------------------------------------

class MTNeuron:
    """Signed multi-threshold neuron: levels ±θ·2^k, k = 0..n−1; one spike (one level) per step at most.

    Each step: m = v + x; the fired level is the one nearest to m (none while |m| ≤ θ/2, the top level
    above it), s = ±level; v = m − s (soft reset). So the running sum of the output equals the running sum
    of the input minus the membrane, and |v| ≤ max(θ/2, |m|/3) while |m| ≤ 1.5·θ·2^(n−1).
    """

    def __init__(self, theta: float, n: int = DEFAULT_LEVELS):
        if not (theta > 0 and math.isfinite(theta)):
            raise ValueError(f"multi-threshold base threshold must be positive, got {theta}")
        self.theta, self.n = float(theta), int(n)
        pw = [2.0 ** k for k in range(self.n)]
        # nearest-level boundaries: θ/2, then the midpoints 1.5·θ·2^k between θ·2^k and θ·2^(k+1)
        self.bounds = torch.tensor([0.5 * self.theta] + [1.5 * self.theta * p for p in pw[:-1]])
        self.table = torch.tensor([0.0] + [self.theta * p for p in pw])
        self.v: torch.Tensor | float = 0.0

    @property
    def levels(self) -> list[float]:
        return self.table[1:].tolist()

    def reset(self) -> None:
        self.v = 0.0

    def __call__(self, x: torch.Tensor):
        """(spike values s, level index k in 0..n with 0 = no spike, membrane before firing m)."""
        m = x + self.v
        k = torch.bucketize(m.abs(), self.bounds)
        s = torch.copysign(self.table[k], m)
        self.v = m - s
        return s, k, m


# --- expectation compensation --------------------------------------------------------------------------

class ECQCFS(QCFS):
    """A QCFS as an expectation-compensated non-linearity (Theorem 1), followed by a multi-threshold
    neuron (``theta`` given) or not (analog output, for the classifier).

    Stays a ``QCFS`` (name, λ, L, mask ratio and generator) so that the model's ``activations()`` and
    ``set_mask_ratio`` work unchanged. ``last_spikes`` / ``last_levels`` hold this step's spike count and
    per-level counts after masking; ``_extra_ops`` the compensation's own operations (counted by
    ``evstream.energy.OpCounter``).
    """

    def __init__(self, src: QCFS, theta: float | None, n: int = DEFAULT_LEVELS, decay: float | None = None):
        super().__init__(src.levels, float(src.threshold.detach().abs()), src.name)
        self.lam = float(src.threshold.detach().abs()) + 1e-6  # exactly the ANN's λ (QCFS.forward adds 1e-6)
        self.mask_ratio, self.generator = src.mask_ratio, src.generator
        self.spiking = True
        self.decay = float(decay) if decay else 1.0
        self.mt = MTNeuron(theta, n) if theta is not None else None
        self.count_extra = False
        self._extra_ops = (0.0, 0.0)
        self.last_levels = None
        self.reset()

    def reset(self) -> None:
        self.reset_expectation()
        if self.mt is not None:
            self.mt.reset()
        self.last_spikes = 0
        self.last_levels = None

    def reset_expectation(self) -> None:
        self.S = None  # running (weighted) sum of the input
        self.W = 0.0  # running (weighted) number of steps
        self.G = None  # W·F(S/W) of the previous step

    def compensate(self, x: torch.Tensor) -> torch.Tensor:
        """O(t) = W(t)F(S(t)/W(t)) − d·W(t−1)F(S(t−1)/W(t−1)) with F = QCFS (Theorem 1; d = 1: plain sums)."""
        d, L = self.decay, self.levels
        self.S = x.clone() if self.S is None else self.S.mul_(d).add_(x) if d != 1.0 else self.S.add_(x)
        self.W = d * self.W + 1.0
        g = (self.S * (L / (self.lam * self.W))).add_(0.5).floor_().clamp_(0, L).mul_(self.lam * self.W / L)
        out = g if self.G is None else g - (self.G * d if d != 1.0 else self.G)
        self.G = g
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.compensate(x)
        if self.count_extra:  # the sum update, the scaling by 1/W and by W, the difference: 2 MACs per element
            self._extra_ops = (0.0, 2.0 * o.numel())
        if self.mt is None:
            self.last_numel = o.numel()
            return o
        s, k, m = self.mt(o)
        if self.mask_ratio > 0:
            keep = torch.rand(s.shape, generator=self.generator, device=s.device) >= self.mask_ratio
            s, k = s * keep, k * keep
        self.last_spikes = int(s.count_nonzero())
        self.last_numel = s.numel()
        self._k, self._neg = k, m < 0
        self.last_levels = None
        return s

    def level_counts(self) -> dict:
        """This step's spikes per level: {"theta", "pos": [count of +θ·2^k], "neg": [count of −θ·2^k]}."""
        if self.mt is None:
            return {"theta": None, "pos": [], "neg": []}
        if self.last_levels is None:
            n = self.mt.n
            c = torch.bincount((self._k + (n + 1) * self._neg).flatten(), minlength=2 * (n + 1)).tolist()
            self.last_levels = {"theta": self.mt.theta, "pos": c[1:n + 1], "neg": c[n + 2:]}
        return self.last_levels

    def extra_repr(self) -> str:
        mt = f"θ={self.mt.theta:.4g} x 2^0..{self.mt.n - 1}" if self.mt else "analog output"
        return f"{self.name}, L={self.levels}, λ={self.lam:.3f}, EC + {mt}"


class ECProduct(nn.Module):
    """Expectation-compensated product of two spike matrices (Theorem 2): the outputs sum to S_A S_B / T.

    Computed as P(t) − d·P(t−1) with P(t) = S_A(t)S_B(t)/W(t) (one matmul, the same numbers as the
    incremental form of Eq. 6–7). Counted by that incremental form, which is what a neuromorphic chip
    runs: the spike-spike term pairs(A(t), B(t)) (counted by the attention module, as in mode "mst"), plus
    here the spike x running-sum terms nnz(A(t))·m + nnz(B(t))·n and the 3·n·m additions that accumulate
    the parts (SOPs), and one MAC per output element for the 1/T normalisation.
    """

    def __init__(self, decay: float | None = None):
        super().__init__()
        self.decay = float(decay) if decay else 1.0
        self.count_extra = False
        self._extra_ops = (0.0, 0.0)
        self.reset()

    def reset(self) -> None:
        self.SA = self.SB = self.P = None
        self.W = 0.0

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        d = self.decay
        first = self.SA is None
        if first:
            self.SA, self.SB = a.clone(), b.clone()
        elif d != 1.0:
            self.SA.mul_(d).add_(a)
            self.SB.mul_(d).add_(b)
        else:
            self.SA.add_(a)
            self.SB.add_(b)
        self.W = d * self.W + 1.0
        p = (self.SA @ self.SB).div_(self.W)
        out = p if first else p - (self.P * d if d != 1.0 else self.P)
        self.P = p
        if self.count_extra:
            n, m, outs = a.shape[-2], b.shape[-1], float(out.numel())
            cross = 0.0 if first else float(a.count_nonzero()) * m + float(b.count_nonzero()) * n + 3 * outs
            self._extra_ops = (cross, outs)
        return out


class ECMTWindowAttention(WindowAttention):
    """``WindowAttention`` whose Q·Kᵀ and A·V go through ``ECProduct`` (set on the converted copy)."""

    def forward(self, x, mask01=None):
        bw, n, c = x.shape
        h, d = self.heads, c // self.heads
        q = self.act_q(self.q(x)).view(bw, n, h, d).transpose(1, 2)
        k = self.act_k(self.k(x)).view(bw, n, h, d).transpose(1, 2)
        v = self.act_v(self.v(x)).view(bw, n, h, d).transpose(1, 2)
        kt = k.transpose(-2, -1)
        bias = self.bias_table[self.bias_index].permute(2, 0, 1)
        a = self.act_attn(self.qk(q, kt) * self.scale + bias)
        if mask01 is not None:
            nw = mask01.shape[0]
            a = (a.view(bw // nw, nw, h, n, n) * mask01[None, :, None]).view(bw, h, n, n)
        if self.count_pairs:  # the spike-spike term A(t)B(t) of Eq. 7, counted as in mode "mst"
            self._qk_ops, self._av_ops = _pair_ops(q, kt), _pair_ops(a, v)
            self._qk_dense = self._av_dense = bw * h * n * n * d
        out = self.act_out(self.av(a, v)).transpose(1, 2).reshape(bw, n, c)
        return self.proj(out)


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
    was_training = model.training
    model.eval()
    acts = model.activations()
    hist = {a.name: torch.zeros(a.levels + 1, dtype=torch.float64) for a in acts}

    def hook(mod, args, out):
        q = (out / ((mod.threshold.abs() + 1e-6) / mod.levels)).round().clamp(0, mod.levels).long()
        hist[mod.name] += torch.bincount(q.flatten(), minlength=mod.levels + 1).double()

    handles = [a.register_forward_hook(hook) for a in acts]
    try:
        for i in range(0, len(x), batch):
            model(x[i:i + batch])
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    top, theta = {}, {}
    for a in acts:
        lam = float(a.threshold.detach().abs()) + 1e-6
        cdf = hist[a.name].cumsum(0) / hist[a.name].sum()
        idx = int(torch.searchsorted(cdf, torch.tensor([percentile / 100.0], dtype=torch.float64)).clamp(max=a.levels))
        value = idx * lam / a.levels if idx > 0 else lam
        top[a.name] = value
        theta[a.name] = value / 2 ** (levels - 1)
    return {"version": 1, "percentile": float(percentile), "levels": int(levels), "samples": int(len(x)),
            "theta": theta, "top": top}


def calibrate_checkpoint(path, out=None, limit: int = 300, percentile: float = DEFAULT_PERCENTILE,
                         levels: int = DEFAULT_LEVELS, root=None, labels=None) -> dict:
    """Calibrate a checkpoint on its own training split (``meta["dataset"]``, ``meta["split"]``) and store
    the result in its meta["ecmt"] (written to ``out``, default: the checkpoint itself)."""
    from evstream.evaluate import eval_inputs
    from evstream.snn.checkpoint import load_checkpoint, save_checkpoint

    model, meta = load_checkpoint(path)
    ds = meta.get("dataset") or {}
    if not ds.get("name") or not (root or ds.get("root")):
        raise CheckpointError("no training dataset recorded in meta['dataset'] (give root=)", where=path)
    x, _, _ = eval_inputs(meta, ds["name"], root or ds["root"], labels or ds.get("labels"), "train", limit)
    cal = calibrate(model, x, percentile, levels)
    cal["split"] = "train"
    meta = dict(meta)
    meta["ecmt"] = cal
    save_checkpoint(out or path, model, meta)
    return cal


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
    ``spikes_per_level[name] = {"theta": θ, "pos": [count at +θ·2^k], "neg": [count at −θ·2^k]}``."""
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
        if type(mod) is WindowAttention:
            mod.__class__ = ECMTWindowAttention
            mod.qk, mod.av = ECProduct(decay), ECProduct(decay)
    return snn, n, source


class ECMTRunner(SpikingRunner):
    """Streaming inference in mode "ecmt": ``reset()``, ``step(x_t)``, ``run(x, T)``, ``set_mask_ratio``.

    Thresholds come from ``calibration`` (default: the model's meta["ecmt"], written by ``calibrate``)
    or, without one, from the QCFS λ (top level = λ). ``levels`` overrides the number of levels per sign.
    """

    analog = {"reduction", "patch_embed", "head"}

    def __init__(self, model, mask_ratio=0.0, seed: int = 0, decay: float | None = None, count_ops: bool = True,
                 calibration: dict | None = None, levels: int | None = None):
        from evstream.energy import OpCounter

        if calibration is None:
            calibration = (getattr(model, "meta", None) or {}).get("ecmt")
        self.ann = model
        self.model, self.levels, self.threshold_source = convert(model, calibration, levels, decay)
        self.seed = seed
        self.decay = decay
        self.generator = torch.Generator().manual_seed(seed)
        self.model.set_mask_ratio(mask_ratio, self.generator)
        self.products = [m for m in self.model.modules() if isinstance(m, ECProduct)]
        self.counter = OpCounter(self.model, self.analog, spiking=True) if count_ops else None
        self.count_levels = count_ops
        self.reset()

    def reset(self) -> None:
        super().reset()
        for p in self.products:
            p.reset()
        self._w = 0.0

    def reset_mean(self) -> None:
        """A scene change: forget the expectations and the running output, keep the membranes."""
        super().reset_mean()
        for m in self.model.activations():
            m.reset_expectation()
        for p in self.products:
            p.reset()
        self._w = 0.0

    @torch.no_grad()
    def step(self, x_t: torch.Tensor) -> ECMTStepResult:
        """Exactly one timestep for a batch ``x_t (B, C, H, W)``. ``logits`` is this step's compensated
        output; ``mean`` the (weighted) mean of the outputs, which by Theorem 1 is the classifier applied
        to the compensated mean of its input."""
        from evstream.energy import mst_power_alpha

        logits = self.model(x_t)
        self.t += 1
        d = self.decay or 1.0
        self._sum = logits.clone() if self._sum is None else self._sum.mul_(d).add_(logits)
        self._w = d * self._w + 1.0
        self._k += 1
        mean = self._sum / self._w
        acts = self.model.activations()
        spikes = {m.name: m.last_spikes for m in acts}
        levels = {m.name: m.level_counts() for m in acts} if self.count_levels else {}
        total = sum(spikes.values())
        self.total_spikes += total
        ops = self.counter.take() if self.counter else None
        e = ops.energy_uJ if ops else 0.0
        self.total_energy_uJ += e
        p = torch.softmax(mean, dim=-1)
        top2 = p.topk(min(2, p.shape[-1]), dim=-1).values
        margin = top2[:, 0] - (top2[:, 1] if top2.shape[-1] > 1 else 0)
        return ECMTStepResult(self.t, logits, mean, top2[:, 0], margin, spikes, total,
                              ops.sops if ops else 0.0, ops.macs if ops else 0.0, e, mst_power_alpha(total),
                              levels)


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m evstream.snn.ecmt",
                                 description="calibrate a checkpoint's ECMT thresholds on its training split")
    ap.add_argument("model")
    ap.add_argument("--out", default=None, help="write here instead of updating MODEL")
    ap.add_argument("--limit", type=int, default=300, help="training samples (0: all)")
    ap.add_argument("--percentile", type=float, default=DEFAULT_PERCENTILE)
    ap.add_argument("--levels", type=int, default=DEFAULT_LEVELS)
    ap.add_argument("--root", default=None, help="dataset root (default: the one in the checkpoint)")
    ap.add_argument("--labels", default=None)
    args = ap.parse_args(argv)
    try:
        cal = calibrate_checkpoint(args.model, args.out, args.limit, args.percentile, args.levels, args.root,
                                   args.labels)
    except EvstreamError as exc:
        print(f"error: {exc}")
        return 2
    print(f"calibrated {len(cal['theta'])} neuron layers on {cal['samples']} training samples "
          f"(p{cal['percentile']:g}, {cal['levels']} levels) -> {args.out or args.model}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
