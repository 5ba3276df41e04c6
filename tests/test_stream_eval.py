"""Streaming accuracy of the shipped default on a short stream of held-out real recordings: fails if it
collapses (the full table: benchmarks/bench_streams.py, models/README.md)."""

import json

import pytest

from evstream.cli import main
from evstream.paths import DEMO_MODEL


def test_default_live_config_is_right_on_a_stream_of_held_out_recordings(data_dir, tmp_path, capsys):
    root = data_dir / "nmnist_small" / "train"
    out = tmp_path / "r.json"
    rc = main(["eval-stream", "--root", str(root), "--limit", "24", "--gaps-ms", "0-200", "--singles", "6",
               "--json", str(out), "--plot", str(tmp_path / "t.png")])
    assert rc == 0 and (tmp_path / "t.png").stat().st_size > 10_000
    res = json.loads(out.read_text())
    r = res["streams"][0]["report"]
    assert r["recordings"] == 24 and r["scored"] >= 40
    assert r["decisions_per_s"] >= 5.0
    # measured on this model: see models/README.md "Streams"; the floors leave a wide margin
    assert r["accuracy"] >= 0.6, r
    assert r["found"] >= 16, r
    assert r["energy_uJ_per_decision"] < r["ann_energy_uJ_per_decision"], r
    assert res["singles"]["recordings"] == 6
    decisions = res["streams"][0]["decisions"]
    assert all(d["window_us"] > 0 for d in decisions)
    assert str(DEMO_MODEL) == res["model"]


def test_set_live_stores_steps_and_burn_in_the_live_path_reads(tmp_path):
    import shutil
    import sys

    from evstream.live import LiveConfig
    from evstream.live.model import load_model
    from evstream.paths import MODELS

    sys.path.insert(0, str(MODELS.parent / "scripts"))
    from set_live import main

    ck = tmp_path / "m.pt"
    shutil.copy(MODELS / "mst-nmnist.pt", ck)
    assert main([str(ck), "--steps", "mst=48,ecmt=5", "--burn-in", "mst=0.25"]) == 0
    for mode, steps, burn in (("mst", 48, 0.25), ("ecmt", 5, 0.0)):
        lm = load_model(ck, mode=mode)
        assert LiveConfig().steps_for(lm) == steps and LiveConfig().burn_in_for(lm) == burn
        assert LiveConfig(max_steps=7, burn_in=0.0).steps_for(lm) == 7  # flags win
    with pytest.raises(SystemExit, match="no mode 'spikformer'"):
        main([str(ck), "--steps", "spikformer=4"])
