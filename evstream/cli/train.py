"""``evstream train``: train an ANN with QCFS (then optionally masked fine-tuning) and save a checkpoint."""

from __future__ import annotations

from pathlib import Path

HELP = "train a spiking-transformer checkpoint (ANN with QCFS, then masked fine-tuning) on a dataset"


def add_arguments(p):
    from evstream.paths import data_root

    data = data_root()
    p.add_argument("--dataset", default="nmnist", choices=["nmnist", "ncars", "cifar10dvs", "asl"])
    p.add_argument("--root", default=str(data / "nmnist_small" / "train"))
    p.add_argument("--labels", default=None, help="label list '#sample #class' (N-MNIST small layout)")
    p.add_argument("--arch", default="mst")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--out", default="model.pt")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=2, help="warm-up epochs")
    p.add_argument("--frames", type=int, default=4, help="polarity frames per sample (n)")
    p.add_argument("--img-size", type=int, default=32)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--mask-finetune", default="0", help="RSM ratio(s) for phase 2, e.g. 0.5 or 0,0.5,0.75 "
                   "(one drawn per batch; 0 alone: skip phase 2)")
    p.add_argument("--levels", type=int, default=None, help="QCFS quantisation levels L (default: the preset's, 16)")
    p.add_argument("--finetune-epochs", type=int, default=5)
    p.add_argument("--emulated", type=int, default=0, help="add this many emulated MNIST saccade samples")
    p.add_argument("--emulated-root", default=str(data / "mnist_images"))
    p.add_argument("--fonts", type=int, default=0, metavar="N",
                   help="add N emulated printed digits (Hershey fonts, random stroke, scale and slant; never the "
                        "demo recording's): a camera pointed at printed digits, as the demo shows")
    p.add_argument("--stream-windows", type=int, default=0, metavar="N",
                   help="also train on N windows cut at random offsets of continuous streams of the training "
                        "recordings (straddling windows labelled by the recording covering most); the live "
                        "window becomes the longest --window-ms (default 0: whole samples only)")
    p.add_argument("--window-ms", default="100,150", help="stream windows: length range in ms (default 100,150)")
    p.add_argument("--stream-gaps-ms", default="0-200", help="stream windows: gaps between recordings, ms range")
    p.add_argument("--window-draw", default="fresh", choices=["fresh", "fixed"],
                   help="stream windows: fresh (default) draws N new windows every epoch; fixed cuts N once and "
                        "trains on the same ones every epoch (the recipe before 2026-12-07)")
    p.add_argument("--straddle", type=float, default=0.0, metavar="F",
                   help="fresh stream windows: this fraction drawn across a change of recording (the end of one "
                        "and the start of the next), the moments a live decision meets at every change of object")
    p.add_argument("--init", default=None, help="start from this checkpoint's weights (--epochs 0 to fine-tune only)")
    p.add_argument("--ecmt-calibrate", type=int, default=300, metavar="N",
                   help="calibrate the ECMT mode's thresholds on N training samples after training (0: skip)")
    p.add_argument("--limit", type=int, default=0, help="use only this many training files (quick runs)")
    p.add_argument("--cache", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="cpu, or cuda where the torch build has it (data-parallel over processes: torchrun)")
    p.add_argument("--amp", action="store_true", help="mixed precision: bfloat16 autocast (for --device cuda)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes decoding the dataset into the cache and building the inputs (DataLoader workers; "
                   "0: none, in this process; default: the machine's cores, shared by torchrun's processes)")
    p.add_argument("--no-progress", dest="progress", action="store_false")


def default_labels(dataset, root, labels):
    """N-MNIST small: the label list next to the files when none is given."""
    if labels is None and dataset == "nmnist" and (Path(root) / "labels.txt").exists():
        return str(Path(root) / "labels.txt")
    return labels


def run(args) -> int:
    import dataclasses

    from evstream.train import TrainConfig, train

    cfg = TrainConfig.from_namespace(args)
    train(dataclasses.replace(cfg, labels=default_labels(cfg.dataset, cfg.root, cfg.labels)))
    return 0
