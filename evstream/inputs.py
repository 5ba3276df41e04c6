"""Model inputs from datasets: the default representation of a training run, batches of samples as tensors
(augmented or not), a checkpoint's evaluation inputs, the typical time span of a sample.

    rep = from_config(default_representation(ds.sensor_size, n_frames=4))
    x = batch_inputs(ds, idx, rep)                       # (N, C, H, W) float32
    x, y, ds = eval_inputs(meta, "nmnist", root, labels, "val", limit=200)
"""

from __future__ import annotations

import numpy as np
import torch

from evstream.augment import augment
from evstream.datasets import EventDataset, open_dataset, stratified_split
from evstream.representations import from_config


def default_representation(sensor_size, n_frames=4, out_size=(32, 32)) -> dict:
    """The representation config ``evstream train`` uses: ``n_frames`` polarity count frames, split by time."""
    return {"kind": "frames", "sensor_size": list(sensor_size), "n_frames": n_frames, "split_by": "time",
            "mode": "count", "normalize": 4.0, "tail": True, "out_size": list(out_size)}


def sample_input(ds, i: int, rep, rng=None) -> np.ndarray:
    """One sample's model input: its events (augmented with ``rng``) through ``rep``; a stream window
    (a dataset with ``span_of``, :class:`evstream.streams.WindowSet`) over its exact time span, as the live
    pipeline builds it."""
    ev = ds.events_of(int(i))
    if rng is not None:
        ev = augment(ev, ds.sensor_size, rng)
    span = ds.span_of(int(i)) if hasattr(ds, "span_of") else ()
    return rep(ev, *span)


def batch_inputs(ds: EventDataset, idx, rep, rng=None) -> torch.Tensor:
    """The model inputs of samples ``idx`` of ``ds`` (augmented with ``rng`` when given)."""
    return torch.from_numpy(np.stack([sample_input(ds, int(i), rep, rng) for i in idx]))


def window_range(spec) -> tuple[int, int]:
    """``"100,150"``, ``"0-200"`` or ``"150"`` (ms) -> ``(lo_us, hi_us)``."""
    from evstream.errors import EvstreamError

    try:
        parts = [float(v) for v in str(spec).replace("-", ",").split(",") if v.strip()]
    except ValueError:
        parts = []
    if not parts or parts[0] < 0 or parts[-1] < parts[0]:
        raise EvstreamError(f"not a range of milliseconds: {spec!r} (e.g. 100,150)")
    return int(parts[0] * 1000), int(parts[-1] * 1000)


def sample_span_us(ds: EventDataset, idx) -> int:
    """Median time span of the training samples: a live stream's input window should span as much."""
    spans = [int(e["t"][-1] - e["t"][0]) for e in (ds.events_of(int(i)) for i in idx) if len(e)]
    return int(np.median(spans)) if spans else 0


def eval_inputs(meta: dict, dataset, root, labels, split, limit, cache=None):
    """(inputs, labels, dataset) for evaluating a checkpoint with ``meta``; ``split="val"`` (or ``"train"``)
    is the checkpoint's own stratified split of the training files, ``"test"`` a dataset's test split,
    ``"all"`` every file listed."""
    rep = from_config(meta["representation"])
    if split in ("val", "train"):
        ds = open_dataset(dataset, root, labels, "train", cache)
        s = meta.get("split", {})
        tr, va = stratified_split(ds.labels, s.get("val_fraction", 0.1), s.get("seed", 0))
        idx = va if split == "val" else tr
    else:
        ds = open_dataset(dataset, root, labels, "test" if split == "test" else "train", cache)
        idx = np.arange(len(ds))
    if limit:
        idx = idx[:limit]
    return batch_inputs(ds, idx, rep), torch.from_numpy(ds.labels[idx]), ds
