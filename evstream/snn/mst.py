"""The channel-reduced Masked Spiking Transformer (MST): a Swin Transformer with BatchNorm in place of
LayerNorm and QCFS activations, read top-down.

    MST
    ├── reduction: 1x1 conv, n_frames·2 polarity channels -> 3 (the neuromorphic front, paper Fig. 4)
    ├── patch_embed: conv k=s=patch, 3 -> dim, BN, QCFS           (the first layer takes analog input)
    ├── stages: [SwinStage(depth, heads, window)] with PatchMerging between them
    │     └── SwinBlock:  x + proj(Attention(QCFS(BN(x))))          windowed, shifted every other block
    │                     x + MLP(QCFS(BN(x)))                      MLP = Linear, BN, QCFS, Linear, BN (Eq. 9)
    │           Attention: Q = QCFS(x Wq), K = QCFS(x Wk), V = QCFS(x Wv)
    │                      A = QCFS(Q Kᵀ / √d + B)   (no softmax: MST Eq. 7)    out = QCFS(A V)
    └── head: QCFS(BN(x)) -> mean over tokens -> Linear -> class scores

Every QCFS is one named activation; ``evstream.snn.streaming`` turns each into an IF neuron (the SNN view
of the same weights). Sizes are configs (``PRESETS``): "tiny" runs live on 2 CPU cores; "swin-t-bn" is the
paper's Swin-T (BN).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from evstream.snn.base import SpikingModel
from evstream.snn.config import ModelConfig
# BatchNorm: global statistics under torchrun
from evstream.snn.layers import BatchNorm, FastLinear, SpikeMatmul, bn_scale_shift, fold_bn
from evstream.snn.neurons import QCFS
from evstream.snn.registry import register_arch


@dataclass
class MSTConfig(ModelConfig):
    FAMILY = "mst"
    in_channels: int = 8  # n_frames x 2 polarities
    num_classes: int = 10
    img_size: int = 32
    reduce_to: int = 3  # the reduction layer's output channels (paper: 3)
    patch_size: int = 2
    dim: int = 32
    depths: tuple = (2, 2)
    heads: tuple = (2, 4)
    window: int = 4
    mlp_ratio: float = 2.0
    levels: int = 16  # QCFS quantisation levels L
    threshold: float = 3.0  # initial λ

    def check(self) -> None:
        if len(self.depths) != len(self.heads) or not self.depths:
            raise ValueError(f"mst config: depths {list(self.depths)} and heads {list(self.heads)} must have one "
                             "entry per stage")
        if self.img_size % self.patch_size:
            raise ValueError(f"mst config: patch_size {self.patch_size} must divide img_size {self.img_size}")
        for s, h in enumerate(self.heads):
            if (self.dim << s) % h:
                raise ValueError(f"mst config: stage {s} width {self.dim << s} is not divisible by {h} heads")


PRESETS = {
    "tiny": MSTConfig(),
    "small": MSTConfig(dim=48, depths=(2, 4), heads=(3, 6)),
    # the paper's backbone: Swin-T with BN, 224x224 input, patch 4, window 7
    "swin-t-bn": MSTConfig(img_size=224, patch_size=4, dim=96, depths=(2, 2, 6, 2), heads=(3, 6, 12, 24),
                           window=7, mlp_ratio=4.0),
}


def make_config(cfg: dict | MSTConfig | None) -> MSTConfig:
    """An :class:`MSTConfig` from a preset name (``{"preset": "tiny", ...overrides}``) or fields, validated
    (:mod:`evstream.snn.config`)."""
    return MSTConfig.make(cfg, PRESETS)


def window_partition(x, w):
    b, h, wd, c = x.shape
    x = x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, c)


class WindowAttention(nn.Module):
    """Spiking self-attention in windows: Q, K, V, A and A·V each pass through QCFS (IF when spiking). The two
    products are modules (``qk``, ``av``: :class:`SpikeMatmul`; a conversion mode may replace them)."""

    def __init__(self, dim, heads, window, levels, thr, name):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.act_q = QCFS(levels, thr, f"{name}.q")
        self.act_k = QCFS(levels, thr, f"{name}.k")
        self.act_v = QCFS(levels, thr, f"{name}.v")
        self.act_attn = QCFS(levels, thr, f"{name}.attn")
        self.act_out = QCFS(levels, thr, f"{name}.attn_v")
        n = window * window
        self.bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        # on the CPU even under a meta-device context (see SwinBlock)
        coords = torch.stack(torch.meshgrid(torch.arange(window, device="cpu"), torch.arange(window, device="cpu"),
                                            indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + window - 1
        self.register_buffer("bias_index", (rel[..., 0] * (2 * window - 1) + rel[..., 1]).view(n, n),
                             persistent=False)
        self.qk, self.av = SpikeMatmul(), SpikeMatmul()  # Q·Kᵀ (+ bias), A·V
        self.qkv_fused: nn.Linear | None = None  # set by fuse()
        self.frozen = False
        self._bias_cache = None

    def qkv(self, x):
        """Q, K, V spikes (after their neurons) per head: three (windows, heads, tokens, head dim) tensors."""
        bw, n, c = x.shape
        h, d = self.heads, c // self.heads
        fused = self.qkv_fused
        if fused is None:
            ys = (self.q(x), self.k(x), self.v(x))
        else:  # a runner's FastLinear: three contiguous parts, no copy before their neurons
            ys = fused(x, parts=3) if isinstance(fused, FastLinear) else fused(x).split(c, -1)
        return tuple(act(y).view(bw, n, h, d).transpose(1, 2) for y, act in zip(ys, (self.act_q, self.act_k, self.act_v)))

    def bias(self, bw, mask01=None):
        """The relative-position bias B per window and head, ``(bw·heads, n, n)``, with −1e4 where shifted
        windows must not attend (``mask01`` 0): their attention neurons then never fire (QCFS(x − 1e4) = 0),
        which equals Swin's masking of those pairs. Cached when the weights are frozen (``fuse``)."""
        cached = self._bias_cache
        if cached is not None and cached.shape[0] == bw * self.heads:
            return cached
        b = self.bias_table[self.bias_index].permute(2, 0, 1)  # (heads, n, n)
        if mask01 is not None:
            nw = mask01.shape[0]
            b = (b[None] + (mask01[:, None] - 1) * 1e4).repeat(bw // nw, 1, 1, 1)
        else:
            b = b.expand(bw, *b.shape)
        b = b.reshape(-1, *b.shape[-2:])
        if self.frozen:
            self._bias_cache = b
        return b

    def forward(self, x, mask01=None):
        bw, n, c = x.shape
        q, k, v = self.qkv(x)
        s = self.qk(q, k.transpose(-2, -1), bias=self.bias(bw, mask01), alpha=self.scale,
                    nnz=(self.act_q.last_spikes, self.act_k.last_spikes))
        a = self.act_attn(s).view(bw, self.heads, n, n)
        out = self.act_out(self.av(a, v, nnz=(self.act_attn.last_spikes, self.act_v.last_spikes)))
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))

    def fuse(self) -> None:
        """Inference: one linear layer for Q, K and V (the same weights, one matrix product), and the bias
        computed once."""
        with torch.no_grad():
            fused = nn.Linear(self.q.in_features, 3 * self.q.out_features)
            fused.weight.copy_(torch.cat([self.q.weight, self.k.weight, self.v.weight]))
            fused.bias.copy_(torch.cat([self.q.bias, self.k.bias, self.v.bias]))
        self.qkv_fused = fused
        del self.q, self.k, self.v
        self.frozen = True


