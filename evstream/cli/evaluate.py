"""``evstream eval``: the ANN and its SNN views on a dataset; JSON and plot."""

from __future__ import annotations

import os
from pathlib import Path

HELP = "accuracy, spikes and energy of a checkpoint's ANN and SNN views for several T and mask ratios"


def add_arguments(p):
    from evstream.paths import DEMO_MODEL, data_root

    data = data_root()
    p.add_argument("--dataset", default="nmnist", choices=["nmnist", "ncars", "cifar10dvs", "asl"])
    p.add_argument("--root", default=str(data / "nmnist_small" / "train"))
    p.add_argument("--labels", default=None)
    p.add_argument("--model", default=str(DEMO_MODEL))
    p.add_argument("--timesteps", default="8,16,32,64,128")
    p.add_argument("--mask", default="0,0.5,0.75")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--mode", default=None, help="conversion mode(s), comma-separated (default: the model's "
                   "first, e.g. mst); e.g. mst,ecmt")
    p.add_argument("--split", default=None, choices=["val", "train", "test", "all"],
                   help="val: the checkpoint's validation split; default: the dataset's test split where it has "
                   "one, else every labelled file")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--json", default=None)
    p.add_argument("--plot", default=None)
    p.add_argument("--cache", default=None)
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes decoding into the cache and building the inputs (default: the machine's cores)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--no-progress", dest="progress", action="store_false")


def run(args) -> int:
    from evstream import distributed as dist
    from evstream.cli.train import default_labels
    from evstream.datasets import default_split
    from evstream.evaluate import EvalConfig, evaluate, write

    labels = default_labels(args.dataset, args.root, args.labels)
    split = args.split
    if split is None:
        split = default_split(args.dataset, labels)
        if int(os.environ.get("RANK", "0")) == 0:
            why = ("the dataset's test split" if split == "test" else
                   "every labelled file: this layout has no test split (--split val: the checkpoint's validation split)")
            print(f"evaluating on split '{split}' ({why})", flush=True)
    res = evaluate(EvalConfig(
        model=args.model, root=args.root, dataset=args.dataset, labels=labels,
        timesteps=tuple(int(t) for t in args.timesteps.split(",")),
        masks=tuple(float(m) for m in args.mask.split(",")), seeds=args.seeds,
        modes=tuple(args.mode.split(",")) if args.mode else None, split=split, limit=args.limit,
        cache=args.cache, progress=args.progress, workers=args.workers, device=args.device))
    if not dist.is_main():
        dist.finish()
        return 0
    write(res, args.json, args.plot)
    if res["split"] in ("all", "train") and _trained_on(args.model, args.root):
        print(f"note: {args.model} was trained on files of {args.root}: split '{res['split']}' includes its training "
              "files (--split val: its held-out validation split)")
    print(f"ANN accuracy {res['ann']['accuracy']:.4f}, {res['ann']['energy_uJ']:.3f} uJ/sample ({res['samples']} samples)")
    for r in res["snn"]:
        print(f"{r['mode']:5} T={r['timesteps']:4d} mask={r['mask_ratio']:.2f}: accuracy {r['accuracy_mean']:.4f}"
              f" ± {r['accuracy_std']:.4f}, {r['spikes_per_sample']:.0f} spikes, {r['energy_uJ']:.3f} uJ")
    dist.finish()
    return 0


def _trained_on(model_path, root) -> bool:
    from evstream.snn import load_checkpoint

    _, meta = load_checkpoint(model_path)
    trained = (meta.get("dataset") or {}).get("root")
    return bool(trained) and Path(trained).resolve() == Path(root).resolve()
