"""``evstream train``: the ANN with QCFS, then masked fine-tuning with the unmasked model as teacher.

Phase 1 (MST paper): AdamW, cosine schedule with linear warm-up, weight decay 0.05, label-keeping
neuromorphic augmentations (translation, event drop, polarity-preserving noise), on the training split
(the validation split is a seeded stratified 10% of the labelled files, real recordings only). Phase 2
(optional, ``--mask-finetune R``): the same model with Random Spike Masking at ratio R on Q, K and attention
is fine-tuned with knowledge distillation from a frozen copy of the phase-1 model, with BatchNorm statistics
frozen (docs/model.md says why). The checkpoint records the dataset, split, representation config, class
names and validation metrics. Resumable: the state after every epoch is kept in ``OUT.partial`` and picked
up by the same command (a resume file that does not fit is one ``CheckpointError`` line). The inputs are
built batch by batch in DataLoader worker processes (``workers``; :mod:`evstream.loader`) from the event
cache; ``device="cuda"`` trains on a GPU (one per process under torchrun, NCCL), ``amp`` in bfloat16 autocast.

    cfg = TrainConfig(root="../shared/data/nmnist_small/train", epochs=30, out="model.pt")
    meta = train(cfg)
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from evstream import distributed as dist
from evstream.errors import CheckpointError
from evstream.datasets import emulated_fonts, emulated_mnist, open_dataset, stratified_split
from evstream.inputs import batch_inputs, default_representation, sample_span_us, window_range
from evstream.loader import EpochBatches, InOrder, Pass, Plan, SampleSet, make_loader, to_device
from evstream.representations import from_config
from evstream.snn import build_model, load_checkpoint, save_checkpoint
from evstream.snn.checkpoint import check_state_dict, read_file
from evstream.workers import default_workers


@torch.no_grad()
def ann_accuracy(model, batches, device="cpu", amp=False) -> float:
    """Accuracy over the ``(x, y)`` batches of a loader (or a list of tensor pairs)."""
    model.eval()
    correct = n = 0
    for batch in batches:
        x, y = to_device(batch, device)
        correct += int((dist.autocast(model, device, amp)(x).argmax(1) == y).sum())
        n += len(y)
    return correct / max(n, 1)


def cosine_lr(step, total, warmup, base):
    if step < warmup:
        return base * (step + 1) / warmup
    return 0.5 * base * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def mask_ratios(spec) -> list[float]:
    """``0.5`` or ``"0,0.5,0.75"`` -> the ratios a masked phase draws from (one per batch)."""
    if isinstance(spec, (int, float)):
        return [float(spec)]
    return [float(r) for r in str(spec).split(",") if r.strip()]


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``evstream train`` takes (its flags, one field each)."""

    dataset: str = "nmnist"
    root: str = ""
    labels: str | None = None
    arch: str = "mst"
    preset: str = "tiny"
    out: str = "model.pt"
    epochs: int = 30
    batch: int = 64
    lr: float = 2e-3
    warmup: int = 2  # epochs
    frames: int = 4  # polarity frames per sample
    img_size: int = 32
    val_fraction: float = 0.1
    mask_finetune: str = "0"  # ratio(s) of the masked phase, e.g. "0.5" or "0,0.5,0.75"; "0": no phase 2
    levels: int | None = None
    finetune_epochs: int = 5
    emulated: int = 0  # emulated MNIST saccade samples added to the training pool
    emulated_root: str = ""
    fonts: int = 0  # emulated printed (Hershey font) digits added to the training pool (datasets.emulated_fonts)
    init: str | None = None  # start from this checkpoint's weights
    stream_windows: int = 0  # windows cut from continuous streams of the training recordings, added to the pool
    window_ms: str = "100,150"  # their length range (the longest is the checkpoint's live window)
    stream_gaps_ms: str = "0-200"  # gaps between recordings in those streams
    window_draw: str = "fresh"  # "fresh": new windows every epoch; "fixed": the same stream_windows each epoch
    straddle: float = 0.0  # fresh windows: this fraction drawn across a change of recording
    ecmt_calibrate: int = 300  # training samples for ECMT's thresholds after training (0: skip)
    limit: int = 0
    cache: str | None = None
    seed: int = 0
    threads: int = 2
    device: str = "cpu"  # or "cuda" (under torchrun: GPU LOCAL_RANK of each process)
    amp: bool = False  # bfloat16 autocast (for device "cuda")
    workers: int | None = None  # DataLoader / cache-filling processes (0: in this process; None: the cores)
    progress: bool = True

    @classmethod
    def from_namespace(cls, args) -> "TrainConfig":
        """From ``evstream train``'s parsed flags (paths as strings)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k in names})


def train(cfg: TrainConfig, log=print) -> dict:
    """Train (phase 1: ANN; phase 2: masked KD) and save the checkpoint ``cfg.out``.

    Under ``torchrun`` every process takes its share of each global batch (``evstream.distributed``);
    augmentations are seeded per sample and BatchNorm uses global statistics, so N processes give the
    same weights as one, to float rounding. Only rank 0 logs and writes files.
    """
    dist.init(cfg.device or "cpu")
    trainer = Trainer(cfg, log if dist.is_main() else (lambda *a, **k: None))
    meta = trainer.run()
    dist.finish()
    return meta


class Trainer:
    """One training run: the data, the model, the phases; ``run()`` returns the checkpoint's meta."""

    def __init__(self, cfg: TrainConfig, log):
        self.cfg, self.log = cfg, log
        torch.manual_seed(cfg.seed)
        torch.set_num_threads(cfg.threads)
        self.device = dist.device(cfg.device or "cpu")
        self._data()
        self._model()
        out = Path(cfg.out)
        self.partial = out.with_suffix(out.suffix + ".partial")
        finetune = mask_ratios(cfg.mask_finetune)
        self.phases = ([("ann", cfg.epochs, [0.0])] if cfg.epochs else []) + (
            [("masked", cfg.finetune_epochs, finetune)] if any(finetune) else [])
        self.state = {"phase": 0, "epoch": 0}
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=0.05)
        self.teacher = None
        if self.partial.exists():
            self._resume()
        self.net = dist.autocast(dist.wrap(self.model), self.device, cfg.amp)  # amp: bfloat16, float32 logits
        self.history = []
        self.gen = torch.Generator(device=self.device).manual_seed(cfg.seed * 31 + dist.rank())

    def _data(self) -> None:
        cfg = self.cfg
        progress = cfg.progress and dist.is_main()
        ds = self.ds = open_dataset(cfg.dataset, cfg.root, cfg.labels, "train", cfg.cache, cfg.workers, progress)
        self.tr_idx, self.va_idx = stratified_split(ds.labels, cfg.val_fraction, cfg.seed)
        if cfg.limit:
            self.tr_idx = self.tr_idx[: cfg.limit]
            self.va_idx = self.va_idx[: max(10, cfg.limit // 5)]
        self.rep = from_config(default_representation(ds.sensor_size, cfg.frames, (cfg.img_size, cfg.img_size)))
        sources = [(ds, self.tr_idx)]
        if cfg.emulated:
            em = emulated_mnist(cfg.emulated_root, cfg.emulated, cfg.seed, cfg.cache, progress=progress,
                                workers=cfg.workers)
            sources.append((em, np.arange(len(em))))
        if cfg.fonts:
            fo = emulated_fonts(cfg.fonts, cfg.seed, cfg.cache, progress=progress, workers=cfg.workers)
            sources.append((fo, np.arange(len(fo))))
        self.wset = self.val_windows = None
        if cfg.stream_windows:
            self._stream_windows(sources)
        # rows (source, index); each sample built (and augmented by its own seeded generator) in the workers
        pool = np.array([(s, int(i)) for s, (_, idx) in enumerate(sources) for i in idx], np.int64).reshape(-1, 2)
        data = SampleSet([s for s, _ in sources], self.rep)
        workers = default_workers() if cfg.workers is None else cfg.workers
        self.batches = EpochBatches(pool, cfg.batch, cfg.seed, dist.shard)
        self.loader = make_loader(data, Plan(self.batches), workers, self.device)
        self.val = Pass(self.loader, InOrder(self.va_idx, 256))  # the same workers; source 0: real recordings

    def _stream_windows(self, sources) -> None:
        """Windows at random offsets of continuous streams of the training recordings join the pool
        (straddling ones labelled by the recording covering most); the same kind of windows from streams of
        the held-out real recordings are the streaming validation."""
        from evstream.streams import FreshWindows, WindowSet

        cfg, ds = self.cfg, self.ds
        lo, hi = window_range(cfg.window_ms)
        gaps = window_range(cfg.stream_gaps_ms)
        recs = [s.events_of(int(i)) for s, idx in sources for i in idx]
        labs = [int(s.labels[int(i)]) for s, idx in sources for i in idx]
        if cfg.window_draw == "fresh":
            self.wset = FreshWindows(recs, labs, ds.sensor_size, cfg.stream_windows, (lo, hi), gap_us=gaps,
                                     straddle=cfg.straddle)
        else:
            self.wset = WindowSet(recs, labs, ds.sensor_size, cfg.stream_windows, (lo, hi), seed=cfg.seed,
                                  gap_us=gaps)
        sources.append((self.wset, np.arange(len(self.wset))))
        vset = WindowSet([ds.events_of(int(i)) for i in self.va_idx], ds.labels[self.va_idx], ds.sensor_size,
                         4 * len(self.va_idx), (hi, hi), seed=10_000 + cfg.seed, gap_us=gaps)
        x, y = batch_inputs(vset, np.arange(len(vset)), self.rep), torch.from_numpy(vset.labels)
        self.val_windows = list(zip(x.split(256), y.split(256)))
        self.log(f"{len(self.wset)} stream windows ({cfg.window_draw}) of {lo / 1e3:g}-{hi / 1e3:g} ms added; "
                 f"validating on "
                 f"{len(vset)} windows of held-out streams")

    def _model(self) -> None:
        cfg = self.cfg
        self.model_cfg = {"preset": cfg.preset, "in_channels": self.rep.channels, "num_classes": len(self.ds.classes),
                          "img_size": cfg.img_size}
        if cfg.levels:
            self.model_cfg["levels"] = cfg.levels
        self.model = build_model(cfg.arch, self.model_cfg)
        if cfg.init:  # continue from a checkpoint (e.g. masked fine-tuning of a trained ANN)
            init_model, _ = load_checkpoint(cfg.init)
            self._load_weights(self.model, init_model.state_dict(), cfg.init, "init")
            self.log(f"initialised from {cfg.init}")
        self.model.to(self.device)

    @staticmethod
    def _load_weights(model, state, where, key) -> None:
        try:
            model.load_state_dict(check_state_dict(state, where, key))
        except RuntimeError as exc:
            raise CheckpointError(f"'{key}' weights do not fit this {model.arch} model "
                                  f"({str(exc).splitlines()[0][:160]}); delete it to start over", where=where) from None

    def _resume(self) -> None:
        """Pick up ``OUT.partial``: weights, optimiser, phase and epoch (and the teacher of phase 2)."""
        cfg, where = self.cfg, self.partial
        ck = read_file(where, "resume file")
        if not isinstance(ck, dict) or not {"model", "opt", "phase", "epoch"} <= set(ck):
            raise CheckpointError("not a training resume file (needs model, opt, phase, epoch); delete it to start "
                                  "over", where=where)
        phase, epoch = ck["phase"], ck["epoch"]
        if not (isinstance(phase, int) and isinstance(epoch, int) and 0 <= phase < len(self.phases)
                and 0 <= epoch <= self.phases[phase][1]):
            raise CheckpointError(f"phase {phase!r} / epoch {epoch!r} do not fit this run; delete it to start over",
                                  where=where)
        self._load_weights(self.model, ck["model"], where, "model")
        self.model.to(self.device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=0.05)
        try:
            self.opt.load_state_dict(ck["opt"])
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise CheckpointError(f"optimiser state does not fit ({str(exc)[:160]}); delete it to start over",
                                  where=where) from None
        self.state = {"phase": phase, "epoch": epoch}
        self.log(f"resuming from {where}: phase {self.phases[phase][0]}, epoch {epoch}")
        if phase > 0:
            if "teacher" not in ck:
                raise CheckpointError("a phase-2 resume file without the teacher; delete it to start over", where=where)
            self.teacher = build_model(cfg.arch, self.model_cfg)
            self._load_weights(self.teacher, ck["teacher"], where, "teacher")
            self.teacher.to(self.device).eval()

    def run(self) -> dict:
        for ph in range(self.state["phase"], len(self.phases)):
            name, epochs, ratios = self.phases[ph]
            if name == "masked" and self.teacher is None:
                self.teacher = copy.deepcopy(self.model).eval()
                self.teacher.set_mask_ratio(0.0)
            for ep in range(self.state["epoch"] if ph == self.state["phase"] else 0, epochs):
                self._epoch(ph, ep)
            self.state = {"phase": ph + 1, "epoch": 0}
        return self._finish()

    def _epoch(self, ph: int, ep: int) -> None:
        cfg, model = self.cfg, self.model
        name, epochs, ratios = self.phases[ph]
        steps_per_epoch = len(self.batches)
        model.train()
        if name == "masked":  # keep the unmasked BN statistics: masks are a run-time choice, not the norm
            for m in model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()
        from tqdm import tqdm

        # this process's share of every global batch, each sample augmented by its own generator (seeded by
        # seed, phase, epoch, sample): the same whichever process or worker builds it
        self.batches.set_epoch(ph, ep)
        bar = tqdm(range(steps_per_epoch), desc=f"{name} epoch {ep + 1}/{epochs}", leave=False,
                   disable=not (cfg.progress and dist.is_main()))
        t0 = time.time()
        losses = []
        for b, batch in zip(bar, self.loader):
            losses.append(self._batch(ph, ep, b, batch, epochs * steps_per_epoch, steps_per_epoch))
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        accs = {}
        for r in sorted(set(ratios)):
            model.set_mask_ratio(r, torch.Generator(device=self.device).manual_seed(cfg.seed))
            accs[r] = ann_accuracy(model, self.val, self.device, cfg.amp)
        model.set_mask_ratio(0.0)
        row = {"phase": name, "epoch": ep + 1, "loss": float(dist.all_sum([np.mean(losses)])[0] / dist.world_size()),
               "val_accuracy": accs[min(accs)]}
        if len(accs) > 1 or name == "masked":
            row["val_accuracy_by_mask"] = {str(r): a for r, a in accs.items()}
        if self.val_windows is not None:
            row["val_window_accuracy"] = ann_accuracy(model, self.val_windows, self.device, cfg.amp)
        self.history.append(row)
        self.log(f"{name} epoch {ep + 1}/{epochs}: loss {row['loss']:.4f}, val accuracy "
                 + ", ".join(f"{a:.4f} (mask {r:g})" for r, a in accs.items())
                 + (f", stream windows {row['val_window_accuracy']:.4f}" if self.val_windows is not None else "")
                 + f" ({time.time() - t0:.1f} s)")
        if dist.is_main():
            ck = {"model": model.state_dict(), "opt": self.opt.state_dict(), "phase": ph, "epoch": ep + 1}
            if self.teacher is not None:
                ck["teacher"] = self.teacher.state_dict()
            torch.save(ck, self.partial)

    def _batch(self, ph, ep, b, batch, total, steps_per_epoch) -> float:
        """One optimiser step on ``batch``, this process's share of global batch ``b``; returns its loss."""
        cfg = self.cfg
        name, _, ratios = self.phases[ph]
        x, y = to_device(batch, self.device)
        ratio = ratios[np.random.default_rng([cfg.seed, ph, ep, b]).integers(len(ratios))]
        self.model.set_mask_ratio(ratio, self.gen)
        for g in self.opt.param_groups:
            g["lr"] = cosine_lr(ep * steps_per_epoch + b, total, cfg.warmup * steps_per_epoch,
                                cfg.lr if name == "ann" else cfg.lr * 0.3)
        logits = self.net(x)
        loss = F.cross_entropy(logits, y, label_smoothing=0.1)
        if self.teacher is not None and name == "masked":
            with torch.no_grad():
                tl = self.teacher(x)
            tau = 2.0
            loss = 0.5 * loss + 0.5 * tau * tau * F.kl_div(F.log_softmax(logits / tau, 1),
                                                           F.softmax(tl / tau, 1), reduction="batchmean")
        # the mean over the global batch: weight this share by its size (DDP averages over processes)
        loss = loss * (len(y) * dist.world_size() / self.batches.global_batch(b))
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return float(loss.detach())

    def _finish(self) -> dict:
        cfg, model, ds = self.cfg, self.model, self.ds
        model.set_mask_ratio(0.0)
        model.eval()
        acc = ann_accuracy(model, self.val, self.device, cfg.amp)
        metrics = {"val_ann_accuracy": acc}
        if self.val_windows is not None:
            metrics["val_window_ann_accuracy"] = ann_accuracy(model, self.val_windows, self.device, cfg.amp)
        meta = {
            "arch": cfg.arch, "representation": self.rep.config, "classes": ds.classes,
            "dataset": {"name": cfg.dataset, "root": str(cfg.root), "labels": str(cfg.labels) if cfg.labels else None,
                        "emulated_mnist": cfg.emulated, "emulated_fonts": cfg.fonts},
            "split": {"kind": "stratified", "val_fraction": cfg.val_fraction, "seed": cfg.seed,
                      "train": len(self.tr_idx), "val": len(self.va_idx)},
            "metrics": metrics, "history": self.history, "processes": dist.world_size(),
            "window_us": window_range(cfg.window_ms)[1] if self.wset is not None else sample_span_us(ds, self.tr_idx),
            "train_args": dataclasses.asdict(cfg),
        }
        if dist.is_main():
            model.cpu()
            if cfg.ecmt_calibrate and "ecmt" in getattr(model, "modes", ()):  # ECMT's thresholds in meta["ecmt"]
                from evstream.snn.ecmt import calibrate

                x = batch_inputs(ds, self.tr_idx[:cfg.ecmt_calibrate], self.rep)
                if self.wset is not None:  # live inputs are stream windows: calibrate on as many of them
                    x = torch.cat([x, batch_inputs(self.wset, np.arange(min(cfg.ecmt_calibrate, len(self.wset))),
                                                   self.rep)])
                meta["ecmt"] = calibrate(model, x) | {"split": "train"}
                self.log(f"ECMT thresholds calibrated on {meta['ecmt']['samples']} training samples "
                         f"(p{meta['ecmt']['percentile']:g})")
            save_checkpoint(cfg.out, model, meta)
            self.partial.unlink(missing_ok=True)
        self.log(f"saved {cfg.out}: validation ANN accuracy {acc:.4f} on {len(self.va_idx)} real recordings")
        return meta
