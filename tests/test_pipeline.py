"""The live pipeline (evstream/live/) headless: decisions, early exit, whole-slice drops when the model
is slower than a paced stream (and none when unpaced), recording, controls from another thread, model
swaps, bad checkpoints, and ``evstream run``."""

from __future__ import annotations

import csv
import json
import time

import numpy as np
import pytest
import torch

from evstream.errors import CheckpointError, EvstreamError
from evstream.live import Pipeline
from evstream.paths import DEMO_MODEL, DEMO_RECORDING
from evstream.readers import read_events

torch.set_num_threads(1)



def other_checkpoint(path):
    """A second checkpoint for the same sensor: the shipped weights with their last layer perturbed."""
    from evstream.snn import load_checkpoint, save_checkpoint

    model, meta = load_checkpoint(DEMO_MODEL)
    with torch.no_grad():
        model.head.bias += 0.1
    save_checkpoint(path, model, meta)
    return path


def small_checkpoint(path, sensor=(16, 16)):
    """A tiny untrained MST checkpoint for a sensor the demo does not have."""
    from evstream.snn import save_checkpoint
    from tiny import tiny_model

    m = tiny_model("mst", num_classes=3, depths=[2], heads=[2])
    rep = {"kind": "frames", "sensor_size": list(sensor), "n_frames": 2, "out_size": [16, 16]}
    save_checkpoint(path, m, {"representation": rep, "classes": ["a", "b", "c"]})
    return path


def wait_for(cond, timeout=15.0):
    t_end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > t_end:
            raise AssertionError("timed out")
        time.sleep(0.01)


def test_headless_decisions_fields_and_no_drops():
    steps, decisions = [], []
    pipe = Pipeline(DEMO_RECORDING, DEMO_MODEL, speed=None, max_steps=4, smooth=0.0, switch_margin=0.0)
    st = pipe.run(on_step=steps.append, on_decision=decisions.append, max_decisions=3)
    assert len(decisions) == 3 and st["dropped_slices"] == 0
    for i, d in enumerate(decisions):
        assert d.decision == i and d.timesteps == 4 and d.reason == "max_steps"
        assert d.t_us == 50_000 * (i + 1)  # every 50 ms (ecmt), on the last window (bounded by the stream start)
        assert d.window_us == min(pipe.lm.window_us, d.t_us)
        assert d.class_name in [str(k) for k in range(10)] and 0 < d.confidence <= 1
        assert d.energy_uJ > 0 and d.ann_energy_uJ > 0 and d.spikes > 0
        assert len(d.top) == 3 and d.top[0][0] == d.class_name
    # a decision's energy and spikes are the sum over its steps
    first = [s for s in steps if s.decision == 0]
    assert len(first) == 4 and [s.decision_step for s in first] == [1, 2, 3, 4]
    assert decisions[0].energy_uJ == pytest.approx(sum(s.energy_uJ for s in first))
    assert decisions[0].spikes == sum(s.total_spikes for s in first)
    s = steps[-1]
    assert s.probs.shape == (10,) and abs(float(s.probs.sum()) - 1) < 1e-4
    assert len(s.rates) == len(s.spikes) > 10 and np.all(np.asarray(s.rates) <= 1.0)
    assert {"read", "queue", "represent", "step", "slice", "total"} <= set(st["latency"])
    # time moves forward, one step per 10 ms slice
    # every decision starts from a reset SNN on its own window: the same steps at the decision's time
    assert {s.t_us for s in first} == {decisions[0].t_us}


