"""MST: QCFS ANN <-> IF SNN conversion, Random Spike Masking, deterministic streaming, checkpoints."""

from __future__ import annotations

import pytest
import torch

from evstream.errors import CheckpointError
from evstream.snn import QCFS, load_checkpoint, save_checkpoint
from conftest import calibrated_mst

torch.set_num_threads(1)


def trained_like(seed=0):
    """A small calibrated MST (conftest.calibrated_mst) and 8 of its inputs."""
    m, x = calibrated_mst(seed)
    return m, x[:8]


def test_qcfs_levels_and_if_mean():
    q = QCFS(levels=4, threshold=2.0)
    x = torch.tensor([-1.0, 0.2, 0.6, 1.1, 5.0])
    assert torch.allclose(q(x), torch.tensor([0.0, 0.0, 0.5, 1.0, 2.0]))
    q.to_spiking()
    q.reset()
    T = 400
    mean = sum(q(x) for _ in range(T)) / T
    # the IF neuron (soft reset, v0 = θ/2) fires at the clipped input rate
    assert torch.allclose(mean, torch.clamp(x, 0, 2.0), atol=2.0 / T * 2)


def test_snn_mean_output_approaches_ann():
    m, x = trained_like()
    with torch.no_grad():
        y = m(x)
    snn = m.spiking(mode="mst")
    out = snn.run(x, 256)
    err = [float((out[t - 1] - y).abs().mean()) for t in (4, 32, 256)]
    assert err[2] < err[0]
    assert err[2] < 0.25 * float(y.abs().mean()) + 0.05
    assert snn.total_spikes > 0


def test_masking_cuts_spikes_in_proportion():
    m, x = trained_like()
    counts = {}
    for r in (0.0, 0.5, 0.9):
        snn = m.spiking(mode="mst", mask_ratio={"q": r, "k": r, "attn": r}, seed=1)
        snn.reset()
        qk = 0
        for _ in range(16):
            out = snn.step(x)
            qk += sum(v for name, v in out.spikes.items() if name.endswith((".q", ".k")))
        counts[r] = qk
    assert counts[0.5] < counts[0.0] and counts[0.9] < counts[0.5]
    # the Q and K spikes that pass the mask scale with (1 - r), within sampling noise and drift
    assert 0.3 < counts[0.5] / counts[0.0] < 0.7
    assert counts[0.9] / counts[0.0] < 0.2


def test_reset_gives_identical_reruns_and_ratio_change_without_rebuild():
    m, x = trained_like()
    snn = m.spiking(mode="mst", mask_ratio=0.5, seed=3)
    a = snn.run(x, 12)
    b = snn.run(x, 12)
    assert torch.equal(a, b)
    snn.reset()
    first = snn.step(x)
    snn.set_mask_ratio(0.0)  # applies at the next step
    second = snn.step(x)
    assert snn.mask_ratios["q"] == 0.0 and second.t == 2 and first.t == 1


def test_step_result_fields_and_decay():
    m, x = trained_like()
    snn = m.spiking(mode="mst", decay=0.5)
    snn.reset()
    out = snn.step(x[:2])
    assert out.logits.shape == (2, 5) and out.mean.shape == (2, 5)
    assert out.confidence.shape == (2,) and torch.all(out.margin >= 0)
    assert set(out.spikes) == {a.name for a in snn.model.activations()}
    assert out.energy_uJ > 0 and out.macs > 0
    out2 = snn.step(x[:2])
    assert torch.allclose(out2.mean, 0.5 * out.logits + 0.5 * out2.logits)


def test_checkpoint_roundtrip_and_errors(tmp_path):
    m, x = trained_like()
    p = tmp_path / "m.pt"
    save_checkpoint(p, m, {"classes": list("abcde"), "representation": {"kind": "frames"}})
    m2, meta = load_checkpoint(p)
    assert meta["classes"] == list("abcde")
    with torch.no_grad():
        assert torch.equal(m(x), m2(x))
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    cut = tmp_path / "cut.pt"
    cut.write_bytes(p.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="truncated or foreign") as info:
        load_checkpoint(cut)
    assert str(cut) in str(info.value) and "\n" not in str(info.value)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not an evstream checkpoint"):
        load_checkpoint(foreign)
    text = tmp_path / "text.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError):
        load_checkpoint(text)


