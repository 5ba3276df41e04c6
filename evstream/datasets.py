"""Neuromorphic datasets read through evstream's readers, with cached event arrays.

Layouts (``open_dataset(name, root, labels=None, split=...)``):
- ``nmnist``: ``Train/<digit>/*.bin`` and ``Test/<digit>/*.bin``; or a folder of ``<id>.bs2`` / ``.bin``
  files with a label list (``#sample #class`` lines, as ``shared/data/nmnist_small``) given by ``labels``.
- ``ncars``: ``n-cars_train|n-cars_test/cars|background/*.dat``.
- ``cifar10dvs``: one folder per class of ``.aedat`` (AEDAT 2.0 DVS128) or ``.aedat4``; the usual 90/10
  split per class (first 90% of the sorted files train, the rest test).
- ``asl``: one folder per letter of ASL-DVS ``.mat`` files.
``split="all"``: every labelled file of the layout (train and test). Events of every file are decoded once,
in parallel worker processes, into the event cache (``--cache DIR``, default ``~/.cache/evstream``; one
``.npy`` per recording keyed by its path, size and mtime, see :mod:`evstream.cache`), so every split and
every later run reads them from there; a validation split is a seeded stratified split of the training files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evstream.cache import EventCache, file_key, make_key
from evstream.errors import EvstreamError
from evstream.events import EVENT_DTYPE

DATASETS = {"nmnist": (34, 34), "ncars": (120, 100), "cifar10dvs": (128, 128), "asl": (240, 180)}


@dataclass
class Sample:
    path: Path
    label: int


def _class_folders(root: Path, pattern: str) -> tuple[list[Sample], list[str]]:
    if not root.is_dir():
        raise EvstreamError("dataset folder not found", where=root)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    samples = [Sample(f, i) for i, c in enumerate(classes) for f in sorted((root / c).glob(pattern))
               if not f.name.startswith(".")]  # hidden: temporaries, macOS metadata
    return samples, classes


SPLITS = ("train", "test", "all")


def has_test_split(name: str, labels=None) -> bool:
    """Whether the layout has its own test split (a label-list folder of N-MNIST and ASL-DVS have none)."""
    return name in ("ncars", "cifar10dvs") or (name == "nmnist" and labels is None)


def list_samples(name: str, root, labels=None, split: str = "train") -> tuple[list[Sample], list[str]]:
    """The (file, label) list of a dataset split (``train``, ``test`` or ``all``), and its class names.
    Layouts without a test split (a label list, ASL-DVS) list every file as ``train`` and as ``all``."""
    root = Path(root)
    if not root.is_dir():
        raise EvstreamError("dataset folder not found", where=root)
    if split not in SPLITS:
        raise EvstreamError(f"unknown split {split!r} (known: {', '.join(SPLITS)})")
    if split == "test" and not has_test_split(name, labels):
        raise EvstreamError(f"this {name} layout has no test split (use 'all', or the checkpoint's 'val')", where=root)
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
        return _two_folders(root, "Train", "Test", "*.bin", split)
    if name == "ncars":
        return _two_folders(root, "n-cars_train", "n-cars_test", "*.dat", split)
    if name in ("cifar10dvs", "asl"):
        pattern = "*.mat" if name == "asl" else "*.aedat*"
        samples, classes = _class_folders(root, pattern)
        if name == "cifar10dvs" and split != "all":  # the usual split: first 90% of each class trains, the rest tests
            out = []
            for c in range(len(classes)):
                files = [s for s in samples if s.label == c]
                cut = int(round(0.9 * len(files)))
                out += files[:cut] if split == "train" else files[cut:]
            samples = out
        return samples, classes
    raise EvstreamError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")


def _two_folders(root: Path, train: str, test: str, pattern: str, split: str):
    if split != "all":
        return _class_folders(root / (train if split == "train" else test), pattern)
    a, classes = _class_folders(root / train, pattern)
    b, classes_b = _class_folders(root / test, pattern)
    if classes_b != classes:
        raise EvstreamError(f"{test} has classes {classes_b}, {train} has {classes}", where=root)
    return a + b, classes


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
    """Samples' events (read from the event cache, or held in memory), labels, classes and sensor size.

    ``events_of(i)`` returns sample ``i``'s events as a fresh array; ``spans`` holds each sample's time
    span in µs (-1 when it has no events) and ``counts`` its number of events, known without reading it.
    """

    def __init__(self, samples: list[Sample], classes: list[str], sensor_size, cache_dir=None, name="",
                 workers: int | None = None, progress: bool = True):
        self.samples, self.classes, self.sensor_size, self.name = samples, classes, tuple(sensor_size), name
        self.labels = np.array([s.label for s in samples], np.int64)
        self._cache = EventCache(cache_dir)
        keys = [file_key(s.path) for s in samples]
        idx = self._cache.fill(name, keys, [s.path for s in samples], decode_file, workers, progress)
        self._keys, self.counts, self.spans = keys, idx.counts, idx.spans
        self._memory = None

    def __len__(self):
        return len(self.samples)

    def events_of(self, i: int) -> np.ndarray:
        if self._memory is not None:
            events, offsets = self._memory
            return events[offsets[i]:offsets[i + 1]]
        return self._cache.read(self._keys[i])

    @classmethod
    def from_events(cls, events_list, labels, classes, sensor_size, name="memory"):
        self = cls.__new__(cls)
        self.samples = [Sample(Path(f"{name}:{i}"), int(l)) for i, l in enumerate(labels)]
        self.classes, self.sensor_size, self.name = classes, tuple(sensor_size), name
        self.labels = np.asarray(labels, np.int64)
        offsets = np.cumsum([0] + [len(e) for e in events_list])
        self._memory = (np.concatenate(events_list) if events_list else np.zeros(0, EVENT_DTYPE), offsets)
        self.counts = np.diff(offsets)
        self.spans = np.array([int(e["t"][-1] - e["t"][0]) if len(e) else -1 for e in events_list], np.int64)
        return self

    @classmethod
    def _from_cache(cls, cache: EventCache, keys, counts, spans, labels, classes, sensor_size, name):
        self = cls.__new__(cls)
        self.samples = [Sample(Path(f"{name}:{i}"), int(l)) for i, l in enumerate(labels)]
        self.classes, self.sensor_size, self.name = classes, tuple(sensor_size), name
        self.labels = np.asarray(labels, np.int64)
        self._cache, self._keys, self.counts, self.spans, self._memory = cache, list(keys), counts, spans, None
        return self


def decode_file(path) -> np.ndarray:
    """A recording's events with time counted from its first event (what the cache stores)."""
    from evstream.readers import read_events

    ev = read_events(path).events.copy()
    ev["t"] -= ev["t"][0] if len(ev) else 0
    return ev