@pytest.mark.parametrize("mode", ["ecmt", "spikformer", "mst"])
def test_unpaced_replay_computes_decisions_together_with_the_same_answers(mode):
    """Unpaced, decisions are held back and computed up to ``unpaced_batch`` at a time (evstream/live/batch.py):
    the same decisions, steps and energy as one at a time; a decision limit is kept exactly; the stream's end
    computes what is held."""
    from evstream.paths import REPO

    model = REPO / "models" / "spikformer-nmnist.pt" if mode == "spikformer" else DEMO_MODEL
    runs = {}
    for batch in (1, 8):
        steps, decisions = [], []
        pipe = Pipeline(DEMO_RECORDING, model, speed=None, mode=mode, unpaced_batch=batch)
        assert pipe.lm.runner.can_stack(pipe.config.steps_for(pipe.lm))
        pipe.run(on_step=steps.append, on_decision=decisions.append, max_decisions=21)
        runs[batch] = (steps, decisions)
    (s1, d1), (s8, d8) = runs[1], runs[8]
    assert len(d1) == len(d8) == 21  # ECMT: 16 held (two threads, 8 each), then the limit: 5; mst: 2 at a time
    for a, b in zip(d1, d8):
        assert (a.decision, a.t_us, a.window_us, a.timesteps, a.reason) == (b.decision, b.t_us, b.window_us,
                                                                             b.timesteps, b.reason)
        assert a.class_name == b.class_name and a.confidence == pytest.approx(b.confidence, abs=1e-3)
        assert a.energy_uJ == pytest.approx(b.energy_uJ, rel=0.02) and a.spikes == pytest.approx(b.spikes, rel=0.02)
    assert [(s.decision, s.decision_step, s.t_us) for s in s1] == [(s.decision, s.decision_step, s.t_us) for s in s8]
    if mode != "ecmt":
        return
    whole = {}  # the whole demo: the stream's end computes what is held
    for batch in (1, 8):
        whole[batch] = []
        Pipeline(DEMO_RECORDING, DEMO_MODEL, speed=None, unpaced_batch=batch, max_queue=2).run(
            on_decision=whole[batch].append)
    assert [(d.t_us, d.class_name, d.reason) for d in whole[1]] == [(d.t_us, d.class_name, d.reason) for d in whole[8]]
    assert whole[8][-1].reason == "end" and len(whole[8]) > 100


def test_carry_state_steps_once_per_slice_and_reports_its_window():
    steps, decisions = [], []
    pipe = Pipeline(DEMO_RECORDING, DEMO_MODEL, speed=None, state="carry", max_steps=4, window_slices=5)
    pipe.run(on_step=steps.append, on_decision=decisions.append, max_decisions=2)
    ts = [s.t_us for s in steps]
    assert ts == sorted(ts) and ts[1] - ts[0] == 10_000
    assert [d.timesteps for d in decisions] == [4, 4] and decisions[0].top[0][0] == decisions[0].class_name
    assert decisions[1].window_us == 50_000  # the last 5 slices of 10 ms


def test_early_exit_and_min_steps():
    out = []
    Pipeline(DEMO_RECORDING, DEMO_MODEL, speed=None, max_steps=50, early_exit=0.0,
             steps_per_slice=4).run(on_decision=out.append, max_decisions=3)
    assert [d.timesteps for d in out] == [1, 1, 1] and {d.reason for d in out} == {"confident"}
    out = []
    Pipeline(DEMO_RECORDING, DEMO_MODEL, speed=None, max_steps=50, early_exit=0.0, min_steps=3).run(
        on_decision=out.append, max_decisions=2)
    assert [d.timesteps for d in out] == [3, 3]


class SlowRunner:
    """Wraps a runner so every step takes at least ``delay`` seconds (a model slower than the stream)."""

    def __init__(self, runner, delay):
        self.runner, self.delay = runner, delay

    def step(self, x):
        time.sleep(self.delay)
        return self.runner.step(x)

    def __getattr__(self, name):
        return getattr(self.runner, name)


def test_slow_model_drops_whole_slices_on_a_paced_stream():
    pipe = Pipeline(DEMO_RECORDING, DEMO_MODEL, speed=4.0, max_queue=4)
    pipe.lm.runner = SlowRunner(pipe.lm.runner, 0.03)  # 40 slices/s of stream vs ~30 steps/s
    seen = []
    orig = pipe.stepper.process
    pipe.stepper.process = lambda sl, *a: (seen.append(sl), orig(sl, *a))
    st = pipe.run(duration_s=1.5)
    assert st["dropped_slices"] > 0
    assert st["slices_done"] + st["dropped_slices"] + st["queued"] <= st["slices_in"] + 1
    ev = read_events(DEMO_RECORDING).events
    for sl in seen[:20]:  # every processed slice holds every event of its window: whole slices only
        ref = ev[(ev["t"] >= sl.t_start) & (ev["t"] < sl.t_end)]
        np.testing.assert_array_equal(sl.events, ref)


def test_queue_sized_for_the_mode_and_resized_on_a_model_swap():
    pipe = Pipeline(DEMO_RECORDING, DEMO_MODEL, speed=1.0, mode="mst")
    try:
        assert pipe.stats()["queue_slices"] == 40  # 64-step decisions every 200 ms: two periods of 10 ms slices
        pipe._update(slice_ms=20.0)  # what the reader does on a new slicing; the model thread applies it
        pipe.stepper._sync_settings(pipe.config)
        assert pipe.stats()["queue_slices"] == 20
        pipe.stepper.request(DEMO_MODEL, "ecmt")
        pipe.stepper.apply_request(raise_errors=True)
        assert pipe.lm.mode == "ecmt" and pipe.stats()["queue_slices"] == 16
    finally:
        pipe.stop()