def test_fast_if_step_equals_spikingjelly():
    """HalfIF's inference path (one numba pass) gives SpikingJelly's IF spikes and membranes, step for step,
    on contiguous and strided input; ``fire`` with a keep mask sends only the kept spikes, at ``value``."""
    from evstream.snn import HalfIF

    torch.manual_seed(1)
    xs = torch.randn(50, 3, 14) * 2
    for x_of in (lambda x: x, lambda x: x[:, ::2]):  # a strided view is read as it is
        fast, ref = HalfIF(1.5), HalfIF(1.5)
        for x in xs:
            with torch.no_grad():
                s_fast = fast(x_of(x))
            with torch.enable_grad():
                s_ref = ref(x_of(x).clone().requires_grad_(False))
            assert torch.equal(s_fast, s_ref.detach())
            assert torch.equal(fast.v, ref.v.detach())
        fast.reset()
        assert fast.v == 0.75
    fast, ref = HalfIF(1.0), HalfIF(1.0)
    keep = torch.rand(3, 14) > 0.5
    with torch.no_grad():
        for x in xs[:10]:
            out, n = fast.fire(x, 2.5, keep)
            s = ref(x)
            assert torch.equal(out, s * keep * 2.5) and n == int((s * keep).sum())


def test_fuse_keeps_the_function_and_the_window_order():
    """fuse() (folded BatchNorms, one Q/K/V layer, cached bias) computes the same ANN output; the token
    gather of a shifted block equals Swin's roll + window partition, and its inverse undoes it."""
    import copy

    from evstream.snn.mst import SwinBlock, window_partition

    m, x = trained_like(2)
    for a in m.activations():  # near-continuous QCFS steps: a last-bit rounding difference between the
        assert hasattr(a, "levels")  # fused and unfused sums (another CPU's kernels) must not flip a level
        a.levels = 1 << 20
    with torch.no_grad():
        y = m(x)
        fused = copy.deepcopy(m).fuse()
        torch.testing.assert_close(fused(x), y, rtol=1e-4, atol=1e-4)
    assert not any(isinstance(mod, torch.nn.BatchNorm1d) for mod in fused.modules())
    blk = next(b for b in m.modules() if isinstance(b, SwinBlock) and b.shift)
    r, c = blk.resolution, 3
    grid = torch.rand(2, r, r, c)
    ref = window_partition(torch.roll(grid, (-blk.shift, -blk.shift), (1, 2)), blk.window)
    got = grid.reshape(2, r * r, c).index_select(1, blk.to_windows).view(-1, blk.window ** 2, c)
    assert torch.equal(got, ref)
    back = got.reshape(2, r * r, c).index_select(1, blk.from_windows).view(2, r, r, c)
    assert torch.equal(back, grid)


def test_fast_linear_computes_what_linear_does():
    """The runners' inference Linear (evstream/snn/layers.py FastLinear: Wᵀ kept contiguous, the bias added
    after the product): nn.Linear's output for 1-, 2- and 3-d and strided inputs, with and without a bias; with
    gradients on it is nn.Linear itself (gradients reach the weights); a runner's copy has them, the ANN not."""
    from torch import nn

    from evstream.snn.layers import FastLinear, fast_linears

    torch.manual_seed(0)
    for bias in (True, False):
        lin = nn.Linear(24, 40, bias=bias)
        fast = FastLinear.of(lin)
        for x in (torch.randn(24), torch.randn(7, 24), torch.randn(3, 5, 24), torch.randn(5, 48)[:, ::2]):
            with torch.no_grad():
                torch.testing.assert_close(fast(x), lin(x))
                parts = fast(x, parts=4)  # four contiguous column blocks (Q, K, V apart without a copy)
                assert len(parts) == 4 and all(p.is_contiguous() for p in parts)
                torch.testing.assert_close(torch.cat(parts, -1), lin(x))
        x = torch.randn(4, 24)
        fast(x).sum().backward()
        assert fast.weight.grad is not None and fast.weight is lin.weight
    m, _ = trained_like(2)
    runner = m.spiking(mode="mst")
    kinds = {type(mod) for mod in runner.model.modules()}
    assert FastLinear in kinds and nn.Linear not in kinds
    assert not any(isinstance(mod, FastLinear) for mod in m.modules())  # the ANN untouched
    seq = fast_linears(nn.Sequential(nn.Linear(2, 3), nn.ReLU()))
    assert type(seq[0]) is FastLinear and type(seq[1]) is nn.ReLU


def test_sops_from_spike_counts_equal_counting_every_layer():
    """OpCounter counts a layer fed by one neuron layer from that layer's spike count (model.spike_sources);
    the numbers equal counting the non-zero inputs of every layer with hooks, with and without masks."""
    from evstream.energy import OpCounter

    m, x = trained_like(3)
    for ratio in (0.0, 0.5):
        runs = []
        for sources in (True, False):
            snn = m.spiking(mode="mst", mask_ratio=ratio, seed=4)
            snn.counter.remove()
            snn.counter = OpCounter(snn.model, snn.analog, spiking=True, sources=sources)
            snn.reset()
            runs.append([(o.sops, o.macs, o.total_spikes) for o in (snn.step(x) for _ in range(5))])
        assert runs[0] == runs[1] and runs[0][-1][0] > 0