def default_split(name: str, labels=None) -> str:
    """``evstream eval``'s split when none is given: the dataset's test split, else every labelled file."""
    return "test" if has_test_split(name, labels) else "all"


def open_dataset(name, root, labels=None, split="train", cache_dir=None, workers: int | None = None,
                 progress: bool = True) -> EventDataset:
    """A dataset split through the event cache (decoding what is not cached yet with ``workers`` processes)."""
    samples, classes = list_samples(name, root, labels, split)
    if not samples:
        raise EvstreamError(f"no {name} samples found for split {split!r}", where=root)
    return EventDataset(samples, classes, DATASETS[name], cache_dir, name=f"{name}-{split}", workers=workers,
                        progress=progress)


def _emulate(task) -> np.ndarray:
    from evstream.emulator import emulate_saccades

    image, i = task
    return emulate_saccades(image, seed=int(i))


def emulated_mnist(folder, n: int, seed: int = 0, cache_dir=None, progress: bool = True,
                   workers: int | None = None) -> EventDataset:
    """``n`` MNIST images from ``folder`` moved through the three saccades by the emulator (cached; emulated
    in ``workers`` processes). Image ``i`` always gets emulator seed ``i``, so a sample never depends on
    ``n`` or on which process emulated it."""
    from evstream.emulator import read_mnist_idx

    images, labels = read_mnist_idx(folder)
    idx = np.random.default_rng(seed).permutation(len(images))[:n]
    src = ",".join(file_key(f) for f in sorted(Path(folder).glob("*images*idx3*")))
    keys = [make_key("emulated-mnist-v1", src, int(i)) for i in idx]
    return _emulated_digits("emulated-mnist", f"{n}-{seed}", keys, [(images[i], int(i)) for i in idx], _emulate,
                            labels[idx], cache_dir, workers, progress)


def _emulated_digits(kind, run, keys, tasks, emulate, labels, cache_dir, workers, progress) -> EventDataset:
    """Ten-class samples on the emulated 34x34 sensor: ``emulate(task)`` for each of ``tasks`` (in ``workers``
    processes), cached under ``keys``; an EventDataset of ``kind``."""
    cache = EventCache(cache_dir)
    index = cache.fill(f"{kind}-{run}", keys, tasks, emulate, workers, progress)
    return EventDataset._from_cache(cache, keys, index.counts, index.spans, labels, [str(i) for i in range(10)],
                                    (34, 34), kind)


FONT_SEED = 1_000_003  # font digit i of seed s is drawn from default_rng([FONT_SEED + s, i]): never the demo's


def _emulate_font(task) -> np.ndarray:
    from evstream.emulator import emulate_saccades, font_digit

    digit, seed, i = task
    image = font_digit(int(digit), np.random.default_rng([FONT_SEED + int(seed), int(i)]))
    return emulate_saccades(image, seed=FONT_SEED + int(i))


def emulated_fonts(n: int, seed: int = 0, cache_dir=None, progress: bool = True,
                   workers: int | None = None) -> EventDataset:
    """``n`` printed digits (:func:`evstream.emulator.font_digit`: OpenCV Hershey fonts, random stroke, scale
    and slant), balanced over the ten classes, moved through the three saccades by the emulator (cached).
    Sample ``i`` depends only on (``seed``, ``i``), drawn from a seed sequence the demo recording
    (``scripts/make_demo_recording.py``, one ``default_rng(7)``) does not use."""
    labels = np.arange(n, dtype=np.int64) % 10
    keys = [make_key("emulated-font-v1", str(seed), int(i)) for i in range(n)]
    return _emulated_digits("emulated-font", f"{n}-{seed}", keys, [(int(labels[i]), seed, i) for i in range(n)],
                            _emulate_font, labels, cache_dir, workers, progress)
