"""The contract every registered architecture x conversion mode keeps (evstream/snn/registry.py): the
streaming runner's step fields, bit-identical reruns after ``reset()`` (masks included), ``reset_mean()``
keeping the membranes, and a checkpoint round trip. A new family or mode is tested by registering it."""

from __future__ import annotations

import pytest
import torch

from evstream.snn import ARCHS, CONVERSIONS, load_checkpoint, save_checkpoint
from evstream.snn.streaming import StepResult

torch.set_num_threads(1)
PAIRS = [(arch, mode) for arch, cls in ARCHS.items() for mode in cls.modes]


def test_every_mode_of_every_arch_is_registered():
    assert {m for _, m in PAIRS} == set(CONVERSIONS) and {a for a, _ in PAIRS} == set(ARCHS)
    assert ("mst", "ecmt") in PAIRS and ("spikformer", "spikformer") in PAIRS


def inputs(model, n=2, seed=1):
    c = model.config
    return torch.rand(n, c.in_channels, c.img_size, c.img_size, generator=torch.Generator().manual_seed(seed)) * 2


@pytest.mark.parametrize("arch,mode", PAIRS)
def test_step_fields(arch, mode, tiny_model):
    model = tiny_model(arch)
    x = inputs(model)
    runner = model.spiking(mode=mode, mask_ratio=0.25, seed=7)
    k = model.config.num_classes
    for t in (1, 2, 3):
        out = runner.step(x)
        assert isinstance(out, StepResult) and out.t == t
        assert out.logits.shape == out.mean.shape == (2, k)
        assert out.confidence.shape == out.margin.shape == (2,)
        assert torch.all((out.confidence > 0) & (out.confidence <= 1)) and torch.all(out.margin >= 0)
        assert list(out.spikes) == [m.name for m in runner.neurons] and len(out.spikes) > 3
        assert out.total_spikes == sum(out.spikes.values()) >= 0
        assert out.sops >= 0 and out.macs > 0 and out.energy_uJ > 0  # the analog first layer is MACs
    assert runner.t == 3 and runner.mask_ratios


@pytest.mark.parametrize("arch,mode", PAIRS)
def test_reset_gives_identical_reruns(arch, mode, tiny_model):
    model = tiny_model(arch)
    x = inputs(model)
    runner = model.spiking(mode=mode, mask_ratio=0.5, seed=3)

    def run():
        outs = [runner.step(x) for _ in range(4)]
        return torch.stack([o.mean for o in outs]), [o.spikes for o in outs], [o.energy_uJ for o in outs]

    first = run()
    runner.reset()
    again = run()
    assert torch.equal(first[0], again[0]) and first[1] == again[1] and first[2] == again[2]
    # run(x, T) is reset + T steps: the same numbers
    assert torch.equal(runner.run(x, 4), first[0])


@pytest.mark.parametrize("arch,mode", PAIRS)
def test_reset_mean_keeps_membranes(arch, mode, tiny_model):
    model = tiny_model(arch)
    x = inputs(model)
    runner = model.spiking(mode=mode, seed=0)
    fresh = runner.step(x).mean
    for _ in range(3):
        runner.step(x)
    runner.reset_mean()
    out = runner.step(x)
    assert out.t == 5 and out.mean.shape == fresh.shape
    runner.reset()
    assert torch.equal(runner.step(x).mean, fresh)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_checkpoint_round_trip(arch, tmp_path, tiny_model):
    model = tiny_model(arch).eval()
    meta = {"representation": {"kind": "frames", "sensor_size": [16, 16], "n_frames": 2, "out_size": [16, 16]},
            "classes": [str(i) for i in range(model.config.num_classes)]}
    save_checkpoint(tmp_path / "m.pt", model, meta)
    back, meta2 = load_checkpoint(tmp_path / "m.pt", need_representation=True)
    assert type(back) is type(model) and back.config == model.config and meta2 == meta
    sd, sd2 = model.state_dict(), back.state_dict()
    assert sd.keys() == sd2.keys() and all(torch.equal(sd[k], sd2[k]) for k in sd)
    x = inputs(model)
    with torch.no_grad():
        assert torch.equal(model(x), back(x))
    assert not list(tmp_path.glob("*.tmp"))  # written atomically