def test_a_bad_checkpoint_is_named_in_whole_words(tmp_path):
    """Issue 17 (8): no PyTorch text cut mid-sentence in the one line."""
    from evstream.errors import CheckpointError
    from evstream.paths import DEMO_MODEL
    from evstream.snn import load_checkpoint

    cut, text = tmp_path / "cut.pt", tmp_path / "text.pt"
    cut.write_bytes(DEMO_MODEL.read_bytes()[:100_000])
    text.write_text("garbage")
    for path, words in ((cut, "not a complete zip archive"), (text, "without running code")):
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path)
        msg = str(info.value)
        assert msg.endswith(f"{words})") and "\n" not in msg and "If you are seeing" not in msg, msg


@pytest.mark.parametrize("mode", ["mst", "ecmt"])
def test_burn_in_leaves_the_first_steps_out_of_the_answer(mode):
    m, x = trained_like()
    if mode not in m.modes:
        pytest.skip(f"no {mode} mode")
    snn = m.spiking(mode=mode)
    snn.reset()
    logits = [snn.step(x[:2]).logits for _ in range(6)]
    snn.set_burn_in(4)
    snn.reset()
    outs = [snn.step(x[:2]) for _ in range(6)]
    for a, b in zip(logits, outs):  # the same network, step by step: only the running answer changes
        assert torch.allclose(a, b.logits)
    assert torch.allclose(outs[1].mean, (logits[0] + logits[1]) / 2, atol=1e-6)  # during the burn-in: all so far
    assert torch.allclose(outs[5].mean, (logits[4] + logits[5]) / 2, atol=1e-6)  # after it: only the later steps
    snn.reset()  # the burn-in holds after every reset
    again = [snn.step(x[:2]) for _ in range(6)]
    assert torch.allclose(again[5].mean, outs[5].mean)


def test_loading_a_checkpoint_does_not_import_the_compiler():
    """A live start loads the checkpoint (and checks its size on the meta device): torch._dynamo's first
    import costs ~2 s of the first result, and nothing on that path needs it."""
    import subprocess
    import sys

    from evstream.paths import MODELS

    code = ("import sys; from evstream.snn import load_checkpoint; from evstream.energy import product_macs; "
            f"import torch; load_checkpoint({str(MODELS / 'mst-nmnist.pt')!r}); "
            f"load_checkpoint({str(MODELS / 'spikformer-nmnist.pt')!r}); "
            "product_macs(torch.zeros(2, 1, 3, 4), torch.zeros(5, 4, 6)); "
            "print(sorted(m for m in sys.modules if m.startswith(('torch._dynamo', 'torch.fx.experimental.symbolic_shapes'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout


def test_segmented_eval_with_burn_in_scores_the_later_steps_only():
    from evstream.evaluate import snn_curve

    m, x = trained_like()
    y = torch.arange(len(x)) % 5
    snn = m.spiking(mode="mst")
    snn.reset()
    logits = torch.stack([snn.step(x).logits for _ in range(8)])  # (T, B, K)
    curve = snn_curve(m, [(x, y)], [4, 8], mode="mst", burn_in=0.5)
    for t in (4, 8):
        answer = logits[t // 2:t].mean(0).argmax(1)
        assert curve[t]["accuracy"] == pytest.approx(float((answer == y).float().mean()))
    plain = snn_curve(m, [(x, y)], [8], mode="mst")
    assert plain[8]["accuracy"] == pytest.approx(float((logits.mean(0).argmax(1) == y).float().mean()))
    assert plain[8]["spikes_per_sample"] == curve[8]["spikes_per_sample"]  # the same steps run either way


def test_a_kernels_first_use_does_not_import_scipy_linalg():
    """numba's first compilation checks for SciPy's BLAS by importing scipy.linalg (~0.25 s of a live start;
    no evstream kernel uses it) and imports cffi's C parser (~50 ms; no kernel calls cffi functions):
    evstream.jit hides both for those checks only, so a kernel runs without them and both stay importable."""
    import subprocess
    import sys

    code = ("import sys, numpy as np; from evstream.snn.neurons import if_steps; "
            "x = np.ones((3, 4), np.float32); v = np.zeros(4, np.float32); o = np.empty_like(x); "
            "n = np.empty(3, np.int64); if_steps(x, v, o, n, np.float32(1.5), np.float32(1.5), False, np.float32(0)); "
            "print(int(n.sum()), 'scipy.linalg' in sys.modules, 'cffi' in sys.modules); "
            "import scipy.linalg, cffi; print(scipy.linalg.norm(np.ones(4)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    first, second = out.stdout.split("\n")[:2]
    assert first == "8 False False", out.stdout  # spikes at steps 2 and 3 of each neuron; neither imported
    assert float(second) == 2.0
