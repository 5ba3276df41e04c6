"""When the live pipeline commits to a decision: a small pure object, fed one SNN step at a time.

    policy = DecisionPolicy(early_exit=0.9, min_steps=2, max_steps=32)
    d = policy.observe(out)         # out: the runner's StepResult of this step (batch 1)
    if d is not None:               # Decision(reason, skip_rest): decide now
        ...                         # and skip the rest of this slice's steps when d.skip_rest
    policy.reset()                  # after a decision, a seek, a loop, new slicing

The rule (the one the pipeline has always used): the class scores are averaged over the steps of the
current decision (the runner's running output); a decision is made when the confidence (the top softmax
probability of that mean, ``out.confidence``) reaches ``early_exit`` after at least ``min_steps`` steps
(reason ``"confident"``: the rest of the slice's steps are skipped), or after ``max_steps`` steps (reason
``"max_steps"``). ``LiveConfig.policy`` names the class the pipeline builds (``from_config``) and updates
(``apply``) when the settings change, so another rule is one class away.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    reason: str  # "confident", "max_steps" (or "end": the stream ended mid-decision, said by the pipeline)
    skip_rest: bool = False  # skip the remaining steps of the current slice


class DecisionPolicy:
    """Early exit by confidence, else a fixed number of steps. ``steps``: steps observed since the last
    :meth:`reset` (the current decision's timesteps)."""

    def __init__(self, early_exit: float | None = None, min_steps: int = 1, max_steps: int = 32):
        self.early_exit, self.min_steps, self.max_steps = early_exit, int(min_steps), int(max_steps)
        self.steps = 0

    @classmethod
    def from_config(cls, config) -> "DecisionPolicy":
        policy = cls()
        policy.apply(config)
        return policy

    def apply(self, config) -> None:
        """Take the rule's settings from a :class:`~evstream.live.config.LiveConfig` (the step count stays)."""
        self.early_exit, self.min_steps = config.early_exit, int(config.min_steps)
        self.max_steps = int(config.max_steps or 32)  # state "reset": set per decision by the stepper

    def reset(self) -> None:
        self.steps = 0

    def observe(self, out) -> Decision | None:
        """One more step of the current decision; ``out.confidence[0]`` is its confidence."""
        self.steps += 1
        if self.early_exit is not None and float(out.confidence[0]) >= self.early_exit \
                and self.steps >= self.min_steps:
            return Decision("confident", skip_rest=True)
        if self.steps >= self.max_steps:
            return Decision("max_steps")
        return None


SMOOTH_PER_MS = 50.0  # ``smooth`` is the weight the previous mean keeps per this much stream time


class DecisionSmoother:
    """What the pipeline says after each window's answer: an exponential mean of the class probabilities
    over successive decisions (``smooth``: the weight the previous mean keeps after 50 ms of stream time —
    ``smooth ** (dt / 50 ms)`` for decisions ``dt`` apart, so decisions 200 ms apart (mode mst) or thinned
    by the load governor are not held back by an answer about an older scene; 0 = no smoothing) and a
    switch rule with hysteresis: the announced class changes only when another class's smoothed probability
    exceeds the current one's by ``switch_margin``. Below ``min_confidence`` the answer is "undecided"
    (``None``; reported and counted as such). ``reset()`` on a seek, loop or new model.

        sm = DecisionSmoother(smooth=0.5, switch_margin=0.1)
        idx, conf = sm.update(probs)        # probs: this window's class probabilities (numpy, sums to 1)
    """

    def __init__(self, smooth: float = 0.0, switch_margin: float = 0.0, min_confidence: float = 0.0):
        self.smooth, self.switch_margin, self.min_confidence = float(smooth), float(switch_margin), float(min_confidence)
        self.reset()

    @classmethod
    def from_config(cls, config) -> "DecisionSmoother":
        return cls(config.smooth, config.switch_margin, config.min_confidence)

    def reset(self) -> None:
        self.mean = None
        self.current: int | None = None
        self._t_us = None

    def update(self, probs, t_us: int | None = None) -> tuple[int | None, float]:
        """The announced class and its smoothed probability after this window's ``probs``; ``t_us`` the
        decision's stream time (None: the previous one's + 50 ms)."""
        import numpy as np

        p = np.asarray(probs, np.float64)
        w = self.smooth
        if t_us is not None:
            if self._t_us is not None and w > 0:
                w = w ** (max(0, int(t_us) - self._t_us) / (SMOOTH_PER_MS * 1e3))
            self._t_us = int(t_us)
        self.mean = p if self.mean is None or w <= 0 else w * self.mean + (1 - w) * p
        best = int(self.mean.argmax())
        cur = self.current
        if cur is not None and best != cur and self.mean[best] - self.mean[cur] < self.switch_margin:
            best = cur  # not convincingly better: keep the announced class
        if self.mean[best] < self.min_confidence:
            self.current = None
            return None, float(self.mean[best])
        self.current = best
        return best, float(self.mean[best])
