"""`evstream eval` / `train` on a synthetic CIFAR10-DVS layout at scale: memory, time, kills, data-path speed.

    nice python benchmarks/bench_dataset_scale.py --root /tmp/evs-bench --files 2000 --events 300000 \
        --workers 2 --json benchmarks/bench_dataset_scale.json

Steps (each command a subprocess whose whole process tree is watched: DataLoader and cache workers too):
1. ``evstream synth cifar10dvs`` (AEDAT 2.0 DVS128 files; ``--files`` x ~``--events``);
2. ``evstream eval --split all`` on a cold cache (decode + cache + ANN + SNN at T=4), then again (warm);
3. ``evstream train`` for one epoch on the training split (warm cache);
4. data-path samples/s, side by side: ours (events from the cache + the default frames, DataLoader with
   ``--workers``) vs tonic's CIFAR10DVS-style item (per-sample read of the file with tonic's AEDAT 2.0
   reader + ``tonic.transforms.ToFrame(n_time_bins=4)``, a DataLoader with the same workers);
5. a second cache filled by a process killed (SIGKILL) at 3 points, then ``evstream eval --split all``
   resumes it; every entry's length is checked against its file, 50 entries event by event.
Peak memory per command: the largest VmHWM of any process of its tree, and the peak over time of the
tree's summed RSS and PSS (/proc, every 0.1 s). The synthetic data and caches are deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d))
    return kids


def _tree(pid: int) -> list[int]:
    kids, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def _kib(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class TreeMemory(threading.Thread):
    """Polls a process tree: peak VmHWM of any process, peak summed RSS and PSS (MB)."""

    def __init__(self, pid: int, every: float = 0.1):
        super().__init__(daemon=True)
        self.pid, self.every, self.stop = pid, every, threading.Event()
        self.hwm = self.rss = self.pss = 0.0
        self.procs = 0

    def run(self):
        while not self.stop.is_set():
            pids = _tree(self.pid)
            self.procs = max(self.procs, len(pids))
            rss = pss = 0
            for p in pids:
                self.hwm = max(self.hwm, _kib(f"/proc/{p}/status", "VmHWM") / 1024)
                rss += _kib(f"/proc/{p}/status", "VmRSS")
                pss += _kib(f"/proc/{p}/smaps_rollup", "Pss:")
            self.rss, self.pss = max(self.rss, rss / 1024), max(self.pss, pss / 1024)
            time.sleep(self.every)


def watched(cmd: list, log) -> dict:
    """Run ``cmd``; wall time and peak memory of its tree."""
    t0 = time.monotonic()
    p = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    mon = TreeMemory(p.pid)
    mon.start()
    out, err = p.communicate()
    mon.stop.set()
    mon.join()
    wall = time.monotonic() - t0
    if p.returncode:
        raise SystemExit(f"{' '.join(map(str, cmd[:4]))} failed ({p.returncode}):\n{err[-3000:]}")
    r = {"seconds": round(wall, 1), "peak_process_hwm_MB": round(mon.hwm), "peak_tree_rss_MB": round(mon.rss),
         "peak_tree_pss_MB": round(mon.pss), "processes": mon.procs}
    log(f"  {' '.join(map(str, cmd[2:4]))}: {r}")
    return r | {"stdout_tail": out.strip().splitlines()[-3:]}


def make_checkpoint(path: Path, root: Path) -> None:
    """An untrained MST for the CIFAR10-DVS layout (the default representation: 4 x 2 frames, 32x32)."""
    import torch

    from evstream.snn import build_model, save_checkpoint
    from evstream.inputs import default_representation

    torch.manual_seed(0)
    rep = default_representation((128, 128))
    model = build_model("mst", {"preset": "tiny", "in_channels": 8, "num_classes": 10, "img_size": 32})
    save_checkpoint(path, model, {"arch": "mst", "representation": rep, "classes": [str(i) for i in range(10)],
                                  "dataset": {"name": "cifar10dvs", "root": str(root)},
                                  "split": {"kind": "stratified", "val_fraction": 0.1, "seed": 0}})


class TonicStyle:
    """tonic's CIFAR10DVS ``__getitem__`` on the AEDAT 2.0 files: read the file (tonic's DVS128 reader body,
    as benchmarks/bench_readers.py) and apply ``transform`` (``ToFrame``); returns (frames, label)."""

    def __init__(self, samples, transform):
        self.samples, self.transform = samples, transform

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        from tonic.io import get_aer_events_from_file, make_structured_array, read_aedat_header_from_file

        path, label = str(self.samples[i].path), self.samples[i].label
        version, start, *_ = read_aedat_header_from_file(path)
        ev = get_aer_events_from_file(path, version, start)
        a = ev["address"]
        events = make_structured_array((a >> 1) & 0x7F, (a >> 8) & 0x7F, ev["timeStamp"], a & 1)
        return self.transform(events), label


def data_path_speed(root: Path, cache: Path, workers: int, n: int, rounds: int, log) -> dict:
    """Samples/s of ours and of the tonic-style item through DataLoaders with ``workers``, alternately."""
    import torch
    import tonic

    from evstream.datasets import open_dataset
    from evstream.loader import InOrder, SampleSet, make_loader
    from evstream.representations import from_config
    from evstream.inputs import default_representation

    torch.set_num_threads(1)
    ds = open_dataset("cifar10dvs", root, split="all", cache_dir=cache, workers=workers, progress=False)
    idx = np.sort(np.random.default_rng(0).permutation(len(ds))[:n])
    frames_only = {**default_representation((128, 128)), "out_size": None, "normalize": None}
    loaders = {  # workers kept across passes on both sides: pass 0 starts them and warms caches and compilers
        "ours (cache + default frames, 32x32)": make_loader(SampleSet([ds], from_config(default_representation((128, 128)))),
                                                            InOrder(idx, 16), workers),
        "ours (cache + frames only, 128x128)": make_loader(SampleSet([ds], from_config(frames_only)),
                                                           InOrder(idx, 16), workers),
        "tonic (read + ToFrame)": torch.utils.data.DataLoader(
            TonicStyle([ds.samples[i] for i in idx], tonic.transforms.ToFrame(sensor_size=(128, 128, 2), n_time_bins=4)),
            batch_size=16, num_workers=workers, persistent_workers=workers > 0),
    }
    best = {k: float("inf") for k in loaders}
    for r in range(rounds + 1):
        for k, loader in loaders.items():
            t0 = time.perf_counter()
            got = sum(len(y) for _, y in loader)
            dt = time.perf_counter() - t0
            assert got == len(idx)
            if r:
                best[k] = min(best[k], dt)
    out = {k: round(len(idx) / t, 1) for k, t in best.items()}
    log(f"  samples/s: {out}")
    return out


def kill_and_resume(root: Path, cache: Path, model: Path, workers: int, total: int, log) -> dict:
    from evstream.datasets import decode_file, list_samples, open_dataset

    script = ("import sys; from evstream.datasets import open_dataset; "
              "open_dataset('cifar10dvs', sys.argv[1], split='all', cache_dir=sys.argv[2], workers=int(sys.argv[3]))")
    kills = []
    for frac in (0.1, 0.5, 0.9):
        p = subprocess.Popen([sys.executable, "-c", script, str(root), str(cache), str(workers)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        while p.poll() is None and len(list(cache.glob("events-v2/??/*.npy"))) < frac * total:
            time.sleep(0.2)
        n_before = len(list(cache.glob("events-v2/??/*.npy")))
        os.killpg(p.pid, signal.SIGKILL)  # the filler and its workers, mid-write
        p.wait()
        tmp = len(list((cache / "events-v2" / "tmp").glob("*")))
        kills.append({"entries_at_kill": n_before, "temporaries_left": tmp})
        log(f"  killed at {n_before}/{total} entries ({tmp} temporaries left)")
    resumed = watched([sys.executable, "-m", "evstream", "eval", "--dataset", "cifar10dvs", "--root", root, "--model", model,
                       "--split", "all", "--timesteps", 4, "--mask", 0, "--seeds", 1, "--cache", cache, "--workers",
                       workers, "--no-progress"], log)
    ds = open_dataset("cifar10dvs", root, split="all", cache_dir=cache, workers=0, progress=False)
    samples, _ = list_samples("cifar10dvs", root, split="all")
    header = {}
    for s in samples:  # events per file from its size: (size - header) / 8
        head = s.path.read_bytes()[:4096]
        pos = 0
        while head.startswith(b"#", pos):
            pos = head.index(b"\n", pos) + 1
        header[s.path] = (s.path.stat().st_size - pos) // 8
    lengths_ok = all(int(ds.counts[i]) == header[s.path] for i, s in enumerate(samples))
    check = np.random.default_rng(1).permutation(len(ds))[:50]
    content_ok = all(np.array_equal(ds.events_of(int(i)), decode_file(ds.samples[int(i)].path)) for i in check)
    left = len(list((cache / "events-v2" / "tmp").glob("*")))
    log(f"  resumed: lengths of all {len(ds)} entries match their files: {lengths_ok}; 50 entries equal a fresh "
        f"decode: {content_ok}; temporaries left: {left}")
    return {"kills": kills, "resume": resumed, "all_lengths_match": lengths_ok, "50_entries_equal": content_ok,
            "temporaries_after": left}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="/tmp/evs-bench")
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--speed-samples", type=int, default=240)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", default=None)
    ap.add_argument("--keep", action="store_true", help="keep the synthetic data and caches")
    args = ap.parse_args()
    base = Path(args.root)
    data, cache_a, cache_b, model = base / "cifar10dvs", base / "cache-a", base / "cache-b", base / "untrained.pt"
    need = args.files * args.events * (8 + 13) * 1.25
    free = shutil.disk_usage(base.parent if not base.exists() else base).free
    if free < need:
        raise SystemExit(f"{base}: {free / 1e9:.1f} GB free, this run needs about {need / 1e9:.1f} GB")
    log = lambda m: print(m, flush=True)  # noqa: E731
    with open("/proc/cpuinfo") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    res = {"cpu": cpu, "cores": os.cpu_count(), "load_before": os.getloadavg(), "files": args.files,
           "events_per_file": args.events, "workers": args.workers, "date": time.strftime("%Y-%m-%d %H:%M")}
    ev = [sys.executable, "-m", "evstream"]
    try:
        log("synthetic CIFAR10-DVS layout")
        res["synth"] = watched(ev + ["synth", "cifar10dvs", data, "--fraction", args.files / 10000, "--events",
                                     args.events, "--workers", args.workers, "--no-progress"], log)
        res["data_bytes"] = sum(p.stat().st_size for p in data.glob("*/*.aedat"))
        make_checkpoint(model, data)
        common = ["--dataset", "cifar10dvs", "--root", data, "--workers", args.workers, "--no-progress"]
        evalc = ev + ["eval", *common, "--model", model, "--split", "all", "--timesteps", 4, "--mask", 0, "--seeds", 1]
        log("eval, cold cache (decode + cache + ANN + SNN T=4)")
        res["eval_first"] = watched(evalc + ["--cache", cache_a], log)
        res["cache_bytes"] = sum(p.stat().st_size for p in cache_a.glob("events-v2/??/*.npy"))
        from evstream.datasets import open_dataset

        res["events_total"] = int(open_dataset("cifar10dvs", data, split="all", cache_dir=cache_a, workers=0,
                                               progress=False).counts.sum())
        log("eval, warm cache")
        res["eval_second"] = watched(evalc + ["--cache", cache_a], log)
        log("train, one epoch")
        res["train_epoch"] = watched(ev + ["train", *common, "--cache", cache_a, "--epochs", 1, "--batch", 16,
                                           "--ecmt-calibrate", 0, "--threads", 1,
                                           "--out", base / "trained.pt"], log)
        log("data path, side by side")
        res["samples_per_s"] = data_path_speed(data, cache_a, args.workers, args.speed_samples, args.rounds, log)
        shutil.rmtree(cache_a, ignore_errors=True)
        log("kill the cache fill 3 times, resume with eval")
        res["kill_resume"] = kill_and_resume(data, cache_b, model, args.workers, args.files, log)
        res["load_after"] = os.getloadavg()
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    print(json.dumps({k: v for k, v in res.items() if k != "kill_resume"}, indent=1))


if __name__ == "__main__":
    main()
