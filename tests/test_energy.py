"""The counting rules of docs/energy.md on a hand-computed two-layer example."""

from __future__ import annotations

import torch
from torch import nn

from evstream.energy import E_AC_PJ, E_MAC_PJ, OpCounter, energy_uJ, mst_power_alpha
from evstream.snn.neurons import QCFS


def two_layer():
    lin1 = nn.Linear(4, 3, bias=False)
    lin2 = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        lin1.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 0]]))
        lin2.weight.fill_(1.0)
    act = QCFS(levels=4, threshold=1.0)
    return nn.Sequential(lin1, act, lin2), act


def test_hand_computed_two_layer_example():
    model, act = two_layer()
    x = torch.tensor([[1.0, 1.0, 0.3, 0.0]])  # layer-1 outputs 1, 1, 0
    # ANN: every operation is a MAC: 4x3 + 3x2 = 18 MACs
    c = OpCounter(model, analog=set(), spiking=False)
    model(x)
    ann = c.take()
    c.remove()
    assert ann.macs == 18 and ann.sops == 0
    assert abs(ann.energy_uJ - 18 * E_MAC_PJ * 1e-6) < 1e-12
    # SNN, one step: layer 1 sees analog input -> 12 MACs; its IF neurons (θ = 1, v0 = 0.5) get 1, 1, 0:
    # two fire; each spike fans out to the 2 outputs of layer 2 -> 4 SOPs
    act.to_spiking()
    act.reset()
    c = OpCounter(model, analog={"0"}, spiking=True)
    model(x)
    snn = c.take()
    assert act.last_spikes == 2
    assert snn.macs == 12 and snn.sops == 4
    assert abs(snn.energy_uJ - (4 * E_AC_PJ + 12 * E_MAC_PJ) * 1e-6) < 1e-12
    assert abs(energy_uJ(4, 12) - 58.8e-6) < 1e-12  # 0.9 x 4 + 4.6 x 12 = 3.6 + 55.2 = 58.8 pJ
    c.remove()


def test_mst_power_model():
    assert mst_power_alpha(2500) == 2.5e6  # spikes per 1 ms step -> spikes/s x α


def test_pair_ops_equals_the_product_of_the_non_zero_patterns():
    from evstream.energy import pair_ops

    g = torch.Generator().manual_seed(0)
    for shape_a, shape_b in (((3, 2, 5, 4), (3, 2, 4, 6)), ((7, 9), (9, 2))):
        a = torch.rand(shape_a, generator=g) * (torch.rand(shape_a, generator=g) < 0.3)
        b = torch.rand(shape_b, generator=g) * (torch.rand(shape_b, generator=g) < 0.5)
        assert pair_ops(a, b) == int(((a != 0).float() @ (b != 0).float()).sum())