class Affine(nn.Module):
    """An eval-mode BatchNorm over the last dimension as one multiply-add (``fuse``)."""

    def __init__(self, bn: nn.BatchNorm1d):
        super().__init__()
        scale, shift = bn_scale_shift(bn)
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)

    def forward(self, x):
        return torch.addcmul(self.shift, x, self.scale)


class SwinBlock(nn.Module):
    def __init__(self, dim, heads, window, shift, resolution, mlp_ratio, levels, thr, name):
        super().__init__()
        self.window, self.shift, self.resolution = window, shift, resolution
        self.norm1 = BatchNorm(dim)
        self.act_in = QCFS(levels, thr, f"{name}.in")
        self.attn = WindowAttention(dim, heads, window, levels, thr, f"{name}.attn")
        self.norm2 = BatchNorm(dim)
        self.act_mlp_in = QCFS(levels, thr, f"{name}.mlp_in")
        hidden = int(dim * mlp_ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.bn_fc1 = BatchNorm(hidden)
        self.act_fc1 = QCFS(levels, thr, f"{name}.mlp_hidden")
        self.fc2 = nn.Linear(hidden, dim)
        self.bn_fc2 = BatchNorm(dim)
        self.register_buffer("mask01", self._mask() if shift else None, persistent=False)
        # index buffers built on the CPU even under a meta-device context (the checkpoint's size check):
        # meta ops run Python references whose first call imports torch._dynamo (~2 s at start-up)
        tokens = torch.arange(resolution * resolution, device="cpu").view(1, resolution, resolution, 1)
        if shift:
            tokens = torch.roll(tokens, (-shift, -shift), (1, 2))
        order = window_partition(tokens, window).flatten()  # windowed position -> token
        self.register_buffer("to_windows", order, persistent=False)
        self.register_buffer("from_windows", torch.argsort(order), persistent=False)

    def _mask(self):
        h = w = self.resolution
        img = torch.zeros(1, h, w, 1, device="cpu")
        cnt = 0
        for hs in (slice(0, -self.window), slice(-self.window, -self.shift), slice(-self.shift, None)):
            for ws in (slice(0, -self.window), slice(-self.window, -self.shift), slice(-self.shift, None)):
                img[:, hs, ws, :] = cnt
                cnt += 1
        mw = window_partition(img, self.window).squeeze(-1)
        return (mw[:, None, :] == mw[:, :, None]).float()

    def forward(self, x):
        b, h, w, c = x.shape
        # shift (roll) and window partition in one gather of tokens, and back
        y = self.act_in(self.norm1(x)).reshape(b, h * w, c).index_select(1, self.to_windows)
        y = self.attn(y.view(-1, self.window ** 2, c), self.mask01)
        x = x + y.reshape(b, h * w, c).index_select(1, self.from_windows).view(b, h, w, c)
        m = self.act_fc1(self.bn_fc1(self.fc1(self.act_mlp_in(self.norm2(x)))))
        return x + self.bn_fc2(self.fc2(m))

    def fuse(self) -> None:
        fold_bn(self.fc1, self.bn_fc1)
        fold_bn(self.fc2, self.bn_fc2)
        self.bn_fc1 = self.bn_fc2 = nn.Identity()
        self.norm1, self.norm2 = Affine(self.norm1), Affine(self.norm2)
        self.attn.fuse()


class PatchMerging(nn.Module):
    """2x2 neighbouring tokens concatenated, BN, QCFS, then a linear layer to 2·dim."""

    def __init__(self, dim, levels, thr, name):
        super().__init__()
        self.norm = BatchNorm(4 * dim)
        self.act = QCFS(levels, thr, f"{name}.merge")
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x):
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.act(self.norm(x)))

    def fuse(self) -> None:
        self.norm = Affine(self.norm)


