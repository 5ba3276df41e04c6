"""The live path's small parts on their own: the decision policy, the pacer, the reader's commands (with a
fake source, no model, no threads), the slice queue and the typed records."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from evstream.events import EVENT_DTYPE, EventChunk
from evstream.live import DecisionRecord, LiveConfig, StepRecord, decision_json
from evstream.live.policy import Decision, DecisionPolicy
from evstream.live.queue import END, Reset, SliceQueue
from evstream.live.reader import Pacer, Pause, Play, Reader, Seek, SetSlicing, SetSpeed, Step
from evstream.live.records import ErrorRecord, StatusRecord
from evstream.monitors import LatencyStats
from evstream.slicing import EventSlice
from evstream.stream import Source


def out(conf):
    return SimpleNamespace(confidence=torch.tensor([conf]))


# ------------------------------------------------------------------------------------------ the policy
def test_policy_decides_after_max_steps():
    p = DecisionPolicy(early_exit=None, max_steps=3)
    assert [p.observe(out(0.99)) for _ in range(2)] == [None, None]
    assert p.observe(out(0.99)) == Decision("max_steps", skip_rest=False) and p.steps == 3
    p.reset()
    assert p.steps == 0 and p.observe(out(0.1)) is None


def test_policy_early_exit_waits_for_min_steps():
    p = DecisionPolicy(early_exit=0.8, min_steps=2, max_steps=10)
    assert p.observe(out(0.9)) is None  # confident, but only one step
    assert p.observe(out(0.5)) is None  # two steps, not confident
    assert p.observe(out(0.8)) == Decision("confident", skip_rest=True)  # reaching the threshold counts


def test_policy_takes_new_settings_and_keeps_its_count():
    p = LiveConfig(max_steps=5).make_policy()
    assert isinstance(p, DecisionPolicy) and p.max_steps == 5 and p.early_exit is None
    p.observe(out(0.2))
    p.observe(out(0.2))
    p.apply(LiveConfig(max_steps=3, early_exit=0.5))
    assert p.steps == 2 and p.observe(out(0.2)).reason == "max_steps"


def test_config_names_the_policy_class():
    class Always(DecisionPolicy):
        def observe(self, o):
            self.steps += 1
            return Decision("always")

    assert isinstance(LiveConfig(policy=Always).make_policy(), Always)


def test_config_normalises_and_validates():
    assert LiveConfig(speed=0).speed is None and LiveConfig(slice_ms=5).slice_ms == 5.0
    from evstream.errors import EvstreamError

    with pytest.raises(EvstreamError, match="unknown view"):
        LiveConfig(view="nope")


# ------------------------------------------------------------------------------------------ the pacer
def test_pacer_releases_at_speed_from_its_anchor():
    p = Pacer()
    assert p.delay(1_000_000, 1.0, now=10.0) == 0.0  # the first release anchors
    assert p.delay(1_500_000, 1.0, now=10.2) == pytest.approx(0.3)
    assert p.delay(1_500_000, 2.0, now=10.0) == pytest.approx(0.25)
    p.reset()
    assert p.delay(5_000_000, 1.0, now=20.0) == 0.0 and p.anchor == (20.0, 5_000_000)
    p.anchor_at(0, now=0.0)  # anchored already: unchanged
    assert p.anchor == (20.0, 5_000_000)


# ------------------------------------------------------------------------------------------ the queue
def sl(t0, n=1):
    ev = np.zeros(n, EVENT_DTYPE)
    ev["t"] = t0
    return EventSlice(ev, t0, t0 + 10)


def test_queue_drops_oldest_slice_never_a_marker():
    q = SliceQueue(2, threading.Event())
    q.put(Reset("seek"), block=False)
    q.put(sl(0), block=False)
    q.put(sl(10), block=False)  # full: the oldest slice goes, the marker stays
    q.put(END, block=False)  # markers are never dropped, even over the limit
    got = [q.get(0.01) for _ in range(q.qsize())]
    assert q.dropped == 1 and isinstance(got[0], Reset) and got[1].t_start == 10 and got[2] is END


def test_queue_blocking_put_gives_up_when_stopped():
    stop = threading.Event()
    q = SliceQueue(1, stop)
    assert q.put(sl(0), block=True)
    stop.set()
    assert q.put(sl(10), block=True) is False and q.dropped == 0


def test_queue_resize_sheds_the_oldest_slices_at_the_next_put():
    q = SliceQueue(4, threading.Event())
    for t in range(4):
        q.put(sl(10 * t), block=False)
    q.resize(2)
    q.put(sl(40), block=False)
    assert q.maxsize == 2 and q.dropped == 3 and [s.t_start for s in drain(q)] == [30, 40]


def test_queue_holds_two_decision_periods_by_default():
    mst, ecmt = SimpleNamespace(mode="mst"), SimpleNamespace(mode="ecmt")
    cfg = LiveConfig()
    assert cfg.queue_slices(mst) == 40  # a decision every 200 ms of 10 ms slices: 2 periods
    assert cfg.queue_slices(ecmt) == 16  # 2 x 50 ms is less than the floor
    assert LiveConfig(slice_ms=20).queue_slices(mst) == 20
    assert LiveConfig(decide_every_ms=500).queue_slices(ecmt) == 100
    assert LiveConfig(max_queue=4).queue_slices(mst) == 4  # set: as set
    assert LiveConfig(slice_events=1000).queue_slices(mst) == 16 == LiveConfig(state="carry").queue_slices(mst)


# ------------------------------------------------------------------------------------------ the reader
class FakeRecording(Source):
    """Ten 10 ms chunks of 5 events each (t = 0..99 ms), seekable; ``loops`` replays once more."""

    is_live = False
    can_seek = True
    sensor_size = (8, 8)
    duration_us = 99_000

    def __init__(self, loops=False):
        self.loops, self.position_us, self._from = loops, 0, 0

    def seek(self, t_us):
        self._from = t_us

    def __iter__(self):
        for _ in range(2 if self.loops else 1):
            for k in range(10):
                ev = np.zeros(5, EVENT_DTYPE)
                ev["t"] = k * 10_000 + np.arange(5) * 2_000
                if ev["t"][-1] < self._from:
                    continue
                self.position_us = int(ev["t"][-1])
                yield EventChunk(ev, self.sensor_size, {})


def make_reader(source, **cfg):
    config = {"cfg": LiveConfig(speed=None, **cfg)}
    records = []
    stop = threading.Event()

    def update(**changes):
        import dataclasses

        config["cfg"] = dataclasses.replace(config["cfg"], **changes)

    view = SimpleNamespace(update=lambda ev, t: None, reset=lambda: records.append("view reset"))
    q = SliceQueue(1000, stop)
    r = Reader(source, q, view, config=lambda: config["cfg"], update=update, recorder=lambda: None,
               emit=records.append, latency=LatencyStats(), stop=stop, wake=threading.Event(), spec="fake")
    return r, q, records, config


def drain(q):
    return [q.get(0.01) for _ in range(q.qsize())]


def pump(r, n=50):
    """Run the reader loop's body ``n`` times (no thread)."""
    while r._cmds:
        r._apply(r._cmds.popleft())
    for _ in range(n):
        while r._cmds:
            r._apply(r._cmds.popleft())
        if r._pending:
            r._release()
        elif not r._ended and not (r.paused and not r._steps_wanted):
            r._read_chunk()


