"""One checkpoint file per model: the weights plus what they need to be used again.

``save_checkpoint(path, model, meta)`` stores ``{"format": "evstream-checkpoint", "version": 1, "arch",
"model_config", "state_dict", "meta"}``; ``meta`` holds the representation config, class names, dataset,
split and metrics. ``load_checkpoint`` reads it with ``torch.load(weights_only=True)`` and validates its
structure and sizes before building the model (:func:`check_structure`): every problem (missing,
truncated, foreign file, unknown or malformed architecture or config, a config that would allocate too
much, weights that do not fit, a malformed meta) is one :class:`CheckpointError` line naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from evstream.errors import CheckpointError
from evstream.snn.config import check_size
from evstream.snn.registry import model_class

FORMAT = "evstream-checkpoint"


def save_checkpoint(path, model, meta: dict | None = None) -> None:
    path = Path(path)
    obj = {"format": FORMAT, "version": 1, "arch": model.arch, "model_config": model.config.to_dict(),
           "state_dict": model.state_dict(), "meta": dict(meta or {})}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint under the real name


def read_file(path, what: str = "checkpoint", map_location="cpu"):
    """``torch.load(path, weights_only=True)``; a missing, truncated or foreign file is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found" if not path.exists() else "not a file", where=path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"not a readable {what} (truncated or foreign file: {_load_problem(exc)})",
                              where=path) from None


def _load_problem(exc) -> str:
    """What went wrong in ``torch.load``, in words (PyTorch's own text is long and cut by nothing)."""
    text = str(exc)
    if "central directory" in text or "zip archive" in text:
        return "not a complete zip archive"
    if "Weights only load failed" in text or "Unsupported global" in text:
        return "not something torch.load reads without running code"
    first = (text.strip().splitlines() or [type(exc).__name__])[0]
    first = first.split(". ")[0].rstrip(".")
    return f"{first[:200]}" if len(first) <= 200 else f"{type(exc).__name__} while loading it"


def check_state_dict(state, where, key: str = "state_dict") -> dict:
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise CheckpointError(f"'{key}' is not a dict of named tensors", where=where)
    return state


def check_structure(obj, path, need_representation: bool = False):
    """(model class, validated config, state dict, meta) of a loaded checkpoint object, or CheckpointError."""
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError("not an evstream checkpoint (no 'evstream-checkpoint' header)", where=path)
    missing = [k for k in ("arch", "model_config", "state_dict") if k not in obj]
    if missing:
        raise CheckpointError(f"checkpoint lacks {', '.join(missing)}", where=path)
    try:
        family = model_class(obj["arch"])
        config = family.make_config(obj["model_config"])
        check_size(family, config)
    except ValueError as exc:
        raise CheckpointError(str(exc), where=path) from None
    state = check_state_dict(obj["state_dict"], path)
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise CheckpointError(f"'meta' must be a dict, not a {type(meta).__name__}", where=path)
    rep = meta.get("representation")
    if rep is not None and not isinstance(rep, dict):
        raise CheckpointError("meta['representation'] must be a dict", where=path)
    if need_representation and not rep:
        raise CheckpointError("checkpoint has no representation config", where=path)
    return family, config, state, meta


def load_checkpoint(path, map_location="cpu", need_representation: bool = False):
    """(model in eval mode, meta dict) from an evstream checkpoint; ``need_representation``: a checkpoint
    without meta["representation"] is an error too (what evaluation and the live path need)."""
    obj = read_file(path, map_location=map_location)
    family, config, state, meta = check_structure(obj, path, need_representation)
    model = family(config)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"weights do not fit the {family.arch} config ({str(exc).splitlines()[0][:160]})",
                              where=path) from None
    model.eval()
    model.meta = meta  # what a conversion mode or a pipeline may need (representation, calibration)
    return model, model.meta
