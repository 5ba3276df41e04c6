"""Synthetic datasets in the real layouts and file formats, at a chosen fraction of the real size.

    evstream synth cifar10dvs /tmp/c10 --fraction 0.2 --events 300000   # 2,000 AEDAT 2.0 files
    write_dataset(SynthConfig("ncars", fraction=0.01), "/tmp/ncars")

For tests and benchmarks of the I/O and memory path (not for accuracy). Layouts, as ``evstream.datasets``
reads them, with the real datasets' file counts per split and class (``fraction`` of each, at least one):

- ``nmnist``: ``Train|Test/<digit>/<id>.bin`` (N-MNIST 40-bit events, 34x34; 60,000 + 10,000);
- ``ncars``: ``n-cars_train|n-cars_test/cars|background/obj_<id>_td.dat`` (Prophesee DAT v2, 120x100;
  15,422 + 8,607);
- ``cifar10dvs``: ``<class>/cifar10_<class>_<i>.aedat`` (AEDAT 2.0 as jAER writes DVS128 recordings,
  128x128; 10 x 1,000);
- ``asl``: ``<letter>/<letter>_<i>.mat`` (MATLAB v5 with ``ts``, ``x``, ``y``, ``pol`` column vectors,
  240x180; 24 x 4,200).

Events: an edge at a class-dependent angle sweeping across the sensor (ON events ahead of it, OFF behind,
so a model can tell classes apart), plus 10% uniformly scattered noise, time-ordered, over the layout's
usual duration; each file has ``events`` x U(0.8, 1.2) events (default: :data:`LAYOUTS`' typical count).
A file depends only on (seed, dataset, its position), and is written under a temporary name and renamed,
so an interrupted run resumes where it stopped; ``.synth.json`` records the settings.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from evstream.cache import atomic_output
from evstream.errors import EvstreamError
from evstream.events import EVENT_DTYPE

MNIST_TRAIN = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
MNIST_TEST = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
ASL = tuple("abcdefghiklmnopqrstuvwxy")  # 24 letters, no j (motion) and no z


@dataclass(frozen=True)
class Layout:
    sensor_size: tuple[int, int]
    duration_us: int
    events: int  # typical events per recording (assumed where no real file was at hand: see docs)
    splits: dict  # split folder ("" for none) -> {class folder: real file count}


LAYOUTS = {
    "nmnist": Layout((34, 34), 300_000, 4_100, {"Train": dict(zip(map(str, range(10)), MNIST_TRAIN)),
                                                 "Test": dict(zip(map(str, range(10)), MNIST_TEST))}),
    "ncars": Layout((120, 100), 100_000, 4_000, {"n-cars_train": {"background": 7482, "cars": 7940},
                                                  "n-cars_test": {"background": 4211, "cars": 4396}}),
    "cifar10dvs": Layout((128, 128), 1_300_000, 300_000, {"": {c: 1000 for c in CIFAR10}}),
    "asl": Layout((240, 180), 100_000, 20_000, {"": {c: 4200 for c in ASL}}),
}


@dataclass(frozen=True)
class SynthConfig:
    dataset: str
    fraction: float = 0.01
    events: int | None = None  # mean events per file (default: the layout's)
    seed: int = 0

    def __post_init__(self):
        if self.dataset not in LAYOUTS:
            raise EvstreamError(f"unknown dataset {self.dataset!r} (known: {', '.join(LAYOUTS)})")
        if not 0 < self.fraction <= 1:
            raise EvstreamError(f"--fraction must be in (0, 1], got {self.fraction}")
        if self.events is not None and self.events < 1:
            raise EvstreamError(f"--events must be positive, got {self.events}")


def plan(cfg: SynthConfig) -> list[tuple[str, int, int]]:
    """``(relative path, class index, file number)`` of every file of the synthetic dataset."""
    out = []
    k = 0
    for split, classes in LAYOUTS[cfg.dataset].splits.items():
        for c, (name, real) in enumerate(classes.items()):
            for i in range(max(1, round(cfg.fraction * real))):
                out.append((_file_name(cfg.dataset, split, name, i, k), c, k))
                k += 1
    return out


def _file_name(dataset: str, split: str, cls: str, i: int, k: int) -> str:
    if dataset == "nmnist":
        return f"{split}/{cls}/{k + 1:05d}.bin"
    if dataset == "ncars":
        return f"{split}/{cls}/obj_{k:06d}_td.dat"
    if dataset == "cifar10dvs":
        return f"{cls}/cifar10_{cls}_{i}.aedat"
    return f"{cls}/{cls}_{i + 1:04d}.mat"


def sweep_events(sensor_size, n: int, duration_us: int, cls: int, n_classes: int,
                 rng: np.random.Generator) -> np.ndarray:
    """``n`` time-ordered events of an edge at angle ``pi * cls / n_classes`` sweeping across the sensor
    (ON ahead of the edge, OFF behind), 10% of them uniform noise."""
    w, h = sensor_size
    ev = np.empty(n, EVENT_DTYPE)
    t = np.sort(rng.integers(0, duration_us, n))
    theta = np.pi * cls / n_classes
    along, across = np.array([np.cos(theta), np.sin(theta)]), np.array([-np.sin(theta), np.cos(theta)])
    half = 0.5 * np.hypot(w, h)
    s = rng.uniform(-half, half, n)  # position along the edge
    jitter = rng.normal(0.0, 1.5, n)
    d = -half + 2 * half * t / max(duration_us, 1) + jitter  # the edge moves across the sensor
    x = w / 2 + s * along[0] + d * across[0]
    y = h / 2 + s * along[1] + d * across[1]
    noise = rng.random(n) < 0.1
    outside = (x < 0) | (x >= w) | (y < 0) | (y >= h)
    noise |= outside  # events the edge would put off the sensor become noise (the count stays n)
    x[noise] = rng.uniform(0, w, int(noise.sum()))
    y[noise] = rng.uniform(0, h, int(noise.sum()))
    ev["t"], ev["x"], ev["y"] = t, x.astype(np.uint16), y.astype(np.uint16)
    ev["p"] = np.where(noise, rng.random(n) < 0.5, jitter > 0)
    return ev


# -- encoders of the real formats (what each dataset ships; evstream.readers decode them) -------------

def encode_aedat2_dvs128(ev: np.ndarray, t0: int = 0) -> bytes:
    """AEDAT 2.0 as jAER writes DVS128 recordings: '#' header, big-endian int32 address and timestamp;
    address = y << 8 | x << 1 | p."""
    head = (b"#!AER-DAT2.0\r\n# This is a raw AE data file created by evstream synth\r\n"
            b"# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event\r\n"
            b"# Timestamps tick is 1 us\r\n# AEChip: ch.unizh.ini.jaer.chip.retina.DVS128\r\n")
    body = np.empty((len(ev), 2), ">i4")
    body[:, 0] = (ev["y"].astype(np.int32) << 8) | (ev["x"].astype(np.int32) << 1) | ev["p"].astype(np.int32)
    body[:, 1] = ev["t"] + t0
    return head + body.tobytes()


def encode_dat(ev: np.ndarray) -> bytes:
    """Prophesee DAT v2 as N-Cars ships it: '% ' header, type and size bytes, then per event uint32 t and
    uint32 x | y << 14 | p << 28 (little-endian)."""
    words = ev["x"].astype(np.uint32) | (ev["y"].astype(np.uint32) << 14) | (ev["p"].astype(np.uint32) << 28)
    body = np.stack([ev["t"].astype(np.uint32), words], 1).astype("<u4").tobytes()
    return b"% Data file containing CD events.\n% Version 2\n" + bytes([0, 8]) + body


def encode_nmnist(ev: np.ndarray) -> bytes:
    """N-MNIST ``.bin``: 5 bytes per event, x, y, then polarity (bit 7) and 23 bits of time, big-endian."""
    if len(ev) and int(ev["t"][-1]) >= 1 << 23:
        raise ValueError("N-MNIST .bin times must stay below 2**23 µs (no overflow events written)")
    t = ev["t"].astype(np.uint32)
    out = np.empty((len(ev), 5), np.uint8)
    out[:, 0], out[:, 1] = ev["x"], ev["y"]
    out[:, 2] = (ev["p"].astype(np.uint32) << 7) | ((t >> 16) & 0x7F)
    out[:, 3], out[:, 4] = (t >> 8) & 0xFF, t & 0xFF
    return out.tobytes()


def _write_mat(path: Path, ev: np.ndarray, t0: int) -> None:
    from scipy.io import savemat

    col = lambda a: np.asarray(a).reshape(-1, 1)  # noqa: E731 - MATLAB column vectors
    with open(path, "wb") as f:
        savemat(f, {"ts": col(ev["t"] + t0), "x": col(ev["x"].astype(np.int32)), "y": col(ev["y"].astype(np.int32)),
                    "pol": col(ev["p"].astype(np.int32))})


def _write_one(job) -> int:
    """Write one synthetic file (a worker's job); returns its size in bytes."""
    root, dataset, rel, cls, k, mean, seed = job
    lay = LAYOUTS[dataset]
    rng = np.random.default_rng([seed, list(LAYOUTS).index(dataset), k])
    n = max(1, int(mean * rng.uniform(0.8, 1.2)))
    n_classes = len(next(iter(lay.splits.values())))
    ev = sweep_events(lay.sensor_size, n, lay.duration_us, cls, n_classes, rng)
    t0 = int(rng.integers(0, 1_000_000))  # recordings do not start at 0
    path = Path(root) / rel
    with atomic_output(path, Path(root) / ".synth-tmp") as tmp:
        if dataset == "asl":
            _write_mat(tmp, ev, t0)
        else:
            data = {"cifar10dvs": lambda: encode_aedat2_dvs128(ev, t0), "ncars": lambda: encode_dat(ev),
                    "nmnist": lambda: encode_nmnist(ev)}[dataset]()
            tmp.write_bytes(data)
    return path.stat().st_size


def write_dataset(cfg: SynthConfig, root, workers: int | None = None, progress: bool = True) -> dict:
    """Write (or complete) the synthetic dataset ``cfg`` under ``root``; returns a summary."""
    from evstream.workers import imap_progress

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    manifest = root / ".synth.json"
    settings = asdict(cfg)
    if manifest.exists():
        old = json.loads(manifest.read_text())
        if old != settings:
            raise EvstreamError(f"holds a synthetic dataset made with other settings {old}; use an empty folder",
                                where=root)
    else:
        with atomic_output(manifest) as tmp:
            tmp.write_text(json.dumps(settings))
    tmp_dir = root / ".synth-tmp"
    shutil.rmtree(tmp_dir, ignore_errors=True)  # temporaries of an interrupted run
    tmp_dir.mkdir()
    files = plan(cfg)
    for d in {str(Path(rel).parent) for rel, _, _ in files}:
        (root / d).mkdir(parents=True, exist_ok=True)
    mean = cfg.events or LAYOUTS[cfg.dataset].events
    todo = [(str(root), cfg.dataset, rel, c, k, mean, cfg.seed) for rel, c, k in files if not (root / rel).exists()]
    t0 = time.monotonic()
    for _ in imap_progress(_write_one, todo, workers, desc=f"writing {cfg.dataset}", unit="file", progress=progress,
                           initial=len(files) - len(todo), total=len(files)):
        pass
    tmp_dir.rmdir()
    size = sum((root / rel).stat().st_size for rel, _, _ in files)
    return {"dataset": cfg.dataset, "root": str(root), "files": len(files), "written": len(todo),
            "bytes": size, "seconds": time.monotonic() - t0}
