"""Neuromorphic augmentations that keep the label (pure functions on event arrays, seeded generator):
translation, event drop, polarity-preserving noise, and the composition used for training."""

from __future__ import annotations

import numpy as np

from evstream.events import EVENT_DTYPE


def translate(ev: np.ndarray, dx: int, dy: int, sensor_size) -> np.ndarray:
    """Shift every event by (dx, dy) pixels; events leaving the sensor are dropped."""
    w, h = sensor_size
    x = ev["x"].astype(np.int32) + dx
    y = ev["y"].astype(np.int32) + dy
    keep = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    out = ev[keep].copy()
    out["x"], out["y"] = x[keep], y[keep]
    return out


def drop_events(ev: np.ndarray, ratio: float, rng: np.random.Generator) -> np.ndarray:
    return ev[rng.random(len(ev)) >= ratio]


def add_noise(ev: np.ndarray, n: int, sensor_size, rng: np.random.Generator) -> np.ndarray:
    """``n`` random events within the sample's time span, each polarity as often as in the sample."""
    if n <= 0 or len(ev) == 0:
        return ev
    w, h = sensor_size
    noise = np.empty(n, EVENT_DTYPE)
    noise["t"] = rng.integers(ev["t"][0], ev["t"][-1] + 1, n)
    noise["x"] = rng.integers(0, w, n)
    noise["y"] = rng.integers(0, h, n)
    noise["p"] = rng.random(n) < ev["p"].mean()
    out = np.concatenate([ev, noise])
    return out[np.argsort(out["t"], kind="stable")]


def augment(ev: np.ndarray, sensor_size, rng: np.random.Generator, max_shift: int = 3, drop: float = 0.2,
            noise_fraction: float = 0.02) -> np.ndarray:
    """Random translation (±max_shift px), random event drop (up to ``drop``), polarity-preserving noise."""
    dx, dy = rng.integers(-max_shift, max_shift + 1, 2)
    ev = translate(ev, int(dx), int(dy), sensor_size)
    ev = drop_events(ev, rng.uniform(0, drop), rng)
    return add_noise(ev, int(noise_fraction * len(ev)), sensor_size, rng)
