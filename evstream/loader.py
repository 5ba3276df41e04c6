"""Batches of representations built in ``torch.utils.data.DataLoader`` worker processes.

    data = SampleSet([ds, emulated], rep)                  # items: (source, index[, augmentation seed])
    batches = EpochBatches(pool, 64, seed)
    loader = make_loader(data, Plan(batches), workers=4, device=device)
    batches.set_epoch(phase, epoch)
    for x, y in loader:                                    # x (B, C, H, W) float32, y (B,) int64
        ...
    for x, y in Pass(loader, InOrder(val_indices, 256)):   # the same workers, another plan
        ...

Every item names its sample and, when augmented, the seed of its own generator, so a sample's input is
the same whichever worker (or process, under torchrun) builds it, and whatever the number of workers:
``--workers 0`` (build in the main process) and ``--workers 8`` give identical batches.
Workers read events from the event cache (:mod:`evstream.cache`) one recording at a time, so memory
stays bounded by ``workers x prefetch`` batches whatever the dataset's size.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from evstream.inputs import sample_item


class SampleSet(torch.utils.data.Dataset):
    """Map-style dataset over several event datasets; ``self[(s, i)]`` is sample ``i`` of source ``s``
    through ``rep``, ``self[(s, i, seed)]`` the same after :func:`~evstream.augment.augment` with
    ``np.random.default_rng(seed)`` (:func:`~evstream.inputs.sample_input`: a stream window, a source with
    ``span_of``, over its exact time span; a source with ``draw``, a fresh window per call). Sources are pickled into spawned workers (forked ones share
    them). Returns ``(x float32 tensor (C, H, W), label int)``."""

    def __init__(self, sources, rep):
        self.sources, self.rep = list(sources), rep

    def __len__(self):
        return sum(len(s) for s in self.sources)

    def __getitem__(self, item):
        s, i, *seed = item
        ds = self.sources[s]
        x, label = sample_item(ds, int(i), self.rep, np.random.default_rng(seed[0]) if seed else None)
        return torch.from_numpy(x), label


class EpochBatches:
    """Training batches: a seeded permutation of ``pool`` (rows ``(source, index)``) per (phase, epoch),
    cut into global batches of ``batch``; each process loads its ``shard`` of every global batch, each
    sample augmented with seed ``[seed, phase, epoch, k]`` (``k`` its position in ``pool``)."""

    def __init__(self, pool: np.ndarray, batch: int, seed: int, shard=lambda ks: ks, augment: bool = True):
        self.pool, self.batch, self.seed, self.shard, self.augment = np.asarray(pool), batch, seed, shard, augment
        self.phase = self.epoch = 0

    def set_epoch(self, phase: int, epoch: int) -> None:
        self.phase, self.epoch = phase, epoch

    def order(self) -> np.ndarray:
        return np.random.default_rng(self.seed * 1000 + self.phase * 100 + self.epoch).permutation(len(self.pool))

    def __len__(self):
        return math.ceil(len(self.pool) / self.batch)

    def global_batch(self, b: int) -> int:
        """The size of global batch ``b`` (the last one may be short)."""
        return min(self.batch, len(self.pool) - b * self.batch)

    def __iter__(self):
        order = self.order()
        for b in range(len(self)):
            items = []
            for k in self.shard(order[b * self.batch:(b + 1) * self.batch]):
                s, i = self.pool[k]
                seed = [self.seed, self.phase, self.epoch, int(k)]
                items.append((int(s), int(i), seed) if self.augment else (int(s), int(i)))
            yield items


class InOrder:
    """Evaluation batches: ``indices`` of source ``source`` in order, ``batch`` at a time."""

    def __init__(self, indices, batch: int, source: int = 0):
        self.indices, self.batch, self.source = np.asarray(indices), batch, source

    def __len__(self):
        return math.ceil(len(self.indices) / self.batch)

    def __iter__(self):
        for b in range(len(self)):
            yield [(self.source, int(i)) for i in self.indices[b * self.batch:(b + 1) * self.batch]]


class Plan:
    """A batch sampler standing for a replaceable plan (:class:`EpochBatches`, :class:`InOrder`), so one
    DataLoader, one set of persistent workers, serves training and validation passes in turn."""

    def __init__(self, plan):
        self.plan = plan

    def __iter__(self):
        return iter(self.plan)

    def __len__(self):
        return len(self.plan)


class Pass:
    """Iterating this iterates ``loader`` (made with a :class:`Plan`) over ``plan``, then restores its plan."""

    def __init__(self, loader, plan):
        self.loader, self.plan = loader, plan

    def __len__(self):
        return len(self.plan)

    def __iter__(self):
        switch = self.loader.batch_sampler
        before, switch.plan = switch.plan, self.plan
        try:
            yield from self.loader
        finally:
            switch.plan = before


def _worker_init(_):
    try:
        import cv2

        cv2.setNumThreads(1)  # one core per worker: the workers are the parallelism
    except ImportError:  # pragma: no cover
        pass


def make_loader(data: SampleSet, batches, workers: int = 0, device="cpu", prefetch: int = 2):
    """A DataLoader over ``data`` yielding the batches of ``batches`` (an :class:`EpochBatches`,
    :class:`InOrder` or :class:`Plan`), built by ``workers`` processes (kept across epochs), pinned for a CUDA device."""
    workers = max(0, int(workers))
    kw = dict(num_workers=workers, pin_memory=torch.device(device).type == "cuda")
    if workers:
        kw.update(persistent_workers=True, prefetch_factor=prefetch, worker_init_fn=_worker_init)
        if len(data.sources[0]):  # compile (numba) here once: forked workers inherit it instead of each loading it
            data[(0, 0)]
    return torch.utils.data.DataLoader(data, batch_sampler=batches, **kw)


def to_device(batch, device):
    """``(x, y)`` on ``device`` (asynchronous copy from pinned memory on CUDA)."""
    x, y = batch
    nb = torch.device(device).type == "cuda"
    return x.to(device, non_blocking=nb), y.to(device, non_blocking=nb)
