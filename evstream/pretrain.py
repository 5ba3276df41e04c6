"""``evstream pretrain``: masked-autoencoder pre-training of a Spikformer (Spikformer V2 §4.2, Fig. 6).

The stem's tokens are masked at random (75% by default, the same number per sample); the SNN encoder sees
only the visible patches — masked patches are zeroed in the input and after every stem stage (a dense
emulation of the paper's sparse convolution, so nothing leaks from a masked patch into a visible one;
BatchNorm statistics are not made sparse) and only visible tokens enter the SSA blocks. A light ANN
Transformer decoder (mask tokens from one shared learnable vector, learnable position embeddings) reconstructs
the per-patch normalised input frames of the masked patches (MSE, MAE's ``norm_pix_loss``). The encoder runs
T = 1 step (the paper's setting) and its token spike counts are averaged over the steps when T > 1. The
decoder is discarded: the checkpoint holds the Spikformer alone (its classification head untrained), to be
fine-tuned with ``evstream train --arch spikformer --init PRETRAINED.pt``.

Unlabelled data: the files of a dataset layout (labels ignored), emulated MNIST saccades, and any
recordings the readers open, cut into windows of ``--window-ms``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evstream.augment import augment
from evstream.datasets import EventDataset, emulated_mnist, open_dataset
from evstream.errors import EvstreamError
from evstream.representations import from_config
from evstream.snn import build_model, save_checkpoint
from evstream.inputs import default_representation
from evstream.train import cosine_lr


class MAEDecoder(nn.Module):
    """Visible encoder tokens + mask tokens + position embeddings -> Transformer -> patch pixels."""

    def __init__(self, enc_dim: int, n_tokens: int, patch_pixels: int, dim: int = 64, depth: int = 2,
                 heads: int = 4):
        super().__init__()
        self.n_tokens = n_tokens
        self.embed = nn.Linear(enc_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, n_tokens, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.pred = nn.Linear(dim, patch_pixels)

    def forward(self, visible: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``visible (B, n_keep, enc_dim)``, ``keep (B, N)`` bool -> predicted patches ``(B, N, pixels)``."""
        b = visible.shape[0]
        tokens = self.mask_token.expand(b, self.n_tokens, -1).clone()
        tokens[keep] = self.embed(visible).reshape(-1, tokens.shape[-1])
        return self.pred(self.norm(self.blocks(tokens + self.pos)))


def random_token_mask(b: int, h: int, w: int, ratio: float, generator: torch.Generator | None = None):
    """``(B, h, w)`` 0/1 masks keeping ``round(N (1 - ratio))`` uniformly drawn tokens per sample (≥ 1)."""
    n = h * w
    n_keep = max(1, int(round(n * (1.0 - ratio))))
    order = torch.rand(b, n, generator=generator).argsort(1)
    keep = torch.zeros(b, n)
    keep.scatter_(1, order[:, :n_keep], 1.0)
    return keep.view(b, h, w)


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, N, C·p·p)`` in token order (row-major over the patch grid)."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // p) * (w // p), c * p * p)


def mae_loss(model, decoder, x: torch.Tensor, keep: torch.Tensor, timesteps: int = 1) -> torch.Tensor:
    """MSE between the decoder's prediction and the per-patch normalised input, on masked patches only."""
    b = x.shape[0]
    model.reset_state()
    z = model.encode(x, timesteps, keep)  # (T·B, n_keep, D) spike counts
    z = z.view(timesteps, b, *z.shape[1:]).mean(0)
    keep_flat = keep.flatten(1).bool()
    pred = decoder(z, keep_flat)
    target = patchify(x, model.config.patch_size)
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
    err = ((pred - target) ** 2).mean(-1)
    masked = ~keep_flat
    return (err * masked).sum() / masked.sum().clamp(min=1)


def _recording_samples(paths, window_ms: float, min_events: int = 50):
    """Unlabelled samples: each recording cut into windows of ``window_ms`` (windows with few events dropped)."""
    from evstream.readers import read_events

    groups = {}
    for p in paths:
        chunk = read_events(p)
        ev = chunk.events
        if len(ev) == 0:
            continue
        edges = np.arange(int(ev["t"][0]), int(ev["t"][-1]) + 1, int(window_ms * 1000))
        cuts = np.searchsorted(ev["t"], edges)
        parts = [ev[a:b] for a, b in zip(cuts[:-1], cuts[1:]) if b - a >= min_events]
        groups.setdefault(tuple(chunk.sensor_size), []).extend(parts)
    return [EventDataset.from_events(parts, np.zeros(len(parts), dtype=np.int64), ["unlabelled"], size,
                                     name=f"recordings-{size[0]}x{size[1]}")
            for size, parts in groups.items() if parts]


