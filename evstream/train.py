"""``evstream train``: the ANN with QCFS, then masked fine-tuning with the unmasked model as teacher.

Phase 1 (MST paper): AdamW, cosine schedule with linear warm-up, weight decay 0.05, label-keeping
neuromorphic augmentations (translation, event drop, polarity-preserving noise), on the training split
(the validation split is a seeded stratified 10% of the labelled files, real recordings only). Phase 2
(optional, ``--mask-finetune R``): the same model with Random Spike Masking at ratio R on Q, K and attention
is fine-tuned with knowledge distillation from a frozen copy of the phase-1 model, with BatchNorm statistics
frozen (updating them under masks made the unmasked model fail: 98% -> 24% validation accuracy). The checkpoint records
the dataset, split, representation config, class names and validation metrics. Resumable: the state after
every epoch is kept in ``OUT.partial`` and picked up by the same command.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from evstream.augment import augment
from evstream.datasets import EventDataset, emulated_mnist, open_dataset, stratified_split
from evstream.loader import EpochBatches, InOrder, Pass, Plan, SampleSet, make_loader, to_device
from evstream.representations import from_config
from evstream.snn import build_model, save_checkpoint
from evstream.workers import default_workers


def default_representation(sensor_size, n_frames=4, out_size=(32, 32)) -> dict:
    return {"kind": "frames", "sensor_size": list(sensor_size), "n_frames": n_frames, "split_by": "time",
            "mode": "count", "normalize": 4.0, "tail": True, "out_size": list(out_size)}


def batch_inputs(ds: EventDataset, idx, rep, rng=None) -> torch.Tensor:
    xs = []
    for i in idx:
        ev = ds.events_of(int(i))
        if rng is not None:
            ev = augment(ev, ds.sensor_size, rng)
        xs.append(rep(ev))
    return torch.from_numpy(np.stack(xs))


def inputs_of(ds: EventDataset, idx, rep) -> torch.Tensor:
    return batch_inputs(ds, idx, rep)


@torch.no_grad()
def ann_accuracy(model, batches, device="cpu", amp=False) -> float:
    """Accuracy over the ``(x, y)`` batches of a loader."""
    from evstream import distributed as dist

    model.eval()
    correct = n = 0
    for batch in batches:
        x, y = to_device(batch, device)
        correct += int((dist.autocast(model, device, amp)(x).argmax(1) == y).sum())
        n += len(y)
    return float(torch.tensor(float(correct)) / max(n, 1))  # float32, as the mean of a boolean tensor


def sample_span_us(ds: EventDataset, idx) -> int:
    """Median time span of the training samples: a live stream's input window should span as much."""
    spans = [int(s) for s in ds.spans[np.asarray(idx, np.int64)] if s >= 0]  # -1: no events
    return int(np.median(spans)) if spans else 0


def cosine_lr(step, total, warmup, base):
    if step < warmup:
        return base * (step + 1) / warmup
    return 0.5 * base * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def mask_ratios(spec) -> list[float]:
    """``0.5`` or ``"0,0.5,0.75"`` -> the ratios a masked phase draws from (one per batch)."""
    if isinstance(spec, (int, float)):
        return [float(spec)]
    return [float(r) for r in str(spec).split(",") if r.strip()]