def test_reader_cuts_whole_slices_and_ends():
    r, q, records, _ = make_reader(FakeRecording())
    pump(r)
    items = drain(q)
    assert items[-1] is END and r.state == "ended" and isinstance(records[-1], StatusRecord)
    slices = items[:-1]
    # whole 10 ms windows; the last, still open window is not a slice (the pipeline's slicer keeps none)
    assert [s.t_start for s in slices] == list(range(0, 90_000, 10_000))
    assert sum(len(s) for s in slices) == 45 and r.slices_in == 9 and r.position_us == 98_000


def test_reader_pause_and_step_release_one_slice_at_a_time():
    r, q, _, _ = make_reader(FakeRecording())
    r.send(Pause())
    pump(r, 5)
    assert r.paused and r.state == "paused" and q.qsize() == 0
    r.send(Step(2))
    pump(r, 5)
    assert [s.t_start for s in drain(q)] == [0, 10_000]


def test_reader_seek_flushes_and_marks_a_reset():
    r, q, records, _ = make_reader(FakeRecording())
    pump(r, 3)
    r.send(Seek(50_000))
    pump(r, 0)  # just the command
    items = drain(q)
    assert items == [Reset("seek")] and r.position_us == 50_000 and "view reset" in records
    pump(r)
    assert drain(q)[0].t_start == 50_000


