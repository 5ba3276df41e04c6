"""Spikformer (V2): a directly trained spiking transformer with Spiking Self-Attention, read top-down.

    Spikformer
    ├── stem (selectable, ``config.stem``):
    │     "sps" Spiking Patch Splitting (Spikformer §3.2, Eq. 7): blocks Conv3x3 s1, BN, LIF (+ MaxPool 3/2 in
    │           the last log2(patch) blocks), channels D/2^(n-1-i); suits small and neuromorphic data (§5.3)
    │     "scs" Spiking Convolutional Stem (V2 §4.1, Fig. 5): per block Conv k2 s2 (downsampling), BN, LIF,
    │           then an MLP-like conv pair Conv3x3 (c -> r·c), BN, LIF, Conv3x3 (r·c -> c), BN, LIF
    │     then the conditional position embedding: x + LIF(BN(Conv3x3(x)))       (Eqs. 2-3)
    ├── blocks: [Block] x depth
    │     x + SSA(x),  SSA = LIF(BN(Linear(LIF_attn(Q Kᵀ V · s))))                (Eqs. 4, 12, 13)
    │           Q, K, V = LIF(BN(x W_{q,k,v}))  (spikes: 0/1)   (Eq. 11; Random Spike Masking on Q, K, V)
    │           Kᵀ V first when tokens N exceed the head dimension d: O(N d²) instead of O(N² d)
    │     x + MLP(x),  MLP = LIF(BN(Linear(LIF(BN(Linear(x))))))                   (Eq. 5)
    └── head: Linear on each token's spike counts, mean over tokens (= global average pooling, then Linear)

Every spiking neuron is SpikingJelly's ``LIFNode`` (τ = 2, hard reset to 0, sigmoid surrogate gradient,
detached reset; the attention neuron fires at 0.5, as Spikformer's code). Training runs the T timesteps
multi-step (``LIFNode`` step_mode "m", the batch folded with time for the linear layers, surrogate
gradients through time); the streaming runner (mode "spikformer") switches the neurons to single-step and
keeps their membranes between ``step()`` calls. ``model(x)`` is the same SNN: ``x (B, C, H, W)`` presented
for ``config.timesteps`` steps (or ``x (T, B, C, H, W)``, one input per step), returning the mean of the
per-step class scores — the number the streaming loop's running mean reaches after T steps.

Sizes are configs (``PRESETS``): "tiny" for 32x32 N-MNIST frames on 2 CPU cores; the paper's
"8-384", "8-512" (Spikformer V2, ImageNet 224x224, patch 16, SCS) and "4-384" (CIFAR, SPS) are named.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from spikingjelly.activation_based import neuron, surrogate
from torch import nn

from evstream.snn.base import SpikingModel
from evstream.snn.config import ModelConfig
from evstream.snn.layers import BatchNorm, SpikeMatmul, fold_bn  # BN: global statistics under torchrun
from evstream.snn.neurons import lif_step, run_kernel
from evstream.snn.registry import register_arch, register_conversion
from evstream.snn.streaming import SpikingRunner


@dataclass
class SpikformerConfig(ModelConfig):
    FAMILY = "spikformer"
    in_channels: int = 8  # n_frames x 2 polarities
    num_classes: int = 10
    img_size: int = 32
    stem: str = "scs"  # "sps" (Spikformer) or "scs" (Spikformer V2)
    patch_size: int = 8  # the stem's total downsampling; tokens = (img_size / patch_size)²
    stem_blocks: int = 3  # SPS blocks (SCS uses log2(patch_size) blocks)
    stem_channels: tuple = ()  # explicit stem widths per block; () = D / 2^(n-1-i)
    scs_ratio: float = 1.0  # SCS conv-pair expansion ratio
    dim: int = 64  # D
    depth: int = 2  # encoder blocks L
    heads: int = 4
    mlp_ratio: float = 4.0
    timesteps: int = 4  # T for training and for model(x)
    tau: float = 2.0
    threshold: float = 1.0
    attn_threshold: float = 0.5
    scale: float = 0.125  # s in SSA(Q, K, V) = SN(Q Kᵀ V · s)

    def check(self) -> None:
        if self.stem not in ("sps", "scs"):
            raise ValueError(f"stem must be 'sps' or 'scs', got {self.stem!r}")
        p = self.patch_size
        if p & (p - 1) or self.img_size % p:
            raise ValueError(f"patch_size must be a power of two dividing img_size ({p}, {self.img_size})")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")


PRESETS = {
    "tiny": SpikformerConfig(),
    "tiny-t1": SpikformerConfig(timesteps=1),  # the same weights trained at T = 1 (cheap first stage; paper §5.2.1)
    "tiny-sps": SpikformerConfig(stem="sps", patch_size=4, stem_channels=(8, 32, 64)),
    # the paper's names (depth-dim); ImageNet: 224x224, patch 16 (four SCS blocks), T = 4
    "8-384": SpikformerConfig(in_channels=3, num_classes=1000, img_size=224, stem="scs", patch_size=16, dim=384,
                              depth=8, heads=12, mlp_ratio=4.0, scs_ratio=4.0),
    "8-512": SpikformerConfig(in_channels=3, num_classes=1000, img_size=224, stem="scs", patch_size=16, dim=512,
                              depth=8, heads=8, mlp_ratio=4.0, scs_ratio=4.0),
    # Spikformer V1 on CIFAR (§5.3.1): four SPS blocks, the first two without max-pooling, 64 4x4 patches
    "4-384": SpikformerConfig(in_channels=3, num_classes=10, img_size=32, stem="sps", patch_size=4, stem_blocks=4,
                              dim=384, depth=4, heads=12, mlp_ratio=4.0),
}


def make_config(cfg: dict | SpikformerConfig | None) -> SpikformerConfig:
    """A :class:`SpikformerConfig` from a preset name (``{"preset": "tiny", ...overrides}``) or fields,
    validated (:mod:`evstream.snn.config`)."""
    return SpikformerConfig.make(cfg, PRESETS)


class LIF(nn.Module):
    """SpikingJelly ``LIFNode`` with a name, Random Spike Masking and a spike count for the monitors.

    Multi-step (training, ``model(x)``): input ``(T·B, ...)`` with time folded into the batch, ``T`` set by
    the model before each forward. Single-step (streaming, after ``to_spiking()``): input ``(B, ...)``, the
    membrane kept between calls until ``reset()``. A mask ratio drops each output spike with that
    probability (drawn from ``generator`` at every call); ``last_spikes`` counts the spikes sent on.
    """

    def __init__(self, name: str, tau: float = 2.0, threshold: float = 1.0):
        super().__init__()
        self.node = neuron.LIFNode(tau=tau, v_threshold=threshold, v_reset=0.0, detach_reset=True,
                                   surrogate_function=surrogate.Sigmoid(alpha=4.0), step_mode="m")
        self.name = name
        self.T = 1
        self.mask_ratio = 0.0
        self.generator: torch.Generator | None = None
        self.last_spikes = 0
        self.last_numel = 0

    @property
    def spiking(self) -> bool:  # single-step streaming view
        return self.node.step_mode == "s"

    def to_spiking(self) -> None:
        self.node.step_mode = "s"
        self.node.reset()

    def reset(self) -> None:
        self.node.reset()
        self.last_spikes = 0

    def _fire(self, x: torch.Tensor, keep: torch.Tensor | None):
        """One inference step of the same LIF update in one numba pass (``neurons.lif_step``, tested equal to
        SpikingJelly's): h = v + (x − v)/τ, spike where h ≥ θ, hard reset to 0; the membrane stays in the
        node. Returns the spikes sent (``keep`` masks them after the reset) and their number."""
        v = self.node.v
        if not isinstance(v, torch.Tensor) or v.shape != x.shape:
            v = torch.zeros(x.shape)
            self.node.v = v
        return run_kernel(lif_step, x, v, keep, self.node.tau, self.node.v_threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = None
        if self.mask_ratio > 0:
            keep = torch.rand(x.shape, generator=self.generator, device=x.device) >= self.mask_ratio
        if self.spiking and not torch.is_grad_enabled():
            s, n = self._fire(x, keep)
            # per-step numbers straight into the instance dict: nn.Module.__setattr__ is slow per call
            self.__dict__.update(last_spikes=int(n), last_numel=s.numel())
            return s
        if self.spiking:
            s = self.node(x)
        else:
            s = self.node(x.reshape(self.T, -1, *x.shape[1:])).reshape(x.shape)
        if keep is not None:
            s = s * keep
        if not self.training:
            self.last_spikes = int(s.count_nonzero())
            self.last_numel = s.numel()
        return s

    def extra_repr(self) -> str:
        return f"{self.name}, τ={self.node.tau}, θ={self.node.v_threshold}, spiking={self.spiking}"


def _counts_input(m: nn.Module) -> nn.Module:
    """Mark a layer whose input holds spike counts (0, 1, 2, ...): evstream.energy counts one accumulate per
    arriving spike and output it fans out to (the residual stream of Spikformer adds spike trains)."""
    m.counts_input = True
    return m


class ConvBNLIF(nn.Sequential):
    def __init__(self, cin, cout, k, s, name, cfg, pad=None, analog=False):
        conv = nn.Conv2d(cin, cout, k, s, (k // 2 if pad is None else pad), bias=False)
        super().__init__(conv if analog else _counts_input(conv), BatchNorm(cout, channel_dim=1),
                         LIF(name, cfg.tau, cfg.threshold))


class SPS(nn.Module):
    """Spiking Patch Splitting: [Conv3x3 s1, BN, LIF, (MaxPool 3/2)] per block. The first conv sees the
    analog frames (``conv_in``, counted as MACs); max-pooling in the last log2(patch) blocks."""

    def __init__(self, cfg: SpikformerConfig, chans):
        super().__init__()
        n, pools = len(chans), int(math.log2(cfg.patch_size))
        if pools > n:
            raise ValueError(f"SPS with {n} blocks cannot downsample by {cfg.patch_size} (one max-pool per block)")
        self.conv_in = nn.Conv2d(cfg.in_channels, chans[0], 3, 1, 1, bias=False)
        self.bn_in = BatchNorm(chans[0], channel_dim=1)
        self.lif_in = LIF("stem.0", cfg.tau, cfg.threshold)
        self.pool_in = nn.MaxPool2d(3, 2, 1) if n - pools == 0 else nn.Identity()
        layers = []
        for i in range(1, n):
            layers.append(ConvBNLIF(chans[i - 1], chans[i], 3, 1, f"stem.{i}", cfg))
            if i >= n - pools:
                layers.append(nn.MaxPool2d(3, 2, 1))
        self.rest = nn.Sequential(*layers)

    def forward_rest(self, x):
        return self.rest(self.pool_in(self.lif_in(x)))


class SCS(nn.Module):
    """Spiking Convolutional Stem: per block a Conv k2 s2 (downsampling, no max-pool), BN, LIF, then the
    MLP-like pair Conv3x3 c -> r·c, BN, LIF, Conv3x3 r·c -> c, BN, LIF. The first conv is ``conv_in``."""

    def __init__(self, cfg: SpikformerConfig, chans):
        super().__init__()
        self.conv_in = nn.Conv2d(cfg.in_channels, chans[0], 2, 2, 0, bias=False)
        self.bn_in = BatchNorm(chans[0], channel_dim=1)
        self.lif_in = LIF("stem.0.down", cfg.tau, cfg.threshold)
        layers = []
        for i, c in enumerate(chans):
            if i:
                layers.append(ConvBNLIF(chans[i - 1], c, 2, 2, f"stem.{i}.down", cfg, pad=0))
            hidden = max(1, int(round(c * cfg.scs_ratio)))
            layers.append(ConvBNLIF(c, hidden, 3, 1, f"stem.{i}.expand", cfg))
            layers.append(ConvBNLIF(hidden, c, 3, 1, f"stem.{i}.project", cfg))
        self.rest = nn.Sequential(*layers)

    def forward_rest(self, x):
        return self.rest(self.lif_in(x))


def ssa_product(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kv_first: bool, first=torch.matmul,
                second=torch.matmul) -> torch.Tensor:
    """Q Kᵀ V for ``(..., N, d)`` spike tensors in either association order (equal: no softmax between);
    ``first`` and ``second`` compute the two products (the SSA module passes its :class:`SpikeMatmul` s)."""
    if kv_first:
        return second(q, first(k.transpose(-2, -1), v))
    return second(first(q, k.transpose(-2, -1)), v)



class SSA(nn.Module):
    """Spiking Self-Attention, multi-head: Q, K, V = LIF(BN(x W)), SSA' = LIF_0.5(Q Kᵀ V · s),
    out = LIF(BN(Linear(SSA'))). No softmax; the product order follows the cheaper association."""

    def __init__(self, cfg: SpikformerConfig, name: str):
        super().__init__()
        d = cfg.dim
        self.heads, self.scale = cfg.heads, cfg.scale
        self.q, self.k, self.v = (_counts_input(nn.Linear(d, d, bias=False)) for _ in range(3))
        self.q_bn, self.k_bn, self.v_bn = BatchNorm(d), BatchNorm(d), BatchNorm(d)
        self.q_lif = LIF(f"{name}.q", cfg.tau, cfg.threshold)
        self.k_lif = LIF(f"{name}.k", cfg.tau, cfg.threshold)
        self.v_lif = LIF(f"{name}.v", cfg.tau, cfg.threshold)
        self.attn_lif = LIF(f"{name}.attn", cfg.tau, cfg.attn_threshold)
        self.proj = _counts_input(nn.Linear(d, d))
        self.proj_bn = BatchNorm(d)
        self.proj_lif = LIF(f"{name}.out", cfg.tau, cfg.threshold)
        self.first_product, self.second_product = SpikeMatmul(), SpikeMatmul()
        self.kv_first: bool | None = None  # None: Kᵀ V first when N > d (decided per call)

    def forward(self, x):
        tb, n, c = x.shape
        h, d = self.heads, c // self.heads

        def heads(t):
            return t.view(tb, n, h, d).transpose(1, 2)

        q = heads(self.q_lif(self.q_bn(self.q(x))))
        k = heads(self.k_lif(self.k_bn(self.k(x))))
        v = heads(self.v_lif(self.v_bn(self.v(x))))
        kv_first = n > d if self.kv_first is None else self.kv_first
        y = ssa_product(q, k, v, kv_first, self.first_product, self.second_product) * self.scale
        y = self.attn_lif(y.transpose(1, 2).reshape(tb, n, c))
        return self.proj_lif(self.proj_bn(self.proj(y)))


class MLP(nn.Module):
    def __init__(self, cfg: SpikformerConfig, name: str):
        super().__init__()
        hidden = int(cfg.dim * cfg.mlp_ratio)
        self.fc1 = _counts_input(nn.Linear(cfg.dim, hidden))
        self.bn1 = BatchNorm(hidden)
        self.lif1 = LIF(f"{name}.mlp_hidden", cfg.tau, cfg.threshold)
        self.fc2 = _counts_input(nn.Linear(hidden, cfg.dim))
        self.bn2 = BatchNorm(cfg.dim)
        self.lif2 = LIF(f"{name}.mlp_out", cfg.tau, cfg.threshold)

    def forward(self, x):
        return self.lif2(self.bn2(self.fc2(self.lif1(self.bn1(self.fc1(x))))))


class Block(nn.Module):
    def __init__(self, cfg: SpikformerConfig, name: str):
        super().__init__()
        self.attn = SSA(cfg, f"{name}.attn")
        self.mlp = MLP(cfg, name)

    def forward(self, x):
        x = x + self.attn(x)
        return x + self.mlp(x)


@register_arch("spikformer")
class Spikformer(SpikingModel):
    """See the module docstring. ``forward(x)``: ``x (B, C, H, W)`` (repeated for ``config.timesteps``
    steps) or ``x (T, B, C, H, W)`` -> mean class scores over the steps ``(B, num_classes)``."""

    arch = "spikformer"
    CONFIG, PRESETS = SpikformerConfig, PRESETS
    modes = ("spikformer",)  # the streaming views of this family; the first is the default

    def __init__(self, config: dict | SpikformerConfig | None = None):
        super().__init__()
        cfg = self.config = make_config(config)
        if cfg.stem == "scs":
            n = int(math.log2(cfg.patch_size))
        else:
            n = len(cfg.stem_channels) or cfg.stem_blocks
        chans = list(cfg.stem_channels) or [max(1, cfg.dim // 2 ** (n - 1 - i)) for i in range(n)]
        if len(chans) != n:
            raise ValueError(f"stem_channels {chans}: the {cfg.stem} stem has {n} blocks")
        if chans[-1] != cfg.dim:
            raise ValueError(f"the stem's last width {chans[-1]} must equal dim {cfg.dim}")
        self.stem = SPS(cfg, chans) if cfg.stem == "sps" else SCS(cfg, chans)
        self.rpe = ConvBNLIF(cfg.dim, cfg.dim, 3, 1, "stem.rpe", cfg)
        self.blocks = nn.Sequential(*[Block(cfg, f"block{i}") for i in range(cfg.depth)])
        self.head = _counts_input(nn.Linear(cfg.dim, cfg.num_classes))
        self.streaming = False
        self.set_mask_ratio(0.0)

    # --- forward ---------------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, T: int, token_mask: torch.Tensor | None = None,
               static: bool = True) -> torch.Tensor:
        """Tokens ``(T·B, N, D)`` (spike counts) after the blocks. ``x`` is ``(T·B, C, H, W)``, one input per
        step, time-major (``static=False``), or ``(B, C, H, W)``, repeated for the T steps (its analog first conv + BN
        is computed once and repeated: the same values). ``token_mask (B, h, w)`` of 0/1 (MAE pre-training,
        static input): masked patches are zeroed in the input and after every stem stage (a dense emulation
        of sparse convolution, so no masked patch leaks into a visible one) and only the kept tokens (the
        same number in every sample) enter the blocks."""
        if not self.streaming:  # single-step neurons (streaming) ignore T: no walk over the modules per step
            for m in self.activations():
                m.T = T
        keep = None
        if token_mask is not None:
            keep = token_mask[:, None].to(x.dtype)  # (B, 1, h, w)
            x = _masked(x, keep)
        y = self.stem.bn_in(self.stem.conv_in(x))
        if static and T > 1:
            y = y.repeat(T, 1, 1, 1)
            keep = keep.repeat(T, 1, 1, 1) if keep is not None else None
        if keep is None:
            y = self.stem.forward_rest(y)
            y = y + self.rpe(y)
            return self.blocks(y.flatten(2).transpose(1, 2))
        y = _masked(self.stem.lif_in(_masked(y, keep)), keep)
        if isinstance(self.stem, SPS):
            y = _masked(self.stem.pool_in(y), keep)
        for m in self.stem.rest:
            y = _masked(m(y), keep)
        y = _masked(y + self.rpe(y), keep)
        tokens = y.flatten(2).transpose(1, 2)  # (T·B, N, D)
        idx = keep.flatten(1).bool()
        n_keep = int(idx[0].sum())
        if not bool((idx.sum(1) == n_keep).all()):
            raise ValueError("token_mask must keep the same number of tokens in every sample")
        return self.blocks(tokens[idx].view(tokens.shape[0], n_keep, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.streaming:  # one timestep; the neurons keep their membranes (the runner resets them)
            return self.head(self.encode(x, 1)).mean(1)
        self.reset_state()
        if x.dim() == 5:
            T, b = x.shape[:2]
            z = self.encode(x.flatten(0, 1), T, static=False)
        else:
            T, b = self.config.timesteps, x.shape[0]
            z = self.encode(x, T)
        logits = self.head(z).mean(1)  # Linear on every token's spike counts, then the token mean (= GAP + Linear)
        return logits.view(T, b, -1).mean(0)

    # --- inference rewrites (the streaming runner's copy) --------------------------------------------------
    def fuse(self) -> "Spikformer":
        """Every BatchNorm folded into the convolution or linear layer before it: the same function up to
        float rounding, two dozen fewer operations per step (the energy model counts them folded already).
        Inference only, in place (the streaming runner calls it on its copy); train the unfused model."""
        self.eval()
        fold_bn(self.stem.conv_in, self.stem.bn_in)
        self.stem.bn_in = nn.Identity()
        for m in self.modules():
            if isinstance(m, ConvBNLIF):
                fold_bn(m[0], m[1])
                m[1] = nn.Identity()
            elif isinstance(m, SSA):
                for lin in ("q", "k", "v", "proj"):
                    fold_bn(getattr(m, lin), getattr(m, f"{lin}_bn"))
                    setattr(m, f"{lin}_bn", nn.Identity())
            elif isinstance(m, MLP):
                fold_bn(m.fc1, m.bn1)
                fold_bn(m.fc2, m.bn2)
                m.bn1 = m.bn2 = nn.Identity()
        return self

    def spike_sources(self) -> dict:
        """{layer: the neuron layer whose output is its whole input}: such a layer receives exactly that
        layer's spikes (0/1: its SOPs are that spike count x fan-out, ``evstream.energy.OpCounter``). The
        others (Q, K, V, the first MLP layer, the head) read the residual stream of summed spike trains."""
        fed = {}
        for name, m in self.named_modules():
            if isinstance(m, SSA):
                fed[f"{name}.proj"] = m.attn_lif
            elif isinstance(m, MLP):
                fed[f"{name}.fc2"] = m.lif1
        # the stem: a convolution right after a LIF (no max-pool between), and the RPE's after the stem's last
        prev = self.stem.lif_in if isinstance(self.stem, SCS) or isinstance(self.stem.pool_in, nn.Identity) else None
        for i, m in enumerate(self.stem.rest):
            if isinstance(m, ConvBNLIF):
                if prev is not None:
                    fed[f"stem.rest.{i}.0"] = prev
                prev = m[2]
            else:
                prev = None
        if prev is not None:
            fed["rpe.0"] = prev
        return fed

    # --- neurons, masking, streaming ------------------------------------------------------------------
    MASKABLE = {"q": ".attn.q", "k": ".attn.k", "v": ".attn.v", "attn": ".attn.attn", "out": ".attn.out",
                "mlp": ".mlp_", "stem": "stem."}
    MASKED_BY_RATIO = ("q", "k", "v")  # a bare ratio masks the Q, K and V spikes
    NEURON = LIF

    def reset_state(self) -> None:
        for m in self.activations():
            m.reset()


def _masked(y, keep):
    if keep.shape[-1] != y.shape[-1]:  # the token mask upsampled to this stage's resolution
        f = y.shape[-1] // keep.shape[-1]
        keep = keep.repeat_interleave(f, -1).repeat_interleave(f, -2)
    return y * keep


@register_conversion("spikformer")
class SpikformerRunner(SpikingRunner):
    """Mode "spikformer": the directly trained SNN one timestep per ``step(x_t)``, the same API, monitors
    and energy rules as :class:`~evstream.snn.streaming.SpikingRunner` (no conversion: the weights are used
    as trained; the neurons switch from multi-step to single-step and keep their membranes)."""

    analog = {"stem.conv_in"}  # the first conv sees the analog frames: MACs; every other layer gets spikes

    def convert(self, model):
        # the LIFs' membranes of the model's last forward pass: after a training step they are part of an
        # autograd graph, which deepcopy refuses ("only graph leaves support the deepcopy protocol")
        model.reset_state()
        snn = super().convert(model)  # a copy, every LIF single-step
        snn.streaming = True
        return snn
