"""``evstream calibrate MODEL.pt``: ECMT's thresholds from the checkpoint's own training split."""

from __future__ import annotations

HELP = "calibrate a checkpoint's ECMT thresholds on its training split (stored in the checkpoint)"


def add_arguments(p):  # no torch import here: the parser is built for every command
    p.add_argument("model")
    p.add_argument("--out", default=None, help="write here instead of updating MODEL")
    p.add_argument("--limit", type=int, default=300, help="training samples (0: all)")
    p.add_argument("--percentile", type=float, default=99.0,
                   help="the top level is this percentile of a layer's ANN activations (default 99)")
    p.add_argument("--levels", type=int, default=8, help="threshold levels per sign (default 8)")
    p.add_argument("--root", default=None, help="dataset root (default: the one in the checkpoint)")
    p.add_argument("--labels", default=None)


def run(args) -> int:
    from evstream.calibrate import calibrate_checkpoint

    cal = calibrate_checkpoint(args.model, args.out, args.limit, args.percentile, args.levels, args.root,
                               args.labels)
    print(f"calibrated {len(cal['theta'])} neuron layers on {cal['samples']} training samples "
          f"(p{cal['percentile']:g}, {cal['levels']} levels) -> {args.out or args.model}")
    return 0