def train(args, log=print) -> dict:
    """Train (phase 1: ANN; phase 2: masked KD) and save the checkpoint ``args.out``.

    Under ``torchrun`` every process takes its share of each global batch (``evstream.distributed``);
    augmentations are seeded per sample and BatchNorm uses global statistics, so N processes give the
    same weights as one, to float rounding. Only rank 0 logs and writes files.
    """
    from evstream import distributed as dist

    dist.init(getattr(args, "device", "cpu") or "cpu")
    main = dist.is_main()
    if not main:
        log = lambda *a, **k: None  # noqa: E731
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    device = dist.device(getattr(args, "device", "cpu") or "cpu")
    amp = bool(getattr(args, "amp", False))
    workers = getattr(args, "workers", None)
    ds = open_dataset(args.dataset, args.root, args.labels, "train", args.cache, workers, args.progress and main)
    tr_idx, va_idx = stratified_split(ds.labels, args.val_fraction, args.seed)
    if args.limit:
        tr_idx = tr_idx[: args.limit]
        va_idx = va_idx[: max(10, args.limit // 5)]
    rep = from_config(default_representation(ds.sensor_size, args.frames, (args.img_size, args.img_size)))
    sources = [(ds, tr_idx)]
    if args.emulated:
        em = emulated_mnist(args.emulated_root, args.emulated, args.seed, args.cache, progress=args.progress and main,
                            workers=workers)
        sources.append((em, np.arange(len(em))))
    pool = np.array([(s, int(i)) for s, (_, idx) in enumerate(sources) for i in idx], np.int64).reshape(-1, 2)
    data = SampleSet([s for s, _ in sources], rep)
    n_workers = default_workers() if workers is None else workers
    batches = EpochBatches(pool, args.batch, args.seed, dist.shard)
    loader = make_loader(data, Plan(batches), n_workers, device)  # representations built in the workers
    val = Pass(loader, InOrder(va_idx, 256))  # validation passes by the same workers
    cfg = {"preset": args.preset, "in_channels": rep.channels, "num_classes": len(ds.classes),
           "img_size": args.img_size}
    if getattr(args, "levels", None):
        cfg["levels"] = args.levels
    model = build_model(args.arch, cfg)
    if getattr(args, "init", None):  # continue from a checkpoint (e.g. masked fine-tuning of a trained ANN)
        from evstream.snn import load_checkpoint

        init_model, _ = load_checkpoint(args.init)
        model.load_state_dict(init_model.state_dict())
        log(f"initialised from {args.init}")
    model.to(device)
    out = Path(args.out)
    partial = out.with_suffix(out.suffix + ".partial")
    finetune = mask_ratios(args.mask_finetune)
    phases = ([("ann", args.epochs, [0.0])] if args.epochs else []) + (
        [("masked", args.finetune_epochs, finetune)] if any(finetune) else [])
    state = {"phase": 0, "epoch": 0}
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    teacher = None
    if partial.exists():
        ck = torch.load(partial, weights_only=True)
        model.load_state_dict(ck["model"])
        model.to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
        opt.load_state_dict(ck["opt"])
        state = {"phase": ck["phase"], "epoch": ck["epoch"]}
        log(f"resuming from {partial}: phase {phases[state['phase']][0]}, epoch {state['epoch']}")
        if state["phase"] > 0:
            teacher = build_model(args.arch, cfg)
            teacher.load_state_dict(ck["teacher"])
            teacher.to(device).eval()
    net = dist.autocast(dist.wrap(model), device, amp)  # --amp: bfloat16 autocast, float32 logits
    from tqdm import tqdm

    history = []
    gen = torch.Generator(device=device).manual_seed(args.seed * 31 + dist.rank())
    for ph in range(state["phase"], len(phases)):
        name, epochs, ratios = phases[ph]
        if name == "masked" and teacher is None:
            teacher = copy.deepcopy(model).eval()
            teacher.set_mask_ratio(0.0)
        steps_per_epoch = len(batches)
        total = epochs * steps_per_epoch
        for ep in range(state["epoch"] if ph == state["phase"] else 0, epochs):
            model.train()
            if name == "masked":  # keep the unmasked BN statistics: masks are a run-time choice, not the norm
                for m in model.modules():
                    if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                        m.eval()
            # this process's share of every global batch, each sample augmented by its own generator
            # (seeded by seed, phase, epoch, sample): the same whichever process or worker builds it
            batches.set_epoch(ph, ep)
            bar = tqdm(range(steps_per_epoch), desc=f"{name} epoch {ep + 1}/{epochs}", leave=False,
                       disable=not (args.progress and main))
            t0 = time.time()
            losses = []
            for b, batch in zip(bar, loader):
                x, y = to_device(batch, device)
                ratio = ratios[np.random.default_rng([args.seed, ph, ep, b]).integers(len(ratios))]
                model.set_mask_ratio(ratio, gen)
                for g in opt.param_groups:
                    g["lr"] = cosine_lr(ep * steps_per_epoch + b, total, args.warmup * steps_per_epoch,
                                        args.lr if name == "ann" else args.lr * 0.3)
                logits = net(x)
                loss = F.cross_entropy(logits, y, label_smoothing=0.1)
                if teacher is not None and name == "masked":
                    with torch.no_grad():
                        tl = teacher(x)
                    tau = 2.0
                    loss = 0.5 * loss + 0.5 * tau * tau * F.kl_div(F.log_softmax(logits / tau, 1),
                                                                   F.softmax(tl / tau, 1), reduction="batchmean")
                # the mean over the global batch: weight this share by its size (DDP averages over processes)
                loss = loss * (len(y) * dist.world_size() / batches.global_batch(b))
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
            accs = {}
            for r in sorted(set(ratios)):
                model.set_mask_ratio(r, torch.Generator(device=device).manual_seed(args.seed))
                accs[r] = ann_accuracy(model, val, device, amp)
            model.set_mask_ratio(0.0)
            row = {"phase": name, "epoch": ep + 1, "loss": float(dist.all_sum([np.mean(losses)])[0] / dist.world_size()),
                   "val_accuracy": accs[min(accs)]}
            if len(accs) > 1 or name == "masked":
                row["val_accuracy_by_mask"] = {str(r): a for r, a in accs.items()}
            history.append(row)
            log(f"{name} epoch {ep + 1}/{epochs}: loss {row['loss']:.4f}, val accuracy "
                + ", ".join(f"{a:.4f} (mask {r:g})" for r, a in accs.items()) + f" ({time.time() - t0:.1f} s)")
            if main:
                ck = {"model": model.state_dict(), "opt": opt.state_dict(), "phase": ph, "epoch": ep + 1}
                if teacher is not None:
                    ck["teacher"] = teacher.state_dict()
                torch.save(ck, partial)
        state = {"phase": ph + 1, "epoch": 0}
    model.set_mask_ratio(0.0)
    model.eval()
    acc = ann_accuracy(model, val, device, amp)
    meta = {
        "arch": args.arch, "representation": rep.config, "classes": ds.classes,
        "dataset": {"name": args.dataset, "root": str(args.root), "labels": str(args.labels) if args.labels else None,
                    "emulated_mnist": args.emulated},
        "split": {"kind": "stratified", "val_fraction": args.val_fraction, "seed": args.seed,
                  "train": len(tr_idx), "val": len(va_idx)},
        "metrics": {"val_ann_accuracy": acc}, "history": history, "processes": dist.world_size(),
        "window_us": sample_span_us(ds, tr_idx),
        "train_args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "_run"},
    }
    if main:
        model.cpu()
        n_cal = getattr(args, "ecmt_calibrate", 0)
        if n_cal and "ecmt" in getattr(model, "modes", ()):  # ECMT's base thresholds, stored in meta["ecmt"]
            from evstream.snn.ecmt import calibrate

            meta["ecmt"] = calibrate(model, inputs_of(ds, tr_idx[:n_cal], rep)) | {"split": "train"}
            log(f"ECMT thresholds calibrated on {meta['ecmt']['samples']} training samples "
                f"(p{meta['ecmt']['percentile']:g})")
        save_checkpoint(out, model, meta)
        partial.unlink(missing_ok=True)
    log(f"saved {out}: validation ANN accuracy {acc:.4f} on {len(va_idx)} real recordings")
    dist.finish()
    return meta
