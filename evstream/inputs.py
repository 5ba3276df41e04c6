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
from evstream.datasets import EventDataset, default_split, open_dataset, stratified_split
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


def sample_item(ds, i: int, rep, rng=None) -> tuple[np.ndarray, int]:
    """``(input, label)`` of sample ``i``: :func:`sample_input`, or for a source that draws its windows
    afresh (``draw(i, rng)``, :class:`evstream.streams.FreshWindows`) the drawn window and its label."""
    if hasattr(ds, "draw"):
        ev, span, label = ds.draw(int(i), rng)
        if rng is not None:
            ev = augment(ev, ds.sensor_size, rng)
        return rep(ev, *span), int(label)
    return sample_input(ds, i, rep, rng), int(ds.labels[int(i)])


def batch_inputs(ds: EventDataset, idx, rep, rng=None) -> torch.Tensor:
    """The model inputs of samples ``idx`` of ``ds`` (augmented with ``rng`` when given)."""
    return torch.from_numpy(np.stack([sample_item(ds, int(i), rep, rng)[0] for i in idx]))


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
    if isinstance(ds, EventDataset):  # known from the event cache's index, without reading the events
        spans = [int(s) for s in ds.spans[np.asarray(idx, np.int64)] if s >= 0]  # -1: no events
    else:
        spans = [int(e["t"][-1] - e["t"][0]) for e in (ds.events_of(int(i)) for i in idx) if len(e)]
    return int(np.median(spans)) if spans else 0


def eval_samples(meta: dict, dataset, root, labels, split, limit, cache=None, workers=None, progress=True):
    """(dataset, indices) of a split for evaluating a checkpoint with ``meta``: ``split="val"`` (or ``"train"``)
    is the checkpoint's own stratified split of the training files, ``"test"`` a dataset's test split,
    ``"all"`` every labelled file, ``None`` the test split where the dataset has one, else all
    (:func:`~evstream.datasets.default_split`)."""
    split = split or default_split(dataset, labels)
    if split in ("val", "train"):
        ds = open_dataset(dataset, root, labels, "train", cache, workers, progress)
        s = meta.get("split", {})
        tr, va = stratified_split(ds.labels, s.get("val_fraction", 0.1), s.get("seed", 0))
        idx = va if split == "val" else tr
    else:  # "test" (a dataset's own test split) or "all" files listed
        ds = open_dataset(dataset, root, labels, split, cache, workers, progress)
        idx = np.arange(len(ds))
    if limit:
        idx = idx[:limit]
    return ds, idx


def eval_inputs(meta: dict, dataset, root, labels, split, limit, cache=None):
    """(inputs, labels, dataset) in memory for evaluating a checkpoint with ``meta`` (small splits;
    ``evstream eval`` streams them through a loader); splits as :func:`eval_samples`."""
    ds, idx = eval_samples(meta, dataset, root, labels, split, limit, cache, progress=False)
    return batch_inputs(ds, idx, from_config(meta["representation"])), torch.from_numpy(ds.labels[idx]), ds
