"""``evstream eval``: the ANN and its SNN views on a dataset; JSON and plot."""

from __future__ import annotations

import os
from pathlib import Path

HELP = "accuracy, spikes and energy of a checkpoint's ANN and SNN views for several T and mask ratios"


def add_arguments(p):
    from evstream.paths import DEMO_MODEL, data_root

    data = data_root()
    p.add_argument("--dataset", default="nmnist", choices=["nmnist", "ncars", "cifar10dvs", "asl"],
                   help="dataset layout of --root (default nmnist)")
    p.add_argument("--root", default=str(data / "nmnist_small" / "train"),
                   help="dataset folder (default: the shared N-MNIST sample, ../shared/data or $EVSTREAM_DATA)")
    p.add_argument("--labels", default=None,
                   help="labels file (default: ROOT/labels.txt for nmnist when present)")
    p.add_argument("--model", default=str(DEMO_MODEL), help="checkpoint to evaluate")
    p.add_argument("--timesteps", default="8,16,32,64,128",
                   help="SNN timesteps T to report, comma-separated (one run of the largest covers all)")
    p.add_argument("--mask", default="0,0.5,0.75", help="Random Spike Masking ratios, comma-separated")
    p.add_argument("--seeds", type=int, default=10, help="runs per mask ratio above 0 (masks are random)")
    p.add_argument("--mode", default=None, help="conversion mode(s), comma-separated (default: the model's "
                   "first, e.g. mst); e.g. mst,ecmt")
    p.add_argument("--split", default=None, choices=["val", "train", "test", "all"],
                   help="which samples: val = the checkpoint's own validation split of ROOT (its stored "
                        "fraction, 10%% unless it says otherwise), train = the rest of ROOT, test = the "
                        "dataset's test split, all = every sample in ROOT (default: the dataset's test split "
                        "where it has one, else all; it says which)")
    p.add_argument("--limit", type=int, default=0, help="evaluate only the first N samples (0: all)")
    p.add_argument("--burn-in", type=float, default=0.0, metavar="F",
                   help="the answer at T leaves out the first F*T steps, as the live rule does (evstream run "
                        "--burn-in; default 0: every step counts, the paper's)")
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    p.add_argument("--plot", default=None, help="write accuracy and energy against T to this image")
    p.add_argument("--cache", default=None, help="folder for the decoded-dataset cache "
                   "(default $EVSTREAM_CACHE or ~/.cache/evstream)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes decoding into the cache and building the inputs (default: the machine's cores)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="cpu, or cuda where torch has it")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


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
        cache=args.cache, progress=args.progress, workers=args.workers, device=args.device,
        burn_in=args.burn_in))
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
