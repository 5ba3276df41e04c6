"""Neuromorphic datasets read through evstream's readers, with cached event arrays.

Layouts (``open_dataset(name, root, labels=None, split=...)``):
- ``nmnist``: ``Train/<digit>/*.bin`` and ``Test/<digit>/*.bin``; or a folder of ``<id>.bs2`` / ``.bin``
  files with a label list (``#sample #class`` lines, as ``shared/data/nmnist_small``) given by ``labels``.
- ``ncars``: ``n-cars_train|n-cars_test/cars|background/*.dat``.
- ``cifar10dvs``: one folder per class of ``.aedat`` (AEDAT 2.0 DVS128) or ``.aedat4``; the usual 90/10
  split per class (first 90% of the sorted files train, the rest test).
- ``asl``: one folder per letter of ASL-DVS ``.mat`` files.
Events of every file are decoded once and cached (``--cache DIR``, default ``~/.cache/evstream``), keyed by
the file list and sizes; a validation split is a seeded stratified split of the training files.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evstream.errors import EvstreamError
from evstream.events import EVENT_DTYPE
from evstream.readers import read_events

DATASETS = {"nmnist": (34, 34), "ncars": (120, 100), "cifar10dvs": (128, 128), "asl": (240, 180)}


@dataclass
class Sample:
    path: Path
    label: int


def _class_folders(root: Path, pattern: str) -> tuple[list[Sample], list[str]]:
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    samples = [Sample(f, i) for i, c in enumerate(classes) for f in sorted((root / c).glob(pattern))]
    return samples, classes


def list_samples(name: str, root, labels=None, split: str = "train") -> tuple[list[Sample], list[str]]:
    """The (file, label) list of a dataset split, and its class names."""
    root = Path(root)
    if not root.is_dir():
        raise EvstreamError("dataset folder not found", where=root)
    if name == "nmnist":
        if labels is not None:
            lines = [ln.split() for ln in Path(labels).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
            samples = []
            for sid, cls in lines:
                f = next((root / f"{sid}{ext}" for ext in (".bs2", ".bin") if (root / f"{sid}{ext}").exists()), None)
                if f is None:
                    raise EvstreamError(f"sample {sid} listed in {labels} has no .bs2/.bin file", where=root)
                samples.append(Sample(f, int(cls)))
            return samples, [str(i) for i in range(10)]
        sub = root / ("Train" if split == "train" else "Test")
        return _class_folders(sub, "*.bin")
    if name == "ncars":
        sub = root / ("n-cars_train" if split == "train" else "n-cars_test")
        samples, classes = _class_folders(sub, "*.dat")
        return samples, classes
    if name in ("cifar10dvs", "asl"):
        pattern = "*.mat" if name == "asl" else "*.aedat*"
        samples, classes = _class_folders(root, pattern)
        if name == "cifar10dvs":  # the usual split: first 90% of each class trains, the last 10% tests
            out = []
            for c in range(len(classes)):
                files = [s for s in samples if s.label == c]
                cut = int(round(0.9 * len(files)))
                out += files[:cut] if split == "train" else files[cut:]
            samples = out
        return samples, classes
    raise EvstreamError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): ``val_fraction`` of each class to validation, seeded."""
    rng = np.random.default_rng(seed)
    tr, va = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(val_fraction * len(idx)))
        va += idx[:k].tolist()
        tr += idx[k:].tolist()
    return np.sort(tr), np.sort(va)


class EventDataset:
    """All samples' events in one array with offsets (cached), labels, classes and sensor size."""

    def __init__(self, samples: list[Sample], classes: list[str], sensor_size, cache_dir=None, name=""):
        self.samples, self.classes, self.sensor_size, self.name = samples, classes, tuple(sensor_size), name
        self.labels = np.array([s.label for s in samples], np.int64)
        key = hashlib.sha1("".join(f"{s.path}:{s.path.stat().st_size};" for s in samples).encode()).hexdigest()[:16]
        cache = Path(cache_dir or os.environ.get("EVSTREAM_CACHE", Path.home() / ".cache" / "evstream"))
        cache.mkdir(parents=True, exist_ok=True)
        f = cache / f"events-{name}-{key}.npz"
        if f.exists():
            z = np.load(f)
            self.events, self.offsets = z["events"], z["offsets"]
        else:
            parts = []
            from tqdm import tqdm

            for s in tqdm(samples, desc=f"decoding {name}", unit="file", leave=False, disable=len(samples) < 50):
                ev = read_events(s.path).events
                ev = ev.copy()
                ev["t"] -= ev["t"][0] if len(ev) else 0
                parts.append(ev)
            self.offsets = np.cumsum([0] + [len(p) for p in parts])
            self.events = np.concatenate(parts) if parts else np.zeros(0, EVENT_DTYPE)
            np.savez(f, events=self.events, offsets=self.offsets)

    def __len__(self):
        return len(self.samples)

    def events_of(self, i: int) -> np.ndarray:
        return self.events[self.offsets[i]:self.offsets[i + 1]]

    @classmethod
    def from_events(cls, events_list, labels, classes, sensor_size, name="memory"):
        self = cls.__new__(cls)
        self.samples = [Sample(Path(f"{name}:{i}"), int(l)) for i, l in enumerate(labels)]
        self.classes, self.sensor_size, self.name = classes, tuple(sensor_size), name
        self.labels = np.asarray(labels, np.int64)
        self.offsets = np.cumsum([0] + [len(e) for e in events_list])
        self.events = np.concatenate(events_list) if events_list else np.zeros(0, EVENT_DTYPE)
        return self


def open_dataset(name, root, labels=None, split="train", cache_dir=None) -> EventDataset:
    samples, classes = list_samples(name, root, labels, split)
    if not samples:
        raise EvstreamError(f"no {name} samples found for split {split!r}", where=root)
    return EventDataset(samples, classes, DATASETS[name], cache_dir, name=f"{name}-{split}")


def emulated_mnist(folder, n: int, seed: int = 0, cache_dir=None, progress: bool = True) -> EventDataset:
    """``n`` MNIST images from ``folder`` moved through the three saccades by the emulator (cached)."""
    from evstream.emulator import emulate_saccades, read_mnist_idx

    cache = Path(cache_dir or os.environ.get("EVSTREAM_CACHE", Path.home() / ".cache" / "evstream"))
    cache.mkdir(parents=True, exist_ok=True)
    f = cache / f"emulated-mnist-{n}-{seed}.npz"
    images, labels = read_mnist_idx(folder)
    idx = np.random.default_rng(seed).permutation(len(images))[:n]
    if f.exists():
        z = np.load(f)
        evs = np.split(z["events"], z["offsets"][1:-1])
    else:
        from tqdm import tqdm

        evs = [emulate_saccades(images[i], seed=int(i)) for i in tqdm(idx, desc="emulating MNIST saccades", unit="img",
                                                                        disable=not progress)]
        np.savez(f, events=np.concatenate(evs), offsets=np.cumsum([0] + [len(e) for e in evs]))
    return EventDataset.from_events(evs, labels[idx], [str(i) for i in range(10)], (34, 34), name="emulated-mnist")