def test_reader_play_after_the_end_restarts_a_recording():
    r, q, _, _ = make_reader(FakeRecording())
    pump(r)
    drain(q)
    r.send(Play())
    pump(r, 2)
    assert r.state == "playing" and drain(q)[0] == Reset("seek")


def test_reader_detects_a_loop_and_new_slicing():
    r, q, _, config = make_reader(FakeRecording(loops=True))
    pump(r, 30)
    assert Reset("loop") in drain(q)
    r.send(SetSlicing(slice_events=3))
    r.send(SetSpeed(2.0))
    pump(r, 1)
    assert drain(q) == [Reset("slicing")] and config["cfg"].slice_events == 3 and config["cfg"].speed == 2.0


def test_live_stream_that_ends_is_an_error_record():
    src = FakeRecording()
    src.is_live = True
    r, q, records, _ = make_reader(src)
    pump(r)
    assert isinstance(records[-1], ErrorRecord) and "the live stream ended" in records[-1].text
    r.send(Play())  # issue 17 (2): Play does not claim a stream that is gone is playing
    pump(r, 1)
    assert r.state == "ended" and not r.paused


def test_a_dropped_network_stream_is_reconnecting_not_an_error():
    """Issue 17 (2): the source's news: a drop is status + state "reconnecting", only giving up is an error;
    a DV stream is retried until the pipeline stops (give_up_s None) unless the config says otherwise."""
    from types import SimpleNamespace

    from evstream.live import LiveConfig, Pipeline

    p = Pipeline.__new__(Pipeline)
    p._out, p.outbox_overflow = __import__("collections").deque(maxlen=10), 0
    p.reader = SimpleNamespace(state="playing")
    p.spec, p.config = "tcp://127.0.0.1:1", LiveConfig()
    assert p._source_options()["give_up_s"] is None
    p.config = LiveConfig(give_up_s=60)
    assert p._source_options()["give_up_s"] == 60
    p._source_status("stream tcp://127.0.0.1:1 dropped; reconnecting")
    assert p.state == "reconnecting" and p.drain()[-1].kind == "status"
    p._source_status("reconnected to tcp://127.0.0.1:1 (reconnect #1)")
    assert p.state == "playing" and p.drain()[-1].kind == "status"
    p._source_status("gave up on tcp://127.0.0.1:1 after 60.0 s")
    assert p.link == "lost" and p.drain()[-1].kind == "error"


