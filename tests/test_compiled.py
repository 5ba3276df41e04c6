"""The pure, compiled SNN step (evstream/snn/pure.py, compiled.py) against the eager runners (the reference):
the same spikes, outputs and operation counts on real N-MNIST input, for every mode."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from evstream.paths import REPO
from evstream.snn.compiled import CompiledRunner, compile_runner

CHECKPOINTS = {"mst": "mst-nmnist.pt", "ecmt": "mst-nmnist.pt", "spikformer": "spikformer-nmnist.pt"}


def real_input(data_file, rep=None, index=0):
    """One real N-MNIST recording as model input: the checkpoint's representation, or (``rep=None``) the
    first two of four polarity frames cropped to 16x16 (the tiny models' 4 channels)."""
    from evstream.readers import read_events
    from evstream.representations import from_config

    path = sorted(data_file("nmnist_small/train").glob("*.bs2"))[index]
    ev = read_events(path).events
    if rep is not None:
        return torch.from_numpy(rep(ev)[None])
    frames = from_config({"kind": "frames", "n_frames": 2, "split_by": "time", "mode": "count",
                          "sensor_size": [34, 34]})(ev)
    return torch.from_numpy(np.ascontiguousarray(frames[:, 9:25, 9:25])[None]).float()


def shipped(mode):
    from evstream.live.model import load_model

    path = REPO / "models" / CHECKPOINTS[mode]
    if not path.exists():
        pytest.skip(f"{path} not found")
    return load_model(path, mode=mode)


def assert_same_steps(ref_steps, steps, exact: bool):
    """Step by step: spikes per layer, SOPs, MACs, outputs. ``exact`` (the same float operations as the
    reference): equal; else within float tolerance, i.e. a few spikes at a threshold may flip: at most 1 %
    of each step's spikes differ, and the outputs agree to what that allows."""
    assert len(ref_steps) == len(steps)
    for r, s in zip(ref_steps, steps):
        assert list(r.spikes) == list(s.spikes)
        if exact:
            assert r.spikes == s.spikes
            assert r.sops == s.sops and r.macs == s.macs and r.energy_uJ == s.energy_uJ
            torch.testing.assert_close(s.logits, r.logits, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(s.mean, r.mean, rtol=1e-5, atol=1e-5)
            continue
        diff = sum(abs(r.spikes[k] - s.spikes[k]) for k in r.spikes)
        assert diff <= 0.01 * r.total_spikes + 2, (diff, r.total_spikes)
        assert abs(r.sops - s.sops) <= 0.02 * r.sops + 100
        assert r.macs == s.macs
        scale = float(r.logits.abs().max()) + 1.0
        assert float((r.logits - s.logits).abs().max()) <= 0.05 * scale


@pytest.mark.parametrize("kernels", [True, False], ids=["numba", "torch-ops"])
@pytest.mark.parametrize("mode", ["mst", "ecmt", "spikformer"])
def test_pure_step_counts_equal_the_runner(mode, kernels, shared_file):
    """The pure step run eagerly one step per call, its neurons as numba kernels or as the tensor operations
    that get compiled (the same float operations as the runner's kernels): the same spikes per layer, SOPs,
    MACs and energy as today's runner (hooks), over a reset_mean()."""
    lm = shipped(mode)
    x = real_input(shared_file, lm.rep)
    fast = CompiledRunner(lm.runner, x, backend="batched", chunk=1)
    fast.pures[1].tape.kernels = kernels
    ref = lm.runner
    fast.reset()
    got = [fast.step(x) for _ in range(3)]
    fast.reset_mean()
    got += [fast.step(x) for _ in range(3)]
    ref.reset()
    want = [ref.step(x) for _ in range(3)]
    ref.reset_mean()
    want += [ref.step(x) for _ in range(3)]
    assert sum(w.total_spikes for w in want) > 0
    assert_same_steps(want, got, exact=True)


@pytest.mark.parametrize("mode", ["mst", "ecmt", "spikformer"])
def test_pure_steps_batched_over_time(mode, shared_file):
    """T steps per call, layer by layer (one product per layer for all T): the runner's steps, within float
    tolerance (a batched product may round differently from T single ones)."""
    lm = shipped(mode)
    x = real_input(shared_file, lm.rep, index=1)
    fast = CompiledRunner(lm.runner, x, backend="batched", chunk=4)
    fast.reset()
    got = fast.steps(x, 8)
    lm.runner.reset()
    want = [lm.runner.step(x) for _ in range(8)]
    assert_same_steps(want, got, exact=False)


@pytest.mark.parametrize("mode", ["mst", "ecmt", "spikformer"])
def test_batched_kernels_equal_the_tensor_operations(mode, shared_file):
    """T steps per call: the numba kernels (neurons, ECMT's running sums and differences, pair counts) give
    exactly the spikes, counts and outputs of the tensor operations a compiler traces, decision after decision."""
    lm = shipped(mode)
    x = real_input(shared_file, lm.rep, index=2)
    runs = []
    for kernels in (True, False):
        fast = CompiledRunner(lm.runner, x, backend="batched", chunk=4)
        fast.pures[4].tape.kernels = kernels
        if mode == "mst":  # its attention runs as one fused twin (evstream/snn/pure_attention.py) with kernels
            from evstream.snn.pure_attention import PureIFAttention

            assert any(isinstance(m, PureIFAttention) for m in fast.pures[4].modules())
        for _ in range(2):  # the second decision: each layer writes its reset values into the same states (fresh)
            fast.reset()
            runs.append(fast.steps(x, 8))
    assert sum(r.total_spikes for r in runs[-1]) > 0
    for run in runs[:-1]:
        assert_same_steps(runs[-1], run, exact=True)


@pytest.mark.parametrize("mode", ["mst", "ecmt", "spikformer"])
def test_stacked_decisions_are_each_decisions_own(mode, shared_file):
    """Several decisions in one call (unpaced replay, evstream/live/batch.py: each from reset states, their
    layers' products shared): each is the decision computed alone (within float tolerance: a larger product
    may round differently — here they came out equal), and exactly the same whichever decisions it is stacked
    with (nothing of one decision leaks into the next); the runner's own decisions go on as before."""
    lm = shipped(mode)
    T = {"mst": 8, "ecmt": 5, "spikformer": 4}[mode]
    xs = torch.cat([real_input(shared_file, lm.rep, index=i) for i in range(3)])
    fast = CompiledRunner(lm.runner, xs[:1], backend="batched", chunk=T)
    assert fast.can_stack(T)
    from evstream.snn.pure import PerInput

    batches = []  # the analog input's layers see one input at a time (a convolution's algorithm follows its batch)
    for m in fast.pures[T].modules():
        if isinstance(m, PerInput):
            m.layer.register_forward_hook(lambda mod, args, out: batches.append(args[0].shape[0]))
    stacked = fast.decisions(xs, T)
    assert 1 in batches and len(xs) not in batches  # (ECMT's head, also analog, sees every step: S·T)
    assert len(stacked) == 3 and all(len(d) == T for d in stacked)
    alone = []
    for k in range(3):
        fast.reset()
        alone.append(fast.steps(xs[k:k + 1], T))
        assert_same_steps(alone[k], stacked[k], exact=False)
        assert [s.t for s in stacked[k]] == list(range(1, T + 1))
        assert_same_steps(fast.decisions(xs[k:k + 1].repeat(3, 1, 1, 1), T)[k], stacked[k], exact=True)
    assert sum(s.total_spikes for s in stacked[2]) > 0 and stacked[0][-1].mean.ne(stacked[1][-1].mean).any()
    fast.reset()
    assert_same_steps(alone[0], fast.steps(xs[:1], T), exact=True)
    with pytest.raises(ValueError, match="cannot stack"):
        fast.decisions(xs[:, :, :8], T)
    fast.set_mask_ratio(0.5)  # masking runs on the eager runner, one decision at a time
    assert not fast.can_stack(T)


def test_stacked_decisions_split_over_threads(shared_file, monkeypatch):
    """Unpaced replay's held decisions split into calls computed side by side (evstream/live/batch.py): each
    thread its own twin runner (pure steps and states), the results in order, as one call gives them."""
    from evstream.live import batch
    from evstream.live.batch import compute

    monkeypatch.setattr(batch, "usable_cores", lambda: 8)  # three threads on a 2-core machine too

    lm = shipped("ecmt")
    xs = torch.cat([real_input(shared_file, lm.rep, index=i) for i in range(7)])
    fast = CompiledRunner(lm.runner, xs[:1], backend="batched", chunk=5)
    one = fast.decisions(xs, 5)
    split = compute(fast, xs, 5, threads=3)
    assert len(split) == 7
    for a, b in zip(one, split):
        assert_same_steps(a, b, exact=False)
        assert int(a[-1].mean.argmax()) == int(b[-1].mean.argmax())
    twins = [fast.twin(1), fast.twin(2)]  # made by compute for its other two threads
    assert twins[0] is not twins[1] and fast.twin(1) is twins[0] and twins[0].pures[5] is not fast.pures[5]
    assert len({r._buffer[0].data_ptr() for r in [fast] + twins}) == 3


def tiny_runner(tiny_model, mode):
    arch = "spikformer" if mode == "spikformer" else "mst"
    m = tiny_model(arch).eval()
    return m.spiking(mode=mode)


# Compiling costs minutes of CPU per graph on a 2-core machine (benchmarks/RESULTS.md "Live speed"): the suite
# compiles one mode's tiny model; EVSTREAM_COMPILE_TESTS=1 compiles every mode.
COMPILED_MODES = ["mst", "ecmt", "spikformer"] if os.environ.get("EVSTREAM_COMPILE_TESTS") else ["spikformer"]


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("mode", COMPILED_MODES)
def test_compiled_step_equals_eager(mode, tiny_model, shared_file):
    """The inductor-compiled step (C++ wrapper, freezing) on a tiny model and real input: the eager runner's
    spikes, counts and outputs within float tolerance, 2 steps per call."""
    x = real_input(shared_file)
    runner = tiny_runner(tiny_model, mode)
    fast = compile_runner(runner, x, backend="inductor", chunk=2, notice=pytest.skip)
    assert isinstance(fast, CompiledRunner)
    fast.reset()
    got = fast.steps(x, 4)
    ref = tiny_runner(tiny_model, mode)
    ref.reset()
    want = [ref.step(x) for _ in range(4)]
    assert sum(w.total_spikes for w in want) > 0
    assert_same_steps(want, got, exact=False)


def test_masking_and_other_shapes_use_the_eager_step(tiny_model, shared_file):
    x = real_input(shared_file)
    fast = CompiledRunner(tiny_runner(tiny_model, "mst"), x, backend="batched", chunk=1)
    fast.set_mask_ratio(0.5)
    assert not fast.compiled_active
    fast.reset()
    got = [fast.step(x) for _ in range(3)]
    ref = tiny_runner(tiny_model, "mst")
    ref.set_mask_ratio(0.5)
    ref.reset()
    want = [ref.step(x) for _ in range(3)]
    assert_same_steps(want, got, exact=True)
    fast.set_mask_ratio(0.0)
    assert fast.compiled_active
    two = torch.cat([x, x])  # another batch size than compiled for: eager, same results
    fast.reset()
    assert fast.step(two).logits.shape[0] == 2


def test_unavailable_backend_falls_back_with_one_notice(tiny_model, shared_file):
    x = real_input(shared_file)
    runner = tiny_runner(tiny_model, "mst")
    notes = []
    got = compile_runner(runner, x, backend="no-such-backend", notice=notes.append)
    assert got is runner
    assert len(notes) == 1 and "eager" in notes[0] and "\n" not in notes[0]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings: Linux only")
def test_the_batched_step_keeps_freed_memory_for_the_next_decision():
    """A decision's temporaries (tens of MB at mode mst's 64 steps) are freed and allocated again at every
    decision; glibc by default hands the top of its heap back to the kernel, so each decision faults its pages
    back in (zeroed). ``keep_freed_memory`` (set when a batched step is built) keeps them: the same pattern of
    allocations, repeated, costs no page faults."""
    code = textwrap.dedent("""
        import resource, sys, numpy as np
        if sys.argv[1] == "keep":
            from evstream.snn.compiled import keep_freed_memory
            assert keep_freed_memory()
        def decision():
            a = np.ones(5 << 20, np.float32); b = np.ones(5 << 20, np.float32); c = np.ones(3 << 20, np.float32)
            del c, b, a
        for _ in range(3):
            decision()
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(10):
            decision()
        print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 10)
    """)
    faults = {}
    for how in ("default", "keep"):
        out = subprocess.run([sys.executable, "-c", code, how], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        faults[how] = float(out.stdout.split()[-1])
    assert faults["keep"] < 50, faults  # 52 MB touched per round: ~13,000 pages if they came back from the kernel
    assert faults["keep"] < faults["default"] / 10 or faults["default"] < 50, faults
