"""ECMT conversion mode: Theorems 1 and 2 hold numerically, the multi-threshold neuron tracks its input,
calibration is deterministic, the streaming API, masks and counting work, and the shipped checkpoint in
mode "ecmt" is close to its ANN after a few steps."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from evstream.energy import OpCounter
from evstream.errors import CheckpointError, EvstreamError
from evstream.snn import QCFS, load_checkpoint, save_checkpoint
from evstream.snn.ecmt import ECMTRunner, ECProduct, ECQCFS, calibrate, level_counts
from conftest import calibrated_mst

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]


def qcfs(lam=2.0, L=16, name="act"):
    q = QCFS(levels=L, threshold=lam, name=name)
    q.eval()
    return q


def small_model(seed=0):
    """A small calibrated MST (conftest.calibrated_mst) and its batch of 24 inputs."""
    return calibrated_mst(seed, batch=24)


def test_theorem1_running_sum_is_T_times_F_of_mean():
    torch.manual_seed(0)
    ann = qcfs(2.0)
    ec = ECQCFS(ann, theta=None)  # analog output: the compensated non-linearity alone
    total = torch.zeros(3, 50)
    xs = []
    for t in range(1, 41):
        # the input of a non-linear layer: weighted spike trains (a linear layer over random spikes)
        x = (torch.rand(3, 50) < 0.3).float() @ torch.randn(50, 50) * 0.4
        xs.append(x)
        total += ec(x)
        with torch.no_grad():
            expected = t * ann(torch.stack(xs).mean(0))
        assert torch.allclose(total, expected, atol=1e-4 * t), t


def test_theorem1_with_decay_is_the_weighted_version():
    torch.manual_seed(1)
    ann, d = qcfs(1.5), 0.8
    ec = ECQCFS(ann, theta=None, decay=d)
    acc, S, W = torch.zeros(40), torch.zeros(40), 0.0
    for _ in range(30):
        x = torch.randn(40)
        acc = d * acc + ec(x)
        S, W = d * S + x, d * W + 1
        with torch.no_grad():
            assert torch.allclose(acc, W * ann(S / W), atol=1e-4)


def test_theorem2_product_running_sum_is_SA_SB_over_T():
    torch.manual_seed(2)
    prod = ECProduct()
    levels = torch.tensor([0.0, 0.25, 0.5, 1.0, 2.0, -0.25, -0.5, -1.0, -2.0])
    SA, SB, total = torch.zeros(2, 6, 5), torch.zeros(2, 5, 7), torch.zeros(2, 6, 7)
    for T in range(1, 25):
        # multi-threshold spike trains: at most one level per position and step
        a = levels[torch.randint(0, 9, (2, 6, 5))] * (torch.rand(2, 6, 5) < 0.5)
        b = levels[torch.randint(0, 9, (2, 5, 7))] * (torch.rand(2, 5, 7) < 0.5)
        SA += a
        SB += b
        total += prod(a, b)
        assert torch.allclose(total, SA @ SB / T, atol=1e-5), T


def test_multi_threshold_neuron_tracks_the_running_mean():
    torch.manual_seed(3)
    theta, n = 0.1, 6
    neuron = ECQCFS(qcfs(), theta=theta, n=n, compensate=False)  # the bare multi-threshold neuron
    levels = {0.0} | {sgn * theta * 2 ** k for k in range(n) for sgn in (1, -1)}
    top = theta * 2 ** (n - 1)
    s_in, s_out = torch.zeros(500), torch.zeros(500)
    for t in range(1, 61):
        x = (torch.rand(500) * 2 - 1) * top
        m = (0.0 if neuron.v is None else neuron.v) + x  # the membrane before firing
        s = neuron(x)
        s_in += x
        s_out += s
        # at most one spike per step, of one of the levels
        assert all(any(math.isclose(v, lv, rel_tol=1e-5, abs_tol=1e-9) for lv in levels) for v in s.unique().tolist())
        assert neuron.last_spikes == int(s.count_nonzero())
        # the output's running sum is the input's minus the membrane (soft reset) ...
        assert torch.allclose(s_in - s_out, neuron.v, atol=1e-4)
        # ... and the membrane is what the nearest level leaves: at most θ/2 where the levels are θ apart,
        # at most a third of the membrane between the wider-spaced higher levels
        assert torch.all(neuron.v.abs() <= torch.maximum(torch.full_like(m, theta / 2), m.abs() / 3) + 1e-6)
        # so the running mean is reproduced within (half the largest input) / t
        assert torch.all((s_in / t - s_out / t).abs() <= max(theta / 2, top / 2) / t + 1e-6)
    # an input that the lowest level can carry is tracked within θ/2 at every step
    neuron.reset()
    s_in, s_out = torch.zeros(500), torch.zeros(500)
    for t in range(1, 41):
        x = (torch.rand(500) * 2 - 1) * theta
        s_in += x
        s_out += neuron(x)
        assert torch.all((s_in - s_out).abs() <= theta / 2 + 1e-6)


def test_level_counts_and_rule():
    neuron = ECQCFS(qcfs(), theta=1.0, n=4, compensate=False)
    # the nearest level: 0.5 -> none, 0.6 -> 1, 1.6 -> 2, 2.9 -> 2, 3.1 -> 4, 7 -> 8, 100 -> 8 (the top)
    s = neuron(torch.tensor([0.5, 0.6, 1.6, 2.9, 3.1, 7.0, 100.0, -2.2]))
    assert s.tolist() == [0.0, 1.0, 2.0, 2.0, 4.0, 8.0, 8.0, -2.0]
    assert torch.allclose(neuron.v, torch.tensor([0.5, -0.4, -0.4, 0.9, -0.9, -1.0, 92.0, -0.2]), atol=1e-6)
    assert level_counts(s, 1.0, 4) == {"theta": 1.0, "pos": [1, 2, 1, 2], "neg": [0, 1, 0, 0]}


def test_calibration_is_deterministic_and_batch_independent():
    m, x = small_model()
    a = calibrate(m, x, 99.0, 8, batch=100)
    b = calibrate(m, x, 99.0, 8, batch=7)
    assert a == b
    assert set(a["theta"]) == {q.name for q in m.activations()}
    for q in m.activations():
        lam = float(q.threshold.detach()) + 1e-6
        assert 0 < a["top"][q.name] <= lam + 1e-6
        assert math.isclose(a["theta"][q.name] * 2 ** 7, a["top"][q.name], rel_tol=1e-9)
    lower = calibrate(m, x, 50.0, 8)
    assert all(lower["top"][k] <= a["top"][k] for k in a["top"])


def test_streaming_api_masks_counts_and_checkpoint(tmp_path):
    m, x = small_model()
    x = x[:4]
    snn = m.spiking(mode="ecmt")
    assert snn.threshold_source == "lambda"  # no calibration in the model: top level = λ
    a = snn.run(x, 6)
    b = snn.run(x, 6)
    assert torch.equal(a, b) and a.shape == (6, 4, 5)
    snn.reset()
    out = snn.step(x)
    assert out.logits.shape == (4, 5) and out.sops > 0 and out.macs > 0 and out.energy_uJ > 0
    assert out.total_spikes == sum(out.spikes.values()) > 0
    for name, lv in out.spikes_per_level.items():
        assert sum(lv["pos"]) + sum(lv["neg"]) == out.spikes[name]
    # the compensation and the product terms are counted (MACs beyond the analog first layers)
    ops = OpCounter(snn.model, snn.analog, spiking=True)
    snn.step(x)
    per = ops.take().per_module
    assert any(k.endswith(".compensation") and v > 0 for k, v in per.items())
    ops.remove()
    # a batch of another shape needs a reset: one clear error, not a wrong result
    with pytest.raises(EvstreamError, match="input shape changed"):
        snn.step(x[:2])
    snn.reset()
    assert snn.step(x[:2]).logits.shape == (2, 5)
    # masks act on the multi-threshold spikes
    qk = {}
    for r in (0.0, 0.5):
        s = m.spiking(mode="ecmt", mask_ratio=r, seed=1)
        s.reset()
        qk[r] = sum(sum(v for k, v in s.step(x).spikes.items() if k.endswith((".q", ".k"))) for _ in range(4))
    assert 0.3 < qk[0.5] / qk[0.0] < 0.7
    # the calibration stored in the checkpoint's meta is used from the checkpoint alone
    cal = calibrate(m, torch.rand(16, 4, 16, 16), 99.0, 6)
    p = tmp_path / "m.pt"
    save_checkpoint(p, m, {"ecmt": cal})
    m2, _ = load_checkpoint(p)
    s2 = m2.spiking(mode="ecmt")
    assert s2.threshold_source == "calibration" and s2.levels == 6
    bad = dict(cal, theta={"nope": 1.0})
    save_checkpoint(p, m, {"ecmt": bad})
    m3, _ = load_checkpoint(p)
    with pytest.raises(CheckpointError, match="does not fit"):
        m3.spiking(mode="ecmt")


def test_ecmt_mean_approaches_ann_faster_than_mst():
    m, x = small_model()
    x = x[:8]
    with torch.no_grad():
        y = m(x)
    cal = calibrate(m, x)
    e = ECMTRunner(m, calibration=cal).run(x, 16)
    s = m.spiking(mode="mst").run(x, 16)
    err = lambda out, t: float((out[t - 1] - y).norm() / y.norm())  # noqa: E731
    assert err(e, 16) < err(e, 2)
    assert err(e, 2) < 0.5 * err(s, 2) and err(e, 4) < err(s, 4)
    assert err(e, 8) < 0.05


def test_shipped_checkpoint_ecmt_close_to_ann(data_dir):
    path = REPO / "models" / "mst-nmnist.pt"
    if not path.exists():
        pytest.skip("shipped checkpoint models/mst-nmnist.pt not present")
    from evstream.inputs import eval_inputs

    model, meta = load_checkpoint(path)
    ds = meta["dataset"]
    x, _, _ = eval_inputs(meta, ds["name"], ds["root"], ds.get("labels"), "val", 12)
    with torch.no_grad():
        ann = model(x)
    means = model.spiking(mode="ecmt").run(x, 8)
    agree = int((means[-1].argmax(1) == ann.argmax(1)).sum())
    assert agree >= 11, agree
    rel = float((means[-1] - ann).norm() / ann.norm())
    assert rel < 0.25, rel


def test_compensation_counting_rules():
    """docs/energy.md rules 9 and 10 on hand-countable inputs."""
    ec = ECQCFS(qcfs(), theta=0.1)
    prod = ECProduct()
    net = torch.nn.ModuleDict({"ec": ec, "prod": prod})
    c = OpCounter(net, set(), spiking=True)
    ec(torch.rand(2, 5))
    assert (c.count.sops, c.count.macs) == (0.0, 20.0)  # 2 MACs per element
    c.take()
    a1 = torch.tensor([[[1.0, 0, 0], [0, 0, 2.0]]])  # n = 2, p = 3
    b1 = torch.tensor([[[0.0, 1.0], [0, 0], [0.5, 0]]])  # p = 3, m = 2
    prod(a1, b1)
    # first step: the normalisation, n·m MACs; and, as for every spike product, the pairs of non-zeros
    # that meet: columns 0 and 2 of A meet rows 0 and 2 of B once each (2 SOPs)
    assert (c.count.sops, c.count.macs) == (2.0, 4.0)
    c.take()
    a2 = torch.tensor([[[1.0, 1.0, 0], [0, 0, 0]]])  # 2 spikes
    b2 = torch.tensor([[[1.0, 0], [0, 0], [0, 0]]])  # 1 spike
    prod(a2, b2)
    # nnz(A)·m + nnz(B)·n + 3·n·m = 2·2 + 1·2 + 12 SOPs, n·m MACs, plus 1 pair (column 0 x row 0)
    assert (c.count.sops, c.count.macs) == (19.0, 4.0)
    c.remove()


@pytest.mark.parametrize("ec", [True, False])
def test_vectorised_kernel_gives_the_exponent_bit_kernels_bits(ec):
    """The unmasked kernel (vectorised loops, n ≤ 8) and the exponent-bit loop (what masking runs; an
    all-True keep with gain 1 masks nothing) agree bit for bit on every state and output, at the edges too:
    |m| exactly θ/2, exactly 1.5θ·2^j, zero, huge, negative."""
    import numpy as np

    from evstream.snn.ecmt import _ec_mt_kernel

    f = np.float32
    rng = np.random.default_rng(0)
    theta = f(0.1)
    edges = np.array([0.0, theta / 2, -theta / 2] + [s * 1.5 * theta * 2.0 ** j for j in range(9) for s in (1, -1)]
                     + [1e6, -1e6], dtype=np.float32)
    for n in range(1, 9):
        x = np.concatenate([edges, rng.normal(0, 0.5, 4000).astype(np.float32)])
        a = [np.zeros(x.size, np.float32) for _ in range(3)]
        b = [np.zeros(x.size, np.float32) for _ in range(3)]
        keep = np.ones(x.size, dtype=np.bool_)
        for step in range(4):
            xs = x if step == 0 else (x * f(0.7) + rng.normal(0, 0.2, x.size).astype(np.float32))
            W = 1.0 + 0.5 * step
            consts = (f(0.5), f(16 / (1.2 * W)), f(1.2 * W / 16), f(16), theta, n)
            oa, ob = np.empty_like(x), np.empty_like(x)
            na = _ec_mt_kernel(xs, *a, oa, np.empty(0, np.bool_), ec, True, step == 0, *consts, f(1.0))
            nb_ = _ec_mt_kernel(xs, *b, ob, keep, ec, True, step == 0, *consts, f(1.0))
            assert na == nb_
            assert np.array_equal(oa.view(np.int32), ob.view(np.int32))
            for sa, sb in zip(a, b):
                assert np.array_equal(sa.view(np.int32), sb.view(np.int32))
        assert na > 0


@pytest.mark.parametrize("shapes", [((5, 3, 2, 4, 6), (5, 3, 2, 6, 7)),   # same batch
                                    ((4, 1, 2, 5, 3), (4, 3, 1, 3, 5)),   # broadcast batch dimensions
                                    ((3, 2, 1, 1, 4), (3, 2, 1, 4, 1))])  # single rows and columns
def test_running_sums_count_the_pairs_the_product_meets(shapes):
    """The batched step's ECMT products count their pairs of non-zeros from the running sums' pass (non-zeros
    per column of a, per row of b): equal to ``energy.pair_ops`` of each step's product, with the sums and the
    states as before (a fresh start writes S without reading it: the same values as from 0)."""
    import numpy as np

    from evstream.energy import pair_ops
    from evstream.snn.ecmt import pairs_of_lines, running_sums

    g = torch.Generator().manual_seed(sum(shapes[0]))
    a, b = (((torch.rand(s, generator=g) < 0.5) * torch.randint(1, 4, s, generator=g)).float() for s in shapes)
    b = b.transpose(-2, -1).contiguous().transpose(-2, -1)  # strided, as Kᵀ arrives
    T, d = a.shape[0], np.float32(0.5)
    lines = []
    for x, rows in ((a, False), (b, True)):
        n = x.shape[3 if rows else 4]
        for fresh in (True, False):
            S = np.full(x.shape[1:], 0.0 if fresh else 7.0, np.float32)
            out, nnz = np.empty(x.shape, np.float32), np.empty(T, np.int64)
            ln = np.full((*x.shape[:3], n), -1, np.int64)
            running_sums(x.numpy(), S, out, nnz, d, fresh, ln, rows)
            S0 = np.zeros(x.shape[1:], np.float32) if fresh else np.full(x.shape[1:], 7.0, np.float32)
            for t in range(T):  # the running sum, step by step, in float32
                S0 = (S0 * d + x[t].numpy()).astype(np.float32)
                assert np.array_equal(out[t], S0)
            assert np.array_equal(nnz, (x != 0).reshape(T, -1).sum(1).numpy())
        lines.append(ln)
    pairs = np.empty(T, np.int64)
    pairs_of_lines(*lines, pairs)
    assert pairs.tolist() == [pair_ops(a[t], b[t]) for t in range(T)]
    assert pairs.sum() > 0
