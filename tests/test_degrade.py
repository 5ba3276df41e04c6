"""The load governor (evstream/live/degrade.py) as a pure object, and the live path showing its choices."""

from __future__ import annotations

from evstream.live.degrade import LEVELS, LoadGovernor


def test_stays_undegraded_while_the_work_fits():
    gov = LoadGovernor(steps=4)
    for _ in range(50):
        level = gov.observe(busy_s=0.010, period_s=0.050)
    assert level.index == 0 and level.steps == 4 and level.every == 1 and not level.degraded
    assert gov.changes == 0


def test_unpaced_streams_never_degrade():
    gov = LoadGovernor(steps=4)
    for _ in range(20):
        level = gov.observe(busy_s=1.0, period_s=None)
    assert level.index == 0


def test_steps_down_until_the_work_fits_then_holds():
    """A decision costs 120 ms of model time every 50 ms: load 2.4. Each level halves the work, so the
    governor goes down until the load is under ``high`` and stays there (no oscillation)."""
    gov = LoadGovernor(steps=4)
    cost_per_step = 0.030
    seen = []
    for _ in range(60):
        lv = gov.level
        seen.append(lv.index)
        gov.observe(busy_s=cost_per_step * lv.steps, period_s=0.050 * lv.every)
    final = gov.level
    load = cost_per_step * final.steps / (0.050 * final.every)
    assert final.degraded and load <= 0.8
    assert seen == sorted(seen)  # only ever down here
    assert len(set(seen[-30:])) == 1  # settled
    assert final.reason.startswith("load")
    # the first level halves the decision rate and keeps T; the next halves T
    assert LEVELS[1] == (2, 1.0) and gov._make(1, "").steps == 4 and gov._make(2, "").steps == 2


def test_backlog_steps_down_at_once():
    gov = LoadGovernor(steps=4)
    level = gov.observe(busy_s=0.001, period_s=0.050, backlog_s=0.080)
    assert level.index == 1 and level.reason.startswith("backlog")


def test_recovers_when_the_machine_is_free_again():
    gov = LoadGovernor(steps=4, patience=5)
    for _ in range(10):
        gov.observe(busy_s=0.2, period_s=0.050 * gov.level.every)
    deep = gov.level.index
    assert deep >= 2
    for _ in range(200):
        lv = gov.level
        gov.observe(busy_s=0.002 * lv.steps, period_s=0.050 * lv.every)
    assert gov.level.index == 0 and gov.level.reason.startswith("recovered")
    assert gov.deepest == deep


def test_min_steps_and_deepest_level():
    gov = LoadGovernor(steps=4, min_steps=3)
    for _ in range(100):
        gov.observe(busy_s=10.0, period_s=0.050 * gov.level.every)
    assert gov.level.index == len(LEVELS) - 1
    assert gov.level.steps == 3  # never below min_steps
    assert gov.level.to_dict()["level"] == len(LEVELS) - 1