def test_unpaced_replay_never_drops():
    pipe = Pipeline(DEMO_RECORDING, DEMO_MODEL, speed=None, max_queue=2)
    pipe.lm.runner = SlowRunner(pipe.lm.runner, 0.01)
    st = pipe.run(duration_s=0.8)
    assert st["dropped_slices"] == 0 and st["slices_done"] > 10


def test_recording_events_and_steps(tmp_path):
    pipe = Pipeline(DEMO_RECORDING, DEMO_MODEL, speed=None, max_steps=8)
    rec = pipe.start_recording(tmp_path / "session")
    st = pipe.run(max_decisions=2)
    assert rec.events_path.exists() and rec.csv_path.exists()
    got = read_events(rec.events_path).events
    ref = read_events(DEMO_RECORDING).events
    assert len(got) > 1000
    np.testing.assert_array_equal(got, ref[:len(got)])  # what was read, in order, nothing else
    rows = list(csv.DictReader(open(rec.csv_path)))
    assert len(rows) == st["steps"] >= 16
    assert {"t_us", "pred", "confidence", "energy_uJ", "p:0", "p:9"} <= set(rows[0])
    assert any(k.startswith("rate:stage0.block0") for k in rows[0])
    assert sum(float(r["energy_uJ"]) for r in rows) == pytest.approx(pipe.energy.total_uJ, rel=1e-3)


def test_controls_from_another_thread_pause_step_seek_mask_swap(tmp_path):
    other = other_checkpoint(tmp_path / "other.pt")
    pipe = Pipeline(DEMO_RECORDING, DEMO_MODEL, speed=1.0, max_steps=8)
    pipe.start()
    try:
        wait_for(lambda: pipe.steps > 3)
        pipe.pause()
        wait_for(lambda: pipe.paused)
        time.sleep(0.15)
        n = pipe.slices_in
        time.sleep(0.3)
        assert pipe.slices_in == n  # paused: nothing read
        pipe.step()
        wait_for(lambda: pipe.slices_in == n + 1)
        pipe.seek(2_000_000)  # 5.5 s of the recording left for the swaps below, on a busy machine too
        pipe.play()
        recs = []
        wait_for(lambda: recs.extend(pipe.drain()) or any(r.kind == "reset" and r.why == "seek" for r in recs))
        at = [r.kind for r in recs].index("reset")
        # a step after the seek (the last record drained need not be one: a decision's steps and its decision
        # are posted together)
        wait_for(lambda: recs.extend(pipe.drain()) or any(r.kind == "step" for r in recs[at:]))
        after = [r for r in recs[at:] if r.kind == "step"]
        assert after[0].t_us >= 2_000_000 and after[0].step > 0
        pipe.set(mask_ratio=0.5)
        wait_for(lambda: any(r.kind == "step" and r.mask_ratio == 0.5 for r in pipe.drain()))
        assert pipe.lm.runner.mask_ratios["q"] == 0.5
        pipe.load_model(other)
        wait_for(lambda: pipe.lm.path == str(other))
        from evstream.live import live_mode

        assert pipe.modes == pipe.lm.model.modes and pipe.lm.mode == live_mode(pipe.modes)
        old = pipe.lm
        pipe.set_mode(pipe.modes[-1])  # whatever modes the model declares: reloads with that conversion
        wait_for(lambda: pipe.lm is not old)
        assert pipe.lm.mode == pipe.modes[-1] and pipe.lm.path == str(other)
        pipe.load_model(DEMO_MODEL.parent / "missing.pt")  # a bad swap keeps the running model
        wait_for(lambda: any(r.kind == "error" and "missing.pt" in r.text for r in pipe.drain()))
        assert pipe.lm.path == str(other) and pipe.state == "playing"
    finally:
        pipe.stop()
    assert not any(t.is_alive() for t in pipe._threads)