# ------------------------------------------------------------------------------------------ records
def test_decision_record_json_keeps_the_old_fields_in_order_with_the_window():
    rec = DecisionRecord(3, 120_000, 100_000, "7", 7, 0.91234567, 0.5, 12, "max_steps", 10.5, 45.0, 1234,
                         [["7", 0.91234567], ["1", 0.05]], 0.0, "ecmt", 0)
    d = json.loads(decision_json(rec))
    assert list(d) == ["decision", "t_us", "window_us", "class", "index", "confidence", "margin", "timesteps", "reason",
                       "energy_uJ", "ann_energy_uJ", "spikes", "top", "mask_ratio", "mode", "dropped_slices"]
    assert d["class"] == "7" and d["confidence"] == 0.912346 and d["window_us"] == 100_000
    undecided = json.loads(decision_json(DecisionRecord(**{**rec.__dict__, "class_name": None, "index": None})))
    assert undecided["class"] is None
    with_latency = json.loads(decision_json(DecisionRecord(**{**rec.__dict__, "latency_ms": 1.5}), label="7"))
    assert list(with_latency)[-2:] == ["latency_ms", "label"] and with_latency["label"] == "7"
    assert rec.to_dict()["kind"] == "decision"


def test_step_record_dict():
    r = StepRecord(1.0, 10, 1, 0, 1, 2, 0.5, 0.1, np.ones(3) / 3, {"a": 1}, [0.1], 1, 0.0, 0.0, 0.0, 0.0, 0.0, "mst")
    d = r.to_dict()
    assert d["kind"] == "step" and list(d)[:3] == ["kind", "wall_time", "t_us"] and d["mode"] == "mst"


def test_smoother_hysteresis_and_undecided():
    import numpy as np

    from evstream.live.policy import DecisionSmoother

    def p(k, v):
        out = np.full(4, (1 - v) / 3)
        out[k] = v
        return out

    sm = DecisionSmoother(smooth=0.0, switch_margin=0.2)
    assert sm.update(p(1, 0.7)) == (1, pytest.approx(0.7))
    assert sm.update(p(2, 0.35))[0] == 1  # 0.35 vs 0.22: not convincingly better
    assert sm.update(p(2, 0.6))[0] == 2  # 0.6 vs 0.133: switch
    sm = DecisionSmoother(smooth=0.5)
    sm.update(p(0, 1.0))
    idx, conf = sm.update(p(3, 1.0))  # the mean of the two: a tie keeps the first
    assert conf == pytest.approx(0.5)
    assert sm.update(p(3, 1.0)) == (3, pytest.approx(0.75))
    # the weight is per 50 ms of stream time: decisions 200 ms apart keep 0.5 ** 4 of the older answer
    sm = DecisionSmoother(smooth=0.5)
    sm.update(p(0, 1.0), t_us=50_000)
    assert sm.update(p(3, 1.0), t_us=100_000)[1] == pytest.approx(0.5)
    assert sm.update(p(0, 1.0), t_us=300_000) == (0, pytest.approx(1 - 0.5 ** 4 * 0.5))
    sm = DecisionSmoother(min_confidence=0.5)
    assert sm.update(p(2, 0.4)) == (None, pytest.approx(0.4))
    assert sm.update(p(2, 0.9))[0] == 2
    sm.reset()
    assert sm.mean is None and sm.current is None


def test_reader_filters_before_slicing_count_and_change_live():
    from evstream.live.reader import SetFilters

    # every event of FakeRecording is at pixel (0, 0), 2 ms after the one before
    r, q, _, config = make_reader(FakeRecording(), filters="refractory=3000")
    pump(r)
    kept = sum(len(s) for s in drain(q)[:-1])  # the one kept event (t=0) opens a window no later event closes
    assert kept == 0 and r.filters.counts() == {"in": 50, "refractory": 49}
    r.send(SetFilters((("refractory", 1000),)))  # 2 ms apart: nothing falls within 1 ms
    r.send(Seek(0))
    pump(r)
    assert config["cfg"].filters == (("refractory", 1000),)
    assert sum(len(s) for s in drain(q) if hasattr(s, "events")) == 45 and r.filters.counts()["refractory"] == 0
    r.send(SetFilters(("ba",)))  # no neighbour ever fires: the background-activity filter drops everything
    r.send(Seek(0))
    pump(r)
    assert sum(len(s) for s in drain(q) if hasattr(s, "events")) == 0
    assert r.filters.counts() == {"in": 50, "ba": 50}