def pretrain(args, log=print) -> dict:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    datasets = []
    if args.root:
        datasets.append(open_dataset(args.dataset, args.root, args.labels, "train", args.cache))
    if args.emulated:
        datasets.append(emulated_mnist(args.emulated_root, args.emulated, args.seed, args.cache))
    if args.recordings:
        datasets.extend(_recording_samples(args.recordings, args.window_ms))
    if not datasets or not sum(len(d) for d in datasets):
        raise EvstreamError("no unlabelled samples: give --root, --emulated N or --recordings FILE...")
    out_hw = (args.img_size, args.img_size)
    reps = {tuple(d.sensor_size): from_config(default_representation(d.sensor_size, args.frames, out_hw))
            for d in datasets}
    first = reps[tuple(datasets[0].sensor_size)]
    model = build_model("spikformer", {"preset": args.preset, "in_channels": first.channels,
                                       "num_classes": args.num_classes, "img_size": args.img_size})
    cfg = model.config
    if cfg.img_size % cfg.patch_size:
        raise EvstreamError(f"--img-size {cfg.img_size} is not a multiple of the patch size {cfg.patch_size}")
    g = cfg.img_size // cfg.patch_size
    decoder = MAEDecoder(cfg.dim, g * g, first.channels * cfg.patch_size ** 2, args.decoder_dim,
                         args.decoder_depth, args.decoder_heads)
    params = list(model.parameters()) + list(decoder.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.05)
    pool = [(d, i) for d in datasets for i in range(len(d))]
    if args.limit:
        pool = pool[: args.limit]
    steps_per_epoch = math.ceil(len(pool) / args.batch)
    total = args.epochs * steps_per_epoch
    gen = torch.Generator().manual_seed(args.seed)
    from tqdm import tqdm

    history = []
    model.train()
    decoder.train()
    for ep in range(args.epochs):
        order = np.random.default_rng(args.seed * 1000 + ep).permutation(len(pool))
        losses, t0 = [], time.time()
        bar = tqdm(range(steps_per_epoch), desc=f"pretrain epoch {ep + 1}/{args.epochs}", leave=False,
                   disable=not args.progress)
        for b in bar:
            ks = order[b * args.batch:(b + 1) * args.batch]
            xs = []
            for k in ks:
                d, i = pool[k]
                ev = augment(d.events_of(i), d.sensor_size, np.random.default_rng([args.seed, ep, int(k)]))
                xs.append(reps[tuple(d.sensor_size)](ev))
            x = torch.from_numpy(np.stack(xs))
            keep = random_token_mask(len(ks), g, g, args.mask_ratio, gen)
            for grp in opt.param_groups:
                grp["lr"] = cosine_lr(ep * steps_per_epoch + b, total, args.warmup * steps_per_epoch, args.lr)
            loss = mae_loss(model, decoder, x, keep, args.timesteps)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        history.append({"epoch": ep + 1, "loss": float(np.mean(losses))})
        log(f"pretrain epoch {ep + 1}/{args.epochs}: reconstruction loss {history[-1]['loss']:.4f} "
            f"({time.time() - t0:.1f} s)")
    model.eval()
    meta = {"arch": "spikformer", "representation": first.config, "classes": None,
            "pretrain": {"method": "MAE (Spikformer V2 §4.2)", "mask_ratio": args.mask_ratio,
                         "timesteps": args.timesteps, "samples": len(pool), "epochs": args.epochs,
                         "decoder": {"dim": args.decoder_dim, "depth": args.decoder_depth,
                                     "heads": args.decoder_heads, "discarded": True},
                         "sources": [d.name for d in datasets], "history": history},
            "train_args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                           if k != "_run"}}
    save_checkpoint(args.out, model, meta)
    log(f"saved {args.out}: the pre-trained Spikformer encoder (decoder discarded); fine-tune with "
        f"evstream train --arch spikformer --preset {args.preset} --init {args.out}")
    return meta
