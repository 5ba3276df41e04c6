"""Model configs, validated in one place for every architecture.

A family's config is a dataclass deriving from :class:`ModelConfig`; ``Config.make(cfg, presets)`` turns a
plain dict (``{"preset": "tiny", ...overrides}``, as stored in a checkpoint) into one, checking on the way
that it is a dict, that the preset and every field are known, that each field has its preset's type
(ints and sizes positive and at most ``MAX_INT``, floats finite and positive, tuples of such ints), then
the family's own rules (``check``). :func:`model_size` counts a model's parameters and buffers without
allocating them (built on PyTorch's ``meta`` device), so a checkpoint cannot make us allocate terabytes.
Every problem is a ``ValueError`` with one line.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import ClassVar

MAX_INT = 1 << 16  # any one size (channels, image size, depth, levels...)
MAX_TUPLE = 64  # stages per model
MAX_ELEMENTS = 1 << 30  # parameters + buffers of one model (4 GiB in float32)


@dataclass
class ModelConfig:
    FAMILY: ClassVar[str] = ""

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def check(self) -> None:
        """The family's own rules (divisibility, matching lengths); ``ValueError`` when broken."""

    @classmethod
    def make(cls, cfg, presets: dict, default: str = "tiny"):
        """A validated config from ``cfg`` (a dict, an instance, or None for the default preset)."""
        if isinstance(cfg, cls):
            return cfg
        name = cls.FAMILY
        if cfg is None:
            cfg = {}
        if not isinstance(cfg, dict):
            raise ValueError(f"{name} config must be a dict, got {type(cfg).__name__}")
        cfg = dict(cfg)
        preset = cfg.pop("preset", default)
        if not isinstance(preset, str) or preset not in presets:
            raise ValueError(f"unknown {name} preset {preset!r} (known: {', '.join(presets)})")
        unknown = sorted(str(k) for k in set(cfg) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown {name} config fields {unknown}")
        base = presets[preset]
        values = {f.name: _checked(name, f.name, cfg.get(f.name, getattr(base, f.name)), getattr(base, f.name))
                  for f in fields(cls)}
        c = cls(**values)
        c.check()
        return c


def _checked(family: str, key: str, v, like):
    """``v`` as the type of the preset's value ``like``, or ``ValueError``."""
    def bad(what):
        return ValueError(f"{family} config {key}={v!r:.60}: {what}")

    def size(x):
        if isinstance(x, bool) or not isinstance(x, int):
            raise bad("expected an integer")
        if not 1 <= x <= MAX_INT:
            raise bad(f"must be 1..{MAX_INT}")
        return int(x)

    if isinstance(like, bool):
        if not isinstance(v, bool):
            raise bad("expected true or false")
        return v
    if isinstance(like, int):
        return size(v)
    if isinstance(like, float):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise bad("expected a positive number")
        return float(v)
    if isinstance(like, tuple):
        if not isinstance(v, (list, tuple)) or len(v) > MAX_TUPLE:
            raise bad(f"expected a list of at most {MAX_TUPLE} integers")
        return tuple(size(x) for x in v)
    if isinstance(like, str):
        if not isinstance(v, str):
            raise bad("expected a string")
        return v
    return v


def model_size(family: type, config) -> int:
    """Parameters + buffers (elements) of ``family(config)``, counted on the ``meta`` device (nothing is
    allocated); ``ValueError`` when the config does not build."""
    import torch

    try:
        with torch.device("meta"):
            model = family(config)
    except (ValueError, TypeError, RuntimeError, ZeroDivisionError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ValueError(f"the {family.arch} config does not build ({first})") from None
    return sum(t.numel() for t in (*model.parameters(), *model.buffers()))


def check_size(family: type, config) -> None:
    """``ValueError`` when ``family(config)`` would not build or would hold more than ``MAX_ELEMENTS``."""
    n = model_size(family, config)
    if n > MAX_ELEMENTS:
        raise ValueError(f"the {family.arch} config would allocate {n:,} parameters and buffers "
                         f"(more than {MAX_ELEMENTS:,})")
