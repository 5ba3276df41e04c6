"""One checkpoint file per model: the weights plus what they need to be used again.

``save_checkpoint(path, model, meta)`` stores ``{"format": "evstream-checkpoint", "version": 1, "arch",
"model_config", "state_dict", "meta"}``; ``meta`` holds the representation config, class names, dataset,
split and metrics. ``load_checkpoint`` reads it with ``torch.load(weights_only=True)`` and turns every
problem (missing, truncated, foreign file, wrong architecture) into one line naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from evstream.errors import CheckpointError

FORMAT = "evstream-checkpoint"


def save_checkpoint(path, model, meta: dict | None = None) -> None:
    path = Path(path)
    obj = {"format": FORMAT, "version": 1, "arch": model.arch, "model_config": model.config.to_dict(),
           "state_dict": model.state_dict(), "meta": dict(meta or {})}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint under the real name


def load_checkpoint(path, map_location="cpu"):
    """(model in eval mode, meta dict) from an evstream checkpoint."""
    from evstream.snn import ARCHS

    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint not found" if not path.exists() else "not a file", where=path)
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise CheckpointError(f"not a readable checkpoint (truncated or foreign file: {first})", where=path) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError("not an evstream checkpoint (no 'evstream-checkpoint' header)", where=path)
    arch = obj.get("arch")
    if arch not in ARCHS:
        raise CheckpointError(f"unknown architecture {arch!r} (known: {', '.join(ARCHS)})", where=path)
    model = ARCHS[arch](obj["model_config"])
    try:
        model.load_state_dict(obj["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"weights do not fit the {arch} config ({str(exc).splitlines()[0][:160]})",
                              where=path) from None
    model.eval()
    model.meta = obj.get("meta", {})  # what a conversion mode or a pipeline may need (representation, calibration)
    return model, model.meta
