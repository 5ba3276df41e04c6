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

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from evstream.distributed import BatchNorm  # BN over the channel dim; global statistics under torchrun
from evstream.snn.base import SpikingModel
from evstream.snn.neurons import QCFS


@dataclass
class MSTConfig:
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

    def to_dict(self) -> dict:
        d = asdict(self)
        d["depths"], d["heads"] = list(self.depths), list(self.heads)
        return d


PRESETS = {
    "tiny": MSTConfig(),
    "small": MSTConfig(dim=48, depths=(2, 4), heads=(3, 6)),
    # the paper's backbone: Swin-T with BN, 224x224 input, patch 4, window 7
    "swin-t-bn": MSTConfig(img_size=224, patch_size=4, dim=96, depths=(2, 2, 6, 2), heads=(3, 6, 12, 24),
                           window=7, mlp_ratio=4.0),
}


def make_config(cfg: dict | MSTConfig | None) -> MSTConfig:
    """An :class:`MSTConfig` from a preset name (``{"preset": "tiny", ...overrides}``) or fields."""
    if isinstance(cfg, MSTConfig):
        return cfg
    cfg = dict(cfg or {})
    base = PRESETS[cfg.pop("preset", "tiny")]
    d = base.to_dict() | cfg
    d["depths"], d["heads"] = tuple(d["depths"]), tuple(d["heads"])
    return MSTConfig(**d)


def window_partition(x, w):
    b, h, wd, c = x.shape
    x = x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, c)


def window_reverse(x, w, h, wd):
    b = x.shape[0] // ((h // w) * (wd // w))
    x = x.view(b, h // w, wd // w, w, w, -1).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, wd, -1)


class WindowAttention(nn.Module):
    """Spiking self-attention in windows: Q, K, V, A and A·V each pass through QCFS (IF when spiking)."""

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
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + window - 1
        self.register_buffer("bias_index", (rel[..., 0] * (2 * window - 1) + rel[..., 1]).view(n, n),
                             persistent=False)
        self.count_pairs = False  # set by evstream.energy.OpCounter: count the spike-spike products

    def qkv(self, x):
        """Q, K, V spikes (after their neurons) per head: three (windows, heads, tokens, head dim) tensors."""
        bw, n, c = x.shape
        h, d = self.heads, c // self.heads
        return tuple(act(lin(x)).view(bw, n, h, d).transpose(1, 2)
                     for lin, act in ((self.q, self.act_q), (self.k, self.act_k), (self.v, self.act_v)))

    def forward(self, x, mask01=None):
        bw, n, c = x.shape
        h, d = self.heads, c // self.heads
        q, k, v = self.qkv(x)
        bias = self.bias_table[self.bias_index].permute(2, 0, 1)
        a = self.act_attn((q @ k.transpose(-2, -1)) * self.scale + bias)
        if mask01 is not None:  # shifted windows: tokens from different regions do not attend
            nw = mask01.shape[0]
            a = (a.view(bw // nw, nw, h, n, n) * mask01[None, :, None]).view(bw, h, n, n)
        if self.count_pairs:
            self._qk_ops, self._av_ops = _pair_ops(q, k.transpose(-2, -1)), _pair_ops(a, v)
            self._qk_dense = self._av_dense = bw * h * n * n * d
        out = self.act_out(a @ v).transpose(1, 2).reshape(bw, n, c)
        return self.proj(out)


def _pair_ops(a, b):
    """Number of non-zero scalar products in the matrix product a @ b (accumulates when both spike)."""
    with torch.no_grad():
        return int(((a != 0).float() @ (b != 0).float()).sum())


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

    def _mask(self):
        h = w = self.resolution
        img = torch.zeros(1, h, w, 1)
        cnt = 0
        for hs in (slice(0, -self.window), slice(-self.window, -self.shift), slice(-self.shift, None)):
            for ws in (slice(0, -self.window), slice(-self.window, -self.shift), slice(-self.shift, None)):
                img[:, hs, ws, :] = cnt
                cnt += 1
        mw = window_partition(img, self.window).squeeze(-1)
        return (mw[:, None, :] == mw[:, :, None]).float()

    def forward(self, x):
        b, h, w, c = x.shape
        y = self.act_in(self.norm1(x))
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), (1, 2))
        y = window_reverse(self.attn(window_partition(y, self.window), self.mask01), self.window, h, w)
        if self.shift:
            y = torch.roll(y, (self.shift, self.shift), (1, 2))
        x = x + y
        m = self.act_fc1(self.bn_fc1(self.fc1(self.act_mlp_in(self.norm2(x)))))
        return x + self.bn_fc2(self.fc2(m))


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


class MST(SpikingModel):
    """See the module docstring. ``forward(x)`` with ``x (B, in_channels, H, W)`` gives class scores."""

    arch = "mst"
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
        x = self.blocks(x.permute(0, 2, 3, 1))
        x = self.head_act(self.head_bn(x))
        return self.head(x.mean(dim=(1, 2)))

    # --- Random Spike Masking ------------------------------------------------------------------------
    MASKABLE = {"q": ".attn.q", "k": ".attn.k", "attn": ".attn.attn", "v": ".attn.v", "attn_v": ".attn.attn_v",
                "mlp": ".mlp_", "in": ".in"}
    MASKED_BY_RATIO = ("q", "k", "attn")  # a bare ratio masks Q, K and the attention spikes (paper Fig. 2d)
    NEURON = QCFS
