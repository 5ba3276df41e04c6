"""``evstream eval``: accuracy, spikes and energy of the ANN and of its SNN views, per T and mask ratio.

For each mask ratio and seed the SNN runs max(T) steps once (the same analog input every step, as the
paper) and its running mean is read at every requested T. Spikes and energy per sample are cumulative up
to T. Output JSON (read by other tools):
{"dataset", "samples", "ann": {"accuracy", "energy_uJ"},
 "snn": [{"mode", "timesteps", "mask_ratio", "accuracy_mean", "accuracy_std", "spikes_per_sample",
          "energy_uJ"}]}

    res = evaluate(EvalConfig(model="models/mst-nmnist.pt", root=..., timesteps=(8, 32), modes=("mst", "ecmt")))
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from evstream import distributed as dist
from evstream.datasets import default_split
from evstream.energy import OpCounter
from evstream.inputs import eval_samples
from evstream.loader import InOrder, SampleSet, make_loader, to_device
from evstream.representations import from_config
from evstream.snn import load_checkpoint
from evstream.workers import default_workers


@torch.no_grad()
def ann_metrics(model, batches, device="cpu") -> dict:
    """Accuracy and energy of the ANN view (every operation a MAC) over the ``(x, y)`` batches of a loader;
    sums over processes under torchrun."""
    model.eval()
    counter = OpCounter(model, set(), spiking=False)
    correct = n = 0
    for batch in batches:
        x, y = to_device(batch, device)
        correct += int((model(x).argmax(1) == y).sum())
        n += len(y)
    ops = counter.take()
    counter.remove()
    correct, n, energy, macs = dist.all_sum([correct, n, ops.energy_uJ, ops.macs])
    return {"accuracy": correct / n, "energy_uJ": energy / n, "macs_per_sample": macs / n}


@torch.no_grad()
def snn_curve(model, batches, timesteps, mode="mst", mask_ratio=0.0, seed=0, progress=None, device="cpu",
              burn_in: float = 0.0) -> dict:
    """Accuracy, cumulative spikes and energy per sample at each T (one run of max(T) steps per batch of
    ``batches``, a loader of ``(x, y)``). ``burn_in``: the answer at T is the mean output of steps
    ``int(burn_in * T) + 1 .. T`` (the live rule, ``LiveConfig.burn_in``; 0: of every step, the paper's)."""
    T = max(timesteps)
    correct = {t: 0 for t in timesteps}
    spikes = {t: 0.0 for t in timesteps}
    energy = {t: 0.0 for t in timesteps}
    runner = model.spiking(mode=mode, mask_ratio=mask_ratio, seed=seed)
    if torch.device(device).type != "cpu":  # masks drawn on the device (the runner's generator is a CPU one)
        runner.model.to(device)
        runner.generator = torch.Generator(device=device)
        runner.set_mask_ratio(runner.mask_ratios)
    n = 0
    for batch in batches:
        xb, yb = to_device(batch, device)
        n += len(yb)
        runner.reset()
        s = e = 0.0
        cum = [0.0]  # running sums of the step outputs, for the burn-in's later-steps mean
        for t in range(1, T + 1):
            out = runner.step(xb)
            s += out.total_spikes
            e += out.energy_uJ
            if burn_in:
                cum.append(cum[-1] + out.logits)
            if t in correct:
                k = int(burn_in * t)
                answer = (cum[t] - cum[k]) / (t - k) if burn_in else out.mean
                correct[t] += int((answer.argmax(1) == yb).sum())
                spikes[t] += s
                energy[t] += e
            if progress:
                progress()
    n = dist.all_sum([n])[0]
    sums = dist.all_sum([v for t in timesteps for v in (correct[t], spikes[t], energy[t])])
    return {t: {"accuracy": sums[3 * i] / n, "spikes_per_sample": sums[3 * i + 1] / n,
                "energy_uJ": sums[3 * i + 2] / n} for i, t in enumerate(timesteps)}


@dataclass(frozen=True)
class EvalConfig:
    """What ``evstream eval`` takes: the checkpoint, the data (``split`` "val" is the checkpoint's own
    validation split; None: the dataset's test split where it has one, else every labelled file), the
    timesteps T, mask ratios and seeds per ratio, the conversion modes (None: the model's first), the
    processes building the inputs (None: the machine's cores) and the device."""

    model: str
    root: str
    dataset: str = "nmnist"
    labels: str | None = None
    timesteps: tuple = (8, 16, 32, 64, 128)
    masks: tuple = (0.0, 0.5, 0.75)
    seeds: int = 10
    modes: tuple | None = None
    split: str | None = None
    limit: int = 0
    cache: str | None = None
    progress: bool = True
    workers: int | None = None
    device: str = "cpu"
    burn_in: float = 0.0  # the answer at T leaves out the first int(burn_in * T) steps (the live rule)


def evaluate(cfg: EvalConfig) -> dict:
    """Under torchrun each process evaluates its share of the samples (every world-th); the sums are
    added over processes, so the numbers equal one process's (masked runs: equal in distribution, since
    masks are drawn per process). The inputs are built by ``workers`` DataLoader processes, batch by batch
    (memory does not grow with the split). ``split=None``: :func:`~evstream.datasets.default_split`."""
    if not 0 <= cfg.burn_in < 1:
        from evstream.errors import EvstreamError

        raise EvstreamError(f"burn-in is a fraction of the steps in [0, 1), not {cfg.burn_in}")
    dist.init(cfg.device)
    split = cfg.split or default_split(cfg.dataset, cfg.labels)
    device = dist.device(cfg.device)
    model, meta = load_checkpoint(cfg.model, need_representation=True)
    model.to(device)
    modes = list(cfg.modes or [model.modes[0]])
    timesteps, masks, seeds = list(cfg.timesteps), list(cfg.masks), cfg.seeds
    progress = cfg.progress and dist.is_main()
    ds, idx = eval_samples(meta, cfg.dataset, cfg.root, cfg.labels, split, cfg.limit, cfg.cache, cfg.workers,
                           progress)
    n_total = len(idx)
    workers = default_workers() if cfg.workers is None else cfg.workers
    batches = make_loader(SampleSet([ds], from_config(meta["representation"])), InOrder(dist.shard(idx), 200),
                          workers, device)
    torch.set_num_threads(max(1, 2 // dist.world_size()))
    ann = ann_metrics(model, batches, device)
    rows = []
    from tqdm import tqdm

    T = max(timesteps)
    # without masks a run draws nothing at random: one run stands for every seed
    runs = {r: seeds if r > 0 else 1 for r in masks}
    total = len(modes) * sum(runs.values()) * T * len(batches)
    bar = tqdm(total=total, desc="SNN steps", disable=not progress, unit="step")
    for mode in modes:
        for r in masks:
            per_seed = [snn_curve(model, batches, timesteps, mode, r, seed * 1000, lambda: bar.update(1), device,
                                  cfg.burn_in) for seed in range(runs[r])]
            for t in timesteps:
                accs = [c[t]["accuracy"] for c in per_seed]
                rows.append({"mode": mode, "timesteps": t, "mask_ratio": r,
                             "accuracy_mean": float(np.mean(accs)), "accuracy_std": float(np.std(accs)),
                             "spikes_per_sample": float(np.mean([c[t]["spikes_per_sample"] for c in per_seed])),
                             "energy_uJ": float(np.mean([c[t]["energy_uJ"] for c in per_seed]))})
    bar.close()
    return {"dataset": cfg.dataset, "split": split, "model": str(cfg.model), "samples": n_total,
            "processes": dist.world_size(), "burn_in": cfg.burn_in,
            "ann": {"accuracy": ann["accuracy"], "energy_uJ": ann["energy_uJ"]}, "snn": rows}


def plot(result: dict, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    keys = sorted({(r["mode"], r["mask_ratio"]) for r in result["snn"]})
    for mode, m in keys:
        rs = sorted((r for r in result["snn"] if r["mode"] == mode and r["mask_ratio"] == m), key=lambda r: r["timesteps"])
        ts = [r["timesteps"] for r in rs]
        ax[0].errorbar(ts, [r["accuracy_mean"] for r in rs], [r["accuracy_std"] for r in rs], marker="o",
                       capsize=3, label=f"{mode} SNN, mask {m:g}")
        ax[1].plot(ts, [r["energy_uJ"] for r in rs], marker="o", label=f"{mode} SNN, mask {m:g}")
    ax[0].axhline(result["ann"]["accuracy"], color="k", ls="--", label="ANN")
    ax[1].axhline(result["ann"]["energy_uJ"], color="k", ls="--", label="ANN")
    for a in ax:
        a.set_xscale("log", base=2)
        a.set_xlabel("timesteps T")
        a.legend(fontsize=8)
    ax[0].set_ylabel("accuracy")
    ax[1].set_ylabel("energy per sample (µJ)")
    ax[0].set_title(f"{result['dataset']} ({result['split']}, {result['samples']} samples)")
    ax[1].set_title("energy: 0.9 pJ x SOPs + 4.6 pJ x MACs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write(result: dict, json_path=None, plot_path=None) -> None:
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=1))
    if plot_path:
        plot(result, plot_path)
