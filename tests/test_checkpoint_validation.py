"""Crafted checkpoints and resume files: every malformed structure or size is one CheckpointError line
naming the file, found before the model is built (nothing huge is allocated), for the library, the live
path and the CLI."""

from __future__ import annotations

import copy

import pytest
import torch

from evstream.errors import CheckpointError
from evstream.live import load_model
from evstream.snn import build_model, load_checkpoint, make_config, save_checkpoint
from evstream.snn.config import MAX_ELEMENTS, model_size
from tiny import tiny_config

TINY = tiny_config("mst", num_classes=3, depths=[2], heads=[2])
REP = {"kind": "frames", "sensor_size": [34, 34], "n_frames": 2, "out_size": [16, 16]}


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """The dict a tiny MST checkpoint holds."""
    path = tmp_path_factory.mktemp("ck") / "good.pt"
    torch.manual_seed(0)
    save_checkpoint(path, build_model("mst", TINY), {"representation": REP, "classes": ["a", "b", "c"]})
    return torch.load(path, weights_only=True)


def _set(obj, key, value):
    obj = copy.deepcopy(obj)
    target = obj
    *parents, last = key.split("/")
    for k in parents:
        target = target[k]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return obj


_DELETE = object()
CASES = {
    "no model_config": ("model_config", _DELETE),
    "no arch": ("arch", _DELETE),
    "no state_dict": ("state_dict", _DELETE),
    "config a list": ("model_config", [1, 2]),
    "config a string": ("model_config", "tiny"),
    "config None": ("model_config", None),
    "arch a list": ("arch", ["mst"]),
    "arch unknown": ("arch", "resnet"),
    "arch of another family": ("arch", "spikformer"),
    "unknown preset": ("model_config/preset", "huge"),
    "preset a dict": ("model_config/preset", {"a": 1}),
    "unknown field": ("model_config/colour", 3),
    "dim a string": ("model_config/dim", "16"),
    "dim negative": ("model_config/dim", -4),
    "dim a bool": ("model_config/dim", True),
    "depths a string": ("model_config/depths", "22"),
    "depths of strings": ("model_config/depths", ["2"]),
    "threshold NaN": ("model_config/threshold", float("nan")),
    "dim terabytes": ("model_config/dim", 60_000),
    "img_size terabytes": ("model_config/img_size", 65_536),
    "depths too many": ("model_config/depths", [1] * 65),
    "heads do not divide": ("model_config/heads", [3]),
    "state_dict a list": ("state_dict", [1]),
    "state_dict of numbers": ("state_dict/head.bias", 1.0),
    "weights do not fit": ("state_dict/head.bias", torch.zeros(7)),
    "meta a list": ("meta", ["representation"]),
    "representation a list": ("meta/representation", [1]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_crafted_checkpoint_is_one_line(good, tmp_path, case):
    key, value = CASES[case]
    path = tmp_path / "crafted.pt"
    torch.save(_set(good, key, value), path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg, msg
    with pytest.raises(CheckpointError):  # the live path too
        load_model(path)


@pytest.mark.parametrize("meta", [{}, {"representation": {}}, {"representation": {"kind": "nope"}},
                                  {"representation": {**REP, "n_frames": 3}},  # 6 channels, the model takes 4
                                  {"representation": REP, "classes": 5},
                                  {"representation": REP, "window_us": "long"},
                                  {"representation": REP, "ecmt": {"levels": 8, "theta": {"x": 1.0}}}])
def test_meta_the_live_path_needs(good, tmp_path, meta):
    path = tmp_path / "meta.pt"
    torch.save({**good, "meta": meta}, path)
    load_checkpoint(path)  # the model itself is fine
    with pytest.raises(CheckpointError) as info:
        load_model(path, mode="ecmt" if "ecmt" in meta else None)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_sizes_are_counted_without_allocating():
    from evstream.snn import MST

    huge = make_config("mst", {**TINY, "dim": 60_000})
    assert model_size(MST, huge) > MAX_ELEMENTS  # counted on the meta device: no memory taken
    assert model_size(MST, make_config("mst", TINY)) == sum(
        t.numel() for m in [build_model("mst", TINY)] for t in (*m.parameters(), *m.buffers()))


def test_the_shipped_checkpoints_still_load():
    from evstream.paths import MODELS

    for path in sorted(MODELS.glob("*.pt")):
        model, meta = load_checkpoint(path, need_representation=True)
        assert meta["representation"] and model.arch in ("mst", "spikformer")


def test_cli_eval_and_run_say_one_line(good, tmp_path, capsys):
    from evstream.cli import main
    from evstream.paths import DEMO_RECORDING

    path = tmp_path / "bad.pt"
    torch.save(_set(good, "meta", ["x"]), path)
    for argv in (["run", str(DEMO_RECORDING), "--model", str(path)],
                 ["eval", "--model", str(path), "--root", str(tmp_path), "--limit", "1"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "meta" in err and str(path) in err, err


@pytest.mark.parametrize("partial", [["a list"], {"model": {}}, {"model": {}, "opt": {}, "phase": 0, "epoch": 0},
                                     {"model": "w", "opt": {}, "phase": 0, "epoch": 0},
                                     {"model": {}, "opt": {}, "phase": 7, "epoch": 0}, b"garbage"])
def test_crafted_resume_file_is_one_line(tmp_path, partial, shared_file):
    from evstream.train import TrainConfig, train

    root = shared_file("nmnist_small/train")
    out = tmp_path / "m.pt"
    p = tmp_path / "m.pt.partial"
    if isinstance(partial, bytes):
        p.write_bytes(partial)
    else:
        torch.save(partial, p)
    cfg = TrainConfig(root=str(root), labels=str(root / "labels.txt"), out=str(out), epochs=1, limit=20,
                      ecmt_calibrate=0, threads=1, progress=False, mask_finetune="0")
    with pytest.raises(CheckpointError) as info:
        train(cfg, log=lambda *a: None)
    assert "\n" not in str(info.value) and "m.pt.partial" in str(info.value)