MAX_TOKENS = 1 << 18  # tokens of the first stage (512 x 512): bounds the index buffers built at construction


@register_arch("mst")
class MST(SpikingModel):
    """See the module docstring. ``forward(x)`` with ``x (B, in_channels, H, W)`` gives class scores."""

    arch = "mst"
    CONFIG, PRESETS = MSTConfig, PRESETS
    modes = ("mst", "ecmt")  # the conversion modes (ANN -> SNN) this family supports; the first is the default

    def __init__(self, config: dict | MSTConfig | None = None):
        super().__init__()
        cfg = self.config = make_config(config)
        lv, th = cfg.levels, cfg.threshold
        self.reduction = nn.Conv2d(cfg.in_channels, cfg.reduce_to, 1)
        self.patch_embed = nn.Conv2d(cfg.reduce_to, cfg.dim, cfg.patch_size, cfg.patch_size)
        self.embed_bn = BatchNorm(cfg.dim, channel_dim=1)
        self.embed_act = QCFS(lv, th, "embed")
        res = cfg.img_size // cfg.patch_size
        if res * res > MAX_TOKENS:  # the blocks' index buffers are built on the CPU (SwinBlock)
            raise ValueError(f"{res}x{res} tokens (img_size / patch_size) is more than {MAX_TOKENS:,}")
        blocks, dim = [], cfg.dim
        for s, (depth, heads) in enumerate(zip(cfg.depths, cfg.heads)):
            if s:
                blocks.append(PatchMerging(dim, lv, th, f"stage{s}"))
                dim, res = dim * 2, res // 2
            win = min(cfg.window, res)
            for i in range(depth):
                shift = win // 2 if (i % 2 and res > win) else 0
                blocks.append(SwinBlock(dim, heads, win, shift, res, cfg.mlp_ratio, lv, th, f"stage{s}.block{i}"))
        self.blocks = nn.Sequential(*blocks)
        self.head_bn = BatchNorm(dim)
        self.head_act = QCFS(lv, th, "head")
        self.head = nn.Linear(dim, cfg.num_classes)
        self.set_mask_ratio(0.0)

    def forward(self, x):
        x = self.embed_act(self.embed_bn(self.patch_embed(self.reduction(x))))
        # tokens in memory order (one copy): the blocks' neurons then read their inputs without one each
        x = self.blocks(x.permute(0, 2, 3, 1).contiguous())
        x = self.head_act(self.head_bn(x))
        return self.head(x.mean(dim=(1, 2)))

    def fuse(self) -> "MST":
        """Inference only, in place (the SNN views call it on their copy): each BatchNorm that follows a
        linear layer folded into it, the others (before a neuron) one per-channel multiply-add, Q, K and V
        one linear layer, the attention bias computed once. The same function of the input up to float
        rounding, with fewer operations per step; train the unfused model."""
        self.eval()
        fold_bn(self.patch_embed, self.embed_bn)
        self.embed_bn = nn.Identity()
        self.head_bn = Affine(self.head_bn)
        for m in self.blocks:
            m.fuse()
        return self

    def spike_sources(self) -> dict:
        """{linear layer: the neuron layer whose output is its whole input}: such a layer receives exactly
        that layer's spikes (``evstream.energy.OpCounter`` counts its SOPs from the spike count)."""
        fed = {}
        for name, m in self.named_modules():
            if isinstance(m, SwinBlock):
                for lin in ("q", "k", "v", "qkv_fused"):
                    fed[f"{name}.attn.{lin}"] = m.act_in  # through the shift and the window partition
                fed |= {f"{name}.attn.proj": m.attn.act_out, f"{name}.fc1": m.act_mlp_in, f"{name}.fc2": m.act_fc1}
            elif isinstance(m, PatchMerging):
                fed[f"{name}.reduction"] = m.act
        return fed

    # --- Random Spike Masking ------------------------------------------------------------------------
    MASKABLE = {"q": ".attn.q", "k": ".attn.k", "attn": ".attn.attn", "v": ".attn.v", "attn_v": ".attn.attn_v",
                "mlp": ".mlp_", "in": ".in"}
    MASKED_BY_RATIO = ("q", "k", "attn")  # a bare ratio masks Q, K and the attention spikes (paper Fig. 2d)
    NEURON = QCFS
