"""When the machine is too slow for the live rule: degrade visibly, never lag (issue 16). A small pure object,
fed the model thread's work per decision, that chooses how much work the next decisions do.

    gov = LoadGovernor(steps=4)
    level = gov.observe(busy_s=0.031, period_s=0.050, backlog=3)   # after each decision
    level.steps, level.every                                         # T for the next decisions, decide on every
                                                                     # ``every``-th decision time (1: all)

Levels, from none to most (``LEVELS``): each halves the model's work of the previous one, first by deciding
half as often (a longer period: the same answer per decision, fewer of them), then by half the timesteps
(a cheaper, less accurate decision; ECMT: T = 2 gives 0.93 against 0.95 at T = 4 on the validation split,
docs/model.md), alternately. The load is the model thread's busy time over the wall time it had (the
decision period at the current level, in wall time); above ``high`` (default 0.8), or with a backlog of
queued slices longer than one period, the governor steps down at once; after ``patience`` decisions whose
load would fit one level up below ``low`` (default 0.6 of that level's budget), it steps back up. The
model thread also never decides on a slice while a later decision time is already queued (it skips to
the newest), so a backlog cannot grow: the queue is bounded and work per decision only shrinks.
"""

from __future__ import annotations

from dataclasses import dataclass

# (decide on every n-th decision time, fraction of the timesteps)
LEVELS = ((1, 1.0), (2, 1.0), (2, 0.5), (4, 0.5), (8, 0.5), (8, 0.25), (16, 0.25))


@dataclass(frozen=True)
class Level:
    index: int  # 0: not degraded
    every: int  # decide on every ``every``-th decision time
    steps: int  # timesteps per decision
    reason: str = ""  # why the last change: "load 0.93", "backlog 6", "recovered"

    @property
    def degraded(self) -> bool:
        return self.index > 0

    def to_dict(self) -> dict:
        return {"level": self.index, "every": self.every, "steps": self.steps, "reason": self.reason}


class LoadGovernor:
    """See the module docstring. ``steps``: the undegraded timesteps per decision; ``min_steps`` the fewest
    it may use. ``observe`` after every decision; ``level`` the current choice; ``changes`` how often it
    moved; ``deepest`` the deepest level used."""

    def __init__(self, steps: int, min_steps: int = 1, high: float = 0.8, low: float = 0.6, patience: int = 10,
                 levels=LEVELS):
        self.full_steps, self.min_steps = int(steps), max(1, int(min_steps))
        self.high, self.low, self.patience = float(high), float(low), int(patience)
        self.levels = tuple(levels)
        self.reset()

    def reset(self) -> None:
        self._i, self._calm, self._ema = 0, 0, None
        self.changes = self.deepest = 0
        self.level = self._make(0, "")

    def _make(self, i: int, reason: str) -> Level:
        every, frac = self.levels[i]
        return Level(i, every, max(self.min_steps, round(self.full_steps * frac)), reason)

    def _cost(self, i: int) -> float:
        """Work per unit of wall time at level ``i``, relative to level 0."""
        every, frac = self.levels[i]
        return max(self.min_steps, round(self.full_steps * frac)) / self.full_steps / every

    def observe(self, busy_s: float, period_s: float | None, backlog_s: float = 0.0) -> Level:
        """One decision's model-thread time ``busy_s`` (represent + steps + records), the wall time between
        decisions at the current level ``period_s`` (None: unpaced, nothing to keep up with), the stream
        time already queued behind it ``backlog_s``; returns the level for the next decisions."""
        if not period_s or period_s <= 0:
            return self.level
        load = busy_s / period_s
        self._ema = load if self._ema is None else 0.5 * self._ema + 0.5 * load
        i = self._i
        if (self._ema > self.high or backlog_s > period_s) and i + 1 < len(self.levels):
            why = f"backlog {backlog_s * 1e3:.0f} ms" if backlog_s > period_s else f"load {self._ema:.2f}"
            return self._move(i + 1, why)
        if i > 0 and self._ema * self._cost(i - 1) / self._cost(i) < self.low * self.high:
            self._calm += 1
            if self._calm >= self.patience:
                return self._move(i - 1, f"recovered (load {self._ema:.2f})")
        else:
            self._calm = 0
        return self.level

    def _move(self, i: int, reason: str) -> Level:
        # the load at the new level, expected from the work it does (so a step down counts at once)
        if self._ema is not None:
            self._ema *= self._cost(i) / self._cost(self._i)
        self._i, self._calm = i, 0
        self.changes += 1
        self.deepest = max(self.deepest, i)
        self.level = self._make(i, reason)
        return self.level