def test_bad_inputs_one_line(tmp_path):
    ckpt = small_checkpoint(tmp_path / "small.pt")
    with pytest.raises(CheckpointError, match="trained on 16x16 events but the source is 34x34"):
        Pipeline(DEMO_RECORDING, ckpt)
    with pytest.raises(EvstreamError, match="no such file"):
        Pipeline(tmp_path / "none.aedat4", DEMO_MODEL)
    bad = tmp_path / "truncated.aedat4"
    data = DEMO_RECORDING.read_bytes()
    bad.write_bytes(data[:len(data) // 2])
    pipe = Pipeline(bad, DEMO_MODEL, speed=None)  # it opens: the intact first half plays, then the error
    with pytest.raises(EvstreamError) as info:
        pipe.run()
    assert "\n" not in str(info.value) and "truncated.aedat4" in str(info.value)
    assert pipe.decisions > 0


def test_outbox_and_monitors_stay_bounded():
    pipe = Pipeline(DEMO_RECORDING, DEMO_MODEL, speed=None, outbox=64)
    pipe.start()  # nobody drains
    try:
        wait_for(lambda: pipe.steps > 150, timeout=30)
    finally:
        pipe.stop()
    assert len(pipe._out) == 64 and pipe.outbox_overflow > 0
    assert len(pipe.spikes.recent()) <= pipe.spikes.history


def test_cli_run_json_lines(capsys):
    from evstream.cli import main

    rc = main(["run", str(DEMO_RECORDING), "--json-lines", "--max-decisions", "2", "--max-steps", "3",
               "--labels", str(DEMO_RECORDING.with_name("demo_digits.labels.csv"))])
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert rc == 0 and len(lines) == 2
    recs = [json.loads(s) for s in lines]
    assert [r["decision"] for r in recs] == [0, 1] and all(r["timesteps"] == 3 for r in recs)
    assert recs[0]["label"] == "2"  # the first digit of the demo
    assert "2 decisions" in out.err and "dropped" in out.err


def test_cli_run_bad_model_exit_2(tmp_path, capsys):
    from evstream.cli import main

    rc = main(["run", str(DEMO_RECORDING), "--model", str(small_checkpoint(tmp_path / "s.pt"))])
    err = capsys.readouterr().err
    assert rc == 2 and "16x16" in err and len(err.strip().splitlines()) == 1


def test_cli_run_filters_say_what_they_removed(tmp_path, capsys):
    from evstream.cli import main

    summary = tmp_path / "s.json"
    rc = main(["run", str(DEMO_RECORDING), "--max-decisions", "2", "--max-steps", "2", "--filters", "refractory=5000",
               "--summary-json", str(summary)])
    out = capsys.readouterr().out
    c = json.loads(summary.read_text())["filters"]
    assert rc == 0 and c["in"] > c["refractory"] > 0 and set(c) == {"in", "refractory"}
    assert f"filters: {c['in']} events in, refractory removed {c['refractory']}" in out


def test_mst_decisions_leave_the_burn_in_out_by_default():
    from evstream.live import LiveConfig

    runs = {}
    for burn in (None, 0.0):
        steps, decisions = [], []
        pipe = Pipeline(DEMO_RECORDING, DEMO_MODEL, speed=None, mode="mst", max_steps=8, burn_in=burn,
                        smooth=0.0, switch_margin=0.0)
        pipe.run(on_step=steps.append, on_decision=decisions.append, max_decisions=1)
        runs[burn] = (steps, decisions)
    (steps, decisions), (steps0, decisions0) = runs[None], runs[0.0]
    assert LiveConfig().burn_in_for(pipe.lm) == 0.5 and decisions[0].timesteps == 8
    # the same 8 steps (spikes, energy) with and without; the answer differs: steps 5-8 only
    assert [s.total_spikes for s in steps] == [s.total_spikes for s in steps0]
    assert decisions[0].energy_uJ == pytest.approx(decisions0[0].energy_uJ)
    assert np.allclose(steps[3].probs, steps0[3].probs, atol=1e-5)
    assert not np.allclose(steps[-1].probs, steps0[-1].probs, atol=1e-4)
    with pytest.raises(Exception, match="burn_in"):
        LiveConfig(burn_in=1.0)


def test_the_summary_says_when_the_first_decision_came_since_the_process_started(tmp_path):
    """Issue 16 ("first result within 3 s of start"): the summary's ``first_decision_s`` is the process's age at its
    first decision — interpreter start and imports included, as a user waits — so it lies between the process's
    own work and the wall time of the whole command."""
    import subprocess
    import sys

    from evstream.live.stepper import process_age_s

    if process_age_s() is None:
        pytest.skip("process_age_s needs Linux's /proc")
    code = "import time; from evstream.live.stepper import process_age_s; time.sleep(0.5); print(process_age_s())"
    t0 = time.perf_counter()
    age = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout)
    assert 0.5 <= age <= time.perf_counter() - t0 + 0.05
    summary = tmp_path / "s.json"
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "evstream", "run", str(DEMO_RECORDING), "--max-decisions", "1",
                        "--summary-json", str(summary)], capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr[-2000:]
    first = json.loads(summary.read_text())["first_decision_s"]
    assert 0 < first <= wall + 0.05
