"""Store a checkpoint's live decision settings (``meta["live"]``: timesteps per decision and burn-in per mode),
which `evstream run` / `gui` / `eval-stream` use where no flag says otherwise (`LiveConfig.steps_for`,
`LiveConfig.burn_in_for`). The file is rewritten atomically; weights and the rest of the meta are untouched.

    python scripts/set_live.py models/mst-nmnist.pt --steps mst=64,ecmt=5 --burn-in mst=0.5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def per_mode(spec: str, kind):
    out = {}
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        mode, _, value = item.partition("=")
        try:
            out[mode.strip()] = kind(value)
        except ValueError:
            raise SystemExit(f"set_live: {item!r} is not MODE={kind.__name__}") from None
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--steps", default="", help="timesteps per decision per mode, e.g. mst=64,ecmt=5")
    ap.add_argument("--burn-in", default="", help="burn-in fraction per mode, e.g. mst=0.5")
    args = ap.parse_args(argv)
    from evstream.errors import EvstreamError
    from evstream.snn import load_checkpoint, save_checkpoint

    try:
        model, meta = load_checkpoint(args.checkpoint)
    except EvstreamError as exc:
        raise SystemExit(f"set_live: {exc}") from None
    live = dict(meta.get("live") or {})
    steps, burn = per_mode(args.steps, int), per_mode(args.burn_in, float)
    for mode in (*steps, *burn):
        if mode not in model.modes:
            raise SystemExit(f"set_live: {args.checkpoint}: no mode {mode!r} (modes: {', '.join(model.modes)})")
    if any(v < 1 for v in steps.values()) or any(not 0 <= v < 1 for v in burn.values()):
        raise SystemExit("set_live: steps must be >= 1 and burn-in in [0, 1)")
    live["steps"] = {**(live.get("steps") or {}), **steps}
    live["burn_in"] = {**(live.get("burn_in") or {}), **burn}
    meta["live"] = live
    save_checkpoint(args.checkpoint, model, meta)
    print(f"{args.checkpoint}: live {live}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
