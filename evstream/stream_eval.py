"""``evstream eval-stream``: a labelled split played back to back as one stream through the live pipeline.

The recordings of a dataset split are put back to back (``evstream.streams.build_stream``: seeded order,
gaps from a range, optional background noise), written to a temporary ``.npz`` and replayed through the
same :class:`~evstream.live.Pipeline` that ``evstream run`` and the GUI use, unpaced. Every decision is
scored against the recording that covers most of its span (``evstream.streams.score_decisions``); a
recording replayed alone is scored by its last decision. JSON report + timeline plot.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from evstream.streams import Stream, StreamConfig, build_stream, last_decision_right, score_decisions


@dataclass(frozen=True)
class StreamEvalConfig:
    model: str
    dataset: str = "nmnist"
    root: str = ""
    labels: str | None = None
    split: str = "val"
    val_fraction: float = 0.1
    split_seed: int = 0
    limit: int = 0
    streams: tuple[StreamConfig, ...] = (StreamConfig(),)
    singles: int = 0  # recordings also replayed alone (last decision scored)
    with_oracle: bool = False  # also score the oracle (windows clipped at the true boundaries)
    cache: str | None = None
    live: dict = field(default_factory=dict)  # options of the live pipeline (mode, window, steps...)


def split_recordings(cfg: StreamEvalConfig):
    """(event arrays, label names, sensor size) of the chosen split, in dataset order."""
    from evstream.datasets import open_dataset, stratified_split

    if cfg.split in ("val", "train"):
        ds = open_dataset(cfg.dataset, cfg.root, cfg.labels, "train", cfg.cache)
        tr, va = stratified_split(ds.labels, cfg.val_fraction, cfg.split_seed)
        idx = va if cfg.split == "val" else tr
    else:
        ds = open_dataset(cfg.dataset, cfg.root, cfg.labels, cfg.split, cfg.cache)  # "test" or "all" files
        idx = np.arange(len(ds))
    if cfg.limit:
        idx = idx[: cfg.limit]
    recs = [ds.events_of(int(i)) for i in idx]
    labels = [ds.classes[int(ds.labels[int(i)])] for i in idx]
    return recs, labels, ds.sensor_size


def play(stream: Stream, model: str, live: dict, workdir) -> tuple[list[dict], dict]:
    """Replay ``stream`` through the live pipeline (unpaced); its decision records and final stats."""
    from evstream.events import EventChunk
    from evstream.live import LiveConfig, Pipeline
    from evstream.writers import write_events

    path = Path(workdir) / "stream.npz"
    write_events(path, EventChunk(stream.events, sensor_size=stream.sensor_size))
    decisions: list[dict] = []
    pipe = Pipeline(str(path), model, LiveConfig(speed=None, **live))
    stats = pipe.run(on_decision=lambda rec: decisions.append(rec.to_dict()))
    stats["ann_uJ"] = pipe.lm.ann_uJ if pipe.lm else None
    stats["mode"] = pipe.lm.mode if pipe.lm else None
    return decisions, stats


def oracle(stream: Stream, model: str, live: dict) -> list[dict]:
    """The upper bound the live rule is measured against: the same decision times, steps and smoothing, but
    every window clipped to the start of the recording playing (state reset at every true boundary, the
    smoother too). Not the product path: it needs the truth."""
    import torch

    from evstream.live import LiveConfig, load_model
    from evstream.live.policy import DecisionSmoother
    from evstream.streams import coverage

    cfg = LiveConfig(speed=None, **live)
    lm = load_model(model, stream.sensor_size, mode=cfg.mode, mask_ratio=cfg.mask_ratio, seed=cfg.seed)
    span, every, steps = cfg.window_us_for(lm), cfg.every_us_for(lm), cfg.steps_for(lm)
    smoother = DecisionSmoother.from_config(cfg)
    starts = [s.t_start for s in stream.segments]
    out, current = [], None
    for t in range(every, stream.duration_us + every, every):
        seg, _ = coverage(stream.segments, t - 1, t, starts)
        if seg is not None and seg is not current:
            smoother.reset()
            current = seg
        a = max(t - span, seg.t_start) if seg is not None else t - span
        x = torch.from_numpy(lm.rep(stream.window(a, t), t - span, t)[None])
        lm.runner.reset()
        energy = 0.0
        for _ in range(steps):
            res = lm.runner.step(x)
            energy += res.energy_uJ
        idx, conf = smoother.update(torch.softmax(res.mean[0], -1).numpy())
        out.append({"t_us": t, "window_us": t - a, "class": None if idx is None else lm.classes[idx],
                    "confidence": conf, "timesteps": steps, "energy_uJ": energy})
    return out


def evaluate_stream(cfg: StreamEvalConfig, progress=print) -> dict:
    recs, labels, sensor = split_recordings(cfg)
    out = {"model": cfg.model, "dataset": cfg.dataset, "split": cfg.split, "recordings": len(recs),
           "live": dict(cfg.live), "streams": []}
    with tempfile.TemporaryDirectory(prefix="evstream-stream-") as tmp:
        for sc in cfg.streams:
            stream = build_stream(recs, labels, sc, sensor)
            progress(f"stream: {len(stream.segments)} recordings, {stream.duration_us / 1e6:.1f} s, "
                     f"gaps {sc.gap_us[0] / 1e3:g}-{sc.gap_us[1] / 1e3:g} ms, shuffled {sc.shuffle}")
            decisions, stats = play(stream, cfg.model, cfg.live, tmp)
            rep = score_decisions(decisions, stream.segments, stream.duration_us, ann_energy_uJ=stats["ann_uJ"])
            rep.update({"stream": asdict(sc), "mode": stats["mode"], "dropped_slices": stats.get("dropped_slices")})
            entry = {"report": rep, "decisions": [_slim(d) for d in decisions],
                     "segments": [asdict(s) for s in stream.segments]}
            progress(summary_line(rep))
            if cfg.with_oracle:
                orc = score_decisions(oracle(stream, cfg.model, cfg.live), stream.segments, stream.duration_us,
                                      ann_energy_uJ=stats["ann_uJ"])
                entry["oracle"] = orc
                progress("oracle (resets at the true boundaries): " + summary_line(orc))
            out["streams"].append(entry)
        if cfg.singles:
            right = n = 0
            for i in range(min(cfg.singles, len(recs))):
                single = build_stream([recs[i]], [labels[i]], StreamConfig(shuffle=False), sensor)
                decisions, _ = play(single, cfg.model, cfg.live, tmp)
                ok = last_decision_right(decisions, single.segments)
                n += ok is not None
                right += bool(ok)
            out["singles"] = {"recordings": n, "last_right": right, "fraction": right / n if n else None}
            progress(f"replayed alone: last decision right on {right} of {n}")
    return out


def _slim(d: dict) -> dict:
    keep = ("t_us", "window_us", "class", "confidence", "timesteps", "energy_uJ", "reason")
    return {k: d.get(k) for k in keep}


def summary_line(r: dict) -> str:
    acc = f"{r['accuracy']:.3f}" if r["accuracy"] is not None else "n/a"
    onset = f"{r['onset_ms_median']:.0f} ms" if r["onset_ms_median"] is not None else "n/a"
    e = f"{r['energy_uJ_per_decision']:.1f} µJ" if r.get("energy_uJ_per_decision") is not None else "n/a"
    ann = f" (ANN {r['ann_energy_uJ_per_decision']:.1f} µJ)" if r.get("ann_energy_uJ_per_decision") else ""
    return (f"right {r['right']}/{r['scored']} = {acc}, {r['decisions_per_s']:.1f} decisions/s, "
            f"found {r['found']}/{r['recordings']}, onset median {onset}, "
            f"{r['false_switches_per_min']:.1f} false switches/min, undecided {r['undecided']}, "
            f"{r['steps_per_decision'] or 0:.1f} steps and {e} per decision{ann}")


def plot_timeline(result: dict, path, max_seconds: float = 20.0) -> None:
    """Truth vs decisions vs confidence over the first ``max_seconds`` of each stream, one row each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    streams = result["streams"]
    fig, axes = plt.subplots(len(streams), 1, figsize=(14, 3.2 * len(streams)), squeeze=False)
    for ax, s in zip(axes[:, 0], streams):
        classes = sorted({seg["label"] for seg in s["segments"]} | {str(d["class"]) for d in s["decisions"]
                                                                    if d["class"] is not None})
        pos = {c: i for i, c in enumerate(classes)}
        for seg in s["segments"]:
            if seg["t_start"] / 1e6 > max_seconds:
                break
            ax.plot([seg["t_start"] / 1e6, seg["t_end"] / 1e6], [pos[seg["label"]]] * 2, color="0.6", lw=6,
                    solid_capstyle="butt", label="truth" if seg is s["segments"][0] else None)
        ds = [d for d in s["decisions"] if d["t_us"] / 1e6 <= max_seconds]
        dec = [d for d in ds if d["class"] is not None]
        ok = [d for d in dec if _right(d, s["segments"])]
        bad = [d for d in dec if d not in ok]
        for group, colour, name in ((ok, "tab:green", "right / unscored"), (bad, "tab:red", "wrong")):
            ax.scatter([d["t_us"] / 1e6 for d in group], [pos[str(d["class"])] for d in group], s=14,
                       color=colour, label=name, zorder=3)
        und = [d for d in ds if d["class"] is None]
        if und:
            ax.scatter([d["t_us"] / 1e6 for d in und], [-0.8] * len(und), s=10, marker="x", color="k",
                       label="undecided")
        ax2 = ax.twinx()
        ax2.plot([d["t_us"] / 1e6 for d in ds], [d["confidence"] or 0 for d in ds], color="tab:blue", lw=0.8,
                 alpha=0.6)
        ax2.set_ylim(0, 1.05)
        ax2.set_ylabel("confidence", color="tab:blue")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_ylim(-1.2, len(classes) - 0.5)
        ax.set_xlabel("stream time (s)")
        ax.set_ylabel("class")
        r = s["report"]
        ax.set_title(f"gaps {r['stream']['gap_us'][0] / 1e3:g}-{r['stream']['gap_us'][1] / 1e3:g} ms: "
                     + summary_line(r), fontsize=8)
        ax.legend(loc="upper left", fontsize=7, ncol=4)
    fig.tight_layout()
    from evstream.fileio import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)


def _right(d, segments) -> bool:
    from evstream.streams import Segment, truth_of

    segs = [Segment(**s) for s in segments]
    truth = truth_of(segs, d["t_us"], d["window_us"] or 0)
    return truth is None or truth.label == str(d["class"])
