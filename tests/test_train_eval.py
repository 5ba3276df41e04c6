"""Datasets, `evstream train` on tiny data (seconds), `evstream eval` JSON and plot, and the shipped model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import data_file
from evstream.datasets import list_samples, open_dataset, stratified_split
from evstream.events import EventChunk, make_events
from evstream.writers import write_events

REPO = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "evstream", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_nmnist_small_layout_and_split():
    root = data_file("nmnist_small/train")
    samples, classes = list_samples("nmnist", root, root / "labels.txt")
    assert len(samples) == 1000 and classes == [str(i) for i in range(10)]
    counts = np.bincount([s.label for s in samples], minlength=10)
    assert counts.tolist() == [97, 116, 99, 93, 105, 92, 94, 117, 87, 100]
    tr, va = stratified_split(np.array([s.label for s in samples]), 0.1, 0)
    assert len(va) == 100 and not set(tr) & set(va)
    tr2, va2 = stratified_split(np.array([s.label for s in samples]), 0.1, 0)
    assert np.array_equal(va, va2)


def write_dat(path, ev):
    """A Prophesee DAT v2 file as N-Cars ships them: '% ' header, type/size bytes, 8 bytes per event."""
    words = ev["x"].astype(np.uint32) | (ev["y"].astype(np.uint32) << 14) | (ev["p"].astype(np.uint32) << 28)
    body = np.stack([ev["t"].astype(np.uint32), words], 1).astype("<u4").tobytes()
    Path(path).write_bytes(b"% Data file containing CD events.\n% Version 2\n" + bytes([0, 8]) + body)


def test_folder_layouts(tmp_path):
    ev = make_events([0, 10, 20], [1, 2, 3], [1, 2, 3], [1, 0, 1])
    for split in ("n-cars_train", "n-cars_test"):
        for cls in ("background", "cars"):
            (tmp_path / "ncars" / split / cls).mkdir(parents=True)
            write_dat(tmp_path / "ncars" / split / cls / "obj_1_td.dat", ev)
    s, c = list_samples("ncars", tmp_path / "ncars", split="test")
    assert c == ["background", "cars"] and len(s) == 2
    ds = open_dataset("ncars", tmp_path / "ncars", split="test", cache_dir=tmp_path / "cache")
    assert ds.labels.tolist() == [0, 1] and ds.events_of(1)["x"].tolist() == [1, 2, 3]
    for cls in ("airplane", "cat"):
        (tmp_path / "c10" / cls).mkdir(parents=True)
        for i in range(10):
            write_events(tmp_path / "c10" / cls / f"{i}.aedat4", EventChunk(ev, (128, 128)))
    tr, _ = list_samples("cifar10dvs", tmp_path / "c10", split="train")
    te, _ = list_samples("cifar10dvs", tmp_path / "c10", split="test")
    assert len(tr) == 18 and len(te) == 2
    from scipy.io import savemat
    (tmp_path / "asl" / "a").mkdir(parents=True)
    savemat(tmp_path / "asl" / "a" / "a_1.mat", {"ts": [[1], [2]], "x": [[3], [4]], "y": [[5], [6]], "pol": [[1], [0]]})
    ds = open_dataset("asl", tmp_path / "asl", cache_dir=tmp_path / "cache")
    assert len(ds) == 1 and len(ds.events_of(0)) == 2


def test_train_tiny_and_eval(tmp_path):
    root = data_file("nmnist_small/train")
    out = tmp_path / "tiny.pt"
    r = cli("train", "--root", root, "--labels", root / "labels.txt", "--limit", 60, "--epochs", 1,
            "--batch", 32, "--out", out, "--cache", tmp_path / "cache", "--threads", 1, "--no-progress",
            "--stream-windows", 64, "--straddle", 0.3, "--workers", 1, "--fonts", 20)
    assert r.returncode == 0, r.stderr[-2000:]
    from evstream.snn import load_checkpoint
    model, meta = load_checkpoint(out)
    # fresh stream windows (a new draw every epoch, 30 % across a change of recording) joined the pool
    assert meta["window_us"] == 150_000 and meta["train_args"]["window_draw"] == "fresh"
    assert meta["train_args"]["straddle"] == 0.3 and "val_window_accuracy" in meta["history"][-1]
    assert meta["dataset"]["emulated_fonts"] == 20 and meta["train_args"]["fonts"] == 20
    assert meta["representation"]["kind"] == "frames" and meta["classes"][0] == "0"
    assert meta["split"]["val"] == 12 and 0 <= meta["metrics"]["val_ann_accuracy"] <= 1
    js, png = tmp_path / "e.json", tmp_path / "e.png"
    r = cli("eval", "--root", root, "--model", out, "--timesteps", "2,4", "--mask", "0,0.5", "--seeds", 2,
            "--limit", 10, "--json", js, "--plot", png, "--cache", tmp_path / "cache", "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(js.read_text())
    assert res["samples"] == 10 and 0 <= res["ann"]["accuracy"] <= 1 and res["ann"]["energy_uJ"] > 0
    assert len(res["snn"]) == 4
    for row in res["snn"]:
        assert set(row) == {"mode", "timesteps", "mask_ratio", "accuracy_mean", "accuracy_std",
                            "spikes_per_sample", "energy_uJ"}
        assert 0 <= row["accuracy_mean"] <= 1 and row["mode"] == "mst"
    assert png.stat().st_size > 5000


def test_eval_missing_checkpoint_one_line(tmp_path):
    r = cli("eval", "--model", tmp_path / "none.pt", "--no-progress")
    assert r.returncode == 2 and "checkpoint not found" in r.stderr and "Traceback" not in r.stderr


SHIPPED = REPO / "models" / "mst-nmnist.pt"


@pytest.mark.skipif(not SHIPPED.exists(), reason="shipped model not built in this checkout")
def test_shipped_model_snn_approaches_ann():
    from evstream.inputs import eval_inputs
    from evstream.snn import load_checkpoint

    model, meta = load_checkpoint(SHIPPED)
    root = data_file("nmnist_small/train")
    x, y, _ = eval_inputs(meta, "nmnist", root, root / "labels.txt", "val", 40)
    with torch.no_grad():
        ann = model(x)
    snn = model.spiking(mode="mst")
    out = snn.run(x, 64)
    err = [float((out[t - 1] - ann).abs().mean()) for t in (8, 64)]
    assert err[1] < err[0]
    agree = float((out[-1].argmax(1) == ann.argmax(1)).float().mean())
    assert agree >= 0.85
