"""The event cache (atomic, resumable, shared), DataLoader batches, synthetic layouts and eval's default split."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from evstream.augment import augment
from evstream.cache import EventCache
from evstream.datasets import decode_file, list_samples, open_dataset
from evstream.errors import EvstreamError
from evstream.loader import EpochBatches, InOrder, Pass, Plan, SampleSet, make_loader
from evstream.representations import from_config
from evstream.synth import LAYOUTS, SynthConfig, plan, sweep_events, write_dataset

torch.set_num_threads(1)
REP = {"kind": "frames", "sensor_size": [120, 100], "n_frames": 2, "split_by": "time", "mode": "count",
       "normalize": 4.0, "tail": True, "out_size": [16, 16]}


def entries(cache_dir) -> list[Path]:
    return sorted(Path(cache_dir).glob("events-v2/??/*.npy"))


@pytest.fixture(scope="module")
def ncars(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "ncars"
    write_dataset(SynthConfig("ncars", fraction=0.002, events=800), root, workers=2, progress=False)
    return root


def test_synth_layouts_decode_to_the_generated_events(tmp_path):
    for name in LAYOUTS:
        cfg = SynthConfig(name, fraction=0.0005, events=300, seed=3)
        s = write_dataset(cfg, tmp_path / name, workers=0, progress=False)
        files = plan(cfg)
        assert s["files"] == len(files) and s["written"] == len(files)
        classes = {"nmnist": 10, "ncars": 2, "cifar10dvs": 10, "asl": 24}[name]
        every, found = list_samples(name, tmp_path / name, split="all")
        assert len(found) == classes and len(every) == len(files)
        rel, cls, k = files[-1]
        rng = np.random.default_rng([3, list(LAYOUTS).index(name), k])
        n = max(1, int(300 * rng.uniform(0.8, 1.2)))
        lay = LAYOUTS[name]
        want = sweep_events(lay.sensor_size, n, lay.duration_us, cls, classes, rng)
        got = decode_file(tmp_path / name / rel)
        assert np.array_equal(got["x"], want["x"]) and np.array_equal(got["y"], want["y"])
        assert np.array_equal(got["p"], want["p"]) and np.array_equal(got["t"], want["t"] - want["t"][0])
        assert every[[s.path for s in every].index(tmp_path / name / rel)].label == cls
    # a second run writes nothing; other settings in the same folder are refused
    assert write_dataset(SynthConfig("asl", 0.0005, 300, 3), tmp_path / "asl", 0, False)["written"] == 0
    with pytest.raises(EvstreamError, match="other settings"):
        write_dataset(SynthConfig("asl", 0.0005, 301, 3), tmp_path / "asl", 0, False)


def test_synth_real_file_counts():
    assert len(plan(SynthConfig("cifar10dvs", fraction=0.2))) == 2000
    assert len(plan(SynthConfig("ncars", fraction=1.0))) == 24029
    assert len(plan(SynthConfig("asl", fraction=1.0))) == 100800
    assert len(plan(SynthConfig("nmnist", fraction=1.0))) == 70000


def test_cache_entries_equal_the_reader_and_are_shared_by_splits(ncars, tmp_path):
    cache = tmp_path / "cache"
    tr = open_dataset("ncars", ncars, split="train", cache_dir=cache, workers=2, progress=False)
    te = open_dataset("ncars", ncars, split="test", cache_dir=cache, workers=0, progress=False)
    n = len(entries(cache))
    assert n == len(tr) + len(te)
    al = open_dataset("ncars", ncars, split="all", cache_dir=cache, workers=2, progress=False)
    assert len(entries(cache)) == n and len(al) == n  # "all" decoded nothing new
    for ds in (tr, te, al):
        for i in (0, len(ds) - 1):
            ev = decode_file(ds.samples[i].path)
            assert np.array_equal(ds.events_of(i), ev) and ds.counts[i] == len(ev)
            assert ds.spans[i] == ev["t"][-1] - ev["t"][0]
    assert al.events_of(0).flags.writeable


FILL = """
import sys
from evstream.datasets import open_dataset
ds = open_dataset("ncars", sys.argv[1], split="all", cache_dir=sys.argv[2], workers=int(sys.argv[3]), progress=False)
print("done", len(ds))
"""


def fill(root, cache, workers=1, **kw):
    return subprocess.Popen([sys.executable, "-c", FILL, str(root), str(cache), str(workers)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_killed_fill_resumes_without_cleanup(ncars, tmp_path):
    cache = tmp_path / "cache"
    total = len(list_samples("ncars", ncars, split="all")[0])
    for wait_for in (1, total // 2):  # kill early, then half-way (SIGKILL: no cleanup handler runs)
        p = fill(ncars, cache, workers=1)
        deadline = time.monotonic() + 60
        while len(entries(cache)) < wait_for and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        p.send_signal(signal.SIGKILL)
        p.wait()
    done = entries(cache)
    if len(done) == total:  # a quiet machine can finish the 48 small files before the kill lands: a fill
        for f in done[total // 2:]:  # killed half-way leaves this (entries are whole files, renamed in)
            f.unlink()
    assert 0 < len(entries(cache)) < total
    (cache / "events-v2" / "tmp" / ".stale.npy.123.tmp").write_bytes(b"half")  # a temporary of a killed fill
    victim = entries(cache)[0]
    victim.write_bytes(victim.read_bytes()[:-5])  # a damaged entry (disk trouble) is decoded again
    ds = open_dataset("ncars", ncars, split="all", cache_dir=cache, workers=2, progress=False)
    ref = open_dataset("ncars", ncars, split="all", cache_dir=tmp_path / "ref", workers=0, progress=False)
    assert len(ds) == total and list(EventCache(cache).tmp.iterdir()) == []
    for i in range(total):
        assert np.array_equal(ds.events_of(i), ref.events_of(i))
    assert np.array_equal(ds.spans, ref.spans) and np.array_equal(ds.counts, ref.counts)


def test_processes_fill_one_cache_together(ncars, tmp_path):
    cache = tmp_path / "cache"
    procs = [fill(ncars, cache, workers=1) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    total = len(list_samples("ncars", ncars, split="all")[0])
    assert all(o[0].strip() == f"done {total}" for o in outs) and len(entries(cache)) == total


def test_bad_recording_one_line_error_keeps_what_was_decoded(tmp_path):
    root = tmp_path / "ncars"
    write_dataset(SynthConfig("ncars", fraction=0.0003, events=100), root, workers=0, progress=False)
    samples, _ = list_samples("ncars", root, split="train")
    bad = samples[-1].path
    bad.write_bytes(b"% Data file containing CD events.\n% Version 2\n" + bytes([0, 8]) + b"\x01\x02\x03")
    with pytest.raises(EvstreamError, match="obj_.*_td.dat.*truncated"):
        open_dataset("ncars", root, split="train", cache_dir=tmp_path / "cache", workers=0, progress=False)
    assert len(entries(tmp_path / "cache")) == len(samples) - 1
    r = subprocess.run([sys.executable, "-m", "evstream", "train", "--dataset", "ncars", "--root", root, "--cache",
                        tmp_path / "cache", "--no-progress", "--workers", "2"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and bad.name in r.stderr and len(r.stderr.splitlines()) == 1


def test_loader_batches_equal_the_inline_ones(ncars, tmp_path):
    """Workers build the very inputs the main process built before (same samples and augmentations)."""
    ds = open_dataset("ncars", ncars, split="train", cache_dir=tmp_path / "cache", workers=0, progress=False)
    rep = from_config(REP)
    pool = np.array([(0, i) for i in range(len(ds))])
    batches = EpochBatches(pool, 8, seed=5)
    batches.set_epoch(1, 2)
    loader = make_loader(SampleSet([ds], rep), Plan(batches), workers=2)
    got = list(loader)
    # a validation pass by the same workers (training's use), then the training plan again
    val = [x for x, _ in Pass(loader, InOrder(np.arange(len(ds)), 7))]
    assert torch.equal(torch.cat(val)[3], torch.from_numpy(rep(ds.events_of(3))))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(got, loader))
    order = np.random.default_rng(5 * 1000 + 1 * 100 + 2).permutation(len(pool))
    assert len(got) == len(batches) == -(-len(ds) // 8)
    for b, (x, y) in enumerate(got):
        ks = order[b * 8:(b + 1) * 8]
        want = np.stack([rep(augment(ds.events_of(k), ds.sensor_size, np.random.default_rng([5, 1, 2, int(k)])))
                         for k in ks])
        assert torch.equal(x, torch.from_numpy(want)) and y.tolist() == ds.labels[ks].tolist()
    plain = list(make_loader(SampleSet([ds], rep), InOrder(np.arange(len(ds)), 7), workers=0))
    assert torch.equal(torch.cat([x for x, _ in plain])[3], torch.from_numpy(rep(ds.events_of(3))))


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "evstream", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_train_amp_and_eval_default_split_on_a_synthetic_layout(ncars, tmp_path):
    out = tmp_path / "ncars.pt"
    r = cli("train", "--dataset", "ncars", "--root", ncars, "--epochs", 1, "--batch", 8, "--img-size", 16,
            "--frames", 2, "--out", out, "--cache", tmp_path / "cache", "--threads", 1, "--workers", 2, "--amp",
            "--ecmt-calibrate", 0, "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]
    js = tmp_path / "e.json"
    r = cli("eval", "--dataset", "ncars", "--root", ncars, "--model", out, "--timesteps", "2", "--mask", "0",
            "--seeds", 1, "--json", js, "--cache", tmp_path / "cache", "--workers", 2, "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(js.read_text())
    n_test = len(list_samples("ncars", ncars, split="test")[0])
    assert "split 'test'" in r.stdout and res["split"] == "test" and res["samples"] == n_test
    r = cli("eval", "--dataset", "ncars", "--root", ncars, "--model", out, "--split", "all", "--timesteps", "2",
            "--mask", "0", "--seeds", 1, "--cache", tmp_path / "cache", "--workers", 0, "--no-progress")
    assert r.returncode == 0 and f"({len(list_samples('ncars', ncars, split='all')[0])} samples)" in r.stdout
    assert "trained on files of" in r.stdout  # 'all' includes the checkpoint's training files: said so


def test_label_folder_defaults_to_all_and_has_no_test_split(tmp_path):
    from conftest import data_file

    root = data_file("nmnist_small/train")
    with pytest.raises(EvstreamError, match="no test split"):
        list_samples("nmnist", root, root / "labels.txt", split="test")
    r = cli("eval", "--root", root, "--timesteps", "2", "--mask", "0", "--seeds", 1, "--limit", 4, "--workers", 0,
            "--cache", tmp_path / "cache", "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "split 'all' (every labelled file" in r.stdout and "(4 samples)" in r.stdout


def test_emulated_mnist_cached_equals_the_emulator(tmp_path):
    from conftest import data_file

    from evstream.datasets import emulated_mnist
    from evstream.emulator import emulate_saccades, read_mnist_idx

    folder = data_file("mnist_images")
    em = emulated_mnist(folder, 3, seed=0, cache_dir=tmp_path, progress=False, workers=2)
    images, labels = read_mnist_idx(folder)
    idx = np.random.default_rng(0).permutation(len(images))[:3]
    for j, i in enumerate(idx):
        assert np.array_equal(em.events_of(j), emulate_saccades(images[i], seed=int(i)))
        assert em.labels[j] == labels[i]


def test_emulated_fonts_balanced_deterministic_and_not_the_demo(tmp_path):
    from evstream.datasets import FONT_SEED, emulated_fonts
    from evstream.emulator import emulate_saccades, font_digit

    fo = emulated_fonts(12, seed=0, cache_dir=tmp_path / "a", progress=False, workers=2)
    again = emulated_fonts(12, seed=0, cache_dir=tmp_path / "b", progress=False, workers=0)
    assert list(fo.labels) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1] and fo.sensor_size == (34, 34)
    for j in (0, 7, 11):  # the same sample whichever process made it, and the emulator's own events
        ev = fo.events_of(j)
        assert len(ev) > 500 and np.all(np.diff(ev["t"].astype(np.int64)) >= 0)
        assert np.array_equal(ev, again.events_of(j))
        image = font_digit(j % 10, np.random.default_rng([FONT_SEED, j]))
        assert np.array_equal(ev, emulate_saccades(image, seed=FONT_SEED + j))
    other = emulated_fonts(2, seed=1, cache_dir=tmp_path / "a", progress=False, workers=0)
    assert not np.array_equal(other.events_of(0), fo.events_of(0))  # another seed: other glyphs
    # the demo recording's first digit (scripts/make_demo_recording.py: one default_rng(7)) is not a training draw
    rng = np.random.default_rng(7)
    digits = rng.permutation(np.tile(np.arange(10), 3))[:24]
    demo0 = font_digit(int(digits[0]), rng)
    assert not any(np.array_equal(demo0, font_digit(int(digits[0]), np.random.default_rng([FONT_SEED, i])))
                   for i in range(int(digits[0]), 200, 10))
