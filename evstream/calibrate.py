"""``evstream calibrate``: ECMT's base thresholds for a checkpoint, from its own training split.

    calibrate_checkpoint("models/m.pt")     # meta["ecmt"] = evstream.snn.ecmt.calibrate(model, x_train)

The thresholds come from the ANN's activations on training samples (deterministic; see
:func:`evstream.snn.ecmt.calibrate`); the checkpoint is rewritten (atomically) with them in meta["ecmt"].
"""

from __future__ import annotations

from evstream.errors import CheckpointError
from evstream.inputs import eval_inputs
from evstream.snn import load_checkpoint, save_checkpoint
from evstream.snn.ecmt import DEFAULT_LEVELS, DEFAULT_PERCENTILE, calibrate


def calibrate_checkpoint(path, out=None, limit: int = 300, percentile: float = DEFAULT_PERCENTILE,
                         levels: int = DEFAULT_LEVELS, root=None, labels=None) -> dict:
    """Calibrate a checkpoint on its own training split (``meta["dataset"]``, ``meta["split"]``) and store
    the result in its meta["ecmt"] (written to ``out``, default: the checkpoint itself)."""
    model, meta = load_checkpoint(path, need_representation=True)
    if "ecmt" not in getattr(model, "modes", ()):
        raise CheckpointError(f"a {model.arch} model has no ECMT mode to calibrate", where=path)
    ds = meta.get("dataset") or {}
    if not isinstance(ds, dict) or not ds.get("name") or not (root or ds.get("root")):
        raise CheckpointError("no training dataset recorded in meta['dataset'] (give root=)", where=path)
    x, _, _ = eval_inputs(meta, ds["name"], root or ds["root"], labels or ds.get("labels"), "train", limit)
    cal = calibrate(model, x, percentile, levels)
    cal["split"] = "train"
    meta = dict(meta)
    meta["ecmt"] = cal
    save_checkpoint(out or path, model, meta)
    return cal
